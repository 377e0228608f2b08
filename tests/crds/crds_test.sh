#!/usr/bin/env bash
# End-to-end test of Pi0's CustomResourceDefinitions (Channel, ShutdownMatrix, GatePolicy) against a real Kubernetes 1.20
# control plane (tests/e2e/lib.sh, cluster.sh): they are accepted and Established, kubectl explain
# shows their descriptions, the examples apply, the apiserver fills in the defaults and refuses
# invalid objects with a clear message, the printer columns, category and short names work, and
# status is a subresource.
# Usage: crds_test.sh PROJECT_SOURCE_DIR
set -euo pipefail

SRC=$(cd "${1:?usage: crds_test.sh PROJECT_SOURCE_DIR}" && pwd)
NS=pi0-demo
[ -f "$SRC/tests/e2e/lib.sh" ] || { echo "FAIL: $SRC/tests/e2e/lib.sh is missing" >&2; exit 1; }
# shellcheck source=tests/e2e/lib.sh
source "$SRC/tests/e2e/lib.sh"

fail() { e2e_fail "$@"; }
command -v kubectl >/dev/null || fail "kubectl not found: install the Debian package 'kubernetes-client'"

# A control plane of its own, stopped and removed when the script exits (lib.sh's trap).
e2e_cluster_up

k() { kubectl --request-timeout=30s "$@"; }
# The text of a command's output with runs of blanks and newlines folded to one space, so a
# phrase that kubectl wrapped across lines is still found.
flat() { tr -s ' \n\t' '   ' | sed 's/ $//'; }
# The first line of a command's output, flattened. The whole output is read first: `kubectl ... |
# head -n 1` can kill kubectl with SIGPIPE, which pipefail turns into a failure.
header() {
  local out
  out=$("$@")
  head -n 1 <<<"$out" | flat
}
contains() { # contains TEXT PHRASE WHAT
  grep -qF -- "$2" <<<"$1" || { printf '%s\n' "$1" >&2; fail "$3: no '$2' in the output above"; }
}
jp() { k get "$@"; } # jp KIND NAME [-n NS] -o jsonpath=...
expect_eq() {        # expect_eq GOT WANT WHAT
  [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
}
# refused WHAT PHRASE...: the manifest on stdin must be refused by the apiserver with each
# PHRASE in its message. --validate=false keeps kubectl's own schema check out of the way, so the
# message is the apiserver's. The 1.20 apiserver names a field inside a list item without the
# item's index (spec.levels.name, not spec.levels[0].name), except in Duplicate value errors.
refused() {
  local what=$1 out
  shift
  if out=$(k create --validate=false -f - 2>&1); then
    fail "$what: the apiserver accepted it ($out)"
  fi
  local phrase
  for phrase in "$@"; do contains "$out" "$phrase" "$what"; done
  e2e_log "ok: refused $what: $(head -c 300 <<<"$out")"
}

e2e_log "the CRDs apply and become Established"
k apply -f "$SRC/crds/"
k wait --for condition=established --timeout=60s \
  crd/channels.stability.pi0.io crd/shutdownmatrices.stability.pi0.io \
  crd/gatepolicies.stability.pi0.io
for crd in channels shutdownmatrices gatepolicies; do
  conds=$(k get crd "$crd.stability.pi0.io" \
    -o jsonpath='{range .status.conditions[*]}{.type}={.status};{end}')
  contains "$conds" "NamesAccepted=True" "crd $crd"
  case "$conds" in *NonStructuralSchema*) fail "crd $crd is not structural: $conds" ;; esac
done
# Discovery and the published OpenAPI catch up a moment after Established.
discovered() {
  k explain shutdownmatrix.spec.hysteresis >/dev/null 2>&1 && k get ch -A >/dev/null 2>&1 &&
    k explain gatepolicy.spec.holdoutShare >/dev/null 2>&1
}
e2e_wait_for "both kinds in discovery and the OpenAPI document" 60 discovered

e2e_log "kubectl explain prints the descriptions"
out=$(k explain channel.spec | flat)
contains "$out" "Replicas per target while the channel is Degraded" "explain channel.spec"
contains "$out" "degradedReplicas" "explain channel.spec"
out=$(k explain channel.spec.weights | flat)
contains "$out" "uses the ShutdownMatrix's spec.weights" "explain channel.spec.weights"
contains "$out" "Default: 0.4." "explain channel.spec.weights"
out=$(k explain shutdownmatrix.spec.hysteresis | flat)
contains "$out" "Keeps the plan from flapping at a level's edge" "explain shutdownmatrix.spec.hysteresis"
contains "$out" "dwellSeconds" "explain shutdownmatrix.spec.hysteresis"
contains "$out" "Default: 60." "explain shutdownmatrix.spec.hysteresis"
out=$(k explain shutdownmatrix.spec.anticipationSeconds | flat)
contains "$out" "Lead time, in seconds, of the anticipated level" "explain shutdownmatrix.spec.anticipationSeconds"

out=$(k explain gatepolicy.spec.holdoutShare | flat)
contains "$out" "the share of pod reviews judged with the fixed thresholds" "explain gatepolicy.spec.holdoutShare"
out=$(k explain gatepolicy.status.history | flat)
contains "$out" "Every change of a threshold" "explain gatepolicy.status.history"

e2e_log "the examples apply"
k apply -f "$SRC/examples/resources/"
expect_eq "$(k get ch -n $NS -o name | sort | tr '\n' ' ')" \
  "channel.stability.pi0.io/api channel.stability.pi0.io/batch-reports channel.stability.pi0.io/database channel.stability.pi0.io/frontend channel.stability.pi0.io/recommendations " \
  "example channels"
expect_eq "$(jp sm default -o jsonpath='{.spec.levels[*].name}')" "normal elevated high critical" \
  "example matrix levels"
expect_eq "$(jp sm default -o jsonpath='{.spec.restore.maxBackoffSeconds}')" 600 \
  "example matrix restore default"
# Applying again changes nothing (the examples spell out the defaults inside list items).
out=$(k apply -f "$SRC/examples/resources/")
if grep -qv 'unchanged$' <<<"$out"; then fail "a second apply changed something: $out"; fi
k apply -f "$SRC/examples/anticipation/"
expect_eq "$(jp sm anticipating -o jsonpath='{.spec.anticipationSeconds}/{.spec.mode}')" "45/DryRun" \
  "the anticipating example matrix"

e2e_log "the apiserver fills in the defaults"
k create -n $NS -f - <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: empty}
spec: {}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: nospec}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: partial-weights}
spec:
  weights: {throughput: 0.7}
  throughput: {prometheusQuery: "vector(1)"}
  targets: [{name: web}]
EOF
for name in empty nospec; do
  expect_eq "$(jp ch $name -n $NS -o jsonpath='{.spec.degradedReplicas}/{.spec.critical}/{.spec.restoreTimeoutSeconds}')" \
    "1/false/300" "Channel $name defaults (degradedReplicas/critical/restoreTimeoutSeconds)"
  # Without weights, a channel takes the matrix's: the Channel schema must not fill them in.
  expect_eq "$(jp ch $name -n $NS -o jsonpath='{.spec.weights}')" "" "Channel $name weights"
done
expect_eq "$(jp ch partial-weights -n $NS -o jsonpath='{.spec.weights.throughput}/{.spec.weights.reliability}/{.spec.weights.recovery}/{.spec.throughput.max}')" \
  "0.7/0.4/0.2/1" "Channel with partial weights"
expect_eq "$(jp ch partial-weights -n $NS -o jsonpath='{.spec.targets[0].kind}')" Deployment \
  "the kind of a target without one"
# A misspelt field: kubectl's own check (OpenAPI v2; a 1.20 apiserver has no server-side field
# validation) refuses it, and the apiserver, which prunes unknown fields, drops it.
bad='{"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
  "metadata": {"name": "typo", "namespace": "pi0-demo"}, "spec": {"degradedReplica": 3}}'
if out=$(k create -f - <<<"$bad" 2>&1); then fail "kubectl accepted a misspelt field: $out"; fi
contains "$out" 'unknown field "degradedReplica"' "kubectl's check of a misspelt field"
k create --validate=false -f - <<<"$bad"
expect_eq "$(jp ch typo -n $NS -o jsonpath='{.spec}')" \
  '{"critical":false,"degradedReplicas":1,"restoreTimeoutSeconds":300}' "a misspelt field is pruned"
k create -f - <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: minimal}
spec:
  levels: [{name: normal, upperBound: 0.8}, {name: overload}]
  rows:
    - channel: {name: batch-reports, namespace: pi0-demo}
      cells: [{level: overload, action: Shutdown}]
EOF
expect_eq "$(jp sm minimal -o jsonpath='{.spec.weights.throughput}/{.spec.weights.reliability}/{.spec.weights.recovery}')" \
  "0.4/0.4/0.2" "ShutdownMatrix weights"
expect_eq "$(jp sm minimal -o jsonpath='{.spec.mode}/{.spec.stepIntervalSeconds}/{.spec.stabilityThreshold}/{.spec.anticipationSeconds}')" \
  "Enforce/30/0.5/0" "ShutdownMatrix mode/stepIntervalSeconds/stabilityThreshold/anticipationSeconds"
expect_eq "$(jp sm minimal -o jsonpath='{.spec.hysteresis.margin}/{.spec.hysteresis.dwellSeconds}')" \
  "0.05/60" "ShutdownMatrix hysteresis"
expect_eq "$(jp sm minimal -o jsonpath='{.spec.loadSignal.source}/{.spec.loadSignal.resources[*]}')" \
  "Fleet/cpu memory gpu" "ShutdownMatrix loadSignal"
expect_eq "$(jp sm minimal -o jsonpath='{.spec.restore.backoffSeconds}/{.spec.restore.maxBackoffSeconds}')" \
  "10/600" "ShutdownMatrix restore"
expect_eq "$(jp sm minimal -o jsonpath='{.spec.rows[0].critical}/{.spec.rows[0].cells[0].order}')" \
  "false/0" "ShutdownMatrix row and cell defaults"

e2e_log "the apiserver refuses invalid objects with a clear message"
refused "a weight of 1.5" "spec.weights.throughput" "should be less than or equal to 1" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bad-weight, namespace: pi0-demo}
spec: {weights: {throughput: 1.5}}
EOF
refused "negative degradedReplicas" "spec.degradedReplicas" "should be greater than or equal to 0" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bad-replicas, namespace: pi0-demo}
spec: {degradedReplicas: -1}
EOF
refused "an unknown target kind" "spec.targets" "kind: Unsupported value: \"Job\"" 'Unsupported value: "Job"' <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bad-kind, namespace: pi0-demo}
spec: {targets: [{kind: Job, name: nightly}]}
EOF
refused "a target twice" "spec.targets[1]" "Duplicate value" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: dup-target, namespace: pi0-demo}
spec: {targets: [{name: api}, {kind: Deployment, name: api}]}
EOF
refused "a memory limit that is not a quantity" "spec.buffer.max.memory" "should match" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bad-quantity, namespace: pi0-demo}
spec: {buffer: {max: {memory: lots}}}
EOF
refused "a throughput without a query" "spec.throughput.prometheusQuery" "Required value" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bad-throughput, namespace: pi0-demo}
spec: {throughput: {max: 10}}
EOF
refused "throughput.max 0" "spec.throughput.max" "should be greater than 0" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: bad-max, namespace: pi0-demo}
spec: {throughput: {prometheusQuery: "vector(1)", max: 0}}
EOF
refused "an unknown mode" "spec.mode" 'Unsupported value: "Sometimes"' '"Enforce", "DryRun"' <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-mode}
spec: {levels: [{name: all}], mode: Sometimes}
EOF
refused "an unknown cell action" "spec.rows" "cells" "action: Unsupported value: \"Explode\"" 'Unsupported value: "Explode"' <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-action}
spec:
  levels: [{name: normal, upperBound: 0.8}, {name: overload}]
  rows:
    - channel: {name: batch-reports, namespace: pi0-demo}
      cells: [{level: overload, action: Explode}]
EOF
refused "a matrix without levels" "spec.levels" "should have at least 1 items" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: no-levels}
spec: {levels: []}
EOF
refused "a matrix without spec" "spec" "Required value" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: no-spec}
EOF
refused "two levels with one name" "spec.levels[1]" "Duplicate value" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: dup-levels}
spec: {levels: [{name: normal, upperBound: 0.8}, {name: normal}]}
EOF
refused "a level name that is not a DNS label" "spec.levels" "name: Invalid value: \"Normal_Load\"" "should match" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-level-name}
spec: {levels: [{name: Normal_Load}]}
EOF
refused "an upperBound of 0" "spec.levels" "upperBound: Invalid value: 0" "should be greater than 0" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-bound}
spec: {levels: [{name: normal, upperBound: 0}, {name: rest}]}
EOF
refused "a stabilityThreshold above 1" "spec.stabilityThreshold" "should be less than or equal to 1" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-threshold}
spec: {levels: [{name: all}], stabilityThreshold: 2}
EOF
refused "an unknown load resource" "spec.loadSignal.resources" 'Unsupported value: "disk"' <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-resource}
spec: {levels: [{name: all}], loadSignal: {resources: [disk]}}
EOF
refused "an anticipation past an hour" "spec.anticipationSeconds" "should be less than or equal to 3600" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: bad-anticipation}
spec: {levels: [{name: all}], anticipationSeconds: 3601}
EOF

e2e_log "printer columns, category and short names"
out=$(header k get channels -n $NS)
expect_eq "$out" "NAME STATE PRIORITY CRITICAL READY DESIRED AGE" "kubectl get channels header"
out=$(header k get channels -n $NS -o wide)
expect_eq "$out" "NAME STATE PRIORITY CRITICAL READY DESIRED LEVEL P-FAIL AGE" "kubectl get channels -o wide header"
out=$(header k get shutdownmatrices)
expect_eq "$out" "NAME LEVEL LOAD STABILITY AVAILABILITY SYSTEM MODE AGE" "kubectl get shutdownmatrices header"

# status_patch KIND NAME NAMESPACE PATCH: a merge patch of the status subresource, through the
# API (`kubectl patch --subresource=status` needs kubectl 1.24 or later; Debian's is 1.20).
status_patch() {
  local path
  case $1 in
    channel | ch) path=/apis/stability.pi0.io/v1alpha1/namespaces/$3/channels/$2/status ;;
    sm) path=/apis/stability.pi0.io/v1alpha1/shutdownmatrices/$2/status ;;
    gp) path=/apis/stability.pi0.io/v1alpha1/gatepolicies/$2/status ;;
    *) fail "status_patch: unknown kind $1" ;;
  esac
  e2e_api PATCH "$path" "$4"
}

status_patch channel batch-reports $NS '{"status": {
  "observedGeneration": 1, "state": "Degraded", "priority": 0.32, "level": "elevated",
  "terms": {"throughput": 0.5, "reliability": 0.2, "recovery": 0.3}, "failureProbability": 0.8,
  "replicas": {"desired": 1, "ready": 1},
  "buffer": {"allocated": {"cpu": "500m", "memory": "1Gi"}, "used": {"cpu": 0, "memory": "256Mi"}},
  "conditions": [{"type": "Ready", "status": "True", "reason": "Degraded",
    "message": "degraded at level elevated", "lastTransitionTime": "2026-01-02T03:04:05Z"}]}}' >/dev/null
out=$(k get ch batch-reports -n $NS --no-headers | flat)
case "$out" in
  "batch-reports Degraded 0.32 false 1 1 "*) ;;
  *) fail "kubectl get ch batch-reports shows '$out', want 'batch-reports Degraded 0.32 false 1 1 AGE'" ;;
esac
out=$(k get ch batch-reports -n $NS -o wide --no-headers | flat)
case "$out" in
  "batch-reports Degraded 0.32 false 1 1 elevated 0.8 "*) ;;
  *) fail "kubectl get ch -o wide shows '$out'" ;;
esac
status_patch sm default '' '{"status": {
  "observedGeneration": 1, "level": "elevated", "levelIndex": 1, "load": 0.76,
  "loadByResource": {"cpu": 0.76, "memory": 0.61}, "anticipatedLoad": 0.83,
  "levelCause": "Anticipated", "stability": 0.88, "availability": 0.94,
  "systemState": "Running",
  "plan": [{"step": 1, "action": "Degrade", "channel": {"name": "recommendations", "namespace": "pi0-demo"},
    "reason": "level elevated: matrix cell order 1", "targets": ["Deployment/recommendations"]}],
  "progress": {"phase": "ShuttingDown", "lastActionTime": "2026-01-02T03:04:05Z", "completedSteps": 1,
    "message": "step 1 of 2"}}}' >/dev/null
out=$(k get sm default --no-headers | flat)
case "$out" in
  "default elevated 0.76 0.88 0.94 Running Enforce "*) ;;
  *) fail "kubectl get sm default shows '$out', want 'default elevated 0.76 0.88 0.94 Running Enforce AGE'" ;;
esac
# The anticipation's status fields are in the schema, so they are kept, not pruned.
expect_eq "$(jp sm default -o jsonpath='{.status.anticipatedLoad}/{.status.levelCause}')" \
  "0.83/Anticipated" "ShutdownMatrix status anticipatedLoad/levelCause"
refused_status() { # refused_status WHAT PATCH PHRASE: a status write the apiserver must refuse
  local out
  if out=$(status_patch "$4" "$5" "${6:-}" "$2" 2>/dev/null); then
    fail "$1: the apiserver accepted it ($out)"
  fi
  # The answer is a Status object: its message is what a user would read.
  out=$(printf '%s' "$out" | e2e_json 'print(d.get("message", ""))' 2>/dev/null || printf '%s' "$out")
  contains "$out" "$3" "$1"
  e2e_log "ok: refused $1"
}
refused_status "an unknown channel state" '{"status": {"state": "Sleeping"}}' \
  'Unsupported value: "Sleeping"' channel batch-reports $NS
refused_status "a condition without a reason" \
  '{"status": {"conditions": [{"type": "Stalled", "status": "True", "message": "m", "lastTransitionTime": "2026-01-02T03:04:05Z"}]}}' \
  "reason: Required value" channel batch-reports $NS
refused_status "an unknown level cause" '{"status": {"levelCause": "Hunch"}}' \
  'Unsupported value: "Hunch"' sm default
refused_status "an unknown plan action" \
  '{"status": {"plan": [{"step": 1, "action": "Reboot"}]}}' 'Unsupported value: "Reboot"' sm default

out=$(k get pi0 -A -o name | sort | tr '\n' ' ')
contains "$out" "channel.stability.pi0.io/database" "kubectl get pi0"
contains "$out" "shutdownmatrix.stability.pi0.io/default" "kubectl get pi0"
for short in ch chan channel; do
  contains "$(k get "$short" -n $NS -o name)" "channel.stability.pi0.io/frontend" "kubectl get $short"
done
contains "$(k get sm -o name)" "shutdownmatrix.stability.pi0.io/default" "kubectl get sm"

e2e_log "status is a subresource"
gen=$(jp ch batch-reports -n $NS -o jsonpath='{.metadata.generation}')
# A write to the main resource changes the spec and ignores the status...
k patch ch batch-reports -n $NS --type=merge \
  -p '{"spec": {"degradedReplicas": 2}, "status": {"state": "Inactive"}}'
expect_eq "$(jp ch batch-reports -n $NS -o jsonpath='{.spec.degradedReplicas}/{.status.state}')" \
  "2/Degraded" "a spec write (degradedReplicas/state)"
expect_eq "$(jp ch batch-reports -n $NS -o jsonpath='{.metadata.generation}')" "$((gen + 1))" \
  "generation after a spec write"
# ...and a write to /status changes the status, ignores the spec and keeps the generation.
status_patch ch batch-reports $NS '{"spec": {"degradedReplicas": 5}, "status": {"state": "Inactive"}}' >/dev/null
expect_eq "$(jp ch batch-reports -n $NS -o jsonpath='{.spec.degradedReplicas}/{.status.state}')" \
  "2/Inactive" "a status write (degradedReplicas/state)"
expect_eq "$(jp ch batch-reports -n $NS -o jsonpath='{.metadata.generation}')" "$((gen + 1))" \
  "generation after a status write"
# The same for the cluster-scoped matrix.
k patch sm default --type=merge -p '{"spec": {"mode": "DryRun"}, "status": {"level": "high"}}'
expect_eq "$(jp sm default -o jsonpath='{.spec.mode}/{.status.level}')" "DryRun/elevated" \
  "a matrix spec write (mode/level)"
status_patch sm default '' '{"spec": {"mode": "Enforce"}, "status": {"level": "high"}}' >/dev/null
expect_eq "$(jp sm default -o jsonpath='{.spec.mode}/{.status.level}')" "DryRun/high" \
  "a matrix status write (mode/level)"

# Every field pi0-operator writes into a matrix's and a Channel's status (the fixtures
# operator_test checks against the operator's own JSON): accepted, and read back whole (nothing
# pruned by the schema).
full_status() { # KIND NAME NAMESPACE FIXTURE
  local fixture=$SRC/tests/fixtures/kube/$4
  status_patch "$1" "$2" "$3" "$(cat "$fixture")" >/dev/null ||
    fail "the apiserver refused the operator's full $1 status ($fixture)"
  if [[ -n $3 ]]; then k get "$1" "$2" -n "$3" -o json; else k get "$1" "$2" -o json; fi \
    >"$PI0_CLUSTER_DIR/$1-full.json"
  python3 - "$fixture" "$PI0_CLUSTER_DIR/$1-full.json" <<'PY' ||
import json, sys
want = json.load(open(sys.argv[1]))["status"]
got = json.load(open(sys.argv[2]))["status"]
lost = [k for k in want if got.get(k) != want[k]]
if lost:
    for k in lost:
        print("status.%s: wrote %s, read back %s" % (k, json.dumps(want[k]), json.dumps(got.get(k))))
    sys.exit(1)
PY
    fail "the operator's full $1 status did not read back as written (pruned by the schema?)"
  e2e_log "ok: the operator's full $1 status is accepted and kept"
}
full_status sm default '' matrix_status.json
full_status ch batch-reports "$NS" channel_status.json

e2e_log "GatePolicy: defaults, refusals, printer columns and the operator's full status"
k create -f - <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: default}
spec: {}
EOF
expect_eq "$(jp gp default -o jsonpath='{.spec.mode}/{.spec.holdoutShare}/{.spec.step}/{.spec.minDecisions}/{.spec.interval}/{.spec.window}')" \
  "Recommend/0.05/0.01/50/1h/24h" "GatePolicy defaults"
refused "a holdout share of 0.9" "spec.holdoutShare" "should be less than or equal to 0.5" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: bad-holdout}
spec: {holdoutShare: 0.9}
EOF
refused "an unknown mode" "spec.mode" 'Unsupported value: "Sometimes"' <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: bad-mode}
spec: {mode: Sometimes}
EOF
# YAML 1.1 reads an unquoted Off as false: the apiserver says the type is wrong (the README says
# to quote it).
refused "an unquoted Off" "spec.mode" "must be of type string" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: bad-off}
spec: {mode: Off}
EOF
refused "an interval that is not a duration" "spec.interval" "should match" <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: bad-interval}
spec: {interval: hourly}
EOF
full_status gp default '' gatepolicy_status.json
expect_eq "$(header k get gp default)" "NAME MODE FIT GLUE PSI ISOLATION READY AGE" \
  "GatePolicy printer columns"
contains "$(k get gp default | flat)" "default Recommend 0.09 0.15 0.24 0.35 True" \
  "GatePolicy printer values"
contains "$(k get pi0 -o name)" "gatepolicy.stability.pi0.io/default" "kubectl get pi0 (GatePolicy)"

e2e_log "PASS: crds_test"
