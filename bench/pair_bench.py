#!/usr/bin/env python3
"""One device taking SIZE from one peer in the fleet lab (root: network namespaces): two
agents on one subnet, the first seeded from the CDN, then the second downloads it with the
first as its only source. Reports the time against curl from the CDN on the same subnet
(same run), and CPU (user + system) per GiB delivered: the receiving agent's own (issue #19's
"one device taking 512 MiB from one peer"), the serving agent's, and curl's.
usage: bench/pair_bench.py BUILD_DIR [SIZE_MIB] [ROUNDS]
PD_BENCH_PERF=FILE records both agents with `perf record -g` during each download
(FILE.receiver.N and FILE.sender.N per round) for `perf report -i`."""
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.agent import children_cpu_seconds as child_cpu  # noqa: E402
from netlab.fleet import Fleet  # noqa: E402
from netlab.lab import Office  # noqa: E402
from warm_memory import warm  # noqa: E402

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/dev")
size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 512
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
host_bin = os.environ.get("PD_HOST_BIN", os.path.join(build, "host-sample"))
plugin_dir = os.environ.get("PD_PLUGIN_DIR", os.path.join(build, "plugins"))
gib = size_mib / 1024


warm()  # the machine's memory first: bench/warm_memory.py
work = tempfile.mkdtemp(prefix="pd-pair-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
try:
    rows = []
    with Fleet(os.path.join(work, "f"), [Office("lan", devices=2)], host_bin, plugin_dir, p2p=True) as fleet:
        seeder, receiver = sorted(fleet.agents)
        for r in range(rounds):
            pkg = os.path.join(work, "pkg%d.bin" % r)
            with open(pkg, "wb") as f:
                for _ in range(size_mib):
                    f.write(os.urandom(1 << 20))
            manifest, url = fleet.publish(pkg, name="pkg%d.bin" % r)
            c0, n0 = child_cpu(), fleet.nginx.cpu_seconds()
            curl = fleet.default_way(url, devices=[receiver])[receiver]
            curl_cpu, nginx_cpu = (child_cpu() - c0) / gib, (fleet.nginx.cpu_seconds() - n0) / gib
            st = fleet.watch(fleet.deploy(manifest, url, devices=[seeder]), out=io.StringIO())[seeder]
            assert st["state"] == "completed", st
            s0, r0 = fleet.agents[seeder].cpu_seconds(), fleet.agents[receiver].cpu_seconds()
            perf = []
            if os.environ.get("PD_BENCH_PERF"):
                perf = [subprocess.Popen(["perf", "record", "-q", "-g", "-p", str(fleet.agents[who].proc.pid),
                                          "-o", "%s.%s.%d" % (os.environ["PD_BENCH_PERF"], role, r + 1)])
                        for who, role in ((receiver, "receiver"), (seeder, "sender"))]
            st = fleet.watch(fleet.deploy(manifest, url, devices=[receiver]), out=io.StringIO())[receiver]
            for p in perf:
                p.send_signal(2)
                p.wait()
            assert st["state"] == "completed" and st["bytes_by_source"]["lan"] == size_mib << 20, st
            secs = (st["finished_ms"] - st["started_ms"]) / 1000.0
            rows.append((curl, curl_cpu, nginx_cpu, secs, (fleet.agents[receiver].cpu_seconds() - r0) / gib,
                         (fleet.agents[seeder].cpu_seconds() - s0) / gib))
            os.unlink(pkg)
            print("  round %d: curl %.2f s (CPU %.2f s/GiB, nginx %.2f s/GiB); peerdist %.2f s, receiver %.2f s/GiB,"
                  " sender %.2f s/GiB" % ((r + 1,) + rows[-1]))
            sys.stdout.flush()
    med = [statistics.median(x[i] for x in rows) for i in range(6)]
    both = statistics.median((x[4] + x[5]) / (x[1] + x[2]) for x in rows)
    print("%d MiB, one device from one peer on one subnet, %d rounds, medians:" % (size_mib, rounds))
    print("  curl from the CDN        %6.2f s   CPU curl %.2f s/GiB, nginx %.2f s/GiB" % tuple(med[:3]))
    print("  peerdist from the peer   %6.2f s   receiving agent %.2f s/GiB (target <= 1.5), serving agent %.2f s/GiB"
          % tuple(med[3:]))
    print("  both ends' CPU, peerdist / (curl + nginx): %.2f" % both)
finally:
    shutil.rmtree(work, ignore_errors=True)
