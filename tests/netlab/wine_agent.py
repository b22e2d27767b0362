"""pd-agent.exe under Wine on a lab device, with the API of agent.Agent (start, call, ok,
wait_job, stop): its own Wine prefix (a wineserver per prefix, started inside the device's
namespace), Windows paths in its config (Z: is the Linux root), and its named pipe driven
through `pd.exe --agent PIPE call JSON` in the same prefix (pipes live in the prefix's
wineserver). docs/windows.md."""
import json
import os
import signal
import subprocess
import time

from .agent import AgentCommands, AgentError

WINE_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cmake", "wine-run.sh")


def winpath(path):
    """A Linux path as Wine's Windows programs name it."""
    return "Z:" + os.path.abspath(str(path)).replace("/", "\\")


class WineAgent(AgentCommands):
    def __init__(self, bin_dir, workdir, name, plugin_dir, netns=None, extra=None):
        self.bin_dir = bin_dir
        self.dir = str(workdir)
        self.name = name
        self.netns = netns
        os.makedirs(self.dir, exist_ok=True)
        self.pipe = "\\\\.\\pipe\\pd-" + name
        self.prefix = os.path.join(self.dir, "wineprefix")
        self.config = {
            "cache_dir": winpath(os.path.join(self.dir, "cache")),
            "control_socket": self.pipe,
            "plugin_dir": winpath(plugin_dir),
            "log_level": "info",
            "settings": {"job.flush_interval_ms": 100, "job.progress_interval_ms": 100,
                         "peer.refresh_ms": 200, "peer.discovery_interval_ms": 1000},
        }
        if extra:
            self.config.update(extra)
        self.config_path = os.path.join(self.dir, "agent.json")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.proc = None

    def _in_prefix(self, *cmd):
        """`cmd` with this agent's Wine prefix, inside its namespace when it has one."""
        cmd = ["env", "WINEPREFIX=" + self.prefix] + list(cmd)
        return (["ip", "netns", "exec", self.netns] + cmd) if self.netns else cmd

    def _command(self, program, *args):
        return self._in_prefix(WINE_RUN, os.path.join(self.bin_dir, program), *args)

    def start(self, timeout=90.0):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command("pd-agent.exe", "--config", winpath(self.config_path)),
                                     stdout=self._log, stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + timeout  # a new prefix initialises first (~5 s)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentError("%s exited with %d: %s" % (self.name, self.proc.returncode, self.log()[-2000:]))
            if "pd-agent ready" in self.log():
                return self
            time.sleep(0.2)
        self.kill()
        raise AgentError("%s did not start within %ss: %s" % (self.name, timeout, self.log()[-2000:]))

    def run(self, program, *args, timeout=120):
        """Runs another program of the Windows build (pd.exe, ...) in this agent's prefix."""
        return subprocess.run(self._command(program, *args), capture_output=True, text=True, timeout=timeout)

    # Requests that change nothing: asked again when pd.exe itself did not run.
    IDEMPOTENT = ("job", "jobs", "cache", "facts", "version")

    def call(self, cmd, **args):
        request = dict(args, cmd=cmd)
        for attempt in (1, 2):
            out = self.run("pd.exe", "--agent", self.pipe, "call", json.dumps(request), timeout=60)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
            try:
                return json.loads(line)
            except ValueError:
                # pd.exe prints a reply or an error, always: nothing at all, with its exit
                # status, means the process never ran under Wine (seen once in a CI run).
                silent = not out.stdout.strip() and not out.stderr.strip()
                if silent and attempt == 1 and cmd in self.IDEMPOTENT:
                    print("%s: pd.exe printed nothing (exit %s): asking again" % (self.name, out.returncode))
                    continue
                raise AgentError("%s: %s: no reply (exit %s: %s)" % (self.name, cmd, out.returncode, out.stderr.strip()[-500:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        # The prefix's wineserver (and whatever it still runs) goes with the agent.
        subprocess.run(self._in_prefix("/usr/lib/wine/wineserver", "-k"), capture_output=True, timeout=30)

    stop = kill
