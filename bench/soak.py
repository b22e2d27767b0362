#!/usr/bin/env python3
"""Soak: a fleet deploys packages again and again while it is attacked, for MINUTES.

The fleet: AGENTS real pd-agents sharing peers on loopback (peer.static_peers), a CDN (nginx)
as the origin. First one deployment without attackers (the baseline), then, until the time
is up, deployments of fresh SIZE_MIB packages while
  * three rogue fleet members sit in every agent's peer list (pd_test_rogue serve): one
    advertises every block and answers nothing while pushing HAVE_DELTAs, one answers with
    random bytes, one with malformed messages;
  * 24 silent sockets per agent hold its peer port, reopened as the agent closes them;
  * every 30 s an agent is killed with SIGKILL and restarted; its download is started again
    and resumes from its verified blocks.
Every honest device must complete every deployment with the exact bytes, no agent may exit
except the ones killed, and no agent's peak memory may pass RSS_BOUND_MIB. Reports each
deployment's time against the baseline, and the agents' CPU per GiB delivered.
usage: bench/soak.py BUILD_DIR [MINUTES] [AGENTS] [SIZE_MIB]"""
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.fleet import Fleet  # noqa: E402
from netlab.lab import Office  # noqa: E402

RSS_BOUND_MIB = 300

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/dev")
minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 5
agents = int(sys.argv[3]) if len(sys.argv) > 3 else 4
size = (int(sys.argv[4]) if len(sys.argv) > 4 else 64) << 20
host_bin = os.environ.get("PD_HOST_BIN", os.path.join(build, "host-sample"))
plugin_dir = os.environ.get("PD_PLUGIN_DIR", os.path.join(build, "plugins"))
rogue_bin = os.path.join(build, "tests", "pd_test_rogue")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


class Attack:
    """Silent sockets against every agent and SIGKILL + restart of one agent every 30 s."""

    def __init__(self, fleet, rogues):
        self.fleet, self.rogues = fleet, rogues
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.killed = []          # names, in order
        self.cpu_of_dead = 0.0    # CPU of agent processes that were killed
        self.peaks = {}           # name -> peak RSS MiB over all its processes
        self.threads = [threading.Thread(target=self.silent, daemon=True), threading.Thread(target=self.kill, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def peers(self):
        """Every agent's static peers: the other agents and the rogues."""
        addrs = {n: a.ok("facts")["listen"] for n, a in self.fleet.agents.items()}
        for n, a in self.fleet.agents.items():
            others = [v for k, v in addrs.items() if k != n] + self.rogues
            a.ok("setting", key="peer.static_peers", value=",".join(others))

    def silent(self):
        held = []
        while not self.stop.is_set():
            with self.lock:
                targets = [a.ok("facts")["listen"] for a in self.fleet.agents.values()]
            held = [s for s in held if s.fileno() >= 0]
            for addr in targets:
                host, port = addr.rsplit(":", 1)
                for _ in range(24):
                    try:
                        s = socket.create_connection((host, int(port)), timeout=1)
                        held.append(s)
                    except OSError:
                        break
            time.sleep(2)
            for s in held[:-200]:
                s.close()
            held = held[-200:]
        for s in held:
            s.close()

    def kill(self):
        while not self.stop.wait(30):
            with self.lock:
                name = random.choice(sorted(self.fleet.agents))
                a = self.fleet.agents[name]
                self.peaks[name] = max(self.peaks.get(name, 0), peak_rss_mib(a.proc.pid))
                self.cpu_of_dead += cpu_seconds(a.proc.pid)
                a.proc.send_signal(signal.SIGKILL)
                a.proc.wait()
                a.start(write_config=False)
                self.killed.append(name)
                self.peers()


def deploy(fleet, attack, label):
    data, manifest, url = fleet.publish_random(size, name="soak-%s.bin" % label)
    out = tempfile.mkdtemp(prefix="soak-out.", dir=fleet.dir)
    t0 = time.monotonic()
    with attack.lock if attack else threading.Lock():
        jobs = fleet.deploy(manifest, url, dest_dir=out)
    starts = {n: a.proc.pid for n, a in fleet.agents.items()}
    done = {}
    lock = attack.lock if attack else threading.Lock()
    while len(done) < len(jobs) and time.monotonic() - t0 < 900:
        with lock:  # the attack restarts agents: never talk to one meanwhile
            for name, a in fleet.agents.items():
                if name in done:
                    continue
                if a.proc.pid != starts[name]:  # killed and restarted: start the download again
                    starts[name] = a.proc.pid
                    jobs[name] = a.ok("download", manifest=manifest, origin=url, dest=os.path.join(out, name + ".bin"))["job"]
                    continue
                st = a.ok("job", job=jobs[name])["status"]
                if st["state"] == "completed":
                    done[name] = time.monotonic() - t0
                elif st["state"] in ("failed", "cancelled"):
                    raise SystemExit("%s: %s %s" % (name, st["state"], st["message"]))
        time.sleep(0.25)
    if len(done) < len(jobs):
        raise SystemExit("deployment %s not finished after 900 s" % label)
    for name in jobs:
        with open(os.path.join(out, name + ".bin"), "rb") as f:
            if f.read() != data:
                raise SystemExit("%s delivered other bytes" % name)
    return max(done.values())


def main():
    offices = [Office("lan", devices=agents)]
    with tempfile.TemporaryDirectory(prefix="pd-soak.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp")) as work:
        with Fleet(work, offices, host_bin, plugin_dir, namespaces=False, p2p=True) as fleet:
            cpu0 = sum(cpu_seconds(a.proc.pid) for a in fleet.agents.values())
            baseline = deploy(fleet, None, "baseline")
            print("baseline: %d agents, %d MiB, last done %.1f s" % (agents, size >> 20, baseline))
            blocks = (size + 65535) // 65536
            rogue_procs, rogues = [], []
            for mode in ("stall", "bad", "garbage"):
                addr = "127.0.0.1:%d" % free_port()
                rogue_procs.append(subprocess.Popen([rogue_bin, "serve", mode, addr, os.path.join(work, "fleet.key"),
                                                     str(blocks)], stdout=subprocess.DEVNULL))
                rogues.append(addr)
            time.sleep(0.5)
            attack = Attack(fleet, rogues)
            attack.peers()
            attack.start()
            runs = []
            deadline = time.monotonic() + minutes * 60
            try:
                while time.monotonic() < deadline:
                    runs.append(deploy(fleet, attack, "run%d" % len(runs)))
                    print("under attack: deployment %d last done %.1f s (%.2f x baseline); agents killed so far: %d" %
                          (len(runs), runs[-1], runs[-1] / baseline, len(attack.killed)), flush=True)
            finally:
                attack.close()
                for p in rogue_procs:
                    p.kill()
            for name, a in fleet.agents.items():
                if not a.running():
                    raise SystemExit("%s exited unexpectedly: %s" % (name, a.log()[-2000:]))
                attack.peaks[name] = max(attack.peaks.get(name, 0), peak_rss_mib(a.proc.pid))
            cpu = sum(cpu_seconds(a.proc.pid) for a in fleet.agents.values()) + attack.cpu_of_dead - cpu0
            delivered_gib = (len(runs) + 1) * agents * size / float(1 << 30)
            worst = max(attack.peaks.values())
            print("soak: %.1f min, %d deployments under attack, every device complete and byte-exact" % (minutes, len(runs)))
            print("  last done: median %.1f s, worst %.1f s = %.2f x / %.2f x the baseline" %
                  (sorted(runs)[len(runs) // 2], max(runs), sorted(runs)[len(runs) // 2] / baseline, max(runs) / baseline))
            print("  agents killed and restarted: %d; peak RSS of any agent %.0f MiB (bound %d)" %
                  (len(attack.killed), worst, RSS_BOUND_MIB))
            print("  agents' CPU %.1f s for %.2f GiB delivered: %.1f s/GiB" % (cpu, delivered_gib, cpu / delivered_gib))
            if worst > RSS_BOUND_MIB:
                raise SystemExit("an agent's memory passed the bound")


if __name__ == "__main__":
    main()
