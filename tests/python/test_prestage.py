"""The catalogue and pre-staging in the fleet lab (docs/coordinator.md "Catalogue",
"Pre-staging"): an administrator publishes a content and asks for it in every office by a
deadline; each office's RVP pulls it over the background class, parents before children, each
WAN link once, the origin only from the central office — before any device asks. A device
that asks afterwards, by the content id alone, gets it from its own office."""
import json
import os
import re
import time

import pytest

from netlab.fleet import Fleet
from netlab.lab import Office, wait_until

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
MiB = 1 << 20
WAN_MBIT = 20


def wan_payload(c0, c1, office):
    """Bytes TCP carried into the office over its WAN link between two Fleet.counters()."""
    return c1["wan_in_payload:" + office] - c0["wan_in_payload:" + office]


def holds(agent, content):
    return any(e["content"] == content and e["state"] == "complete" for e in agent.ok("cache")["cache"])


@root_only
def test_prestaging_fills_every_office_before_the_deadline_and_devices_then_ask_by_id(tmp_path, host_bin, plugin_dir):
    offices = [Office("central", devices=2),
               Office("branch-a", devices=2, wan_mbit=WAN_MBIT, parent="central"),
               Office("branch-a-wifi", devices=2, wan_mbit=WAN_MBIT, parent="branch-a", kind="WiFi"),
               Office("branch-b", devices=2, wan_mbit=WAN_MBIT, parent="central")]
    with Fleet(tmp_path / "f", offices, host_bin, plugin_dir, p2p="hierarchy") as fleet:
        size = 32 * MiB
        data, manifest, url = fleet.publish_random(size)
        out = fleet.admin("publish", manifest, "--origin", url)
        assert out.returncode == 0, out.stderr
        listed = json.loads(fleet.admin("contents").stdout)["contents"]
        assert len(listed) == 1 and listed[0]["manifest"] and listed[0]["signed"], listed
        content = listed[0]["content"]

        c0 = fleet.counters()
        start = time.time()
        out = fleet.admin("prestage", content, "--by", "+10m")
        assert out.returncode == 0 and "pre-staging into central, branch-a, branch-b, branch-a-wifi" in out.stdout, out

        def status():
            return json.loads(fleet.admin("prestage-status", content).stdout)["prestages"][0]
        wait_until(lambda: status()["done"], timeout=300, what="every office to hold the content")
        c1 = fleet.counters()
        final = status()
        took = time.time() - start
        assert not final["late"] and took * 1000 < final["deadline_ms"] - final["requested_ms"], final
        bound = size * 8 / (WAN_MBIT * 1e6)  # F/W
        report = ["pre-staged %d MiB in %.1f s = %.2f x F/W (three levels, streaming)" % (size // MiB, took, took / bound)]
        for office in ("branch-a", "branch-a-wifi", "branch-b"):
            payload = wan_payload(c0, c1, office)
            report.append("%s: WAN in %.3f x" % (office, payload / size))
            assert payload <= 1.05 * size, report
        origin = (c1["origin"] - c0["origin"]) / size
        report.append("origin %.3f x" % origin)
        print("; ".join(report))
        assert origin <= 1.05, report
        rows = {r["office"]: r for r in final["offices"]}
        # Wait for the job reports (they follow completion): bytes by source per office.
        wait_until(lambda: all(sum(r["bytes"].values()) >= size for r in status()["offices"]), 15, "the job reports")
        rows = {r["office"]: r for r in status()["offices"]}
        assert rows["central"]["bytes"]["origin"] == size, rows
        for office in ("branch-a", "branch-a-wifi", "branch-b"):
            assert rows[office]["bytes"]["origin"] == 0 and rows[office]["bytes"]["wan"] == size, (office, rows[office])
            assert rows[office]["upstream"] == ("branch-a" if office == "branch-a-wifi" else "central"), rows[office]
        # Only each office's RVP fetched it: nobody else was asked.
        for o in offices:
            holders = [n for n, a in fleet.agents.items() if fleet.lab.device(n).office.name == o.name and holds(a, content)]
            assert len(holders) == 1, (o.name, holders)

        # A device that asks now, by the content id alone, takes it from its own office.
        asker = next(n for n, a in fleet.agents.items() if n.startswith("branch-b") and not holds(a, content))
        job = fleet.agents[asker].ok("download", content=content, dest=str(tmp_path / "asked.bin"))["job"]
        st = fleet.agents[asker].wait_job(job, timeout=120)
        assert st["state"] == "completed", st
        assert (tmp_path / "asked.bin").read_bytes() == data
        assert st["bytes_by_source"]["lan"] == size and st["bytes_by_source"]["origin"] == 0, st["bytes_by_source"]

        # Retired: it leaves every cache.
        assert fleet.admin("content-retire", content).returncode == 0
        wait_until(lambda: not any(holds(a, content) for a in fleet.agents.values()), 20, "every cache to drop the content")
        refused = fleet.agents[asker].call("download", content=content)
        assert not refused["ok"] and "is not in the catalogue" in refused["error"], refused


@root_only
def test_a_deadline_the_background_class_would_miss_is_met_by_raising_that_office_alone(tmp_path, host_bin, plugin_dir):
    """A user's download (iperf3, cubic) fills branch A's link for the whole run, so the
    background class yields there; branch B's link is idle. The coordinator sees branch A's
    pull would miss the deadline, raises that office alone to the foreground class, and it
    makes it; branch B stays in the background class."""
    offices = [Office("central", devices=2),
               Office("branch-a", devices=2, wan_mbit=WAN_MBIT, parent="central"),
               Office("branch-b", devices=2, wan_mbit=WAN_MBIT, parent="central")]
    with Fleet(tmp_path / "f", offices, host_bin, plugin_dir, p2p="hierarchy") as fleet:
        size = 12 * MiB
        data, manifest, url = fleet.publish_random(size)
        assert fleet.admin("publish", manifest, "--origin", url).returncode == 0
        content = json.loads(fleet.admin("contents").stdout)["contents"][0]["content"]
        receiver, sender = fleet.lab.device("branch-a-2"), fleet.lab.device("central-2")
        fleet.lab.spawn(receiver, ["iperf3", "-s", "-1", "-p", "5201"])
        time.sleep(0.3)
        user = fleet.lab.spawn(sender, ["iperf3", "-c", receiver.ip, "-p", "5201", "-C", "cubic", "-t", "90"])
        try:
            time.sleep(2)
            deadline_s = 40
            start = time.time()
            out = fleet.admin("prestage", content, "--by", "+%ds" % deadline_s)
            assert out.returncode == 0, out.stderr

            def status():
                return json.loads(fleet.admin("prestage-status", content).stdout)["prestages"][0]
            wait_until(lambda: status()["done"], timeout=120, what="both branches to hold the content")
            took = time.time() - start
        finally:
            user.kill()
        rows = {r["office"]: r for r in status()["offices"]}
        with open(fleet.coordinator_log) as f:
            notes = [l.strip() for l in f if "raised to the foreground class" in l]
        print("deadline %d s, both branches done after %.1f s; %s" % (deadline_s, took, "; ".join(notes)))
        assert took < deadline_s, (took, rows)
        assert rows["branch-a"]["raised"] and not rows["branch-b"]["raised"], rows
        assert len(notes) == 1 and "office 'branch-a'" in notes[0], notes
        # The coordinator's own projection: in the background class branch A would have
        # needed longer than the time left.
        m = re.search(r"needs about (\d+ s|forever) more, and the deadline is in (\d+) s", notes[0])
        assert m and (m.group(1) == "forever" or int(m.group(1)[:-2]) * 1.25 > int(m.group(2))), notes[0]
        # The office's RVP said so in an event; branch B's did not.
        raised_in = [n for n, a in fleet.agents.items() if '"event":"transfer_raised"' in a.log()]
        assert len(raised_in) == 1 and raised_in[0].startswith("branch-a"), raised_in
