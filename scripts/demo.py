#!/usr/bin/env python3
"""The main job (Foundation + Origin stage): a generated package is published to an nginx
origin (the CDN) and downloaded by a device with the `pd` CLI — live progress bar, every
block verified, durable and delivered — then compared with the default way (curl from the
CDN) measured in the same run. The fleet-lab demo with offices arrives with the lab issue.
usage: scripts/demo.py STAGE_DIR HOST_BIN_DIR [SIZE_MIB]"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.servers import Nginx  # noqa: E402

stage, host_bin = sys.argv[1], sys.argv[2]
size_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 256
pd = os.path.join(host_bin, "pd")
plugins = os.path.join(stage, "lib", "peerdist", "plugins")

work = tempfile.mkdtemp(prefix="peerdist-demo.")
nginx = None
try:
    cdn = os.path.join(work, "cdn")
    os.makedirs(cdn)
    pkg = os.path.join(cdn, "Setup-1.0.bin")
    print("== generating a %d MiB package" % size_mib, flush=True)
    with open(pkg, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    nginx = Nginx(os.path.join(work, "nginx"), cdn).start()
    url = nginx.url("/Setup-1.0.bin")
    print("== CDN: nginx at %s" % url, flush=True)

    print("== publishing", flush=True)
    manifest = os.path.join(work, "Setup-1.0.pdm")
    cid = subprocess.run([pd, "publish", pkg, "--cache", os.path.join(work, "publisher"), "--manifest", manifest,
                          "--origin", url], check=True, capture_output=True, text=True).stdout.strip()
    print("content id " + cid, flush=True)

    print("== device downloads through peerdist (origin plugin, HTTP ranges)", flush=True)
    t0 = time.monotonic()
    subprocess.run([pd, "get", manifest, "--cache", os.path.join(work, "device"), "--plugins", plugins,
                    "--origin", url, "--dest", os.path.join(work, "Setup-1.0.bin")], check=True)
    t_pd = time.monotonic() - t0
    egress_pd = nginx.bytes_sent("/Setup-1.0.bin")
    subprocess.run(["cmp", pkg, os.path.join(work, "Setup-1.0.bin")], check=True)

    print("== the default way: curl from the CDN", flush=True)
    t0 = time.monotonic()
    subprocess.run(["curl", "-s", "-o", os.path.join(work, "curl.bin"), url], check=True)
    subprocess.run(["sync", os.path.join(work, "curl.bin")], check=True)
    t_curl = time.monotonic() - t0
    egress_curl = nginx.bytes_sent("/Setup-1.0.bin") - egress_pd

    mib = float(1 << 20)
    print("\n== summary (%d MiB package, one device)" % size_mib)
    print("  %-44s %7s %10s %16s" % ("", "time", "MiB/s", "origin egress"))
    print("  %-44s %6.2fs %10.1f %12.1f MiB" % ("peerdist (verified, durable, delivered)", t_pd, size_mib / t_pd,
                                               egress_pd / mib))
    print("  %-44s %6.2fs %10.1f %12.1f MiB" % ("curl + sync (nothing verified)", t_curl, size_mib / t_curl,
                                               egress_curl / mib))
    print("  origin egress per device: %.3f x the content (ranges, no waste)" % (egress_pd / (size_mib * mib)))
    print("  peer-to-peer sharing across a fleet arrives with the branchcache and hierarchy backends.")
finally:
    if nginx:
        nginx.stop()
    shutil.rmtree(work, ignore_errors=True)
