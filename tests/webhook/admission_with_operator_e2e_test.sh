#!/usr/bin/env bash
# pi0-webhook and pi0-operator together on the real control plane (tests/e2e): the operator (one
# replica) acts on the load of three pi0-agents replaying synthetic profiles, and the webhook,
# registered for the pods of namespace `shop` (failurePolicy Fail), admits the pods that the
# ReplicaSets create. Nodes: node-calm (2 CPUs, cpu 0.1 throughout: a node whose gates every pod
# passes) and node-a and node-b (63 CPUs each, whose load decides ℓ). Channels, one Deployment
# each, every pod requesting cpu 100m and memory 16Mi:
#
#   batch    3 replicas; degraded to 1 at elevated, shut down at high; buffer.max cpu 50m
#   reports  2 replicas; shut down at critical; buffer.max cpu 50m
#   web      2 replicas; never touched; buffer.max cpu 500m (room for 5 more pods)
#
# ShutdownMatrix `default`: normal ≤ 0.7, elevated ≤ 0.8, high ≤ 0.9, critical; totalBuffer 64
# CPUs (so each channel's BAO share is its buffer.max); one step per 3 s, recovery after 6 s;
# no SAO shutdowns and no rollback, so that only the load drives it. It checks:
#
#  a. The load in steps, with a spike: 0.3 -> 0.75 (batch degraded) -> 0.95 for as long as the
#     shutdowns take (batch and reports shut down; a pod of reports created then is denied
#     ChannelInactive) -> 0.72 -> 0.3. At 0.72 the level is elevated, where buffers are checked:
#     reports is restored to Active and batch raised to 1 replica while the level is elevated,
#     and each restore is announced (the matrix's status.channels[].restoring) while the
#     Deployment is still at 0 replicas. Their allocations (cpu 50m) are smaller than one pod,
#     so a restored pod checked as ChannelInactive or against the buffer would be denied: no pod
#     of batch or reports is ever denied (pi0-webhook's "pod denied" log records, the
#     ReplicaSets' FailedCreate Events), their replicas come back and are Ready, and at 0.3
#     everything is back at its original count.
#  b. At elevated again, with web's Channel status saying allocated cpu 500m and used 0,
#     Deployment web is scaled from 2 to 22 at once: exactly 5 new pods are admitted (the pods
#     that exist once the burst has settled, never more at any moment), the others denied
#     BufferExhausted; the webhook's 5 reservations end because the operator counted the pods
#     (none timed out), and web's status then says used cpu 500m.
#
# Usage: admission_with_operator_e2e_test.sh SOURCE_DIR PI0_OPERATOR PI0_WEBHOOK PI0_AGENT
set -euo pipefail
source_dir=$(cd "${1:?usage: admission_with_operator_e2e_test.sh SOURCE_DIR PI0_OPERATOR PI0_WEBHOOK PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR_BINARY}")
webhook_bin=$(realpath "${3:?missing PI0_WEBHOOK_BINARY}")
agent_bin=$(realpath "${4:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"
command -v openssl >/dev/null || e2e_fail "openssl is not installed"

NS=shop
STEP=3  # spec.stepIntervalSeconds
DWELL=6 # spec.hysteresis.dwellSeconds
NODES=(node-calm node-a node-b)

# shellcheck source=tests/operator/lib.sh
source "$source_dir/tests/operator/lib.sh"
e2e_at_exit "[[ -e $work/passed ]] || { echo '--- last lines of webhook.log:' >&2; tail -n 30 $work/webhook.log >&2; } || true"

# ---------------------------------------------------------------------------------------------
# Agents: one per Node (lib.sh's), each replaying its own synthetic profile.
# set_load TARGET: ℓ is the capacity-weighted mean of the nodes' projected cpu peaks (memory
# stays at 0.2): node-calm's 2 CPUs at 0.1 and node-a's and node-b's 126 at what makes it TARGET.
# The load moves in steps: the agents' forecast follows a step at once (a ramp would read
# above the load).
set_load() {
  local cpu
  cpu=$(/usr/bin/python3 -c 'import sys; print("%.4f" % min(1.0, (128 * float(sys.argv[1]) - 2 * 0.1) / 126))' "$1")
  e2e_write_profile node-a "{wave: constant, value: $cpu}"
  e2e_write_profile node-b "{wave: constant, value: $cpu}"
  e2e_log "load set to $1 (node-a and node-b at cpu $cpu)"
}
fingerprints_ready() {
  local node
  for node in "${NODES[@]}"; do
    curl -sf --noproxy '*' --max-time 2 "${E2E_AGENT_URLS[$node]}/fingerprint" | grep -q '"ready":true' ||
      return 1
  done
}

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: CRDs, Nodes, agents, pi0-webhook, pi0-operator, workloads"
e2e_install_crds
e2e_create_node node-calm 2 8Gi
e2e_create_node node-a 63 64Gi
e2e_create_node node-b 63 64Gi
e2e_start_fake_kubelet --ready-delay 1
e2e_create_namespace "$NS"
# 1.20 does not label namespaces with their name; the registration selects by that label.
k label namespace "$NS" "kubernetes.io/metadata.name=$NS" --overwrite >/dev/null
e2e_write_profile node-calm "{wave: constant, value: 0.1}"
set_load 0.3
start_agents
e2e_wait_for "the agents' windows to fill" 30 fingerprints_ready
agents=$(e2e_agents_flag "${NODES[@]}")

e2e_make_certificates "$work"
webhook_port=$(e2e_free_port)
"$webhook_bin" --kubeconfig "$KUBECONFIG" --bind-address "127.0.0.1:$webhook_port" \
  --tls-cert-file "$work/tls.crt" --tls-private-key-file "$work/tls.key" --agents "$agents" \
  --poll-interval 500ms --agent-timeout 300ms --shutdown-delay 0s \
  </dev/null >>"$work/webhook.log" 2>&1 &
webhook_pid=$!
disown "$webhook_pid"
e2e_at_exit "kill -KILL $webhook_pid 2>/dev/null || true"
https() { curl -sS --noproxy '*' --cacert "$work/ca.crt" --max-time 5 "$@"; }
webhook_ready() {
  e2e_pid_alive "$webhook_pid" || { tail -n 20 "$work/webhook.log" >&2; e2e_fail "pi0-webhook exited"; }
  [[ $(https -o /dev/null -w '%{http_code}' "https://127.0.0.1:$webhook_port/readyz" 2>/dev/null) == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 60 webhook_ready
# webhook_metric SERIES: its value on pi0-webhook's /metrics (0 when absent).
webhook_metric() {
  https "https://127.0.0.1:$webhook_port/metrics" | awk -v s="$1" '$1 == s { v = $2 } END { print v + 0 }'
}

e2e_register_webhook pi0-admission-e2e "https://127.0.0.1:$webhook_port" \
  --ca-bundle "$work/ca.crt" --failure-policy Fail \
  --hook pods.stability.pi0.io pods --namespace "$NS" --timeout 5

op_id[1]=pi0-operator
op_log[1]=$work/operator.log
"$operator_bin" --kubeconfig "$KUBECONFIG" --metrics-bind-address 127.0.0.1:0 \
  --health-probe-bind-address 127.0.0.1:0 --agents "$agents" --poll-interval 500ms \
  --agent-timeout 500ms --log-level info </dev/null >"${op_log[1]}" 2>&1 &
op_pid[1]=$!
disown "${op_pid[1]}"
e2e_at_exit "kill -KILL ${op_pid[1]} 2>/dev/null || true"

channel() { # channel NAME BUFFER_CPU BUFFER_MEMORY
  cat <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: $1, namespace: $NS}
spec:
  targets: [{kind: Deployment, name: $1}]
  degradedReplicas: 1
  buffer: {max: {cpu: "$2", memory: "$3"}}
---
YAML
}
{
  deployment batch 3 100m
  deployment reports 2 100m
  deployment web 2 100m
  channel batch 50m 8Mi
  channel reports 50m 8Mi
  channel web 500m 1Gi
} | k apply -f - >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: default}
spec:
  levels:
    - {name: normal, upperBound: 0.7}
    - {name: elevated, upperBound: 0.8}
    - {name: high, upperBound: 0.9}
    - {name: critical}
  rows:
    - channel: {name: batch, namespace: $NS}
      critical: false
      cells:
        - {level: elevated, action: Degrade, order: 0}
        - {level: high, action: Shutdown, order: 0}
    - channel: {name: reports, namespace: $NS}
      critical: false
      cells:
        - {level: critical, action: Shutdown, order: 1}
    - channel: {name: web, namespace: $NS}
      critical: false
      cells: []
  loadSignal: {source: Fleet, resources: [cpu, memory, gpu]}
  stabilityThreshold: 0
  totalBuffer: {cpu: "64", memory: 64Gi}
  rollback: {settleSeconds: 0}
  hysteresis: {margin: 0.05, dwellSeconds: $DWELL}
  stepIntervalSeconds: $STEP
  mode: Enforce
YAML
ORIGINAL='D["batch"]["replicas"] == 3 and D["reports"]["replicas"] == 2 and D["web"]["replicas"] == 2'
ALL_READY='D["batch"]["ready"] == 3 and D["reports"]["ready"] == 2 and D["web"]["ready"] == 2'
ALL_ACTIVE='all(C.get(c, {}).get("state") == "Active" for c in ("batch", "reports", "web"))'
wait_for "the workloads ready and every channel Active at level normal, load 0.3" 90 \
  "$ORIGINAL" "$ALL_READY" "$ALL_ACTIVE" \
  'M["default"].get("level") == "normal" and abs(M["default"].get("load", -1) - 0.3) < 0.02'

# denials: pi0-webhook's "pod denied" log records, one "POD REASON MESSAGE" line each.
denials() {
  /usr/bin/python3 - "$work/webhook.log" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == "pod denied":
        print(rec.get("pod", "").split("/")[-1], rec.get("reason"), rec.get("message"))
PY
}
# replicaset_denials PREFIX...: the FailedCreate Events of the ReplicaSets of those Deployments
# (named DEPLOYMENT-HASH), one "NAME xCOUNT: MESSAGE" line each.
replicaset_denials() {
  e2e_api GET "/api/v1/namespaces/$NS/events" | e2e_json '
import re
names = sys.argv[1:]
for e in d["items"]:
    io = e.get("involvedObject") or {}
    if (e.get("reason") == "FailedCreate" and io.get("kind") == "ReplicaSet"
            and any(re.fullmatch(re.escape(n) + r"-[a-z0-9]+", io.get("name", "")) for n in names)):
        print("%s x%s: %s" % (io["name"], e.get("count") or 1, e.get("message")))' "$@"
}
# pods_of DEPLOYMENT: how many of its pods exist (not being deleted).
pods_of() {
  e2e_api GET "/api/v1/namespaces/$NS/pods?labelSelector=app%3D$1" |
    e2e_json 'print(sum(1 for p in d["items"] if not p["metadata"].get("deletionTimestamp")))'
}

# ---------------------------------------------------------------------------------------------
e2e_log "a. steps up, a spike and steps down: shut down, then restored at an elevated level"
set_load 0.75
wait_for "level elevated, batch degraded to 1" 60 \
  'M["default"].get("level") == "elevated"' 'D["batch"]["replicas"] == 1' \
  'C["batch"].get("state") == "Degraded"'

set_load 0.95
wait_for "the spike: level critical, batch and reports shut down" 60 \
  'M["default"].get("level") == "critical"' \
  'D["batch"]["replicas"] == 0 and D["reports"]["replicas"] == 0' \
  'C["batch"].get("state") == "Inactive" and C["reports"].get("state") == "Inactive"'
# The webhook sees the shutdown: a pod of reports is denied now (so that the absence of
# denials below says something).
if out=$(k create -f - 2>&1 <<YAML
apiVersion: v1
kind: Pod
metadata: {name: probe-reports, namespace: $NS, labels: {stability.pi0.io/channel: reports}}
spec:
  containers: [{name: main, image: placeholder:1, resources: {requests: {cpu: 100m, memory: 16Mi}}}]
YAML
); then
  fail "a pod of the shut-down channel reports was admitted"
fi
[[ $out == *"shop/reports is shut down"* ]] || fail "the pod of reports was refused, but not as shut down: $out"
e2e_log "ok: a pod of the shut-down channel reports is denied: ${out#*denied the request: }"

# Down to 0.72 (elevated): reports comes back to Active and batch to Degraded at a level where
# the buffers are checked. A watcher polls the matrix and the two Deployments every 100 ms and
# records, per channel, whether it saw the restore announced (status.channels[].restoring) while
# the Deployment was still at 0 replicas, and the level when its replicas rose.
cat >"$work/watch_restore.py" <<'PY'
import http.client, json, os, ssl, sys, time, urllib.parse
server = urllib.parse.urlsplit(os.environ["PI0_APISERVER"])
ctx = ssl.create_default_context(cafile=os.environ["PI0_CA_FILE"])
conn = http.client.HTTPSConnection(server.hostname, server.port, context=ctx, timeout=10)
def get(path):
    conn.request("GET", path, headers={"Authorization": "Bearer " + os.environ["PI0_TOKEN"]})
    r = conn.getresponse()
    return json.loads(r.read())
ns, timeout = sys.argv[1], float(sys.argv[2])
seen = {c: {"announcedAtZero": False, "levelWhenScaled": None} for c in sys.argv[3:]}
deadline = time.time() + timeout
while time.time() < deadline and any(s["levelWhenScaled"] is None for s in seen.values()):
    m = (get("/apis/stability.pi0.io/v1alpha1/shutdownmatrices/default").get("status") or {})
    restoring = {(e.get("channel") or {}).get("name") for e in m.get("channels") or []
                 if e.get("restoring")}
    for c, s in seen.items():
        replicas = get("/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, c))["spec"]["replicas"]
        if replicas == 0 and c in restoring:
            s["announcedAtZero"] = True
        if replicas > 0 and s["levelWhenScaled"] is None:
            s["levelWhenScaled"] = m.get("level")
    time.sleep(0.1)
print(json.dumps(seen))
PY
set_load 0.72
seen=$(/usr/bin/python3 "$work/watch_restore.py" "$NS" 90 batch reports) ||
  fail "the restore watcher failed"
e2e_log "the restores as the watcher saw them: $seen"
/usr/bin/python3 -c 'import json, sys
seen = json.loads(sys.argv[1])
sys.exit(0 if all(s["announcedAtZero"] and s["levelWhenScaled"] == "elevated" for s in seen.values()) else 1)' "$seen" ||
  fail "not each restore announced before its Deployment rose from 0, at level elevated: $seen"
e2e_log "ok: each restore announced while its Deployment was at 0, and scaled up at level elevated"
# restored_denials: fails the test, naming them, when pods of batch or reports were denied.
restored_denials() {
  local bad
  bad=$(denials | grep -E '^(batch|reports)-' || true)
  [[ -z $bad ]] || fail "pods of batch or reports were denied: $bad"
}
RESTORED=('M["default"].get("level") == "elevated"' \
  'D["reports"]["replicas"] == 2 and D["reports"]["ready"] == 2' \
  'D["batch"]["replicas"] == 1 and D["batch"]["ready"] == 1' \
  'C["reports"].get("state") == "Active" and C["batch"].get("state") == "Degraded"' \
  'n("Restored", "Channel", "reports") >= 1 and n("Restored", "Channel", "batch") >= 1' \
  'not any(e.get("restoring") for e in M["default"].get("channels") or [])')
deadline=$((SECONDS + 60))
until holds "${RESTORED[@]}"; do
  restored_denials # a denied pod is retried with a back-off: fail now, saying why
  if ((SECONDS >= deadline)); then
    state explain "${VARS[@]}" "${RESTORED[@]}" || true
    fail "timed out after 60 s waiting for the restores"
  fi
  sleep 0.3
done
e2e_log "ok: reports Active and batch Degraded again, Ready, at level elevated; the restores verified"
# The allocations that would have denied the restored pods, had they been checked.
expect "batch's and reports' buffers smaller than one pod's request (cpu 100m)" \
  'C["batch"]["buffer"]["allocated"]["cpu"] == "50m"' \
  'C["reports"]["buffer"]["allocated"]["cpu"] == "50m"'

set_load 0.3
wait_for "level normal, everything back at its original count and Ready" 90 \
  'M["default"].get("level") == "normal"' "$ORIGINAL" "$ALL_READY" "$ALL_ACTIVE" \
  'all(d["ann"] == {} for d in D.values())'
denied=$(denials)
e2e_log "pi0-webhook's denials so far: ${denied:-none}"
restored_denials
grep -q '^probe-reports ChannelInactive ' <<<"$denied" ||
  fail "the webhook's log has no ChannelInactive denial of probe-reports: $denied"
bad=$(replicaset_denials batch reports)
[[ -z $bad ]] || fail "the ReplicaSets of batch or reports failed to create pods: $bad"
expect "the restores verified, none stalled or failed" \
  'n("Restored", "Channel", "batch") >= 2 and n("Restored", "Channel", "reports") == 1' \
  'ev("RestoreStalled") == [] and ev("ScaleFailed") == []'
e2e_log "ok: no pod of batch or reports denied, by the webhook's log and the ReplicaSets' Events"

# ---------------------------------------------------------------------------------------------
e2e_log "b. a burst of 20 pods against room for 5"
set_load 0.75
wait_for "level elevated; web's buffer: allocated cpu 500m, nothing used, baseline its 2 pods" 60 \
  'M["default"].get("level") == "elevated"' 'C["web"].get("state") == "Active"' \
  'C["web"].get("buffer", {}).get("allocated", {}).get("cpu") == "500m"' \
  'C["web"]["buffer"].get("used", {}).get("cpu") == "0"' \
  'C["web"]["buffer"].get("baseline", {}).get("cpu") == "200m"'
sleep 1 # the webhook's cache of the Channel
[[ $(pods_of web) == 2 ]] || fail "web has $(pods_of web) pods before the burst, not 2"
k scale deployment -n "$NS" web --replicas 22 >/dev/null
t_burst=$SECONDS
e2e_log "Deployment web scaled from 2 to 22"
# At most 5 new pods: the ReplicaSet creates them in quick batches (1, 2, 4, 8, ...). The webhook
# checks the reviews of one channel in turn, each against the remainder less what it reserved
# for the pods it admitted: the sixth finds 0 left. Without the reservations every pod of the
# burst would be checked against the same 500m and all 20 admitted. Once the operator has counted
# the pods (used 500m) their reservations end and the ReplicaSet's retries are still denied.
# This holds for one webhook replica; with N replicas each reserves only what it admitted, so the
# burst could take up to N-1 more remainders (README, "Buffer reservations").
settled() {
  local live n
  live=$(webhook_metric 'pi0_webhook_buffer_reservations{channel="shop/web"}')
  n=$(pods_of web)
  ((n > most)) && most=$n
  if [[ $live == 0 && $n == "${last_count:-}" ]] && ((SECONDS - t_burst >= 10)); then return 0; fi
  last_count=$n
  return 1
}
last_count="" most=0
e2e_wait_for "the burst to settle (no live reservation, the pod count unchanged)" 60 settled
((most <= 7)) || fail "web had $most pods during the burst: more than its 2 and the 5 its buffer has room for"
n=$(pods_of web)
if ((n < 7)); then
  # Fewer than 5 at once is the conservative side of the reservations: a pod the operator counted
  # less than the grace (2 s) after its admission is held twice, in used and in its reservation,
  # until the operator's next count (README, "Buffer reservations"). It happens when the burst
  # spans the operator's first count, as on a loaded machine. The room is then free again, but
  # the ReplicaSet's next try waits out its backoff after the refusals (seconds to minutes): an
  # update of the ReplicaSet makes it sync now, as an event of one of its pods would.
  e2e_log "web has $n pods once the burst settled: $((n - 2)) admitted at once, the rest of the room held twice for a while; the ReplicaSet is nudged to try again"
  k annotate -n "$NS" "$(k get rs -n "$NS" -l app=web -o name)" pi0.io/e2e-retry="$SECONDS" --overwrite >/dev/null
  more() {
    local m
    m=$(pods_of web)
    ((m > most)) && most=$m
    ((m >= 7))
  }
  e2e_wait_for "the ReplicaSet's retry to take the rest of web's room" 60 more
  # The pod of the retry is counted, and its reservation ended, within kCountedAfter (4 s) of
  # its creation, well before the reservation's timeout (30 s).
  no_reservation() { [[ $(webhook_metric 'pi0_webhook_buffer_reservations{channel="shop/web"}') == 0 ]]; }
  e2e_wait_for "the operator to count the pod of the retry (no live reservation)" 15 no_reservation
fi
sleep 3
n=$(pods_of web)
((n == 7 && most <= 7)) ||
  fail "web has $n pods after the burst (at most $most), not 7 (2 before it and 5 admitted)"
e2e_log "ok: 5 of the 20 new pods admitted: web has $n pods"
expect "web's status counts the 5 new pods: used cpu 500m of 500m" \
  'C["web"]["buffer"]["used"]["cpu"] == "500m" and C["web"]["buffer"]["allocated"]["cpu"] == "500m"' \
  'D["web"]["replicas"] == 22'
web_denied=$(grep -E '^web-' <<<"$(denials)" || true)
[[ -n $web_denied ]] || fail "no denial of a web pod in the webhook's log"
bad=$(grep -v -E '^web-[^ ]+ BufferExhausted ' <<<"$web_denied" || true)
[[ -z $bad ]] || fail "web pods denied for another reason than BufferExhausted: $bad"
e2e_log "ok: $(wc -l <<<"$web_denied") denials of web pods, each BufferExhausted; the first: $(head -n 1 <<<"$web_denied")"
counted=$(webhook_metric 'pi0_webhook_buffer_reservations_ended_total{reason="counted"}')
timed_out=$(webhook_metric 'pi0_webhook_buffer_reservations_ended_total{reason="timeout"}')
[[ $counted == 5 && $timed_out == 0 ]] ||
  fail "reservations ended: counted $counted, timed out $timed_out; want 5 and 0"
e2e_log "ok: the 5 reservations ended as the operator counted the pods, none timed out"
bad=$(grep -v -E '^(web-[^ ]+ BufferExhausted|probe-reports ChannelInactive) ' <<<"$(denials)" || true)
[[ -z $bad ]] || fail "other denials: $bad"

touch "$work/passed"
e2e_log "PASS: admission_with_operator_e2e_test ($((SECONDS)) s)"
