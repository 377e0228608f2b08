# The Python half of scripts/demo.sh, which runs it with PI0_APISERVER, PI0_TOKEN, PI0_CA_FILE,
# DEMO_NS and DEMO_WORK in the environment: talks to the apiserver (its token and CA), the
# agents and the programs' /metrics. Modes: watch (the live log), wait, snapshot, peak, summary.
import datetime, http.client, json, os, re, signal, ssl, sys, time, urllib.parse, urllib.request

SERVER = urllib.parse.urlsplit(os.environ["PI0_APISERVER"])
TOKEN = os.environ["PI0_TOKEN"]
CTX = ssl.create_default_context(cafile=os.environ["PI0_CA_FILE"])
NS = os.environ["DEMO_NS"]
WORK = os.environ["DEMO_WORK"]
COLOR = os.environ.get("DEMO_COLOR") == "1"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LEVEL_NAMES = ["normal", "elevated", "high", "critical"]


def paint(code, text):
    return "\033[%sm%s\033[0m" % (code, text) if COLOR else text


def say(kind, text):
    print("%s  %-9s %s" % (time.strftime("%H:%M:%S"), kind, text), flush=True)


class Api:
    def __init__(self):
        self.conn = None

    def get(self, path):
        for _ in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(SERVER.hostname, SERVER.port,
                                                        context=CTX, timeout=10)
            try:
                self.conn.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                time.sleep(0.2)
                continue
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise RuntimeError("GET %s: HTTP %d" % (path, resp.status))
            return json.loads(body)
        raise RuntimeError("GET %s: the apiserver does not answer" % path)


API = Api()
PREFIX = "stability.pi0.io/"


def workloads():
    out = {}
    for kind, path in (("Deployment", "/apis/apps/v1/namespaces/%s/deployments" % NS),
                       ("StatefulSet", "/apis/apps/v1/namespaces/%s/statefulsets" % NS)):
        for o in (API.get(path) or {}).get("items", []):
            ann = o["metadata"].get("annotations") or {}
            out[o["metadata"]["name"]] = {
                "kind": kind, "replicas": o["spec"].get("replicas", 1),
                "ready": (o.get("status") or {}).get("readyReplicas", 0),
                "pi0": {k[len(PREFIX):]: v for k, v in ann.items() if k.startswith(PREFIX)}}
    return out


def channels():
    items = (API.get("/apis/stability.pi0.io/v1alpha1/namespaces/%s/channels" % NS) or {})
    return {o["metadata"]["name"]: (o.get("status") or {}) for o in items.get("items", [])}


def matrix():
    m = API.get("/apis/stability.pi0.io/v1alpha1/shutdownmatrices/default") or {}
    return m.get("status") or {}


def channel_of_pod():
    """A function from a pod's name to its Channel's name (None when none), through the
    Channels' spec.targets: a Deployment's pods are named DEPLOYMENT-HASH-SUFFIX (the
    ReplicaSet's name and a suffix), a StatefulSet's STATEFULSET-ORDINAL."""
    patterns = []
    items = API.get("/apis/stability.pi0.io/v1alpha1/namespaces/%s/channels" % NS) or {}
    for o in items.get("items", []):
        for t in (o.get("spec") or {}).get("targets") or []:
            tail = r"-\d+" if t.get("kind") == "StatefulSet" else r"-[a-z0-9]+-[a-z0-9]+"
            patterns.append((re.compile(re.escape(t.get("name", "")) + tail),
                             o["metadata"]["name"]))

    def of(pod):
        return next((ch for pattern, ch in patterns if pattern.fullmatch(pod)), None)
    return of


def epoch(rfc3339):
    """Seconds since the epoch of an RFC 3339 time as Pi0 logs it ("...T09:51:46.123Z")."""
    try:
        return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def operator_events():
    out = []
    for e in (API.get("/api/v1/events") or {}).get("items", []):
        src = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        if src != "pi0-operator":
            continue
        io = e.get("involvedObject") or {}
        # pi0-operator names an Event OBJECT.NANOSECONDS-IN-HEX: its exact time.
        try:
            t = int(e["metadata"]["name"].rsplit(".", 1)[1], 16) / 1e9
        except (IndexError, ValueError):
            t = 0
        out.append({"uid": e["metadata"]["uid"], "reason": e.get("reason"), "type": e.get("type"),
                    "kind": io.get("kind"), "name": io.get("name"), "count": e.get("count") or 1,
                    "message": e.get("message") or "", "t": t})
    out.sort(key=lambda e: e["t"])
    return out


def metrics(url, ctx=None):
    """{series: value} of a Prometheus text exposition (HTTPS verified with ctx)."""
    opener = DIRECT if ctx is None else urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            try:
                out[series] = float(value)
            except ValueError:
                pass
    return out


def load_json(name, default):
    try:
        with open(os.path.join(WORK, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


# ---------------------------------------------------------------------------------------------
# watch: the live log. Prints changes of the matrix's load and level, the operator's Events on
# Channels (each step), pods that appear in the namespace (admitted by the webhook), and the
# webhook's denials of pods the demo did not create itself (those it prints on its own).

STEP_REASONS = {"Degraded": "33", "ShutDown": "31", "Restoring": "36", "Restored": "32",
                "RestoreStalled": "31", "RestoreRetried": "33", "ScaleFailed": "31",
                "TargetMissing": "33", "InvalidSpec": "31", "AgentUnreachable": "31",
                "AgentRecovered": "32"}


def say_level(text, level):
    idx = LEVEL_NAMES.index(level) if level in LEVEL_NAMES else 0
    say("level", paint("1;3%d" % (2 if idx == 0 else 3 if idx < 3 else 1), text))


def watch(interval):
    facts = {"levels": [], "maxLoad": None, "events": [], "controllerAdmitted": 0,
             "controllerDenied": []}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    seen_events = {e["uid"]: e["count"] for e in operator_events()}
    seen_pods = set(p["metadata"]["name"] for p in
                    (API.get("/api/v1/namespaces/%s/pods" % NS) or {}).get("items", []))
    webhook_log = os.path.join(WORK, "webhook.log")
    log_offset = os.path.getsize(webhook_log) if os.path.exists(webhook_log) else 0
    last_level, last_load = None, None

    def save():
        with open(os.path.join(WORK, "facts.json.new"), "w") as f:
            json.dump(facts, f)
        os.replace(os.path.join(WORK, "facts.json.new"), os.path.join(WORK, "facts.json"))

    while not stop:
        t0 = time.time()
        try:
            probes = set(load_json("probes.json", []))
            # The level as it changes: the matrix's LevelChanged Events, in order with the
            # steps (its status is written after the steps it leads to); the load from its status.
            m = matrix()
            level, load = m.get("level"), m.get("load")
            if load is not None:
                facts["maxLoad"] = max(load, facts["maxLoad"] or 0)
            if last_level is None and level is not None:
                say_level("%-8s load %.2f" % (level, load or 0), level)
                facts["levels"].append({"t": time.time(), "level": level, "load": load})
                last_level, last_load = level, load

            for e in operator_events():
                if seen_events.get(e["uid"]) == e["count"]:
                    continue
                seen_events[e["uid"]] = e["count"]
                facts["events"].append({k: e[k] for k in ("reason", "kind", "name", "message")})
                changed = re.match(r"level (\S+) -> (\S+) at load ([0-9.]+)", e["message"])
                if e["reason"] == "LevelChanged" and changed:
                    last_level, last_load = changed.group(2), float(changed.group(3))
                    say_level(e["message"][len("level "):], last_level)
                    facts["levels"].append({"t": e["t"], "level": last_level, "load": last_load})
                elif e["kind"] in ("Channel", "Node") or e["reason"] == "InvalidSpec":
                    color = STEP_REASONS.get(e["reason"], "0")
                    say("step" if e["kind"] == "Channel" else e["kind"].lower(),
                        "%s %s: %s" % (paint(color, "%-9s" % e["reason"]), e["name"], e["message"]))
            if load is not None and last_load is not None and abs(load - last_load) >= 0.05:
                say("load", "%.2f (level %s)" % (load, level))
                last_load = load

            pods = (API.get("/api/v1/namespaces/%s/pods" % NS) or {}).get("items", [])
            new = {}
            for p in pods:
                name = p["metadata"]["name"]
                if name in seen_pods:
                    continue
                seen_pods.add(name)
                if name in probes:
                    continue
                owner = (p["metadata"].get("ownerReferences") or [{}])[0]
                key = "%s %s" % (owner.get("kind", "?"), owner.get("name", "?"))
                new.setdefault(key, []).append(name)
            for key, names in sorted(new.items()):
                facts["controllerAdmitted"] += len(names)
                say("admission", "%s %d pod%s of %s" % (
                    paint("32", "allowed"), len(names), "" if len(names) == 1 else "s", key))

            # Denials, grouped by the pods' owner (the name without its random suffix) and
            # reason: a ReplicaSet retries a denied pod under a new name.
            if os.path.exists(webhook_log):
                with open(webhook_log, "rb") as f:
                    f.seek(log_offset)
                    chunk = f.read()
                cut = chunk.rfind(b"\n") + 1
                log_offset += cut
                denied = {}
                for line in chunk[:cut].decode(errors="replace").splitlines():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    pod = (rec.get("pod") or "").split("/")[-1]
                    if rec.get("msg") != "pod denied" or pod in probes:
                        continue
                    facts["controllerDenied"].append(rec)
                    key = (pod.rsplit("-", 1)[0], rec.get("reason"))
                    denied.setdefault(key, []).append(rec.get("message"))
                for (owner, reason), messages in denied.items():
                    say("admission", "%s %d pod%s of %s (%s): %s" % (
                        paint("31", "denied"), len(messages), "" if len(messages) == 1 else "s",
                        owner, reason, messages[-1]))
            save()
        except Exception as e:  # the apiserver went away (the demo is ending): stop quietly
            if stop:
                break
            say("watch", "cannot read the cluster: %s" % e)
        time.sleep(max(0.0, interval - (time.time() - t0)))
    save()


# ---------------------------------------------------------------------------------------------
# wait TIMEOUT EXPR: until EXPR holds over M (the matrix status), C (Channel states), CS
# (Channel statuses), W (workloads); 1 on timeout.

def wait(timeout, expr):
    deadline = time.time() + timeout
    while True:
        M, W = matrix(), workloads()
        CS = channels()
        C = {n: s.get("state") for n, s in CS.items()}
        try:
            if eval(expr):
                return 0
        except (KeyError, TypeError):
            pass
        if time.time() >= deadline:
            return 1
        time.sleep(0.3)


# peak URL: the projected cpu peak of an agent's fingerprint (once its window is full).
def peak(url, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            with DIRECT.open(url + "/fingerprint", timeout=2) as r:
                fp = json.load(r)
            p = ((fp.get("signals") or {}).get("cpu") or {}).get("projectedPeak")
            if fp.get("ready") and p is not None:
                print("%.4f" % p)
                return 0
        except (OSError, ValueError):
            pass
        if time.time() >= deadline:
            return 1
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# summary: what happened, from the watcher's facts, the cluster, the programs' metrics and
# Prometheus. Prints it, writes it as JSON, exits 1 unless everything went as expected.

def summary(out_json, operator_url, webhook_url, prometheus_url, ca_file):
    facts = load_json("facts.json", {})
    processes = load_json("processes.json", {})
    probes = load_json("probe-results.json", [])
    original = load_json("original.json", {})
    W, C, M = workloads(), channels(), matrix()
    events = operator_events()
    count = lambda reason: sum(e["count"] for e in events if e["reason"] == reason
                               and e["kind"] == "Channel")
    op = metrics(operator_url + "/metrics")
    actions = {a: int(op.get('pi0_operator_actions_total{action="%s",result="ok"}' % a, 0))
               for a in ("degrade", "shutdown", "restore")}
    wh = metrics(webhook_url + "/metrics", ssl.create_default_context(cafile=ca_file))
    decisions = {}  # {endpoint: {result/reason: count}}
    for series, v in wh.items():
        mt = re.match(r'pi0_webhook_decisions_total\{(.*)\}', series)
        if not mt or not v:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', mt.group(1)))
        decisions.setdefault(labels.get("endpoint"), {})[
            "%s/%s" % (labels.get("result"), labels.get("reason"))] = int(v)

    def prom(query):
        url = prometheus_url + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with DIRECT.open(url, timeout=5) as r:
                res = json.load(r)["data"]["result"]
            return res
        except (OSError, ValueError, KeyError):
            return None
    up = prom("up") or []
    prom_facts = {
        "targetsUp": sorted("%s %s" % (r["metric"].get("job"), r["metric"].get("instance"))
                            for r in up if r["value"][1] == "1"),
        "targetsDown": sorted("%s %s" % (r["metric"].get("job"), r["metric"].get("instance"))
                              for r in up if r["value"][1] != "1"),
    }
    peak_level = prom('max_over_time(pi0_operator_level{matrix="default"}[30m])')
    peak_load = prom('max_over_time(pi0_operator_load{matrix="default"}[30m])')
    prom_facts["peakLevel"] = float(peak_level[0]["value"][1]) if peak_level else None
    prom_facts["peakLoad"] = float(peak_load[0]["value"][1]) if peak_load else None

    levels = [x["level"] for x in facts.get("levels", [])]
    reached = sorted(set(levels), key=lambda l: LEVEL_NAMES.index(l) if l in LEVEL_NAMES else 9)
    highest = reached[-1] if reached else None
    restored = {n: {"original": original.get(n), "replicas": w["replicas"], "ready": w["ready"],
                    "annotations": w["pi0"]} for n, w in sorted(W.items())}
    not_back = [n for n, r in restored.items()
                if r["original"] is None or r["replicas"] != r["original"]
                or r["ready"] != r["original"] or r["annotations"]]
    not_active = sorted(n for n, s in C.items() if s.get("state") != "Active")
    unexpected = [p for p in probes if p["result"] != p["expect"]]
    # Pods a restore brought back and pi0-webhook denied: a denial as ChannelInactive or
    # BufferExhausted of a pod of a channel whose restore had begun (its Restoring Event, or
    # RollingBack for the undoing of a step, at or before the denial) and that was not degraded
    # or shut down again since. The operator announces a restore in the matrix's status before
    # it scales up, and the webhook lets a restoring channel's pods through, so there are none.
    # The Event is recorded right after the scale writes that make the ReplicaSets create the
    # pods (a channel's first pods can be denied 20 ms before it), so a denial up to 1 s before
    # it counts too (a channel at rest creates no pods to deny).
    pod_channel = channel_of_pod()
    up = ("Restoring", "RollingBack")
    moves = {}  # {channel: [(t, reason)]}, the operator's steps on each
    for e in events:
        if e["kind"] == "Channel" and e["reason"] in up + ("Degraded", "ShutDown"):
            moves.setdefault(e["name"], []).append((e["t"], e["reason"]))
    restored_denied = []
    for rec in facts.get("controllerDenied", []):
        if rec.get("reason") not in ("ChannelInactive", "BufferExhausted"):
            continue
        pod = (rec.get("pod") or "").split("/")[-1]
        channel, t = pod_channel(pod), epoch(rec.get("ts"))
        if channel is None or t is None:
            continue
        last = [reason for at, reason in sorted(moves.get(channel, []))
                if at <= t + (1 if reason in up else 0)]
        if last and last[-1] in up:
            restored_denied.append({"pod": pod, "channel": channel, "reason": rec.get("reason"),
                                    "ts": rec.get("ts"), "message": rec.get("message")})
    s = {
        "levels": levels, "highestLevel": highest, "maxLoad": facts.get("maxLoad"),
        "finalLevel": M.get("level"), "finalLoad": M.get("load"),
        "steps": {"Degraded": count("Degraded"), "ShutDown": count("ShutDown"),
                  "Restoring": count("Restoring"), "Restored": count("Restored"),
                  "RestoreStalled": count("RestoreStalled"), "ScaleFailed": count("ScaleFailed")},
        "operatorActions": actions,
        "admission": {
            "probes": probes,  # the demo's own requests: pods, and a ShutdownMatrix ("Kind/name")
            "allowed": sum(1 for p in probes if p["result"] == "allowed" and "/" not in p["name"]),
            "denied": sum(1 for p in probes if p["result"] == "denied" and "/" not in p["name"]),
            "resourcesDenied": sum(1 for p in probes if p["result"] == "denied" and "/" in p["name"]),
            "controllerAdmitted": facts.get("controllerAdmitted", 0),
            "controllerDenied": len(facts.get("controllerDenied", [])),
            # The pods of restoring channels that were denied (see above): none expected.
            "restoredDenied": restored_denied,
            "webhookDecisions": decisions,
        },
        "workloads": restored, "notRestored": not_back, "channelsNotActive": not_active,
        "restored": not not_back and not not_active and M.get("level") == "normal",
        "prometheus": prom_facts,
        # What the demo started (the control plane's too), for a test that it stops them all.
        "processes": processes, "workDir": WORK, "clusterDir": os.environ.get("PI0_CLUSTER_DIR"),
    }
    problems = []
    for want in ("elevated", "high", "critical"):
        if want not in levels:
            problems.append("level %s was never reached" % want)
    if levels and levels[-1] != "normal":
        problems.append("the level ended at %s, not normal" % levels[-1])
    for reason in ("Degraded", "ShutDown", "Restored"):
        if not s["steps"][reason]:
            problems.append("no %s step" % reason)
    if s["steps"]["ScaleFailed"]:
        problems.append("%d scale steps failed" % s["steps"]["ScaleFailed"])
    for p in unexpected:
        problems.append("%s was %s, expected %s" % (p["name"], p["result"], p["expect"]))
    if restored_denied:
        problems.append("%d pods of restoring channels denied: %s" % (
            len(restored_denied), ", ".join("%s (%s, %s)" % (d["pod"], d["channel"], d["reason"])
                                            for d in restored_denied[:5]) +
            (", ..." if len(restored_denied) > 5 else "")))
    if not_back:
        problems.append("not back at their original replicas (or still annotated): " +
                        ", ".join(not_back))
    if not_active:
        problems.append("Channels not Active: " + ", ".join(not_active))
    if prom_facts["targetsDown"] or len(prom_facts["targetsUp"]) < 5:
        problems.append("Prometheus did not scrape all five programs: up %s, down %s" %
                        (prom_facts["targetsUp"], prom_facts["targetsDown"]))
    s["problems"] = problems
    s["ok"] = not problems
    if out_json:
        with open(out_json, "w") as f:
            json.dump(s, f, indent=2, sort_keys=True)

    def line(label, text):
        print("  %-11s %s" % (label, text))
    line("levels", " -> ".join(levels) + "  (highest %s, load up to %.2f)" % (
        highest, facts.get("maxLoad") or 0))
    st = s["steps"]
    line("steps", "%d degraded, %d shut down, %d restored (Events on the Channels; operator "
         "actions ok: %d degrade, %d shutdown, %d restore)" % (
             st["Degraded"], st["ShutDown"], st["Restored"], actions["degrade"],
             actions["shutdown"], actions["restore"]))
    a = s["admission"]
    line("admission", "the demo's pods: %d allowed, %d denied; its resources: %d refused; %s" % (
        a["allowed"], a["denied"], a["resourcesDenied"], "each as expected" if not unexpected
        else paint("31", "%d NOT as expected" % len(unexpected))))
    for p in probes:
        line("", "  %-26s %-7s %s" % (p["name"], p["result"], p.get("reason") or ""))
    line("", "the ReplicaSets' pods after the set-up: %d admitted, %d denied (and retried)" % (
        a["controllerAdmitted"], a["controllerDenied"]))
    for endpoint, counts in sorted(decisions.items()):
        line("", "pi0-webhook's decisions on %s: %s" % (endpoint, ", ".join(
            "%s %d" % (k, v) for k, v in sorted(counts.items()))))
    line("restores", "%d restored pods denied (none expected)" % len(restored_denied)
         if not restored_denied else paint("31", "%d restored pods denied as ChannelInactive or "
                                           "BufferExhausted (none expected)" % len(restored_denied)))
    for d in restored_denied[:10]:
        line("", "  %s %-26s %-15s %s" % (d["ts"], d["pod"], d["reason"], d["message"]))
    line("restored", "; ".join("%s %d/%d" % (n, r["ready"], r["replicas"])
                               for n, r in restored.items()) +
         ("; every Channel Active, no Pi0 annotation left, level normal" if s["restored"]
          else paint("31", " -- not everything came back")))
    if prom_facts["peakLevel"] is not None:
        line("prometheus", "%d targets up; it saw the level peak at %d (%s) and the load at "
             "%.2f" % (len(prom_facts["targetsUp"]), prom_facts["peakLevel"],
                       LEVEL_NAMES[int(prom_facts["peakLevel"])], prom_facts["peakLoad"] or 0))
    if problems:
        print(paint("31", "  NOT AS EXPECTED:"))
        for p in problems:
            print(paint("31", "    - " + p))
    else:
        print(paint("32", "  everything went as the worked example says; nothing was lost"))
    return 0 if s["ok"] else 1


def main():
    mode = sys.argv[1]
    if mode == "watch":
        watch(float(sys.argv[2]))
    elif mode == "wait":
        sys.exit(wait(float(sys.argv[2]), sys.argv[3]))
    elif mode == "peak":
        sys.exit(peak(sys.argv[2]))
    elif mode == "snapshot":
        print(json.dumps({n: w["replicas"] for n, w in workloads().items()}))
    elif mode == "summary":
        sys.exit(summary(*sys.argv[2:8]))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: die of it, quietly, so the demo's trap runs
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
