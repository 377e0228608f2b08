#!/usr/bin/env bash
# The fleet feed (src/fleet/feed.h) on the real control plane (tests/e2e): three stand-in Nodes
# with a pi0-agent each (synthetic load, cpu 0.3, a sample every 500 ms), two pi0-operator
# replicas with leader election that publish the feed while leading, and one pi0-webhook that
# reads it. Everything polls at 500 ms.
#
#  1. Who may read: the leader's GET /fleet answers 401 without a token and to a token made for
#     another audience, 403 to a service account not on --fleet-readers, 200 with every node to
#     the webhook's token; the standby answers 503. The Lease names the leader's URL.
#  2. Read once per cluster: over 10 s the agents answer about one /fingerprint per node per
#     poll interval in all (the leader's polls), not one per consumer; the webhook and the
#     standby poll no agent and read the feed (PREFIX_fleet_source{source="feed"} 1).
#  3. kill -9 of the leader under load: a review every 50 ms goes on throughout. The webhook
#     falls back to polling the agents before its data goes stale, the standby takes the Lease
#     (after the Lease's 15 s) and publishes, and the webhook reads the feed again. Every review
#     is answered 200 and admitted, none on stale data, none waits long.
#  4. Freshness: the webhook's pi0_webhook_decision_data_age_seconds in the steady state (10 s of
#     load before the kill), p50 and
#     p99 printed; p99 within two sampling intervals (1 s).
#  5. The truth ledger (README "The learning loop"): the two replicas keep one SQLite file, as
#     on one node's volume. Who may write: POST /ledger/decisions answers 401 without a token,
#     403 to a reader that is not a writer (the operator's own account), 503 on the standby, 400
#     to a malformed batch, naming the defect. Every review the webhook answered in step 3, the
#     kill -9 of the leader included, is in the ledger exactly once, and the file's integrity
#     check passes.
#  6. Outcomes (--outcome-horizon 5s): the webhook registered with the apiserver, the fake kubelet
#     running pods; a pod created with kubectl has its decision joined to `ready`, one whose
#     container was OOM-killed to `ready` and `oom_killed` (the pods' uids as the apiserver gave
#     them), and after the horizon both decisions get the node verdict `node_fine` (the agents'
#     load is a steady 0.3, no pressure).
#
# Usage: fleet_feed_e2e_test.sh SOURCE_DIR PI0_OPERATOR PI0_WEBHOOK PI0_AGENT
set -euo pipefail
source_dir=$(cd "${1:?usage: fleet_feed_e2e_test.sh SOURCE_DIR PI0_OPERATOR PI0_WEBHOOK PI0_AGENT}" && pwd)
operator_bin=$(realpath "${2:?missing PI0_OPERATOR}")
webhook_bin=$(realpath "${3:?missing PI0_WEBHOOK}")
agent_bin=$(realpath "${4:?missing PI0_AGENT}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

e2e_cluster_up
work=$PI0_CLUSTER_DIR/fleet-feed
mkdir -p "$work"
E2E_WORK=$work
NODES=(node-a node-b node-c)
SA_NS=pi0-system
READERS=system:serviceaccount:$SA_NS:pi0-webhook,system:serviceaccount:$SA_NS:pi0-operator

e2e_log "set-up: CRDs, Nodes, agents, service accounts, certificates"
e2e_install_crds
for node in "${NODES[@]}"; do e2e_create_node "$node" 4 8Gi; done
e2e_create_namespace shop
kubectl label namespace shop kubernetes.io/metadata.name=shop --overwrite >/dev/null
for node in "${NODES[@]}"; do
  e2e_write_profile "$node" "{wave: constant, value: 0.3}"
  e2e_start_synthetic_agent "$agent_bin" "$node" --interval 500ms --window 16
done
agents=$(e2e_agents_flag "${NODES[@]}")

kubectl create namespace "$SA_NS" >/dev/null
for sa in pi0-webhook pi0-operator intruder; do
  kubectl -n "$SA_NS" create serviceaccount "$sa" >/dev/null
  kubectl -n "$SA_NS" create token "$sa" --audience pi0-fleet --duration 1h >"$work/$sa.token"
done
kubectl -n "$SA_NS" create token pi0-webhook --duration 1h >"$work/wrong-audience.token"

e2e_make_certificates "$work" # the webhook's serving pair
e2e_make_fleet_certificates "$work"

declare -A op_pid op_log op_metrics op_fleet
start_operator() { # N
  local n=$1 deadline=$((SECONDS + 30))
  op_fleet[$n]=$(e2e_free_port)
  op_log[$n]=$work/operator-$n.log
  e2e_start "${op_log[$n]}" "$operator_bin" --kubeconfig "$KUBECONFIG" --leader-elect \
    --identity "pi0-feed-$n" --metrics-bind-address 127.0.0.1:0 \
    --health-probe-bind-address 127.0.0.1:0 --agents "$agents" --poll-interval 500ms \
    --agent-timeout 400ms --fleet-bind-address "127.0.0.1:${op_fleet[$n]}" \
    --fleet-cert-file "$work/fleet.crt" --fleet-key-file "$work/fleet.key" \
    --fleet-readers "$READERS" --fleet-advertise-url "https://127.0.0.1:${op_fleet[$n]}" \
    --fleet-lease default/pi0-operator --fleet-ca-file "$work/fleet-ca.crt" \
    --fleet-token-file "$work/pi0-operator.token" --ledger-path "$work/ledger.db" \
    --ledger-writers "system:serviceaccount:$SA_NS:pi0-webhook" --outcome-horizon 5s
  op_pid[$n]=$E2E_STARTED_PID
  until op_metrics[$n]=$(e2e_log_field "${op_log[$n]}" "serving metrics" port 2>/dev/null); do
    e2e_pid_alive "${op_pid[$n]}" || e2e_fail "operator $n exited at start: $(tail -5 "${op_log[$n]}")"
    ((SECONDS < deadline)) || e2e_fail "operator $n does not serve metrics after 30 s"
    sleep 0.1
  done
}
lease() {
  e2e_api GET /apis/coordination.k8s.io/v1/namespaces/default/leases/pi0-operator 2>/dev/null
}
lease_holder() { lease | e2e_json 'print(d["spec"].get("holderIdentity") or "")'; }
lease_url() {
  lease | e2e_json 'print(d["metadata"].get("annotations", {}).get("stability.pi0.io/fleet-url", ""))'
}

start_operator 1
leads() { [[ $(lease_holder) == "$1" ]]; }
e2e_wait_for "operator 1 to lead" 30 leads pi0-feed-1
start_operator 2

webhook_port=$(e2e_free_port)
e2e_start "$work/webhook.log" "$webhook_bin" --kubeconfig "$KUBECONFIG" \
  --bind-address "127.0.0.1:$webhook_port" --tls-cert-file "$work/tls.crt" \
  --tls-private-key-file "$work/tls.key" --agents "$agents" --poll-interval 500ms \
  --agent-timeout 400ms --fleet-lease default/pi0-operator --fleet-ca-file "$work/fleet-ca.crt" \
  --fleet-token-file "$work/pi0-webhook.token"
webhook_pid=$E2E_STARTED_PID
https() { curl -sS --noproxy '*' --cacert "$work/ca.crt" --max-time 5 "$@"; }
webhook_ready() {
  [[ $(https -o /dev/null -w '%{http_code}' "https://127.0.0.1:$webhook_port/readyz") == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 60 webhook_ready

# metric_of URL SERIES: the value of SERIES (exactly as exposed, labels included) at URL.
metric_of() {
  curl -sS --noproxy '*' --max-time 5 ${3:+--cacert "$3"} "$1" |
    awk -v s="$2" '$1 == s { print $2; f = 1 } END { exit !f }'
}
webhook_metric() { metric_of "https://127.0.0.1:$webhook_port/metrics" "$1" "$work/ca.crt"; }
operator_metric() { metric_of "http://127.0.0.1:${op_metrics[$1]}/metrics" "$2"; }
agent_requests() {
  local node total=0 v
  for node in "${NODES[@]}"; do
    v=$(metric_of "${E2E_AGENT_URLS[$node]}/metrics" pi0_agent_fingerprint_requests_total) || return 1
    total=$(/usr/bin/python3 -c "print(int($total + float('$v')))")
  done
  echo "$total"
}
usable_nodes() {
  [[ $(webhook_metric 'pi0_webhook_fleet_nodes{state="usable"}') == 3 ]]
}
e2e_wait_for "the webhook to see every node usable (the agents' windows full)" 60 usable_nodes
from_feed() { [[ $(webhook_metric 'pi0_webhook_fleet_source{source="feed"}') == 1 ]]; }
e2e_wait_for "the webhook to read the feed" 20 from_feed

# ---------------------------------------------------------------------------------------------
e2e_log "1. who may read the feed"
[[ $(lease_url) == "https://127.0.0.1:${op_fleet[1]}" ]] ||
  e2e_fail "the Lease names '$(lease_url)', not operator 1's feed https://127.0.0.1:${op_fleet[1]}"
feed() { # PORT [TOKEN_FILE]: prints the status, then the body
  local auth=()
  [[ -n ${2:-} ]] && auth=(-H "Authorization: Bearer $(cat "$2")")
  curl -sS --noproxy '*' --max-time 5 --cacert "$work/fleet-ca.crt" \
    --resolve "pi0-fleet:$1:127.0.0.1" "${auth[@]}" -w '\n%{http_code}' "https://pi0-fleet:$1/fleet"
}
expect_feed() { # WHAT PORT TOKEN_FILE STATUS PHRASE
  local out status
  out=$(feed "$2" "$3")
  status=$(tail -n 1 <<<"$out")
  [[ $status == "$4" && $out == *"$5"* ]] ||
    e2e_fail "$1: expected $4 with '$5', got: $(head -c 300 <<<"$out")"
  e2e_log "ok: $1: $4 $(head -n 1 <<<"$out" | head -c 120)"
}
expect_feed "no token" "${op_fleet[1]}" "" 401 "missing bearer token"
expect_feed "a token for another audience" "${op_fleet[1]}" "$work/wrong-audience.token" 401 \
  "token not authenticated"
expect_feed "a service account not on the list" "${op_fleet[1]}" "$work/intruder.token" 403 \
  "system:serviceaccount:$SA_NS:intruder may not read the fleet view"
expect_feed "the webhook's token" "${op_fleet[1]}" "$work/pi0-webhook.token" 200 '"kind":"FleetFeed"'
nodes_in_feed=$(feed "${op_fleet[1]}" "$work/pi0-webhook.token" | head -n 1 |
  e2e_json 'print(len(d["nodes"]))')
[[ $nodes_in_feed == 3 ]] || e2e_fail "the feed has $nodes_in_feed nodes, not 3"
expect_feed "the standby" "${op_fleet[2]}" "$work/pi0-webhook.token" 503 "does not lead"
post_ledger() { # PORT TOKEN_FILE BODY: prints the body, then the status
  local auth=()
  [[ -n $2 ]] && auth=(-H "Authorization: Bearer $(cat "$2")")
  curl -sS --noproxy '*' --max-time 5 --cacert "$work/fleet-ca.crt" \
    --resolve "pi0-fleet:$1:127.0.0.1" "${auth[@]}" -H 'Content-Type: application/json' \
    --data-binary "$3" -w '\n%{http_code}' "https://pi0-fleet:$1/ledger/decisions"
}
expect_ledger() { # WHAT PORT TOKEN_FILE BODY STATUS PHRASE
  local out status
  out=$(post_ledger "$2" "$3" "$4")
  status=$(tail -n 1 <<<"$out")
  [[ $status == "$5" && $out == *"$6"* ]] ||
    e2e_fail "ledger: $1: expected $5 with '$6', got: $(head -c 300 <<<"$out")"
  e2e_log "ok: ledger: $1: $5 $(head -n 1 <<<"$out" | head -c 120)"
}
batch='{"apiVersion":"stability.pi0.io/v1alpha1","kind":"DecisionBatch","decisions":[]}'
expect_ledger "no token" "${op_fleet[1]}" "" "$batch" 401 "missing bearer token"
expect_ledger "a reader that is not a writer" "${op_fleet[1]}" "$work/pi0-operator.token" \
  "$batch" 403 "may not write decisions to the ledger"
expect_ledger "the standby" "${op_fleet[2]}" "$work/pi0-webhook.token" "$batch" 503 "does not lead"
expect_ledger "a malformed batch" "${op_fleet[1]}" "$work/pi0-webhook.token" \
  '{"apiVersion":"stability.pi0.io/v1alpha1","kind":"DecisionBatch","decisions":[{"id":1}]}' \
  400 "decisions[0]"
expect_ledger "an empty batch" "${op_fleet[1]}" "$work/pi0-webhook.token" "$batch" 200 \
  '"stored":0'

# ---------------------------------------------------------------------------------------------
e2e_log "2. each agent is read once per interval, by the leader only"
webhook_polls_before=$(webhook_metric 'pi0_webhook_fleet_polls_total{result="ok"}')
standby_polls_before=$(operator_metric 2 'pi0_operator_fleet_polls_total{result="ok"}')
pages_before=$(webhook_metric 'pi0_webhook_fleet_feed_pages_total{kind="delta"}')
requests_before=$(agent_requests)
sleep 10
requests=$(($(agent_requests) - requests_before))
webhook_polls=$(/usr/bin/python3 -c "print(int($(webhook_metric 'pi0_webhook_fleet_polls_total{result="ok"}') - $webhook_polls_before))")
standby_polls=$(/usr/bin/python3 -c "print(int($(operator_metric 2 'pi0_operator_fleet_polls_total{result="ok"}') - $standby_polls_before))")
pages=$(/usr/bin/python3 -c "print(int($(webhook_metric 'pi0_webhook_fleet_feed_pages_total{kind="delta"}') - $pages_before))")
e2e_log "in 10 s: $requests /fingerprint answers over 3 agents (the leader's 3 x 20 polls: 60;" \
  "one set per consumer would be 180), webhook polls $webhook_polls, standby polls" \
  "$standby_polls, webhook feed pages $pages"
((requests >= 45 && requests <= 75)) ||
  e2e_fail "the agents answered $requests /fingerprint requests in 10 s, not about 60"
((webhook_polls == 0 && standby_polls == 0)) ||
  e2e_fail "a consumer polled the agents while the feed answered"
((pages >= 20)) || e2e_fail "the webhook read only $pages delta pages in 10 s (one per 125 ms)"
[[ $(operator_metric 2 'pi0_operator_fleet_source{source="feed"}') == 1 ]] ||
  e2e_fail "the standby does not read the feed"

# ---------------------------------------------------------------------------------------------
e2e_log "3. kill -9 of the leader under load"
age_buckets() { https "https://127.0.0.1:$webhook_port/metrics" | grep '^pi0_webhook_decision_data_age_seconds_bucket'; }
# quantiles BEFORE AFTER: the count, p50 and p99 (bucket upper bounds) of the decisions between
# two scrapes of the data-age histogram.
quantiles() {
  /usr/bin/python3 -c '
import re, sys
def read(text):
    return [(float(m.group(1)), float(m.group(2))) for m in
            re.finditer(r"le=\"([^\"]+)\"\} (\S+)", text)]
before, after = read(sys.argv[1]), read(sys.argv[2])
counts = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
total = counts[-1][1]
q = lambda p: next(le for le, c in counts if c >= p * total)
print("%d %s %s" % (total, q(0.5), q(0.99)))' "$1" "$2"
}
buckets_at_start=$(age_buckets)
/usr/bin/python3 "$source_dir/tests/fleet/review_load.py" "https://127.0.0.1:$webhook_port" \
  "$work/ca.crt" "$work/load.json" 20 &
load_pid=$!
e2e_at_exit "kill -TERM $load_pid 2>/dev/null || true"
sleep 10
buckets_before_kill=$(age_buckets)
kill -KILL "${op_pid[1]}"
killed_at=$SECONDS
e2e_log "killed operator 1 (pid ${op_pid[1]})"
fell_back() { grep -q 'polling the agents directly' "$work/webhook.log"; }
until fell_back; do
  ((SECONDS - killed_at < 10)) || {
    tail -n 20 "$work/webhook.log" >&2
    e2e_fail "the webhook did not fall back to polling the agents in 10 s"
  }
  sleep 0.2
done
e2e_log "ok: the webhook polls the agents itself after $((SECONDS - killed_at)) s"
e2e_wait_for "operator 2 to take the Lease" 40 leads pi0-feed-2
took_over=$((SECONDS - killed_at))
url_is_2() { [[ $(lease_url) == "https://127.0.0.1:${op_fleet[2]}" ]]; }
e2e_wait_for "the Lease to name operator 2's feed" 10 url_is_2
e2e_wait_for "the webhook to read the new leader's feed" 20 from_feed
e2e_log "ok: operator 2 leads after $took_over s; the webhook reads its feed after" \
  "$((SECONDS - killed_at)) s"
sleep 3
kill -TERM "$load_pid"
wait "$load_pid" || true
load=$(cat "$work/load.json")
e2e_log "reviews during the kill: $load"
check_load() {
  /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
problems = []
if d["sent"] < 200: problems.append("only %d reviews sent" % d["sent"])
if d["errors"]: problems.append("%d errors (first: %s)" % (d["errors"], d["firstError"]))
if d["denied"]: problems.append("%d denied" % d["denied"])
if d["stale"]: problems.append("%d decided on stale data" % d["stale"])
if d["longestGapSeconds"] > 2: problems.append("a gap of %.1f s without an answer" % d["longestGapSeconds"])
print("; ".join(problems))
sys.exit(1 if problems else 0)' "$work/load.json"
}
problems=$(check_load) || e2e_fail "reviews across the kill: $problems"
e2e_log "ok: every review answered and admitted on fresh data across the kill"
answered=$(e2e_json 'print(d["ok"])' <"$work/load.json")

# ---------------------------------------------------------------------------------------------
e2e_log "4. freshness: from an agent's sample to the webhook's decision"
read -r steady p50 p99 <<<"$(quantiles "$buckets_at_start" "$buckets_before_kill")"
e2e_log "data age in the steady state, $steady decisions: p50 <= $p50 s, p99 <= $p99 s" \
  "(histogram bucket bounds; sampling and polling every 0.5 s)"
read -r all all50 all99 <<<"$(quantiles "$buckets_at_start" "$(age_buckets)")"
e2e_log "data age over the whole run, the kill included, $all decisions: p50 <= $all50 s," \
  "p99 <= $all99 s"
((steady >= 150)) || e2e_fail "only $steady decisions observed the data age in 10 s"
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$p99') <= 1.0 else 1)" ||
  e2e_fail "p99 data age $p99 s in the steady state is over two sampling intervals (1 s)"

# ---------------------------------------------------------------------------------------------
e2e_log "5. the truth ledger: every decision of step 3 stored once, across the kill"
queue_empty() { [[ $(webhook_metric pi0_webhook_ledger_queued_decisions) == 0 ]]; }
e2e_wait_for "the webhook to hand every decision to the leader" 20 queue_empty
read -r rows distinct integrity <<<"$(/usr/bin/python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows, distinct = db.execute(
    "SELECT COUNT(*), COUNT(DISTINCT pod) FROM decisions WHERE pod LIKE \"load-%\"").fetchone()
print(rows, distinct, db.execute("PRAGMA integrity_check").fetchone()[0])' "$work/ledger.db")"
dropped=$(webhook_metric 'pi0_webhook_ledger_decisions_total{state="dropped"}')
repeated=$(operator_metric 2 'pi0_operator_ledger_decisions_received_total{kind="repeated"}')
e2e_log "the webhook answered $answered reviews; the ledger holds $rows of their decisions" \
  "($distinct pods), integrity $integrity; dropped $dropped, sent again and already stored" \
  "$repeated"
[[ $integrity == ok ]] || e2e_fail "the ledger's integrity check says: $integrity"
((rows == answered && distinct == answered)) ||
  e2e_fail "the ledger holds $rows decisions of $distinct pods for $answered answered reviews"
[[ $dropped == 0 ]] || e2e_fail "the webhook dropped $dropped decisions"

# ---------------------------------------------------------------------------------------------
e2e_log "6. outcomes: what followed two admissions, joined to their decisions"
e2e_register_webhook pi0-ledger "https://127.0.0.1:$webhook_port" --ca-bundle "$work/ca.crt" \
  --hook pods.stability.pi0.io pods --namespace shop --timeout 5
e2e_start_fake_kubelet
outcome_pod() { # NAME [ANNOTATIONS]
  kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: shop, annotations: {${2:-}}}
spec:
  containers:
    - {name: app, image: stand-in, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
}
outcome_pod fine || e2e_fail "kubectl create of pod shop/fine was refused"
outcome_pod oom 'fake-kubelet.pi0.test/restart: "1", fake-kubelet.pi0.test/oom-killed: "true"' ||
  e2e_fail "kubectl create of pod shop/oom was refused"
outcomes_of() { # POD: "uid-matches outcome,outcome" of its newest decision
  /usr/bin/python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT seq, pod_uid FROM decisions WHERE namespace = \"shop\" AND pod = ?"
                 " ORDER BY at_ms DESC LIMIT 1", (sys.argv[2],)).fetchone()
if not row: sys.exit(1)
kinds = [k for (k,) in db.execute(
    "SELECT kind FROM outcomes WHERE decision_seq = ? ORDER BY kind", (row[0],))]
print(row[1] == sys.argv[3], ",".join(kinds))' "$work/ledger.db" "$1" \
    "$(kubectl -n shop get pod "$1" -o jsonpath='{.metadata.uid}')"
}
has_outcomes() { [[ $(outcomes_of "$1" 2>/dev/null) == "True $2" ]]; }
e2e_wait_for "pod fine: ready and node_fine" 40 has_outcomes fine node_fine,ready
e2e_wait_for "pod oom: ready, oom_killed and node_fine" 40 has_outcomes oom \
  node_fine,oom_killed,ready
e2e_log "ok: shop/fine $(outcomes_of fine); shop/oom $(outcomes_of oom) (uid match, outcomes)"
e2e_log "PASS"
