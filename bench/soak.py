#!/usr/bin/env python3
"""Soak: a fleet deploys packages again and again while it is attacked, for MINUTES.

Two labs:
  loopback (default): AGENTS real pd-agents on 127.0.0.1 sharing peers through
    peer.static_peers, a CDN (nginx) as the origin.
  --hierarchy: the same agents in network namespaces, two offices (HQ and a Branch below it,
    each its own subnet behind a WAN link), pd-coordinator deciding who fetches from where
    (the hierarchy backend), the CDN in HQ.
First one deployment without attackers (the baseline), then, until the time is up,
deployments of fresh SIZE_MIB packages while
  * four rogue fleet members sit in every agent's peer list (pd_test_rogue serve): one
    advertises every block and answers nothing while pushing HAVE_DELTAs, one answers with
    random bytes, one with malformed messages, one drips true blocks at one per 1.5 s;
  * 24 silent sockets per agent hold its peer port, and (--hierarchy) 24 more the
    coordinator's port, reopened as they are closed;
  * every 30 s an agent is killed with SIGKILL and restarted; its download is started again
    and resumes from its verified blocks;
  * (--hierarchy) every 40 s the coordinator is killed with SIGKILL and restarted on its
    database.
Every honest device must complete every deployment with the exact bytes, no process may exit
except the ones killed, and no agent's (coordinator's) peak memory may pass RSS_BOUND_MIB
(COORDINATOR_RSS_BOUND_MIB). Reports each
deployment's time against the baseline, and the agents' CPU per GiB delivered.
usage: bench/soak.py BUILD_DIR [MINUTES] [AGENTS] [SIZE_MIB] [--hierarchy]
(tests/python/test_soak.py runs a short --hierarchy version in CI.)"""
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

RSS_BOUND_MIB = 300              # any agent process
COORDINATOR_RSS_BOUND_MIB = 200  # any pd-coordinator process
ROGUES = ("stall", "bad", "garbage", "drip")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


def hold_silent(targets):
    """Runs in the attacker's namespace: 24 silent connections to each host:port, reopened
    as the far end closes them, until killed."""
    held = {t: [] for t in targets}
    while True:
        for t, socks in held.items():
            host, port = t.rsplit(":", 1)
            socks[:] = [s for s in socks if not closed(s)]
            while len(socks) < 24:
                try:
                    socks.append(socket.create_connection((host, int(port)), timeout=1))
                except OSError:
                    break
        time.sleep(1)


def closed(s):
    try:
        s.setblocking(False)
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        s.close()
        return True


class Attack:
    """Rogue peers, silent sockets, and SIGKILL + restart of agents (and the coordinator)."""

    def __init__(self, fleet, work, blocks, hierarchy):
        self.fleet, self.hierarchy = fleet, hierarchy
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.killed = []          # agent names, in order
        self.coordinator_restarts = 0
        self.cpu_of_dead = 0.0    # CPU of agent processes that were killed
        self.peaks = {}           # name -> peak RSS MiB over all its processes
        self.coordinator_peak = 0.0
        self.drip_dir = os.path.join(work, "drip")
        os.makedirs(self.drip_dir, exist_ok=True)
        lab = fleet.lab
        self.host = lab.add_device(fleet.cdn_office, "attacker") if lab.namespaces else lab.device(next(iter(fleet.agents)))
        self.procs, self.rogues = [], []
        for i, mode in enumerate(ROGUES):
            addr = "%s:%d" % (self.host.ip, 7501 + i if lab.namespaces else free_port())
            cmd = [rogue_bin, "serve", mode, addr, os.path.join(work, "fleet.key"), str(blocks)]
            self.procs.append(lab.spawn(self.host, cmd + ([self.drip_dir] if mode == "drip" else [])))
            self.rogues.append(addr)
        targets = [a.ok("facts")["listen"] for a in fleet.agents.values()]
        if hierarchy:
            targets.append(fleet.coordinator)
        self.procs.append(lab.spawn(self.host, [sys.executable, os.path.abspath(__file__), "--hold-silent", ",".join(targets)]))
        time.sleep(0.5)
        threads = [self.kill_agents] + ([self.kill_coordinator] if hierarchy else [])
        self.threads = [threading.Thread(target=t, daemon=True) for t in threads]

    def publish(self, data_path, content_id):
        """The drip rogue serves true bytes: it finds them under the content id."""
        link = os.path.join(self.drip_dir, content_id)
        if not os.path.exists(link):
            os.symlink(data_path, link)

    def start(self):
        self.peers()
        for t in self.threads:
            t.start()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        for p in self.procs:
            if p.poll() is not None:
                raise SystemExit("an attacker process exited early (status %s)" % p.returncode)
            p.kill()

    def peers(self):
        """Every agent's static peers: the rogues, and on loopback the other agents."""
        addrs = {n: a.ok("facts")["listen"] for n, a in self.fleet.agents.items()}
        for n, a in self.fleet.agents.items():
            others = [] if self.hierarchy else [v for k, v in addrs.items() if k != n]
            a.ok("setting", key="peer.static_peers", value=",".join(others + self.rogues))

    def kill_agents(self):
        while not self.stop.wait(30):
            with self.lock:
                name = random.choice(sorted(self.fleet.agents))
                a = self.fleet.agents[name]
                self.peaks[name] = max(self.peaks.get(name, 0), peak_rss_mib(a.proc.pid))
                self.cpu_of_dead += a.cpu_seconds()
                a.proc.send_signal(signal.SIGKILL)
                a.proc.wait()
                a.start(write_config=False)
                self.killed.append(name)
                self.peers()

    def kill_coordinator(self):
        while not self.stop.wait(40):
            p = self.fleet.coordinator_proc
            self.coordinator_peak = max(self.coordinator_peak, peak_rss_mib(p.pid))
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            self.fleet.restart_coordinator()
            self.coordinator_restarts += 1


def deploy(fleet, attack, label):
    data, manifest, url = fleet.publish_random(size, name="soak-%s.bin" % label)
    out = tempfile.mkdtemp(prefix="soak-out.", dir=fleet.dir)
    t0 = time.monotonic()
    lock = attack.lock if attack else threading.Lock()
    with lock:
        jobs = fleet.deploy(manifest, url, dest_dir=out)
        if attack:
            first = next(iter(jobs))
            content = fleet.agents[first].ok("job", job=jobs[first])["status"]["content"]
            attack.publish(os.path.join(fleet.www, "soak-%s.bin" % label), content)
    starts = {n: a.proc.pid for n, a in fleet.agents.items()}
    done = {}
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
    if hierarchy:
        offices = [Office("HQ", devices=(agents + 1) // 2), Office("Branch", devices=agents // 2, parent="HQ")]
    else:
        offices = [Office("lan", devices=agents)]
    with tempfile.TemporaryDirectory(prefix="pd-soak.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp")) as work:
        with Fleet(work, offices, host_bin, plugin_dir, namespaces=hierarchy, p2p="hierarchy" if hierarchy else True) as fleet:
            cpu0 = sum(a.cpu_seconds() for a in fleet.agents.values())
            baseline = deploy(fleet, None, "baseline")
            print("baseline: %d agents (%s), %d MiB, last done %.1f s" %
                  (agents, "hierarchy lab" if hierarchy else "loopback", size >> 20, baseline), flush=True)
            attack = Attack(fleet, work, (size + 65535) // 65536, hierarchy)
            attack.start()
            runs = []
            deadline = time.monotonic() + minutes * 60
            try:
                while time.monotonic() < deadline or not runs:
                    runs.append(deploy(fleet, attack, "run%d" % len(runs)))
                    print("under attack: deployment %d last done %.1f s (%.2f x baseline); agents killed so far: %d, "
                          "coordinator restarts: %d" % (len(runs), runs[-1], runs[-1] / baseline, len(attack.killed),
                                                        attack.coordinator_restarts), flush=True)
            finally:
                attack.close()
            for name, a in fleet.agents.items():
                if not a.running():
                    raise SystemExit("%s exited unexpectedly: %s" % (name, a.log()[-2000:]))
                attack.peaks[name] = max(attack.peaks.get(name, 0), peak_rss_mib(a.proc.pid))
            if hierarchy:
                if fleet.coordinator_proc.poll() is not None:
                    raise SystemExit("pd-coordinator exited unexpectedly")
                attack.coordinator_peak = max(attack.coordinator_peak, peak_rss_mib(fleet.coordinator_proc.pid))
            cpu = sum(a.cpu_seconds() for a in fleet.agents.values()) + attack.cpu_of_dead - cpu0
            delivered_gib = (len(runs) + 1) * agents * size / float(1 << 30)
            worst = max(attack.peaks.values())
            median = sorted(runs)[len(runs) // 2]
            print("soak: %.1f min, %d deployments under attack, every device complete and byte-exact" % (minutes, len(runs)))
            print("  last done: median %.1f s, worst %.1f s = %.2f x / %.2f x the baseline" %
                  (median, max(runs), median / baseline, max(runs) / baseline))
            print("  agents killed and restarted: %d; coordinator restarts: %d; peak RSS of any agent %.0f MiB (bound %d)" %
                  (len(attack.killed), attack.coordinator_restarts, worst, RSS_BOUND_MIB))
            if hierarchy:
                print("  peak RSS of any pd-coordinator process %.0f MiB (bound %d)" %
                      (attack.coordinator_peak, COORDINATOR_RSS_BOUND_MIB))
            print("  agents' CPU %.1f s for %.2f GiB delivered: %.1f s/GiB" % (cpu, delivered_gib, cpu / delivered_gib))
            if worst > RSS_BOUND_MIB:
                raise SystemExit("an agent's memory passed the bound")
            if attack.coordinator_peak > COORDINATOR_RSS_BOUND_MIB:
                raise SystemExit("the coordinator's memory passed the bound")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--hold-silent":
        hold_silent(sys.argv[2].split(","))
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    hierarchy = "--hierarchy" in sys.argv
    build = os.path.abspath(args[0] if args else "build/dev")
    minutes = float(args[1]) if len(args) > 1 else 5
    agents = int(args[2]) if len(args) > 2 else 4
    size = (int(args[3]) if len(args) > 3 else 64) << 20
    host_bin = os.environ.get("PD_HOST_BIN", os.path.join(build, "host-sample"))
    plugin_dir = os.environ.get("PD_PLUGIN_DIR", os.path.join(build, "plugins"))
    rogue_bin = os.path.join(build, "tests", "pd_test_rogue")
    main()
