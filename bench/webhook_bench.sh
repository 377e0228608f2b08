#!/usr/bin/env bash
# pi0-webhook under load on the real control plane of tests/e2e/cluster.sh: reviews per second
# and latency percentiles from wrk over TLS keep-alive, the webhook's memory, and the latency
# the apiserver itself records for its calls to the webhook.
#
# Set-up (namespace bench for the pods, pi0-system for the agents' Service):
#   Nodes      --nodes N (default 5,000) created by 16 threads as node pools make them: 5 % GPU
#              (p3.8xlarge, 4 nvidia.com/gpu, tainted nvidia.com/gpu:NoSchedule), 10 % batch
#              (c5.4xlarge, running hot), 20 % high-memory (r5.4xlarge), the rest general
#              (m5.2xlarge, m5.4xlarge); zone, region, instance-type, hostname and pool labels;
#              2 % tainted dedicated=infra:NoSchedule, 1 % cordoned; allocatable cpu, memory, pods.
#   Agents     three real pi0-agents on synthetic profiles (--interval 100ms, window 64): light
#              (examples/profiles/steady-node.yaml), heavy (cpu at 0.9) and gpu (lighter, with four
#              GPUs at 0.05-0.35). One pi0-agent per Node is not possible on one machine, and the webhook
#              refuses a fingerprint whose node is not the endpoint's, so a STAND-IN serves
#              them: the agent farm (webhook_bench.py, AgentFarm), listening on 0.0.0.0 so
#              that every address of 127.0.0.0/8 reaches it. Node i's agent is the address
#              127.a.b.c of its own; the farm answers it with the fingerprint of the real agent
#              of node i's profile (fetched again every second) under node i's name.
#   Discovery  Service pi0-system/pi0-agent (no selector) and EndpointSlices (discovery.k8s.io
#              v1beta1, 1,000 endpoints each) listing one ready endpoint per Node: its address,
#              the farm's port, and topology kubernetes.io/hostname = the Node.
#   Channels   checkout (Active) and nightly (status Inactive, as the operator writes it).
#   Webhook    pi0-webhook --agent-service pi0-system/pi0-agent --poll-interval P (default 2s;
#              a fingerprint is fresh for 3 P), TLS from a CA made with openssl. The script
#              waits for /readyz, then until the farm has answered every Node's agent within
#              the last 3 P and pi0_webhook_fleet_nodes{state="usable"} counts every Node.
#   Bodies     eight pods of Deployments (generateName, ReplicaSet owner, 2-5 containers, init
#              containers, requests and limits, probes, volumes, nodeSelector, required node
#              affinity, tolerations), each created once with dryRun=All before the webhook is
#              registered: the apiserver's answer is the object a validating webhook receives
#              (defaulted, service account token mounted, name generated), wrapped in an
#              AdmissionReview v1 as the apiserver writes it. Five should pass (a general, a
#              zone-c, a high-memory, a GPU and an unconstrained pod) and three be denied
#              (batch pool: every candidate fails its gates; zone-d: no candidate node;
#              channel nightly: shut down). Each is POSTed once and must answer 200 with the
#              expected `allowed` and no warning (a warning would mean stale fleet data).
#
# The figures:
# 1. wrk (bench/webhook_wrk.lua) POSTs the bodies round-robin to /validate-pods for --duration
#    per run, at each of --connections (threads = min(connections, 2)), after one warm-up run.
#    Per run: reviews/s, latency p50/p90/p99/p99.9/max (wrk's, from writing a request to the
#    end of its answer; a connection's TLS handshake is not in it), non-2xx answers, socket
#    errors, and the webhook's CPU (utime + stime) per review. wrk is closed-loop: each
#    connection sends its next request when the last answer is in. wrk, the webhook, the farm
#    and the control plane share the machine's CPUs; the output says how many.
# 2. Memory: the webhook's VmHWM (peak RSS) and VmRSS (when ready, and after the wrk runs) from
#    /proc/PID/status.
# 3. Through the apiserver: a ValidatingWebhookConfiguration (by URL with caBundle; pods CREATE
#    in namespace bench; failurePolicy Fail, sideEffects None, timeoutSeconds 5), then
#    --api-requests pod creations with dryRun=All (the apiserver runs the admission chain,
#    webhooks with sideEffects None included, and writes nothing) by --api-clients clients
#    (threads, one kept-alive connection each), the bodies round-robin. Before and after, the
#    apiserver's /metrics: apiserver_admission_webhook_admission_duration_seconds for this
#    webhook's name: count, average (sum/count, exact), p50 and p99 interpolated within the
#    histogram's buckets (1.20's bounds: 5, 25, 100, 500, 2500 ms; so only "within 25 ms" is
#    exact, and it is printed). Also the webhook's own pi0_webhook_request_duration_seconds
#    over the same span (time inside the handler), the most connections to the webhook open at
#    once during the creations (ESTABLISHED, from /proc/net/tcp every 200 ms), and how long a
#    new connection (GET /metrics) then waits for its answer.
# 4. Side by side with the Go peer (--peer go, the default; bench/go_peer: a plain Go standard-
#    library webhook deciding on five node records in memory, built with Debian's golang-go):
#    the same bodies, wrk at 32 connections for --duration, a warm-up of each, then --rounds
#    runs of each alternating go/pi0; per run reviews/s, p50/p99, errors and each server's CPU
#    per review; the medians and the ratios pi0/go of reviews/s and of p99 (the goal of issue
#    13: >= 2.0 and a lower p99). The Go peer decides on its own records, so its answers are
#    only checked for 200, a uid echoed and an `allowed`.
#
# Prints each step and a summary table with the goals. A benchmark asserts nothing: it exits 0
# once it has measured, 1 when a measurement failed, 2 on a usage error or a missing
# prerequisite. Everything it starts is stopped on exit (also on Ctrl-C), and the cluster removed.
#
# Usage: bench/webhook_bench.sh [--nodes N] [--duration D] [--connections "1 8 32 128"]
#          [--poll-interval D] [--api-requests N] [--api-clients N] [--perf FILE]
#          [--peer go|none] [--rounds N] [--webhook PATH] [--agent PATH]
# Needs a Release build (scripts/build.sh release), wrk, openssl, curl, kubectl, and go for the
# peer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

nodes=5000 duration=10s connections="1 8 32 128" poll_interval=2s
api_requests=3000 api_clients=100 perf_out="" peer=go rounds=2
webhook=${PI0_WEBHOOK:-$root/build/release/webhook/pi0-webhook}
agent=${PI0_AGENT:-$root/build/release/agent/pi0-agent}

usage() {
  cat <<EOF
Usage: bench/webhook_bench.sh [flags]

Benchmarks pi0-webhook on the test bed of tests/e2e/cluster.sh with a fleet of N Nodes: wrk
over TLS keep-alive at several connection counts, the webhook's memory, and the apiserver's
own histogram of its calls to the webhook (about 4 minutes with the defaults).

Flags:
  --nodes N              Nodes, and agents in the fleet view (default $nodes)
  --duration D           each wrk run, as wrk reads it (default $duration)
  --connections "C..."   wrk connection counts (default "$connections")
  --poll-interval D      the webhook's --poll-interval (default $poll_interval)
  --api-requests N       dry-run pod creations through the apiserver (default $api_requests;
                         0 skips that part)
  --api-clients N        concurrent clients for them (default $api_clients)
  --perf FILE            also record the webhook with perf (call graphs) during the run at 32
                         connections (or the first run) and write perf.data to FILE
  --peer go|none         measure the Go peer (bench/go_peer) side by side at 32 connections,
                         alternating with pi0-webhook, and print the ratio (default $peer)
  --rounds N             side-by-side runs of each server (default $rounds)
  --webhook PATH         pi0-webhook binary (default build/release/webhook/pi0-webhook, or
                         \$PI0_WEBHOOK)
  --agent PATH           pi0-agent binary (default build/release/agent/pi0-agent, or \$PI0_AGENT)
  --help                 print this help
EOF
}
die() {
  echo "webhook_bench: $*" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --nodes) nodes=${2:?--nodes needs a value}; shift 2 ;;
    --duration) duration=${2:?--duration needs a value}; shift 2 ;;
    --connections) connections=${2:?--connections needs a value}; shift 2 ;;
    --poll-interval) poll_interval=${2:?--poll-interval needs a value}; shift 2 ;;
    --api-requests) api_requests=${2:?--api-requests needs a value}; shift 2 ;;
    --api-clients) api_clients=${2:?--api-clients needs a value}; shift 2 ;;
    --perf) perf_out=${2:?--perf needs a value}; shift 2 ;;
    --peer) peer=${2:?--peer needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --webhook) webhook=${2:?--webhook needs a value}; shift 2 ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "webhook_bench: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$nodes" "$api_clients" "$rounds" $connections; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive whole number"
done
[[ $api_requests =~ ^[0-9]+$ ]] || die "--api-requests: '$api_requests' is not a whole number"
((nodes <= 250000)) || die "--nodes: at most 250000 (one loopback address each)"
[[ $duration =~ ^[1-9][0-9]*[smh]?$ ]] || die "--duration: '$duration' is not like 10s or 2m"
[[ $poll_interval =~ ^[0-9]+(ms|s|m)$ ]] || die "--poll-interval: '$poll_interval' is not like 2s"
[[ $peer == go || $peer == none ]] || die "--peer: '$peer' is not go or none"
((rounds <= 20)) || die "--rounds: at most 20"
[[ -x $webhook ]] || die "no pi0-webhook at '$webhook'; run scripts/build.sh release first"
[[ -x $agent ]] || die "no pi0-agent at '$agent'; run scripts/build.sh release first"
webhook=$(realpath "$webhook")
agent=$(realpath "$agent")
for tool in wrk openssl curl kubectl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian package $tool)"
done
[[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 is missing"
if [[ $peer == go ]] && ! command -v go >/dev/null; then
  die "go is not installed; the Go peer needs it (Debian package golang-go), or pass --peer none"
fi
if [[ -n $perf_out ]]; then
  command -v perf >/dev/null || die "--perf: perf is not installed (Debian package linux-perf)"
  perf_out=$(realpath -m "$perf_out")
fi
# The poll interval in seconds, and how long a fingerprint stays fresh (3 intervals).
interval_s=$(/usr/bin/python3 -c '
import re, sys
n, unit = re.fullmatch(r"(\d+)(ms|s|m)", sys.argv[1]).groups()
print(int(n) * {"ms": 0.001, "s": 1, "m": 60}[unit])' "$poll_interval")
fresh_window=$(/usr/bin/python3 -c 'import sys; print(3 * float(sys.argv[1]))' "$interval_s")

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"
# shellcheck source=bench/webhook_lib.sh
source "$root/bench/webhook_lib.sh"
e2e_cluster_up
work=$PI0_CLUSTER_DIR/webhook-bench # removed with the cluster
mkdir -p "$work/reviews"
k() { kubectl --request-timeout=30s "$@"; }
bench() { /usr/bin/python3 "$root/bench/webhook_bench.py" "$@"; }

if [[ $peer == go ]]; then bench_go_peer_build "$work/go_peer"; fi

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: certificates, namespaces, channels, $nodes Nodes"
e2e_make_certificates "$work"

e2e_install_crds
e2e_create_namespace bench
e2e_create_namespace bench-control
e2e_create_namespace pi0-system
# 1.20 does not label namespaces with their name by itself.
k label namespace bench kubernetes.io/metadata.name=bench --overwrite >/dev/null
k label namespace bench-control kubernetes.io/metadata.name=bench-control --overwrite >/dev/null
k apply -f - >/dev/null <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: checkout, namespace: bench}
spec: {critical: true, targets: [{kind: Deployment, name: checkout-api}]}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: nightly, namespace: bench}
spec: {targets: [{kind: Deployment, name: nightly-export}]}
YAML
channel=$(e2e_api GET /apis/stability.pi0.io/v1alpha1/namespaces/bench/channels/nightly)
status_body=$(e2e_json 'd["status"] = {"state": "Inactive"}; print(json.dumps(d))' <<<"$channel")
e2e_api PUT /apis/stability.pi0.io/v1alpha1/namespaces/bench/channels/nightly/status \
  "$status_body" >/dev/null || e2e_fail "cannot set the status of Channel nightly"

bench nodes "$nodes" "$work/nodes.json" || e2e_fail "creating the Nodes failed"

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: three real pi0-agents, the agent farm (a stand-in) and its EndpointSlices"
cp "$root/examples/profiles/steady-node.yaml" "$work/light.yaml"
cat >"$work/heavy.yaml" <<'YAML'
signals:
  cpu:        {wave: noise, mean: 0.90, std: 0.02, seed: 1}
  memory:     {wave: noise, mean: 0.70, std: 0.005, seed: 2}
  psi_cpu:    {wave: constant, value: 0.20}
  psi_memory: {wave: constant, value: 0.01}
  psi_io:     {wave: noise, mean: 0.02, std: 0.005, seed: 3}
  disk:       {wave: noise, mean: 0.30, std: 0.02, seed: 4}
  network:    {wave: noise, mean: 0.40, std: 0.03, seed: 5}
YAML
{
  cat <<'YAML'
signals:
  cpu:        {wave: noise, mean: 0.20, std: 0.02, seed: 1}
  memory:     {wave: noise, mean: 0.25, std: 0.005, seed: 2}
  psi_cpu:    {wave: constant, value: 0.01}
  psi_memory: {wave: constant, value: 0.0}
  psi_io:     {wave: noise, mean: 0.02, std: 0.005, seed: 3}
  disk:       {wave: noise, mean: 0.10, std: 0.02, seed: 4}
  network:    {wave: noise, mean: 0.15, std: 0.03, seed: 5}
YAML
  for g in 0 1 2 3; do
    printf '  gpu%d_sm:     {wave: noise, mean: 0.%d5, std: 0.02, seed: %d}\n' "$g" "$g" $((10 + g))
    printf '  gpu%d_memory: {wave: noise, mean: 0.%d0, std: 0.01, seed: %d}\n' "$g" $((g + 1)) $((20 + g))
  done
} >"$work/gpu.yaml"
farm_agents=()
for profile in light heavy gpu; do
  e2e_start_agent "$agent" "$work/agent-$profile.log" --nvml-library none \
    --gpu-probe-interval 0 --node-name "farm-$profile" --source "synthetic:$work/$profile.yaml" \
    --interval 100ms --window 64
  farm_agents+=("$profile=$E2E_AGENT_URL")
done
agents_ready() {
  local a
  for a in "${farm_agents[@]}"; do
    [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "${a#*=}/readyz") == 200 ]] || return 1
  done
}
e2e_wait_for "the three agents' windows full (64 samples at 100 ms)" 30 agents_ready

farm_port=$(e2e_free_port)
/usr/bin/python3 "$root/bench/webhook_bench.py" farm "$work/nodes.json" "$farm_port" "${farm_agents[@]}" \
  </dev/null >"$work/farm.log" 2>&1 &
farm_pid=$!
e2e_at_exit "e2e_stop_pid $farm_pid"
farm_stats() { curl -sf --noproxy '*' --max-time 5 "http://127.0.0.1:$farm_port/farm-stats?within=$1"; }
farm_up() {
  e2e_pid_alive "$farm_pid" || { cat "$work/farm.log" >&2; e2e_fail "the agent farm exited"; }
  farm_stats 1 >/dev/null
}
e2e_wait_for "the agent farm serving" 30 farm_up
bench slices "$work/nodes.json" pi0-system pi0-agent "$farm_port" ||
  e2e_fail "creating the EndpointSlices failed"

bench reviews bench "$work/reviews" || e2e_fail "making the AdmissionReview bodies failed"

# ---------------------------------------------------------------------------------------------
e2e_log "pi0-webhook: start, readiness, a fresh fleet view of $nodes agents"
webhook_port=$(e2e_free_port)
url=https://127.0.0.1:$webhook_port
started=$(date +%s.%N)
"$webhook" --kubeconfig "$KUBECONFIG" --bind-address "127.0.0.1:$webhook_port" \
  --tls-cert-file "$work/tls.crt" --tls-private-key-file "$work/tls.key" \
  --agent-service pi0-system/pi0-agent --poll-interval "$poll_interval" --shutdown-delay 0s \
  --excluded-namespaces kube-system,bench-control </dev/null >"$work/webhook.log" 2>&1 &
webhook_pid=$!
e2e_at_exit "e2e_stop_pid $webhook_pid"
https() { curl -sS --noproxy '*' --cacert "$work/ca.crt" --max-time 5 "$@"; }
ready() {
  e2e_pid_alive "$webhook_pid" || { tail -n 20 "$work/webhook.log" >&2; e2e_fail "pi0-webhook exited"; }
  [[ $(https -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null) == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 120 ready
ready_seconds=$(/usr/bin/python3 -c 'import sys, time; print(time.time() - float(sys.argv[1]))' "$started")
# The fleet view: the webhook's gauge pi0_webhook_fleet_nodes{state="usable"} (fresh data from
# a node that has not failed), and from the farm's side, every agent answered within the last
# 3 poll intervals (a fingerprint older than that is stale).
gauge() { # NAME STATE: the value of the webhook's gauge NAME{state=STATE}, or nothing
  https "$url/metrics" 2>/dev/null | awk -v s="$1{state=\"$2\"}" '$1 == s { printf "%d", $2 }'
}
fleet() { # the farm's figures, as JSON, and the webhook's usable nodes
  farm_stats "$fresh_window" | e2e_json '
d["usable"] = int(sys.argv[1]) if sys.argv[1] else None
print(json.dumps(d))' "$(gauge pi0_webhook_fleet_nodes usable)"
}
all_fresh() {
  fleet | e2e_json 'sys.exit(0 if d["fresh"] == int(sys.argv[1]) and d["usable"] in (None, int(sys.argv[1])) else 1)' "$nodes"
}
e2e_wait_for "every agent polled within ${fresh_window}s, the fleet view usable" 300 all_fresh
e2e_log "ready after ${ready_seconds}s; $(gauge pi0_webhook_cluster_nodes indexed) Nodes indexed"
# How often each agent is polled, once rounds have gone on for a while.
sleep "$fresh_window"
fleet_ready=$(fleet)
e2e_log "fleet: $fleet_ready"
# The webhook's CPU with no review to answer: its poller, reflectors and metrics.
t0=$(bench_cpu_ticks "$webhook_pid")
sleep 5
idle_ticks=$(($(bench_cpu_ticks "$webhook_pid") - t0))
e2e_log "pi0-webhook without reviews: $idle_ticks CPU ticks in 5 s"
rss_ready=$(bench_vm "$webhook_pid" VmRSS)

e2e_log "each body once:"
bench check "$url/validate-pods" "$work/ca.crt" "$work/reviews" ||
  e2e_fail "a body did not get the expected answer"

# ---------------------------------------------------------------------------------------------
mapfile -t bodies < <(e2e_json 'print("\n".join(i["file"] for i in d))' <"$work/reviews/index.json")
wrk_run() { bench_wrk "$url/validate-pods" "$1" "$2" "$3" "${bodies[@]}"; } # CONNECTIONS DURATION OUT
e2e_log "warm-up: 8 connections for 3 s"
wrk_run 8 3s "$work/wrk-warmup.txt" || { cat "$work/wrk-warmup.txt" >&2; e2e_fail "wrk failed"; }
read -ra conns <<<"$connections"
perf_at=${conns[0]}
for c in "${conns[@]}"; do ((c == 32)) && perf_at=32; done
results=()
for c in "${conns[@]}"; do
  e2e_log "wrk: $c connections, $((c < 2 ? c : 2)) threads, $duration"
  perf_pid=""
  if [[ -n $perf_out && $c == "$perf_at" ]]; then
    perf record -F 299 --call-graph dwarf,16384 -o "$work/perf.data" -p "$webhook_pid" \
      >"$work/perf.log" 2>&1 &
    perf_pid=$!
    e2e_at_exit "kill -INT $perf_pid 2>/dev/null || true"
  fi
  t0=$(bench_cpu_ticks "$webhook_pid")
  wrk_run "$c" "$duration" "$work/wrk-$c.txt" || { cat "$work/wrk-$c.txt" >&2; e2e_fail "wrk failed"; }
  t1=$(bench_cpu_ticks "$webhook_pid")
  if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true # perf exits non-zero on SIGINT
    if [[ -s $work/perf.data ]]; then
      cp "$work/perf.data" "$perf_out"
      e2e_log "perf data of the run at $c connections: $perf_out"
    else
      e2e_log "perf failed; no profile of this run: $(tail -3 "$work/perf.log")"
    fi
  fi
  results+=("$(bench wrk-result "$work/wrk-$c.txt" "$c" $((c < 2 ? c : 2)) $((t1 - t0)) \
    "$(fleet)" "$idle_ticks")") ||
    e2e_fail "no figures from wrk at $c connections: $(cat "$work/wrk-$c.txt")"
  e2e_log "$(e2e_json 'print("%.0f reviews/s, p50 %.3f ms, p99 %.3f ms, %d non-2xx, %d socket errors" % (
    d["rps"], d["p50"] / 1e3, d["p99"] / 1e3, d["errors"]["status"],
    sum(v for k, v in d["errors"].items() if k != "status")))' <<<"${results[-1]}")"
  sleep 1
done
sleep 2
hwm=$(bench_vm "$webhook_pid" VmHWM) rss_after=$(bench_vm "$webhook_pid" VmRSS)
e2e_log "pi0-webhook: VmHWM $hwm KiB, VmRSS $rss_after KiB (when ready: $rss_ready KiB)"
https "$url/metrics" >"$work/metrics-after.txt" || true
grep '^pi0_webhook_decisions_total' "$work/metrics-after.txt" >"$work/decisions.txt" || true
# Counters are exported from zero: only a StaleData counter above 0 is worth a warning.
stale_decisions=$(awk '/reason="StaleData"/ && $2 > 0' "$work/decisions.txt")
if [[ -n $stale_decisions ]]; then
  e2e_log "WARNING: some decisions found no fresh fleet data:"
  echo "$stale_decisions" >&2
fi

# ---------------------------------------------------------------------------------------------
if [[ $peer == go ]]; then
  e2e_log "side by side with the Go peer: 32 connections, $rounds runs of each, alternating"
  bench_go_peer_start "$work/go_peer" "$work/tls.crt" "$work/tls.key" "$work/go-peer.log"
  e2e_log "the Go peer, each body once (it decides on its own five node records):"
  bench check "$BENCH_GO_PEER_URL/validate-pods" "$work/ca.crt" "$work/reviews" --any ||
    e2e_fail "the Go peer did not answer a body well"
  BENCH_SERVERS=(go pi0)
  BENCH_URL[go]=$BENCH_GO_PEER_URL BENCH_PID[go]=$BENCH_GO_PEER_PID
  BENCH_URL[pi0]=$url BENCH_PID[pi0]=$webhook_pid
  bench_side_by_side "$work/side" 32 "$duration" "$rounds" 3s "${bodies[@]}"
  e2e_stop_pid "$BENCH_GO_PEER_PID"
fi

# ---------------------------------------------------------------------------------------------
hook_name=pods.bench.pi0.io control_name=control.bench.pi0.io
if ((api_requests > 0)); then
  e2e_log "through the apiserver: $api_requests dry-run pod creations by $api_clients clients"
  # Two registrations of the same webhook: the one measured, for namespace bench, and a control
  # for namespace bench-control, which the webhook excludes (it parses the review and answers
  # Excluded, deciding nothing): the same apiserver, TLS and HTTP, without Pi0's decision.
  e2e_register_webhook pi0-bench "$url" --ca-bundle "$work/ca.crt" --failure-policy Fail \
    --timeout 5 \
    --hook "$hook_name" pods --namespace bench \
    --hook "$control_name" pods --namespace bench-control
  # The registration reaches the apiserver's admission plugin through its informer: wait until
  # a pod that must be denied is.
  denied() {
    local item code
    item=$(e2e_json 'print(next(i["pod"] for i in d if not i["allowed"]))' <"$work/reviews/index.json")
    code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --cacert "$PI0_CA_FILE" \
      -H "Authorization: Bearer $PI0_TOKEN" -H 'Content-Type: application/json' \
      --data-binary "@$item" "$PI0_APISERVER/api/v1/namespaces/bench/pods?dryRun=All")
    [[ $code != 201 ]]
  }
  e2e_wait_for "the apiserver calling the webhook" 30 denied
  # The control first, the measured run second: a first run also warms the apiserver up.
  e2e_log "the control: the creations in namespace bench-control (excluded: no decision)"
  bench apiserver bench-control "$work/reviews" "$api_requests" "$api_clients" "$control_name" \
    "$url/metrics" "$work/ca.crt" "$work/control.json" || e2e_fail "the control run failed"
  e2e_log "the measured run: the creations in namespace bench"
  bench apiserver bench "$work/reviews" "$api_requests" "$api_clients" "$hook_name" \
    "$url/metrics" "$work/ca.crt" "$work/apiserver.json" || e2e_fail "the apiserver run failed"
fi
if grep -q '"level":"error"' "$work/webhook.log"; then
  e2e_log "pi0-webhook logged errors:"
  grep '"level":"error"' "$work/webhook.log" | tail -n 5 >&2
fi

# ---------------------------------------------------------------------------------------------
{
  printf '{"nodes": %d, "duration": "%s", "cpus": %d, "poll_interval": "%s",' \
    "$nodes" "$duration" "$(nproc)" "$poll_interval"
  printf ' "fresh_window": %s, "fleet_ready": %s, "ready_seconds": %s, "idle_ticks_5s": %d,' \
    "$fresh_window" "$fleet_ready" "$ready_seconds" "$idle_ticks"
  printf ' "clk_tck": %d,' "$(getconf CLK_TCK)"
  printf ' "hwm_kib": %d, "rss_ready_kib": %d, "rss_after_kib": %d,' "$hwm" "$rss_ready" "$rss_after"
  printf ' "webhook_name": "%s", "wrk_version": "%s",' "$hook_name" \
    "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
  e2e_json 'print(" \"bodies\": %d, \"allowed\": %d, \"min_bytes\": %d, \"max_bytes\": %d," % (
    len(d), sum(i["allowed"] for i in d), min(i["bytes"] for i in d), max(i["bytes"] for i in d)))' \
    <"$work/reviews/index.json"
  printf ' "wrk": [%s]' "$(IFS=,; echo "${results[*]}")"
  if [[ -f $work/apiserver.json ]]; then printf ', "apiserver": %s' "$(<"$work/apiserver.json")"; fi
  if [[ -f $work/control.json ]]; then printf ', "control": %s' "$(<"$work/control.json")"; fi
  printf '}\n'
} >"$work/results.json"
bench report "$work/results.json"
if [[ $peer == go ]]; then bench side-by-side "$work/side/side-by-side.jsonl"; fi
echo
echo "decisions (pi0_webhook_decisions_total, from start to the end of the wrk runs):"
sed 's/^/  /' "$work/decisions.txt"
echo "Node updates the webhook saw (changed: what admission reads changed, the node index rebuilt):"
grep '^pi0_webhook_node_updates_total' "$work/metrics-after.txt" | sed 's/^/  /' || true
