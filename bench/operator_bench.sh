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

# The measuring program (bench/operator_bench.py); its modes are called below.
bench() { /usr/bin/python3 "$root/bench/operator_bench.py" "$@"; }

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: Nodes, agents, CRDs, workloads"
for node in "${NODES[@]}"; do e2e_create_node "$node" "$NODE_CPU" "$NODE_MEMORY"; done

E2E_WORK=$work
for node in "${NODES[@]}"; do
  e2e_write_profile "$node" "{wave: constant, value: $LOW}"
  e2e_start_synthetic_agent "$agent" "$node" --interval 1s --window "$window"
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

agents_flag=$(e2e_agents_flag "${NODES[@]}")

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
  e2e_at_exit "e2e_stop_pid ${op_pid[$name]}"
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
    [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "${E2E_AGENT_URLS[$node]}/readyz") == 200 ]] || return 1
  done
}
e2e_wait_for "every agent's window full ($window samples at 1 s)" $((window + 30)) agents_ready
matrix_normal() {
  [[ $(k get shutdownmatrix default -o jsonpath='{.status.level}') == normal ]]
}
e2e_wait_for "matrix default at level normal" 30 matrix_normal

# ---------------------------------------------------------------------------------------------
e2e_log "1. latency: $runs runs, load $LOW -> $HIGH over the bound $BOUND"
profiles_json=$(for node in "${NODES[@]}"; do printf '"%s",' "$(e2e_profile "$node")"; done)
agents_json=$(for node in "${NODES[@]}"; do printf '"%s": "%s",' "$node" "${E2E_AGENT_URLS[$node]}"; done)
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
