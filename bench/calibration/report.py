#!/usr/bin/python3
"""Judges every admission decision of a scripted day (bench/calibration/run.sh) against the load
that followed it, and prints the falsification and miss rates of each world as Markdown.

Ground truth is day.py's truth.csv (each node's load and pressure every second, and whether it
was in trouble) and ooms.csv (pods OOM-killed), never Pi0's own output:
  * an admitted pod was falsified when its node was in trouble at some second of the horizon
    that followed (from the second of the decision to HORIZON seconds later), or the pod was
    OOM-killed;
  * a denial was needless (a miss) when its node stayed out of trouble over that horizon.
falsification = falsified / admitted, miss = needless / denied. The ledger's own judgement (the
operator's outcomes) is printed beside it as a cross-check.

A falsified admission is also told apart by what its node showed when the pod came: *from calm*
when the node had been out of trouble for the horizon before and its PSI was under 0.05 at that
second (no gate reading pressure could have seen it coming), *under pressure* otherwise. And by
the episode of the script (day.json) that brought the trouble: active at the first second of
trouble, a leak for memory trouble (and for an OOM kill), another kind for cpu trouble, it had
*begun before* the decision (something a gate reads was already there) or *begun after* it
(nothing read at the decision could foresee it); *none* when no such episode was active (the
day's rhythm and the pods alone). A denial the psi gate's forecast made alone (PSI now within
the threshold, no other gate failing: pi0-webhook --gate-psi-lead) is counted apart, with how
many of those were needed.

Usage: report.py RESULTS_DIR [--horizon SECONDS] [--history-gate MODE] [--continued DIR]
"""

import argparse
import csv
import json
import math
import os
import re
import sqlite3
import sys
from collections import defaultdict


def load(out, horizon):
    day = json.load(open(os.path.join(out, "day.json")))
    trouble = defaultdict(dict)  # (world, node) -> {second in trouble: "cpu" or "memory"}
    pressure = {}  # (world, node, second) -> the higher PSI
    with open(os.path.join(out, "truth.csv")) as f:
        for row in csv.DictReader(f):
            key = (row["world"], row["node"])
            if row["trouble"]:
                trouble[key][int(row["t"])] = row["trouble"]
            pressure[key + (int(row["t"]),)] = max(float(row["psi_cpu"]),
                                                   float(row["psi_memory"]))
    ooms = set()
    with open(os.path.join(out, "ooms.csv")) as f:
        for row in csv.DictReader(f):
            ooms.add((row["world"], row["pod"]))
    decisions = []
    with open(os.path.join(out, "decisions.csv")) as f:
        for row in csv.DictReader(f):
            t = float(row["t"])
            seconds = trouble[(row["world"], row["node"])]
            first = next((s for s in range(math.floor(t), math.floor(t + horizon) + 1)
                          if s in seconds), None)
            calm = (pressure.get((row["world"], row["node"], math.floor(t)), 0) < 0.05 and
                    not any(s in seconds for s in range(math.floor(t - horizon), math.floor(t))))
            oom = (row["world"], row["pod"]) in ooms
            decisions.append(dict(world=row["world"], t=t, node=row["node"], pod=row["pod"],
                                  allowed=row["allowed"] == "1", message=row["message"],
                                  followed=first is not None, oom=oom, calm=calm,
                                  forecast=row["allowed"] != "1" and forecast_alone(row["message"]),
                                  cause=cause(day, row["node"], t, first,
                                              seconds.get(first, "memory"))))
    return day, trouble, decisions


FAILURE = re.compile(r"(?:cpu|memory|gpu) (fit_error|gluing_delta|psi|isolation) ([0-9.]+) [<>] "
                     r"([0-9.]+)(?: \(expected within \d+ s, ([0-9.]+) now\))?")


def forecast_alone(message):
    """Whether a denial was the psi gate's forecast alone: the closest node failed psi only, each
    time on what the forecast expected ("cpu psi 0.27 > 0.25 (expected within 10 s, 0.12 now)")
    with PSI now within the threshold. The history gate's denials are not."""
    closest = message.split("closest ", 1)
    if len(closest) < 2 or "history gate" in closest[1]:
        return False
    failures = FAILURE.findall(closest[1])
    return bool(failures) and all(g == "psi" and now and float(now) <= float(th)
                                  for g, _, th, now in failures)


def cause(day, node, t, first, kind):
    """When the script's episode behind a trouble began: "before" or "after" the decision at t,
    or "none". `first` is the trouble's first second within the horizon (None for an OOM kill
    alone: the leak active at the decision), `kind` its "cpu" or "memory"."""
    episodes = day["episodes"][int(node.rsplit("-", 1)[1]) - 1]
    at = t if first is None else first
    active = [e for e in episodes if e["start"] <= at < e["start"] + e["length"] and
              (e["kind"] == "leak") == (kind == "memory")]
    if not active:
        return "none"
    return "before" if any(e["start"] <= t for e in active) else "after"


def rates(decisions):
    admitted = [d for d in decisions if d["allowed"]]
    denied = [d for d in decisions if not d["allowed"]]
    falsified = sum(1 for d in admitted if d["followed"] or d["oom"])
    missed = sum(1 for d in denied if not d["followed"])
    return dict(decisions=len(decisions), admitted=len(admitted), falsified=falsified,
                denied=len(denied), missed=missed,
                falsification=falsified / len(admitted) if admitted else float("nan"),
                miss=missed / len(denied) if denied else float("nan"),
                needless=missed / len(decisions) if decisions else float("nan"))


def ledger_view(path):
    """The operator's own judgement, from its truth ledger."""
    if not os.path.exists(path):
        return None
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    row = db.execute("""
      SELECT
        SUM(d.verdict = 1),
        SUM(d.verdict = 1 AND EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_seq = d.seq
              AND o.kind IN ('node_trouble', 'oom_killed', 'evicted'))),
        SUM(d.verdict = 0),
        SUM(d.verdict = 0 AND EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_seq = d.seq
              AND o.kind = 'node_fine')),
        SUM(NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_seq = d.seq
              AND o.kind IN ('node_trouble', 'node_fine'))),
        COUNT(*)
      FROM decisions d""").fetchone()
    admitted, falsified, denied, missed, unjudged, total = (v or 0 for v in row)
    return dict(decisions=total, admitted=admitted, falsified=falsified, denied=denied,
                missed=missed, unjudged=unjudged)


def clock(hours):
    return "%02d:%02d" % (int(hours), round(60 * (hours - int(hours))))


def pct(x):
    return "n/a" if x != x else "%.1f %%" % (100 * x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--horizon", type=float, default=15)
    p.add_argument("--history-gate", default="Warn",
                   help="the Auto world's pi0-webhook --history-gate (the fixed world's: Warn)")
    p.add_argument("--continued", default="",
                   help="the earlier run whose thresholds and ledger the Auto world started from")
    args = p.parse_args()
    day, trouble, decisions = load(args.out, args.horizon)
    worlds = day["worlds"]
    length = day["lengthSeconds"]
    hour_seconds = day["hourSeconds"]
    print("# The calibration benchmark: a scripted day, fixed thresholds against Auto\n")
    print("Day \"%s\": %d hours of %g s, %d Nodes per world, seed %d, outcome horizon %g s; %d "
          "pods arrived per world. The Auto world's history gate: %s (the fixed world's: Warn, "
          "which changes no decision).\n" % (day.get("day", "mixed"), day["hours"], hour_seconds,
                                             day["nodes"], day["seed"], args.horizon,
                                             day["arrivals"], args.history_gate))
    if args.continued:
        print("A second day: the Auto world started with the thresholds, history and truth "
              "ledger that the run in %s ended with.\n" % os.path.basename(args.continued))
    by_world = {w: [d for d in decisions if d["world"] == w] for w in worlds}
    print("| world | decisions | admitted | falsified | falsification | denied | needless "
          "| miss | needless per decision | node-seconds in trouble |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for w in worlds:
        r = rates(by_world[w])
        summary[w] = r
        troubled = sum(len(s) for (world, _), s in trouble.items() if world == w)
        print("| %s | %d | %d | %d | %s | %d | %d | %s | %s | %d |" % (
            w, r["decisions"], r["admitted"], r["falsified"], pct(r["falsification"]),
            r["denied"], r["missed"], pct(r["miss"]), pct(r["needless"]), troubled))
    print()
    if "off" in summary and "auto" in summary:
        off, auto = summary["off"], summary["auto"]
        if off["falsification"] > 0:
            print("Falsification under Auto: %.2f of the fixed thresholds'. Miss rate: %+.1f "
                  "points; needless denials per decision: %+.1f points.\n" % (
                      auto["falsification"] / off["falsification"],
                      100 * (auto["miss"] - off["miss"]),
                      100 * (auto["needless"] - off["needless"])))
    print("Falsified admissions by what their node showed when the pod came:\n")
    for w in worlds:
        falsified = [d for d in by_world[w] if d["allowed"] and (d["followed"] or d["oom"])]
        calm = sum(1 for d in falsified if d["calm"])
        print("- %s: %d from calm, %d under pressure" % (w, calm, len(falsified) - calm))
    print("\nFalsified admissions by when the script's episode that brought the trouble began:\n")
    for w in worlds:
        falsified = [d for d in by_world[w] if d["allowed"] and (d["followed"] or d["oom"])]
        print("- %s: %s" % (w, ", ".join(
            "%d %s" % (sum(1 for d in falsified if d["cause"] == c), words)
            for c, words in (("before", "begun before the decision"),
                             ("after", "begun after it"), ("none", "with no episode")))))
    print()
    print("By quarter of the day (falsification / miss):\n")
    quarters = [(q * length / 4, (q + 1) * length / 4) for q in range(4)]
    print("| world | " + " | ".join("%s-%s" % (clock(a / hour_seconds), clock(b / hour_seconds))
                                      for a, b in quarters) + " |")
    print("|---|" + "---:|" * len(quarters))
    for w in worlds:
        cells = []
        for a, b in quarters:
            r = rates([d for d in by_world[w] if a <= d["t"] < b])
            cells.append("%s / %s (%d, %d)" % (pct(r["falsification"]), pct(r["miss"]),
                                               r["admitted"], r["denied"]))
        print("| %s | %s |" % (w, " | ".join(cells)))
    print("\n(admitted, denied) in brackets.\n")
    print("Why the webhooks denied:\n")
    for w in worlds:
        reasons = defaultdict(int)
        for d in by_world[w]:
            if not d["allowed"]:
                # As the webhook names them: "cpu psi 0.30 > 0.25", "the history gate: ...".
                for gate in ("fit_error", "gluing_delta", "psi", "isolation", "history"):
                    if " %s " % gate in d["message"]:
                        reasons[gate] += 1
        print("- %s: %s" % (w, ", ".join("%s in %d" % kv for kv in sorted(reasons.items()))
                            or "none"))
    print("\nDenied by the psi gate's forecast alone (PSI now within the threshold, no other "
          "gate failing), and of those the needed ones (the Node in trouble within the "
          "horizon):\n")
    for w in worlds:
        alone = [d for d in by_world[w] if d["forecast"]]
        print("- %s: %d, %d needed" % (w, len(alone), sum(1 for d in alone if d["followed"])))
    print("\nThe operators' own judgement (their truth ledgers; a cross-check):\n")
    print("| world | decisions | admitted | falsified | denied | needless | not judged |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for w in worlds:
        v = ledger_view(os.path.join(args.out, "ledger-%s.db" % w))
        if v:
            print("| %s | %d | %d | %d | %d | %d | %d |" % (
                w, v["decisions"], v["admitted"], v["falsified"], v["denied"], v["missed"],
                v["unjudged"]))
    for w in worlds:
        path = os.path.join(args.out, "gatepolicy-%s.json" % w)
        if not os.path.exists(path):
            continue
        policy = json.load(open(path))
        status = policy.get("status", {})
        history = status.get("history", [])
        print("\nGatePolicy day-%s: spec %s; thresholds at the end %s; %d changes%s" % (
            w, json.dumps(policy.get("spec", {}), sort_keys=True),
            json.dumps(status.get("thresholds", {}), sort_keys=True), len(history),
            ":" if history else "."))
        for h in history:
            print("- %s %s %s -> %s: %s" % (h.get("time"), h.get("gate"), h.get("from"),
                                           h.get("to"), h.get("reason")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
