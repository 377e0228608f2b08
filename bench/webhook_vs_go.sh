#!/usr/bin/env bash
# pi0-webhook side by side with a plain Go webhook (bench/go_peer: net/http, crypto/tls and
# encoding/json, deciding on five node records in memory), on a small fleet of the test bed of
# tests/e2e/cluster.sh, both measured by the same wrk runs over TLS keep-alive on loopback.
#
# Set-up (namespace bench):
#   Nodes      three, labelled as a cloud's node pools label them: node-a and node-b general
#              (16 cores, 64Gi, zone-c), node-c high-memory (16 cores, 128Gi, zone-a).
#   Agents     two real pi0-agents on synthetic profiles (--interval 100ms, window 64): node-a
#              examples/profiles/daily-rhythm.yaml, node-b examples/profiles/steady-node.yaml;
#              node-c has none. pi0-webhook polls them (--agents).
#   Channel    checkout (critical, targets Deployment checkout-api), Active.
#   The review the pod checkout-api of bench/webhook_bench.py (a Deployment's pod: four
#              containers, an init container, requests and limits, probes, a volume,
#              nodeSelector pool=general and zone=zone-c, the Channel's label) created once with
#              dryRun=All, so that the object is what the apiserver sends (defaulted, service
#              account token mounted, name generated), in an AdmissionReview v1 as the apiserver
#              writes it. Both servers should admit it: pi0-webhook on node-a or node-b (their
#              gates pass), the Go peer on its node-4.
#   Servers    pi0-webhook and the Go peer on free ports of 127.0.0.1, the same certificate
#              (a CA made with openssl). Each must answer the review 200, allowed, with its uid.
#
# The figures: wrk (bench/webhook_wrk.lua) with --connections connections (threads =
# min(connections, 2)) for --duration, after a --warmup run of each server, then --rounds rounds
# of go, pi0 alternating. Per run: reviews/s, latency p50/p90/p99/p99.9 (wrk's: from writing a
# request to the end of its answer, on a connection past its TLS handshake; closed loop), non-2xx
# answers, socket errors, the server's CPU time (utime + stime, all its threads) per review and
# the machine's load average. At the end the medians per server and the ratios
# `pi0/go reviews/s` and `p99 pi0/go`, against the goal of issue 13 (>= 2.0, and a lower p99).
# wrk, both servers, the agents and the control plane share this machine's CPUs; an idle server
# waits while the other is measured.
#
# A benchmark asserts nothing: it exits 0 once it has measured, 1 when a measurement failed, 2 on
# a usage error or a missing prerequisite. Everything it starts is stopped on exit (also on
# Ctrl-C), and the cluster removed.
#
# Usage: bench/webhook_vs_go.sh [--duration D] [--connections N] [--rounds N] [--warmup D]
#          [--webhook PATH] [--agent PATH]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

duration=8s connections=32 rounds=2 warmup=3s profile=0 slow=0
webhook=${PI0_WEBHOOK:-$root/build/release/webhook/pi0-webhook}
agent=${PI0_AGENT:-$root/build/release/agent/pi0-agent}

usage() {
  cat <<EOF
Usage: bench/webhook_vs_go.sh [flags]

pi0-webhook (three Nodes, two pi0-agents) and a plain Go standard-library webhook (bench/go_peer,
five node records), the same pod review, wrk over TLS keep-alive alternating go/pi0; prints each
run, the medians and the ratio pi0/go (about 2 minutes with the defaults).

Flags:
  --duration D       each measured wrk run, as wrk reads it (default $duration)
  --connections N    wrk connections (default $connections; threads: min(N, 2))
  --rounds N         measured runs of each server, alternating (default $rounds)
  --warmup D         one warm-up run of each server first (default $warmup)
  --webhook PATH     pi0-webhook binary (default build/release/webhook/pi0-webhook, or
                     \$PI0_WEBHOOK)
  --agent PATH       pi0-agent binary (default build/release/agent/pi0-agent, or \$PI0_AGENT)
  --slow-clients     then, for each server, the latency of reviews alone and beside 200 idle
                     and slow connections (bench/slow_clients.py)
  --profile          then one more pi0 run under perf (cpu-clock samples): where its CPU goes,
                     by library and by function
  --help             print this help
EOF
}
die() {
  echo "webhook_vs_go: $*" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --duration) duration=${2:?--duration needs a value}; shift 2 ;;
    --connections) connections=${2:?--connections needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --warmup) warmup=${2:?--warmup needs a value}; shift 2 ;;
    --webhook) webhook=${2:?--webhook needs a value}; shift 2 ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    --profile) profile=1; shift ;;
    --slow-clients) slow=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "webhook_vs_go: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$connections" "$rounds"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive whole number"
done
((rounds <= 20)) || die "--rounds: at most 20"
for d in "$duration" "$warmup"; do
  [[ $d =~ ^[1-9][0-9]*[smh]?$ ]] || die "'$d' is not a duration like 8s or 2m"
done
((!profile)) || command -v perf >/dev/null || die "--profile needs perf: apt-get install linux-perf"
[[ -x $webhook ]] || die "no pi0-webhook at '$webhook'; run scripts/build.sh release first"
[[ -x $agent ]] || die "no pi0-agent at '$agent'; run scripts/build.sh release first"
webhook=$(realpath "$webhook")
agent=$(realpath "$agent")
for tool in wrk openssl curl kubectl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian package $tool)"
done
command -v go >/dev/null || die "go is not installed; the Go peer needs it (Debian package golang-go)"
[[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 is missing"

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"
# shellcheck source=bench/webhook_lib.sh
source "$root/bench/webhook_lib.sh"
e2e_cluster_up
work=$PI0_CLUSTER_DIR/webhook-vs-go # removed with the cluster
mkdir -p "$work"
bench() { /usr/bin/python3 "$root/bench/webhook_bench.py" "$@"; }

bench_go_peer_build "$work/go_peer"

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: certificates, namespace, channel, three Nodes, two pi0-agents"
e2e_make_certificates "$work"
e2e_install_crds
e2e_create_namespace bench
kubectl label namespace bench kubernetes.io/metadata.name=bench --overwrite >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: checkout, namespace: bench}
spec: {critical: true, targets: [{kind: Deployment, name: checkout-api}]}
YAML
e2e_create_node node-a 16 64Gi node.pi0.io/pool=general topology.kubernetes.io/zone=zone-c \
  node.kubernetes.io/instance-type=m5.4xlarge
e2e_create_node node-b 16 64Gi node.pi0.io/pool=general topology.kubernetes.io/zone=zone-c \
  node.kubernetes.io/instance-type=m5.4xlarge
e2e_create_node node-c 16 128Gi node.pi0.io/pool=highmem topology.kubernetes.io/zone=zone-a \
  node.kubernetes.io/instance-type=r5.4xlarge

agents=""
for spec in node-a:daily-rhythm node-b:steady-node; do
  node=${spec%%:*}
  e2e_start_agent "$agent" "$work/agent-$node.log" --nvml-library none --gpu-probe-interval 0 \
    --node-name "$node" --source "synthetic:$root/examples/profiles/${spec#*:}.yaml" \
    --interval 100ms --window 64
  agents+="${agents:+,}$node=$E2E_AGENT_URL"
done

bench reviews bench "$work/reviews" checkout-api || e2e_fail "making the AdmissionReview body failed"
mapfile -t bodies < <(e2e_json 'print("\n".join(i["file"] for i in d))' <"$work/reviews/index.json")

# ---------------------------------------------------------------------------------------------
e2e_log "the servers: pi0-webhook and the Go peer"
webhook_port=$(e2e_free_port)
"$webhook" --kubeconfig "$KUBECONFIG" --bind-address "127.0.0.1:$webhook_port" \
  --tls-cert-file "$work/tls.crt" --tls-private-key-file "$work/tls.key" --agents "$agents" \
  --shutdown-delay 0s </dev/null >"$work/webhook.log" 2>&1 &
webhook_pid=$!
e2e_at_exit "e2e_stop_pid $webhook_pid"
BENCH_URL[pi0]=https://127.0.0.1:$webhook_port BENCH_PID[pi0]=$webhook_pid
https() { curl -sS --noproxy '*' --cacert "$work/ca.crt" --max-time 5 "$@"; }
pi0_ready() {
  e2e_pid_alive "$webhook_pid" || { tail -n 20 "$work/webhook.log" >&2; e2e_fail "pi0-webhook exited"; }
  [[ $(https -o /dev/null -w '%{http_code}' "${BENCH_URL[pi0]}/readyz" 2>/dev/null) == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 60 pi0_ready
bench_go_peer_start "$work/go_peer" "$work/tls.crt" "$work/tls.key" "$work/go-peer.log"
BENCH_URL[go]=$BENCH_GO_PEER_URL BENCH_PID[go]=$BENCH_GO_PEER_PID

# The agents' windows (64 samples at 100 ms) fill, then the webhook polls them: until then its
# answer is the stale-data warning, not the verdict.
pi0_answers() { bench check "${BENCH_URL[pi0]}/validate-pods" "$work/ca.crt" "$work/reviews" >"$work/check-pi0.txt"; }
e2e_at_exit "[[ -e $work/checked || ! -e $work/check-pi0.txt ]] || cat $work/check-pi0.txt >&2"
e2e_wait_for "pi0-webhook's verdict on the review (the agents' windows full)" 60 pi0_answers
touch "$work/checked"
e2e_log "pi0-webhook: $(sed 's/^ *//' "$work/check-pi0.txt")"
bench check "${BENCH_URL[go]}/validate-pods" "$work/ca.crt" "$work/reviews" >"$work/check-go.txt" ||
  { cat "$work/check-go.txt" >&2; e2e_fail "the Go peer did not answer as expected"; }
e2e_log "the Go peer: $(sed 's/^ *//' "$work/check-go.txt")"

# ---------------------------------------------------------------------------------------------
BENCH_SERVERS=(go pi0)
bench_side_by_side "$work/runs" "$connections" "$duration" "$rounds" "$warmup" "${bodies[@]}"

echo
echo "pi0-webhook: $webhook ($("$webhook" --version 2>&1 | head -n 1); the tree's HEAD is $(git -C \
  "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)); three Nodes, two agents"
echo "Go peer: bench/go_peer built with $(go version | awk '{ print $3 }'), five node records"
echo "wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'); the body: $(e2e_json '
print("%s, %d bytes" % (d[0]["name"], d[0]["bytes"]))' <"$work/reviews/index.json"); this machine: \
$(nproc) CPUs shared by wrk, both servers, the agents and the control plane"
bench side-by-side "$work/runs/side-by-side.jsonl"

if ((slow)); then
  for name in go pi0; do
    echo
    echo "$name: reviews one after the other on one connection, alone and beside 200 idle and slow ones"
    python3 "$root/bench/slow_clients.py" "${BENCH_URL[$name]}/validate-pods" "$work/ca.crt" \
      "${bodies[0]}" | sed 's/^/  /' || e2e_fail "a review failed beside the slow clients ($name)"
  done
fi

if ((profile)); then
  # cpu-clock is a software event: it works where the VM offers no hardware counters.
  seconds=$(python3 -c 'import sys; d=sys.argv[1]; print(float(d[:-2])/1000 if d.endswith("ms") else float(d.rstrip("s")))' "$duration")
  perf record -q -e cpu-clock -F 2000 -g -p "$webhook_pid" -o "$work/perf.data" -- sleep "$seconds" \
    >"$work/perf.log" 2>&1 &
  perf_pid=$!
  bench_wrk "${BENCH_URL[pi0]}/validate-pods" "$connections" "$duration" "$work/wrk-profile.txt" \
    "${bodies[@]}" || { cat "$work/wrk-profile.txt" >&2; e2e_fail "wrk failed under perf"; }
  wait "$perf_pid" || { cat "$work/perf.log" >&2; e2e_fail "perf record failed"; }
  echo
  echo "pi0-webhook under perf ($(awk '/Requests\/sec/ { printf "%.0f reviews/s", $2 }' \
    "$work/wrk-profile.txt") while sampled): its CPU by library, then by function (self time)"
  # awk stops printing, not reading: a closed pipe would end the script (pipefail).
  perf report -i "$work/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ && n++ < 12 { print "  " $0 }'
  echo
  perf report -i "$work/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ && n++ < 45 { print "  " substr($0, 1, 150) }'
fi
