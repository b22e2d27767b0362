"""Hierarchy mode in the fleet lab: a real pd-coordinator in the central office knows the
office tree; each branch elects an RVP that pulls the content over its WAN link once, and
the branch's other devices fetch it from inside the office."""
import io
import os

import pytest

from netlab.fleet import Fleet
from netlab.lab import Office

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
MiB = 1 << 20
# Per frame on the lab's WAN veths: Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12. The link
# counters count frames; with a 1500-byte MTU this framing alone is 4.6% of the payload.
FRAME_OVERHEAD = 66


@root_only
def test_content_crosses_each_wan_link_once_and_only_the_top_office_uses_the_origin(tmp_path, host_bin, plugin_dir):
    wan_mbit = 20
    offices = [Office("central", devices=2),
               Office("branch-a", devices=3, wan_mbit=wan_mbit, parent="central"),
               Office("branch-b", devices=3, wan_mbit=wan_mbit, parent="central")]
    with Fleet(tmp_path / "f", offices, host_bin, plugin_dir, p2p="hierarchy") as fleet:
        size = 64 * MiB
        pkg = tmp_path / "pkg.bin"
        data = os.urandom(size)
        pkg.write_bytes(data)
        manifest, url = fleet.publish(str(pkg))
        c0 = fleet.counters()
        statuses = fleet.watch(fleet.deploy(manifest, url, dest_dir=str(tmp_path)), timeout=300, out=io.StringIO())
        c1 = fleet.counters()
        for name, s in statuses.items():
            assert s["state"] == "completed", (name, s)
            assert (tmp_path / (name + ".bin")).read_bytes() == data
        origin = (c1["origin"] - c0["origin"]) / size
        start = min(s["started_ms"] for s in statuses.values())
        report = ["origin %.3f x" % origin]
        for office in ("branch-a", "branch-b"):
            frames = c1["wan_in_packets:" + office] - c0["wan_in_packets:" + office]
            raw = c1["wan_in:" + office] - c0["wan_in:" + office]
            wan_in = (raw - frames * FRAME_OVERHEAD) / size  # what TCP carried into the office
            mine = [s for n, s in statuses.items() if n.startswith(office)]
            last = (max(s["finished_ms"] for s in mine) - start) / 1000.0
            bound = size * 8 / (wan_mbit * 1e6)
            report.append("%s: WAN in %.3f x (%.3f x with framing), last done %.1f s = %.2f x F/W" % (
                office, wan_in, raw / size, last, last / bound))
            assert sum(s["bytes_by_source"]["origin"] for s in mine) == 0, (office, mine)
            assert wan_in <= 1.05, report
            assert last <= 1.25 * bound, report
        print("; ".join(report))
        assert origin <= 1.05, report
        health = fleet.admin("health")
        assert health.returncode == 0 and '"devices": 8' in health.stdout, health.stdout + health.stderr
