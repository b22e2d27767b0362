"""The lab's delay line (tests/netlab/delay_line.cpp, docs/netlab.md "Delay lines"): a WAN
link with a configured one-way delay shows that round trip to TCP (its jitter reported
against the same path without a line) and carries its shaped rate — and 200 Mbit/s when
unshaped."""
import json
import os
import statistics
import time

import pytest

from netlab.lab import Lab, Office

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# Round trips as TCP sees them: the time connect() takes (SYN out, SYN-ACK back).
CONNECT_RTT = """
import socket, sys, time, json
rtts = []
for _ in range(int(sys.argv[3])):
    s = socket.socket()
    t = time.monotonic()
    s.connect((sys.argv[1], int(sys.argv[2])))
    rtts.append((time.monotonic() - t) * 1000)
    s.close()
    time.sleep(0.02)
print(json.dumps(rtts))
"""

LISTEN = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
"""


def round_trips(lab, client, server, count=20):
    out = lab.run(client, ["/usr/bin/python3", "-c", CONNECT_RTT, server.ip, "7001", str(count)])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def iperf(lab, client, server, port, seconds=6, omit=2):
    out = lab.run(client, ["iperf3", "-c", server.ip, "-p", str(port), "-t", str(seconds), "-O", str(omit), "-J"],
                  timeout=seconds + 30)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "error" not in result, result["error"]
    return result["end"]["sum_received"]["bits_per_second"] / 1e6


@root_only
def test_a_delay_line_gives_the_configured_round_trip_and_rate(tmp_path):
    offices = [Office("central", devices=1), Office("branch", devices=1, wan_mbit=100, wan_delay_ms=40, parent="central"),
               Office("far", devices=1, wan_delay_ms=10, parent="central"), Office("near", devices=1, parent="central")]
    with Lab(tmp_path / "lab", offices) as lab:
        server = lab.devices_in("central")[0]
        lab.spawn(server, ["/usr/bin/python3", "-c", LISTEN, "7001"])
        for port in (5201, 5202):  # one per run: a server is busy a moment after its test
            lab.spawn(server, ["iperf3", "-s", "-p", str(port)])
        time.sleep(0.5)
        report = []

        def measure(office):
            # The first connect also waits for ARP across the line: not a sample.
            rtts = sorted(round_trips(lab, lab.devices_in(office)[0], server, count=31)[1:])
            return statistics.median(rtts), rtts[len(rtts) * 9 // 10] - rtts[len(rtts) // 10]

        # The baseline, same run and path without a line: what this machine's scheduling adds.
        base_median, base_spread = measure("near")
        report.append("near (no line): RTT median %.2f ms, p10-p90 spread %.2f ms" % (base_median, base_spread))
        for office, one_way in (("branch", 40), ("far", 10)):
            median, spread = measure(office)
            report.append("%s: RTT median %.2f ms (configured %d), spread %.2f ms" % (office, median, 2 * one_way, spread))
            assert 2 * one_way <= median <= 2 * one_way * 1.02 + base_median + 1.0, report
            # Its own jitter is reported, not bounded here: on this VM, idle, the line's threads
            # wake up 1-3 ms late (a halted vCPU's wake-up) against 0.04 ms without the line —
            # docs/netlab.md names it; CI checks the delay and the rate.
        shaped = iperf(lab, lab.devices_in("branch")[0], server, 5201)
        report.append("branch (tbf 100 Mbit/s, 80 ms RTT): %.1f Mbit/s" % shaped)
        assert 90 <= shaped <= 101, report
        unshaped = iperf(lab, lab.devices_in("far")[0], server, 5202)
        report.append("far (unshaped, 20 ms RTT): %.1f Mbit/s" % unshaped)
        assert unshaped >= 200, report
        print("; ".join(report))
