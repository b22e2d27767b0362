"""Fleet orchestration end to end on a small lab: publish, deploy to some and all devices,
watch per office, report table and PNG chart."""
import io
import os

import pytest

from netlab.fleet import Fleet, chart, table
from netlab.lab import Office


@pytest.mark.parametrize("namespaces", [None, False], ids=["lab", "loopback"])
def test_publish_deploy_watch_report(tmp_path, host_bin, plugin_dir, namespaces):
    offices = [Office("central", devices=1), Office("branch", devices=2, wan_mbit=200)]
    with Fleet(tmp_path / "fleet", offices, host_bin, plugin_dir, namespaces=namespaces) as fleet:
        pkg = tmp_path / "pkg.bin"
        data = os.urandom(6 << 20)
        pkg.write_bytes(data)
        manifest, url = fleet.publish(str(pkg))
        c0 = fleet.counters()
        some = fleet.deploy(manifest, url, devices=["branch-1"], dest_dir=str(tmp_path))
        assert list(some) == ["branch-1"]
        out = io.StringIO()
        statuses = fleet.watch(some, timeout=120, out=out)
        assert statuses["branch-1"]["state"] == "completed"
        assert "branch" in out.getvalue() and "1/1 devices done" in out.getvalue()
        assert (tmp_path / "branch-1.bin").read_bytes() == data
        jobs = fleet.deploy(manifest, url)
        assert set(jobs) == {"central-1", "branch-1", "branch-2"}
        statuses = fleet.watch(jobs, timeout=120, out=io.StringIO())
        assert all(s["state"] == "completed" for s in statuses.values())
        c1 = fleet.counters()
        delta = {k: c1[k] - c0[k] for k in c0}
        # branch-1 already had it: 1 (first deploy) + 2 (central-1, branch-2) copies from the CDN.
        # (plus the one-byte probe each stream makes when it opens)
        assert 3 * len(data) <= delta["origin"] <= 3 * len(data) + 16
        if fleet.lab.namespaces:
            assert delta["wan_in:branch"] >= 2 * len(data)
        runs = [("peerdist", 1.0, {n: 1.0 for n in statuses}, delta)]
        text = table(fleet, len(data), runs)
        assert "origin egress" in text and "branch" in text
        png = tmp_path / "report.png"
        chart(fleet, str(png), statuses, runs)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
