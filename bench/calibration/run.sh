#!/usr/bin/env bash
# The calibration benchmark: one scripted day, lived side by side by two worlds on one real
# control plane (bench/calibration/README.md). World "off" keeps the fixed thresholds (GatePolicy
# mode Off), world "auto" calibrates them (mode Auto). Each world has its own Nodes, pi0-agents,
# pi0-operator (with its truth ledger) and pi0-webhook (Enforce); day.py plays the same load and
# the same pods to both; report.py judges every decision against the load that followed.
#
# Usage: bench/calibration/run.sh [--day mixed|pressure] [--hour-seconds S] [--nodes N]
#                                 [--seed S] [--target F] [--history-gate MODE] [--out DIR]
#                                 [--continue DIR] [--build-dir DIR] [--smoke]
#   --day           which episodes the day has (day.py's DAYS; default mixed)
#   --hour-seconds  how long an hour of the day lasts (default 40: a day of 16 minutes)
#   --nodes         Nodes per world (default 4)
#   --target        the Auto world's targets.falsification (default 0.05, the GatePolicy's)
#   --history-gate  the Auto world's pi0-webhook --history-gate: Off, Warn (the default: it
#                   changes no decision) or Enforce (the fingerprint memory denies too); the
#                   fixed world keeps Warn
#   --continue      a second day: the Auto world starts where an earlier run (its --out) ended,
#                   with its GatePolicy's thresholds and history and its truth ledger
#   --smoke         a 3-hour day of 10 s hours: checks the set-up, in about 3 minutes
#   --out           where the results go (default bench/calibration/results/<date-time>)
#   --build-dir     where the programs are (default build/release; or $PI0_OPERATOR,
#                   $PI0_WEBHOOK, $PI0_AGENT name each)
# Exit status: 0 measured, 1 something failed, 2 a usage error or a missing build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONDONTWRITEBYTECODE=1 # nothing written into the source tree
source_dir=$(cd "$here/../.." && pwd)
day=mixed hour_seconds=40 nodes=4 seed=1 out="" build_dir=$source_dir/build/release hours=24
target=0.05 history_gate=Warn continue_from=""
usage() { sed -n '9,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --day) day=${2:?}; shift 2 ;;
    --hour-seconds) hour_seconds=${2:?}; shift 2 ;;
    --nodes) nodes=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --target) target=${2:?}; shift 2 ;;
    --history-gate) history_gate=${2:?}; shift 2 ;;
    --continue) continue_from=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --build-dir) build_dir=${2:?}; shift 2 ;;
    --smoke) hour_seconds=10 hours=3; shift ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
operator_bin=${PI0_OPERATOR:-$build_dir/operator/pi0-operator}
webhook_bin=${PI0_WEBHOOK:-$build_dir/webhook/pi0-webhook}
agent_bin=${PI0_AGENT:-$build_dir/agent/pi0-agent}
for bin in "$operator_bin" "$webhook_bin" "$agent_bin"; do
  [[ -x $bin ]] || {
    echo "run.sh: $bin is missing: build it first (scripts/build.sh release)" >&2
    exit 2
  }
done
if [[ -n $continue_from ]]; then
  for f in gatepolicy-auto.json ledger-auto.db; do
    [[ -f $continue_from/$f ]] || {
      echo "run.sh: --continue $continue_from: no $f there (the --out of an earlier run)" >&2
      exit 2
    }
  done
fi
out=${out:-$here/results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"
e2e_cluster_up
work=$PI0_CLUSTER_DIR/day
mkdir -p "$work"
E2E_WORK=$work
WORLDS=(off auto)
horizon=15

e2e_log "set-up: CRDs, certificates, ${#WORLDS[@]} worlds of $nodes Nodes"
e2e_install_crds
kubectl wait --for condition=established --timeout=60s crd/gatepolicies.stability.pi0.io >/dev/null
e2e_make_certificates "$work"
e2e_make_fleet_certificates "$work"
kubectl create namespace pi0-system >/dev/null
for sa in pi0-webhook pi0-operator; do
  kubectl -n pi0-system create serviceaccount "$sa" >/dev/null
  kubectl -n pi0-system create token "$sa" --audience pi0-fleet --duration 2h >"$work/$sa.token"
done
e2e_start_fake_kubelet

declare -A webhook_port
for w in "${WORLDS[@]}"; do
  names=()
  for i in $(seq 1 "$nodes"); do
    node=$w-node-$i
    names+=("$node")
    e2e_create_node "$node" 16 64Gi
    printf 'signals:\n  cpu: {wave: constant, value: 0.2}\n  memory: {wave: constant, value: 0.4}\n' |
      e2e_install_profile "$node" -
    e2e_start_synthetic_agent "$agent_bin" "$node" --interval 1s
  done
  agents=$(e2e_agents_flag "${names[@]}")
  kubectl create namespace "day-$w" >/dev/null
  kubectl label namespace "day-$w" "kubernetes.io/metadata.name=day-$w" --overwrite >/dev/null
  case $w in
    off) spec='{mode: "Off"}' ;;
    auto) spec="{mode: Auto, holdoutShare: 0.05, step: 0.02, minDecisions: 30, interval: 5s, window: 24h, targets: {falsification: $target}}" ;;
  esac
  kubectl create -f - >/dev/null <<EOF
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: day-$w}
spec: $spec
EOF
  fleet_port=$(e2e_free_port)
  mkdir -p "$work/$w"
  if [[ $w == auto && -n $continue_from ]]; then
    # Yesterday's thresholds, history and evidence: the status as the last round left it.
    kubectl patch gatepolicy day-auto --subresource=status --type=merge -p "$(
      /usr/bin/python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["status"]; print(json.dumps({"status": {k: s[k] for k in ("thresholds", "history") if k in s}}))' \
        "$continue_from/gatepolicy-auto.json"
    )" >/dev/null
    cp "$continue_from/ledger-auto.db" "$work/auto/ledger.db"
    e2e_log "the Auto world continues from $continue_from: thresholds $(kubectl get gatepolicy day-auto -o jsonpath='{.status.thresholds}')"
  fi
  e2e_start "$work/$w/operator.log" "$operator_bin" --kubeconfig "$KUBECONFIG" \
    --leader-elect --leader-election-namespace default --leader-election-id "pi0-day-$w" \
    --identity "pi0-day-$w" --metrics-bind-address 127.0.0.1:0 \
    --health-probe-bind-address 0 --agents "$agents" --poll-interval 1s --agent-timeout 800ms \
    --fleet-bind-address "127.0.0.1:$fleet_port" --fleet-cert-file "$work/fleet.crt" \
    --fleet-key-file "$work/fleet.key" \
    --fleet-readers "system:serviceaccount:pi0-system:pi0-webhook" \
    --fleet-advertise-url "https://127.0.0.1:$fleet_port" --fleet-lease "default/pi0-day-$w" \
    --fleet-ca-file "$work/fleet-ca.crt" --fleet-token-file "$work/pi0-operator.token" \
    --ledger-path "$work/$w/ledger.db" \
    --ledger-writers "system:serviceaccount:pi0-system:pi0-webhook" \
    --outcome-horizon "${horizon}s" --gate-policy "day-$w"
  pid=$E2E_STARTED_PID
  e2e_port_from_log "$work/$w/operator.log" "serving metrics" "$pid" pi0-operator >/dev/null || exit 1
  webhook_port[$w]=$(e2e_free_port)
  e2e_start "$work/$w/webhook.log" "$webhook_bin" --kubeconfig "$KUBECONFIG" \
    --bind-address "127.0.0.1:${webhook_port[$w]}" --tls-cert-file "$work/tls.crt" \
    --tls-private-key-file "$work/tls.key" --agents "$agents" --poll-interval 1s \
    --agent-timeout 800ms --fleet-lease "default/pi0-day-$w" --fleet-ca-file "$work/fleet-ca.crt" \
    --fleet-token-file "$work/pi0-webhook.token" --gate-policy "day-$w" --mode Enforce \
    --history-gate "$([[ $w == auto ]] && echo "$history_gate" || echo Warn)"
  e2e_register_webhook "pi0-day-$w" "https://127.0.0.1:${webhook_port[$w]}" \
    --ca-bundle "$work/ca.crt" --failure-policy Fail \
    --hook pods.stability.pi0.io pods --namespace "day-$w" --timeout 5
done

webhook_metric() { # WORLD SERIES
  curl -sS --noproxy '*' --max-time 5 --cacert "$work/ca.crt" \
    "https://127.0.0.1:${webhook_port[$1]}/metrics" | awk -v s="$2" '$1 == s { print $2 }'
}
ready() {
  local w
  for w in "${WORLDS[@]}"; do
    [[ $(webhook_metric "$w" 'pi0_webhook_fleet_source{source="feed"}' 2>/dev/null) == 1 ]] || return 1
  done
}
e2e_wait_for "both webhooks to read their leader's feed" 60 ready

e2e_log "the day: $hours hours of $hour_seconds s (the log: $out/day.log)"
day_status=0
/usr/bin/python3 "$here/day.py" --env-file "$PI0_CLUSTER_DIR/env" --worlds "$(
  IFS=,
  echo "${WORLDS[*]}"
)" --day "$day" --nodes "$nodes" --hour-seconds "$hour_seconds" --hours "$hours" --seed "$seed" \
  --profiles "$work" --out "$out" --drain $((horizon + 10)) 2> >(tee "$out/day.log" >&2) ||
  day_status=$?
sleep 5 # the last outcomes: the leaders flush every second
for w in "${WORLDS[@]}"; do
  kubectl get gatepolicy "day-$w" -o json >"$out/gatepolicy-$w.json"
  /usr/bin/python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
    "$work/$w/ledger.db" "$out/ledger-$w.db"
  for log in operator webhook; do cp "$work/$w/$log.log" "$out/$w-$log.log"; done
done
((day_status == 0)) || e2e_fail "day.py failed ($day_status): $(tail -5 "$out/day.log")"
/usr/bin/python3 "$here/report.py" "$out" --history-gate "$history_gate" \
  ${continue_from:+--continued "$continue_from"} | tee "$out/report.md"
