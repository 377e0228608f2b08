#!/usr/bin/env bash
# Pi0's demo: the three programs keeping a small cluster stable through an overload, on the
# test bed of tests/e2e (a real Kubernetes 1.20 control plane on 127.0.0.1, built from Debian's
# source on first use, about 5 minutes, and cached under ~/.cache/pi0).
#
# What runs: the control plane; three stand-in Nodes, each with its pi0-agent: this machine's
# (reading /proc, with this machine's size) and node-a and node-b (16 times as many CPUs, at
# least 32, so that their synthetic load, which the demo drives, decides the cluster load);
# the fake kubelet (tests/e2e/fake_kubelet.py: there are no kubelets, it marks the pods
# Running); pi0-operator; pi0-webhook, registered for the pods of namespace pi0-demo and for
# Pi0's resources; and Prometheus scraping the five of them. It applies examples/resources/
# (the README's worked example: a shop of five channels and the ShutdownMatrix `default`, with
# its step interval and dwell shortened), then replays the worked example: the cluster load goes
# to 0.75, 0.85 and 0.93 and back to 0.3. It prints, as they happen, the load and the level,
# each admission decision (the pods it creates at each level, and the pods pi0-webhook admits
# or denies for the controllers) and each degrade, shutdown and restore step, then a summary.
# It stops everything it started and removes the cluster when it ends, also on Ctrl-C.
#
# Exit status: 0 when everything went as the worked example says (every level reached, each
# step taken, the admissions as expected, no pod that a restore brought back denied, everything
# restored), 1 when not (the summary says what; logs are kept and their place printed), 2 for
# bad flags or a missing prerequisite, 130 on Ctrl-C.
#
# Usage: scripts/demo.sh [--fast] [--keep] [--build-dir DIR] [--summary-json FILE]
# Needs a build (scripts/build.sh release, or scripts/run.sh, which builds and runs this).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fast=0 keep=0 summary_json=""
build_dir=$root/build/release

usage() {
  cat <<EOF
Usage: scripts/demo.sh [flags]

Pi0 on a Kubernetes control plane on this machine: three agents (this machine's and two on a
synthetic load), pi0-operator, pi0-webhook and Prometheus. The demo overloads the cluster
step by step and lets it calm down, and prints the load level, each admission decision and
each shutdown and restore step as they happen, then a summary. About 2 minutes (plus about 5
the first time, to build the control plane). Ctrl-C stops it and cleans up.

Flags:
  --fast               shorter steps and dwell (about 80 s; what the test runs)
  --keep               after the summary, keep everything running until Ctrl-C, to look
                       around with kubectl and Prometheus
  --build-dir DIR      where the built programs are (default build/release)
  --summary-json FILE  also write the summary's facts as JSON to FILE
  --help               print this help
EOF
}
bad_usage() {
  echo "demo: $*" >&2
  usage >&2
  exit 2
}
while (($#)); do
  case $1 in
    --fast) fast=1; shift ;;
    --keep) keep=1; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --summary-json) summary_json=${2:?--summary-json needs a file}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) bad_usage "unknown flag '$1'" ;;
  esac
done

need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "demo: '$1' not found: install the Debian package $2 (scripts/setup.sh does)" >&2
  exit 2
}
missing_build() {
  echo "demo: $1; build first: scripts/build.sh release (or scripts/run.sh)" >&2
  exit 2
}
need kubectl kubernetes-client
need prometheus prometheus
need openssl openssl
need curl curl
need etcd etcd-server
[[ -x /usr/bin/python3 ]] || { echo "demo: /usr/bin/python3 is missing" >&2; exit 2; }
# The demo's Python helpers ignore SIGINT. Ctrl-C reaches the whole process group, and an
# interpreter it hits while starting prints a traceback of its own start-up; the demo's trap
# stops whatever runs instead. (Python keeps SIGINT ignored when it starts with it ignored.)
py3() { env --ignore-signal=INT /usr/bin/python3 "$@"; }
[[ -d $build_dir ]] || missing_build "no build directory '$build_dir'"
build_dir=$(cd "$build_dir" && pwd)
agent_bin=$build_dir/agent/pi0-agent
operator_bin=$build_dir/operator/pi0-operator
webhook_bin=$build_dir/webhook/pi0-webhook
for b in "$agent_bin" "$operator_bin" "$webhook_bin"; do
  [[ -x $b ]] || missing_build "$b is not built"
done
[[ -n $summary_json ]] && summary_json=$(realpath -m -- "$summary_json")

# Timing. The agents sample every $interval into a window of $window samples; their projected
# peak (a forecast, docs/forecast.md) follows a step up at once and a step down within 3
# samples. The matrix acts one step per $step seconds and recovers after $dwell seconds under the
# lower bound minus its margin. The load moves in steps, as real overloads do.
if ((fast)); then
  interval=200ms window=16 poll=500ms step=3 dwell=6 scrape=1s pause=1
else
  interval=250ms window=16 poll=1s step=6 dwell=15 scrape=2s pause=4
fi
NS=pi0-demo
SYNTHETIC_NODES=(node-a node-b)
# Everything here is on 127.0.0.1: no proxy in between (kubectl would use one).
export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY} no_proxy=127.0.0.1,localhost${no_proxy:+,$no_proxy}

# ---------------------------------------------------------------------------------------------
# Output

started_at=$SECONDS
if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
  bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' yellow=$'\e[33m' reset=$'\e[0m'
else
  bold="" dim="" red="" green="" yellow="" reset=""
fi
export DEMO_COLOR=${bold:+1}
# say KIND TEXT...: one line of the live log.
say() {
  local kind=$1
  shift
  printf '%s  %-9s %s\n' "$(date +%H:%M:%S)" "$kind" "$*"
}
headline() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$reset"; }
demo_fail() {
  say error "${red}$*${reset}"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Clean-up: everything the demo starts is recorded here and stopped on exit, also on Ctrl-C.

work=$(mktemp -d "${TMPDIR:-/tmp}/pi0-demo.XXXXXX")
pids=()        # processes to stop, in start order
pid_names=()   # their names, for the messages
build_pid=""
fg_pid=""
cluster_up=0
keep_logs=0
story_started=0

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"

# shellcheck disable=SC2317 # called from the EXIT trap
stop_pid() { # stop_pid PID: SIGTERM, SIGKILL after 10 s
  local pid=$1 deadline=$((SECONDS + 10))
  kill -TERM "$pid" 2>/dev/null || return 0
  while e2e_pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # the EXIT trap
on_exit() {
  local rc=$1 i
  trap '' INT TERM # a second Ctrl-C does not cut the clean-up short
  if ((rc == 130 || rc == 143)); then
    printf '\n'
    say stop "interrupted; cleaning up"
  elif ((rc != 0)); then
    keep_logs=1
    if [[ -s $work/setup.log ]] && ((!story_started)); then
      say error "the last lines of $work/setup.log:"
      tail -n 15 "$work/setup.log" | sed 's/^/    /'
    fi
  fi
  if [[ -n $fg_pid ]] && e2e_pid_alive "$fg_pid"; then stop_pid "$fg_pid"; fi
  if [[ -n $build_pid ]] && e2e_pid_alive "$build_pid"; then
    stop_pid "$build_pid" # cluster.sh stops its make on SIGTERM and caches nothing
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if e2e_pid_alive "${pids[i]}"; then stop_pid "${pids[i]}"; fi
  done
  if ((keep_logs)) && [[ -n ${PI0_CLUSTER_DIR:-} && -d ${PI0_CLUSTER_DIR:-} ]]; then
    mkdir -p "$work/cluster-logs"
    cp "$PI0_CLUSTER_DIR"/logs/*.log "$work/cluster-logs/" 2>/dev/null || true
  fi
  if ((cluster_up)) || [[ -n ${PI0_CLUSTER_DIR:-} ]]; then
    e2e_cluster_down 2>>"$work/setup.log" || true
  fi
  local left=()
  for i in "${!pids[@]}"; do
    if e2e_pid_alive "${pids[i]}"; then left+=("${pid_names[i]} (pid ${pids[i]})"); fi
  done
  if ((${#left[@]})); then
    say stop "${red}still running: ${left[*]}${reset}"
  elif ((${#pids[@]})); then
    say stop "stopped ${#pids[@]} processes and the control plane; removed the cluster"
  elif ((cluster_up)); then
    say stop "stopped the control plane; removed the cluster"
  fi
  if ((keep_logs)); then
    say stop "logs are kept in $work (remove it when done)"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap 'on_exit $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOG CMD...: runs CMD in the background (stdin closed, output to LOG) and records it.
start() {
  local name=$1 log=$2
  shift 2
  "$@" </dev/null >>"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
  pid_names+=("$name")
}
# port_from_log LOG MSG PID WHAT: the "port" field of the log line MSG, once it is there.
port_from_log() {
  local log=$1 msg=$2 pid=$3 what=$4 port deadline=$((SECONDS + 30))
  until port=$(e2e_log_field "$log" "$msg" port 2>/dev/null); do
    e2e_pid_alive "$pid" || demo_fail "$what exited at start (log: $log)"
    ((SECONDS < deadline)) || demo_fail "$what did not start serving in 30 s (log: $log)"
    sleep 0.1
  done
  echo "$port"
}

# ---------------------------------------------------------------------------------------------
# The demo's Python helper: talks to the apiserver (its token and CA), the agents and the
# programs' /metrics. Modes: watch (the live log), wait, snapshot, peak, summary.

cat >"$work/demo.py" <<'PY'
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
PY
demo_py=(env --ignore-signal=INT "DEMO_NS=$NS" "DEMO_WORK=$work" /usr/bin/python3 "$work/demo.py")
demo_py() { "${demo_py[@]}" "$@"; }
# interruptible CMD...: runs CMD and waits for it in the `wait` builtin, so that SIGTERM or
# SIGINT reach the trap at once rather than once CMD is done; the trap stops CMD.
interruptible() {
  local rc=0
  "$@" &
  fg_pid=$!
  wait "$fg_pid" || rc=$?
  fg_pid=""
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# The control plane: built the first time (with a progress line), then started.

printf '%sPi0 demo%s: a cluster overloaded and calmed down again, on a Kubernetes control plane\n' \
  "$bold" "$reset"
mode=normal
((fast)) && mode=fast
printf '%s(%s mode; Ctrl-C stops it and cleans up)%s\n' "$dim" "$mode" "$reset"
headline "setting up"

# build_control_plane: cluster.sh build (nothing to do when cached), with the elapsed time and
# its current step while it runs.
build_control_plane() {
  local err=$work/build.err build_log=${XDG_CACHE_HOME:-$HOME/.cache}/pi0/kubernetes-1.20.2.build.log
  "$E2E_CLUSTER" build 2>"$err" &
  build_pid=$!
  local t0=$SECONDS shown=0 last_report=0 step="" spin=(- "\\" '|' /) i=0 cols elapsed text
  while e2e_pid_alive "$build_pid"; do
    sleep 0.5
    ((SECONDS - t0 >= 2)) || continue # cached: done in a second, say nothing
    if ((!shown)); then
      say setup "building the Kubernetes 1.20.2 control plane from Debian's source: first run" \
        "only, usually about 5 minutes on 2 cores (log: $build_log)"
      shown=1
    fi
    # cluster.sh's steps, in words.
    case $(grep -o 'build: [a-z-]* [a-z]*' "$err" 2>/dev/null | tail -n 1) in
      *"apt-get update"*) step="reading the Debian archive's package lists" ;;
      *"apt-get source"*) step="downloading the kubernetes source package" ;;
      *"apt-get download"*) step="downloading Go 1.15" ;;
      *make*) step="compiling kube-apiserver, kube-controller-manager and kube-scheduler" ;;
      *done*) step="done" ;;
      *) step="starting" ;;
    esac
    elapsed=$((SECONDS - t0))
    if [[ -t 1 ]]; then
      cols=$(tput cols 2>/dev/null || echo 100)
      text=$(printf '%s %dm%02ds  %s' "${spin[i % 4]}" $((elapsed / 60)) $((elapsed % 60)) "$step")
      i=$((i + 1))
      printf '\r\e[K%s' "${text:0:$((cols - 1))}"
    elif ((elapsed - last_report >= 30)); then
      say setup "still building ($((elapsed / 60))m$((elapsed % 60))s): $step"
      last_report=$elapsed
    fi
  done
  if [[ -t 1 ]] && ((shown)); then printf '\r\e[K'; fi
  local rc=0
  wait "$build_pid" || rc=$?
  build_pid=""
  if ((rc != 0)); then
    cat "$err"
    demo_fail "the control plane could not be built (log: $build_log)"
  fi
  if ((shown)); then
    elapsed=$((SECONDS - t0))
    say setup "control plane built in $((elapsed / 60))m$((elapsed % 60))s and cached in" \
      "${build_log%.build.log}"
  fi
  return 0
}
build_control_plane

t0=$SECONDS
cluster_up=1
env_text=$("$E2E_CLUSTER" up 2>>"$work/setup.log") ||
  demo_fail "the control plane did not start (see $work/setup.log)"
eval "$env_text"
export KUBECONFIG PI0_CLUSTER_DIR PI0_APISERVER PI0_TOKEN PI0_CA_FILE
say setup "control plane up in $((SECONDS - t0)) s: Kubernetes 1.20.2 at $PI0_APISERVER"
k() { kubectl --request-timeout=30s "$@"; }

# Everything below logs its progress to setup.log; the demo says what matters.
exec 3>&2 2>>"$work/setup.log"
e2e_install_crds

# Nodes: this machine, with its real size, and two synthetic ones 16 times its size (at least
# 32 CPUs and 128 GiB): the cluster load is weighted by capacity, so the synthetic load the
# demo drives decides it, whatever this machine does; this machine is measured and counted all
# the same (and the drive allows for it).
this_node=$(hostname | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9.\n-' '-' |
  sed 's/^[^a-z0-9]*//; s/[^a-z0-9]*$//' | cut -c1-63)
[[ -n $this_node ]] || this_node=this-machine
this_cpu=$(nproc)
this_mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
syn_cpu=$((this_cpu * 16 > 32 ? this_cpu * 16 : 32))
syn_memory_gib=$((this_mem_kib / 65536 > 128 ? this_mem_kib / 65536 : 128))
e2e_create_node "$this_node" "$this_cpu" "${this_mem_kib}Ki" demo.pi0.io/pool=this-machine
for n in "${SYNTHETIC_NODES[@]}"; do
  e2e_create_node "$n" "$syn_cpu" "${syn_memory_gib}Gi" demo.pi0.io/pool=synthetic
done
say setup "Nodes: $this_node (this machine: $this_cpu CPUs, $((this_mem_kib / 1048576)) GiB;" \
  "its pi0-agent reads /proc) and ${SYNTHETIC_NODES[0]} and ${SYNTHETIC_NODES[1]} ($syn_cpu CPUs," \
  "$syn_memory_gib GiB each; their agents replay a synthetic load the demo drives)"

# Agents.
declare -A agent_url agent_port
profile() { echo "$work/profile-$1.yaml"; }
# set_cpu NODE WAVE: NODE's profile (substrates/synthetic/profile.h) with WAVE for its cpu,
# rewritten atomically: the agent re-reads it within a second and replays it from t = 0.
set_cpu() {
  cat >"$(profile "$1").new" <<YAML
memoryTotalBytes: $((syn_memory_gib * 1073741824))
signals:
  cpu: $2
  memory: {wave: noise, mean: 0.30, std: 0.004, seed: 2}
  psi_cpu: {wave: constant, value: 0.01}
YAML
  mv "$(profile "$1").new" "$(profile "$1")"
}
start_agent() { # start_agent NODE SOURCE
  local log=$work/agent-$1.log
  start "pi0-agent $1" "$log" "$agent_bin" --listen 127.0.0.1:0 --node-name "$1" --source "$2" \
    --interval "$interval" --window "$window" --gpu-probe-interval 0
  agent_port[$1]=$(port_from_log "$log" "pi0-agent started" "$last_pid" "pi0-agent for $1")
  agent_url[$1]=http://127.0.0.1:${agent_port[$1]}
}
start_agent "$this_node" proc
for n in "${SYNTHETIC_NODES[@]}"; do
  set_cpu "$n" "{wave: noise, mean: 0.30, std: 0.004, seed: 1}"
  start_agent "$n" "synthetic:$(profile "$n")"
done
for n in "$this_node" "${SYNTHETIC_NODES[@]}"; do
  interruptible "${demo_py[@]}" peak "${agent_url[$n]}" >/dev/null ||
    demo_fail "pi0-agent for $n has no full window after 30 s"
done
agents=""
for n in "$this_node" "${SYNTHETIC_NODES[@]}"; do agents+="${agents:+,}$n=${agent_url[$n]}"; done
say setup "pi0-agent x3 ready (a sample every $interval, windows of $window): $agents"

# pi0-webhook, with a CA and a serving certificate for 127.0.0.1.
mkdir -p "$work/tls"
e2e_make_certificates "$work/tls"
webhook_port=$(e2e_free_port)
start pi0-webhook "$work/webhook.log" "$webhook_bin" --kubeconfig "$KUBECONFIG" \
  --bind-address "127.0.0.1:$webhook_port" --tls-cert-file "$work/tls/tls.crt" \
  --tls-private-key-file "$work/tls/tls.key" --agents "$agents" --poll-interval "$poll" \
  --shutdown-delay 0s
webhook_pid=$last_pid
# shellcheck disable=SC2317 # called through e2e_wait_for
webhook_ready() {
  e2e_pid_alive "$webhook_pid" || demo_fail "pi0-webhook exited (log: $work/webhook.log)"
  [[ $(curl -sS --noproxy '*' --cacert "$work/tls/ca.crt" -o /dev/null -w '%{http_code}' \
    --max-time 2 "https://127.0.0.1:$webhook_port/readyz" 2>/dev/null) == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 60 webhook_ready

# pi0-operator (one replica; no leader election needed) with Prometheus for the Channels'
# throughput queries.
prometheus_port=$(e2e_free_port)
prometheus_url=http://127.0.0.1:$prometheus_port
start pi0-operator "$work/operator.log" "$operator_bin" --kubeconfig "$KUBECONFIG" \
  --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
  --agents "$agents" --poll-interval "$poll" --agent-timeout 500ms \
  --prometheus-url "$prometheus_url"
operator_pid=$last_pid
operator_port=$(port_from_log "$work/operator.log" "serving metrics" "$operator_pid" pi0-operator)
operator_url=http://127.0.0.1:$operator_port

# Prometheus, scraping the five programs.
agent_targets=""
for n in "$this_node" "${SYNTHETIC_NODES[@]}"; do
  agent_targets+="      - {targets: [\"127.0.0.1:${agent_port[$n]}\"], labels: {node: \"$n\"}}"$'\n'
done
cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: $scrape, evaluation_interval: $scrape}
scrape_configs:
  - job_name: pi0-agent
    static_configs:
$agent_targets  - job_name: pi0-operator
    static_configs: [{targets: ["127.0.0.1:$operator_port"]}]
  - job_name: pi0-webhook
    scheme: https
    tls_config: {ca_file: "$work/tls/ca.crt"}
    static_configs: [{targets: ["127.0.0.1:$webhook_port"]}]
YAML
start prometheus "$work/prometheus.log" prometheus --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/prometheus-data" --web.listen-address="127.0.0.1:$prometheus_port"
prometheus_pid=$last_pid
# shellcheck disable=SC2317 # called through e2e_wait_for
prometheus_ready() {
  e2e_pid_alive "$prometheus_pid" || demo_fail "Prometheus exited (log: $work/prometheus.log)"
  curl -sf --noproxy '*' --max-time 2 "$prometheus_url/-/ready" >/dev/null
}
e2e_wait_for "Prometheus ready" 60 prometheus_ready
say setup "pi0-operator (metrics $operator_url/metrics), pi0-webhook" \
  "(https://127.0.0.1:$webhook_port) and Prometheus ($prometheus_url) run"

# The webhook's registration: the pods of namespace pi0-demo, and Pi0's resources.
ca_bundle=$(base64 -w0 <"$work/tls/ca.crt")
k apply -f - >/dev/null <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: pi0-webhook}
webhooks:
  - name: pods.stability.pi0.io
    clientConfig: {url: "https://127.0.0.1:$webhook_port/validate-pods", caBundle: "$ca_bundle"}
    rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $NS}}
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
    timeoutSeconds: 5
  - name: channels.stability.pi0.io
    clientConfig: {url: "https://127.0.0.1:$webhook_port/validate-channels", caBundle: "$ca_bundle"}
    rules:
      - apiGroups: [stability.pi0.io]
        apiVersions: [v1alpha1]
        operations: [CREATE, UPDATE]
        resources: [channels]
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
  - name: shutdownmatrices.stability.pi0.io
    clientConfig:
      url: "https://127.0.0.1:$webhook_port/validate-shutdownmatrices"
      caBundle: "$ca_bundle"
    rules:
      - apiGroups: [stability.pi0.io]
        apiVersions: [v1alpha1]
        operations: [CREATE, UPDATE]
        resources: [shutdownmatrices]
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
YAML

# The shop of examples/resources/, its namespace labelled for the registration above (1.20 does
# not label namespaces with their names itself).
e2e_start_fake_kubelet --ready-delay 1
e2e_create_namespace "$NS"
k label namespace "$NS" "kubernetes.io/metadata.name=$NS" --overwrite >/dev/null
k apply -f "$root/examples/resources/" >/dev/null ||
  demo_fail "kubectl apply -f examples/resources/ failed (see $work/setup.log)"
# The worked example acts every 30 s and recovers after 120 s: too slow to watch.
k patch shutdownmatrix default --type=merge -p "{\"spec\": {\"stepIntervalSeconds\": $step,
  \"hysteresis\": {\"margin\": 0.05, \"dwellSeconds\": $dwell}}}" >/dev/null
say setup "applied examples/resources/ (the README's worked example, validated by" \
  "pi0-webhook): 5 Deployments and a StatefulSet in $NS, 5 Channels, ShutdownMatrix default" \
  "with steps every $step s and recovery after $dwell s (30 s and 120 s in the example)"
all_ready='len(W) == 6 and all(w["ready"] == w["replicas"] for w in W.values())'
all_ready+=' and M.get("level") == "normal" and len(C) == 5 and all(s == "Active" for s in C.values())'
interruptible "${demo_py[@]}" wait 180 "$all_ready" ||
  demo_fail "the shop's workloads did not all become ready in 180 s"
demo_py snapshot >"$work/original.json"
pods_total=$(py3 -c 'import json, sys; print(sum(json.load(open(sys.argv[1])).values()))' \
  "$work/original.json")
say setup "$pods_total pods admitted by pi0-webhook, scheduled, and Running (fake kubelet);" \
  "every Channel Active"
exec 2>&3 3>&-

# ---------------------------------------------------------------------------------------------
# The story.

story_started=1
echo '[]' >"$work/probes.json"
echo '[]' >"$work/probe-results.json"
# probe NAME EXPECT CHANNEL CPU MEMORY [POOL]: kubectl create a pod and say what pi0-webhook
# decided (EXPECT: allowed or denied); records the outcome for the summary.
probe() {
  local name=$1 expect=$2 channel=$3 cpu=$4 memory=$5 pool=${6:-synthetic} labels out rc=0 \
    result reason="" message
  labels="{app: demo-probe${channel:+, stability.pi0.io/channel: $channel}}"
  interruptible sleep 1 # the watcher prints what led here first
  py3 - "$work/probes.json" "$name" <<'PY'
import json, sys
names = json.load(open(sys.argv[1])) + [sys.argv[2]]
json.dump(names, open(sys.argv[1], "w"))
PY
  out=$(k create -f - 2>&1 <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $NS, labels: $labels}
spec:
  nodeSelector: {demo.pi0.io/pool: $pool}
  containers:
    - {name: main, image: placeholder:1, resources: {requests: {cpu: $cpu, memory: $memory}}}
YAML
  ) || rc=$?
  if ((rc == 0)); then
    result=allowed message="admitted"
    k delete pod -n "$NS" "$name" --wait=false >/dev/null 2>&1 || true
    say admission "${green}allowed${reset} pod $name (${channel:+channel $channel, }cpu $cpu, memory $memory)"
  elif [[ $out == *"denied the request: "* ]]; then
    result=denied message=${out#*denied the request: }
    reason=$(webhook_denial_reason "$name")
    say admission "${red}denied${reset}  pod $name (${channel:+channel $channel, }cpu $cpu," \
      "memory $memory): $message${reason:+ [$reason]}"
  else
    demo_fail "kubectl create pod $name failed: $out"
  fi
  [[ $result == "$expect" ]] || say admission "${yellow}(expected: $expect)${reset}"
  record_probe "$name" "$expect" "$result" "$reason" "$message"
}
# record_probe NAME EXPECT RESULT REASON MESSAGE: one admission decision for the summary.
record_probe() {
  py3 - "$work/probe-results.json" "$@" <<'PY'
import json, sys
path, name, expect, result, reason, message = sys.argv[1:7]
results = json.load(open(path)) + [{"name": name, "expect": expect, "result": result,
                                    "reason": reason, "message": message}]
json.dump(results, open(path, "w"))
PY
}
# refused_matrix: kubectl apply of a ShutdownMatrix whose first level (0.6) leaves no margin above
# the admission gate's ceiling (1 - 0.35): pi0-webhook refuses it, saying why.
refused_matrix() {
  local out rc=0 result message
  interruptible sleep 1
  out=$(k apply -f - 2>&1 <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: too-tight}
spec:
  levels: [{name: normal, upperBound: 0.6}, {name: overloaded}]
  rows: []
  mode: DryRun
YAML
  ) || rc=$?
  if ((rc == 0)); then
    result=allowed message=admitted
    k delete shutdownmatrix too-tight --wait=false >/dev/null 2>&1 || true
    say admission "${green}allowed${reset} ShutdownMatrix too-tight (first level at 0.6)"
  else
    result=denied message=${out#*denied the request: }
    say admission "${red}denied${reset}  ShutdownMatrix too-tight (first level at 0.6): $message"
  fi
  [[ $result == denied ]] || say admission "${yellow}(expected: denied)${reset}"
  record_probe "ShutdownMatrix/too-tight" denied "$result" Invalid "$message"
}
# webhook_denial_reason POD: the reason pi0-webhook logged when it last denied POD.
webhook_denial_reason() {
  py3 - "$work/webhook.log" "$1" reason <<'PY'
import json, sys
log, pod, field = sys.argv[1:4]
value = ""
for line in open(log, errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == "pod denied" and rec.get("pod", "").split("/")[-1] == pod:
        value = rec.get(field, "")
print(value)
PY
}

# The cluster load ℓ is the capacity-weighted mean of the nodes' projected peaks: the demo sets
# the synthetic nodes' cpu so that ℓ reaches TARGET, counting this machine's measured peak.
current_cpu=0.30
cpu_for() { # cpu_for TARGET: the synthetic nodes' cpu that makes ℓ TARGET
  local real
  real=$(demo_py peak "${agent_url[$this_node]}") || real=0.5
  py3 -c '
import sys
target, real, n_real, n_syn, count = (float(x) for x in sys.argv[1:6])
total = n_real + n_syn * count
print("%.3f" % min(1.0, max(0.0, (target * total - real * n_real) / (n_syn * count))))' \
    "$1" "$real" "$this_cpu" "$syn_cpu" "${#SYNTHETIC_NODES[@]}"
}
# load_to TARGET: the synthetic nodes' cpu steps to what makes ℓ TARGET, up or down, at once.
load_to() {
  local target=$1 to wave verb
  to=$(cpu_for "$target")
  verb=$(py3 -c 'import sys; print("steps up" if float(sys.argv[2]) > float(sys.argv[1]) else "steps down")' \
    "$current_cpu" "$to")
  wave="{wave: sum, of: [{wave: constant, value: $to},"
  wave+=" {wave: noise, mean: 0, std: 0.004, seed: 1}]}"
  say drive "${bold}the cpu of ${SYNTHETIC_NODES[0]} and ${SYNTHETIC_NODES[1]} $verb from" \
    "$current_cpu to $to: cluster load -> $target${reset}"
  for n in "${SYNTHETIC_NODES[@]}"; do set_cpu "$n" "$wave"; done
  current_cpu=$to
}
# until_true DESC TIMEOUT EXPR: waits (see demo.py wait); a timeout is said and the demo goes on
# (the summary then says what did not happen).
until_true() {
  interruptible "${demo_py[@]}" wait "$2" "$3" && return 0
  say drive "${yellow}not within $2 s: $1${reset}"
  return 1
}

# The live log, printed by the watcher (its output is the demo's).
DEMO_NS=$NS DEMO_WORK=$work env --ignore-signal=INT /usr/bin/python3 "$work/demo.py" watch 0.5 </dev/null &
pids+=("$!")
pid_names+=(watcher)

say info "Prometheus: $prometheus_url/graph?g0.expr=pi0_operator_load&g0.range_input=5m" \
  "(also pi0_operator_level, pi0_webhook_decisions_total, pi0_node_projected_peak_ratio)"
say info "the cluster: export KUBECONFIG=$KUBECONFIG; kubectl get sm;" \
  "kubectl get channels -n $NS"
say info "logs: $work (the programs' logs; removed at the end)"
step_s=$step
level_time=$((3 * step_s + 10))

headline "calm: load 0.30, level normal"
probe report-adhoc-1 allowed batch-reports 500m 512Mi
refused_matrix
interruptible sleep "$pause"

headline "overload, part 1: load 0.75 (elevated)"
load_to 0.75
until_true "level elevated" $((60 + level_time)) 'M.get("level") == "elevated"' || true
probe frontend-big denied frontend 1 256Mi
until_true "batch-reports and recommendations degraded" "$level_time" \
  'C["batch-reports"] == "Degraded" and C["recommendations"] == "Degraded"' || true
interruptible sleep "$pause"

headline "overload, part 2: load 0.85 (high)"
load_to 0.85
until_true "level high" "$level_time" 'M.get("level") == "high"' || true
until_true "batch-reports shut down" "$level_time" 'C["batch-reports"] == "Inactive"' || true
probe report-adhoc-2 denied batch-reports 500m 512Mi
until_true "recommendations shut down" "$level_time" 'C["recommendations"] == "Inactive"' || true
interruptible sleep "$pause"

headline "overload, part 3: load 0.93 (critical)"
load_to 0.93
until_true "level critical" "$level_time" 'M.get("level") == "critical"' || true
until_true "frontend degraded" "$level_time" 'C["frontend"] == "Degraded"' || true
probe adhoc-job denied "" 2 1Gi
interruptible sleep "$((step_s + pause))"

headline "the overload ends: load 0.30"
load_to 0.30
until_true "level normal" $((dwell + 60)) 'M.get("level") == "normal"' || true
until_true "everything restored" 180 "$all_ready"' and all(not w["pi0"] for w in W.values())' || true
probe report-adhoc-3 allowed batch-reports 500m 512Mi
interruptible sleep 2 # the watcher's last lines

headline "summary"
{
  for i in "${!pids[@]}"; do printf '%s\t%s\n' "${pid_names[i]}" "${pids[i]}"; done
  for f in "$PI0_CLUSTER_DIR"/pids/*.pid; do printf '%s\t%s\n' "$(basename "$f" .pid)" "$(<"$f")"; done
} | py3 -c 'import json, sys
json.dump(dict(line.rstrip("\n").split("\t") for line in sys.stdin), sys.stdout)' >"$work/processes.json"
summary_rc=0
demo_py summary "$summary_json" "$operator_url" "https://127.0.0.1:$webhook_port" \
  "$prometheus_url" "$work/tls/ca.crt" || summary_rc=$?
printf '  %-11s %ss\n' duration "$((SECONDS - started_at))"

if ((keep)); then
  headline "kept running (Ctrl-C stops everything)"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get sm; kubectl get channels,deployments -n $NS; kubectl get events -n $NS"
  echo "  Prometheus: $prometheus_url"
  while true; do interruptible sleep 3600; done
fi
headline "cleaning up"
exit "$summary_rc"
