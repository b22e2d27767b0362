#!/usr/bin/env python3
"""Peer-to-peer benchmark on loopback: one session downloads SIZE from one peer over the
secure channel (every block verified, durable, delivered), against `curl` from nginx on the
same loopback in the same run (medians of ROUNDS). CPU per GiB: user + system over the job
of both sessions (one process: the sender's sealing and reading counted with the receiver's
work), and of curl + sync beside it (nginx's sending side is not counted).
usage: bench/peer_bench.py BUILD_DIR [SIZE_MIB] [ROUNDS]"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.agent import children_cpu_seconds as child_cpu  # noqa: E402
from netlab.servers import serve_random_file  # noqa: E402
from warm_memory import warm  # noqa: E402

build = sys.argv[1] if len(sys.argv) > 1 else "build/dev"
size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
warm()  # the machine's memory first: bench/warm_memory.py
work = tempfile.mkdtemp(prefix="pd-peer-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
try:
    nginx, url, _ = serve_random_file(work, size_mib)
    curl, curl_cpu, peer, cpu = [], [], [], []
    gib = size_mib / 1024
    for _ in range(rounds):
        t, c = time.monotonic(), child_cpu()
        subprocess.run(["sh", "-c", "curl -s -o '%s/copy' '%s' && sync '%s/copy'" % (work, url, work)], check=True)
        curl.append(time.monotonic() - t)
        curl_cpu.append((child_cpu() - c) / gib)
        os.unlink(work + "/copy")
        for d in ("seed", "leech"):
            shutil.rmtree(os.path.join(work, d), ignore_errors=True)
        out = subprocess.run([os.path.join(build, "bench", "pd_bench_peer"), work + "/www/file", work + "/seed",
                              work + "/leech", work + "/out"], check=True, capture_output=True, text=True).stdout
        fields = [float(x) for x in out.split()]
        secs, job_cpu = fields[0], fields[1] if len(fields) > 1 else float("nan")  # older builds print no CPU
        peer.append(secs)
        cpu.append(job_cpu / gib)
        subprocess.run(["cmp", work + "/www/file", work + "/out"], check=True)
        os.unlink(work + "/out")
    c, p = statistics.median(curl), statistics.median(peer)
    print("size %d MiB on loopback, %d rounds, medians" % (size_mib, rounds))
    print("  curl from nginx + sync             %7.1f MiB/s  CPU %.2f s/GiB (curl and sync)"
          % (size_mib / c, statistics.median(curl_cpu)))
    print("  peerdist from one peer (encrypted) %7.1f MiB/s  ratio to curl %.2f  CPU %.2f s/GiB (both sessions, over the job)"
          % (size_mib / p, c / p, statistics.median(cpu)))
finally:
    if "nginx" in globals():
        nginx.stop()
    shutil.rmtree(work, ignore_errors=True)
