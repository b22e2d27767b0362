#!/usr/bin/env python3
"""Background-transport benchmark in the fleet lab (root: network namespaces).

Two offices joined by a WAN link shaped with tbf on the router's egress into the branch:
20 Mbit/s with a 200 ms buffer, TSO/GSO/GRO off on every veth (tests/netlab/lab.py). In the
head office a seeder (pd_bench_wan seed) and the foreground sender (iperf3 -C cubic); in the
branch the background receivers (pd_bench_wan fetch: the seeder as a peer in another office,
so the background class) and the iperf3 server. A UDP probe crosses the link every 10 ms and
is echoed back: its round trip is the queueing delay users feel. Per-flow throughput comes
from the branch bridge ports' counters, sampled every 100 ms. Every figure is a ratio to the
cubic-alone baseline measured in the same run; windows are >= 20 s and skip the first seconds.

Phases: cubic alone (30 s) -> background alone, cubic arrives at +30 s for 30 s, observed to
+80 s -> the same with the background class switched to plain TCP (contrast; not in quick)
-> two background flows started together -> a latecomer 10 s behind.
usage: bench/background_bench.py BUILD_DIR [OUT_DIR] [quick]
(PD_BG_PHASES=yield,two,late runs only those phases, and PD_BG_SETTINGS="key=value ..." adds
session settings to every background puller: for tuning; the report needs every phase.)
Real round trips: PD_BG_DELAY_MS=D puts a delay line of D ms each way on the WAN link
(docs/netlab.md "Delay lines"), PD_BG_MBIT sets its rate and PD_BG_QUEUE_BDP its buffer as a
multiple of the bandwidth-delay product; the probe's figures are then queueing delay: its
round trip less the line's base round trip (2 D). The devices' TCP is then cubic (Windows' and
Debian's default), or PD_BG_CC's. PD_BENCH_KEEP=1 keeps the work directory (the pullers' logs,
fetch-*.log) under PD_BENCH_DIR (/var/tmp) for a look at what the receivers printed."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from netlab.lab import Lab, Office  # noqa: E402
from netlab.wan import WanSeeder  # noqa: E402

ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(64)
    s.sendto(d, a)
"""
PROBE = r"""
import select, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
s.setblocking(False)
out = open(sys.argv[3], "w", buffering=1)
seq, due = 0, time.monotonic()
while True:
    now = time.monotonic()
    if now >= due:
        try:
            s.send(struct.pack("!Id", seq, now))
        except OSError:
            pass
        seq += 1
        due += 0.01
    ready, _, _ = select.select([s], [], [], max(0.0, due - time.monotonic()))
    while ready:
        try:
            d = s.recv(64)
        except (BlockingIOError, ConnectionRefusedError):
            break
        _, sent = struct.unpack("!Id", d)
        out.write("%.4f %.3f\n" % (sent, (time.monotonic() - sent) * 1000))
"""

LINK_MBIT = int(os.environ.get("PD_BG_MBIT", "20"))
DELAY_MS = float(os.environ.get("PD_BG_DELAY_MS", "0"))  # one way; 0: no delay line
BASE_RTT_MS = 2 * DELAY_MS
# The buffer: 200 ms as before, or a multiple of the bandwidth-delay product on a delayed line.
QUEUE_MS = max(1, int(float(os.environ.get("PD_BG_QUEUE_BDP", "1")) * BASE_RTT_MS)) if DELAY_MS else 200
SIZE_MIB = max(256, 12 * LINK_MBIT)  # a transfer outlasts the longest phase (80 s) at the link's rate
# The devices' TCP (the serving peer's, under the background class's requests): cubic, as on
# Windows and Debian, when the line has a real round trip; the host's default otherwise, as
# the figures before the delay line were measured.
CONGESTION = os.environ.get("PD_BG_CC", "cubic" if DELAY_MS else "") or None


class Counters(threading.Thread):
    """Branch bridge ports' transmitted bytes every 100 ms: what each branch device received."""

    def __init__(self, lab, office):
        super().__init__(daemon=True)
        self.lab, self.office, self.samples, self.stop = lab, office, [], False
        self.ports = {d.name: "l%s%db%d" % (lab.run_id, office.index, j)
                      for j, d in enumerate(lab.devices_in(office.name), start=1)}

    def run(self):
        while not self.stop:
            t = time.monotonic()
            out = subprocess.run(["ip", "-n", self.office.gw_ns, "-j", "-s", "link", "show"],
                                 capture_output=True, text=True).stdout
            tx = {i["ifname"]: i["stats64"]["tx"]["bytes"] for i in json.loads(out)}
            self.samples.append((t, {dev: tx.get(port, 0) for dev, port in self.ports.items()}))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))

    def at(self, t, dev):
        best = min(self.samples, key=lambda s: abs(s[0] - t))
        return best[0], best[1][dev]

    def rate(self, dev, t0, t1):
        """Mean bytes/s received by `dev` over [t0, t1]."""
        a, b = self.at(t0, dev), self.at(t1, dev)
        return (b[1] - a[1]) / max(1e-6, b[0] - a[0])

    def series(self, dev, t0, t1, step=0.5):
        out, t = [], t0
        while t + step <= t1 + 1e-9:
            out.append((t - t0 + step, self.rate(dev, t, t + step)))
            t += step
        return out


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * (len(v) - 1)))] if v else float("nan")


def probe_rtts(path, t0, t1):
    rtts = []
    with open(path) as f:
        for line in f:
            t, rtt = line.split()
            if t0 <= float(t) < t1:
                rtts.append(max(0.0, float(rtt) - BASE_RTT_MS))  # queueing: the line's own delay removed
    return rtts


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/dev")
    out_dir = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "quick" else None
    quick = "quick" in sys.argv[2:]
    tool = os.path.join(build, "bench", "pd_bench_wan")
    work = tempfile.mkdtemp(prefix="pd-bg-bench.", dir=os.environ.get("PD_BENCH_DIR", "/var/tmp"))
    results, series = {}, {}
    try:
        offices = [Office("hq", devices=3), Office("branch", devices=3, wan_mbit=LINK_MBIT, wan_queue_ms=QUEUE_MS,
                                                   wan_delay_ms=DELAY_MS or None)]
        with Lab(os.path.join(work, "lab"), offices, congestion_control=CONGESTION) as lab:
            seeder, sender = lab.device("hq-1"), lab.device("hq-2")
            rx1, rx_tcp, rx2 = lab.device("branch-1"), lab.device("branch-2"), lab.device("branch-3")
            wan = WanSeeder(lab, seeder, tool, work, SIZE_MIB)
            lab.spawn(rx_tcp, ["iperf3", "-s", "-p", "5201"], os.path.join(work, "iperf3-s.log"))
            lab.spawn(rx_tcp, [sys.executable, "-c", ECHO, "9000"])
            probe_log = os.path.join(work, "probe.log")
            lab.spawn(sender, [sys.executable, "-c", PROBE, rx_tcp.ip, "9000", probe_log])
            counters = Counters(lab, lab.office("branch"))
            counters.start()
            time.sleep(1.0)

            def cubic(seconds):
                p = subprocess.Popen(lab.command(sender, ["iperf3", "-c", rx_tcp.ip, "-p", "5201", "-C", "cubic",
                                                          "-t", str(seconds)]), stdout=subprocess.DEVNULL)
                return time.monotonic(), p

            fetches = []

            extra = os.environ.get("PD_BG_SETTINGS", "").split()  # "key=value ..." for tuning runs

            def background(dev, tag, *settings):
                fetches.append(wan.fetch(dev, tag, *(list(settings) + extra)))
                return time.monotonic(), fetches[-1]

            def stop_background():
                for f in fetches:
                    f.stop()
                fetches.clear()
                time.sleep(2.0)  # the queue drains

            # 1. cubic alone: the baseline.
            t0, p = cubic(30)
            p.wait()
            t_end = time.monotonic()
            link = counters.rate(rx_tcp.name, t0 + 10, t0 + 30)
            alone_life = counters.rate(rx_tcp.name, t0, t_end)
            cubic_rtt = probe_rtts(probe_log, t0 + 10, t0 + 30)
            results["cubic_alone"] = {"steady_mbit": link * 8e-6, "life_mbit": alone_life * 8e-6,
                                      "probe_p50_ms": percentile(cubic_rtt, 0.5), "probe_p95_ms": percentile(cubic_rtt, 0.95)}
            series["cubic_alone"] = counters.series(rx_tcp.name, t0, t0 + 30)
            time.sleep(2.0)

            def yield_phase(name, *settings):
                tb, _ = background(rx1, name, *settings)
                time.sleep(30)
                ta, p = cubic(30)
                p.wait()
                td = time.monotonic()
                time.sleep(20)
                bg = counters.rate(rx1.name, tb + 8, tb + 30)
                rtt = probe_rtts(probe_log, tb + 8, tb + 30)
                s = counters.series(rx1.name, ta, td + 10, 0.5)
                below = next((t for t, r in s if r < 0.25 * link), None)
                # The arriving flow's own ramp: a cubic flow whose HyStart left slow start early on
                # the standing queue grows by its cubic curve, seconds at a long round trip, and
                # the background can leave it no more than it takes without idling the link.
                s_cubic = counters.series(rx_tcp.name, ta, td, 0.5)
                cubic_75 = next((t for t, r in s_cubic if r > 0.75 * link), None)
                ramp_end = ta + (cubic_75 if cubic_75 is not None else 10)
                used_while_ramping = (counters.rate(rx1.name, ta, ramp_end) + counters.rate(rx_tcp.name, ta, ramp_end)) / link
                s_after = counters.series(rx1.name, td, td + 10, 0.5)
                back = next((t for t, r in s_after if r > 0.90 * link), None)
                r = {
                    "alone_goodput_ratio": bg / link,
                    "alone_probe_p50_ms": percentile(rtt, 0.5), "alone_probe_p95_ms": percentile(rtt, 0.95),
                    "cubic_steady_ratio": counters.rate(rx_tcp.name, ta + 10, ta + 30) / link,
                    "cubic_life_ratio": counters.rate(rx_tcp.name, ta, td) / alone_life,
                    "below_25pct_after_s": below, "above_90pct_after_departure_s": back,
                    "cubic_above_75pct_after_s": cubic_75, "link_used_while_cubic_ramps": used_while_ramping,
                    "background_share_while_cubic": counters.rate(rx1.name, ta + 10, ta + 30) / link,
                }
                series[name] = {"bg": counters.series(rx1.name, tb, td + 20), "cubic": counters.series(rx_tcp.name, tb, td + 20),
                                "probe": [(float(t) - tb, float(v)) for t, v in
                                          (l.split() for l in open(probe_log)) if tb <= float(t) < td + 20],
                                "arrive": ta - tb, "depart": td - tb}
                stop_background()
                return r

            phases = os.environ.get("PD_BG_PHASES", "yield,plain,two,late").split(",")
            # 2. background alone; cubic arrives and leaves.
            if "yield" in phases:
                results["background"] = yield_phase("background")
            # 3. the same with plain TCP in the background's place (contrast).
            if not quick and "plain" in phases:
                results["plain_tcp"] = yield_phase("plain_tcp", "wan.transport=foreground")
            # 4. two background flows started together.
            if "two" in phases:
                tb, _ = background(rx1, "a")
                background(rx2, "b")
                time.sleep(32)
                x, y = counters.rate(rx1.name, tb + 8, tb + 30), counters.rate(rx2.name, tb + 8, tb + 30)
                results["two_together"] = {"jain": (x + y) ** 2 / (2 * (x * x + y * y)), "a_mbit": x * 8e-6,
                                           "b_mbit": y * 8e-6, "sum_ratio": (x + y) / link}
                series["two_together"] = {"a": counters.series(rx1.name, tb, tb + 30),
                                          "b": counters.series(rx2.name, tb, tb + 30)}
                stop_background()
            # 5. a latecomer 10 s behind.
            if "late" in phases:
                tb, _ = background(rx1, "first")
                time.sleep(10)
                tl, _ = background(rx2, "late")
                time.sleep(22)
                late, first = counters.rate(rx2.name, tl + 10, tl + 20), counters.rate(rx1.name, tl + 10, tl + 20)
                results["latecomer"] = {"late_share": late / (late + first)}
                series["latecomer"] = {"first": counters.series(rx1.name, tb, tl + 22),
                                       "late": counters.series(rx2.name, tb, tl + 22), "late_start": tl - tb}
                stop_background()
            counters.stop = True
    finally:
        if not os.environ.get("PD_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    report(results)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "background-bench.json"), "w") as f:
            json.dump(results, f, indent=1)
        plot(series, out_dir)


def rtt_scaled_bound_s(mbit, base_rtt_ms):
    """The yield and recovery bound: 2 s, plus on a real round trip the rounds a TCP slow start
    from 10 segments needs to fill the path and as much again in the buffer — the arriving
    flow's own time to build a queue worth yielding to, and the background's to refill a path
    it had left. (0.2 ms of base round trip, no delay line: 2 s.)"""
    if not base_rtt_ms:
        return 2.0
    bdp = mbit * 1e6 / 8 * base_rtt_ms / 1000
    return 2.0 + math.ceil(math.log2(2 * bdp / (10 * 1448))) * base_rtt_ms / 1000


def report(r):
    c = r["cubic_alone"]
    bound = rtt_scaled_bound_s(LINK_MBIT, BASE_RTT_MS)
    b = r.get("background", {})
    nan = float("nan")
    r.setdefault("two_together", {"jain": nan})
    r.setdefault("latecomer", {"late_share": nan})
    for k in ("alone_goodput_ratio", "alone_probe_p50_ms", "alone_probe_p95_ms", "cubic_steady_ratio", "cubic_life_ratio",
              "below_25pct_after_s", "above_90pct_after_departure_s"):
        b.setdefault(k, nan)
    checks = [
        ("background alone / cubic alone goodput", b["alone_goodput_ratio"], ">= 0.85", b["alone_goodput_ratio"] >= 0.85),
        ("probe RTT p50 with background alone (ms)", b["alone_probe_p50_ms"], "<= 85", b["alone_probe_p50_ms"] <= 85),
        ("probe RTT p95 with background alone (ms)", b["alone_probe_p95_ms"], "<= 100", b["alone_probe_p95_ms"] <= 100),
        ("cubic steady state with background / alone", b["cubic_steady_ratio"], ">= 0.90", b["cubic_steady_ratio"] >= 0.90),
        ("cubic whole 30 s life with background / alone", b["cubic_life_ratio"], ">= 0.85", b["cubic_life_ratio"] >= 0.85),
        ("background < 25 % of link after cubic arrives (s)", b["below_25pct_after_s"], "<= %.1f" % bound,
         b["below_25pct_after_s"] is not None and b["below_25pct_after_s"] <= bound),
        ("background > 90 % of link after cubic leaves (s)", b["above_90pct_after_departure_s"], "<= %.1f" % bound,
         b["above_90pct_after_departure_s"] is not None and b["above_90pct_after_departure_s"] <= bound),
        ("two background flows together: Jain index", r["two_together"]["jain"], ">= 0.95", r["two_together"]["jain"] >= 0.95),
        ("latecomer's share 10-20 s after its start", r["latecomer"]["late_share"], "0.35-0.65",
         0.35 <= r["latecomer"]["late_share"] <= 0.65),
    ]
    print("link %d Mbit/s, base RTT %.0f ms, tbf buffer %d ms, devices' TCP %s; cubic alone %.2f Mbit/s, probe queueing p50 %.0f ms p95 %.0f ms"
          % (LINK_MBIT, BASE_RTT_MS, QUEUE_MS, CONGESTION or "host default", c["steady_mbit"], c["probe_p50_ms"], c["probe_p95_ms"]))
    for name, value, target, ok in checks:
        shown = "none" if value is None else ("%.3f" % value if isinstance(value, float) else str(value))
        print("  %-52s %8s  target %-9s %s" % (name, shown, target, "ok" if ok else "MISSED"))
    print("  (cubic itself above 75 %% of the link after %s s; the link %.2f used by both until then)"
          % (b.get("cubic_above_75pct_after_s"), b.get("link_used_while_cubic_ramps", nan)))
    if "plain_tcp" in r:
        p = r["plain_tcp"]
        print("  contrast, plain TCP as background: cubic keeps %.2f (steady) %.2f (life); probe p50 %.0f ms"
              % (p["cubic_steady_ratio"], p["cubic_life_ratio"], p["alone_probe_p50_ms"]))
    print(json.dumps(r, indent=1))


def plot(series, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for name in ("background", "plain_tcp"):
        if name not in series:
            continue
        s = series[name]
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
        ax.plot([t for t, _ in s["bg"]], [v * 8e-6 for _, v in s["bg"]],
                label="peerdist, wan.transport=%s" % ("background" if name == "background" else "foreground"))
        ax.plot([t for t, _ in s["cubic"]], [v * 8e-6 for _, v in s["cubic"]], label="iperf3 cubic")
        for x in (s["arrive"], s["depart"]):
            ax.axvline(x, color="grey", lw=0.5)
        ax.set_ylabel("Mbit/s")
        ax.legend(loc="upper right")
        ax2.plot([t for t, _ in s["probe"]], [v for _, v in s["probe"]], lw=0.5)
        ax2.set_ylabel("probe RTT (ms)")
        ax2.set_xlabel("seconds")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "background-%s.png" % name.replace("_", "-")), dpi=80)
        plt.close(fig)
    if "latecomer" not in series:
        return
    fig, ax = plt.subplots(figsize=(9, 3.2))
    s = series["latecomer"]
    ax.plot([t for t, _ in s["first"]], [v * 8e-6 for _, v in s["first"]], label="first flow")
    ax.plot([t for t, _ in s["late"]], [v * 8e-6 for _, v in s["late"]], label="latecomer")
    ax.axvline(s["late_start"], color="grey", lw=0.5)
    ax.set_ylabel("Mbit/s")
    ax.set_xlabel("seconds")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "background-latecomer.png"), dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
