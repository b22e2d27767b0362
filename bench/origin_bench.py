#!/usr/bin/env python3
"""Origin benchmark: one device downloading SIZE from nginx on loopback.

Baselines measured in the same run, alternating rounds, medians reported:
  * curl -o FILE + sync FILE  vs  peerdist (every block verified, durable, delivered)
  * peerdist with 8 parallel range connections  vs  the same with 1
usage: bench/origin_bench.py BUILD_DIR [SIZE_MIB] [ROUNDS]
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.servers import serve_random_file  # noqa: E402
from warm_memory import warm  # noqa: E402

build = sys.argv[1] if len(sys.argv) > 1 else "build/dev"
size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
bench = os.path.join(build, "bench", "pd_bench_download")

warm()  # the machine's memory first: bench/warm_memory.py
work = tempfile.mkdtemp(prefix="pd-origin-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
try:
    nginx, url, _ = serve_random_file(work, size_mib)

    def timed(cmd, env=None):
        t = time.monotonic()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.monotonic() - t

    def ours(connections, fast=False, origin=None):
        shutil.rmtree(work + "/cache", ignore_errors=True)
        if os.path.exists(work + "/out"):
            os.unlink(work + "/out")
        env = dict(os.environ, PD_BENCH_ORIGIN=origin or url,
                   PD_BENCH_SETTINGS="plugin.origin.max_connections=%d,job.max_pieces_in_flight=%d%s"
                   % (connections, max(8, connections), ",job.reverify=1" if fast else ""))
        cmd = [bench, work + "/www/file", work + "/cache", work + "/out"] + (["hardlink"] if fast else [])
        out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
        return float(out.strip())

    capped = nginx.url("/capped/file")
    res = {"curl": [], "pd8": [], "pd1": [], "pd8fast": [], "cap1": [], "cap8": []}
    for _ in range(rounds):
        res["curl"].append(timed(["sh", "-c", "curl -s -o '%s/copy' '%s' && sync '%s/copy'" % (work, url, work)]))
        os.unlink(work + "/copy")
        res["pd8"].append(ours(8))
        res["pd8fast"].append(ours(8, fast=True))
        res["pd1"].append(ours(1))
        res["cap8"].append(ours(8, origin=capped))
        res["cap1"].append(ours(1, origin=capped))
    subprocess.run(["cmp", work + "/www/file", work + "/out"], check=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    mbps = {k: size_mib / v for k, v in med.items()}
    print("size %d MiB from nginx on loopback, %d rounds, medians" % (size_mib, rounds))
    print("  curl -o + sync                         %7.1f MiB/s" % mbps["curl"])
    print("  peerdist, 8 connections (default)      %7.1f MiB/s  ratio to curl %.2f (target >= 0.9)"
          % (mbps["pd8"], med["curl"] / med["pd8"]))
    print("  peerdist, 8 conn., hardlink, reverify=1 %6.1f MiB/s  ratio to curl %.2f (target >= 0.9)"
          % (mbps["pd8fast"], med["curl"] / med["pd8fast"]))
    print("  peerdist, 1 connection                 %7.1f MiB/s  8 connections vs 1: %.2fx"
          % (mbps["pd1"], med["pd1"] / med["pd8"]))
    print("  CDN capping each connection at 16 MB/s (nginx limit_rate):")
    print("    peerdist, 1 connection               %7.1f MiB/s" % mbps["cap1"])
    print("    peerdist, 8 connections              %7.1f MiB/s  8 connections vs 1: %.2fx"
          % (mbps["cap8"], med["cap1"] / med["cap8"]))
    nginx.stop()
finally:
    shutil.rmtree(work, ignore_errors=True)
