#!/usr/bin/env bash
# End-to-end test of pi0-operator's process on the real control plane (tests/e2e): two replicas
# with --leader-elect serve /healthz, /readyz and /metrics; exactly one holds the Lease and says
# so in pi0_operator_leader; the leader hands over on SIGTERM; both exit 0 on SIGTERM; a bad
# kubeconfig or an unreachable API server exits 1, an unknown flag 2.
# Usage: operator_start_test.sh SOURCE_DIR PI0_OPERATOR_BINARY
set -euo pipefail
source_dir=$1
binary=$2
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

e2e_cluster_up
e2e_install_crds
work=$PI0_CLUSTER_DIR/operator-start
mkdir -p "$work"
agent_port=$(e2e_free_port) # nothing listens there: every poll fails, which is fine

declare -A pid log metrics_port probe_port identity
start_operator() {
  local n=$1
  log[$n]=$work/operator-$n.log
  "$binary" --leader-elect --kubeconfig "$KUBECONFIG" \
    --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --agents "node-a=http://127.0.0.1:$agent_port" --poll-interval 500ms --agent-timeout 200ms \
    </dev/null >"${log[$n]}" 2>&1 &
  pid[$n]=$!
  e2e_at_exit "kill -KILL ${pid[$n]} 2>/dev/null || true"
}

operator_started() {
  local n=$1
  e2e_pid_alive "${pid[$n]}" || {
    tail -n 20 "${log[$n]}" >&2
    e2e_fail "operator $n exited at start"
  }
  e2e_log_field "${log[$n]}" "pi0-operator started" identity >/dev/null
}

http_ok() { curl -sS --noproxy '*' --fail --max-time 5 -o /dev/null "$1"; }
scrape() { curl -sS --noproxy '*' --fail --max-time 5 "http://127.0.0.1:${metrics_port[$1]}/metrics"; }
leader_gauge() { scrape "$1" | awk '$1 == "pi0_operator_leader" { print $2 }'; }
lease_holder() {
  kubectl get lease pi0-operator -n default -o jsonpath='{.spec.holderIdentity}' 2>/dev/null
}

# Exactly one replica leads: the Lease names it, and only its gauge is 1.
one_leader() {
  local holder leaders=0 n
  holder=$(lease_holder) || return 1
  [[ -n $holder ]] || return 1
  for n in "$@"; do
    if [[ $(leader_gauge "$n") == 1 ]]; then
      ((leaders += 1))
      [[ ${identity[$n]} == "$holder" ]] || return 1
      leader=$n
    fi
  done
  ((leaders == 1))
}

# stop_operator N: SIGTERM, then it must exit 0 within 10 s.
stop_operator() {
  local n=$1 deadline=$((SECONDS + 10)) status=0
  kill -TERM "${pid[$n]}"
  while e2e_pid_alive "${pid[$n]}" && ((SECONDS < deadline)); do sleep 0.1; done
  if e2e_pid_alive "${pid[$n]}"; then
    tail -n 20 "${log[$n]}" >&2
    e2e_fail "operator $n did not exit within 10 s of SIGTERM"
  fi
  wait "${pid[$n]}" || status=$?
  ((status == 0)) || {
    tail -n 20 "${log[$n]}" >&2
    e2e_fail "operator $n exited with status $status after SIGTERM (want 0)"
  }
  e2e_log "ok: operator $n exited 0 on SIGTERM"
}

for n in 1 2; do start_operator "$n"; done
for n in 1 2; do
  e2e_wait_for "operator $n to start" 30 operator_started "$n"
  metrics_port[$n]=$(e2e_log_field "${log[$n]}" "serving metrics" port)
  probe_port[$n]=$(e2e_log_field "${log[$n]}" "serving probes" port)
  identity[$n]=$(e2e_log_field "${log[$n]}" "pi0-operator started" identity)
  [[ ${identity[$n]} =~ _[0-9a-f]{6}$ ]] || e2e_fail "identity '${identity[$n]}' has no random suffix"
done
[[ ${identity[1]} != "${identity[2]}" ]] || e2e_fail "both replicas have identity ${identity[1]}"

for n in 1 2; do
  http_ok "http://127.0.0.1:${probe_port[$n]}/healthz" || e2e_fail "operator $n: /healthz"
  e2e_wait_for "operator $n to be ready (a standby is ready too)" 30 \
    http_ok "http://127.0.0.1:${probe_port[$n]}/readyz"
  text=$(scrape "$n") || e2e_fail "operator $n: /metrics does not answer"
  grep -q '^# TYPE pi0_operator_leader gauge$' <<<"$text" ||
    e2e_fail "operator $n: /metrics has no pi0_operator_leader"
done

leader=""
e2e_wait_for "exactly one replica to hold the Lease and say so" 60 one_leader 1 2
standby=$((3 - leader))
e2e_log "leader: operator $leader (${identity[$leader]}); standby: operator $standby"
# The failing agent is polled, and the polls are counted.
polled_errors() {
  scrape "$1" | awk '$1 == "pi0_operator_fleet_polls_total{result=\"error\"}" && $2 > 0 { f = 1 }
                     END { exit !f }'
}
e2e_wait_for "operator $standby to count failed polls" 30 polled_errors "$standby"

# The leader hands the Lease back on SIGTERM, and the standby takes over.
stop_operator "$leader"
e2e_wait_for "operator $standby to take over" 30 one_leader "$standby"
stop_operator "$standby"

# Start-up failures: exit 1 with a message.
printf 'this is not a kubeconfig: [\n' >"$work/bad-kubeconfig"
status=0
"$binary" --kubeconfig "$work/bad-kubeconfig" --agents "a=http://127.0.0.1:$agent_port" \
  >"$work/bad.log" 2>&1 || status=$?
((status == 1)) || e2e_fail "a bad kubeconfig: status $status (want 1): $(cat "$work/bad.log")"
grep -q "bad-kubeconfig" "$work/bad.log" || e2e_fail "a bad kubeconfig: no message naming it"
e2e_log "ok: a bad kubeconfig exits 1: $(tail -n 1 "$work/bad.log")"

unreachable=$work/unreachable-kubeconfig
kubectl config view --raw --minify >"$unreachable"
kubectl --kubeconfig "$unreachable" config set-cluster "$(kubectl config view --minify \
  -o jsonpath='{.clusters[0].name}')" --server "https://127.0.0.1:$(e2e_free_port)" >/dev/null
status=0
timeout 60 "$binary" --kubeconfig "$unreachable" --agents "a=http://127.0.0.1:$agent_port" \
  >"$work/unreachable.log" 2>&1 || status=$?
((status == 1)) ||
  e2e_fail "an unreachable API server: status $status (want 1): $(cat "$work/unreachable.log")"
grep -q "cannot reach the API server" "$work/unreachable.log" ||
  e2e_fail "an unreachable API server: no clear message: $(cat "$work/unreachable.log")"
e2e_log "ok: an unreachable API server exits 1"

status=0
"$binary" --no-such-flag >"$work/usage.log" 2>&1 || status=$?
((status == 2)) || e2e_fail "an unknown flag: status $status (want 2)"
grep -q "unknown flag '--no-such-flag'" "$work/usage.log" || e2e_fail "an unknown flag: no message"
e2e_log "ok: an unknown flag exits 2"
e2e_log "PASS"
