#!/usr/bin/env bash
# pi0-webhook end to end on the real control plane (tests/e2e): registered by URL in a
# ValidatingWebhookConfiguration with its caBundle, three stand-in Nodes whose agents replay a
# light (node-a), a heavy (node-b) and a light but leaking (node-c) synthetic load, and namespace
# `shop`. It checks:
#  - `kubectl create` of a pod that fits node-a is admitted; one pinned to node-b is denied with
#    node-b's failing gate, its value and threshold in the message;
#  - once node-c's memory starts to leak, a pod pinned there is admitted with the warning that
#    names node-c's expected time to memory trouble;
#  - a pod of a Channel whose status says Inactive is denied, saying so; scaling a Deployment
#    of that channel creates no pod (the ReplicaSet's creations are denied);
#  - Channels closing a dependency cycle, and a ShutdownMatrix whose first level leaves no
#    margin above the admission gate, are refused at `kubectl apply` with what is wrong;
#  - bad input on the wire (not JSON, a wrong kind, a body over the limit) is a 4xx and the
#    webhook keeps serving;
#  - a keep-alive connection left idle for 7 s still carries the next request: the apiserver
#    reuses connections idle up to 90 s and does not resend a POST whose connection the server
#    closed under it (the create would fail with "failed calling webhook: EOF");
#  - on SIGTERM /readyz turns 503 while requests are still answered; with the webhook gone and
#    failurePolicy Ignore, pods are created.
# Usage: webhook_e2e_test.sh SOURCE_DIR PI0_WEBHOOK_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: webhook_e2e_test.sh SOURCE_DIR PI0_WEBHOOK PI0_AGENT}" && pwd)
webhook_bin=$(realpath "${2:?missing PI0_WEBHOOK_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"
command -v openssl >/dev/null || e2e_fail "openssl is not installed"

# Bad flags: exit 2 with a message that says what to give.
bad_flags() { # EXPECTED_PHRASE ARGS...
  local phrase=$1 out code=0
  shift
  out=$("$webhook_bin" "$@" 2>&1) || code=$?
  [[ $code == 2 && $out == *"$phrase"* ]] ||
    e2e_fail "pi0-webhook $* exited $code, not 2 with '$phrase': $out"
}
tls=(--tls-cert-file c --tls-private-key-file k)
bad_flags "where are the agents?" "${tls[@]}"
bad_flags "exclude each other" "${tls[@]}" --agents n=http://127.0.0.1:1 --agent-service a/b
bad_flags "needs --webhook-configuration" "${tls[@]}" --agent-service pi0/pi0-agent \
  --self-managed-secret pi0/certs --serving-names pi0-webhook.pi0.svc
bad_flags "is not NAMESPACE/NAME" "${tls[@]}" --agent-service pi0/pi0-agent \
  --self-managed-secret certs
bad_flags "renew-before must be shorter" "${tls[@]}" --agent-service pi0/pi0-agent \
  --self-managed-secret pi0/certs --webhook-configuration pi0 --serving-names a \
  --serving-validity 1h --serving-renew-before 2h
bad_flags "not a number from 1 to 256" "${tls[@]}" --agent-service pi0/pi0-agent \
  --server-threads 0
bad_flags "give --tls-cert-file" --agent-service pi0/pi0-agent
e2e_log "ok: bad flags exit 2 and say what is wrong"

e2e_cluster_up
e2e_install_crds
work=$PI0_CLUSTER_DIR/webhook-e2e
mkdir -p "$work"
e2e_at_exit "[[ -e $work/passed ]] || tail -n 40 $work/webhook.log >&2 || true"

# A CA and the webhook's serving certificate for 127.0.0.1.
e2e_make_certificates "$work"

e2e_create_node node-a 4 8Gi
e2e_create_node node-b 4 8Gi
e2e_create_node node-c 4 8Gi
e2e_start_fake_kubelet
e2e_create_namespace shop

E2E_WORK=$work
for spec in node-a:0.2 node-b:0.9 node-c:0.2; do
  e2e_write_profile "${spec%%:*}" "{wave: constant, value: ${spec##*:}}"
  e2e_start_synthetic_agent "$agent_bin" "${spec%%:*}" --interval 100ms --window 16
done
agents=$(e2e_agents_flag node-a node-b node-c)

webhook_port=$(e2e_free_port)
start_webhook() {
  "$webhook_bin" --kubeconfig "$KUBECONFIG" --bind-address "127.0.0.1:$webhook_port" \
    --tls-cert-file "$work/tls.crt" --tls-private-key-file "$work/tls.key" --agents "$agents" \
    --poll-interval 500ms --agent-timeout 300ms --shutdown-delay 8s \
    </dev/null >>"$work/webhook.log" 2>&1 &
  webhook_pid=$!
  e2e_at_exit "kill -KILL $webhook_pid 2>/dev/null || true"
}
start_webhook
https() { curl -sS --noproxy '*' --cacert "$work/ca.crt" --max-time 5 "$@"; }
ready() { [[ $(https -o /dev/null -w '%{http_code}' "https://127.0.0.1:$webhook_port/readyz") == 200 ]]; }
e2e_wait_for "pi0-webhook ready" 60 ready
# The agents' windows (16 samples at 100 ms) must be full before the gates have values.
fingerprints_ready() {
  local url
  for url in ${agents//,/ }; do
    curl -sf --noproxy '*' "${url#*=}/fingerprint" | grep -q '"ready":true' || return 1
  done
}
e2e_wait_for "the agents' windows to fill" 30 fingerprints_ready

register() { # FAILURE_POLICY
  e2e_register_webhook pi0-e2e "https://127.0.0.1:$webhook_port" --ca-bundle "$work/ca.crt" \
    --failure-policy "$1" \
    --hook pods.stability.pi0.io pods --namespace shop --timeout 5 \
    --hook resources.stability.pi0.io channels \
    --hook matrices.stability.pi0.io shutdownmatrices
}
# 1.20 does not label namespaces with their name by itself.
kubectl label namespace shop kubernetes.io/metadata.name=shop --overwrite >/dev/null
register Fail

pod() { # NAME [NODE] [CHANNEL]
  local selector="" pod_labels="{app: demo}"
  [[ -n ${2:-} ]] && selector="nodeSelector: {kubernetes.io/hostname: $2}"
  [[ -n ${3:-} ]] && pod_labels="{app: demo, stability.pi0.io/channel: $3}"
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: shop, labels: $pod_labels}
spec:
  $selector
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
}
# expect_refused WHAT OUTPUT PHRASE...: kubectl failed and said each phrase.
expect_refused() {
  local what=$1 out=$2
  shift 2
  local phrase
  for phrase in "$@"; do
    [[ $out == *"$phrase"* ]] || e2e_fail "$what: expected '$phrase' in: $out"
  done
  e2e_log "ok: refused $what: $(head -c 400 <<<"$out")"
}

for n in a b c; do kubectl label node "node-$n" "kubernetes.io/hostname=node-$n" --overwrite >/dev/null; done
pod light | kubectl create -f - >/dev/null || e2e_fail "a pod that fits node-a was refused"
e2e_log "ok: a pod that fits node-a is admitted"
if out=$(pod pinned node-b | kubectl create -f - 2>&1); then
  e2e_fail "a pod pinned to the overloaded node-b was admitted"
fi
expect_refused "a pod pinned to node-b" "$out" "denied the request" "node-b" "isolation" "<"

# node-c's memory starts to leak (a new profile restarts its time): 0.2 -> 1.0 over 40 s. Once
# its agent's forecast sees the trend (seconds to memory trouble under the webhook's default
# 60), a pod pinned there still passes the gates and is admitted with a warning naming it.
e2e_install_profile node-c - <<'YAML'
signals:
  cpu: {wave: constant, value: 0.2}
  memory: {wave: ramp, from: 0.2, to: 1.0, overSeconds: 40}
YAML
node_c_url=${E2E_AGENT_URLS[node-c]}
leaking() {
  curl -sf --noproxy '*' "$node_c_url/fingerprint" | /usr/bin/python3 -c '
import json, sys
f = (json.load(sys.stdin)["signals"]["memory"].get("forecast") or {})
sys.exit(0 if f.get("secondsToTrouble") is not None and f["secondsToTrouble"] < 50 else 1)'
}
e2e_wait_for "node-c's forecast to expect memory trouble within 50 s" 15 leaking
sleep 1 # a poll of the webhook's fleet view (every 500 ms)
out=$(pod leaky node-c | kubectl create -f - 2>&1) || e2e_fail "a pod pinned to the leaking node-c was refused: $out"
[[ $out == *"pi0: node node-c expects memory trouble in "*" s"* ]] ||
  e2e_fail "no warning naming node-c's time to memory trouble in: $out"
e2e_log "ok: a pod on the leaking node-c is admitted with: $(grep -o 'pi0: node node-c[^"]*' <<<"$out" | head -1)"

# A Channel shut down by the operator (its status, written here as the operator would).
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: batch, namespace: shop}
spec: {targets: [{kind: Deployment, name: batch}]}
YAML
channel=$(e2e_api GET /apis/stability.pi0.io/v1alpha1/namespaces/shop/channels/batch)
status_body=$(e2e_json 'd["status"] = {"state": "Inactive"}; print(json.dumps(d))' <<<"$channel")
e2e_api PUT /apis/stability.pi0.io/v1alpha1/namespaces/shop/channels/batch/status \
  "$status_body" >/dev/null
if out=$(pod batch-1 "" batch | kubectl create -f - 2>&1); then
  e2e_fail "a pod of an Inactive channel was admitted"
fi
expect_refused "a pod of the Inactive channel batch" "$out" "shop/batch" "shut down"

kubectl apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: batch}}
  template:
    metadata: {labels: {app: batch, stability.pi0.io/channel: batch}}
    spec: {containers: [{name: c, image: stand-in}]}
YAML
failed_create() {
  kubectl get events -n shop --field-selector reason=FailedCreate -o jsonpath='{.items[*].message}' |
    grep -q 'shut down'
}
e2e_wait_for "the ReplicaSet's pod creations to be denied" 60 failed_create
[[ $(kubectl get pods -n shop -l app=batch -o name | wc -l) == 0 ]] ||
  e2e_fail "pods of the shut-down channel exist: $(kubectl get pods -n shop -l app=batch -o name)"
e2e_log "ok: scaling a Deployment of a shut-down channel creates no pod"

# Pi0's own resources.
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: a, namespace: shop}
spec: {targets: [{kind: Deployment, name: a}], dependsOn: [{name: b}]}
YAML
if out=$(kubectl apply -f - 2>&1 <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: b, namespace: shop}
spec: {targets: [{kind: Deployment, name: b}], dependsOn: [{name: a}]}
YAML
); then
  e2e_fail "a Channel closing a dependency cycle was admitted"
fi
expect_refused "a dependency cycle" "$out" "cycle" "shop/a" "shop/b"
if out=$(kubectl apply -f - 2>&1 <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: tight}
spec:
  levels: [{name: normal, upperBound: 0.5}, {name: critical}]
  rows: [{channel: {name: batch, namespace: shop}, critical: false,
          cells: [{level: critical, action: Shutdown, order: 0}]}]
YAML
); then
  e2e_fail "a matrix whose first level is under the admission gate was admitted"
fi
expect_refused "a matrix without a margin above the admission gate" "$out" "normal" "0.7"

# Bad input on the wire: 4xx, and the webhook goes on.
url=https://127.0.0.1:$webhook_port/validate-pods
code=$(https -o "$work/bad.txt" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data 'not json' "$url")
[[ $code == 400 ]] || e2e_fail "malformed JSON answered $code: $(cat "$work/bad.txt")"
code=$(https -o "$work/bad.txt" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data '{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}' "$url")
[[ $code == 400 ]] || e2e_fail "a wrong kind answered $code: $(cat "$work/bad.txt")"
head -c $((4 << 20)) /dev/zero | tr '\0' ' ' >"$work/huge.json"
code=$(https -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "@$work/huge.json" "$url" || true)
[[ $code == 413 ]] || e2e_fail "a 4 MiB body answered $code"
ready || e2e_fail "the webhook stopped serving after bad input"
e2e_log "ok: bad input answered 400/400/413, still serving"

# Keep-alive: the connection the apiserver leaves idle is still open when it is used again.
/usr/bin/python3 - "$webhook_port" "$work/ca.crt" <<'PY' || e2e_fail "an idle keep-alive connection was closed (above)"
import http.client, ssl, sys, time
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), timeout=10,
                                   context=ssl.create_default_context(cafile=sys.argv[2]))
for i in range(2):
    conn.request("GET", "/readyz")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
    if i == 0:
        sock = conn.sock
        time.sleep(7)
assert conn.sock is sock, "the second request needed a new connection"
PY
e2e_log "ok: a keep-alive connection idle for 7 s carried the next request"

# SIGTERM: not ready, still answering, then gone; with failurePolicy Ignore pods are created.
# The shutdown delay (8 s) leaves room for a slow kubectl on a loaded machine: with 3 s, a
# kubectl that took 3 s to start met a webhook already gone.
kill -TERM "$webhook_pid"
sleep 0.5
code=$(https -o /dev/null -w '%{http_code}' "https://127.0.0.1:$webhook_port/readyz" || true)
[[ $code == 503 ]] || e2e_fail "/readyz during the shutdown delay answered $code, not 503"
pod during-shutdown | kubectl create -f - >/dev/null ||
  e2e_fail "a pod was refused while the webhook was shutting down"
e2e_log "ok: during the shutdown delay /readyz is 503 and requests are answered"
gone() { ! e2e_pid_alive "$webhook_pid"; }
e2e_wait_for "the webhook to exit" 30 gone
register Ignore
pod after-webhook | kubectl create -f - >/dev/null ||
  e2e_fail "with the webhook stopped and failurePolicy Ignore a pod was refused"
e2e_log "ok: with the webhook gone and failurePolicy Ignore, pods are created"

touch "$work/passed"
e2e_log "PASS: webhook_e2e_test"
