#!/usr/bin/env bash
# End-to-end test of the anticipated level on the real control plane (tests/e2e): one stand-in
# Node with a pi0-agent reading a synthetic profile (200 ms interval, 64 samples, so its forecast
# looks 30 samples = 6 s ahead), the fake kubelet, the Channel batch (Deployment batch, 3
# replicas, degraded to 1) and the ShutdownMatrix `default`: normal ≤ 0.6, elevated ≤ 0.8,
# critical; batch degraded at elevated; anticipationSeconds 20; one step per 2 s; recovery after
# 4 s under 0.55. It checks:
#
#  1. cpu 0.3 (steady): level normal, levelCause Load, condition Anticipating True (Forecast),
#     the anticipated load ≈ the load; nothing touched.
#  2. cpu ramps 0.3 → 0.5 over 20 s (0.01/s): the load itself (the peak within 6 s) never
#     passes normal's bound 0.6, but the forecast 20 s further does: the matrix goes to elevated
#     early, with an Anticipated Event (not LevelChanged) naming the forecast load and the bound,
#     levelCause Anticipated, pi0_operator_anticipated_level_changes_total 1, and batch degraded
#     with a reason that says anticipated; all while status.load is under 0.6.
#  3. The ramp stops at 0.5 (the forecast did not come true): the trend leaves the forecast,
#     the level falls back to normal after the dwell and batch is restored to 3.
#
# Usage: operator_anticipation_test.sh SOURCE_DIR PI0_OPERATOR_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: operator_anticipation_test.sh SOURCE_DIR PI0_OPERATOR PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

NS=shop
NODES=(node-a)

# shellcheck source=tests/operator/lib.sh
source "$source_dir/tests/operator/lib.sh"

set_cpu() { # set_cpu WAVE: node-a's cpu
  e2e_write_profile node-a "$1"
  e2e_log "cpu: $1"
}

e2e_log "set-up: CRDs, the Node, its agent, the workload"
install_crds
e2e_create_node node-a 4 8Gi
e2e_start_fake_kubelet
e2e_create_namespace "$NS"

set_cpu "{wave: constant, value: 0.3}"
e2e_start_synthetic_agent "$agent_bin" node-a --interval 200ms --window 64

{
  deployment batch 3
  cat <<YAML
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
kind: ShutdownMatrix
metadata: {name: default}
spec:
  levels:
    - {name: normal, upperBound: 0.6}
    - {name: elevated, upperBound: 0.8}
    - {name: critical}
  rows:
    - channel: {name: batch, namespace: $NS}
      critical: false
      cells:
        - {level: elevated, action: Degrade, order: 0}
  loadSignal: {source: Fleet, resources: [cpu]}
  stabilityThreshold: 0
  hysteresis: {margin: 0.05, dwellSeconds: 4}
  stepIntervalSeconds: 2
  anticipationSeconds: 20
  mode: Enforce
YAML
} | k apply -f - >/dev/null
wait_for "batch ready" 90 'D["batch"]["ready"] == 3'

op_id[1]=pi0-anticipation
op_log[1]=$work/operator-1.log
"$operator_bin" --kubeconfig "$KUBECONFIG" --identity "${op_id[1]}" \
  --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
  --agents "$(e2e_agents_flag node-a)" --poll-interval 1s --agent-timeout 500ms \
  --log-level info </dev/null >"${op_log[1]}" 2>&1 &
op_pid[1]=$!
disown "${op_pid[1]}"
e2e_at_exit "kill -KILL ${op_pid[1]} 2>/dev/null || true"
deadline=$((SECONDS + 30))
until metrics_port[1]=$(e2e_log_field "${op_log[1]}" "serving metrics" port 2>/dev/null); do
  e2e_pid_alive "${op_pid[1]}" || fail "pi0-operator exited at start"
  ((SECONDS < deadline)) || fail "pi0-operator does not serve metrics after 30 s"
  sleep 0.2
done
metric() { # metric SERIES: its value on the operator's /metrics
  curl -sS --noproxy '*' --fail --max-time 5 "http://127.0.0.1:${metrics_port[1]}/metrics" |
    awk -v s="$1" '$1 == s { print $2; f = 1 } END { exit !f }'
}

e2e_log "1. steady at 0.3"
wait_for "level normal, cause Load, Anticipating True, anticipated ≈ load" 60 \
  'M["default"].get("level") == "normal" and M["default"].get("levelCause") == "Load"' \
  'abs(M["default"].get("load", -1) - 0.3) < 0.03' \
  'abs(M["default"].get("anticipatedLoad", -1) - M["default"]["load"]) < 0.03' \
  'cond(M["default"], "Anticipating").get("status") == "True"' \
  'cond(M["default"], "Anticipating").get("reason") == "Forecast"'
expect "nothing touched" 'D["batch"]["replicas"] == 3 and D["batch"]["ann"] == {}' \
  '[e for e in E if e["reason"] in ("Anticipated", "LevelChanged", "Degraded")] == []'

e2e_log "2. a ramp the forecast extrapolates"
set_cpu "{wave: ramp, from: 0.3, to: 0.5, overSeconds: 20}"
wait_for "level elevated early: Anticipated Event, cause Anticipated, load under 0.6" 30 \
  'M["default"].get("level") == "elevated"' \
  'len(ev("Anticipated", "ShutdownMatrix", "default")) == 1' \
  'ev("LevelChanged", "ShutdownMatrix", "default") == []'
setvar rose "$(value 'ev("Anticipated", "ShutdownMatrix", "default")[0]["t"]')"
expect "the Anticipated Event names the move, the forecast and the bound" \
  'ev("Anticipated")[0]["message"].startswith("level normal -> elevated early: Anticipated: forecast load ")' \
  '"(lead 20 s) is above normal\x27s bound 0.60" in ev("Anticipated")[0]["message"]'
wait_for "batch degraded, the reason saying anticipated" 20 'D["batch"]["replicas"] == 1' \
  'any("(anticipated)" in e["message"] for e in ev("Degraded", "Channel", "batch"))'
[[ $(metric 'pi0_operator_anticipated_level_changes_total{matrix="default"}') == 1 ]] ||
  fail "pi0_operator_anticipated_level_changes_total is not 1"
e2e_log "ok: pi0_operator_anticipated_level_changes_total 1"
# While the ramp runs the load itself stays under normal's bound: the level is the forecast's.
expect "the load under 0.6 while levelCause is Anticipated" \
  'M["default"].get("levelCause") != "Anticipated" or M["default"]["load"] < 0.6'

e2e_log "3. the ramp stops at 0.5: the forecast did not come true"
wait_for "back to normal, batch restored to 3, cause Load" 60 \
  'M["default"].get("level") == "normal" and M["default"].get("levelCause") == "Load"' \
  'D["batch"]["replicas"] == 3' \
  'len(ev("LevelChanged", "ShutdownMatrix", "default")) == 1' \
  'ev("LevelChanged", "ShutdownMatrix", "default")[0]["t"] >= V["rose"] + 4'
expect "one anticipated rise, one degrade, one restore" \
  'len(ev("Anticipated")) == 1 and n("Degraded", "Channel", "batch") == 1' \
  'n("ScaledDown", "Deployment", "batch") == 1 and n("ScaledUp", "Deployment", "batch") == 1'
e2e_log "PASS"
