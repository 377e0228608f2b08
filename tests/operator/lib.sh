#!/usr/bin/env bash
# What pi0-operator's end-to-end scripts share: a cluster with $work (E2E_WORK too), the snapshot
# of the cluster's state with expect/wait_for over Python expressions (state.py, which names what
# an expression can read), and agents on synthetic load, operator replicas and a log of every
# change to some objects for the scripts that drive pi0-operator through its levels. Source it
# after tests/e2e/lib.sh, with NS and NODES set; the functions below read operator_bin and
# agent_bin.
#   snapshot                       save what state.py reads (Deployments and HPAs of NS, Channels,
#                                  ShutdownMatrices, Events)
#   setvar NAME VALUE              V[NAME] in every expression from now on
#   value EXPR                     the value of EXPR over the last snapshot
#   holds EXPR...                  a fresh snapshot, and every expression true
#   expect DESC EXPR...            fail, showing the state and which expressions are false,
#                                  unless all hold
#   wait_for DESC TIMEOUT_S EXPR...
#                                  until every expression holds
#   fail MSG...                    show the state and the operators' last log lines, then fail
#   install_crds                   e2e_install_crds, and until kubectl serves both kinds
#   deployment NAME REPLICAS [CPU] a Deployment of NS (YAML, ending in ---) whose pods carry the
#                                  channel label NAME and request cpu CPU (default 10m) and
#                                  memory 16Mi
#   set_load CPU                   a constant cpu load CPU on every node: the load ℓ is CPU
#   start_agents                   a pi0-agent for each of NODES (200 ms samples, a window of
#                                  16) on its profile (e2e_profile; cpu 0.3 when none is
#                                  written yet)
#   agents_at CPU                  every agent's projected cpu peak is CPU
#   wait_agents_at CPU             until it is (20 s at most)
#   start_operator N [IDENTITY [NAME=VALUE...]]
#                                  pi0-operator replica N with leader election, identity IDENTITY
#                                  (default pi0-e2e-N) and NAME=VALUE added to its environment;
#                                  returns once it serves metrics; sets op_pid, op_log, op_id and
#                                  metrics_port [N]
#   leading N                      replica N has logged that it leads
#   metric N SERIES                the value of SERIES (labels included, as exposed) on replica N
#   lease_holder                   the holderIdentity of the Lease default/pi0-operator
#   record_changes FILE PATH...    watches each API collection PATH in the background and appends
#                                  to FILE one JSON line per object version, in the order of the
#                                  apiserver's resourceVersions per PATH: {"t": receive time (epoch
#                                  s), "path": PATH, "type": LISTED|ADDED|MODIFIED|DELETED,
#                                  "object": the object without managedFields}; returns once every
#                                  PATH is listed; a dropped watch resumes where it was (relists
#                                  on 410 Gone). Stopped at exit.

operator_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
now() { date +%s.%N; }
k() { kubectl --request-timeout=30s "$@"; }

e2e_cluster_up
work=$PI0_CLUSTER_DIR/operator-e2e
mkdir -p "$work"
# shellcheck disable=SC2034 # read by tests/e2e/lib.sh's agent helpers
E2E_WORK=$work
state() { /usr/bin/python3 "$operator_lib_dir/state.py" "$work" "$@"; }

snapshot() {
  e2e_api GET "/apis/apps/v1/namespaces/$NS/deployments" >"$work/deployments.json" &&
    e2e_api GET "/apis/autoscaling/v1/namespaces/$NS/horizontalpodautoscalers" >"$work/hpas.json" &&
    e2e_api GET "/apis/stability.pi0.io/v1alpha1/namespaces/$NS/channels" >"$work/channels.json" &&
    e2e_api GET /apis/stability.pi0.io/v1alpha1/shutdownmatrices >"$work/matrices.json" &&
    e2e_api GET /api/v1/events >"$work/events.json"
}
VARS=() # --var NAME=VALUE pairs handed to every evaluation (setvar)
setvar() { VARS+=(--var "$1=$2"); }
value() { state value "${VARS[@]}" "$1"; }
holds() { snapshot 2>/dev/null && state check "${VARS[@]}" "$@"; }

# shellcheck disable=SC2034 # the sourcing scripts read metrics_port
declare -A op_pid op_log op_id metrics_port
dump() {
  e2e_log "what the test saw:"
  snapshot || true
  state show || true
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
expect() {
  local desc=$1
  shift
  if ! holds "$@"; then
    state explain "${VARS[@]}" "$@" || true
    fail "$desc"
  fi
  e2e_log "ok: $desc"
}
wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until holds "$@"; do
    if ((SECONDS >= deadline)); then
      state explain "${VARS[@]}" "$@" || true
      fail "timed out after ${timeout}s waiting for $desc"
    fi
    sleep 0.3
  done
  e2e_log "ok: $desc"
}

# ---------------------------------------------------------------------------------------------
# The cluster's objects.
crds_served() { k get channels -A >/dev/null 2>&1 && k get shutdownmatrices >/dev/null 2>&1; }
install_crds() {
  e2e_install_crds
  e2e_wait_for "both kinds served" 60 crds_served
}
deployment() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: $NS}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1, stability.pi0.io/channel: $1}}
    spec:
      containers:
        - {name: main, image: placeholder:1, resources: {requests: {cpu: ${3:-10m}, memory: 16Mi}}}
---
YAML
}

# ---------------------------------------------------------------------------------------------
# Agents and operators.
set_load() {
  local node
  for node in "${NODES[@]}"; do e2e_write_profile "$node" "{wave: constant, value: $1}"; done
  e2e_log "load set to $1"
}
start_agents() {
  local node
  for node in "${NODES[@]}"; do
    [[ -f $(e2e_profile "$node") ]] || e2e_write_profile "$node" "{wave: constant, value: 0.3}"
    # shellcheck disable=SC2154 # agent_bin: the sourcing script's
    e2e_start_synthetic_agent "$agent_bin" "$node" --interval 200ms --window 16
  done
}
agents_at() {
  local node
  for node in "${NODES[@]}"; do
    curl -sS --noproxy '*' --fail --max-time 2 "${E2E_AGENT_URLS[$node]}/fingerprint" |
      /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if abs(d["signals"]["cpu"]["projectedPeak"] - float(sys.argv[1])) < 0.005 else 1)' \
        "$1" 2>/dev/null || return 1
  done
}
wait_agents_at() {
  local deadline=$((SECONDS + 20))
  until agents_at "$1"; do
    ((SECONDS < deadline)) || fail "the agents' projected cpu peak did not reach $1 in 20 s"
    sleep 0.2
  done
  e2e_log "ok: every agent's projected cpu peak is $1"
}
# operator_extra_args (an array the test may set): more flags for every replica.
operator_extra_args=()
start_operator() {
  local n=$1
  op_id[$n]=${2:-pi0-e2e-$n}
  op_log[$n]=$work/operator-$n.log
  # shellcheck disable=SC2154 # operator_bin: the sourcing script's
  env "${@:3}" "$operator_bin" --kubeconfig "$KUBECONFIG" --leader-elect --identity "${op_id[$n]}" \
    --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --agents "$(e2e_agents_flag "${NODES[@]}")" --poll-interval 1s --agent-timeout 500ms \
    --log-level info "${operator_extra_args[@]}" \
    </dev/null >"${op_log[$n]}" 2>&1 &
  op_pid[$n]=$!
  disown "${op_pid[$n]}"
  e2e_at_exit "kill -KILL ${op_pid[$n]} 2>/dev/null || true"
  local deadline=$((SECONDS + 30))
  until metrics_port[$n]=$(e2e_log_field "${op_log[$n]}" "serving metrics" port 2>/dev/null); do
    e2e_pid_alive "${op_pid[$n]}" || fail "operator $n exited at start"
    ((SECONDS < deadline)) || fail "operator $n does not serve metrics after 30 s"
    sleep 0.1
  done
  e2e_log "operator $n started: identity ${op_id[$n]}, pid ${op_pid[$n]}, metrics port ${metrics_port[$n]}${3:+, ${*:3}}"
}
leading() { grep -q '"msg":"leading"' "${op_log[$1]}"; }
metric() {
  local text
  text=$(curl -sS --noproxy '*' --fail --max-time 5 "http://127.0.0.1:${metrics_port[$1]}/metrics") ||
    return 1
  awk -v s="$2" '$1 == s { print $2; f = 1 } END { exit !f }' <<<"$text"
}
lease_holder() {
  e2e_api GET /apis/coordination.k8s.io/v1/namespaces/default/leases/pi0-operator 2>/dev/null |
    e2e_json 'print(d["spec"].get("holderIdentity") or "")'
}
record_changes() {
  local file=$1 pid
  shift
  : >"$file"
  /usr/bin/python3 "$operator_lib_dir/record_changes.py" "$file" "$@" &
  pid=$!
  disown "$pid"
  e2e_at_exit "kill -KILL $pid 2>/dev/null || true"
  local deadline=$((SECONDS + 30))
  until (($(grep -c '"type": "SYNCED"' "$file") >= $#)); do
    e2e_pid_alive "$pid" || e2e_fail "record_changes exited"
    ((SECONDS < deadline)) || e2e_fail "record_changes did not list $* within 30 s"
    sleep 0.1
  done
}
