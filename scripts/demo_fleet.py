#!/usr/bin/env python3
"""The main job: a demo fleet distributing a package.

A central office (with the CDN) and two branch offices behind shaped WAN links, a pd-agent
on every device; a generated package is published to the CDN and deployed to every device
with live progress per office; the summary compares time, origin egress and bytes over each
WAN link and LAN with the default way (every device downloading from the CDN), measured in
the same run. Runs in network namespaces as root, on loopback otherwise.

Modes (PD_DEMO_MODE): "hierarchy" (default as root): a pd-coordinator in the central office
knows the offices; each branch's elected RVP pulls the package over its WAN link once and
the branch's other devices fetch it inside the office. "branchcache": no server; devices
find each other by multicast inside each office and split the CDN download among themselves.
usage: scripts/demo_fleet.py STAGE HOST_BIN [SIZE_MIB] [WAN_MBIT]"""
import os
import shutil
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.fleet import Fleet, chart, table  # noqa: E402
from netlab.lab import Office  # noqa: E402
from netlab.servers import write_random_file  # noqa: E402

stage, host_bin = sys.argv[1], sys.argv[2]
size_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 128
wan = int(sys.argv[4]) if len(sys.argv) > 4 else 200
plugins = os.path.join(stage, "lib", "peerdist", "plugins")
out_dir = os.environ.get("PD_DEMO_OUT", os.path.join(os.getcwd(), "build", "demo"))
os.makedirs(out_dir, exist_ok=True)

offices = [Office("central", devices=2), Office("branch-a", devices=3, wan_mbit=wan, parent="central"),
           Office("branch-b", devices=3, wan_mbit=wan, parent="central")]
mode = os.environ.get("PD_DEMO_MODE", "hierarchy")
if os.geteuid() != 0:
    mode = "loopback"  # no namespaces: static peers on loopback
label = {"hierarchy": "peerdist (hierarchy)", "branchcache": "peerdist (branchcache)", "loopback": "peerdist"}[mode]
work = tempfile.mkdtemp(prefix="peerdist-fleet.")
try:
    with Fleet(work, offices, host_bin, plugins, p2p="hierarchy" if mode == "hierarchy" else True,
               coordinator_bin=os.path.join(stage, "bin", "pd-coordinator")) as fleet:
        lab = "network namespaces, WAN links %d Mbit/s (tbf)" % wan if fleet.lab.namespaces else "loopback (not root)"
        print("== lab: %s; %d agents; mode %s" % (lab, len(fleet.agents), mode), flush=True)
        pkg = write_random_file(os.path.join(work, "Setup-2.0.bin"), size_mib)
        manifest, url = fleet.publish(pkg)
        size = size_mib * (1 << 20)
        print("== published %d MiB to the CDN at %s" % (size_mib, url), flush=True)

        # Every device starts at once.
        c0 = fleet.counters()
        t0 = time.monotonic()
        print("== deploying with %s to all %d devices at once" % (label, len(fleet.agents)), flush=True)
        statuses = fleet.watch(fleet.deploy(manifest, url))
        t_pd = time.monotonic() - t0
        c1 = fleet.counters()
        failed = [n for n, s in statuses.items() if s["state"] != "completed"]
        if failed:
            print("FAILED on %s: %s" % (failed, [statuses[n]["message"] for n in failed]))
            sys.exit(1)
        pd_times = {n: (s["finished_ms"] - s["started_ms"]) / 1000.0 for n, s in statuses.items()}

        print("== the default way: every device downloads from the CDN", flush=True)
        t0 = time.monotonic()
        curl_times = fleet.default_way(url)
        t_curl = time.monotonic() - t0
        c2 = fleet.counters()

        delta = lambda a, b: {k: b[k] - a[k] for k in a}
        runs = [(label, t_pd, pd_times, delta(c0, c1)),
                ("default way (curl per device)", t_curl, curl_times, delta(c1, c2))]
        print("\n== summary: %d MiB package, %d devices\n" % (size_mib, len(fleet.agents)))
        print(table(fleet, size, runs))
        png = os.path.join(out_dir, "fleet-report.png")
        chart(fleet, png, statuses, runs)
        print("\nchart: %s" % png)
        if mode == "hierarchy":
            print("Every device verified every block before delivery. Only the central office touched the CDN;\n"
                  "each branch's elected RVP pulled the package from the central office over the WAN link once\n"
                  "and the branch's other devices took it from inside the office.")
        else:
            print("Every device verified every block before delivery. Inside each office the devices found each\n"
                  "other, split the CDN download among themselves and shared blocks over the LAN, so each\n"
                  "branch's WAN link carried about one copy, not one per device.")
finally:
    shutil.rmtree(work, ignore_errors=True)
