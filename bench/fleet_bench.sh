#!/usr/bin/env bash
# Issue 17, "a fleet view read once per cluster": the two ways Pi0's programs get the fleet view,
# measured side by side on the real control plane of tests/e2e/cluster.sh, for each --nodes N.
#
#   design poll  pi0-operator (the leader) and pi0-webhook each poll every agent's GET
#                /fingerprint themselves: what a program does without --fleet-lease.
#   design feed  the operator leader alone polls the agents and serves the fleet at GET /fleet
#                (HTTPS, a CA and a certificate for DNS name pi0-fleet made with openssl, readers
#                authenticated by service-account tokens of audience pi0-fleet); pi0-webhook (and,
#                with --standby, a standby pi0-operator) reads it every interval/8, in deltas.
#
# Set-up (bench/webhook_bench.sh's pieces): Nodes made as node pools make them (webhook_bench.py
# nodes), Service pi0-system/pi0-agent with one EndpointSlice endpoint per Node at a loopback
# address of its own, three real pi0-agents (light, heavy, gpu; --interval 100ms, window 64),
# Channels checkout (Active) and nightly (Inactive), eight AdmissionReview bodies of Deployment
# pods made by the apiserver (dry run), wrk with bench/webhook_wrk.lua. The agents are a stand-in:
# the PHASED FARM (fleet_bench.py PhasedFarm, --farm-workers Python processes on one port). Node
# i's agent samples once per poll interval at a phase of its own and answers the real agent's
# fingerprint of its profile taken at or before that sample, with the sample's time as its
# "timestamp" and the poll interval as its "intervalSeconds" (the values are the real agent's,
# at most about 150 ms older than the timestamp says). So a poller that follows the agents'
# samples reads each node once per interval, and the webhook's data age is measured from the
# node's own sample. The farm, the control plane, wrk and the programs share this machine's CPUs.
#
# For each N (ascending; "N@D" runs N at poll interval D instead of --poll-interval) the farm is
# started for N Nodes, then each design in turn: its programs are started, the script waits for
# the webhook's /readyz and for every Node usable in its view (pi0_webhook_fleet_nodes
# {state="usable"} == N, and in design feed the webhook reading the feed), up to --settle
# seconds (then it notes that the view never became whole and measures anyway), waits three
# intervals more, and measures:
#  1. Idle window (--window seconds, no reviews):
#     - agent requests/s and bytes/s: every /fingerprint the farm answered, whoever asked; and
#       each program's own polls/s by result (PREFIX_fleet_polls_total{result}).
#     - the operator leader's CPU (utime+stime from /proc/PID/stat over the window, as a share of
#       one core), VmRSS and VmHWM; its poll round (pi0_operator_fleet_poll_round_seconds, the
#       last round's duration, read every 0.25 s: a round every quarter interval reads the
#       agents due). The same for the standby (design feed, --standby).
#     - the webhook's CPU without reviews, VmRSS, VmHWM, where its view comes from
#       (pi0_webhook_fleet_source), the feed's bytes/s to it (pi0_webhook_fleet_feed_bytes_total)
#       and its pages/s (pi0_webhook_fleet_feed_pages_total{kind}); the operator's side of the
#       feed (pi0_operator_fleet_feed_answers_total{result}, _feed_sent_bytes_total).
#     - the farm's own CPU, how late its event loops ran (a tick every 50 ms; over 100 ms late
#       means the farm is short of CPU), the kernel's listen-queue overflows (connections
#       refused), how many nodes were read within 3 intervals, the gap between two reads of a
#       node (median, p99, max: by any program), and how long after its sample each node was
#       read (p50, p99; also during the wrk run).
#  2. Reviews: each body once (HTTP 200, the uid echoed, no warning: a warning means stale data;
#     not which answer, since the operator reconciles Channel nightly, which the set-up makes
#     Inactive, and so decides that pod's answer), a 2 s warm-up, then wrk at
#     --connections (default 32, two threads) for --duration: reviews/s, p50/p99, non-2xx,
#     socket errors, the programs' CPU during the run; freshness: pi0_webhook_decision_data_age
#     _seconds over the run (the age of the data each decision used, from the node's sample to
#     the decision), p50 and p99 interpolated in its buckets (the bucket printed too);
#     pi0_webhook_fleet_nodes{state="usable"} before and after the run; StaleData decisions;
#     the webhook's VmHWM and VmRSS after it.
# Then the summary: one row per (N, interval, design); feed/poll ratios; the growth of every
# figure from the smallest N to the largest (same design and interval); cluster-wide agent
# requests/s and bytes/s and feed bytes/s multiplied out for the chart's default shape (3
# webhooks, 2 operators) with the formula; the issue's goals beside the figures; and NOTES for
# whatever did not keep up (Nodes not usable, the farm late, connections refused, polls that
# failed or timed out, feed errors, stale decisions).
#
# A benchmark asserts nothing: it exits 0 once it has measured, 1 when a measurement failed (a
# program that does not start, wrk failing), 2 on a usage error or a missing prerequisite.
# Everything it starts is stopped on exit (also on Ctrl-C), and the cluster removed.
#
# Usage: bench/fleet_bench.sh [--nodes "5000 20000"] [--designs "poll feed"] [--poll-interval 1s]
#          [--duration 10s] [--window 10] [--connections 32] [--settle 60] [--standby feed|both|none]
#          [--farm-workers 2] [--results FILE] [--operator PATH] [--webhook PATH] [--agent PATH]
# Needs a Release build (scripts/build.sh release), wrk, openssl, curl and kubectl.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

nodes_list="5000 20000" poll_interval=1s duration=10s window=10 connections=32 settle=60
designs="poll feed" standby=feed farm_workers=2 results_out=""
operator=${PI0_OPERATOR:-$root/build/release/operator/pi0-operator}
webhook=${PI0_WEBHOOK:-$root/build/release/webhook/pi0-webhook}
agent=${PI0_AGENT:-$root/build/release/agent/pi0-agent}

usage() {
  cat <<EOF
Usage: bench/fleet_bench.sh [flags]

Measures issue 17's two designs side by side on the test bed of tests/e2e/cluster.sh: every
program polling every agent (poll) against the operator leader polling and serving the fleet
feed (feed), for each N: agent requests and bytes, the operator's and the webhook's CPU and
memory, the feed's bytes, the poll rounds, the decisions' data age and reviews/s with wrk.

Flags:
  --nodes "N..."         Node counts, ascending; N@D runs N at poll interval D
                         (default "$nodes_list")
  --poll-interval D      the programs' --poll-interval and the farm's sampling interval
                         (default $poll_interval)
  --duration D           the wrk run, as wrk reads it (default $duration)
  --window S             seconds of the idle window (default $window)
  --connections N        wrk connections (default $connections)
  --settle S             how long to wait for every Node usable before measuring anyway
                         (default $settle)
  --designs "D..."       which designs to run, in order (default "$designs")
  --standby feed|both|none
                         a standby pi0-operator in design feed (reads the feed), in both
                         designs (in poll it polls every agent too), or none (default $standby)
  --farm-workers N       Python processes of the agent farm (default $farm_workers)
  --results FILE         also write the figures there, one JSON line per (N, design);
                         bench/fleet_bench.py report FILE prints the summary again
  --operator PATH        pi0-operator (default build/release/operator/pi0-operator, or
                         \$PI0_OPERATOR)
  --webhook PATH         pi0-webhook (default build/release/webhook/pi0-webhook, or \$PI0_WEBHOOK)
  --agent PATH           pi0-agent (default build/release/agent/pi0-agent, or \$PI0_AGENT)
  --help                 print this help
EOF
}
die() {
  echo "fleet_bench: $*" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --nodes) nodes_list=${2:?--nodes needs a value}; shift 2 ;;
    --poll-interval) poll_interval=${2:?--poll-interval needs a value}; shift 2 ;;
    --duration) duration=${2:?--duration needs a value}; shift 2 ;;
    --window) window=${2:?--window needs a value}; shift 2 ;;
    --connections) connections=${2:?--connections needs a value}; shift 2 ;;
    --settle) settle=${2:?--settle needs a value}; shift 2 ;;
    --designs) designs=${2:?--designs needs a value}; shift 2 ;;
    --standby) standby=${2:?--standby needs a value}; shift 2 ;;
    --farm-workers) farm_workers=${2:?--farm-workers needs a value}; shift 2 ;;
    --results) results_out=${2:?--results needs a value}; shift 2 ;;
    --operator) operator=${2:?--operator needs a value}; shift 2 ;;
    --webhook) webhook=${2:?--webhook needs a value}; shift 2 ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fleet_bench: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
duration_re='^[0-9]+(ms|s|m)$'
for d in $designs; do [[ $d == poll || $d == feed ]] || die "--designs: '$d' is neither poll nor feed"; done
[[ -n ${designs// /} ]] || die "--designs: name at least one of poll, feed"
[[ $poll_interval =~ $duration_re ]] || die "--poll-interval: '$poll_interval' is not like 1s"
[[ $duration =~ ^[1-9][0-9]*[smh]?$ ]] || die "--duration: '$duration' is not like 10s"
for n in "$window" "$connections" "$settle" "$farm_workers"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive whole number"
done
((farm_workers <= 8)) || die "--farm-workers: at most 8"
[[ $standby == feed || $standby == both || $standby == none ]] ||
  die "--standby: '$standby' is not feed, both or none"
entries=()
read -ra words <<<"$nodes_list"
((${#words[@]} > 0)) || die "--nodes: give at least one N"
for e in "${words[@]}"; do
  [[ $e =~ ^([1-9][0-9]*)(@([0-9]+(ms|s|m)))?$ ]] || die "--nodes: '$e' is not N or N@D (e.g. 20000@4s)"
  ((BASH_REMATCH[1] <= 250000)) || die "--nodes: at most 250000 (one loopback address each)"
  entries+=("${BASH_REMATCH[1]} ${BASH_REMATCH[3]:-$poll_interval}")
done
# Ascending by N (the Nodes are only ever added), in the given order within an N.
mapfile -t entries < <(printf '%s\n' "${entries[@]}" | sort -s -n -k1,1)
for bin in "$operator" "$webhook" "$agent"; do
  [[ -x $bin ]] || die "no program at '$bin'; run scripts/build.sh release first"
done
for tool in wrk openssl curl kubectl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian package $tool)"
done
[[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 is missing"
seconds_of() { # DURATION: in seconds
  /usr/bin/python3 -c '
import re, sys
n, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", sys.argv[1]).groups()
print(int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[unit])' "$1"
}
wrk_seconds=$(seconds_of "$duration")
if [[ -n $results_out ]]; then
  results_out=$(realpath -m "$results_out")
  : >"$results_out" || die "--results: cannot write '$results_out'"
fi

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"
# shellcheck source=bench/webhook_lib.sh
source "$root/bench/webhook_lib.sh"
load1=$(cut -d' ' -f1 /proc/loadavg)
e2e_cluster_up
work=$PI0_CLUSTER_DIR/fleet-bench # removed with the cluster
E2E_WORK=$work
mkdir -p "$work/reviews" "$work/bin"
# Our own EXIT trap: on a failure, the last lines of the logs, but not e2e_on_exit's listing of
# every Node (tens of thousands of lines here).
fleet_on_exit() {
  local status=$1 log
  if ((status == 130 || status == 143)); then
    e2e_log "interrupted; stopping what was started"
  elif ((status != 0)) && [[ -d $work ]]; then
    e2e_log "failed (status $status); the last lines of the logs:"
    for log in "$work"/*.log "$PI0_CLUSTER_DIR"/logs/*.log; do
      [[ -s $log ]] || continue
      e2e_log "$(basename "$log"):"
      tail -n 5 "$log" | sed 's/^/    /' >&2
    done
  fi
  e2e_run_at_exit
  e2e_cluster_down
  exit "$status"
}
trap 'fleet_on_exit $?' EXIT
k() { kubectl --request-timeout=30s "$@"; }
bench() { /usr/bin/python3 "$root/bench/webhook_bench.py" "$@"; }
fleet() { /usr/bin/python3 "$root/bench/fleet_bench.py" "$@"; }
# The programs as they are now: a build that replaces them during the run changes nothing here.
cp -p "$operator" "$work/bin/pi0-operator"
cp -p "$webhook" "$work/bin/pi0-webhook"
cp -p "$agent" "$work/bin/pi0-agent"
operator=$work/bin/pi0-operator webhook=$work/bin/pi0-webhook agent=$work/bin/pi0-agent
e2e_log "programs: $("$operator" --version 2>&1 | head -n 1) and $("$webhook" --version 2>&1 |
  head -n 1), built $(date -u -r "$operator" '+%Y-%m-%d %H:%M:%S') and $(date -u -r "$webhook" \
  '+%H:%M:%S') UTC; the tree is at $(git -C "$root" rev-parse --short HEAD 2>/dev/null ||
  echo '?')$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' with local changes')"

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: certificates, namespaces, channels, service accounts and their tokens"
e2e_make_certificates "$work" # the webhook's serving pair
e2e_make_fleet_certificates "$work"

e2e_install_crds
e2e_create_namespace bench
e2e_create_namespace bench-control
e2e_create_namespace pi0-system
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
readers=system:serviceaccount:pi0-system:pi0-webhook,system:serviceaccount:pi0-system:pi0-operator
for sa in pi0-webhook pi0-operator; do
  k -n pi0-system create serviceaccount "$sa" >/dev/null
  k -n pi0-system create token "$sa" --audience pi0-fleet --duration 2h >"$work/$sa.token" ||
    e2e_fail "cannot make a token for service account $sa (kubectl create token)"
done

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: three real pi0-agents for the farm to copy"
cp "$root/examples/profiles/steady-node.yaml" "$work/light.yaml"
# The heavy and gpu profiles of webhook_bench.sh.
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

bench reviews bench "$work/reviews" || e2e_fail "making the AdmissionReview bodies failed"
mapfile -t bodies < <(e2e_json 'print("\n".join(i["file"] for i in d))' <"$work/reviews/index.json")
farm_port=$(e2e_free_port)

# ---------------------------------------------------------------------------------------------
https() { curl -sS --noproxy '*' --cacert "$work/ca.crt" --max-time 5 "$@"; }
# metric URL SERIES [CA]: the value of SERIES (exactly as exposed) at URL, or nothing.
metric() {
  curl -sS --noproxy '*' --max-time 5 ${3:+--cacert "$3"} "$1" 2>/dev/null |
    awk -v s="$2" '$1 == s { printf "%d", $2 }'
}
lease_holder() { # NAME
  e2e_api GET "/apis/coordination.k8s.io/v1/namespaces/default/leases/$1" 2>/dev/null |
    e2e_json 'print(d["spec"].get("holderIdentity") or "")'
}
leads() { [[ $(lease_holder "$1") == "$2" ]]; }

# start_operator DESIGN LEASE IDENTITY LOG: sets OP_PID and OP_METRICS (the metrics URL).
start_operator() {
  local design=$1 lease=$2 identity=$3 log=$4 feed=() fleet_port port deadline=$((SECONDS + 60))
  if [[ $design == feed ]]; then
    fleet_port=$(e2e_free_port)
    feed=(--fleet-bind-address "127.0.0.1:$fleet_port" --fleet-cert-file "$work/fleet.crt"
      --fleet-key-file "$work/fleet.key" --fleet-readers "$readers"
      --fleet-advertise-url "https://127.0.0.1:$fleet_port" --fleet-lease "default/$lease"
      --fleet-ca-file "$work/fleet-ca.crt" --fleet-token-file "$work/pi0-operator.token")
    # The truth ledger, as the chart sets it up, when this build of the operator has one: the
    # webhook's decisions (every review of wrk's) are stored by the leader.
    if "$operator" --help 2>&1 | grep -q -- --ledger-path; then
      feed+=(--ledger-path "$work/ledger-$identity.db"
        --ledger-writers system:serviceaccount:pi0-system:pi0-webhook)
    fi
  fi
  e2e_start "$log" "$operator" --kubeconfig "$KUBECONFIG" --leader-elect \
    --leader-election-namespace default --leader-election-id "$lease" --identity "$identity" \
    --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --agent-service pi0-system/pi0-agent --poll-interval "$interval" "${feed[@]}"
  OP_PID=$E2E_STARTED_PID
  until port=$(e2e_log_field "$log" "serving metrics" port 2>/dev/null); do
    e2e_pid_alive "$OP_PID" || e2e_fail "pi0-operator $identity exited at start: $(tail -5 "$log")"
    ((SECONDS < deadline)) || e2e_fail "pi0-operator $identity does not serve metrics after 60 s"
    sleep 0.2
  done
  OP_METRICS=http://127.0.0.1:$port/metrics
}

# run_design N INTERVAL DESIGN INDEX: one design's programs, measured; a line in results.jsonl.
run_design() {
  local n=$1 design=$3 idx=$4 lease started ready_s usable_s=null usable=0 from_feed wport
  local op_pid op_url sb_pid="" sb_url="" wh_pid wh_url specs notes=() check_rc=0 feed_flags=()
  interval=$2
  lease=bench-$design-$idx
  e2e_log "$n Nodes every $interval, design $design: starting the programs"
  start_operator "$design" "$lease" "$design-leader" "$work/operator-$idx-$design.log"
  op_pid=$OP_PID op_url=$OP_METRICS
  e2e_wait_for "the operator to lead (Lease default/$lease)" 60 leads "$lease" "$design-leader"
  if [[ $standby == both || ($standby == feed && $design == feed) ]]; then
    start_operator "$design" "$lease" "$design-standby" "$work/standby-$idx-$design.log"
    sb_pid=$OP_PID sb_url=$OP_METRICS
  elif [[ $design == poll && $standby == feed ]]; then
    notes+=("$n Nodes every $interval, poll: no standby operator run (--standby feed); it would poll every agent as the leader does: one more consumer at the operator's rate (counted in the cluster-wide figures)")
  fi
  if [[ $design == feed ]]; then
    feed_flags=(--fleet-lease "default/$lease" --fleet-ca-file "$work/fleet-ca.crt"
      --fleet-token-file "$work/pi0-webhook.token")
  fi
  wport=$(e2e_free_port)
  wh_url=https://127.0.0.1:$wport
  started=$SECONDS
  e2e_start "$work/webhook-$idx-$design.log" "$webhook" --kubeconfig "$KUBECONFIG" \
    --bind-address "127.0.0.1:$wport" --tls-cert-file "$work/tls.crt" \
    --tls-private-key-file "$work/tls.key" --agent-service pi0-system/pi0-agent \
    --poll-interval "$interval" --shutdown-delay 0s \
    --excluded-namespaces kube-system,bench-control "${feed_flags[@]}"
  wh_pid=$E2E_STARTED_PID
  webhook_ready() {
    e2e_pid_alive "$wh_pid" || {
      tail -n 20 "$work/webhook-$idx-$design.log" >&2
      e2e_fail "pi0-webhook exited"
    }
    [[ $(https -o /dev/null -w '%{http_code}' "$wh_url/readyz" 2>/dev/null) == 200 ]]
  }
  e2e_wait_for "pi0-webhook ready" 180 webhook_ready
  ready_s=$((SECONDS - started))
  # Every Node usable in the webhook's view (and, with the feed, the view from the feed).
  local deadline=$((SECONDS + settle))
  while :; do
    usable=$(metric "$wh_url/metrics" 'pi0_webhook_fleet_nodes{state="usable"}' "$work/ca.crt")
    from_feed=$(metric "$wh_url/metrics" 'pi0_webhook_fleet_source{source="feed"}' "$work/ca.crt")
    if [[ ${usable:-0} == "$n" && ($design == poll || ${from_feed:-0} == 1) ]]; then
      usable_s=$((SECONDS - started))
      e2e_log "ok: every Node usable in the webhook's view after ${usable_s}s"
      break
    fi
    if ((SECONDS >= deadline)); then
      e2e_log "NOTE: after ${settle}s only ${usable:-0} of $n Nodes usable (from the feed:" \
        "${from_feed:-0}); measuring anyway"
      notes+=("$n Nodes every $interval, $design: the webhook's view never had every Node usable within ${settle}s of its start (${usable:-0} of $n at the end)")
      break
    fi
    sleep 1
  done
  sleep "$(/usr/bin/python3 -c "print(3 * $(seconds_of "$interval"))")"

  specs=(operator=pid:"$op_pid" operator=url:"$op_url" webhook=pid:"$wh_pid"
    webhook=url:"$wh_url/metrics@$work/ca.crt" farm=pid:"$(IFS=,; echo "${farm_pids[*]}")"
    farm=stats:"http://127.0.0.1:$farm_port/farm-stats?within=$(/usr/bin/python3 -c "print(3 * $(seconds_of "$interval"))")")
  if [[ -n $sb_pid ]]; then specs+=(standby=pid:"$sb_pid" standby=url:"$sb_url"); fi
  e2e_log "idle window: ${window}s without reviews"
  fleet idle "$work/idle-$idx-$design.json" "$window" "$op_url" "${specs[@]}" ||
    e2e_fail "the idle window's snapshots failed"

  e2e_log "each body once:"
  bench check "$wh_url/validate-pods" "$work/ca.crt" "$work/reviews" --any || check_rc=$?
  bench_wrk "$wh_url/validate-pods" "$connections" 2s "$work/wrk-warmup.txt" "${bodies[@]}" ||
    { cat "$work/wrk-warmup.txt" >&2; e2e_fail "wrk failed"; }
  e2e_log "wrk: $connections connections, $duration"
  fleet snap "$work/wrk0-$idx-$design.json" "${specs[@]}"
  bench_wrk "$wh_url/validate-pods" "$connections" "$duration" "$work/wrk-$idx-$design.txt" \
    "${bodies[@]}" || { cat "$work/wrk-$idx-$design.txt" >&2; e2e_fail "wrk failed"; }
  fleet snap "$work/wrk1-$idx-$design.json" "${specs[@]}"

  local extra
  extra=$(/usr/bin/python3 -c '
import json, sys
a = sys.argv
print(json.dumps({"cpus": int(a[1]), "load1": float(a[2]), "connections": int(a[3]),
                  "wrk_seconds": float(a[4]), "farm_workers": int(a[5]), "ready_s": float(a[6]),
                  "usable_s": None if a[7] == "null" else float(a[7]), "settle_s": float(a[8]),
                  "notes": a[9:]}))' "$(nproc)" "$load1" "$connections" "$wrk_seconds" \
    "$farm_workers" "$ready_s" "$usable_s" "$settle" "${notes[@]}")
  fleet result "$n" "$design" "$(seconds_of "$interval")" "$work/idle-$idx-$design.json" \
    "$work/wrk0-$idx-$design.json" "$work/wrk1-$idx-$design.json" "$work/wrk-$idx-$design.txt" \
    "$check_rc" "$extra" >>"$work/results.jsonl" || e2e_fail "no figures for $n Nodes, $design"
  e2e_log "$(fleet row "$work/results.jsonl")"
  if [[ -n $results_out ]]; then cp "$work/results.jsonl" "$results_out"; fi
  if grep -q '"level":"error"' "$work/webhook-$idx-$design.log"; then
    e2e_log "pi0-webhook logged errors (the last 3):"
    grep '"level":"error"' "$work/webhook-$idx-$design.log" | tail -n 3 >&2
  fi
  e2e_stop_pid "$wh_pid"
  if [[ -n $sb_pid ]]; then e2e_stop_pid "$sb_pid"; fi
  e2e_stop_pid "$op_pid"
}

# ---------------------------------------------------------------------------------------------
: >"$work/results.jsonl"
have=0 idx=0
for entry in "${entries[@]}"; do
  read -r n interval <<<"$entry"
  idx=$((idx + 1))
  if ((n > have)); then
    e2e_log "Nodes: $have -> $n"
    fleet nodes "$have" "$n" "$work/nodes.json" || e2e_fail "creating the Nodes failed"
    bench slices "$work/nodes.json" pi0-system pi0-agent "$farm_port" ||
      e2e_fail "creating the EndpointSlices failed"
    have=$n
  fi
  # The farm for the first n Nodes, sampling every interval.
  /usr/bin/python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))[:int(sys.argv[2])], open(sys.argv[3], "w"))' \
    "$work/nodes.json" "$n" "$work/farm-nodes.json"
  farm_pids=()
  for ((w = 0; w < farm_workers; w++)); do
    /usr/bin/python3 "$root/bench/fleet_bench.py" farm "$work/farm-nodes.json" "$farm_port" \
      "$(seconds_of "$interval")" "$work/farm-$idx.bin" "$w" "$farm_workers" "${farm_agents[@]}" \
      </dev/null >"$work/farm-$idx-$w.log" 2>&1 &
    farm_pids+=($!)
    e2e_at_exit "e2e_stop_pid $!"
  done
  farm_up() {
    local p
    for p in "${farm_pids[@]}"; do
      e2e_pid_alive "$p" || { cat "$work"/farm-"$idx"-*.log >&2; e2e_fail "the agent farm exited"; }
    done
    [[ $(grep -l '^farm: serving' "$work"/farm-"$idx"-*.log 2>/dev/null | wc -l) == "$farm_workers" ]]
  }
  e2e_wait_for "the agent farm serving $n agents ($farm_workers workers)" 60 farm_up
  for design in $designs; do
    run_design "$n" "$interval" "$design" "$idx"
  done
  for p in "${farm_pids[@]}"; do e2e_stop_pid "$p"; done
done

fleet report "$work/results.jsonl"
