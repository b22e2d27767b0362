"""The fleet lab itself: real namespaces, shaping, counters, and guaranteed teardown."""
import os
import subprocess
import time

import pytest

from netlab.agent import Agent
from netlab.lab import Lab, LabError, Office
from netlab.servers import Nginx

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def all_pd_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {l.split()[0] for l in out.splitlines() if l.startswith("pd")}


@root_only
def test_offices_route_through_shaped_wan_links(tmp_path):
    before = all_pd_namespaces()
    with Lab(tmp_path / "lab", [Office("central", devices=1), Office("branch", devices=2, wan_mbit=40)]) as lab:
        www = tmp_path / "www"
        www.mkdir()
        (www / "f.bin").write_bytes(os.urandom(4 << 20))
        cdn = lab.add_device("central", "cdn")
        nginx = Nginx(tmp_path / "nginx", www, listen_ip=cdn.ip, netns=cdn.ns).start()
        dev = lab.device("branch-1")
        rx0, tx0 = lab.wan_bytes("branch")
        t0 = time.monotonic()
        p = lab.run(dev, ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", nginx.url("/f.bin")])
        elapsed = time.monotonic() - t0
        assert p.stdout == str(4 << 20), p.stderr
        rx1, tx1 = lab.wan_bytes("branch")
        assert rx1 - rx0 >= 4 << 20  # the bytes crossed the branch's WAN link
        # 4 MiB over 40 Mbit/s takes ~0.84 s; unshaped loopback would take milliseconds.
        assert 0.6 < elapsed < 5, elapsed
        # Inside the office the LAN is not shaped and does not cross the WAN link.
        lan = lab.run(lab.device("branch-2"), ["ip", "route", "get", lab.device("branch-1").ip])
        assert "via" not in lan.stdout
        nginx.stop()
        assert lab.namespaces_alive()
    assert all_pd_namespaces() == before


@root_only
def test_teardown_after_a_failing_test_leaves_nothing(tmp_path, host_bin, plugin_dir):
    before = all_pd_namespaces()
    lab = None
    with pytest.raises(RuntimeError):
        with Lab(tmp_path / "lab", [Office("central", devices=2)]) as lab:
            a = Agent(os.path.join(host_bin, "pd-agent"), tmp_path / "a", plugin_dir=plugin_dir,
                      netns=lab.device("central-1").ns)
            a.write_config()
            lab.spawn(lab.device("central-1"), a.command(), log_path=str(tmp_path / "a.log"))
            raise RuntimeError("the test failed")
    assert lab is not None
    assert lab.namespaces_alive() == []
    assert all_pd_namespaces() == before
    assert all(p.poll() is not None for p in lab.procs) or lab.procs == []
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "a")], capture_output=True, text=True).stdout
    assert out.strip() == "", "an agent survived the teardown"


def test_loopback_mode_without_namespaces(tmp_path, host_bin, plugin_dir):
    with Lab(tmp_path / "lab", [Office("central", devices=2), Office("branch", devices=1, wan_mbit=10)],
             namespaces=False) as lab:
        assert [d.ip for d in lab.devices] == ["127.0.0.1"] * 3
        assert lab.wan_bytes("branch") is None
        agents = [Agent(os.path.join(host_bin, "pd-agent"), tmp_path / d.name, name=d.name, plugin_dir=plugin_dir)
                  for d in lab.devices]
        for a in agents:
            a.start()
        assert all(a.ok("version")["ok"] for a in agents)
        for a in agents:
            assert a.stop() == 0


def test_unknown_names_are_errors(tmp_path):
    with Lab(tmp_path / "lab", [Office("central", devices=1)], namespaces=False) as lab:
        with pytest.raises(LabError):
            lab.device("nope")
        with pytest.raises(LabError):
            lab.office("nope")
