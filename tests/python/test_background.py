"""The background transport class in the fleet lab: a branch office pulls from the head office
as from a peer in another office, over a WAN link shaped with tbf on the router (real TCP, real
queues, real drops). The benchmark with the issue's figures is bench/background_bench.py."""
import filecmp
import json
import os
import time

import pytest

from conftest import BUILD
from netlab.lab import Lab, Office
from netlab.wan import WanSeeder

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
TOOL = os.path.join(BUILD, "bench", "pd_bench_wan")


def two_offices(tmp_path, mbit, queue_ms):
    return Lab(tmp_path / "lab", [Office("hq", devices=2), Office("branch", devices=2, wan_mbit=mbit, wan_queue_ms=queue_ms)])


def cubic(lab, seconds, omit=0):
    """iperf3 cubic from the head office into the branch; returns received bits/s (the first
    `omit` seconds not counted)."""
    server, client = lab.device("branch-2"), lab.device("hq-2")
    lab.spawn(server, ["iperf3", "-s", "-1", "-p", "5201"])
    time.sleep(0.3)
    out = lab.run(client, ["iperf3", "-c", server.ip, "-p", "5201", "-C", "cubic", "-t", str(seconds), "-O", str(omit),
                           "-J"], timeout=seconds + omit + 30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]


@root_only
def test_idle_busy_idle_the_transfer_yields_says_so_resumes_and_verifies(tmp_path):
    with two_offices(tmp_path, 20, 200) as lab:
        wan = WanSeeder(lab, lab.device("hq-1"), TOOL, tmp_path, 48)
        fetch = wan.fetch(lab.device("branch-1"), "bg")
        time.sleep(6)  # idle link: the background fills it
        busy_from = time.monotonic()
        got = cubic(lab, 10)  # busy: a user's TCP download
        busy_until = time.monotonic()
        assert fetch.wait(180) == 0, open(fetch.log).read()
        assert filecmp.cmp(wan.package, fetch.out, shallow=False)
        # The user's flow kept most of the link: plain TCP in the background would leave ~half.
        assert got >= 0.75 * 20e6, "cubic got %.1f Mbit/s next to the background transfer" % (got / 1e6)
        events = fetch.events()
        kinds = [k for _, k, _ in events]
        assert "paused" in kinds and "resumed" in kinds, events
        first_pause = next(msg for _, k, msg in events if k == "paused")
        assert "WAN peer" in first_pause and "over the 25 ms target" in first_pause, first_pause
        # Events came in order: a pause while the link was busy, then a resume.
        assert kinds.index("paused") < len(kinds) - 1 - kinds[::-1].index("resumed")
        assert busy_until - busy_from >= 10


@root_only
def test_at_an_80_ms_round_trip_it_fills_the_link_and_still_yields(tmp_path):
    # A real round trip: a delay line of 40 ms each way on the branch's 20 Mbit/s link, whose
    # buffer holds one bandwidth-delay product (80 ms); the devices' TCP is cubic, as on
    # Windows. The short form of `PD_BG_DELAY_MS=40 bench/background_bench.py`, against cubic
    # alone in the same run. Looser than the benchmark's targets (0.85 alone, 0.90 for cubic's
    # steady state over 20 s) because these windows are 10 s: a periodic slowdown more or less
    # in one is 3-4 % of it. (Whole-block requests swung the queue by the whole buffer here and
    # the arriving cubic's own ramp took up to 12.5 s, so this check ran with 4 x BDP until
    # sub-block requests.)
    offices = [Office("hq", devices=2), Office("branch", devices=2, wan_mbit=20, wan_queue_ms=80, wan_delay_ms=40)]
    with Lab(tmp_path / "lab", offices, congestion_control="cubic") as lab:
        wan = WanSeeder(lab, lab.device("hq-1"), TOOL, tmp_path, 96)
        alone = cubic(lab, 12, omit=2)
        fetch = wan.fetch(lab.device("branch-1"), "bg")
        time.sleep(5)  # slow start and the first slowdowns
        p0, t0 = lab.wan_payload_in("branch"), time.monotonic()
        time.sleep(10)
        p1, t1 = lab.wan_payload_in("branch"), time.monotonic()
        goodput = (p1 - p0) * 8 / (t1 - t0)  # TCP payload, as iperf3 counts
        # Next to it, a user's cubic flow, counted after its first 8 s: at 80 ms a cubic flow
        # that HyStart took out of slow start early needs ~6 s to grow into the link, whatever
        # the background does (docs/background-transport.md "Long round trips").
        beside = cubic(lab, 10, omit=8)
        assert fetch.wait(240) == 0, open(fetch.log).read()
        assert filecmp.cmp(wan.package, fetch.out, shallow=False)
        report = "cubic alone %.2f Mbit/s; background alone %.3f of it; cubic beside it %.3f" % (
            alone / 1e6, goodput / alone, beside / alone)
        print(report)
        assert goodput >= 0.80 * alone, report
        assert beside >= 0.85 * alone, report
        kinds = [k for _, k, _ in fetch.events()]
        assert "paused" in kinds and "resumed" in kinds, (report, fetch.events())


@root_only
def test_drops_in_a_shallow_router_queue_lose_nothing(tmp_path):
    # A 5 ms tbf queue overflows all the time: TCP underneath recovers every loss, the
    # controller sees it as delay, and every block still verifies.
    with two_offices(tmp_path, 20, 5) as lab:
        wan = WanSeeder(lab, lab.device("hq-1"), TOOL, tmp_path, 16)
        before = lab.tbf_drops("branch")
        fetch = wan.fetch(lab.device("branch-1"), "bg")
        cubic(lab, 4)
        assert fetch.wait(120) == 0, open(fetch.log).read()
        assert lab.tbf_drops("branch") > before, "the shallow queue never dropped: the test proves nothing"
        assert filecmp.cmp(wan.package, fetch.out, shallow=False)


@root_only
def test_a_256_mib_background_transfer_is_intact(tmp_path):
    with two_offices(tmp_path, 200, 50) as lab:
        wan = WanSeeder(lab, lab.device("hq-1"), TOOL, tmp_path, 256)
        fetch = wan.fetch(lab.device("branch-1"), "bg")
        assert fetch.wait(300) == 0, open(fetch.log).read()
        assert os.path.getsize(fetch.out) == 256 << 20
        assert filecmp.cmp(wan.package, fetch.out, shallow=False)
        # It went over the branch's WAN link once: what TCP carried (the raw byte count, with
        # the framing, once put it over 1.05 x in CI).
        payload = lab.wan_payload_in("branch")
        assert payload >= 256 << 20
        assert payload <= 1.05 * (256 << 20), (payload, lab.wan_bytes("branch"), lab.wan_packets("branch"))


@root_only
def test_the_office_wan_budget_caps_the_transfer(tmp_path):
    # (Changing it at run time: tests/unit/test_swarm.cpp; from the coordinator: test_hierarchy.py.)
    with two_offices(tmp_path, 100, 50) as lab:
        wan = WanSeeder(lab, lab.device("hq-1"), TOOL, tmp_path, 8)
        t0 = time.monotonic()
        fetch = wan.fetch(lab.device("branch-1"), "capped", "wan.budget_bytes=1048576")
        assert fetch.wait(120) == 0, open(fetch.log).read()
        # 8 MiB at 1 MiB/s cannot take less than ~7 s (the bucket starts with a fifth of a second).
        assert time.monotonic() - t0 >= 7
        assert filecmp.cmp(wan.package, fetch.out, shallow=False)
