"""branchcache in the fleet lab: agents in network namespaces on one subnet find each other
by multicast (keyed labels, no server) and share verified blocks over the secure channel;
and, in the BranchCache wire mode, by Windows' own PCCRD and PCCRR."""
import io
import json
import os
import subprocess
import sys

import pytest

from netlab.agent import write_key
from netlab.fleet import Fleet
from netlab.lab import Office

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def seed(fleet, manifest, url, device):
    """One device downloads the package alone (from the CDN) before the others start."""
    st = fleet.watch(fleet.deploy(manifest, url, devices=[device]), out=io.StringIO())[device]
    assert st["state"] == "completed", st
    return st


@root_only
def test_devices_on_a_subnet_share_blocks_found_by_multicast(tmp_path, host_bin, plugin_dir):
    with Fleet(tmp_path / "f", [Office("office", devices=4)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(16 << 20)
        c0 = fleet.counters()
        st = seed(fleet, manifest, url, "office-1")
        assert st["bytes_by_source"]["origin"] == len(data)
        rest = fleet.deploy(manifest, url, devices=["office-2", "office-3", "office-4"], dest_dir=str(tmp_path))
        statuses = fleet.watch(rest, timeout=120, out=io.StringIO())
        for name, s in statuses.items():
            assert s["state"] == "completed", (name, s)
            assert s["bytes_by_source"]["lan"] == len(data), (name, s["bytes_by_source"])
            assert s["bytes_by_source"]["origin"] == 0, (name, s["bytes_by_source"])
            assert (tmp_path / (name + ".bin")).read_bytes() == data
        c1 = fleet.counters()
        egress = c1["origin"] - c0["origin"]
        assert egress <= 1.01 * len(data), egress  # one copy from the CDN for four devices
        served = sum(a.ok("facts")["serving"]["bytes_uploaded"] for a in fleet.agents.values())
        # Every LAN byte was served by some agent (end-game may send a few blocks twice).
        assert 3 * len(data) <= served <= 3.1 * len(data), served


@root_only
def test_a_device_with_another_fleet_key_gets_nothing_from_peers(tmp_path, host_bin, plugin_dir):
    with Fleet(tmp_path / "f", [Office("office", devices=2)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(4 << 20)
        seed(fleet, manifest, url, "office-1")
        # Restart office-2 with a different key: its queries carry labels nobody can match,
        # and a direct connection would fail the handshake.
        stranger = fleet.agents["office-2"]
        stranger.stop()
        other = tmp_path / "other.key"
        write_key(other)
        stranger.config["fleet_key_file"] = str(other)
        stranger.start()
        fleet.lab.procs.append(stranger.proc)
        st = fleet.watch(fleet.deploy(manifest, url, devices=["office-2"]), out=io.StringIO())["office-2"]
        assert st["state"] == "completed"
        assert st["bytes_by_source"]["lan"] == 0 and st["bytes_by_source"]["origin"] == len(data)


def test_loopback_fleet_shares_through_static_peers(tmp_path, host_bin, plugin_dir):
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, namespaces=False,
               p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(4 << 20)
        assert seed(fleet, manifest, url, "office-1")["bytes_by_source"]["origin"] == len(data)
        statuses = fleet.watch(fleet.deploy(manifest, url, devices=["office-2", "office-3"]), out=io.StringIO())
        for s in statuses.values():
            assert s["state"] == "completed" and s["bytes_by_source"]["lan"] == len(data), s


def content_file(agent, manifest):
    import peerdist
    cid = peerdist.Manifest.read(manifest).id
    return os.path.join(agent.config["cache_dir"], "data", cid + ".data")


@root_only
def test_a_peer_serving_corrupted_blocks_is_banned_and_everyone_completes(tmp_path, host_bin, plugin_dir):
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(8 << 20)
        seed(fleet, manifest, url, "office-1")
        # office-1's disk rots under it: block 5 changes, its index still says verified.
        path = content_file(fleet.agents["office-1"], manifest)
        with open(path, "r+b") as f:
            f.seek(5 * 65536 + 3)
            b = f.read(1)
            f.seek(5 * 65536 + 3)
            f.write(bytes([b[0] ^ 0xFF]))
        statuses = fleet.watch(fleet.deploy(manifest, url, devices=["office-2", "office-3"], dest_dir=str(tmp_path)),
                               out=io.StringIO())
        rejected = 0
        for name, s in statuses.items():
            assert s["state"] == "completed", (name, s)
            assert (tmp_path / (name + ".bin")).read_bytes() == data
            rejected += s["blocks_rejected"]
        assert rejected >= 1, statuses


@root_only
def test_a_peer_killed_mid_transfer_leaves_the_others_completing(tmp_path, host_bin, plugin_dir):
    import time
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(16 << 20)
        seeder = fleet.agents["office-1"]
        seed(fleet, manifest, url, "office-1")
        seeder.ok("setting", key="peer.upload_rate_bytes", value=str(4 << 20))  # ~4 s to serve everyone
        jobs = fleet.deploy(manifest, url, devices=["office-2", "office-3"], dest_dir=str(tmp_path))
        deadline = time.monotonic() + 30
        while fleet.agents["office-2"].ok("job", job=jobs["office-2"])["status"]["bytes_verified"] < (2 << 20):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = fleet.agents["office-2"].ok("job", job=jobs["office-2"])["status"]["bytes_verified"]
        seeder.kill()
        assert before < len(data), "office-2 finished before the kill: proves nothing"
        statuses = fleet.watch(jobs, timeout=120, out=io.StringIO())
        for name, s in statuses.items():
            assert s["state"] == "completed", (name, s)
            assert (tmp_path / (name + ".bin")).read_bytes() == data


@root_only
def test_rogue_datagrams_and_sockets_are_shrugged_off_while_everyone_else_keeps_going(tmp_path, host_bin, plugin_dir):
    import subprocess
    rogue_bin = os.path.join(os.environ.get("PD_BUILD_DIR", ""), "tests", "pd_test_rogue")
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(16 << 20)
        seed(fleet, manifest, url, "office-1")
        fleet.agents["office-1"].ok("setting", key="peer.upload_rate_bytes", value=str(8 << 20))  # ~4 s of serving
        rogue = fleet.lab.add_device("office", "rogue")
        target = fleet.lab.device("office-1").ip + ":34760"
        # Junk at the seeder's discovery port first: empty, short, wrong magic, a query for a
        # label nobody has, oversized datagrams. Its responder must keep answering real queries.
        junk = ("import os, socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "for p in [b'', b'PDQ1', b'PDA1' + os.urandom(40), os.urandom(44), b'PDQ1' + os.urandom(40),\n"
                "          b'PDQ1' + os.urandom(2000), os.urandom(60000)]:\n"
                "    for _ in range(50):\n"
                "        s.sendto(p, (%r, 34329))\n") % fleet.lab.device("office-1").ip
        out = subprocess.run(fleet.lab.command(rogue, ["python3", "-c", junk]), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        jobs = fleet.deploy(manifest, url, devices=["office-2", "office-3"], dest_dir=str(tmp_path))
        # The rogue holds the fleet key (an insider), so it gets past the handshake too.
        out = subprocess.run(fleet.lab.command(rogue, [rogue_bin, target, os.path.join(str(tmp_path / "f"), "fleet.key")]),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("disconnected") == 4 and "NOT" not in out.stdout, out.stdout
        statuses = fleet.watch(jobs, timeout=120, out=io.StringIO())
        for name, s in statuses.items():
            assert s["state"] == "completed", (name, s)
            assert s["bytes_by_source"]["lan"] == len(data), (name, s["bytes_by_source"])
            assert (tmp_path / (name + ".bin")).read_bytes() == data
        # Garbage, the oversized record and the malformed message count as refused peers (the
        # truncated record ends in an ordinary hang-up).
        assert fleet.agents["office-1"].ok("facts")["serving"]["peers_refused"] >= 3


@root_only
def test_a_replayed_and_flooded_discovery_cannot_starve_legitimate_queries(tmp_path, host_bin, plugin_dir):
    """Issue #16's attack: a member replays a recorded query (and sends fresh ones) at the
    seeder's discovery port, 20,000 a second. Replays are dropped, its fresh ones get its own
    share of answers (5 a second), and the other devices still find the seeder."""
    import subprocess
    import peerdist
    rogue_bin = os.path.join(os.environ.get("PD_BUILD_DIR", ""), "tests", "pd_test_rogue")
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(8 << 20)
        seed(fleet, manifest, url, "office-1")
        rogue = fleet.lab.add_device("office", "rogue")
        flood = subprocess.Popen(fleet.lab.command(rogue, [rogue_bin, "discovery-flood", fleet.lab.device("office-1").ip,
                                                           os.path.join(str(tmp_path / "f"), "fleet.key"),
                                                           peerdist.Manifest.read(manifest).id, "15"]),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            import time
            time.sleep(1)
            assert flood.poll() is None, flood.communicate()
            jobs = fleet.deploy(manifest, url, devices=["office-2", "office-3"], dest_dir=str(tmp_path))
            statuses = fleet.watch(jobs, timeout=120, out=io.StringIO())
        finally:
            out, err = flood.communicate(timeout=30)
        assert flood.returncode == 0 and "sent" in out, err
        for name, st in statuses.items():
            assert st["state"] == "completed", (name, st)
            assert st["bytes_by_source"]["lan"] == len(data), (name, st["bytes_by_source"])
            assert (tmp_path / (name + ".bin")).read_bytes() == data


def deploy_together(fleet, tmp_path, manifest, url, data, timeout=300):
    """Every device starts at once; returns (origin egress, LAN bytes) in content copies."""
    c0 = fleet.counters()
    statuses = fleet.watch(fleet.deploy(manifest, url, dest_dir=str(tmp_path)), timeout=timeout, out=io.StringIO())
    c1 = fleet.counters()
    for name, s in statuses.items():
        assert s["state"] == "completed", (name, s)
        assert (tmp_path / (name + ".bin")).read_bytes() == data
    egress = (c1["origin"] - c0["origin"]) / len(data)
    lan = sum(s["bytes_by_source"]["lan"] for s in statuses.values()) / len(data)
    served = sum(a.ok("facts")["serving"]["bytes_uploaded"] for a in fleet.agents.values()) / len(data)
    print("origin egress %.2f x content, LAN %.2f x, served %.2f x" % (egress, lan, served))
    # End-game duplicates are few: peers send little that nobody needed.
    assert served <= 1.05 * lan + 0.05, (served, lan)
    return egress, lan


@root_only
def test_eight_agents_starting_together_take_one_copy_from_the_origin(tmp_path, host_bin, plugin_dir):
    # Unshaped LAN, CDN on the same subnet: the hardest case for the split, since a device
    # could fetch everything itself before the others have announced anything.
    with Fleet(tmp_path / "f", [Office("office", devices=8)], host_bin, plugin_dir, p2p=True) as fleet:
        data, manifest, url = fleet.publish_random(64 << 20)
        egress, lan = deploy_together(fleet, tmp_path, manifest, url, data)
        assert egress <= 1.1, "origin served %.2f copies" % egress
        assert lan >= 6.9


@root_only
def test_devices_starting_together_behind_a_wan_link_split_the_origin_download(tmp_path, host_bin, plugin_dir):
    # The CDN sits behind the branch's 100 Mbit/s WAN link, as in a branch office.
    offices = [Office("central", devices=0), Office("branch", devices=6, wan_mbit=100)]
    with Fleet(tmp_path / "f", offices, host_bin, plugin_dir, p2p=True, cdn_office="central") as fleet:
        data, manifest, url = fleet.publish_random(32 << 20)
        egress, lan = deploy_together(fleet, tmp_path, manifest, url, data)
        assert egress <= 1.1, "origin served %.2f copies" % egress
        assert lan >= 4.9


CLIENT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import branchcache_client as bc
info = bytes.fromhex(open(sys.argv[2]).read().strip())
segments = bc.content_information_v1(info)
matches = bc.discover([s["id"] for s in segments], timeout=2.0, interface_ip=sys.argv[3])
out = {"matches": [{"addresses": m["addresses"], "block_counts": m["block_counts"]} for m in matches]}
if matches:
    seg = segments[-1]
    block = bc.fetch_block(matches[0]["addresses"][0], seg["id"], 0, seg["secret"], min(65536, seg["length"]))
    out["block"] = block.hex() if block is not None else None
    out["offset"] = seg["offset"]
print(json.dumps(out))
"""


@root_only
def test_agents_in_branchcache_wire_mode_exchange_a_package_by_pccrd_and_pccrr_alone(tmp_path, host_bin, plugin_dir):
    """Windows' own protocols between peerdist agents in network namespaces on one subnet: no
    fleet key (so no peerdist discovery, no secure channel, no peer server), PCCRD Probes
    multicast to 239.255.255.250:3702, blocks over PCCRR, each verified before it is written;
    then the independent client of branchcache_client.py, on a third device, discovers the
    agents by multicast and fetches a block from one as a Windows peer would."""
    settings = {"plugin.branchcache.windows_peers": "1"}
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, agent_settings=settings) as fleet:
        data, manifest, url = fleet.publish_random((32 << 20) + (3 << 20))  # two segments
        ci = subprocess.run([os.path.join(host_bin, "pd"), "content-info", os.path.join(fleet.www, "pkg.bin"), "--version", "1",
                             "--server-passphrase", os.urandom(16).hex()],
                            check=True, capture_output=True, text=True, timeout=120).stdout
        info = tmp_path / "pkg.ci"
        info.write_text(ci)
        st = fleet.watch(fleet.deploy(manifest, url, devices=["office-1"], content_info=str(info)), out=io.StringIO())["office-1"]
        assert st["state"] == "completed" and st["bytes_by_source"]["origin"] == len(data), st
        c0 = fleet.counters()
        jobs = fleet.deploy(manifest, url, devices=["office-2"], dest_dir=str(tmp_path), content_info=str(info))
        st = fleet.watch(jobs, timeout=120, out=io.StringIO())["office-2"]
        assert st["state"] == "completed", st
        assert st["bytes_by_source"]["lan"] == len(data), st["bytes_by_source"]
        assert st["bytes_by_source"]["origin"] == 0, st["bytes_by_source"]
        assert (tmp_path / "office-2.bin").read_bytes() == data
        c1 = fleet.counters()
        assert c1["origin"] - c0["origin"] < 64 * 1024, c1["origin"] - c0["origin"]  # nothing from the CDN
        assert c1["lan:office"] - c0["lan:office"] >= len(data)
        for name in ("office-1", "office-2"):
            assert fleet.agents[name].ok("facts")["listen"] in ("", None, []), "no peerdist peer server without a fleet key"

        third = fleet.lab.device("office-3")
        r = fleet.lab.run(third, [sys.executable, "-c", CLIENT, os.path.dirname(__file__), str(info), third.ip], timeout=60)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        holders = sorted(m["addresses"][0].split(":")[0] for m in out["matches"])
        assert holders == sorted(fleet.lab.device(n).ip for n in ("office-1", "office-2")), out
        assert all(m["block_counts"] == [512, 48] for m in out["matches"]), out
        assert bytes.fromhex(out["block"]) == data[out["offset"]:out["offset"] + 65536]
