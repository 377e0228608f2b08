# check_history of operator_kill_test.sh: the change log (record_changes) and the Events against
# the plan of the cycles run.
# Usage: operator_kill_history.py CHANGES_JSONL EVENTS_JSON STEP CYCLES...
#   STEP: the step interval in seconds; CYCLES: straight or via, in the order they ran
import datetime, json, re, sys

changes_path, events_path, step = sys.argv[1], sys.argv[2], float(sys.argv[3])
cycles = sys.argv[4:]
ORIG = {"checkout": 2, "search": 3, "recommendations": 4, "batch": 3}
DEG = {"search": 2, "recommendations": 2, "batch": 1}
PREFIX = "stability.pi0.io/"
problems = []

def T(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

def ann(o):
    a = o["metadata"].get("annotations") or {}
    return {k[len(PREFIX):]: v for k, v in a.items() if k.startswith(PREFIX)}

lines = [json.loads(l) for l in open(changes_path)]
deps = [l for l in lines if "/deployments" in l["path"] and l["type"] != "SYNCED"]
hpas = [l for l in lines if "horizontalpodautoscalers" in l["path"] and l["type"] != "SYNCED"]

# (a) Every Deployment went through exactly the counts the cycles plan, in order, and the HPA
# through exactly its planned bounds. Catches a step taken twice that moved a count (a shutdown
# redone after a restore), a skipped step (3 -> 0 where 3 -> 1 -> 0 was planned), a count below
# the plan, a restore to anything but the original, a raise past the degraded count. search may
# pass 1 on its way to 0: between Pi0's cap of its HPA at 1 and its own scale to 0 (a kill
# there), the HPA controller may scale it to the cap. A straight cycle may also pass through
# elevated: on its way from 0.3 to 0.95 one poll can catch the agents' projected peak in the
# elevated band (0.73 has been seen), and the operator then rightly degrades the first elevated
# channel (batch, one step) before the level reaches critical.
per_cycle = {
    "batch": {"straight": "(,1)?,0,3", "via": ",1,0,1,3"},
    "search": {"straight": "(,2)?(,1)?,0,3", "via": ",2(,1)?,0,2,3"},
    "recommendations": {"straight": ",0,4", "via": ",2,0,2,4"},
    "checkout": {"straight": "", "via": ""},
}
def counts(items, key):
    seq = {}
    for l in items:
        o = l["object"]
        seq.setdefault(o["metadata"]["name"], [])
        v = key(o)
        if not seq[o["metadata"]["name"]] or seq[o["metadata"]["name"]][-1] != v:
            seq[o["metadata"]["name"]].append(v)
    return seq
replicas = counts(deps, lambda o: str(o["spec"]["replicas"]))
for name, orig in ORIG.items():
    pattern = "^%d%s$" % (orig, "".join(per_cycle[name][c] for c in cycles))
    seen = ",".join(replicas.get(name, []))
    if not re.match(pattern, seen):
        problems.append("Deployment %s went through %s; the plan is %s" % (name, seen, pattern))
bounds = counts(hpas, lambda o: "%s-%s" % (o["spec"].get("minReplicas"), o["spec"]["maxReplicas"]))
hpa_plan = {"straight": "(,2-2)?,1-1,2-6", "via": ",2-2,1-1,1-2,2-6"}
pattern = "^2-6%s$" % "".join(hpa_plan[c] for c in cycles)
seen = ",".join(bounds.get("search", []))
if not re.match(pattern, seen):
    problems.append("HPA search went through the bounds %s; the plan is %s" % (seen, pattern))

# (b) Dependencies, judged in the apiserver's order of the Deployments' versions: search reaches
# 0 only while recommendations is at 0 already (catches a shutdown that did not wait for its
# dependent, e.g. a new leader planning from a stale view); recommendations rises only while
# search is back (at least degraded, 3 when recommendations goes back to 4) with every replica
# ready and its status current (catches a restore that did not wait for its dependency).
last = {}
for l in deps:
    o = l["object"]
    name, r = o["metadata"]["name"], o["spec"]["replicas"]
    before = last.get(name)
    if l["type"] != "LISTED" and before is not None:
        if name == "search" and before["spec"]["replicas"] > 0 and r == 0:
            rec = last["recommendations"]["spec"]["replicas"]
            if rec != 0:
                problems.append("search went to 0 (version %s) while recommendations had %d replicas"
                                % (o["metadata"]["resourceVersion"], rec))
        if name == "recommendations" and r > before["spec"]["replicas"]:
            s = last["search"]
            st = s.get("status") or {}
            want = 3 if r == 4 else 2
            if not (s["spec"]["replicas"] >= want and st.get("readyReplicas", 0) >= s["spec"]["replicas"]
                    and st.get("observedGeneration", 0) >= s["metadata"]["generation"]):
                problems.append("recommendations rose to %d (version %s) while search was at %d "
                                "replicas, %d ready, status of generation %s of %s" % (
                                    r, o["metadata"]["resourceVersion"], s["spec"]["replicas"],
                                    st.get("readyReplicas", 0), st.get("observedGeneration"),
                                    s["metadata"]["generation"]))
    last[name] = o

# (c) checkout, critical, was never touched.
for l in deps:
    o = l["object"]
    if o["metadata"]["name"] == "checkout" and (o["spec"]["replicas"] != 2 or ann(o)):
        problems.append("checkout was touched: %s replicas, %s" % (o["spec"]["replicas"], ann(o)))

# (d) One step per interval: the last-action-time stamps of the degrade and shutdown writes
# (a version that stamps a new time and raises nothing) are at least a step interval apart. A
# new leader that stepped at once, ignoring its predecessor's last step (the status it had not
# written yet, or the stamp on a step cut short), puts two stamps closer. The HPA's stamp counts:
# a retry of search's degrade whose record its first try wrote stamps only the HPA (the cap)
# before it dies, and that retry is a step as much as any.
stamps = {}  # stamp -> the objects that carry it
prev = {}
for l in deps + hpas:
    o = l["object"]
    key = (l["path"], o["metadata"]["name"])
    stamp = ann(o).get("last-action-time")
    p = prev.get(key)
    if p is not None and stamp and stamp != ann(p).get("last-action-time"):
        if "/deployments" in l["path"]:
            up = o["spec"]["replicas"] > p["spec"]["replicas"]
        else:
            up = o["spec"]["maxReplicas"] > p["spec"]["maxReplicas"]
        if not up:
            kind = "Deployment" if "/deployments" in l["path"] else "HPA"
            stamps.setdefault(stamp, set()).add("%s %s" % (kind, o["metadata"]["name"]))
    prev[key] = o
ordered = sorted(stamps, key=T)
for a, b in zip(ordered, ordered[1:]):
    if T(b) - T(a) < step - 0.002:
        problems.append("two scale-down steps %.3f s apart: %s at %s, %s at %s; the interval is %g s"
                        % (T(b) - T(a), ", ".join(sorted(stamps[a])), a, ", ".join(sorted(stamps[b])), b, step))

# (e) The Events. Events of a replica killed with SIGKILL may be lost (they are sent from a
# background thread), so they are judged by what they say, and counted as at most one per step.
events = [e for e in json.load(open(events_path))["items"]
          if ((e.get("source") or {}).get("component") == "pi0-operator"
              or e.get("reportingComponent") == "pi0-operator")
          and (e.get("involvedObject") or {}).get("namespace") == "shop"]
def of(reason, kind):
    return [e for e in events if e["reason"] == reason and e["involvedObject"]["kind"] == kind]
# A Channel's step Event lists its targets "Deployment/x A -> B". A step taken again on a channel
# that had got there already (after a kill between the write and the status) changes nothing:
# every target "A -> A".
for reason in ("Degraded", "ShutDown", "Restoring"):
    for e in of(reason, "Channel"):
        pairs = re.findall(r"\w+/[a-z0-9.-]+ (\d+) -> (\d+)", e["message"])
        if not pairs or all(a == b for a, b in pairs):
            problems.append("%s on Channel %s changed nothing (x%d): %s" % (
                reason, e["involvedObject"]["name"], e.get("count") or 1, e["message"]))
# A workload's ScaledDown goes from a count above the step's target to that target (the
# degraded count or 0), from the original or degraded count (or 1, search's cap); ScaledUp goes up
# to the degraded or original count. Catches a scale to a count Pi0 never plans, and a
# "scale-down" from a count that was the target already.
for reason, down in (("ScaledDown", True), ("ScaledUp", False)):
    for e in of(reason, "Deployment"):
        name = e["involvedObject"]["name"]
        m = re.search(r"from (\d+) to (\d+) replicas", e["message"])
        if not m or name not in DEG:
            problems.append("%s on Deployment %s: %s" % (reason, name, e["message"]))
            continue
        a, b = int(m.group(1)), int(m.group(2))
        ok = (b in (DEG[name], 0) and a > b and a in (ORIG[name], DEG[name], 1 if name == "search" else -1)) \
            if down else (b in (DEG[name], ORIG[name]) and a < b)
        if not ok:
            problems.append("%s on Deployment %s goes from %d to %d: %s" % (reason, name, a, b, e["message"]))
# At most one Event per step: a step taken twice that still moved a count would show one more.
via, straight = cycles.count("via"), cycles.count("straight")
# (A straight cycle may take one degrade on its way through elevated, as above.)
most = {"Degraded": via + straight, "ShutDown": via + straight, "Restoring": 2 * via + straight}
for reason, limit in most.items():
    for name in DEG:
        got = sum(e.get("count") or 1 for e in of(reason, "Channel") if e["involvedObject"]["name"] == name)
        if got > limit:
            problems.append("%d %s Events on Channel %s, for %d steps" % (got, reason, name, limit))
print("history: %d Deployment versions, %d HPA versions, %d scale-down stamps, %d Events; "
      "counts: %s; HPA: %s" % (len(deps), len(hpas), len(stamps), len(events),
                               {k: ",".join(v) for k, v in replicas.items()}, ",".join(bounds.get("search", []))),
      file=sys.stderr)
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
