#!/usr/bin/python3
"""Pools the scripted days of several calibration runs (bench/calibration/run.sh --out DIR) into
one comparison of the fixed thresholds against Auto, judged as report.py judges each day.

One day's falsified admissions are a handful (2 to 30 a world), and the same seed's fixed world
gave 2 to 11 in runs a few hours apart: a ratio from one day is mostly noise. This prints each
day's counts and the pooled ones, with the ratio of the pooled falsification rates and its 95 %
confidence interval (Katz's log method: the rates as independent binomial proportions), the
pooled miss rates, and the falsified admissions by when the script's episode that brought their
trouble began (report.py: before the decision, after it, none).

Usage: pool.py DIR [DIR ...] [--horizon SECONDS]
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import load, pct, rates  # noqa: E402


def ratio_interval(x1, n1, x0, n0):
    """(x1/n1) / (x0/n0) and its 95 % interval; None where a count is 0."""
    if min(x1, x0) == 0 or min(n1, n0) == 0:
        return None
    r = (x1 / n1) / (x0 / n0)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)
    return r, r * math.exp(-1.96 * se), r * math.exp(1.96 * se)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--horizon", type=float, default=15)
    args = p.parse_args()
    total = {w: dict(admitted=0, falsified=0, denied=0, missed=0) for w in ("off", "auto")}
    causes = {w: dict(before=0, after=0, none=0) for w in ("off", "auto")}
    alone = {w: [0, 0] for w in ("off", "auto")}  # denied by the psi forecast alone, needed
    print("| run | day, seed | fixed: falsified / admitted | Auto: falsified / admitted "
          "| fixed miss | Auto miss |")
    print("|---|---|---:|---:|---:|---:|")
    for run in args.runs:
        day, _, decisions = load(run, args.horizon)
        r = {w: rates([d for d in decisions if d["world"] == w]) for w in ("off", "auto")}
        for w in total:
            for k in total[w]:
                total[w][k] += r[w][k]
            for d in decisions:
                if d["world"] == w and d["allowed"] and (d["followed"] or d["oom"]):
                    causes[w][d["cause"]] += 1
                if d["world"] == w and d["forecast"]:
                    alone[w][0] += 1
                    alone[w][1] += d["followed"]
        print("| %s | %s, %d | %d / %d (%s) | %d / %d (%s) | %s | %s |" % (
            os.path.basename(os.path.normpath(run)), day.get("day", "mixed"), day["seed"],
            r["off"]["falsified"], r["off"]["admitted"], pct(r["off"]["falsification"]),
            r["auto"]["falsified"], r["auto"]["admitted"], pct(r["auto"]["falsification"]),
            pct(r["off"]["miss"]), pct(r["auto"]["miss"])))
    off, auto = total["off"], total["auto"]

    def rate(x, n):
        return x / n if n else float("nan")

    print("| **pooled** | %d days | %d / %d (%s) | %d / %d (%s) | %s | %s |\n" % (
        len(args.runs), off["falsified"], off["admitted"],
        pct(rate(off["falsified"], off["admitted"])), auto["falsified"], auto["admitted"],
        pct(rate(auto["falsified"], auto["admitted"])), pct(rate(off["missed"], off["denied"])),
        pct(rate(auto["missed"], auto["denied"]))))
    ri = ratio_interval(auto["falsified"], auto["admitted"], off["falsified"], off["admitted"])
    if ri:
        print("Falsification under Auto, pooled: %.2f of the fixed thresholds' (95 %% interval "
              "%.2f-%.2f). Miss rate: %+.1f points." % (
                  ri[0], ri[1], ri[2],
                  100 * (rate(auto["missed"], auto["denied"]) -
                         rate(off["missed"], off["denied"]))))
    else:
        print("No ratio: a world falsified no admission.")
    print("\nFalsified admissions by when the episode that brought the trouble began (fixed → "
          "Auto): before the decision %d → %d, after it %d → %d, no episode %d → %d." % (
              causes["off"]["before"], causes["auto"]["before"], causes["off"]["after"],
              causes["auto"]["after"], causes["off"]["none"], causes["auto"]["none"]))
    print("\nDenied by the psi gate's forecast alone (PSI now within the threshold, no other gate "
          "failing): fixed %d (%d needed), Auto %d (%d needed)." % (
              alone["off"][0], alone["off"][1], alone["auto"][0], alone["auto"][1]))


if __name__ == "__main__":
    main()
