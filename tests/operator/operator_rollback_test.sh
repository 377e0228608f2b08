#!/usr/bin/env bash
# pi0-operator's rollback of a step that made things worse, and its stability trigger, end to
# end on the real control plane (tests/e2e): one stand-in Node with a pi0-agent on synthetic load
# (ℓ is the cpu load the test sets), the fake kubelet (pods ready 1 s after they start) and one
# operator replica, in namespace `shop`.
#
# Rollback. Channels batch (Deployment batch, 3, degraded to 1), cache (Deployment cache, 3,
# degraded to 1) and web (Deployment web, 3, dependsOn cache; in the matrix without cells, so
# that nothing but its dependency touches it); the ShutdownMatrix `default`: normal ≤ 0.6,
# elevated ≤ 0.8, critical; batch degraded at elevated, cache at critical; one step per 2 s;
# rollback {settleSeconds: 10, margin: 0.05, cooldownSeconds: 25}; no stability trigger.
#  b. ℓ = 0.7: batch is degraded and its step waits for its check (status.progress.evaluations);
#     nothing depends on it and nothing gets worse, so 10 s later the step holds: batch stays
#     at 1, no StepRolledBack, no evaluation left, RolledBack False.
#  a. ℓ = 0.95: cache is degraded; the moment the test sees it, it makes web's pods unready
#     (fake-kubelet.pi0.test/ready=false). This stands in for a real dependency failing: web
#     lost the cache it needs. 10 s after the step the operator undoes it: cache back to 3 with
#     no annotation left, Warning Events StepRolledBack on Channel cache and on the matrix
#     naming web's ready share, RollingBack on the Channel, condition RolledBack True naming
#     cache, status.progress.cooldowns holding cache for 25 s, and
#     pi0_operator_rollbacks_total{matrix="default"} 1. web is made ready again; for the rest of
#     the cool-down cache stays at 3 although ℓ = 0.95 still asks for its degrade; after it,
#     cache is degraded again, and this time (web ready) the step holds.
#
# Stability trigger. The Channels above are deleted, and a ShutdownMatrix `stability` with
# stabilityThreshold 0.9 (rows without cells: only the trigger acts; rollback off) watches db
# (critical, Deployment db, 2), flaky and steady (Deployments of 2), at ℓ = 0.3. SAO is the
# product of the active channels' reliabilities. A reliability moves towards the ready share
# with a time constant of 10 minutes (src/stability/operators.h updateReliability), far too slow
# for a test, but each container restart multiplies it by 0.95, so the test sets restart counts
# (fake-kubelet.pi0.test/restart) on one pod of a channel: n restarts give 0.95^n. What the
# minutes of the test add back is (1 − r)(1 − e^(−t/600)): under 0.01 for t ≤ 60 s.
#  c1. Bound by a critical channel: db 3 restarts (0.95³ = 0.857), flaky 1 (0.95): SAO =
#      0.857 · 0.95 = 0.815 < 0.9, and shutting everything non-critical down reaches only db's
#      0.857: the trigger shuts nothing down (flaky would raise SAO to 0.857, not to 0.9):
#      condition StabilityReachable False, reason BoundByCriticalChannels, naming shop/db; no
#      ShutDown Event, flaky and steady untouched.
#  c2. db is deleted: SAO = flaky's 0.95 ≥ 0.9, nothing to do. flaky 2 restarts more
#      (0.95 · 0.95² = 0.857 < 0.9): flaky, the least reliable, is shut down, with a ShutDown Event
#      saying stability; steady is not. Then for a minute: flaky stays at 0 (its reliability is
#      frozen while it is shut down, and the trigger judges SAO as if it were up) and its
#      ShutDown Events count 1, no restore: not restored and shut down by turns.
#
# Usage: operator_rollback_test.sh SOURCE_DIR PI0_OPERATOR_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: operator_rollback_test.sh SOURCE_DIR PI0_OPERATOR PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

NS=shop
STEP=2     # spec.stepIntervalSeconds
SETTLE=10  # spec.rollback.settleSeconds
COOLDOWN=25 # spec.rollback.cooldownSeconds
NODES=(node-a)
# shellcheck source=tests/operator/lib.sh
source "$source_dir/tests/operator/lib.sh"

e2e_log "set-up: CRDs, the Node, its agent, workloads, one operator"
install_crds
e2e_create_node node-a 8 16Gi
e2e_start_fake_kubelet --ready-delay 1
e2e_create_namespace "$NS"
start_agents
wait_agents_at 0.3

channel() { # channel NAME [SPEC_LINE...]: a Channel on Deployment NAME
  printf 'apiVersion: stability.pi0.io/v1alpha1\nkind: Channel\n'
  printf 'metadata: {name: %s, namespace: %s}\nspec:\n  targets: [{kind: Deployment, name: %s}]\n' \
    "$1" "$NS" "$1"
  local line
  for line in "${@:2}"; do printf '  %s\n' "$line"; done
  printf -- '---\n'
}
# pods NAME: the names of Deployment NAME's pods, sorted.
pods() { k get pods -n "$NS" -l "app=$1" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort; }
rollbacks() { metric 1 'pi0_operator_rollbacks_total{matrix="default"}'; }
replicas_of() { # replicas_of NAME: Deployment NAME's spec.replicas, read now
  e2e_api GET "/apis/apps/v1/namespaces/$NS/deployments/$1" 2>/dev/null |
    e2e_json 'print(d["spec"].get("replicas"))'
}

{
  deployment batch 3
  deployment cache 3
  deployment web 3
} | k apply -f - >/dev/null
{
  channel batch "degradedReplicas: 1"
  channel cache "degradedReplicas: 1"
  channel web "dependsOn: [{name: cache, namespace: $NS}]"
} | k apply -f - >/dev/null
wait_for "the workloads ready" 60 \
  'all(D[c]["replicas"] == 3 and D[c]["ready"] == 3 for c in ("batch", "cache", "web"))'
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
    - channel: {name: batch, namespace: $NS}
      cells: [{level: elevated, action: Degrade}]
    - channel: {name: cache, namespace: $NS}
      cells: [{level: critical, action: Degrade}]
    - channel: {name: web, namespace: $NS}
  loadSignal: {source: Fleet, resources: [cpu, memory]}
  stabilityThreshold: 0
  hysteresis: {margin: 0.05, dwellSeconds: 4}
  stepIntervalSeconds: $STEP
  rollback: {settleSeconds: $SETTLE, margin: 0.05, cooldownSeconds: $COOLDOWN}
  mode: Enforce
YAML
start_operator 1
wait_for "matrix default at level normal, its rollback series at 0" 30 \
  'M["default"].get("level") == "normal" and cond(M["default"], "RolledBack").get("status") == "False"' \
  'all(C.get(c, {}).get("state") == "Active" for c in ("batch", "cache", "web"))'
[[ $(rollbacks) == 0 ]] || fail "pi0_operator_rollbacks_total{matrix=\"default\"} is $(rollbacks) before any step"
leading 1 || fail "operator 1 does not lead"

# ---------------------------------------------------------------------------------------------
e2e_log "b. a degrade that harms nobody is kept"
set_load 0.7
wait_for "batch degraded, its step waiting for its check" 30 'D["batch"]["replicas"] == 1' \
  '[e["channel"]["name"] for e in M["default"]["progress"].get("evaluations", [])] == ["batch"]' \
  'M["default"]["progress"]["evaluations"][0]["dependents"] == []'
sleep $((SETTLE + 3))
expect "batch's step held after its settle time" \
  'D["batch"]["replicas"] == 1 and D["batch"]["gen"] == 2 and D["batch"]["ann"].get("original-replicas") == "3"' \
  'C["batch"]["state"] == "Degraded"' \
  'ev("StepRolledBack") == [] and ev("RollingBack") == []' \
  'not M["default"]["progress"].get("evaluations") and not M["default"]["progress"].get("cooldowns")' \
  'cond(M["default"], "RolledBack").get("status") == "False"' \
  'D["cache"]["replicas"] == 3 and D["cache"]["gen"] == 1 and D["web"]["gen"] == 1'
[[ $(rollbacks) == 0 ]] || fail "pi0_operator_rollbacks_total{matrix=\"default\"} is $(rollbacks) after a step that held"

# ---------------------------------------------------------------------------------------------
e2e_log "a. a degrade that hurts its dependent is rolled back and held for the cool-down"
set_load 0.95
deadline=$((SECONDS + 30))
until [[ $(replicas_of cache) == 1 ]]; do
  ((SECONDS < deadline)) || fail "cache was not degraded within 30 s at ℓ = 0.95"
  sleep 0.1
done
# A stand-in for a real dependency failing: web's pods go unready once cache is degraded.
k annotate pods -n "$NS" -l app=web fake-kubelet.pi0.test/ready=false --overwrite >/dev/null
e2e_log "cache degraded: web's pods made unready"
wait_for "web unready; cache's step under evaluation with web ready when it was taken" 10 \
  'D["web"]["ready"] == 0' \
  '[e for e in M["default"]["progress"].get("evaluations", []) if e["channel"]["name"] == "cache"][0]["dependents"] == [{"channel": "shop/web", "readyShare": 1, "restarts": 0}]'
t_step=$(value 'T(D["cache"]["ann"]["last-action-time"])')
setvar t_step "$t_step"
wait_for "cache's step rolled back" $((SETTLE + 15)) 'len(ev("StepRolledBack", "Channel", "cache")) == 1'
t_seen=$(now)
setvar t_seen "$t_seen"
wait_for "cache restored to 3, its annotations gone" 15 \
  'D["cache"]["replicas"] == 3 and D["cache"]["ann"] == {}'
expect "the rollback: Events, condition, cool-down, status" \
  'ev("StepRolledBack", "Channel", "cache")[0]["type"] == "Warning"' \
  '"shop/web" in ev("StepRolledBack", "Channel", "cache")[0]["message"] and "ready share" in ev("StepRolledBack", "Channel", "cache")[0]["message"]' \
  'len(ev("StepRolledBack", "ShutdownMatrix", "default")) == 1 and ev("StepRolledBack", "ShutdownMatrix", "default")[0]["type"] == "Warning"' \
  '"shop/cache" in ev("StepRolledBack", "ShutdownMatrix", "default")[0]["message"]' \
  'ev("StepRolledBack", "Channel", "cache")[0]["t"] >= V["t_step"] + '"$SETTLE"' - 1' \
  'len(ev("RollingBack", "Channel", "cache")) == 1' \
  'cond(M["default"], "RolledBack").get("status") == "True" and "shop/cache" in cond(M["default"], "RolledBack")["message"]' \
  '[c["channel"]["name"] for c in M["default"]["progress"].get("cooldowns", [])] == ["cache"]' \
  'abs(T(M["default"]["progress"]["cooldowns"][0]["until"]) - ev("StepRolledBack", "Channel", "cache")[0]["t"] - '"$COOLDOWN"') < 3' \
  'D["cache"]["gen"] == 3' \
  'ev("StepRolledBack", "Channel", "batch") == [] and D["batch"]["replicas"] == 1' \
  'M["default"]["level"] == "critical"'
[[ $(rollbacks) == 1 ]] || fail "pi0_operator_rollbacks_total{matrix=\"default\"} is $(rollbacks), want 1"
e2e_log "ok: pi0_operator_rollbacks_total{matrix=\"default\"} = 1"
k annotate pods -n "$NS" -l app=web fake-kubelet.pi0.test/ready- >/dev/null
wait_for "web ready again" 15 'D["web"]["ready"] == 3'
until_t=$(value 'T(M["default"]["progress"]["cooldowns"][0]["until"])')
setvar until_t "$until_t"
e2e_log "cache is held until $(date -d "@${until_t%.*}" +%H:%M:%S); ℓ = 0.95 asks for its degrade"
# Watched closely: any degrade of cache before the cool-down ends fails.
while /usr/bin/python3 -c "import sys, time; sys.exit(0 if time.time() < $until_t - 1 else 1)"; do
  [[ $(replicas_of cache) == 3 ]] || fail "cache was degraded again during its cool-down"
  sleep 0.3
done
expect "cache held through the cool-down, and the status says so" \
  'D["cache"]["replicas"] == 3 and D["cache"]["gen"] == 3' \
  '"shop/cache is held after a rollback" in M["default"]["progress"]["message"]' \
  'n("Degraded", "Channel", "cache") == 1'
wait_for "cache degraded again once the cool-down is over" $((STEP + 10)) 'D["cache"]["replicas"] == 1'
expect "the second degrade came after the cool-down" \
  'T(D["cache"]["ann"]["last-action-time"]) >= V["until_t"] - 0.5'
sleep $((SETTLE + 3))
expect "the second degrade held (web stayed ready): one rollback in all" \
  'D["cache"]["replicas"] == 1 and C["cache"]["state"] == "Degraded"' \
  'n("StepRolledBack", "Channel", "cache") == 1 and n("StepRolledBack", "ShutdownMatrix", "default") == 1' \
  'not M["default"]["progress"].get("cooldowns") and cond(M["default"], "RolledBack").get("status") == "False"' \
  'not M["default"]["progress"].get("evaluations")'
[[ $(rollbacks) == 1 ]] || fail "pi0_operator_rollbacks_total{matrix=\"default\"} is $(rollbacks), want still 1"

e2e_log "back to ℓ = 0.3: everything restored"
set_load 0.3
wait_for "batch and cache restored" 40 \
  'all(D[c]["replicas"] == 3 and D[c]["ready"] == 3 and D[c]["ann"] == {} for c in ("batch", "cache", "web"))' \
  'M["default"]["level"] == "normal" and not M["default"]["progress"].get("restores")'

# ---------------------------------------------------------------------------------------------
e2e_log "c. the stability trigger"
k delete shutdownmatrix default --wait=true >/dev/null
k delete channel -n "$NS" batch cache web --wait=true >/dev/null
k delete deployment -n "$NS" batch cache web --wait=false >/dev/null
{
  deployment db 2
  deployment flaky 2
  deployment steady 2
} | k apply -f - >/dev/null
{
  channel db "critical: true"
  channel flaky "degradedReplicas: 1"
  channel steady "degradedReplicas: 1"
} | k apply -f - >/dev/null
wait_for "db, flaky and steady ready and observed" 60 \
  'all(D[c]["replicas"] == 2 and D[c]["ready"] == 2 for c in ("db", "flaky", "steady"))' \
  'all(C.get(c, {}).get("terms", {}).get("reliability", 0) > 0.99 for c in ("db", "flaky", "steady"))'
stability_matrix() { # stability_matrix ROW...: the matrix `stability` with these rows
  local row
  {
    cat <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: stability}
spec:
  levels:
    - {name: normal, upperBound: 0.6}
    - {name: elevated, upperBound: 0.8}
    - {name: critical}
  loadSignal: {source: Fleet, resources: [cpu, memory]}
  stabilityThreshold: 0.9
  hysteresis: {margin: 0.05, dwellSeconds: 4}
  stepIntervalSeconds: $STEP
  rollback: {settleSeconds: 0}
  mode: Enforce
  rows:
YAML
    for row in "$@"; do printf '    - %s\n' "$row"; done
  } | k apply -f - >/dev/null
}
stability_matrix "{channel: {name: db, namespace: $NS}, critical: true}" \
  "{channel: {name: flaky, namespace: $NS}}" "{channel: {name: steady, namespace: $NS}}"
wait_for "matrix stability: SAO 1, the threshold reachable" 30 \
  'M.get("stability", {}).get("level") == "normal" and M["stability"].get("stability", 0) > 0.99' \
  'cond(M["stability"], "StabilityReachable").get("status") == "True"'
UNTOUCHED='D["flaky"]["replicas"] == 2 and D["flaky"]["gen"] == 1 and D["steady"]["replicas"] == 2 and D["steady"]["gen"] == 1'

e2e_log "c1. a critical channel bounds SAO below the threshold: nothing is shut down"
restart() { # restart NAME N: the first pod of Deployment NAME has restarted N times in all
  local pod
  pod=$(pods "$1" | head -n 1)
  k annotate pod -n "$NS" "$pod" "fake-kubelet.pi0.test/restart=$2" --overwrite >/dev/null
  e2e_log "pod $pod ($1): $2 restarts"
}
restart db 3
restart flaky 1
wait_for "db at 0.95³, flaky at 0.95; StabilityReachable False, bound by db" 20 \
  'abs(C["db"]["terms"]["reliability"] - 0.857) < 0.01 and abs(C["flaky"]["terms"]["reliability"] - 0.95) < 0.01' \
  'abs(M["stability"]["stability"] - 0.815) < 0.015' \
  'cond(M["stability"], "StabilityReachable").get("status") == "False"' \
  'cond(M["stability"], "StabilityReachable").get("reason") == "BoundByCriticalChannels"' \
  '"shop/db" in cond(M["stability"], "StabilityReachable")["message"]'
sleep $((3 * STEP + 2))
expect "nothing shut down for stability" "$UNTOUCHED" 'D["db"]["replicas"] == 2 and D["db"]["gen"] == 1' \
  '[e for e in E if e["name"] in ("db", "flaky", "steady")] == []' \
  'cond(M["stability"], "StabilityReachable").get("reason") == "BoundByCriticalChannels"' \
  'all(c["state"] == "Active" and c["target"] == "Active" for c in M["stability"]["channels"])'

e2e_log "c2. the least reliable channel is shut down, once"
stability_matrix "{channel: {name: flaky, namespace: $NS}}" "{channel: {name: steady, namespace: $NS}}"
k delete channel -n "$NS" db --wait=true >/dev/null
k delete deployment -n "$NS" db --wait=false >/dev/null
wait_for "without db, SAO is flaky's 0.95: reachable, nothing to do" 20 \
  'cond(M["stability"], "Valid").get("status") == "True" and M["stability"]["observedGeneration"] == MG["stability"]' \
  'abs(M["stability"]["stability"] - 0.95) < 0.01' \
  'cond(M["stability"], "StabilityReachable").get("status") == "True"'
sleep $((STEP + 1))
expect "nothing shut down at SAO 0.95" "$UNTOUCHED" 'ev("ShutDown") == []'
restart flaky 3
wait_for "flaky shut down for stability" 20 'D["flaky"]["replicas"] == 0'
t_down=$(now)
wait_for "the stability shutdown: flaky alone, an Event saying why" 10 \
  'abs(C["flaky"]["terms"]["reliability"] - 0.857) < 0.01' \
  'n("ShutDown", "Channel", "flaky") == 1 and "stability" in ev("ShutDown", "Channel", "flaky")[0]["message"]' \
  '"0.900" in ev("ShutDown", "Channel", "flaky")[0]["message"]' \
  'D["flaky"]["ann"].get("original-replicas") == "2"' \
  'D["steady"]["replicas"] == 2 and D["steady"]["gen"] == 1 and ev("ShutDown", "Channel", "steady") == []' \
  'cond(M["stability"], "StabilityReachable").get("status") == "True"'
e2e_log "for a minute: flaky stays down"
while /usr/bin/python3 -c "import sys, time; sys.exit(0 if time.time() < $t_down + 60 else 1)"; do
  [[ $(replicas_of flaky) == 0 ]] || fail "flaky came back after its stability shutdown"
  sleep 1
done
expect "a minute later: flaky shut down once, never restored; steady untouched" \
  'D["flaky"]["replicas"] == 0 and C["flaky"]["state"] == "Inactive"' \
  'n("ShutDown", "Channel", "flaky") == 1' \
  'ev("Restoring", "Channel", "flaky") == [] and ev("ScaledUp", "Deployment", "flaky") == []' \
  'D["steady"]["replicas"] == 2 and D["steady"]["gen"] == 1 and [e for e in E if e["name"] == "steady"] == []' \
  'abs(C["flaky"]["terms"]["reliability"] - 0.857) < 0.01'
e2e_log "PASS ($SECONDS s)"
