#!/usr/bin/env python3
"""`pd get` from nginx on loopback, as a user runs it (default settings, a fresh cache, the file
delivered to a destination), against `curl -o F && sync F` in the same run, alternating.
Every round is printed, not only the medians: the slow rounds are the finding.
CPU per GiB: user + system of each command (pd and curl + sync).
usage: bench/get_bench.py BUILD_DIR [SIZE_MIB] [ROUNDS] [-- EXTRA pd get ARGS]"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.agent import children_cpu_seconds  # noqa: E402
from netlab.servers import serve_random_file  # noqa: E402
from warm_memory import warm  # noqa: E402

argv = sys.argv[1:]
extra = argv[argv.index("--") + 1:] if "--" in argv else []
argv = argv[:argv.index("--")] if "--" in argv else argv
build = argv[0] if argv else "build/dev"
size_mib = int(argv[1]) if len(argv) > 1 else 512
rounds = int(argv[2]) if len(argv) > 2 else 8
pd = os.path.join(build, "host-sample", "pd")
gib = size_mib / 1024


def run(cmd):
    """Seconds and CPU seconds per GiB of one command."""
    c0 = children_cpu_seconds()
    t = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise SystemExit("%s failed (%d): %s" % (cmd[0], r.returncode, r.stderr[-2000:]))
    secs = time.monotonic() - t
    return secs, (children_cpu_seconds() - c0) / gib


warm()  # the machine's memory first: bench/warm_memory.py
work = tempfile.mkdtemp(prefix="pd-get-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
nginx = None
try:
    nginx, url, _ = serve_random_file(work, size_mib)
    subprocess.run([pd, "publish", work + "/www/file", "--manifest", work + "/file.pdm"], check=True, capture_output=True)
    curl, ours = [], []
    print("size %d MiB from nginx on loopback, %d rounds (seconds, CPU s/GiB)" % (size_mib, rounds))
    for i in range(rounds):
        c = run(["sh", "-c", "curl -s -o '%s/copy' '%s' && sync '%s/copy'" % (work, url, work)])
        os.unlink(work + "/copy")
        shutil.rmtree(work + "/cache", ignore_errors=True)
        p = run([pd, "get", work + "/file.pdm", "--origin", url, "--dest", work + "/out", "--allow-unsigned",
                 "--cache", work + "/cache"] + extra)
        subprocess.run(["cmp", work + "/www/file", work + "/out"], check=True)
        os.unlink(work + "/out")
        curl.append(c)
        ours.append(p)
        print("  round %d: curl + sync %.2f s (%.2f), pd get %.2f s (%.2f), ratio %.2f" % (i + 1, c[0], c[1], p[0], p[1], c[0] / p[0]))
        sys.stdout.flush()
    ratios = [c[0] / p[0] for c, p in zip(curl, ours)]
    print("curl + sync: median %.2f s, CPU %.2f s/GiB" % (statistics.median(x[0] for x in curl), statistics.median(x[1] for x in curl)))
    print("pd get:      median %.2f s, CPU %.2f s/GiB" % (statistics.median(x[0] for x in ours), statistics.median(x[1] for x in ours)))
    print("ratio curl/pd get per round: median %.2f, lowest %.2f (targets: median >= 0.9, none under 0.7)"
          % (statistics.median(ratios), min(ratios)))
finally:
    if nginx:
        nginx.stop()
    shutil.rmtree(work, ignore_errors=True)
