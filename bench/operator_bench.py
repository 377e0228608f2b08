# The measuring half of bench/operator_bench.sh, which runs it with PI0_APISERVER, PI0_TOKEN and
# PI0_CA_FILE in the environment. Modes: latency CONFIG_JSON, idle SECONDS OUT, pods NAMESPACE
# COUNT NODES OUT, report LATENCY_JSON IDLE_JSON PODS_JSON (see operator_bench.sh).
import concurrent.futures, datetime, http.client, json, os, re, ssl, statistics, sys, threading
import time, urllib.parse, urllib.request

SERVER = urllib.parse.urlsplit(os.environ["PI0_APISERVER"])
TOKEN = os.environ["PI0_TOKEN"]
CTX = ssl.create_default_context(cafile=os.environ["PI0_CA_FILE"])
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE"}


def epoch(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def clock(t):
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


class Api:
    """Bearer token, the cluster CA, one kept-alive connection per thread."""

    def __init__(self):
        self.local = threading.local()

    def connect(self, timeout=30):
        return http.client.HTTPSConnection(SERVER.hostname, SERVER.port, context=CTX,
                                           timeout=timeout)

    def request(self, method, path, body=None, ctype="application/json", ok=()):
        for attempt in range(6):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connect()
            headers = {"Authorization": "Bearer " + TOKEN, "Accept": "application/json"}
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                headers["Content-Type"] = ctype
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 5:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status == 429 or resp.status >= 500:
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status in ok:
                return None
            if resp.status >= 300:
                raise RuntimeError("%s %s: HTTP %d: %s" % (method, path, resp.status,
                                                           payload[:300].decode(errors="replace")))
            return json.loads(payload) if payload else None
        raise RuntimeError("%s %s: the apiserver kept answering 429/5xx" % (method, path))

    def get(self, path):
        return self.request("GET", path)

    def text(self, path):
        conn = self.connect()
        try:
            conn.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status != 200:
                raise RuntimeError("GET %s: HTTP %d" % (path, resp.status))
            return body
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------
# 1. Latency

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the agents are local


def fingerprint(url):
    with DIRECT.open(url + "/fingerprint", timeout=2) as r:
        return json.load(r)


def peaks(fp):
    """{resource: 1 - isolation} of a fingerprint, for the resources whose gates are ready."""
    out = {}
    for resource in ("cpu", "memory"):
        gates = ((fp.get("signals") or {}).get(resource) or {}).get("gates")
        if gates and gates.get("isolation") is not None:
            out[resource] = 1.0 - gates["isolation"]
    return out


def cluster_load(latest, capacity):
    """ℓ from each node's latest peaks: max over resources of the capacity-weighted mean."""
    best = None
    for resource in ("cpu", "memory"):
        num = den = 0.0
        for node, p in latest.items():
            if resource in p:
                num += capacity[node][resource] * p[resource]
                den += capacity[node][resource]
        if den > 0:
            best = num / den if best is None else max(best, num / den)
    return best


class DeploymentWatch(threading.Thread):
    """The apiserver's watch on one Deployment; keeps (arrival time, spec.replicas, ready)."""

    def __init__(self, api, ns, name):
        super().__init__(daemon=True)
        self.api, self.ns, self.name = api, ns, name
        self.events = []
        self.lock = threading.Lock()

    def run(self):
        rv = None
        while True:
            try:
                conn = self.api.connect(timeout=400)
                path = ("/apis/apps/v1/namespaces/%s/deployments?watch=1&timeoutSeconds=300"
                        "&fieldSelector=metadata.name%%3D%s" % (self.ns, self.name))
                if rv:
                    path += "&resourceVersion=" + rv
                conn.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
                resp = conn.getresponse()
                if resp.status != 200:
                    rv = None
                    time.sleep(0.5)
                    continue
                while True:
                    line = resp.readline()
                    now = time.time()
                    if not line:
                        break
                    ev = json.loads(line)
                    obj = ev.get("object") or {}
                    if ev.get("type") == "ERROR":
                        rv = None
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    with self.lock:
                        self.events.append((now, obj["spec"].get("replicas"),
                                            (obj.get("status") or {}).get("readyReplicas", 0)))
                conn.close()
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.5)

    def first_change(self, since, original):
        with self.lock:
            for t, replicas, _ in self.events:
                if t >= since and replicas != original:
                    return t, replicas
        return None


def write_profiles(files, cpu):
    for f in files:
        with open(f + ".new", "w") as out:
            out.write("signals:\n  cpu: {wave: constant, value: %s}\n"
                      "  memory: {wave: constant, value: 0.2}\n" % cpu)
        os.replace(f + ".new", f)


def step_logs(log, since):
    out = []
    for line in open(log, errors="replace"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "step taken" and epoch(rec["ts"]) >= since:
            out.append(rec)
    return out


def latency(args):
    cfg = json.loads(args[0])
    api = Api()
    agents, files, capacity = cfg["agents"], cfg["profiles"], cfg["capacity"]
    ns, name, original, low, high, bound = (cfg["ns"], cfg["deployment"], cfg["replicas"],
                                           cfg["low"], cfg["high"], cfg["bound"])
    watch = DeploymentWatch(api, ns, name)
    watch.start()

    def steady_low():
        for url in agents.values():
            p = peaks(fingerprint(url))
            if abs(p.get("cpu", -1) - low) > 0.005:
                return False
        d = api.get("/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, name))
        if d["spec"].get("replicas") != original or \
                (d.get("status") or {}).get("readyReplicas") != original:
            return False
        m = api.get("/apis/stability.pi0.io/v1alpha1/shutdownmatrices/default").get("status") or {}
        progress = m.get("progress") or {}
        return m.get("levelIndex") == 0 and not progress.get("restores") and \
            progress.get("phase") in (None, "Idle")

    results = []
    for run in range(cfg["runs"]):
        deadline = time.time() + cfg["reset_timeout"]
        while not steady_low():
            if time.time() > deadline:
                sys.exit("bench: run %d: no steady state at load %s (web at %d replicas, "
                         "matrix at level normal, idle) within %d s"
                         % (run + 1, low, original, cfg["reset_timeout"]))
            time.sleep(0.5)
        time.sleep(1)
        history = {node: [] for node in agents}  # node -> [(timestamp, peaks)], distinct
        t_write = time.time()
        write_profiles(files, high)
        scaled, scaled_at = None, None
        while True:
            for node, url in agents.items():
                fp = fingerprint(url)
                ts = epoch(fp["timestamp"])
                if not history[node] or history[node][-1][0] != ts:
                    history[node].append((ts, peaks(fp)))
            if scaled is None:
                scaled = watch.first_change(t_write, original)
                if scaled:
                    scaled_at = time.time()
            # Poll on for 1.5 s after the scale, so that every fingerprint up to it is in.
            if scaled and time.time() - scaled_at > 1.5:
                break
            if time.time() - t_write > 60:
                sys.exit("bench: run %d: web was not scaled within 60 s of the load rising"
                         % (run + 1))
            time.sleep(0.05)
        # Replay the fingerprints in timestamp order: the first one that puts ℓ over the bound.
        timeline = sorted((ts, node, p) for node, h in history.items() for ts, p in h)
        latest, t_cross, load_at_cross = {}, None, None
        for ts, node, p in timeline:
            latest[node] = p
            if len(latest) == len(agents) and ts >= t_write:
                load = cluster_load(latest, capacity)
                if load is not None and load > bound:
                    t_cross, load_at_cross = ts, load
                    break
        if t_cross is None:
            sys.exit("bench: run %d: the operator scaled web, but no fingerprint seen put the "
                     "load over %s" % (run + 1, bound))
        t_scale, replicas = scaled
        steps = step_logs(cfg["operator_log"], t_write)
        t_log = epoch(steps[0]["ts"]) if steps else None
        results.append({"run": run + 1, "latency": t_scale - t_cross,
                        "log_latency": None if t_log is None else t_log - t_cross,
                        "rise": t_cross - t_write, "load": load_at_cross, "replicas": replicas})
        print("run %d: load rewritten %s, over %s at %s (ℓ %.3f), web %d -> %d seen at %s "
              "(operator log %s): %.3f s" % (
                  run + 1, clock(t_write), bound, clock(t_cross), load_at_cross, original,
                  replicas, clock(t_scale), clock(t_log) if t_log else "-",
                  t_scale - t_cross), flush=True)
        write_profiles(files, low)
    # Back to steady for what follows.
    deadline = time.time() + cfg["reset_timeout"]
    while not steady_low():
        if time.time() > deadline:
            sys.exit("bench: no steady state after the last run within %d s"
                     % cfg["reset_timeout"])
        time.sleep(0.5)
    json.dump(results, open(cfg["out"], "w"))


# ---------------------------------------------------------------------------------------------
# 2. Idle writes

METRIC = re.compile(r'^apiserver_request_total\{(.*)\} ([0-9.e+]+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def write_counters(api):
    out = {}
    for line in api.text("/metrics").splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(1)))
        if labels.get("verb") not in WRITE_VERBS:
            continue
        key = (labels.get("verb"), labels.get("group", ""), labels.get("resource", ""),
               labels.get("subresource", ""))
        out[key] = out.get(key, 0) + float(m.group(2))
    return out


def pi0_objects(api):
    """resourceVersion of every object Pi0 writes, and the operator's Events."""
    objs = {}
    for path, kind in (("/apis/stability.pi0.io/v1alpha1/channels", "Channel"),
                       ("/apis/stability.pi0.io/v1alpha1/shutdownmatrices", "ShutdownMatrix"),
                       ("/apis/apps/v1/deployments", "Deployment"),
                       ("/apis/apps/v1/statefulsets", "StatefulSet"),
                       ("/apis/autoscaling/v1/horizontalpodautoscalers", "HorizontalPodAutoscaler")):
        for o in api.get(path).get("items") or []:
            m = o["metadata"]
            objs["%s %s/%s" % (kind, m.get("namespace", ""), m["name"])] = m["resourceVersion"]
    for e in api.get("/api/v1/events").get("items") or []:
        src = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        if src == "pi0-operator":
            io = e.get("involvedObject") or {}
            objs["Event %s %s/%s %s" % (e.get("reason"), io.get("kind"), io.get("name"),
                                        e["metadata"]["name"])] = e["metadata"]["resourceVersion"]
    return objs


OPERATOR_RESOURCES = {"channels", "shutdownmatrices", "deployments", "statefulsets",
                      "horizontalpodautoscalers", "events"}


def idle(args):
    seconds, out = int(args[0]), args[1]
    api = Api()
    # Settle: no Pi0-touched object changes for 10 s (60 s at most).
    start = time.time()
    last, quiet_since = pi0_objects(api), time.time()
    while time.time() - quiet_since < 10 and time.time() - start < 60:
        time.sleep(1)
        now = pi0_objects(api)
        if now != last:
            last, quiet_since = now, time.time()
    settled = time.time() - quiet_since >= 10
    print("settled: %s after %.0f s" % ("quiet for 10 s" if settled else "NOT quiet",
                                        time.time() - start), flush=True)
    c0, o0, t0 = write_counters(api), pi0_objects(api), time.time()
    time.sleep(seconds)
    c1, o1, t1 = write_counters(api), pi0_objects(api), time.time()
    minutes = (t1 - t0) / 60
    delta = {k: c1.get(k, 0) - c0.get(k, 0) for k in set(c0) | set(c1)}
    delta = {k: v for k, v in delta.items() if v}
    operator = sum(v for k, v in delta.items() if k[2] in OPERATOR_RESOURCES)
    lease = sum(v for k, v in delta.items() if k[2] == "leases")
    others = sum(v for k, v in delta.items()
                 if k[2] not in OPERATOR_RESOURCES and k[2] != "leases")
    changed = sorted(k for k in set(o0) | set(o1) if o0.get(k) != o1.get(k))
    print("writes in %.1f s, by verb group/resource/subresource (apiserver_request_total):"
          % (t1 - t0))
    for (verb, group, resource, sub), v in sorted(delta.items()):
        print("  %-6s %s%s%s: %d" % (verb, group + "/" if group else "", resource,
                                      "/" + sub if sub else "", v))
    if not delta:
        print("  none")
    print("Pi0-touched objects whose resourceVersion changed: %d" % len(changed))
    for k in changed:
        print("  %s: %s -> %s" % (k, o0.get(k, "(new)"), o1.get(k, "(gone)")))
    json.dump({"seconds": t1 - t0, "operator_per_min": operator / minutes,
               "lease_per_min": lease / minutes, "others_per_min": others / minutes,
               "changed_objects": len(changed), "settled": settled,
               "breakdown": {"%s %s/%s/%s" % k: v for k, v in delta.items()}},
              open(out, "w"))


# ---------------------------------------------------------------------------------------------
# 3. Pods

def running_status(node_ip, pod_ip, started):
    cond = lambda t: {"type": t, "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": started}
    return {"status": {
        "phase": "Running", "hostIP": node_ip, "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "conditions": [cond("Initialized"), cond("Ready"), cond("ContainersReady"),
                       cond("PodScheduled")],
        "containerStatuses": [{"name": "main", "image": "placeholder:1",
                               "imageID": "bench://placeholder:1",
                               "containerID": "bench://%s/main" % pod_ip, "ready": True,
                               "started": True, "restartCount": 0, "lastState": {},
                               "state": {"running": {"startedAt": started}}}]}}


def pod_manifest(ns, name, node, labels):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{
                "name": "main", "image": "placeholder:1",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def create_pods(args):
    ns, count, nodes, out = args[0], int(args[1]), args[2].split(","), args[3]
    api = Api()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = ["bulk-%05d" % i for i in range(count)]

    def create(i):
        labels = {"app": "bulk", "stability.pi0.io/channel": "bulk-%d" % (i % 4)}
        api.request("POST", "/api/v1/namespaces/%s/pods" % ns,
                    pod_manifest(ns, names[i], nodes[i % len(nodes)], labels), ok=(409,))

    def run_status(i):
        ip = "10.%d.%d.%d" % (100 + i // 65536, (i // 256) % 256, i % 256)
        api.request("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, names[i]),
                    running_status("10.99.0.%d" % (2 + i % len(nodes)), ip, started),
                    ctype="application/merge-patch+json")

    result = {}
    for what, fn in (("create", create), ("status", run_status)):
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for f in concurrent.futures.as_completed([pool.submit(fn, i) for i in range(count)]):
                f.result()
        result[what + "_seconds"] = time.time() - t0
        print("%s: %d pods in %.1f s, %.0f pods/s" % (
            "created" if what == "create" else "marked Running and Ready", count,
            result[what + "_seconds"], count / result[what + "_seconds"]), flush=True)
    # The marker: created last and marked Ready last.
    api.request("POST", "/api/v1/namespaces/%s/pods" % ns,
                pod_manifest(ns, "bulk-marker", nodes[0], {"bench.pi0.io/marker": "true"}))
    api.request("PATCH", "/api/v1/namespaces/%s/pods/bulk-marker/status" % ns,
                running_status("10.99.0.2", "10.200.0.1", started),
                ctype="application/merge-patch+json")
    result["count"] = count
    json.dump(result, open(out, "w"))


# ---------------------------------------------------------------------------------------------

def report(args):
    lat = json.load(open(args[0]))
    idle_ = json.load(open(args[1]))
    mem = json.load(open(args[2]))
    runs = [r["latency"] for r in lat]
    logs = [r["log_latency"] for r in lat if r["log_latency"] is not None]
    print()
    print("=== pi0-operator on the test bed ===")
    print("latency, load over the bound -> first scale request (%d runs, agents at 1 s, "
          "poll 1 s):" % len(runs))
    print("  seen by a watch:      median %.3f s (min %.3f, max %.3f)"
          % (statistics.median(runs), min(runs), max(runs)))
    if logs:
        print("  operator's log time:  median %.3f s (min %.3f, max %.3f)"
              % (statistics.median(logs), min(logs), max(logs)))
    rise = [r["rise"] for r in lat]
    print("  (profile rewrite -> fingerprints over the bound: median %.3f s, not counted)"
          % statistics.median(rise))
    print("idle API writes (%.0f s, nothing changing%s):"
          % (idle_["seconds"], "" if idle_["settled"] else ", NOT settled before"))
    print("  pi0-operator: %.1f writes/min (goal: 0)" % idle_["operator_per_min"])
    print("  its Lease renewals (--leader-elect): %.1f writes/min" % idle_["lease_per_min"])
    print("  other writers: %.1f writes/min; Pi0-touched objects changed: %d"
          % (idle_["others_per_min"], idle_["changed_objects"]))
    print("memory while watching %d pods (+ the few of the set-up):" % mem["pods"])
    print("  set-up: %.0f pods/s created, %.0f pods/s marked Running (16 threads)"
          % (mem["pods"] / mem["create_seconds"], mem["pods"] / mem["status_seconds"]))
    print("  running operator: VmHWM %.1f MiB, VmRSS %.1f MiB (before the pods: VmRSS %.1f MiB; "
          "goal: under 64 MiB)" % (mem["hwm"] / 1024, mem["rss"] / 1024, mem["rss0"] / 1024))
    print("  cold standby started with them: ready in %.1f s, VmHWM %.1f MiB, VmRSS %.1f MiB "
          "(goal: under 64 MiB)" % (mem["cold_ready"], mem["cold_hwm"] / 1024,
                                    mem["cold_rss"] / 1024))


if __name__ == "__main__":
    {"latency": latency, "idle": idle, "pods": create_pods, "report": report}[sys.argv[1]](
        sys.argv[2:])
