#!/usr/bin/env bash
# pi0-operator killed again and again while it degrades, shuts down, raises and restores, on
# the real control plane (tests/e2e): three stand-in Nodes with a pi0-agent each on synthetic
# load (ℓ is the cpu load the test sets), the fake kubelet (pods ready 1 s after they start),
# two operator replicas with leader election, and four channels in namespace `shop`:
#
#   checkout         critical                         Deployment checkout, 2 replicas
#   search           degraded to 2                    Deployment search, 3, behind an HPA 2..6
#   recommendations  dependsOn search, degraded to 2  Deployment recommendations, 4
#   batch            degraded to 1                    Deployment batch, 3
#
# The ShutdownMatrix `default`: normal ≤ 0.6, elevated ≤ 0.8, critical; at elevated batch,
# search, recommendations degraded (cell orders 0, 1, 2), at critical the three shut down (same
# orders, but recommendations depends on search and goes first); one step per 2 s; restores
# after 5 s under the bound minus 0.05; rollback off (settleSeconds 0) and no stability trigger,
# so that only the load drives it.
#
#  1. Random kills. Cycles of load, each run to its end: "straight" (ℓ 0.3 -> 0.95 -> 0.3:
#     everything shut down, then restored) and "via" (0.3 -> 0.7 -> 0.95 -> 0.7 -> 0.3: degraded,
#     shut down, raised back to degraded, restored), straight then via, and more straight ones
#     until at least 20 kills. Meanwhile the leader is killed with SIGKILL at a random moment
#     0.3 to 4 s after the test sees it lead, and a replacement started at once, so that two
#     replicas always run: mostly under the dead leader's identity (as a container restarted in
#     place with a fixed --identity: it takes the Lease back at once), one kill in five under a
#     new one (the standby or the replacement takes the Lease when it expires, after 15 s). The
#     moments and identities come from a seeded generator; the seed is printed, and
#     PI0_KILL_SEED=SEED draws the same ones again (the cluster's timing varies, so a replay is
#     close, not exact).
#  2. Exact kills: one "via" cycle in which the leader dies at each of the scaler's crash points
#     (operator/workload_scaler.h) in turn: a replica started with PI0_CRASH_POINT=P under the
#     leader's identity leads until it passes P and exits with 137; the state at that moment is
#     checked (e.g. at scale-down:hpa-capped the HPA is capped and search's original count is
#     recorded); the next replica is armed with the next point; after the last, a plain one
#     finishes. A point the sequence passes without the replica dying fails the test.
#  3. The end state, and what happened on the way (see `check_history` for what each assertion
#     catches): every workload back to its count, the HPA to its bounds, no stability.pi0.io/
#     annotation left, every Channel Active and Ready, the matrix Idle at level normal with no
#     restore left; each Deployment went through exactly the planned counts, dependents before
#     what they depend on, one step per interval; the Events show no step taken twice.
#
# Usage: operator_kill_test.sh SOURCE_DIR PI0_OPERATOR_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: operator_kill_test.sh SOURCE_DIR PI0_OPERATOR PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

NS=shop
STEP=2  # spec.stepIntervalSeconds
DWELL=5 # spec.hysteresis.dwellSeconds
NODES=(node-a node-b node-c)
MIN_KILLS=20
# shellcheck source=tests/operator/lib.sh
source "$source_dir/tests/operator/lib.sh"

SEED=${PI0_KILL_SEED:-$(($(date +%s%N) % 1000000))}
e2e_log "random seed $SEED (PI0_KILL_SEED=$SEED draws the same kill moments and identities)"
# One line per kill: the delay in ms after the leader is seen leading, and 1 when the
# replacement takes the dead leader's identity.
mapfile -t kill_plan < <(/usr/bin/python3 -c '
import random, sys
r = random.Random(int(sys.argv[1]))
for _ in range(400):
    print(r.randint(300, 4000), 0 if r.random() < 0.2 else 1)' "$SEED")

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: CRDs, Nodes, agents, workloads"
install_crds
for node in "${NODES[@]}"; do e2e_create_node "$node" 4 8Gi; done
e2e_start_fake_kubelet --ready-delay 1
e2e_create_namespace "$NS"
start_agents
wait_agents_at 0.3

{
  deployment checkout 2
  deployment search 3
  deployment recommendations 4
  deployment batch 3
  cat <<YAML
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: search, namespace: $NS}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: search}
  minReplicas: 2
  maxReplicas: 6
  targetCPUUtilizationPercentage: 80
YAML
} | k apply -f - >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: checkout, namespace: $NS}
spec:
  critical: true
  targets: [{kind: Deployment, name: checkout}]
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: search, namespace: $NS}
spec:
  targets: [{kind: Deployment, name: search}]
  degradedReplicas: 2
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: recommendations, namespace: $NS}
spec:
  targets: [{kind: Deployment, name: recommendations}]
  dependsOn: [{name: search, namespace: $NS}]
  degradedReplicas: 2
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: batch, namespace: $NS}
spec:
  targets: [{kind: Deployment, name: batch}]
  degradedReplicas: 1
YAML
k apply -f - >/dev/null <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: default}
spec:
  levels:
    - {name: normal, upperBound: 0.6}
    - {name: elevated, upperBound: 0.8}
    - {name: critical}
  rows:
    - channel: {name: checkout, namespace: $NS}
      critical: true
    - channel: {name: batch, namespace: $NS}
      cells:
        - {level: elevated, action: Degrade, order: 0}
        - {level: critical, action: Shutdown, order: 0}
    - channel: {name: search, namespace: $NS}
      cells:
        - {level: elevated, action: Degrade, order: 1}
        - {level: critical, action: Shutdown, order: 1}
    - channel: {name: recommendations, namespace: $NS}
      cells:
        - {level: elevated, action: Degrade, order: 2}
        - {level: critical, action: Shutdown, order: 2}
  loadSignal: {source: Fleet, resources: [cpu, memory, gpu]}
  stabilityThreshold: 0
  hysteresis: {margin: 0.05, dwellSeconds: $DWELL}
  stepIntervalSeconds: $STEP
  rollback: {settleSeconds: 0}
  mode: Enforce
YAML

# The states the cycles wait for (Python over the snapshot, see lib.sh).
READY='all(D[c]["ready"] == D[c]["replicas"] for c in ("checkout", "search", "recommendations", "batch"))'
NO_RESTORES='not M["default"].get("progress", {}).get("restores")'
DEGRADED='D["batch"]["replicas"] == 1 and D["search"]["replicas"] == 2 and D["recommendations"]["replicas"] == 2'
ALL_DOWN='D["batch"]["replicas"] == 0 and D["search"]["replicas"] == 0 and D["recommendations"]["replicas"] == 0'
RAISED="$DEGRADED and $READY and $NO_RESTORES"
ORIGINAL='D["checkout"]["replicas"] == 2 and D["search"]["replicas"] == 3 and D["recommendations"]["replicas"] == 4 and D["batch"]["replicas"] == 3 and H["search"]["min"] == 2 and H["search"]["max"] == 6'
UNMARKED='all(d["ann"] == {} for d in D.values()) and H["search"]["ann"] == {}'
ALL_BACK="$ORIGINAL and $READY and $UNMARKED and $NO_RESTORES and M[\"default\"].get(\"levelIndex\") == 0"
wait_for "the workloads ready" 90 "$ORIGINAL and $READY"

record_changes "$work/changes.jsonl" "/apis/apps/v1/namespaces/$NS/deployments" \
  "/apis/autoscaling/v1/namespaces/$NS/horizontalpodautoscalers"

# ---------------------------------------------------------------------------------------------
# Replicas. live: the numbers of the replicas that run; the leader, once the test has seen it.
live=()
next_n=1
leader_n=""
launch() { # launch IDENTITY [NAME=VALUE...]: the next replica; sets launched
  launched=$next_n
  next_n=$((next_n + 1))
  start_operator "$launched" "$@"
  live+=("$launched")
}
drop() { # drop N: replica N no longer runs
  local x keep=()
  for x in "${live[@]}"; do [[ $x == "$1" ]] || keep+=("$x"); done
  live=("${keep[@]}")
}
find_leader() {
  local n
  for n in "${live[@]}"; do
    if e2e_pid_alive "${op_pid[$n]}" && leading "$n"; then
      leader_n=$n
      return 0
    fi
  done
  return 1
}
ms() { echo $(($(date +%s%N) / 1000000)); }

# Random kills: called between looks at the cluster.
kills=0
kill_at=0
kill_delay=0
kill_reuse=1
kill_tick() {
  if [[ -z $leader_n ]]; then
    find_leader || return 0
    read -r kill_delay kill_reuse <<<"${kill_plan[kills]}"
    kill_at=$(($(ms) + kill_delay))
    return 0
  fi
  (($(ms) >= kill_at)) || return 0
  local n=$leader_n identity
  kill -KILL "${op_pid[$n]}"
  while e2e_pid_alive "${op_pid[$n]}"; do sleep 0.02; done
  kills=$((kills + 1))
  leader_n=""
  drop "$n"
  if ((kill_reuse)); then identity=${op_id[$n]}; else identity=pi0-e2e-$next_n; fi
  e2e_log "kill $kills: SIGKILL to the leader, operator $n (${op_id[$n]}), ${kill_delay} ms after it was seen leading"
  launch "$identity"
}

# Exact kills: the armed leader died; check where, and arm the next.
POINTS=(scale-down:scaled scale-down:recorded scale-down:hpa-capped raise:hpa-raised raise:raised
  restore:hpa-restored restore:restored)
# What the cluster shows when the replica armed at each point has died there, in the "via"
# cycle (batch is the first channel degraded; search is the one behind the HPA). After its bounds
# are restored the HPA carries only the restore's stamp, which the restore removes, once the
# bounds have settled, before it restores the Deployment's count.
declare -A AT_POINT=(
  [scale-down:scaled]='D["batch"]["replicas"] == 1 and D["batch"]["ann"].get("original-replicas") == "3" and D["search"]["ann"] == {}'
  [scale-down:recorded]='D["search"]["replicas"] == 3 and D["search"]["ann"].get("original-replicas") == "3" and H["search"]["max"] == 6 and H["search"]["ann"] == {}'
  [scale-down:hpa-capped]='H["search"]["min"] == 2 and H["search"]["max"] == 2 and H["search"]["ann"].get("original-max-replicas") == "6" and D["search"]["ann"].get("original-replicas") == "3" and D["search"]["replicas"] in (3, 2)'
  [raise:hpa-raised]='H["search"]["min"] == 1 and H["search"]["max"] == 2 and D["search"]["replicas"] == 0 and D["search"]["ann"].get("original-replicas") == "3"'
  [raise:raised]='(D["search"]["replicas"] == 2 and D["search"]["ann"].get("original-replicas") == "3") or (D["batch"]["replicas"] == 1 and D["batch"]["ann"].get("original-replicas") == "3")'
  [restore:hpa-restored]='H["search"]["min"] == 2 and H["search"]["max"] == 6 and set(H["search"]["ann"]) == {"last-action-time"} and D["search"]["replicas"] == 2 and D["search"]["ann"].get("original-replicas") == "3"'
  [restore:restored]='(D["search"]["replicas"] == 3 and D["search"]["ann"] == {}) or (D["batch"]["replicas"] == 3 and D["batch"]["ann"] == {})'
)
point_i=0
armed_n=""
chain_tick() {
  [[ -n $armed_n ]] || return 0
  local n=$armed_n point=${POINTS[point_i]}
  ! e2e_pid_alive "${op_pid[$n]}" || return 0
  grep -qF "pi0: crash point $point: exiting with 137" "${op_log[$n]}" ||
    fail "operator $n, armed at $point, exited without passing it"
  expect "operator $n died at $point: the cluster as that point leaves it" "${AT_POINT[$point]}"
  drop "$n"
  point_i=$((point_i + 1))
  if ((point_i < ${#POINTS[@]})); then
    launch "${op_id[$n]}" "PI0_CRASH_POINT=${POINTS[point_i]}"
    armed_n=$launched
  else
    launch "${op_id[$n]}"
    armed_n=""
  fi
}

# run_cycle KIND TICK: one cycle of load (straight or via), calling TICK between looks.
cycles=()
run_cycle() {
  local kind=$1 tick=$2 i deadline loads conds names
  case $kind in
    straight)
      loads=(0.95 0.3)
      conds=("$ALL_DOWN" "$ALL_BACK")
      names=("everything shut down" "everything restored")
      ;;
    via)
      loads=(0.7 0.95 0.7 0.3)
      conds=("$DEGRADED" "$ALL_DOWN" "$RAISED" "$ALL_BACK")
      names=("everything degraded" "everything shut down" "everything raised to degraded"
        "everything restored")
      ;;
  esac
  cycles+=("$kind")
  for i in "${!loads[@]}"; do
    set_load "${loads[i]}"
    deadline=$((SECONDS + 150))
    until holds "${conds[i]}"; do
      if ((SECONDS >= deadline)); then
        state explain "${VARS[@]}" "${conds[i]}" || true
        fail "cycle ${#cycles[@]} ($kind): not ${names[i]} 150 s after the load went to ${loads[i]}"
      fi
      "$tick"
      sleep 0.1
    done
    e2e_log "cycle ${#cycles[@]} ($kind), load ${loads[i]}: ${names[i]} (kills so far: $kills)"
  done
}

# ---------------------------------------------------------------------------------------------
e2e_log "1. cycles of load while the leader is killed at random"
launch pi0-e2e-1
until leading 1; do
  e2e_pid_alive "${op_pid[1]}" || fail "operator 1 exited"
  sleep 0.2
done
launch pi0-e2e-2
t_start=$SECONDS
run_cycle straight kill_tick
run_cycle via kill_tick
while ((kills < MIN_KILLS)); do run_cycle straight kill_tick; done
e2e_log "random kills: $kills in ${#cycles[@]} cycles (${cycles[*]}), $((SECONDS - t_start)) s"
expect "after the random kills: everything back" "$ALL_BACK"

e2e_log "2. one cycle with the leader dying at each crash point in turn"
leader_n=""
deadline=$((SECONDS + 30))
until find_leader; do
  ((SECONDS < deadline)) || fail "no replica leads 30 s after the random kills"
  sleep 0.2
done
kill -KILL "${op_pid[$leader_n]}"
while e2e_pid_alive "${op_pid[$leader_n]}"; do sleep 0.02; done
drop "$leader_n"
launch "${op_id[$leader_n]}" "PI0_CRASH_POINT=${POINTS[0]}"
armed_n=$launched
run_cycle via chain_tick
((point_i == ${#POINTS[@]})) ||
  fail "crash point ${POINTS[point_i]} was never reached: operator $armed_n, armed there, did the rest of the cycle"
e2e_log "ok: the leader died at each of the ${#POINTS[@]} crash points and the next one finished"

# ---------------------------------------------------------------------------------------------
e2e_log "3. the end state, and the history"
set_load 0.3
wait_for "the end state: everything as it was, nothing left of Pi0's changes" 60 \
  "$ALL_BACK" \
  'all(C[c].get("state") == "Active" and cond(C[c], "Ready").get("status") == "True" for c in ("checkout", "search", "recommendations", "batch"))' \
  'M["default"].get("level") == "normal" and M["default"]["progress"]["phase"] == "Idle"' \
  'not M["default"]["progress"].get("evaluations") and not M["default"]["progress"].get("cooldowns")' \
  '[c for c in M["default"]["channels"] if c.get("restoring")] == []'
sleep $((STEP + 1))
expect "still so a step interval later" "$ALL_BACK"
expect "no step failed, stalled or was rolled back" \
  'ev("ScaleFailed") == [] and ev("RestoreStalled") == [] and ev("StepRolledBack") == []'

# check_history STEP CYCLES...: the change log and the Events against the plan of the cycles run.
check_history() {
  /usr/bin/python3 "$source_dir/tests/operator/operator_kill_history.py" "$work/changes.jsonl" \
    "$work/events.json" "$@"
}
snapshot
check_history "$STEP" "${cycles[@]}" ||
  fail "the history shows a step repeated, skipped, out of order or too early (above)"
e2e_log "ok: every count and bound as planned, dependents first, one step per interval, no step twice"
e2e_log "PASS ($kills random kills, ${#POINTS[@]} exact ones, seed $SEED, $SECONDS s)"
