#!/usr/bin/env bash
# End-to-end test of pi0-operator's shutdown and recovery on the real control plane (tests/e2e):
# three stand-in Nodes, each with a pi0-agent reading a synthetic profile (the cluster load ℓ
# is what the profiles say), the fake kubelet, and four channels in namespace `shop`:
#
#   checkout         critical                         Deployment checkout, 2 replicas
#   search           degraded to 1                    Deployment search, 3, behind an HPA 2..6
#   recommendations  dependsOn search, degraded to 1  Deployment recommendations, 4
#   batch            degraded to 1                    Deployment batch, 3
#
# and the ShutdownMatrix `default`: normal ≤ 0.6, elevated ≤ 0.8, critical; batch then search
# degraded at elevated; batch, search, recommendations shut down at critical (in that cell
# order, but recommendations depends on search so it must go first); one step per 3 s;
# recovery after 6 s under the lower bound minus 0.05. It checks, in order:
#
#  1. ℓ = 0.3: nothing is touched. ℓ = 0.7 (a step: the agents' forecast follows it without
#     overshooting into critical): batch 3→1, then a step interval later search 3→1 (its HPA
#     capped at 1), with the originals in annotations, Degraded and ScaledDown Events on the
#     Channels and Deployments, level elevated; nothing else moves. ℓ = 0.95: batch 1→0 ...
#  2. ... and the leader is killed with SIGKILL right after that step and started again under a
#     new identity; a standby (running since the start) or the restarted replica takes the
#     Lease and finishes: recommendations 4→0 before search 1→0. Every Deployment's
#     metadata.generation is exactly the number of scale writes the plan implies (no step
#     repeated or skipped), checkout is never touched, the annotations still hold the
#     originals.
#  3. ℓ = 0.3: no restore before the dwell; then everything comes back to exactly its original
#     replicas (HPA 2..6), search ready before recommendations is restored, annotations gone,
#     Restoring/Restored/ScaledUp Events, level normal.
#  4. Leadership: one replica at a time has pi0_operator_leader 1 (the Lease's holder), and
#     every action Event names as reportingInstance the replica that led at that time.
#     DryRun: with mode DryRun and ℓ = 0.95 the matrix publishes level critical and a plan, and
#     no workload, annotation or Event changes.
#
# Usage: operator_e2e_test.sh SOURCE_DIR PI0_OPERATOR_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: operator_e2e_test.sh SOURCE_DIR PI0_OPERATOR PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

NS=shop
STEP=3  # spec.stepIntervalSeconds
DWELL=6 # spec.hysteresis.dwellSeconds
NODES=(node-a node-b node-c)

# shellcheck source=tests/operator/lib.sh
source "$source_dir/tests/operator/lib.sh"

# ---------------------------------------------------------------------------------------------
# Agents (one per Node, each reading its own synthetic profile) and operators: lib.sh's. The
# agents' projected peak is a forecast: it follows a step up at once and a step down within a
# few samples, without the overshoot of the first definition (μ + 2σ read 0.3 -> 0.7 as ~0.95
# for a window). A ramp is not a gentler way up any more: the forecast extrapolates its trend to
# the horizon (a ramp of 0.05/s reads 0.3 above the load), so the load moves in steps here
# (set_load).

# one_leader N...: among operators N..., exactly one says pi0_operator_leader 1, and the Lease
# names it; sets `leader`.
one_leader() {
  local holder n count=0 value
  holder=$(lease_holder) || return 1
  for n in "$@"; do
    value=$(metric "$n" pi0_operator_leader) || return 1
    if [[ $value == 1 ]]; then
      count=$((count + 1))
      leader=$n
      [[ ${op_id[$n]} == "$holder" ]] || return 1
    fi
  done
  ((count == 1))
}
wait_one_leader() {
  local deadline=$((SECONDS + $1))
  shift
  until one_leader "$@"; do
    ((SECONDS < deadline)) || fail "not exactly one leader among operators $* (Lease: $(lease_holder))"
    sleep 0.3
  done
  e2e_log "ok: exactly one leader among operators $*: operator $leader (${op_id[$leader]})"
}
metric_is() { # metric_is N SERIES PYTHON_CONDITION_ON_v
  local v
  v=$(metric "$1" "$2") || fail "operator $1: no series $2 in /metrics"
  /usr/bin/python3 -c "v = float('$v'); import sys; sys.exit(0 if ($3) else 1)" ||
    fail "operator $1: $2 is $v, want $3"
  e2e_log "ok: operator $1: $2 = $v ($3)"
}

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: CRDs, Nodes, agents, workloads"
install_crds

for node in "${NODES[@]}"; do e2e_create_node "$node" 4 8Gi; done
e2e_start_fake_kubelet --ready-delay 2
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
metadata:
  name: search
  namespace: $NS
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: search}
  minReplicas: 2
  maxReplicas: 6
  targetCPUUtilizationPercentage: 80
YAML
} | k apply -f - >/dev/null
ALL_READY='D["checkout"]["ready"] == 2 and D["search"]["ready"] == 3 and D["recommendations"]["ready"] == 4 and D["batch"]["ready"] == 3'
wait_for "the workloads to be ready" 90 "$ALL_READY"

k apply -f - >/dev/null <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: checkout, namespace: $NS}
spec:
  critical: true
  targets:
    - {kind: Deployment, name: checkout}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: search, namespace: $NS}
spec:
  critical: false
  targets:
    - {kind: Deployment, name: search}
  degradedReplicas: 1
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: recommendations, namespace: $NS}
spec:
  critical: false
  targets:
    - {kind: Deployment, name: recommendations}
  dependsOn:
    - {name: search, namespace: $NS}
  degradedReplicas: 1
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: batch, namespace: $NS}
spec:
  critical: false
  targets:
    - {kind: Deployment, name: batch}
  degradedReplicas: 1
YAML
# stabilityThreshold 0: no SAO shutdowns, so that only the load drives this test.
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
      critical: false
      cells:
        - {level: elevated, action: Degrade, order: 0}
        - {level: critical, action: Shutdown, order: 0}
    - channel: {name: search, namespace: $NS}
      critical: false
      cells:
        - {level: elevated, action: Degrade, order: 1}
        - {level: critical, action: Shutdown, order: 1}
    - channel: {name: recommendations, namespace: $NS}
      critical: false
      cells:
        - {level: critical, action: Shutdown, order: 2}
  loadSignal: {source: Fleet, resources: [cpu, memory, gpu]}
  stabilityThreshold: 0
  hysteresis: {margin: 0.05, dwellSeconds: $DWELL}
  stepIntervalSeconds: $STEP
  mode: Enforce
YAML
UNTOUCHED='all(d["gen"] == 1 and d["ann"] == {} for d in D.values()) and H["search"]["min"] == 2 and H["search"]["max"] == 6 and H["search"]["ann"] == {}'
expect "every workload at generation 1, unannotated, before the operator starts" "$ALL_READY" "$UNTOUCHED"

# ---------------------------------------------------------------------------------------------
e2e_log "1. the leader acts on the load; a standby runs beside it"
# The replicas keep one truth ledger, as on one node's volume: every step taken goes into it.
operator_extra_args=(--ledger-path "$work/ledger.db")
start_operator 1
until leading 1; do
  e2e_pid_alive "${op_pid[1]}" || fail "operator 1 exited"
  sleep 0.2
done
start_operator 2
wait_one_leader 30 1 2
[[ $leader == 1 ]] || fail "the standby (operator 2) leads although operator 1 held the Lease"

e2e_log "ℓ = 0.3: nothing changes"
wait_for "matrix default at level normal with load 0.3" 30 \
  'M["default"].get("level") == "normal" and abs(M["default"].get("load", -1) - 0.3) < 0.02' \
  'M["default"].get("levelIndex") == 0' \
  'abs(M["default"].get("loadByResource", {}).get("cpu", -1) - 0.3) < 0.02' \
  'abs(M["default"].get("loadByResource", {}).get("memory", -1) - 0.2) < 0.02' \
  'cond(M["default"], "Valid").get("status") == "True"' \
  'cond(M["default"], "LoadMeasured").get("status") == "True"' \
  'cond(M["default"], "AgentsHealthy").get("status") == "True"'
wait_for "every channel Active" 30 \
  'all(C.get(c, {}).get("state") == "Active" for c in ["checkout", "search", "recommendations", "batch"])'
sleep $((2 * STEP + 1))
expect "nothing touched at ℓ = 0.3" "$UNTOUCHED" '[e for e in E if e["reason"] in ("ScaledDown", "Degraded", "ShutDown")] == []'
metric_is 1 'pi0_operator_load{matrix="default"}' 'abs(v - 0.3) < 0.02'
metric_is 1 'pi0_operator_level{matrix="default"}' 'v == 0'

e2e_log "ℓ = 0.7 (elevated): batch, then search, degraded"
set_load 0.7
wait_for "batch degraded to 1" 40 'D["batch"]["replicas"] == 1'
wait_for "search degraded to 1" 20 'D["search"]["replicas"] == 1'
expect "the degrade steps: annotations, HPA capped, at least ~one step interval apart" \
  'D["batch"]["ann"].get("original-replicas") == "3" and D["batch"]["ann"].get("channel") == "shop/batch"' \
  'D["search"]["ann"].get("original-replicas") == "3" and D["search"]["ann"].get("channel") == "shop/search"' \
  'H["search"]["max"] == 1 and H["search"]["min"] == 1' \
  'H["search"]["ann"].get("original-min-replicas") == "2" and H["search"]["ann"].get("original-max-replicas") == "6"' \
  'H["search"]["ann"].get("channel") == "shop/search"' \
  'T(D["search"]["ann"]["last-action-time"]) - T(D["batch"]["ann"]["last-action-time"]) >= 2.9' \
  'D["recommendations"]["replicas"] == 4 and D["checkout"]["replicas"] == 2'
sleep $((2 * STEP + 1))
# search's generation may be one higher: its HPA controller can scale it down to the cap between
# Pi0's capping the HPA and scaling the Deployment (Pi0 records the original count first).
expect "after the elevated steps: each degraded exactly once, nothing else touched, Events, status" \
  'D["batch"]["gen"] == 2 and D["search"]["gen"] in (2, 3)' \
  'D["recommendations"]["gen"] == 1 and D["recommendations"]["ann"] == {}' \
  'D["checkout"]["gen"] == 1 and D["checkout"]["ann"] == {}' \
  'M["default"].get("level") == "elevated" and M["default"].get("levelIndex") == 1' \
  'C["batch"].get("state") == "Degraded" and C["search"].get("state") == "Degraded"' \
  'C["batch"].get("level") == "elevated" and C["batch"].get("replicas", {}).get("desired") == 1' \
  'C["recommendations"].get("state") == "Active" and C["checkout"].get("state") == "Active"' \
  'n("Degraded", "Channel", "batch") == 1 and n("Degraded", "Channel", "search") == 1' \
  'all(e["type"] == "Normal" and ("elevated" in e["message"] or "0.7" in e["message"]) for e in ev("Degraded"))' \
  'n("ScaledDown", "Deployment", "batch") == 1 and n("ScaledDown", "Deployment", "search") == 1' \
  'ev("ScaledDown", "Deployment", "recommendations") == [] and ev("ScaledDown", "Deployment", "checkout") == []' \
  'ev("Degraded", "Channel", "search")[0]["t"] - ev("Degraded", "Channel", "batch")[0]["t"] >= 2' \
  'len(ev("LevelChanged", "ShutdownMatrix", "default")) >= 1'
# The buffer at an elevated level: checkout's baseline is what its two pods request; a new pod
# of the channel is counted as used against its allocation, and no longer once it is gone.
expect "checkout's buffer: baseline its pods' requests, nothing used yet" \
  'C["checkout"]["buffer"]["baseline"] == {"cpu": "20m", "memory": "32Mi"}' \
  'C["checkout"]["buffer"]["used"] == {"cpu": "0", "memory": "0"}' \
  '"allocated" in C["checkout"]["buffer"]'
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: checkout-extra, namespace: $NS, labels: {app: extra, stability.pi0.io/channel: checkout}}
spec:
  containers:
    - {name: main, image: placeholder:1, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
wait_for "the new checkout pod counted as used" 30 \
  'C["checkout"]["buffer"]["used"] == {"cpu": "100m", "memory": "64Mi"}' \
  'C["checkout"]["buffer"]["baseline"] == {"cpu": "20m", "memory": "32Mi"}'
k delete pod -n "$NS" checkout-extra --wait=false >/dev/null
wait_for "the used buffer back to zero" 30 'C["checkout"]["buffer"]["used"] == {"cpu": "0", "memory": "0"}'
metric_is 1 'pi0_operator_actions_total{action="degrade",result="ok"}' 'v == 2'
metric_is 1 'pi0_operator_level{matrix="default"}' 'v == 1'
metric_is 2 'pi0_operator_actions_total{action="degrade",result="ok"}' 'v == 0'

# ---------------------------------------------------------------------------------------------
e2e_log "ℓ = 0.95 (critical): batch shut down, then the leader is killed"
set_load 0.95
batch_replicas() {
  e2e_api GET "/apis/apps/v1/namespaces/$NS/deployments/batch" 2>/dev/null |
    e2e_json 'print(d["spec"].get("replicas"))'
}
deadline=$((SECONDS + 30))
until [[ $(batch_replicas) == 0 ]]; do
  ((SECONDS < deadline)) || fail "batch was not shut down within 30 s at ℓ = 0.95"
  sleep 0.1
done
kill -KILL "${op_pid[1]}"
t_kill=$(now)
e2e_log "batch at 0: killed operator 1 (the leader) with SIGKILL"
setvar t_kill "$t_kill"
expect "the kill came before the next step" \
  'D["recommendations"]["replicas"] == 4 and D["search"]["replicas"] == 1'

e2e_log "2. restart: a new replica or the standby takes over and finishes the plan"
start_operator 3
deadline=$((SECONDS + 45))
new_leader=""
until [[ -n $new_leader ]]; do
  for n in 2 3; do leading "$n" && new_leader=$n; done
  ((SECONDS < deadline)) || fail "no replica took over within 45 s of the leader's death"
  sleep 0.2
done
t_takeover=$(now)
e2e_log "operator $new_leader (${op_id[$new_leader]}) leads after $(/usr/bin/python3 -c "print(round($t_takeover - $t_kill, 1))") s"
setvar new "${op_id[$new_leader]}"
wait_one_leader 15 2 3
[[ $leader == "$new_leader" ]] || fail "operator $leader says it leads, but operator $new_leader logged leading"

# Recommendations depends on search: it goes first although its cell order is higher.
wait_for "recommendations shut down" 30 'D["recommendations"]["replicas"] == 0'
expect "search still up when recommendations went down" 'D["search"]["replicas"] == 1'
wait_for "search shut down" 20 'D["search"]["replicas"] == 0'
sleep $((2 * STEP + 1))
# Events go out from a background thread: the SIGKILL may come before operator 1 sent those of
# batch's shutdown (and nobody sends them later), so they count 0 or 1; the generations prove
# that the step itself was taken exactly once.
expect "after the critical steps: each step exactly once, originals kept, checkout untouched" \
  'D["batch"]["replicas"] == 0 and D["batch"]["gen"] == 3 and D["batch"]["ann"].get("original-replicas") == "3"' \
  'D["search"]["replicas"] == 0 and D["search"]["gen"] in (3, 4) and D["search"]["ann"].get("original-replicas") == "3"' \
  'D["recommendations"]["replicas"] == 0 and D["recommendations"]["gen"] == 2' \
  'D["recommendations"]["ann"].get("original-replicas") == "4" and D["recommendations"]["ann"].get("channel") == "shop/recommendations"' \
  'D["checkout"]["replicas"] == 2 and D["checkout"]["gen"] == 1 and D["checkout"]["ann"] == {}' \
  'H["search"]["ann"].get("original-min-replicas") == "2" and H["search"]["ann"].get("original-max-replicas") == "6"' \
  'T(D["search"]["ann"]["last-action-time"]) - T(D["recommendations"]["ann"]["last-action-time"]) >= 2.9' \
  'T(D["recommendations"]["ann"]["last-action-time"]) > V["t_kill"]' \
  'M["default"].get("level") == "critical" and M["default"].get("levelIndex") == 2' \
  'all(C[c].get("state") == "Inactive" for c in ["batch", "search", "recommendations"])' \
  'C["checkout"].get("state") == "Active"' \
  'n("ShutDown", "Channel", "batch") <= 1 and n("ShutDown", "Channel", "recommendations") == 1 and n("ShutDown", "Channel", "search") == 1' \
  'all(e["type"] == "Normal" and ("critical" in e["message"] or "0.95" in e["message"]) for e in ev("ShutDown"))' \
  'n("LevelChanged", "ShutdownMatrix", "default") >= 2 and all(e["type"] == "Normal" for e in ev("LevelChanged"))' \
  'ev("ShutDown", "Channel", "recommendations")[0]["t"] <= ev("ShutDown", "Channel", "search")[0]["t"]' \
  'n("ScaledDown", "Deployment", "batch") in (1, 2) and n("ScaledDown", "Deployment", "search") == 2 and n("ScaledDown", "Deployment", "recommendations") == 1' \
  '[e for e in E if e["name"] == "checkout"] == []'
metric_is "$new_leader" 'pi0_operator_actions_total{action="shutdown",result="ok"}' 'v == 2'

# ---------------------------------------------------------------------------------------------
e2e_log "3. ℓ = 0.3: recovery after the dwell, search before recommendations"
set_load 0.3
wait_agents_at 0.3
t_calm=$(now)
setvar t_calm "$t_calm"
# Watch closely: when recommendations starts coming back, search must be back and ready.
deadline=$((SECONDS + 90))
until holds 'D["recommendations"]["replicas"] > 0'; do
  ((SECONDS < deadline)) || fail "recommendations was not restored within 90 s"
  sleep 0.2
done
expect "search restored and ready before recommendations was restored" \
  'D["search"]["replicas"] == 3 and D["search"]["ready"] == 3'
wait_for "everything back at its original replicas, ready" 90 \
  "$ALL_READY" 'D["checkout"]["replicas"] == 2 and D["search"]["replicas"] == 3' \
  'D["recommendations"]["replicas"] == 4 and D["batch"]["replicas"] == 3' \
  'H["search"]["min"] == 2 and H["search"]["max"] == 6' \
  'all(C.get(c, {}).get("state") == "Active" for c in ["checkout", "search", "recommendations", "batch"])' \
  'len(ev("Restored", "Channel")) >= 3'
sleep $((STEP + 1))
expect "after recovery: one restore write each, annotations gone, Events in dependency order" \
  'D["batch"]["gen"] == 4 and D["search"]["gen"] in (4, 5) and D["recommendations"]["gen"] == 3 and D["checkout"]["gen"] == 1' \
  'all(d["ann"] == {} for d in D.values()) and H["search"]["ann"] == {}' \
  'H["search"]["min"] == 2 and H["search"]["max"] == 6' \
  'all(n("Restored", "Channel", c) == 1 for c in ["batch", "search", "recommendations"])' \
  'all(e["type"] == "Normal" for e in ev("Restored"))' \
  'all(n("ScaledUp", "Deployment", c) == 1 for c in ["batch", "search", "recommendations"])' \
  'ev("ScaledUp", "Deployment", "checkout") == [] and ev("Restored", "Channel", "checkout") == []' \
  'len(ev("Restoring", "Channel", "recommendations")) >= 1' \
  'ev("Restored", "Channel", "search")[0]["t"] <= ev("Restoring", "Channel", "recommendations")[0]["t"]' \
  'ev("Restored", "Channel", "search")[0]["t"] <= ev("ScaledUp", "Deployment", "recommendations")[0]["t"]' \
  'all(ev("ScaledUp", "Deployment", c)[0]["t"] <= ev("Restored", "Channel", c)[0]["t"] for c in ["batch", "search", "recommendations"])' \
  'min(e["t"] for e in ev("ScaledUp") + ev("Restoring")) >= V["t_calm"] + '"$DWELL"' - 2.5' \
  'ev("RestoreStalled") == []'
wait_for "matrix default back at level normal" 30 \
  'M["default"].get("level") == "normal" and abs(M["default"].get("load", -1) - 0.3) < 0.02'
metric_is "$new_leader" 'pi0_operator_actions_total{action="restore",result="ok"}' 'v >= 3'

# ---------------------------------------------------------------------------------------------
e2e_log "4. leadership: one leader at a time, and the Events name the leader of their time"
wait_one_leader 10 2 3
expect "every action Event was reported by the replica that led then" \
  'all(e["component"] == "pi0-operator" for e in E)' \
  'all(e["instance"] == ("pi0-e2e-1" if e["t"] <= V["t_kill"] + 1 else V["new"]) for e in E if e["reason"] in ("ScaledDown", "ScaledUp", "Degraded", "ShutDown", "Restoring", "Restored"))' \
  'any(e["instance"] == "pi0-e2e-1" for e in ev("ScaledDown")) and any(e["instance"] == V["new"] for e in ev("ScaledDown"))'

e2e_log "DryRun: a plan and a level, and nothing touched"
k patch shutdownmatrix default --type=merge -p '{"spec":{"mode":"DryRun"}}' >/dev/null
snapshot
setvar scaled_down "$(e2e_json 'print(sum((e.get("count") or 1) for e in d["items"] if e.get("reason") == "ScaledDown"))' <"$work/events.json")"
actions_before=$(metric "$new_leader" 'pi0_operator_actions_total{action="degrade",result="ok"}')
set_load 0.95
wait_for "the DryRun matrix at level critical with a plan" 30 \
  'M["default"].get("level") == "critical"' \
  'len(M["default"].get("plan") or []) > 0' \
  'all(p.get("channel", {}).get("name") in ("batch", "search", "recommendations") for p in M["default"]["plan"])' \
  'all(p.get("action") in ("Degrade", "Shutdown") for p in M["default"]["plan"])'
e2e_log "the DryRun plan: $(value 'M["default"]["plan"]')"
sleep $((3 * STEP + 1))
expect "DryRun touched nothing" \
  'D["batch"]["gen"] == 4 and D["search"]["gen"] in (4, 5) and D["recommendations"]["gen"] == 3 and D["checkout"]["gen"] == 1' \
  "$ALL_READY" 'all(d["ann"] == {} for d in D.values()) and H["search"]["ann"] == {}' \
  'H["search"]["min"] == 2 and H["search"]["max"] == 6' \
  'n("ScaledDown") == V["scaled_down"]' \
  'len(M["default"].get("plan") or []) > 0 and M["default"].get("level") == "critical"'
metric_is "$new_leader" 'pi0_operator_actions_total{action="degrade",result="ok"}' "v == $actions_before"

e2e_log "the truth ledger: every step taken, by both leaders, with the load and level of its time"
ledger_check=$(/usr/bin/python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT action, channel, level, load FROM actions ORDER BY at_ms").fetchall()
problems = []
kinds = {a for a, _, _, _ in rows}
for want in ("degrade", "shutdown", "restore"):
    if want not in kinds: problems.append("no %s" % want)
for a, channel, level, load in rows:
    if channel.split("/")[-1] not in ("batch", "search", "recommendations"):
        problems.append("a step on %s" % channel)
    if a in ("degrade", "shutdown") and (level not in ("elevated", "critical") or load < 0.6):
        problems.append("%s of %s at level %s, load %.2f" % (a, channel, level, load))
    if a == "restore" and load > 0.6:
        problems.append("restore of %s at load %.2f" % (channel, load))
if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok": problems.append("integrity")
print("%d steps %s" % (len(rows), "; ".join(problems) if problems else "ok"))' "$work/ledger.db")
e2e_log "ledger: $ledger_check"
[[ $ledger_check == *" ok" ]] || fail "the ledger's actions: $ledger_check"
e2e_log "PASS"
