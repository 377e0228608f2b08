# The snapshot of the cluster that tests/operator/lib.sh saves in WORK (`snapshot`), and Python
# expressions evaluated over it.
# Usage: state.py WORK show|value|check|explain [--var NAME=VALUE]... [EXPR...]
#   show     print the state (stderr); value: print EXPR's value; check: exit 0 when every EXPR
#            is true; explain: the same, printing the expressions that are not
# An expression reads:
#   D[name]  Deployment: replicas (spec), ready, gen (metadata.generation), ann (the
#            stability.pi0.io/ annotations, prefix removed)
#   H[name]  HPA: min, max, ann
#   C[name]  Channel status ({} before the operator writes one); M[name] ShutdownMatrix status,
#            MG[name] its metadata.generation
#   E        pi0-operator's Events: reason, type, kind, name, ns, instance, component, t (epoch
#            seconds of the first occurrence), count, message; sorted by t
#   ev(reason, kind=None, name=None) -> matching Events; n(...) -> the sum of their counts
#   cond(status, type) -> the condition of that type ({} when absent); T(rfc3339) -> epoch
#   V[name]  values given with --var NAME=VALUE (numbers when they parse)
import datetime, json, sys

work, mode = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
V = {}
while len(args) >= 2 and args[0] == "--var":
    name, value = args[1].split("=", 1)
    try:
        value = float(value)
    except ValueError:
        pass
    V[name] = value
    args = args[2:]

def items(name):
    try:
        return json.load(open("%s/%s.json" % (work, name))).get("items") or []
    except (OSError, ValueError):
        return []

def T(ts):
    if not ts:
        return None
    ts = ts.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(ts).timestamp()

PREFIX = "stability.pi0.io/"
def ann(o):
    a = o["metadata"].get("annotations") or {}
    return {k[len(PREFIX):]: v for k, v in a.items() if k.startswith(PREFIX)}

D = {o["metadata"]["name"]: {"replicas": o["spec"].get("replicas"),
                             "ready": (o.get("status") or {}).get("readyReplicas", 0),
                             "gen": o["metadata"].get("generation"), "ann": ann(o)}
     for o in items("deployments")}
H = {o["metadata"]["name"]: {"min": o["spec"].get("minReplicas"),
                             "max": o["spec"].get("maxReplicas"), "ann": ann(o)}
     for o in items("hpas")}
C = {o["metadata"]["name"]: o.get("status") or {} for o in items("channels")}
MS = {o["metadata"]["name"]: o.get("spec") or {} for o in items("matrices")}
M = {o["metadata"]["name"]: o.get("status") or {} for o in items("matrices")}
MG = {o["metadata"]["name"]: o["metadata"].get("generation") for o in items("matrices")}
E = []
for e in items("events"):
    src = (e.get("source") or {}).get("component") or ""
    if src != "pi0-operator" and e.get("reportingComponent") != "pi0-operator":
        continue
    first = e.get("eventTime") or e.get("firstTimestamp") or e.get("lastTimestamp")
    io = e.get("involvedObject") or {}
    E.append({"reason": e.get("reason"), "type": e.get("type"), "kind": io.get("kind"),
              "name": io.get("name"), "ns": io.get("namespace"),
              "instance": e.get("reportingInstance"), "component": src, "t": T(first),
              "count": e.get("count") or 1, "message": e.get("message"), "ref": io})
E.sort(key=lambda e: (e["t"] or 0))

def ev(reason, kind=None, name=None):
    return [e for e in E if e["reason"] == reason and (kind is None or e["kind"] == kind)
            and (name is None or e["name"] == name)]

def n(reason, kind=None, name=None):
    return sum(e["count"] for e in ev(reason, kind, name))

def cond(status, type_):
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return {}

def show():
    out = sys.stderr
    print("  Deployments (replicas ready generation annotations):", file=out)
    for name, d in sorted(D.items()):
        print("    %-16s %s %s gen=%s %s" % (name, d["replicas"], d["ready"], d["gen"], d["ann"]),
              file=out)
    for name, h in sorted(H.items()):
        print("  HPA %s: min=%s max=%s %s" % (name, h["min"], h["max"], h["ann"]), file=out)
    for name, c in sorted(C.items()):
        conds = ["%s=%s(%s: %s)" % (x.get("type"), x.get("status"), x.get("reason"),
                                    x.get("message")) for x in c.get("conditions") or []]
        print("  Channel %s: state=%s level=%s replicas=%s %s" % (
            name, c.get("state"), c.get("level"), c.get("replicas"), "; ".join(conds)), file=out)
    for name, m in sorted(M.items()):
        print("  ShutdownMatrix %s (mode %s): %s" % (name, MS[name].get("mode"),
                                                     json.dumps(m, sort_keys=True)), file=out)
    print("  pi0-operator Events (time reason type object instance count: message):", file=out)
    for e in E:
        t = datetime.datetime.utcfromtimestamp(e["t"]).strftime("%H:%M:%S") if e["t"] else "?"
        print("    %s %-15s %-7s %s/%s %s x%s: %s" % (
            t, e["reason"], e["type"], e["kind"], e["name"], e["instance"], e["count"],
            e["message"]), file=out)
        if not e["kind"]:
            print("      ^ involvedObject without a kind: %s" % json.dumps(e["ref"]), file=out)

if mode == "show":
    show()
    sys.exit(0)
if mode == "value":
    print(eval(args[0]))
    sys.exit(0)
failed = []
for x in args:
    try:
        if not eval(x):
            failed.append("not true: " + x)
    except Exception as e:  # e.g. an Event or annotation that is not there
        failed.append("%s: %r in: %s" % (type(e).__name__, e, x))
if failed:
    if mode == "explain":
        for x in failed:
            print("  " + x, file=sys.stderr)
    sys.exit(1)
