# demo_test.sh's check of the facts of the demo's summary (its --summary-json); prints what
# does not hold. Usage: demo_summary_check.py SUMMARY_JSON
import json, sys
s = json.load(open(sys.argv[1]))
problems = []
def check(cond, what):
    if not cond:
        problems.append(what)
levels = s["levels"]
check(levels[:1] == ["normal"] and levels[-1:] == ["normal"], "levels start and end at normal: %s" % levels)
for want in ("elevated", "high", "critical"):
    check(want in levels, "level %s reached: %s" % (want, levels))
check(s["highestLevel"] == "critical" and s["maxLoad"] > 0.9, "highest critical, load > 0.9")
check(s["finalLevel"] == "normal" and s["finalLoad"] < 0.65, "final level normal, load < 0.65")
st = s["steps"]
check(st["Degraded"] >= 1 and st["ShutDown"] >= 1 and st["Restored"] >= 1,
      "at least one Degraded, ShutDown and Restored step: %s" % st)
check(st["ScaleFailed"] == 0 and st["RestoreStalled"] == 0, "no failed or stalled step: %s" % st)
acts = s["operatorActions"]
check(acts["shutdown"] == st["ShutDown"] and acts["restore"] >= st["Restored"],
      "the operator's action counters agree with the Events: %s %s" % (acts, st))
a = s["admission"]
check(a["allowed"] >= 1 and a["denied"] >= 1, "a pod allowed and one denied: %s" % a)
check(all(p["result"] == p["expect"] for p in a["probes"]), "every probe as expected: %s" % a["probes"])
reasons = {p["reason"] for p in a["probes"] if p["result"] == "denied"}
check({"ChannelInactive", "BufferExhausted", "GatesFailed", "Invalid"} <= reasons,
      "the denials' reasons from pi0-webhook's log: %s" % reasons)
check(all(p["message"] for p in a["probes"] if p["result"] == "denied"), "each denial has a message")
pods = a["webhookDecisions"].get("pods", {})
check(pods.get("allowed/Passed", 0) >= a["allowed"] + 18,
      "pi0-webhook's metrics count the allowed pods (the shop's 18 and the demo's): %s" % pods)
check(sum(v for k, v in pods.items() if k.startswith("denied/")) >= a["denied"],
      "pi0-webhook's metrics count the denials: %s" % pods)
# The operator announces a restore before it scales up, and pi0-webhook lets a restoring
# channel's pods through: none of them is denied (it used to be 10 to 20 a run).
check(a["restoredDenied"] == [], "no pod of a restoring channel denied: %s" % a["restoredDenied"])
matrices = a["webhookDecisions"].get("shutdownmatrices", {})
check(a["resourcesDenied"] == 1 and matrices.get("denied/Invalid") == 1
      and matrices.get("allowed/Valid", 0) >= 1,
      "the too-tight ShutdownMatrix refused, the example's admitted: %s" % matrices)
check(a["webhookDecisions"].get("channels", {}).get("allowed/Valid", 0) >= 5,
      "the example's five Channels validated: %s" % a["webhookDecisions"].get("channels"))
w = s["workloads"]
check(sorted(w) == ["api", "batch-reports", "database", "frontend", "recommendations",
                    "recommendations-cache"], "the six workloads: %s" % sorted(w))
for name, r in w.items():
    check(r["original"] is not None and r["original"] > 0 and r["replicas"] == r["original"]
          and r["ready"] == r["original"] and not r["annotations"],
          "%s back at its original replicas, ready, unannotated: %s" % (name, r))
check(w["batch-reports"]["original"] == 2 and w["recommendations"]["original"] == 4,
      "the originals are examples/resources/'s")
check(s["restored"] and not s["notRestored"] and not s["channelsNotActive"], "restored")
p = s["prometheus"]
check(len(p["targetsUp"]) == 5 and not p["targetsDown"], "five targets up: %s" % p)
check(p["peakLevel"] == 3 and p["peakLoad"] > 0.9, "Prometheus saw level 3 and load > 0.9: %s" % p)
check(s["ok"] and not s["problems"], "the demo found no problem: %s" % s["problems"])
for x in problems:
    print("  not true: " + x, file=sys.stderr)
sys.exit(1 if problems else 0)
