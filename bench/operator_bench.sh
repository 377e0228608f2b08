#!/usr/bin/env bash
# pi0-operator on the real control plane of tests/e2e/cluster.sh: how fast it acts, how quiet it
# is when nothing changes, and how much memory it needs to watch many pods.
#
# Set-up: three stand-in Nodes (node-a, node-b, node-c: 8 CPUs, 32 GiB each), one pi0-agent per
# Node replaying a synthetic profile (cpu 0.3, memory 0.2; --interval 1s, --window W), the fake
# kubelet on node-a only, Pi0's CRDs, and:
#   namespace bench       Deployment web (4 replicas on node-a), Channel web (degradedReplicas 1)
#   namespace bench-pods  Channels bulk-0..bulk-3 (critical: true, no targets), each selecting a
#                         quarter of the bulk pods of part 3 by the label stability.pi0.io/channel
#   ShutdownMatrix default: normal <= 0.6, elevated <= 0.8, critical; row web: Degrade at
#                         elevated; one step per second; recovery 2 s under 0.55; SAO off
# and one pi0-operator (--leader-elect, --poll-interval 1s, --agent-timeout 500ms, info logs),
# as it is deployed. The figures:
#
# 1. Latency, --runs times (default 5): from the load crossing the first level's bound (0.6) to
#    the first scale request. The agents' profiles go from cpu 0.3 to 0.9 (rewritten and renamed;
#    each agent reloads within a second, on its own schedule).
#      T_cross  the first moment the agents' fingerprints put ℓ above 0.6. The script polls every
#               agent's /fingerprint every 50 ms (a fingerprint changes once a second, so none is
#               missed), keeps each distinct one, and replays them in the order of their own
#               `timestamp` (the wall-clock time the agent took that sample; the gates are ready
#               well under a millisecond later): ℓ = max over cpu and memory of the capacity-
#               weighted mean over Nodes of 1 - gates.isolation, as the operator computes it.
#               T_cross is the timestamp of the fingerprint that first made ℓ > 0.6. Neither the
#               rewrite of the file nor the agent's window is in the figure: T_cross is when the
#               data the operator polls said "over".
#      T_scale  the moment the script's own watch on Deployment web (the apiserver's watch
#               stream, read as it arrives) delivers spec.replicas != 4: the write has been
#               accepted and is visible to every watcher. The operator's "step taken" log time
#               (written right after the apiserver answered) is printed beside it.
#    The figure is T_scale - T_cross: at most one poll interval until the operator fetches the
#    new fingerprint, at most one matrix period (= the poll interval) until the matrix is
#    reconciled, and the write. Between runs the load goes back to 0.3, and the next run starts
#    once the operator has restored web (4 ready), the matrix is back at level normal with no
#    restore in progress, and every agent's window holds only 0.3 again. The window (default 16
#    samples) changes how long that reset takes, not the figure. Caveat: the agents' sampling,
#    the operator's poll and its matrix period are 1 s timers started once, so their phases
#    barely move from run to run; the runs sample few phase combinations, and the worst case
#    (about two intervals plus the write) may not show in 5 runs.
# 2. Idle API writes: once the cluster has settled (no Pi0-touched object changed for 10 s, or
#    60 s at most), for --idle-seconds (default 60) with nothing changing, the apiserver's own
#    apiserver_request_total counters (GET /metrics, before and after) by verb and resource for
#    every write verb (POST, PUT, PATCH, DELETE, DELETECOLLECTION). The script itself only reads
#    in that span; the test bed's controllers run without leader election and nothing else
#    writes, so every write is listed with its resource, and the operator's are those on what it
#    writes: Channels, ShutdownMatrices (and their status), Deployments, StatefulSets, HPAs,
#    Events. Its Lease renewals (--leader-elect: one PUT per 2 s retry period, as client-go)
#    are counted apart. As a cross-check, the resourceVersion of every Channel, ShutdownMatrix,
#    Deployment, StatefulSet and HPA and the Events reported by pi0-operator, before and after.
# 3. Memory: --pods N bound pods (default 10,000) created in namespace bench-pods with
#    nodeName node-b or node-c (so the scheduler is not involved, and they count as scheduled),
#    labelled for the bulk Channels, by 16 threads over kept-alive connections; then each is
#    marked Running and Ready through its status subresource as a kubelet would (the fake
#    kubelet manages node-a only; it would take minutes). Both rates are printed. To know that
#    the operator's cache holds them all, a last pod is created and marked Ready that makes the
#    Channel bulk-marker (whose target is an unschedulable Deployment of 1 replica) count an
#    outage recovered: the operator's pod watch delivers events in resourceVersion order, so
#    once bulk-marker's status.health.outages is 1 the operator has seen every pod before it.
#    Then VmHWM and VmRSS of the operator from /proc/PID/status (after 5 s more). Also a second
#    pi0-operator started cold against the full cluster (a standby: it caches everything and
#    writes nothing): its time to /readyz 200 and its VmHWM/VmRSS.
#
# Prints every run and a figure block at the end. A benchmark asserts nothing: it exits 0 once
# it has measured, 1 when a measurement failed, 2 on a usage error or a missing prerequisite.
# Everything it starts is stopped on exit (also on Ctrl-C), and the cluster removed.
#
# Usage: bench/operator_bench.sh [--runs N] [--pods N] [--window N] [--idle-seconds N]
#                                [--operator PATH] [--agent PATH]
# Needs a Release build (scripts/build.sh release) and the control plane (built on first use).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

runs=5 pods=10000 window=16 idle_seconds=60
operator=${PI0_OPERATOR:-$root/build/release/operator/pi0-operator}
agent=${PI0_AGENT:-$root/build/release/agent/pi0-agent}

usage() {
  cat <<EOF
Usage: bench/operator_bench.sh [flags]

Benchmarks pi0-operator on the test bed of tests/e2e/cluster.sh (about 6 minutes): the time
from the load crossing a level to the first scale request, the API writes per minute when
nothing changes, and the memory while watching N pods.

Flags:
  --runs N            latency runs (default $runs)
  --pods N            bound pods for the memory figure (default $pods)
  --window N          the agents' window in samples, at 1 s each (default $window; even, >= 8)
  --idle-seconds N    how long to count writes with nothing changing (default $idle_seconds)
  --operator PATH     pi0-operator binary (default build/release/operator/pi0-operator, or
                      \$PI0_OPERATOR)
  --agent PATH        pi0-agent binary (default build/release/agent/pi0-agent, or \$PI0_AGENT)
  --help              print this help
EOF
}
die() {
  echo "operator_bench: $*" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --pods) pods=${2:?--pods needs a value}; shift 2 ;;
    --window) window=${2:?--window needs a value}; shift 2 ;;
    --idle-seconds) idle_seconds=${2:?--idle-seconds needs a value}; shift 2 ;;
    --operator) operator=${2:?--operator needs a value}; shift 2 ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "operator_bench: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$runs" "$pods" "$window" "$idle_seconds"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive whole number"
done
((window >= 8 && window % 2 == 0)) || die "--window must be even and at least 8"
[[ -x $operator ]] || die "no pi0-operator at '$operator'; run scripts/build.sh release first"
[[ -x $agent ]] || die "no pi0-agent at '$agent'; run scripts/build.sh release first"
operator=$(realpath "$operator")
agent=$(realpath "$agent")
command -v kubectl >/dev/null || die "kubectl is not installed"
command -v curl >/dev/null || die "curl is not installed"
[[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 is missing"

LOW=0.3 HIGH=0.9 BOUND=0.6
NODES=(node-a node-b node-c)
NODE_CPU=8 NODE_MEMORY=32Gi

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"
e2e_cluster_up
work=$PI0_CLUSTER_DIR/operator-bench # removed with the cluster
mkdir -p "$work"
k() { kubectl --request-timeout=30s "$@"; }

# stop_pid PID: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
  local pid=$1 deadline=$((SECONDS + 10))
  kill -TERM "$pid" 2>/dev/null || return 0
  while e2e_pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The measuring program; its modes are called below.
cat >"$work/bench.py" <<'PY'
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
PY
bench() { /usr/bin/python3 "$work/bench.py" "$@"; }

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: Nodes, agents, CRDs, workloads"
for node in "${NODES[@]}"; do e2e_create_node "$node" "$NODE_CPU" "$NODE_MEMORY"; done

declare -A agent_url
profile() { echo "$work/profile-$1.yaml"; }
for node in "${NODES[@]}"; do
  printf 'signals:\n  cpu: {wave: constant, value: %s}\n  memory: {wave: constant, value: 0.2}\n' \
    "$LOW" >"$(profile "$node")"
  log=$work/agent-$node.log
  "$agent" --listen 127.0.0.1:0 --nvml-library none --gpu-probe-interval 0 \
    --node-name "$node" --source "synthetic:$(profile "$node")" --interval 1s --window "$window" \
    </dev/null 2>"$log" &
  pid=$!
  e2e_at_exit "stop_pid $pid"
  port=""
  for _ in $(seq 100); do
    port=$(e2e_log_field "$log" "pi0-agent started" port 2>/dev/null) && break
    e2e_pid_alive "$pid" || { tail -n 20 "$log" >&2; e2e_fail "pi0-agent for $node exited"; }
    sleep 0.1
  done
  [[ -n $port ]] || e2e_fail "pi0-agent for $node did not start serving"
  agent_url[$node]=http://127.0.0.1:$port
done

e2e_install_crds
served() { k get channels -A >/dev/null 2>&1 && k get shutdownmatrices >/dev/null 2>&1; }
e2e_wait_for "both kinds served" 60 served
e2e_start_fake_kubelet --nodes node-a
e2e_create_namespace bench
e2e_create_namespace bench-pods

k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: bench}
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, stability.pi0.io/channel: web}
    spec:
      nodeSelector: {kubernetes.io/hostname: node-a}
      containers:
        - name: main
          image: placeholder:1
          resources:
            requests: {cpu: 10m, memory: 16Mi}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: web, namespace: bench}
spec:
  critical: false
  targets:
    - {kind: Deployment, name: web}
  degradedReplicas: 1
---
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: default}
spec:
  levels:
    - {name: normal, upperBound: $BOUND}
    - {name: elevated, upperBound: 0.8}
    - {name: critical}
  rows:
    - channel: {name: web, namespace: bench}
      critical: false
      cells:
        - {level: elevated, action: Degrade, order: 0}
  loadSignal: {source: Fleet, resources: [cpu, memory, gpu]}
  stabilityThreshold: 0
  hysteresis: {margin: 0.05, dwellSeconds: 2}
  stepIntervalSeconds: 1
  mode: Enforce
YAML
for i in 0 1 2 3; do
  cat <<YAML
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bulk-$i, namespace: bench-pods}
spec:
  critical: true
YAML
done | k apply -f - >/dev/null
web_ready() { [[ $(k get deploy web -n bench -o jsonpath='{.status.readyReplicas}') == 4 ]]; }
e2e_wait_for "web at 4 ready replicas" 90 web_ready

agents_flag=""
for node in "${NODES[@]}"; do agents_flag+="${agents_flag:+,}$node=${agent_url[$node]}"; done

# start_operator NAME: sets op_pid[NAME], op_log[NAME], probe_port[NAME].
declare -A op_pid op_log probe_port
start_operator() {
  local name=$1 port=""
  op_log[$name]=$work/operator-$name.log
  "$operator" --kubeconfig "$KUBECONFIG" --leader-elect --identity "bench-$name" \
    --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --agents "$agents_flag" --poll-interval 1s --agent-timeout 500ms --log-level info \
    </dev/null 2>"${op_log[$name]}" >/dev/null &
  op_pid[$name]=$!
  e2e_at_exit "stop_pid ${op_pid[$name]}"
  local deadline=$((SECONDS + 30))
  until port=$(e2e_log_field "${op_log[$name]}" "serving probes" port 2>/dev/null); do
    e2e_pid_alive "${op_pid[$name]}" || { tail -n 20 "${op_log[$name]}" >&2; e2e_fail "pi0-operator $name exited"; }
    ((SECONDS < deadline)) || e2e_fail "pi0-operator $name does not serve probes after 30 s"
    sleep 0.1
  done
  probe_port[$name]=$port
}
operator_ready() {
  [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:${probe_port[$1]}/readyz") == 200 ]]
}
# vm NAME FIELD: VmHWM or VmRSS of operator NAME, in KiB.
vm() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/${op_pid[$1]}/status"; }

start_operator main
e2e_wait_for "pi0-operator ready (caches synced)" 60 operator_ready main
leading() { grep -q '"msg":"leading"' "${op_log[main]}"; }
e2e_wait_for "pi0-operator leading" 30 leading
agents_ready() {
  local node
  for node in "${NODES[@]}"; do
    [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "${agent_url[$node]}/readyz") == 200 ]] || return 1
  done
}
e2e_wait_for "every agent's window full ($window samples at 1 s)" $((window + 30)) agents_ready
matrix_normal() {
  [[ $(k get shutdownmatrix default -o jsonpath='{.status.level}') == normal ]]
}
e2e_wait_for "matrix default at level normal" 30 matrix_normal

# ---------------------------------------------------------------------------------------------
e2e_log "1. latency: $runs runs, load $LOW -> $HIGH over the bound $BOUND"
profiles_json=$(for node in "${NODES[@]}"; do printf '"%s",' "$(profile "$node")"; done)
agents_json=$(for node in "${NODES[@]}"; do printf '"%s": "%s",' "$node" "${agent_url[$node]}"; done)
memory_bytes=$(/usr/bin/python3 -c 'import sys; print(int(sys.argv[1][:-2]) * 2**30)' "$NODE_MEMORY")
capacity_json=$(for node in "${NODES[@]}"; do printf '"%s": {"cpu": %d, "memory": %d},' "$node" "$((NODE_CPU * 1000))" "$memory_bytes"; done)
bench latency "$(
  cat <<JSON
{"agents": {${agents_json%,}}, "profiles": [${profiles_json%,}], "capacity": {${capacity_json%,}},
 "ns": "bench", "deployment": "web", "replicas": 4, "low": $LOW, "high": $HIGH,
 "bound": $BOUND, "runs": $runs, "reset_timeout": $((window + 90)),
 "operator_log": "${op_log[main]}", "out": "$work/latency.json"}
JSON
)" || e2e_fail "the latency measurement failed"

# ---------------------------------------------------------------------------------------------
e2e_log "2. idle writes: settle, then $idle_seconds s with nothing changing"
bench idle "$idle_seconds" "$work/idle.json" || e2e_fail "the idle measurement failed"

# ---------------------------------------------------------------------------------------------
e2e_log "3. memory while watching $pods pods"
rss0=$(vm main VmRSS)
k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: bulk-marker, namespace: bench-pods}
spec:
  replicas: 1
  selector:
    matchLabels: {app: bulk-marker}
  template:
    metadata:
      labels: {app: bulk-marker}
    spec:
      nodeSelector: {bench.pi0.io/nowhere: "true"}
      containers:
        - name: main
          image: placeholder:1
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bulk-marker, namespace: bench-pods}
spec:
  critical: true
  selector:
    matchLabels: {bench.pi0.io/marker: "true"}
  targets:
    - {kind: Deployment, name: bulk-marker}
YAML
marker_field() { k get channel bulk-marker -n bench-pods -o jsonpath="{.status.health.$1}"; }
marker_waiting() { [[ -n $(marker_field notReadySince) ]]; }
e2e_wait_for "Channel bulk-marker seen not ready by the operator" 60 marker_waiting
bench pods bench-pods "$pods" node-b,node-c "$work/pods.json" || e2e_fail "creating the pods failed"
marker_recovered() { [[ $(marker_field outages) == 1 ]]; }
e2e_wait_for "the operator's cache holding every pod (bulk-marker recovered)" 120 marker_recovered
total=$(k get pods -n bench-pods --no-headers | wc -l)
e2e_log "namespace bench-pods holds $total pods"
operator_ready main || e2e_fail "pi0-operator is not ready with $pods pods"
sleep 5
hwm=$(vm main VmHWM) rss=$(vm main VmRSS)
e2e_log "running operator: VmHWM $hwm KiB, VmRSS $rss KiB"

start=$(date +%s.%N)
start_operator standby
e2e_wait_for "the cold standby ready (caches synced)" 120 operator_ready standby
ready_at=$(date +%s.%N)
sleep 5
cold_hwm=$(vm standby VmHWM) cold_rss=$(vm standby VmRSS)
e2e_log "cold standby: VmHWM $cold_hwm KiB, VmRSS $cold_rss KiB"
/usr/bin/python3 - "$work/pods.json" "$pods" "$hwm" "$rss" "$rss0" "$start" "$ready_at" \
  "$cold_hwm" "$cold_rss" <<'PY'
import json, sys
f = sys.argv[1]
d = json.load(open(f))
d.update(pods=int(sys.argv[2]), hwm=int(sys.argv[3]), rss=int(sys.argv[4]), rss0=int(sys.argv[5]),
         cold_ready=float(sys.argv[7]) - float(sys.argv[6]), cold_hwm=int(sys.argv[8]),
         cold_rss=int(sys.argv[9]))
json.dump(d, open(f, "w"))
PY
grep -q '"level":"error"' "${op_log[main]}" && {
  e2e_log "pi0-operator logged errors:"
  grep '"level":"error"' "${op_log[main]}" | tail -n 5 >&2
}
bench report "$work/latency.json" "$work/idle.json" "$work/pods.json"
