#!/usr/bin/env python3
"""The background class at real round trips: bench/background_bench.py (quick: cubic alone,
background alone then cubic arriving and leaving, two flows, a latecomer) for every base round
trip, link rate and buffer of the matrix, each against cubic alone in its own run, and one table
of every figure against its target (docs/benchmarks.md "The background class at real round
trips"). About four minutes a point.

usage: bench/background_matrix.py BUILD_DIR OUT_DIR [RTT_MS,... [MBIT,... [BDP,...]]]
  defaults: 20,80,200  20,100  1,4.  A point whose OUT_DIR/<point>/background-bench.json exists
  is not run again (delete it to rerun); the table is printed from whatever is there."""
import json
import os
import subprocess
import sys

from background_bench import rtt_scaled_bound_s

here = os.path.dirname(os.path.abspath(__file__))


def cell(value, ok, fmt="%.2f"):
    text = "none" if value is None else (fmt % value)
    return text if ok else "**%s** ✘" % text


def row(rtt, mbit, bdp, r):
    b, t, late = r["background"], r["two_together"], r["latecomer"]["late_share"]
    bound = rtt_scaled_bound_s(mbit, rtt)
    below, back = b["below_25pct_after_s"], b["above_90pct_after_departure_s"]
    ramp = b.get("cubic_above_75pct_after_s")
    return "| %d ms, %d Mbit/s, %d × BDP | %s | %.0f / %.0f | %s / %s | %s (%s) | %s | %.1f s | %s | %s |" % (
        rtt, mbit, bdp,
        cell(b["alone_goodput_ratio"], b["alone_goodput_ratio"] >= 0.85, "%.3f"),
        b["alone_probe_p50_ms"], b["alone_probe_p95_ms"],
        cell(b["cubic_steady_ratio"], b["cubic_steady_ratio"] >= 0.90),
        cell(b["cubic_life_ratio"], b["cubic_life_ratio"] >= 0.85),
        cell(below, below is not None and below <= bound, "%.1f s"), "none" if ramp is None else "%.1f s" % ramp,
        cell(back, back is not None and back <= bound, "%.1f s"), bound,
        cell(t["jain"], t["jain"] >= 0.95, "%.3f"), cell(late, 0.35 <= late <= 0.65, "%.2f"))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    rtts = [int(v) for v in (sys.argv[3] if len(sys.argv) > 3 else "20,80,200").split(",")]
    mbits = [int(v) for v in (sys.argv[4] if len(sys.argv) > 4 else "20,100").split(",")]
    bdps = [int(v) for v in (sys.argv[5] if len(sys.argv) > 5 else "1,4").split(",")]
    os.makedirs(out, exist_ok=True)
    rows = []
    for rtt in rtts:
        for mbit in mbits:
            for bdp in bdps:
                point = os.path.join(out, "%dms-%dmbit-%dbdp" % (rtt, mbit, bdp))
                result = os.path.join(point, "background-bench.json")
                if not os.path.exists(result):
                    env = dict(os.environ, PD_BG_DELAY_MS=str(rtt / 2), PD_BG_MBIT=str(mbit), PD_BG_QUEUE_BDP=str(bdp))
                    with open(point + ".log", "w") as log:
                        subprocess.run([sys.executable, os.path.join(here, "background_bench.py"), build, point, "quick"],
                                       env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
                if os.path.exists(result):
                    with open(result) as f:
                        rows.append(row(rtt, mbit, bdp, json.load(f)))
                else:
                    rows.append("| %d ms, %d Mbit/s, %d × BDP | failed: see %s.log |" % (rtt, mbit, bdp, point))
    print("| base RTT, link, buffer | alone ÷ cubic alone (≥ 0.85) | queueing p50 / p95, ms (≤ 50 / ≤ 100) "
          "| cubic steady / life ÷ alone (≥ 0.90 / ≥ 0.85) | under 25 % after cubic arrives (cubic's own ramp to 75 %) "
          "| over 90 % after it leaves | bound | Jain (≥ 0.95) | latecomer (0.35–0.65) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
