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
e2e_install_crds
discovered() { k get channels -A >/dev/null 2>&1 && k get shutdownmatrices >/dev/null 2>&1; }
e2e_wait_for "both kinds served" 60 discovered
for node in "${NODES[@]}"; do e2e_create_node "$node" 4 8Gi; done
e2e_start_fake_kubelet --ready-delay 1
e2e_create_namespace "$NS"
for node in "${NODES[@]}"; do start_agent "$node"; done
wait_agents_at 0.3

deployment() { # deployment NAME REPLICAS: its pods carry the channel label of the same name
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: $NS}
spec:
  replicas: $2
  selector:
    matchLabels: {app: $1}
  template:
    metadata:
      labels: {app: $1, stability.pi0.io/channel: $1}
    spec:
      containers:
        - name: main
          image: placeholder:1
          resources:
            requests: {cpu: 10m, memory: 16Mi}
---
YAML
}
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
        /usr/bin/python3 "$work/state.py" "$work" explain "${VARS[@]}" "${conds[i]}" || true
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
  /usr/bin/python3 - "$work/changes.jsonl" "$work/events.json" "$@" <<'PY'
import datetime, json, re, sys

changes_path, events_path, step = sys.argv[1], sys.argv[2], float(sys.argv[3])
cycles = sys.argv[4:]
ORIG = {"checkout": 2, "search": 3, "recommendations": 4, "batch": 3}
DEG = {"search": 2, "recommendations": 2, "batch": 1}
PREFIX = "stability.pi0.io/"
problems = []

def T(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

def ann(o):
    a = o["metadata"].get("annotations") or {}
    return {k[len(PREFIX):]: v for k, v in a.items() if k.startswith(PREFIX)}

lines = [json.loads(l) for l in open(changes_path)]
deps = [l for l in lines if "/deployments" in l["path"] and l["type"] != "SYNCED"]
hpas = [l for l in lines if "horizontalpodautoscalers" in l["path"] and l["type"] != "SYNCED"]

# (a) Every Deployment went through exactly the counts the cycles plan, in order, and the HPA
# through exactly its planned bounds. Catches a step taken twice that moved a count (a shutdown
# redone after a restore), a skipped step (3 -> 0 where 3 -> 1 -> 0 was planned), a count below
# the plan, a restore to anything but the original, a raise past the degraded count. search may
# pass 1 on its way to 0: between Pi0's cap of its HPA at 1 and its own scale to 0 (a kill
# there), the HPA controller may scale it to the cap. A straight cycle may also pass through
# elevated: on its way from 0.3 to 0.95 one poll can catch the agents' projected peak in the
# elevated band (0.73 has been seen), and the operator then rightly degrades the first elevated
# channel (batch, one step) before the level reaches critical.
per_cycle = {
    "batch": {"straight": "(,1)?,0,3", "via": ",1,0,1,3"},
    "search": {"straight": "(,2)?(,1)?,0,3", "via": ",2(,1)?,0,2,3"},
    "recommendations": {"straight": ",0,4", "via": ",2,0,2,4"},
    "checkout": {"straight": "", "via": ""},
}
def counts(items, key):
    seq = {}
    for l in items:
        o = l["object"]
        seq.setdefault(o["metadata"]["name"], [])
        v = key(o)
        if not seq[o["metadata"]["name"]] or seq[o["metadata"]["name"]][-1] != v:
            seq[o["metadata"]["name"]].append(v)
    return seq
replicas = counts(deps, lambda o: str(o["spec"]["replicas"]))
for name, orig in ORIG.items():
    pattern = "^%d%s$" % (orig, "".join(per_cycle[name][c] for c in cycles))
    seen = ",".join(replicas.get(name, []))
    if not re.match(pattern, seen):
        problems.append("Deployment %s went through %s; the plan is %s" % (name, seen, pattern))
bounds = counts(hpas, lambda o: "%s-%s" % (o["spec"].get("minReplicas"), o["spec"]["maxReplicas"]))
hpa_plan = {"straight": "(,2-2)?,1-1,2-6", "via": ",2-2,1-1,1-2,2-6"}
pattern = "^2-6%s$" % "".join(hpa_plan[c] for c in cycles)
seen = ",".join(bounds.get("search", []))
if not re.match(pattern, seen):
    problems.append("HPA search went through the bounds %s; the plan is %s" % (seen, pattern))

# (b) Dependencies, judged in the apiserver's order of the Deployments' versions: search reaches
# 0 only while recommendations is at 0 already (catches a shutdown that did not wait for its
# dependent, e.g. a new leader planning from a stale view); recommendations rises only while
# search is back (at least degraded, 3 when recommendations goes back to 4) with every replica
# ready and its status current (catches a restore that did not wait for its dependency).
last = {}
for l in deps:
    o = l["object"]
    name, r = o["metadata"]["name"], o["spec"]["replicas"]
    before = last.get(name)
    if l["type"] != "LISTED" and before is not None:
        if name == "search" and before["spec"]["replicas"] > 0 and r == 0:
            rec = last["recommendations"]["spec"]["replicas"]
            if rec != 0:
                problems.append("search went to 0 (version %s) while recommendations had %d replicas"
                                % (o["metadata"]["resourceVersion"], rec))
        if name == "recommendations" and r > before["spec"]["replicas"]:
            s = last["search"]
            st = s.get("status") or {}
            want = 3 if r == 4 else 2
            if not (s["spec"]["replicas"] >= want and st.get("readyReplicas", 0) >= s["spec"]["replicas"]
                    and st.get("observedGeneration", 0) >= s["metadata"]["generation"]):
                problems.append("recommendations rose to %d (version %s) while search was at %d "
                                "replicas, %d ready, status of generation %s of %s" % (
                                    r, o["metadata"]["resourceVersion"], s["spec"]["replicas"],
                                    st.get("readyReplicas", 0), st.get("observedGeneration"),
                                    s["metadata"]["generation"]))
    last[name] = o

# (c) checkout, critical, was never touched.
for l in deps:
    o = l["object"]
    if o["metadata"]["name"] == "checkout" and (o["spec"]["replicas"] != 2 or ann(o)):
        problems.append("checkout was touched: %s replicas, %s" % (o["spec"]["replicas"], ann(o)))

# (d) One step per interval: the last-action-time stamps of the degrade and shutdown writes
# (a version that stamps a new time and raises nothing) are at least a step interval apart. A
# new leader that stepped at once, ignoring its predecessor's last step (the status it had not
# written yet, or the stamp on a step cut short), puts two stamps closer. The HPA's stamp counts:
# a retry of search's degrade whose record its first try wrote stamps only the HPA (the cap)
# before it dies, and that retry is a step as much as any.
stamps = {}  # stamp -> the objects that carry it
prev = {}
for l in deps + hpas:
    o = l["object"]
    key = (l["path"], o["metadata"]["name"])
    stamp = ann(o).get("last-action-time")
    p = prev.get(key)
    if p is not None and stamp and stamp != ann(p).get("last-action-time"):
        if "/deployments" in l["path"]:
            up = o["spec"]["replicas"] > p["spec"]["replicas"]
        else:
            up = o["spec"]["maxReplicas"] > p["spec"]["maxReplicas"]
        if not up:
            kind = "Deployment" if "/deployments" in l["path"] else "HPA"
            stamps.setdefault(stamp, set()).add("%s %s" % (kind, o["metadata"]["name"]))
    prev[key] = o
ordered = sorted(stamps, key=T)
for a, b in zip(ordered, ordered[1:]):
    if T(b) - T(a) < step - 0.002:
        problems.append("two scale-down steps %.3f s apart: %s at %s, %s at %s; the interval is %g s"
                        % (T(b) - T(a), ", ".join(sorted(stamps[a])), a, ", ".join(sorted(stamps[b])), b, step))

# (e) The Events. Events of a replica killed with SIGKILL may be lost (they are sent from a
# background thread), so they are judged by what they say, and counted as at most one per step.
events = [e for e in json.load(open(events_path))["items"]
          if ((e.get("source") or {}).get("component") == "pi0-operator"
              or e.get("reportingComponent") == "pi0-operator")
          and (e.get("involvedObject") or {}).get("namespace") == "shop"]
def of(reason, kind):
    return [e for e in events if e["reason"] == reason and e["involvedObject"]["kind"] == kind]
# A Channel's step Event lists its targets "Deployment/x A -> B". A step taken again on a channel
# that had got there already (after a kill between the write and the status) changes nothing:
# every target "A -> A".
for reason in ("Degraded", "ShutDown", "Restoring"):
    for e in of(reason, "Channel"):
        pairs = re.findall(r"\w+/[a-z0-9.-]+ (\d+) -> (\d+)", e["message"])
        if not pairs or all(a == b for a, b in pairs):
            problems.append("%s on Channel %s changed nothing (x%d): %s" % (
                reason, e["involvedObject"]["name"], e.get("count") or 1, e["message"]))
# A workload's ScaledDown goes from a count above the step's target to that target (the
# degraded count or 0), from the original or degraded count (or 1, search's cap); ScaledUp goes up
# to the degraded or original count. Catches a scale to a count Pi0 never plans, and a
# "scale-down" from a count that was the target already.
for reason, down in (("ScaledDown", True), ("ScaledUp", False)):
    for e in of(reason, "Deployment"):
        name = e["involvedObject"]["name"]
        m = re.search(r"from (\d+) to (\d+) replicas", e["message"])
        if not m or name not in DEG:
            problems.append("%s on Deployment %s: %s" % (reason, name, e["message"]))
            continue
        a, b = int(m.group(1)), int(m.group(2))
        ok = (b in (DEG[name], 0) and a > b and a in (ORIG[name], DEG[name], 1 if name == "search" else -1)) \
            if down else (b in (DEG[name], ORIG[name]) and a < b)
        if not ok:
            problems.append("%s on Deployment %s goes from %d to %d: %s" % (reason, name, a, b, e["message"]))
# At most one Event per step: a step taken twice that still moved a count would show one more.
via, straight = cycles.count("via"), cycles.count("straight")
# (A straight cycle may take one degrade on its way through elevated, as above.)
most = {"Degraded": via + straight, "ShutDown": via + straight, "Restoring": 2 * via + straight}
for reason, limit in most.items():
    for name in DEG:
        got = sum(e.get("count") or 1 for e in of(reason, "Channel") if e["involvedObject"]["name"] == name)
        if got > limit:
            problems.append("%d %s Events on Channel %s, for %d steps" % (got, reason, name, limit))
print("history: %d Deployment versions, %d HPA versions, %d scale-down stamps, %d Events; "
      "counts: %s; HPA: %s" % (len(deps), len(hpas), len(stamps), len(events),
                               {k: ",".join(v) for k, v in replicas.items()}, ",".join(bounds.get("search", []))),
      file=sys.stderr)
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}
snapshot
check_history "$STEP" "${cycles[@]}" ||
  fail "the history shows a step repeated, skipped, out of order or too early (above)"
e2e_log "ok: every count and bound as planned, dependents first, one step per interval, no step twice"
e2e_log "PASS ($kills random kills, ${#POINTS[@]} exact ones, seed $SEED, $SECONDS s)"
