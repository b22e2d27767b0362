"""A mixed fleet in the lab: two Linux pd-agents and two Windows pd-agent.exes under Wine,
each in its own device namespace (and each Windows one with its own Wine prefix) on one
subnet, find each other by branchcache discovery and share signed packages. A Windows
device serves a Linux one and the reverse; the origin serves one copy of each package;
every device verifies every block (a job completes only verified, and none rejected one).
Run by the windows-test preset (tests/CMakeLists.txt), which gives it both builds."""
import os

import pytest

from netlab.fleet import Fleet
from netlab.lab import Office
from netlab.wine_agent import WineAgent, winpath

MiB = 1 << 20
SIZE = 8 * MiB


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_windows_and_linux_agents_share_verified_blocks_both_ways(tmp_path, linux_build, windows_build):
    (host_bin, plugin_dir), (win_bin, win_plugins) = linux_build, windows_build
    with Fleet(tmp_path / "f", [Office("lan", devices=4)], host_bin, plugin_dir, p2p="branchcache") as fleet:
        # lan-3 and lan-4 become Windows devices: their Linux agents leave, pd-agent.exe takes
        # each place (same fleet key and peer port, the same trusted publisher), each in its
        # own namespace with its own Wine prefix.
        linux_cfg = fleet.agents["lan-1"].config
        windows = []
        for name in ("lan-3", "lan-4"):
            fleet.agents.pop(name).stop()
            win = WineAgent(win_bin, tmp_path / "f" / "agents" / (name + "-windows"), name, win_plugins,
                            netns=fleet.lab.device(name).ns, extra={
                                "fleet_key_file": winpath(linux_cfg["fleet_key_file"]),
                                "listen": "0.0.0.0:34760",
                                "plugins": {"branchcache": {"enabled": 1}},
                            })
            win.config["settings"]["trust.publisher_keys"] = fleet.publisher_public
            win.start()
            fleet.lab.procs.append(win.proc)
            windows.append(win)
        win_a, win_b = windows
        linux_a, linux_b = fleet.agents["lan-1"], fleet.agents["lan-2"]

        def check(status, data, dest, who):
            assert status["state"] == "completed", (who, status)
            assert status["blocks_rejected"] == 0, (who, status)
            assert open(dest, "rb").read() == data, who

        def win_get(agent, manifest, url, dest):
            job = agent.ok("download", manifest=winpath(manifest), origin=url, dest=winpath(dest))["job"]
            return agent.wait_job(job, timeout=180)

        def linux_get(agent, manifest, url, dest):
            job = agent.ok("download", manifest=manifest, origin=url, dest=str(dest))["job"]
            return agent.wait_job(job, timeout=180)

        # Package one: a Windows device first (from the origin), then a Linux device, which can
        # only get it from that Windows device.
        data1, manifest1, url1 = fleet.publish_random(SIZE, "one.bin")
        origin0 = fleet.counters()["origin"]
        check(win_get(win_a, manifest1, url1, tmp_path / "w1.bin"), data1, tmp_path / "w1.bin", "windows a, package one")
        st = linux_get(linux_a, manifest1, url1, tmp_path / "a1.bin")
        check(st, data1, tmp_path / "a1.bin", "linux a, package one")
        assert st["bytes_by_source"]["lan"] >= SIZE, ("the Linux device did not take package one from the LAN", st)
        served = win_a.ok("facts")["serving"]
        assert served["bytes_uploaded"] >= SIZE // 2, ("the Windows device served little of package one", served)

        # Package two: a Linux device first, then both Windows devices take it from the LAN.
        data2, manifest2, url2 = fleet.publish_random(SIZE, "two.bin")
        check(linux_get(linux_b, manifest2, url2, tmp_path / "b2.bin"), data2, tmp_path / "b2.bin", "linux b, package two")
        for i, win in enumerate(windows):
            dest = tmp_path / ("w2-%d.bin" % i)
            st = win_get(win, manifest2, url2, dest)
            check(st, data2, dest, "windows %d, package two" % i)
            assert st["bytes_by_source"]["lan"] >= SIZE, ("a Windows device did not take package two from the LAN", st)
        linux_served = linux_b.ok("facts")["serving"]["bytes_uploaded"]
        assert linux_served >= SIZE // 2, ("the Linux seeder served little of package two", linux_served)

        # One copy of each package left the origin.
        origin_bytes = fleet.counters()["origin"] - origin0
        assert origin_bytes <= 2 * SIZE * 1.05, origin_bytes
        print("mixed fleet: origin served %.2f copies for 2 packages; Windows a uploaded %d bytes of package one, "
              "the Linux seeder %d bytes of package two" % (origin_bytes / SIZE, served["bytes_uploaded"], linux_served))


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_windows_and_linux_agents_exchange_packages_over_branchcache_wire_mode(tmp_path, linux_build, windows_build):
    """Windows' own protocols between the two builds: no fleet key, so nothing of peerdist's
    wire — [MS-PCCRD] multicast Probes and [MS-PCCRR] blocks under AES, both ways."""
    import subprocess
    (host_bin, plugin_dir), (win_bin, win_plugins) = linux_build, windows_build
    wire = {"plugin.branchcache.windows_peers": "1"}
    with Fleet(tmp_path / "f", [Office("lan", devices=2)], host_bin, plugin_dir, agent_settings=wire) as fleet:
        fleet.agents.pop("lan-2").stop()
        win = WineAgent(win_bin, tmp_path / "f" / "agents" / "lan-2-windows", "lan-2", win_plugins,
                        netns=fleet.lab.device("lan-2").ns)
        win.config["settings"]["trust.publisher_keys"] = fleet.publisher_public
        win.config["settings"].update(wire)
        win.start()
        fleet.lab.procs.append(win.proc)
        linux = fleet.agents["lan-1"]

        def content_info(name):
            path = tmp_path / (name + ".ci")
            path.write_text(subprocess.run([os.path.join(host_bin, "pd"), "content-info", os.path.join(fleet.www, name),
                                            "--version", "1", "--server-passphrase", "00112233"],
                                           check=True, capture_output=True, text=True, timeout=120).stdout)
            return path

        def get(agent, manifest, url, dest, info, windows):
            p = winpath if windows else str
            job = agent.ok("download", manifest=p(manifest), origin=url, dest=p(dest), content_info=p(info))["job"]
            st = agent.wait_job(job, timeout=180)
            assert st["state"] == "completed" and st["blocks_rejected"] == 0, st
            return st

        # Linux first (from the origin), then Windows from Linux; then the reverse.
        for first, then, name in ((linux, win, "one.bin"), (win, linux, "two.bin")):
            data, manifest, url = fleet.publish_random(SIZE, name)
            info = content_info(name)
            get(first, manifest, url, tmp_path / ("first-" + name), info, first is win)
            origin0 = fleet.counters()["origin"]
            st = get(then, manifest, url, tmp_path / ("then-" + name), info, then is win)
            assert st["bytes_by_source"]["lan"] == SIZE and st["bytes_by_source"]["origin"] == 0, (name, st)
            assert open(tmp_path / ("then-" + name), "rb").read() == data, name
            assert fleet.counters()["origin"] - origin0 < 64 * 1024, name
