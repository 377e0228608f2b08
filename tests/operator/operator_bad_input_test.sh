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

# shellcheck source=tests/operator/lib.sh
source "$source_dir/tests/operator/lib.sh"

# ---------------------------------------------------------------------------------------------
# Agents: one per Node (lib.sh's), a constant synthetic load (ℓ = LOAD).
LOAD=0.95

# bad_agent garbage|hang: a stand-in agent on a free port (its URL in bad_url[MODE]). garbage
# answers every GET with 200 and a body that is not a fingerprint; hang accepts connections
# and never answers.
declare -A bad_url
bad_agent() {
  local mode=$1 port
  port=$(e2e_free_port)
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
  until metrics_port[$n]=$(e2e_log_field "${op_log[$n]}" "serving metrics" port 2>/dev/null) &&
    probe_port[$n]=$(e2e_log_field "${op_log[$n]}" "serving probes" port 2>/dev/null); do
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
install_crds
for node in "${NODES[@]}"; do e2e_create_node "$node" 4 8Gi; done
e2e_start_fake_kubelet
e2e_create_namespace "$NS"
set_load "$LOAD"
start_agents
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
HEALTHY=$(e2e_agents_flag "${NODES[@]}")

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
start_operator 2 "$good=${E2E_AGENT_URLS[$good]},node-b=${bad_url[garbage]},node-c=${bad_url[hang]}"
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
