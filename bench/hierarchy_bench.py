#!/usr/bin/env python3
"""Where the time goes when a package crosses the office tree (docs/hierarchy.md).

Usage (root): bench/hierarchy_bench.py BUILD_DIR [--runs N] [--transport background|foreground]
              [--json OUT]

The hierarchy lab of tests/python/test_hierarchy.py — Central(3) → {A(3) → {A WiFi(3)}, B(3),
VPN(2)}, WAN links shaped with tbf at 20 Mbit/s — deploys a 64 MiB package N times. While it
runs, each branch's WAN downlink counters are read every ~25 ms, so each deployment reports
per branch: when the link carried its first 64 KiB, when it had carried 99 % of its total,
how busy it was in between (bytes over rate × time: the share of the link the transfer used),
when the office's first and last devices finished, and the last one in F/W — F the content
size, W the link rate. The host's CPU steal over the deployment comes from /proc/stat: on a
shared machine it is the first thing to read next to the figures.

Needs the SDK built and the sample host installed into BUILD_DIR (tests/install_and_build_host.sh).
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.fleet import Fleet, cpu_times  # noqa: E402
from netlab.lab import Office  # noqa: E402

MiB = 1 << 20
WAN_MBIT = 20
BRANCHES = ("branch-a", "branch-a-wifi", "branch-b")


class LinkCounter:
    """Reads an interface's transmitted bytes in its namespace every ~20 ms: one long-lived
    shell, so sampling costs no process start per reading."""

    def __init__(self, ns, ifname):
        script = "while :; do echo T $(date +%%s.%%N); grep '%s:' /proc/net/dev; sleep 0.02; done" % ifname
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "sh", "-c", script], stdout=subprocess.PIPE, text=True)
        self.samples = []  # (unix time, bytes transmitted)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        at = None
        for line in self.proc.stdout:
            if line.startswith("T "):
                at = float(line.split()[1])
            elif at is not None and ":" in line:
                self.samples.append((at, int(line.split(":", 1)[1].split()[8])))

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.thread.join(timeout=5)


def link_figures(samples, start_s, rate_bytes):
    """When the link had carried its first 64 KiB and 99 % of its total (s from start_s), and
    the share of its rate it carried in between."""
    b0 = samples[0][1]
    total = samples[-1][1] - b0
    t_first, b_first = next((t, b) for t, b in samples if b - b0 > 65536)
    t_done, b_done = next((t, b) for t, b in samples if b - b0 >= 0.99 * total)
    return t_first - start_s, t_done - start_s, (b_done - b_first) / rate_bytes / max(1e-9, t_done - t_first)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--transport", default="background", choices=("background", "foreground"))
    ap.add_argument("--json")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    offices = [Office("central", devices=3),
               Office("branch-a", devices=3, wan_mbit=WAN_MBIT, parent="central"),
               Office("branch-a-wifi", devices=3, wan_mbit=WAN_MBIT, parent="branch-a", kind="WiFi"),
               Office("branch-b", devices=3, wan_mbit=WAN_MBIT, parent="central"),
               Office("vpn", devices=2, wan_mbit=WAN_MBIT, parent="central", kind="VPN")]
    size = 64 * MiB
    bound_s = size * 8 / (WAN_MBIT * 1e6)
    rate_bytes = WAN_MBIT * 1e6 / 8
    results = []
    with tempfile.TemporaryDirectory(prefix="pd-hierarchy-bench-") as work, \
            Fleet(os.path.join(work, "fleet"), offices, os.path.join(build, "host-sample"),
                  os.path.join(build, "plugins"), p2p="hierarchy") as fleet:
        for a in fleet.agents.values():
            a.ok("setting", key="wan.transport", value=args.transport)
        for run in range(args.runs):
            dest = os.path.join(work, "run%d" % run)
            os.makedirs(dest)
            _, manifest, url = fleet.publish_random(size, name="run%d.bin" % run)
            counters = {o: LinkCounter(fleet.lab.office(o).wan_up_ns, fleet.lab.office(o).wan_up_if) for o in BRANCHES}
            time.sleep(0.5)
            cpu0 = cpu_times()
            statuses = fleet.watch(fleet.deploy(manifest, url, dest_dir=dest), timeout=600, out=io.StringIO())
            cpu1 = cpu_times()
            for c in counters.values():
                c.stop()
            bad = [n for n, s in statuses.items() if s["state"] != "completed"]
            if bad:
                sys.exit("run %d: not completed: %s" % (run, bad))
            start_s = min(s["started_ms"] for s in statuses.values()) / 1000.0
            steal = (cpu1[1] - cpu0[1]) / max(1, cpu1[0] - cpu0[0])
            row = {"run": run, "transport": args.transport, "cpu_steal": steal, "offices": {}}
            print("run %d (%s): CPU steal %.0f %%" % (run, args.transport, 100 * steal))
            for o in BRANCHES:
                mine = [s for n, s in statuses.items() if fleet.lab.device(n).office.name == o]
                first, done, busy = link_figures(counters[o].samples, start_s, rate_bytes)
                first_device = min(s["finished_ms"] for s in mine) / 1000.0 - start_s
                last = max(s["finished_ms"] for s in mine) / 1000.0 - start_s
                row["offices"][o] = {"link_first_s": first, "link_done_s": done, "link_busy": busy,
                                     "first_device_s": first_device, "last_device_s": last,
                                     "last_fw": last / bound_s}
                print("  %-14s last done %.2f x F/W; link: first 64 KiB at %.2f s, 99 %% at %.2f s, busy %.3f; "
                      "devices done %.2f-%.2f s" % (o, last / bound_s, first, done, busy, first_device, last))
            results.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
