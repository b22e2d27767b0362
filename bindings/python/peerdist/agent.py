"""A client for a running pd-agent: its control channel's newline-delimited JSON (docs/agent.md)
over the Unix socket (Linux) or the named pipe (Windows, ``\\\\.\\pipe\\peerdist-agent``).

    with peerdist.agent.Client("/run/peerdist/agent.sock") as agent:
        job = agent.download(manifest="/srv/Setup.pdm", dest="/tmp/Setup.msi")
        status = agent.wait(job, timeout=600)

Replies that are not "ok" raise the peerdist.errors class of their code (so
``except FileNotFoundError`` catches an unknown job, as it does for a Session)."""
import json
import os
import socket
import time

from . import errors

MAX_REPLY = 64 << 20  # the largest reply line accepted (a cache listing of many contents)


class Client:
    """One connection to an agent's control channel. Not thread-safe: one per thread."""

    def __init__(self, address, timeout=30.0):
        self.address = os.fsdecode(os.fspath(address))
        self._buf = b""
        if self.address.startswith("\\\\.\\pipe\\"):
            self._pipe = open(self.address, "r+b", buffering=0)  # Windows named pipe
            self._sock = None
        else:
            self._pipe = None
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            try:
                self._sock.connect(self.address)
            except OSError as e:
                self._sock.close()
                raise ConnectionError("cannot reach pd-agent at '%s': %s" % (self.address, e.strerror or e)) from e

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self._sock:
            self._sock.close()
        if self._pipe:
            self._pipe.close()

    def _send(self, data):
        if self._sock:
            self._sock.sendall(data)
        else:
            self._pipe.write(data)

    def _recv(self):
        return self._sock.recv(65536) if self._sock else self._pipe.read(65536)

    def call(self, cmd, **args):
        """Sends one request and returns its reply as a dict, "ok" or not."""
        self._send((json.dumps(dict(args, cmd=cmd)) + "\n").encode())
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_REPLY:
                raise errors.InvalidError("the agent's reply is longer than %d bytes" % MAX_REPLY, -9)
            chunk = self._recv()
            if not chunk:
                raise ConnectionError("pd-agent closed the control connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise errors.InvalidError("the agent's reply is not a JSON object", -9)
        return reply

    def ok(self, cmd, **args):
        """call(), raising the peerdist.errors class of the reply's code unless it is "ok"."""
        reply = self.call(cmd, **args)
        if not reply.get("ok"):
            code = reply.get("code") if isinstance(reply.get("code"), int) else -1
            raise errors.from_code(code, 0, "%s: %s" % (cmd, reply.get("error", "failed")))
        return reply

    def version(self):
        return self.ok("version")["version"]

    def download(self, manifest=None, content=None, dest=None, origin=None, publication=None, pin=False):
        """Starts a download from a manifest file or a content id (the catalogue); returns the job id."""
        args = {k: v for k, v in (("manifest", manifest), ("content", content), ("dest", dest), ("origin", origin),
                                  ("publication", publication)) if v is not None}
        for k in ("manifest", "dest", "publication"):
            if k in args:
                args[k] = os.path.abspath(os.fsdecode(os.fspath(args[k])))  # the agent has another working directory
        if pin:
            args["pin"] = True
        return self.ok("download", **args)["job"]

    def jobs(self):
        """Every job's status (dicts with docs/agent.md's keys)."""
        return self.ok("jobs")["jobs"]

    def job(self, job_id):
        return self.ok("job", job=job_id)["status"]

    def cancel(self, job_id):
        self.ok("cancel", job=job_id)

    def pause(self, job_id):
        self.ok("pause", job=job_id)

    def resume(self, job_id):
        self.ok("resume", job=job_id)

    def cache(self):
        """The agent's cached contents: [{content, name, state, size, bytes_verified, pinned}]."""
        return self.ok("cache")["cache"]

    def evict(self, content_id):
        self.ok("evict", content=content_id)

    def facts(self):
        return self.ok("facts")["facts"]

    def wait(self, job_id, timeout=None, poll=0.2):
        """Polls a job until it is final; returns its status. TimeoutError when timeout passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.job(job_id)
            if st["state"] in ("completed", "failed", "cancelled"):
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise errors.TimeoutError_("job %d did not finish within %ss" % (job_id, timeout), -16)
            time.sleep(poll)
