#!/usr/bin/env python3
"""BranchCache's wire mode against peerdist's own swarm, in one run (root: network namespaces):
one device takes SIZE from one peer on one subnet, once with two agents sharing a fleet key
(the secure channel, peerdist's wire) and once with two agents in BranchCache wire mode
without one ([MS-PCCRD] multicast Probes, [MS-PCCRR] GETBLKS, AES-128 per block). Reports the
time, the receiving and the serving agent's CPU (user + system) per GiB delivered, and the
wire mode's figures as ratios to the swarm's.
usage: bench/wire_bench.py BUILD_DIR [SIZE_MIB] [ROUNDS]"""
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.fleet import Fleet  # noqa: E402
from netlab.lab import Office  # noqa: E402
from warm_memory import warm  # noqa: E402

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/dev")
size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 512
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
host_bin = os.environ.get("PD_HOST_BIN", os.path.join(build, "host-sample"))
plugin_dir = os.environ.get("PD_PLUGIN_DIR", os.path.join(build, "plugins"))
gib = size_mib / 1024
MODES = {"swarm": {"p2p": True},
         "wire": {"agent_settings": {"plugin.branchcache.windows_peers": "1"}}}


def one_round(fleet, work, r, mode):
    """Seeds SIZE on the first agent from the CDN, then times the second taking it from the
    first; returns (seconds, receiver CPU s/GiB, sender CPU s/GiB)."""
    seeder, receiver = sorted(fleet.agents)
    pkg = os.path.join(work, "%s%d.bin" % (mode, r))
    with open(pkg, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    manifest, url = fleet.publish(pkg, name=os.path.basename(pkg))
    info = pkg + ".ci"
    with open(info, "w") as f:
        f.write(subprocess.run([os.path.join(host_bin, "pd"), "content-info", pkg, "--version", "1",
                                "--server-passphrase", os.urandom(16).hex()],
                               check=True, capture_output=True, text=True, timeout=600).stdout)
    os.unlink(pkg)
    ci = info if mode == "wire" else None
    st = fleet.watch(fleet.deploy(manifest, url, devices=[seeder], content_info=ci), out=io.StringIO())[seeder]
    assert st["state"] == "completed", st
    s0, r0 = fleet.agents[seeder].cpu_seconds(), fleet.agents[receiver].cpu_seconds()
    st = fleet.watch(fleet.deploy(manifest, url, devices=[receiver], content_info=ci), out=io.StringIO())[receiver]
    assert st["state"] == "completed" and st["bytes_by_source"]["lan"] == size_mib << 20, st
    return ((st["finished_ms"] - st["started_ms"]) / 1000.0, (fleet.agents[receiver].cpu_seconds() - r0) / gib,
            (fleet.agents[seeder].cpu_seconds() - s0) / gib)


warm()  # the machine's memory first: bench/warm_memory.py
work = tempfile.mkdtemp(prefix="pd-wire-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
try:
    rows = {m: [] for m in MODES}
    for r in range(rounds):
        for mode, kw in MODES.items():  # alternated, so both see the same machine
            with Fleet(os.path.join(work, "%s%d" % (mode, r)), [Office("lan", devices=2)], host_bin, plugin_dir, **kw) as fleet:
                rows[mode].append(one_round(fleet, work, r, mode))
            print("  round %d %-5s: %.2f s, receiver %.2f CPU s/GiB, sender %.2f CPU s/GiB" % ((r + 1, mode) + rows[mode][-1]))
            sys.stdout.flush()
    med = {m: [statistics.median(x[i] for x in rows[m]) for i in range(3)] for m in MODES}
    print("%d MiB, one device from one peer on one subnet, %d rounds, medians:" % (size_mib, rounds))
    for m in MODES:
        print("  %-5s %6.2f s   receiver %.2f CPU s/GiB, sender %.2f CPU s/GiB" % ((m,) + tuple(med[m])))
    ratio = [statistics.median(w[i] / s[i] for w, s in zip(rows["wire"], rows["swarm"])) for i in range(3)]
    print("  wire / swarm (median of per-round ratios): time %.2f, receiver CPU %.2f, sender CPU %.2f" % tuple(ratio))
finally:
    shutil.rmtree(work, ignore_errors=True)
