"""A mixed fleet in the lab: Linux pd-agents and a Windows pd-agent.exe under Wine, each in
its own device namespace on one subnet, find each other by branchcache discovery and share
signed packages. A Windows device serves a Linux one and the reverse; the origin serves one
copy of each package; every device verifies every block (a job completes only verified, and
none rejected a block). Run by the windows-test preset (tests/CMakeLists.txt), which sets
the four directories below."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # netlab

from netlab.fleet import Fleet  # noqa: E402
from netlab.lab import Office  # noqa: E402
from netlab.wine_agent import WineAgent, winpath  # noqa: E402

MiB = 1 << 20
SIZE = 8 * MiB


def env_dir(name):
    path = os.environ.get(name)
    if not path:
        pytest.fail("%s is not set: run through ctest --preset windows-test" % name, pytrace=False)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_windows_and_linux_agents_share_verified_blocks_both_ways(tmp_path):
    host_bin, plugin_dir = env_dir("PD_HOST_BIN"), env_dir("PD_PLUGIN_DIR")
    win_bin, win_plugins = env_dir("PD_WINDOWS_BIN"), env_dir("PD_WINDOWS_PLUGIN_DIR")
    with Fleet(tmp_path / "f", [Office("lan", devices=3)], host_bin, plugin_dir, p2p="branchcache") as fleet:
        # lan-3 becomes a Windows device: its Linux agent leaves, pd-agent.exe takes its place
        # (same fleet key, same peer port, trusting the same publisher).
        fleet.agents.pop("lan-3").stop()
        device = fleet.lab.device("lan-3")
        linux_cfg = fleet.agents["lan-1"].config
        win = WineAgent(win_bin, tmp_path / "f" / "agents" / "lan-3-windows", "lan-3", win_plugins, netns=device.ns, extra={
            "fleet_key_file": winpath(linux_cfg["fleet_key_file"]),
            "listen": "0.0.0.0:34760",
            "plugins": {"branchcache": {"enabled": 1}},
        })
        win.config["settings"]["trust.publisher_keys"] = fleet.publisher_public
        win.start()
        fleet.lab.procs.append(win.proc)
        linux_a, linux_b = fleet.agents["lan-1"], fleet.agents["lan-2"]

        def check(status, data, dest, who):
            assert status["state"] == "completed", (who, status)
            assert status["blocks_rejected"] == 0, (who, status)
            assert open(dest, "rb").read() == data, who

        # Package one: the Windows device first (from the origin), then a Linux device, which
        # can only get it from the Windows device.
        data1, manifest1, url1 = fleet.publish_random(SIZE, "one.bin")
        origin0 = fleet.counters()["origin"]
        job = win.ok("download", manifest=winpath(manifest1), origin=url1, dest=winpath(tmp_path / "w1.bin"))["job"]
        st = win.wait_job(job)
        check(st, data1, tmp_path / "w1.bin", "windows, package one")
        job = linux_a.ok("download", manifest=manifest1, origin=url1, dest=str(tmp_path / "a1.bin"))["job"]
        st = linux_a.wait_job(job, timeout=180)
        check(st, data1, tmp_path / "a1.bin", "linux, package one")
        assert st["bytes_by_source"]["lan"] >= SIZE, ("the Linux device did not take package one from the Windows one", st)
        served = win.ok("facts")["serving"]
        assert served["bytes_uploaded"] >= SIZE, served

        # Package two: a Linux device first, then the Windows device takes it from the LAN.
        data2, manifest2, url2 = fleet.publish_random(SIZE, "two.bin")
        job = linux_b.ok("download", manifest=manifest2, origin=url2, dest=str(tmp_path / "b2.bin"))["job"]
        check(linux_b.wait_job(job, timeout=180), data2, tmp_path / "b2.bin", "linux, package two")
        job = win.ok("download", manifest=winpath(manifest2), origin=url2, dest=winpath(tmp_path / "w2.bin"))["job"]
        st = win.wait_job(job)
        check(st, data2, tmp_path / "w2.bin", "windows, package two")
        assert st["bytes_by_source"]["lan"] >= SIZE, ("the Windows device did not take package two from the LAN", st)

        # One copy of each package left the origin.
        origin_bytes = fleet.counters()["origin"] - origin0
        assert origin_bytes <= 2 * SIZE * 1.05, origin_bytes
        print("mixed fleet: origin served %.2f copies for 2 packages; the Windows device uploaded %d bytes"
              % (origin_bytes / SIZE, served["bytes_uploaded"]))
