#!/usr/bin/env bash
# pi0-webhook's self-managed certificates on the real control plane (tests/e2e), under steady
# load. Two replicas keep one Secret and the caBundle of a ValidatingWebhookConfiguration that
# starts without one (failurePolicy Fail); their certificates live seconds, not months
# (serving 40 s renewed 25 s before, CA 90 s rotated 60 s before, 4 s propagation), so that a
# minute sees serving renewals and a whole CA rotation. The agents come from a hand-made
# EndpointSlice of an agent Service (--agent-service). It checks:
#  - the replicas create the Secret and write the CA into the caBundle; the webhook serves a
#    certificate the Secret's CA signed;
#  - under four clients creating pods (server-side dry run, so every one goes through the
#    webhook) for the whole rotation, no request fails, and the webhook decided every one;
#  - the serving certificate was renewed and the CA replaced, and at the end the caBundle is
#    exactly the Secret's (new) CA, which signs what the webhook serves.
# Usage: webhook_certificates_e2e_test.sh SOURCE_DIR PI0_WEBHOOK_BINARY PI0_AGENT_BINARY
set -euo pipefail
source_dir=$(cd "${1:?usage: webhook_certificates_e2e_test.sh SOURCE_DIR PI0_WEBHOOK PI0_AGENT}" && pwd)
webhook_bin=$(realpath "${2:?missing PI0_WEBHOOK_BINARY}")
agent_bin=$(realpath "${3:?missing PI0_AGENT_BINARY}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"
command -v openssl >/dev/null || e2e_fail "openssl is not installed"

e2e_cluster_up
e2e_install_crds
work=$PI0_CLUSTER_DIR/webhook-certs-e2e
rm -rf "$work"
mkdir -p "$work"
e2e_at_exit "[[ -e $work/passed ]] || tail -n 30 $work/webhook-1.log >&2 || true"

e2e_create_node node-a 8 16Gi
e2e_create_namespace certs
e2e_create_namespace pi0-system
kubectl label namespace certs kubernetes.io/metadata.name=certs --overwrite >/dev/null

# One quiet agent, found through the EndpointSlice of Service pi0-system/pi0-agent.
E2E_WORK=$work
printf 'signals:\n  cpu: {wave: constant, value: 0.1}\n  memory: {wave: constant, value: 0.1}\n' |
  e2e_install_profile node-a -
e2e_start_synthetic_agent "$agent_bin" node-a --interval 100ms --window 16
agent_port=${E2E_AGENT_URL##*:}
e2e_api POST /apis/discovery.k8s.io/v1beta1/namespaces/pi0-system/endpointslices "{
  \"apiVersion\": \"discovery.k8s.io/v1beta1\", \"kind\": \"EndpointSlice\",
  \"metadata\": {\"name\": \"pi0-agent-1\",
                 \"labels\": {\"kubernetes.io/service-name\": \"pi0-agent\"}},
  \"addressType\": \"IPv4\",
  \"ports\": [{\"name\": \"metrics\", \"port\": $agent_port, \"protocol\": \"TCP\"}],
  \"endpoints\": [{\"addresses\": [\"127.0.0.1\"], \"conditions\": {\"ready\": true},
                  \"topology\": {\"kubernetes.io/hostname\": \"node-a\"}}]}" >/dev/null

port=$(e2e_free_port)
e2e_register_webhook pi0-certs-e2e "https://127.0.0.1:$port" --failure-policy Fail \
  --hook pods.stability.pi0.io pods --namespace certs --timeout 5

# Two replicas on one Secret: the first is registered, the second only races it.
start_replica() { # N PORT
  mkdir -p "$work/replica-$1"
  "$webhook_bin" --kubeconfig "$KUBECONFIG" --bind-address "127.0.0.1:$2" \
    --tls-cert-file "$work/replica-$1/tls.crt" --tls-private-key-file "$work/replica-$1/tls.key" \
    --agent-service pi0-system/pi0-agent --poll-interval 500ms --agent-timeout 300ms \
    --self-managed-secret pi0-system/pi0-webhook-certs --webhook-configuration pi0-certs-e2e \
    --serving-names 127.0.0.1 --certificate-check-interval 2s --serving-validity 40s \
    --serving-renew-before 25s --ca-validity 90s --ca-renew-before 60s --propagation-delay 4s \
    --shutdown-delay 0s </dev/null >>"$work/webhook-$1.log" 2>&1 &
  e2e_at_exit "kill -KILL $! 2>/dev/null || true"
}
start_replica 1 "$port"
start_replica 2 "$(e2e_free_port)"

secret_key() { # KEY: the Secret's value, decoded
  e2e_api GET /api/v1/namespaces/pi0-system/secrets/pi0-webhook-certs |
    e2e_json 'import base64; print(base64.b64decode(d["data"].get(sys.argv[1], "")).decode(), end="")' "$1"
}
bundle() {
  e2e_api GET /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/pi0-certs-e2e |
    e2e_json 'import base64; print(base64.b64decode(d["webhooks"][0]["clientConfig"].get("caBundle", "")).decode(), end="")'
}
fingerprints() { # certificates on stdin -> their SHA-256 fingerprints, one per line
  local pem="" line
  while IFS= read -r line; do
    pem+="$line"$'\n'
    if [[ $line == "-----END CERTIFICATE-----" ]]; then
      openssl x509 -noout -fingerprint -sha256 <<<"$pem" | cut -d= -f2
      pem=""
    fi
  done
}
ready() {
  [[ $(curl -sk --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 \
    "https://127.0.0.1:$port/readyz") == 200 ]]
}
e2e_wait_for "pi0-webhook ready with its self-managed certificate" 60 ready
bundle_holds_ca() {
  local ca
  ca=$(secret_key ca.crt | fingerprints)
  [[ -n $ca && $(bundle | fingerprints) == *"$ca"* ]]
}
e2e_wait_for "the CA in the caBundle" 30 bundle_holds_ca
first_ca=$(secret_key ca.crt | fingerprints)
secret_key ca.crt >"$work/ca-1.crt"
curl -sS --noproxy '*' --cacert "$work/ca-1.crt" -o /dev/null "https://127.0.0.1:$port/healthz" ||
  e2e_fail "the served certificate is not signed by the Secret's CA"
e2e_log "ok: Secret created, CA $first_ca in the caBundle, served certificate signed by it"

decisions() {
  curl -sk --noproxy '*' "https://127.0.0.1:$port/metrics" |
    awk '/^pi0_webhook_decisions_total\{endpoint="pods"/ {n += $2} END {print n + 0}'
}
decided_before=$(decisions)

# Steady load: four clients creating pods for 75 s; each logs its HTTP codes.
client() { # N
  local deadline=$((SECONDS + 75)) i=0 code
  while ((SECONDS < deadline)); do
    i=$((i + 1))
    code=$(curl -sS --noproxy '*' --max-time 10 --cacert "$PI0_CA_FILE" \
      -H "Authorization: Bearer $PI0_TOKEN" -H 'Content-Type: application/json' \
      -o "$work/last-$1.json" -w '%{http_code}' -X POST \
      "$PI0_APISERVER/api/v1/namespaces/certs/pods?dryRun=All" --data "{
        \"apiVersion\": \"v1\", \"kind\": \"Pod\",
        \"metadata\": {\"name\": \"load-$1-$i\", \"namespace\": \"certs\"},
        \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"stand-in\",
          \"resources\": {\"requests\": {\"cpu\": \"100m\", \"memory\": \"64Mi\"}}}]}}" || echo 000)
    echo "$code" >>"$work/codes-$1"
    [[ $code == 201 ]] || cp "$work/last-$1.json" "$work/failed-$1-$i.json" 2>/dev/null || true
  done
}
pids=()
for n in 1 2 3 4; do
  client "$n" &
  pids+=("$!")
done
# Watch the rotation while the load runs: every CA and serving certificate seen.
: >"$work/cas"
: >"$work/servings"
while e2e_pid_alive "${pids[0]}"; do
  secret_key ca.crt | fingerprints >>"$work/cas" || true
  secret_key tls.crt | fingerprints >>"$work/servings" || true
  sleep 1
done
for pid in "${pids[@]}"; do wait "$pid"; done

total=$(cat "$work"/codes-* | wc -l)
failed=$(grep -cv '^201$' <(cat "$work"/codes-*) || true)
cas=$(sort -u "$work/cas" | wc -l)
servings=$(sort -u "$work/servings" | wc -l)
e2e_log "load: $total requests, $failed failed; $cas CAs and $servings serving certificates seen"
((failed == 0)) || e2e_fail "$failed of $total requests failed during the rotation: $(
  grep -v '^201$' <(cat "$work"/codes-*) | sort | uniq -c | tr '\n' ' ')$(
  cat "$work"/failed-*.json 2>/dev/null | head -c 600)"
((total >= 40)) || e2e_fail "only $total requests in 75 s: the load was not steady"
((cas >= 2)) || e2e_fail "the CA was not replaced during the run ($cas seen)"
((servings >= 3)) || e2e_fail "the serving certificate was not renewed during the run ($servings seen)"
decided=$(($(decisions) - decided_before))
((decided >= total)) || e2e_fail "the webhook decided $decided pods, fewer than the $total requests"
grep -q '"step":"SwitchToNextCa"' "$work"/webhook-*.log ||
  e2e_fail "no replica logged the switch to the next CA"
e2e_log "ok: $total pod creations through a CA rotation and serving renewals, none failed"

# Converged: the bundle is exactly the Secret's current CA, which signs what is served.
converged() {
  local ca
  ca=$(secret_key ca.crt | fingerprints)
  [[ -z $(secret_key next-ca.crt) && $(bundle | fingerprints) == "$ca" ]]
}
e2e_wait_for "the caBundle to hold only the current CA" 30 converged
[[ $(secret_key ca.crt | fingerprints) != "$first_ca" ]] || e2e_fail "the CA is still the first one"
secret_key ca.crt >"$work/ca-now.crt"
served() {
  curl -sS --noproxy '*' --cacert "$work/ca-now.crt" -o /dev/null --max-time 2 \
    "https://127.0.0.1:$port/healthz"
}
e2e_wait_for "the served certificate to be signed by the current CA" 10 served
grep -q '"level":"error"' "$work"/webhook-*.log && e2e_fail "a replica logged an error: $(
  grep -h '"level":"error"' "$work"/webhook-*.log | head -3)"
e2e_log "ok: caBundle = the Secret's CA, which signs the served certificate"

# What /metrics says of it: steps written, reloads of the files, the expiry of what is served.
metrics=$(curl -sk --noproxy '*' "https://127.0.0.1:$port/metrics")
for series in 'pi0_webhook_certificate_steps_total [1-9]' \
  'pi0_webhook_certificate_reloads_total{result="loaded"} [1-9]' \
  'pi0_webhook_certificate_reconciles_total{result="ok"} [1-9]' \
  'pi0_webhook_certificate_expiry_timestamp_seconds [1-9]' \
  'pi0_webhook_fleet_polls_total{result="ok"} [1-9]'; do
  grep -q "^$series" <<<"$metrics" || e2e_fail "/metrics lacks '$series': $(grep pi0_webhook_cert <<<"$metrics")"
done
e2e_log "ok: the certificate metrics count the steps, reloads and reconciles"

touch "$work/passed"
e2e_log "PASS: webhook_certificates_e2e_test"
