#!/usr/bin/env bash
# End-to-end test of pi0-operator on bad input, on the real control plane (tests/e2e): three
# stand-in Nodes with pi0-agents (synthetic load 0.95, the critical level), the fake kubelet,
# and in namespace `shop` the Channels web (critical, Deployment web), batch (Deployment batch)
# and orphan (naming Deployment `missing`, which does not exist). It checks:
#
#  (a) a ShutdownMatrix whose cell names the level `nope`: condition Valid False (InvalidSpec)
#      naming `nope`, an InvalidSpec Warning Event on the matrix, and no workload touched
#      although the load is critical;
#  (b) the matrix changed to name the Channel shop/ghost, which does not exist: Valid False
#      naming `ghost`, for the new generation;
#  (c) a valid matrix (batch, then orphan, shut down at critical): orphan's TargetsFound is False
#      (TargetMissing) naming Deployment/missing, with a TargetMissing Warning Event; batch is
#      shut down as planned; web (critical) is never touched and `missing` is never created;
#  (d) a new operator whose agents are: node-a healthy, node-b a server answering /fingerprint
#      with garbage, node-c a server that accepts and never answers. It stays up (/healthz),
#      counts pi0_operator_fleet_polls_total{result="error"} and {result="timeout"}, reports
#      AgentsHealthy False (AgentsFailing) naming node-b and node-c, leaves AgentUnreachable
#      Warning Events on those two Nodes, and still measures the load from node-a.
#
# Usage: operator_bad_input_test.sh SOURCE_DIR PI0_OPERATOR_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: operator_bad_input_test.sh SOURCE_DIR PI0_OPERATOR PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

NS=shop
STEP=2 # spec.stepIntervalSeconds
NODES=(node-a node-b node-c)

# ---------------------------------------------------------------------------------------------
# Helpers

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# log_field LOG MSG FIELD: FIELD of the first JSON log line of LOG whose msg is MSG.
log_field() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
log, msg, field = sys.argv[1:4]
for line in open(log, errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == msg and field in rec:
        print(rec[field])
        sys.exit(0)
sys.exit(1)
PY
}

now() { date +%s.%N; }
k() { kubectl --request-timeout=30s "$@"; }

e2e_cluster_up
work=$PI0_CLUSTER_DIR/operator-e2e
mkdir -p "$work"

# state.py reads the snapshot that `snapshot` saves and evaluates Python expressions over it:
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
cat >"$work/state.py" <<'PY'
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
PY

snapshot() {
  e2e_api GET "/apis/apps/v1/namespaces/$NS/deployments" >"$work/deployments.json" &&
    e2e_api GET "/apis/autoscaling/v1/namespaces/$NS/horizontalpodautoscalers" >"$work/hpas.json" &&
    e2e_api GET "/apis/stability.pi0.io/v1alpha1/namespaces/$NS/channels" >"$work/channels.json" &&
    e2e_api GET /apis/stability.pi0.io/v1alpha1/shutdownmatrices >"$work/matrices.json" &&
    e2e_api GET /api/v1/events >"$work/events.json"
}
VARS=() # --var NAME=VALUE pairs handed to every evaluation
setvar() { VARS+=(--var "$1=$2"); }
# value EXPR: the value of EXPR over the last snapshot.
value() { /usr/bin/python3 "$work/state.py" "$work" value "${VARS[@]}" "$1"; }
# holds EXPR...: a fresh snapshot, and every expression true.
holds() { snapshot 2>/dev/null && /usr/bin/python3 "$work/state.py" "$work" check "${VARS[@]}" "$@"; }

declare -A op_pid op_log op_id metrics_port
dump() {
  e2e_log "what the test saw:"
  snapshot || true
  /usr/bin/python3 "$work/state.py" "$work" show || true
  local n
  for n in "${!op_log[@]}"; do
    e2e_log "last lines of operator $n (${op_id[$n]}, pid ${op_pid[$n]}):"
    tail -n 40 "${op_log[$n]}" | sed 's/^/    /' >&2
  done
}
fail() {
  dump
  e2e_fail "$@"
}
# expect DESC EXPR...: fails, showing the state and which expressions are false, unless all hold.
expect() {
  local desc=$1
  shift
  if ! holds "$@"; then
    /usr/bin/python3 "$work/state.py" "$work" explain "${VARS[@]}" "$@" || true
    fail "$desc"
  fi
  e2e_log "ok: $desc"
}
# wait_for DESC TIMEOUT_S EXPR...: until every expression holds.
wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until holds "$@"; do
    if ((SECONDS >= deadline)); then
      /usr/bin/python3 "$work/state.py" "$work" explain "${VARS[@]}" "$@" || true
      fail "timed out after ${timeout}s waiting for $desc"
    fi
    sleep 0.3
  done
  e2e_log "ok: $desc"
}


# ---------------------------------------------------------------------------------------------
# Agents: one per Node, a constant synthetic load (ℓ = LOAD).
LOAD=0.95
declare -A agent_url
start_agent() {
  local node=$1 log=$work/agent-$1.log profile=$work/profile-$1.yaml pid port="" i
  printf 'signals:\n  cpu: {wave: constant, value: %s}\n  memory: {wave: constant, value: 0.2}\n' \
    "$LOAD" >"$profile"
  "$agent_bin" --listen 127.0.0.1:0 --nvml-library none --gpu-probe-interval 0 \
    --node-name "$node" --source "synthetic:$profile" --interval 200ms --window 16 \
    </dev/null 2>"$log" &
  pid=$!
  disown "$pid" # no "Killed" job notice when the exit trap kills it
  e2e_at_exit "kill -KILL $pid 2>/dev/null || true"
  for i in $(seq 100); do
    port=$(log_field "$log" "pi0-agent started" port 2>/dev/null) && break
    e2e_pid_alive "$pid" || { tail -n 20 "$log" >&2; e2e_fail "pi0-agent for $node exited"; }
    sleep 0.1
  done
  [[ -n $port ]] || e2e_fail "pi0-agent for $node did not start serving"
  agent_url[$node]=http://127.0.0.1:$port
}

# bad_agent garbage|hang: a stand-in agent on a free port (its URL in bad_url[MODE]). garbage
# answers every GET with 200 and a body that is not a fingerprint; hang accepts connections
# and never answers.
declare -A bad_url
bad_agent() {
  local mode=$1 port
  port=$(free_port)
  /usr/bin/python3 - "$mode" "$port" >"$work/bad-agent-$mode.log" 2>&1 <<'PY' &
import http.server, socket, sys, threading, time
mode, port = sys.argv[1], int(sys.argv[2])
if mode == "garbage":
    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"kind": "Fingerprint", "signals": [1, 2, \x00 this is not json'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Garbage)
    print("serving", flush=True)
    server.serve_forever()
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    print("serving", flush=True)
    held = []
    while True:
        conn, _ = s.accept()
        held.append(conn)  # read nothing, answer nothing, close nothing
PY
  local pid=$!
  disown "$pid"
  e2e_at_exit "kill -KILL $pid 2>/dev/null || true"
  local deadline=$((SECONDS + 10))
  until grep -q serving "$work/bad-agent-$mode.log"; do
    e2e_pid_alive "$pid" || { cat "$work/bad-agent-$mode.log" >&2; e2e_fail "the $mode server exited"; }
    ((SECONDS < deadline)) || e2e_fail "the $mode server did not start"
    sleep 0.1
  done
  bad_url[$mode]=http://127.0.0.1:$port
}

# ---------------------------------------------------------------------------------------------
# Operators.
start_operator() { # start_operator N AGENTS: identity pi0-bad-N, --agents AGENTS
  local n=$1
  op_id[$n]=pi0-bad-$n
  op_log[$n]=$work/operator-$n.log
  "$operator_bin" --kubeconfig "$KUBECONFIG" --leader-elect --identity "${op_id[$n]}" \
    --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --agents "$2" --poll-interval 1s --agent-timeout 500ms --log-level info \
    </dev/null >"${op_log[$n]}" 2>&1 &
  op_pid[$n]=$!
  disown "${op_pid[$n]}"
  e2e_at_exit "kill -KILL ${op_pid[$n]} 2>/dev/null || true"
  local deadline=$((SECONDS + 30))
  until metrics_port[$n]=$(log_field "${op_log[$n]}" "serving metrics" port 2>/dev/null) &&
    probe_port[$n]=$(log_field "${op_log[$n]}" "serving probes" port 2>/dev/null); do
    e2e_pid_alive "${op_pid[$n]}" || fail "operator $n exited at start"
    ((SECONDS < deadline)) || fail "operator $n does not serve metrics after 30 s"
    sleep 0.2
  done
  until grep -q '"msg":"leading"' "${op_log[$n]}"; do
    e2e_pid_alive "${op_pid[$n]}" || fail "operator $n exited before leading"
    ((SECONDS < deadline)) || fail "operator $n does not lead after 30 s"
    sleep 0.2
  done
  e2e_log "operator $n leads: identity ${op_id[$n]}, pid ${op_pid[$n]}, metrics port ${metrics_port[$n]}"
}
declare -A probe_port
metric() { # metric N SERIES: the value of SERIES (as exposed, labels included) on operator N
  local text
  text=$(curl -sS --noproxy '*' --fail --max-time 5 "http://127.0.0.1:${metrics_port[$1]}/metrics") ||
    return 1
  awk -v s="$2" '$1 == s { print $2; f = 1 } END { exit !f }' <<<"$text"
}
# metric_at_least N SERIES MIN: the series is there and at least MIN.
metric_at_least() {
  local v
  v=$(metric "$1" "$2") || return 1
  /usr/bin/python3 -c "import sys; sys.exit(0 if float('$v') >= float('$3') else 1)"
}
wait_metric_at_least() {
  local deadline=$((SECONDS + $4))
  until metric_at_least "$1" "$2" "$3"; do
    ((SECONDS < deadline)) ||
      fail "operator $1: $2 is $(metric "$1" "$2" || echo absent) after $4 s, want at least $3"
    sleep 0.3
  done
  e2e_log "ok: operator $1: $2 = $(metric "$1" "$2") (at least $3)"
}
alive() { # alive N: the process runs and /healthz answers 200
  e2e_pid_alive "${op_pid[$1]}" || fail "operator $1 exited: $(tail -n 5 "${op_log[$1]}")"
  curl -sS --noproxy '*' --fail --max-time 5 -o /dev/null \
    "http://127.0.0.1:${probe_port[$1]}/healthz" || fail "operator $1: /healthz does not answer 200"
  e2e_log "ok: operator $1 is up and /healthz answers"
}

# matrix ROWS_YAML [LEVELS_YAML]: applies the ShutdownMatrix `default` with those rows.
matrix() {
  k apply -f - >/dev/null <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: default}
spec:
  levels:
    - {name: normal, upperBound: 0.6}
    - {name: critical}
  rows:
$1
  loadSignal: {source: Fleet, resources: [cpu, memory, gpu]}
  stabilityThreshold: 0
  hysteresis: {margin: 0.05, dwellSeconds: 60}
  stepIntervalSeconds: $STEP
  mode: Enforce
YAML
}
WEB_ROW="    - channel: {name: web, namespace: $NS}
      critical: true"

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: CRDs, Nodes, agents, workloads"
e2e_install_crds
discovered() { k get channels -A >/dev/null 2>&1 && k get shutdownmatrices >/dev/null 2>&1; }
e2e_wait_for "both kinds served" 60 discovered
for node in "${NODES[@]}"; do e2e_create_node "$node" 4 8Gi; done
e2e_start_fake_kubelet
e2e_create_namespace "$NS"
for node in "${NODES[@]}"; do start_agent "$node"; done
bad_agent garbage
bad_agent hang

for name in web:2 batch:3; do
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name%:*}
  namespace: $NS
spec:
  replicas: ${name#*:}
  selector:
    matchLabels: {app: ${name%:*}}
  template:
    metadata:
      labels: {app: ${name%:*}, stability.pi0.io/channel: ${name%:*}}
    spec:
      containers:
        - name: main
          image: placeholder:1
          resources:
            requests: {cpu: 10m, memory: 16Mi}
---
YAML
done | k apply -f - >/dev/null
wait_for "the workloads to be ready" 90 'D["web"]["ready"] == 2 and D["batch"]["ready"] == 3'
k apply -f - >/dev/null <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: web, namespace: $NS}
spec:
  critical: true
  targets:
    - {kind: Deployment, name: web}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: batch, namespace: $NS}
spec:
  critical: false
  targets:
    - {kind: Deployment, name: batch}
  degradedReplicas: 1
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: orphan, namespace: $NS}
spec:
  critical: false
  targets:
    - {kind: Deployment, name: missing}
  degradedReplicas: 1
YAML
UNTOUCHED='all(d["gen"] == 1 and d["ann"] == {} for d in D.values()) and D["web"]["replicas"] == 2 and D["batch"]["replicas"] == 3'
NO_ACTIONS='[e for e in E if e["reason"] in ("ScaledDown", "Degraded", "ShutDown")] == []'
HEALTHY=""
for node in "${NODES[@]}"; do HEALTHY+="${HEALTHY:+,}$node=${agent_url[$node]}"; done

# ---------------------------------------------------------------------------------------------
e2e_log "(a) a cell names the level 'nope'"
matrix "$WEB_ROW
    - channel: {name: batch, namespace: $NS}
      critical: false
      cells:
        - {level: nope, action: Shutdown, order: 0}"
start_operator 1 "$HEALTHY"
wait_for "Valid False naming 'nope', and an InvalidSpec Warning Event on the matrix" 30 \
  'cond(M["default"], "Valid").get("status") == "False"' \
  'cond(M["default"], "Valid").get("reason") == "InvalidSpec"' \
  '"nope" in cond(M["default"], "Valid").get("message", "")' \
  'any(e["type"] == "Warning" and "nope" in (e["message"] or "") for e in ev("InvalidSpec", "ShutdownMatrix", "default"))'
sleep $((3 * STEP + 1))
expect "no workload touched under the invalid matrix at ℓ = $LOAD" "$UNTOUCHED" "$NO_ACTIONS" \
  'cond(M["default"], "Valid").get("status") == "False"'
alive 1

e2e_log "(b) a row names the Channel shop/ghost, which does not exist"
matrix "$WEB_ROW
    - channel: {name: ghost, namespace: $NS}
      critical: false
      cells:
        - {level: critical, action: Shutdown, order: 0}"
wait_for "Valid False naming 'ghost' for the new generation" 30 \
  'cond(M["default"], "Valid").get("status") == "False"' \
  '"ghost" in cond(M["default"], "Valid").get("message", "")' \
  '"nope" not in cond(M["default"], "Valid").get("message", "")' \
  'M["default"].get("observedGeneration") == MG["default"]'
expect "nothing touched" "$UNTOUCHED" "$NO_ACTIONS"

e2e_log "(c) a valid matrix; the Channel orphan names a missing Deployment"
matrix "$WEB_ROW
    - channel: {name: batch, namespace: $NS}
      critical: false
      cells:
        - {level: critical, action: Shutdown, order: 0}
    - channel: {name: orphan, namespace: $NS}
      critical: false
      cells:
        - {level: critical, action: Shutdown, order: 1}"
wait_for "orphan: TargetsFound False naming Deployment/missing, and a TargetMissing Event" 30 \
  'cond(C["orphan"], "TargetsFound").get("status") == "False"' \
  'cond(C["orphan"], "TargetsFound").get("reason") == "TargetMissing"' \
  '"Deployment/missing" in cond(C["orphan"], "TargetsFound").get("message", "")' \
  'any(e["type"] == "Warning" for e in ev("TargetMissing", "Channel", "orphan"))'
wait_for "the matrix valid again, and batch shut down as planned" 30 \
  'cond(M["default"], "Valid").get("status") == "True"' \
  'M["default"].get("level") == "critical"' \
  'D["batch"]["replicas"] == 0'
sleep $((3 * STEP + 1))
expect "batch shut down once, web never touched, nothing created for the missing target" \
  'D["batch"]["gen"] == 2 and D["batch"]["ann"].get("original-replicas") == "3"' \
  'D["web"]["replicas"] == 2 and D["web"]["gen"] == 1 and D["web"]["ann"] == {}' \
  '"missing" not in D' \
  'cond(C["batch"], "TargetsFound").get("status") != "False"' \
  'cond(C["web"], "TargetsFound").get("status") != "False"' \
  '[e for e in E if e["name"] == "web"] == []' \
  'all(e["type"] == "Warning" and "Deployment/missing" in (e["message"] or "") for e in ev("TargetMissing"))'
alive 1

# ---------------------------------------------------------------------------------------------
e2e_log "(d) agents that answer garbage, or never answer"
kill -TERM "${op_pid[1]}"
deadline=$((SECONDS + 15))
while e2e_pid_alive "${op_pid[1]}"; do
  ((SECONDS < deadline)) || fail "operator 1 did not exit within 15 s of SIGTERM"
  sleep 0.1
done
good="node-a"
start_operator 2 "$good=${agent_url[$good]},node-b=${bad_url[garbage]},node-c=${bad_url[hang]}"
wait_metric_at_least 2 'pi0_operator_fleet_polls_total{result="error"}' 3 20
wait_metric_at_least 2 'pi0_operator_fleet_polls_total{result="timeout"}' 3 20
wait_metric_at_least 2 'pi0_operator_fleet_polls_total{result="ok"}' 3 20
wait_for "AgentsHealthy False naming node-b and node-c, AgentUnreachable on both Nodes, ℓ still measured" 40 \
  'cond(M["default"], "AgentsHealthy").get("status") == "False"' \
  'cond(M["default"], "AgentsHealthy").get("reason") == "AgentsFailing"' \
  '"node-b" in cond(M["default"], "AgentsHealthy").get("message", "")' \
  '"node-c" in cond(M["default"], "AgentsHealthy").get("message", "")' \
  '"node-a" not in cond(M["default"], "AgentsHealthy").get("message", "")' \
  '"time" in cond(M["default"], "AgentsHealthy").get("message", "")' \
  'any(w in cond(M["default"], "AgentsHealthy").get("message", "").lower() for w in ("json", "invalid", "parse"))' \
  'any(e["type"] == "Warning" and e["instance"] == "pi0-bad-2" for e in ev("AgentUnreachable", "Node", "node-b"))' \
  'any(e["type"] == "Warning" and e["instance"] == "pi0-bad-2" for e in ev("AgentUnreachable", "Node", "node-c"))' \
  'ev("AgentUnreachable", "Node", "node-a") == []' \
  'isinstance(M["default"].get("load"), (int, float)) and abs(M["default"]["load"] - '"$LOAD"') < 0.02' \
  'cond(M["default"], "LoadMeasured").get("status") == "True"'
e2e_log "AgentsHealthy: $(value 'cond(M["default"], "AgentsHealthy")')"
# The polls keep failing (the breakers retry), and the operator keeps serving.
polls() { metric 2 "pi0_operator_fleet_polls_total{result=\"$1\"}"; }
errors=$(polls error) timeouts=$(polls timeout) skipped=$(polls skipped_open)
grew() { # some failure counter went up since the values above
  local e t s
  e=$(polls error) && t=$(polls timeout) && s=$(polls skipped_open) || return 1
  /usr/bin/python3 -c "import sys; sys.exit(0 if ($e > $errors and $t > $timeouts) or $s > $skipped else 1)"
}
deadline=$((SECONDS + 15))
until grew; do
  ((SECONDS < deadline)) ||
    fail "the failing agents are neither polled nor skipped any more: error $errors, timeout $timeouts, skipped_open $skipped"
  sleep 0.5
done
e2e_log "ok: the failing agents are still polled or skipped"
alive 2
e2e_log "PASS"
