"""pd-agent processes: write a config, start (optionally inside a network namespace), talk
to the control socket, stop cleanly (SIGTERM) or crash (SIGKILL). Every wait is bounded."""
import json
import os
import resource
import signal
import socket
import subprocess
import time

from . import procstat


def write_key(path, text=None):
    """Writes a fleet key file as pd-coordinator init does: created 0600, 64 hex digits of a
    random key unless `text` says otherwise."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() if text is None else text)
    return str(path)


def process_cpu_seconds(pid):
    """User + system CPU seconds of a running process (Linux /proc)."""
    return procstat.cpu_seconds(procstat.stat_fields(pid))


def children_cpu_seconds():
    """User + system CPU seconds of this process's children that have been waited for
    (curl and the like, run to completion): a benchmark's baseline, read before and after."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


class AgentError(Exception):
    pass


class ControlClient:
    """Newline-delimited JSON over the agent's Unix socket."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AgentError("agent closed the control connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, **args):
        self.send_raw((json.dumps(dict(args, cmd=cmd)) + "\n").encode())
        return self.read_reply()

    def close(self):
        self.sock.close()


class AgentCommands:
    """What every agent in the lab answers, given its call(cmd, **args) and log_path."""

    def ok(self, cmd, **args):
        reply = self.call(cmd, **args)
        if not reply.get("ok"):
            raise AgentError("%s: %s failed: %s" % (self.name, cmd, reply.get("error")))
        return reply

    def wait_job(self, job, timeout=120.0, until=("completed", "failed", "cancelled")):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.ok("job", job=job)["status"]
            if st["state"] in until:
                return st
            time.sleep(0.1)
        raise AgentError("%s: job %d not finished within %ss" % (self.name, job, timeout))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class Agent(AgentCommands):
    def __init__(self, binary, workdir, name="agent", plugin_dir=None, netns=None, extra=None):
        self.binary = binary
        self.dir = str(workdir)
        self.name = name
        self.netns = netns
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "agent.sock")
        self.config = {
            "cache_dir": os.path.join(self.dir, "cache"),
            "control_socket": self.socket,
            "log_level": "info",
            # Unsigned contents are allowed here: most tests are about moving bytes. The fleet
            # (fleet.py) signs every package and its agents trust only its publisher.
            "settings": {"job.flush_interval_ms": 100, "job.progress_interval_ms": 100,
                         "peer.refresh_ms": 200, "peer.discovery_interval_ms": 1000, "trust.allow_unsigned": 1},
        }
        if plugin_dir:
            self.config["plugin_dir"] = plugin_dir
        if extra:
            self.config.update(extra)
        self.config_path = os.path.join(self.dir, "agent.json")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.proc = None
        self._client = None

    def write_config(self, config=None):
        with open(self.config_path, "w") as f:
            json.dump(self.config if config is None else config, f)

    def command(self):
        cmd = [self.binary, "--config", self.config_path]
        return (["ip", "netns", "exec", self.netns] + cmd) if self.netns else cmd

    def start(self, timeout=15.0, write_config=True):
        if write_config:
            self.write_config()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentError("%s exited with %d: %s" % (self.name, self.proc.returncode, self.log()[-2000:]))
            try:
                c = ControlClient(self.socket, timeout=2)
                if c.call("version").get("ok"):
                    self._client = c
                    return self
                c.close()
            except (OSError, AgentError, ValueError):
                pass
            time.sleep(0.05)
        self.kill()
        raise AgentError("%s did not answer on %s within %ss" % (self.name, self.socket, timeout))

    def call(self, cmd, **args):
        if self._client is None:
            self._client = ControlClient(self.socket)
        reply = self._client.call(cmd, **args)
        return reply

    def _drop_client(self):
        if self._client:
            self._client.close()
            self._client = None

    def stop(self, timeout=20.0):
        """SIGTERM: the agent makes verified blocks durable and exits 0."""
        self._drop_client()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AgentError("%s did not stop within %ss of SIGTERM" % (self.name, timeout))
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill(self):
        self._drop_client()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self):
        """The agent process's CPU time so far (user + system), from /proc."""
        return process_cpu_seconds(self.proc.pid)
