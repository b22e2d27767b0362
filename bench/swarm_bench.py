#!/usr/bin/env python3
"""Swarm benchmark in the fleet lab (root: network namespaces). N agents on one subnet
download SIZE together with peerdist (branchcache discovery, secure channel, every block
verified), against the same devices fetching from nginx with curl in the same run:
  * unshaped: CDN on the devices' own subnet;
  * branch:   CDN behind a 100 Mbit/s tbf WAN link, as in a branch office; the target is
              the last agent done within 1.3 x the time one device needs alone (curl).
Reports last-agent completion time and origin egress with their ratios, and CPU (user +
system) per GiB delivered: the agents' own over the deployment, and both ends of one plain
HTTP transfer beside it (curl and nginx: in this lab a sender also pays its receiver's
kernel work, so neither end alone is the baseline).
usage: bench/swarm_bench.py BUILD_DIR [SIZE_MIB] [N,N,...] [unshaped,branch] [quick]
("quick" skips the every-device-curls baseline: for tuning, not for published figures)"""
import io
import os
import shutil
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.agent import children_cpu_seconds as child_cpu  # noqa: E402
from netlab.fleet import Fleet  # noqa: E402
from netlab.lab import Office  # noqa: E402
from warm_memory import warm  # noqa: E402

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/dev")
size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
counts = [int(n) for n in (sys.argv[3] if len(sys.argv) > 3 else "8,16").split(",")]
layouts = (sys.argv[4] if len(sys.argv) > 4 else "unshaped,branch").split(",")
quick = len(sys.argv) > 5 and sys.argv[5] == "quick"
host_bin = os.environ.get("PD_HOST_BIN", os.path.join(build, "host-sample"))
plugin_dir = os.environ.get("PD_PLUGIN_DIR", os.path.join(build, "plugins"))
size = size_mib << 20


def offices(layout, n):
    if layout == "unshaped":
        return [Office("lan", devices=n)], None
    return [Office("central", devices=0), Office("branch", devices=n, wan_mbit=100)], "central"


def run(layout, n):
    work = tempfile.mkdtemp(prefix="pd-swarm-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
    try:
        office_list, cdn = offices(layout, n)
        with Fleet(os.path.join(work, "f"), office_list, host_bin, plugin_dir, p2p=True, cdn_office=cdn) as fleet:
            pkg = os.path.join(work, "pkg.bin")
            with open(pkg, "wb") as f:
                for _ in range(size_mib):
                    f.write(os.urandom(1 << 20))
            manifest, url = fleet.publish(pkg)
            first = sorted(fleet.agents)[0]
            # Baselines, same lab, same run: one device alone, then every device at once.
            cpu0, nginx0 = child_cpu(), fleet.nginx.cpu_seconds()
            alone = fleet.default_way(url, devices=[first])[first]
            alone_cpu = (child_cpu() - cpu0) / (size_mib / 1024)
            nginx_cpu = (fleet.nginx.cpu_seconds() - nginx0) / (size_mib / 1024)
            c0 = fleet.counters()
            t = {first: alone} if quick else fleet.default_way(url)
            curl_last = max(t.values())
            curl_origin = size if quick else fleet.counters()["origin"] - c0["origin"]
            # peerdist: every device at once.
            c0 = fleet.counters()
            cpu0 = sum(a.cpu_seconds() for a in fleet.agents.values())
            statuses = fleet.watch(fleet.deploy(manifest, url), timeout=1800, out=io.StringIO())
            pd_cpu = (sum(a.cpu_seconds() for a in fleet.agents.values()) - cpu0) / (n * size_mib / 1024)
            c1 = fleet.counters()
            bad = [n for n, s in statuses.items() if s["state"] != "completed"]
            if bad:
                raise SystemExit("not completed: %s" % {n: statuses[n] for n in bad})
            # Job clocks, not the 0.5 s polling loop: first start to last finish.
            pd_last = (max(s["finished_ms"] for s in statuses.values()) -
                       min(s["started_ms"] for s in statuses.values())) / 1000.0
            pd_origin = c1["origin"] - c0["origin"]
            return {"alone": alone, "alone_cpu": alone_cpu, "nginx_cpu": nginx_cpu, "curl_last": curl_last, "curl_origin": curl_origin,
                    "pd_last": pd_last, "pd_origin": pd_origin, "pd_cpu": pd_cpu}
    finally:
        shutil.rmtree(work, ignore_errors=True)


warm()  # the machine's memory first: bench/warm_memory.py
print("swarm benchmark: %d MiB, agents %s, layouts %s" % (size_mib, counts, layouts))
for layout in layouts:
    for n in counts:
        r = run(layout, n)
        print("\n%s LAN, %d agents" % (layout, n))
        print("  one device alone (curl)        %7.1f s   CPU curl %.2f s/GiB, nginx %.2f s/GiB"
              % (r["alone"], r["alone_cpu"], r["nginx_cpu"]))
        print("  all devices, curl from nginx   last done %7.1f s   origin %6.2f x content" %
              (r["curl_last"], r["curl_origin"] / size))
        print("  all devices, peerdist          last done %7.1f s   origin %6.2f x content   agent CPU %.2f s/GiB delivered" %
              (r["pd_last"], r["pd_origin"] / size, r["pd_cpu"]))
        print("  ratios: peerdist/curl time %.2f, peerdist/alone time %.2f%s, origin bytes peerdist/curl %.3f" %
              (r["pd_last"] / r["curl_last"], r["pd_last"] / r["alone"],
               " (target <= 1.3)" if layout == "branch" else "", r["pd_origin"] / r["curl_origin"]))
        print("  agent CPU per GiB delivered / both ends of one plain HTTP transfer (curl + nginx): %.2f"
              % (r["pd_cpu"] / (r["alone_cpu"] + r["nginx_cpu"])))
        sys.stdout.flush()
