#!/usr/bin/env bash
# Pi0's dashboards and alerting rules against the real programs and a real Prometheus, on the
# real control plane (tests/e2e). It runs:
#  - four stand-in Nodes with a pi0-agent each: node-a and node-b replay
#    examples/profiles/steady-node.yaml (node-a also saves its window, --state-dir), node-c a
#    steady node whose memory leaks; node-gpu reads this machine's /proc and /sys and a GPU
#    from the FAKE NVML library of tests/substrates/gpu (no GPU here), with the FAKE CUDA probe
#    library next to a copy of the agent, an NVML error for 3 seconds and two XID errors;
#  - pi0-webhook in the self-managed certificate mode (the chart's default), registered for
#    pods of namespace pi0-demo (failurePolicy Ignore) and for Channels and ShutdownMatrices,
#    reading the fleet feed (issue 17) with the token of service account pi0-system/pi0-webhook
#    (audience pi0-fleet): it polls the agents itself until the operator leads and publishes;
#    a client creating dry-run pods through the apiserver every half second, two malformed
#    requests, a pod pinned to an overloaded node and one of a shut-down channel;
#  - pi0-operator (leader-elected, Lease default/pi0-operator) with examples/resources/ (the
#    shop: workloads, Channels, the ShutdownMatrix default), publishing the fleet feed over
#    HTTPS (a certificate for DNS:pi0-fleet from a CA of its own) to the webhook and the
#    operator's own standby role (--fleet-readers, --fleet-token-file), its step interval and
#    dwell shortened to 1 s and 3 s, keeping the truth ledger (--outcome-horizon 5s,
#    --ledger-check-interval 5s, so that its gates' ratios have judged decisions) and
#    batch-reports' restoreTimeoutSeconds to 1 s, so that its restore stalls once (the fake
#    kubelet keeps new pods NotReady for 3 s);
#  - Prometheus (Debian's) scraping the three programs every second with
#    alerts/pi0.rules.yaml loaded.
# The load: steady (level normal), then examples/profiles/overload-step.yaml on node-a/b/c with
# its step moved to the first second (ℓ ≈ 0.95: the operator degrades and shuts down), then
# steady again (everything is restored). It checks:
#  - the scenario happened: degrade, shutdown and restore steps, a stalled restore, pod
#    denials for failed gates and for a shut-down channel, a bad request; the webhook polled
#    the agents itself (its feed requests failing) before the operator led and read the feed
#    once it did (pi0_webhook_fleet_source, full and delta pages, the operator's answers), and
#    its pod decisions observed the age of their data; the counters of bad
#    requests and of sample errors were there at 0 before (so that a rate sees the first
#    event); the matrix's number of levels and stabilityThreshold are exported; a Channel's
#    state series follows it (batch-reports Inactive under the overload, Active again after);
#  - alerts follow real series: Pi0LoadLevelRaised and Pi0ClusterAtCriticalLevel are active
#    during the overload;
#    Pi0RestoreStalled, Pi0NodeMemoryExhaustionImminent (node-c), Pi0AgentSampleErrors
#    (node-gpu) and Pi0WebhookBadRequests are active at the end (pending: their `for` is
#    longer than the test), Pi0OperatorNoLeader, Pi0NodesWithoutFreshData,
#    Pi0AgentNotSampling and Pi0WebhookFleetFeedFallback are not; every rule evaluates without
#    error;
#  - every metric named in a dashboard panel, a dashboard variable or an alert is in what the
#    programs expose (their /metrics), every variable has values, and every panel query
#    returns data from Prometheus's HTTP API (monitoring_check.py live).
# Usage: monitoring_e2e_test.sh SOURCE_DIR PI0_AGENT PI0_OPERATOR PI0_WEBHOOK FAKE_NVML FAKE_CUDA_PROBE
set -euo pipefail
usage="usage: monitoring_e2e_test.sh SOURCE_DIR PI0_AGENT PI0_OPERATOR PI0_WEBHOOK FAKE_NVML FAKE_CUDA_PROBE"
source_dir=$(cd "${1:?$usage}" && pwd)
agent_bin=$(realpath "${2:?$usage}")
operator_bin=$(realpath "${3:?$usage}")
webhook_bin=$(realpath "${4:?$usage}")
fake_nvml=$(realpath "${5:?$usage}")
fake_probe=$(realpath "${6:?$usage}")
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"
for cmd in prometheus openssl curl; do
  command -v "$cmd" >/dev/null ||
    e2e_fail "$cmd not found: install the Debian package $cmd (scripts/setup.sh does)"
done
for f in "$agent_bin" "$operator_bin" "$webhook_bin" "$fake_nvml" "$fake_probe"; do
  [[ -f $f ]] || e2e_fail "$f does not exist: build it first"
done

e2e_cluster_up
e2e_install_crds
# The GatePolicy both programs read (calibration's thresholds panel).
kubectl create -f - >/dev/null <<'EOF'
apiVersion: stability.pi0.io/v1alpha1
kind: GatePolicy
metadata: {name: default}
spec: {mode: Recommend, interval: 2s}
EOF
work=$PI0_CLUSTER_DIR/monitoring-e2e
mkdir -p "$work"
NS=pi0-demo
k() { kubectl --request-timeout=30s "$@"; }

# ---------------------------------------------------------------------------------------------
e2e_log "set-up: Nodes, the fake kubelet, agents"
for node in node-a node-b node-c; do e2e_create_node "$node" 8 32Gi; done
# This machine's own load counts little in ℓ (capacity-weighted): 1 CPU and 2 GiB.
e2e_create_node node-gpu 1 2Gi 1 pool=gpu
e2e_start_fake_kubelet --ready-delay 3
e2e_create_namespace pi0-system

E2E_WORK=$work
# node-c: steady cpu, memory leaking from 45 % at about 0.18 % a second (exhaustion in about
# 5 minutes, which the agent projects and Pi0NodeMemoryExhaustionImminent sees).
cat >"$work/leaking-node.yaml" <<'YAML'
memoryTotalBytes: 34359738368   # 32 GiB
signals:
  cpu:        {wave: noise, mean: 0.35, std: 0.02, seed: 7}
  memory:     {wave: ramp, from: 0.45, to: 0.99, overSeconds: 300}
  psi_cpu:    {wave: constant, value: 0.01}
  psi_memory: {wave: constant, value: 0.0}
  psi_io:     {wave: noise, mean: 0.02, std: 0.005, seed: 8}
  disk:       {wave: noise, mean: 0.10, std: 0.02, seed: 9}
  network:    {wave: noise, mean: 0.15, std: 0.03, seed: 10}
YAML
# The example overload, with its step at the first second instead of after a full window.
sed 's/atSeconds: 64/atSeconds: 1/' "$source_dir/examples/profiles/overload-step.yaml" \
  >"$work/overload.yaml"
grep -q 'atSeconds: 1}' "$work/overload.yaml" || e2e_fail "examples/profiles/overload-step.yaml changed: no 'atSeconds: 64' to move"
e2e_install_profile node-a "$source_dir/examples/profiles/steady-node.yaml"
e2e_install_profile node-b "$source_dir/examples/profiles/steady-node.yaml"
e2e_install_profile node-c "$work/leaking-node.yaml"

# The FAKE GPU of node-gpu (see tests/substrates/gpu/fake_nvml.c and fake_cuda_probe.c).
nvml_state=$work/nvml.state
gpu_line='gpu name="Fake H100" uuid=GPU-fake-0 util=35 mem_total=85899345920 mem_used=8589934592 temp=51 power_mw=182000'
cuda_line='cuda uuid=GPU-fake-0 name="Fake H100" sm=132 sm_clock=1980 mem_clock=2619 bus=5120 mem_total=85899345920 nominal=3350000000000 achieved=3000000000000'
printf '%s xid=0\n%s\n' "$gpu_line" "$cuda_line" >"$nvml_state"
# The agent loads libpi0_cuda_probe.so from its own directory.
mkdir -p "$work/gpu-agent"
cp "$agent_bin" "$work/gpu-agent/pi0-agent"
cp "$fake_probe" "$work/gpu-agent/libpi0_cuda_probe.so"

# Each with a sample every 200 ms and a window of 16; node-gpu's loads the FAKE NVML library.
agent=(--interval 200ms --window 16)
e2e_start_synthetic_agent "$agent_bin" node-a "${agent[@]}" --state-dir "$work/state-a" \
  --state-interval 1s
e2e_start_synthetic_agent "$agent_bin" node-b "${agent[@]}"
e2e_start_synthetic_agent "$agent_bin" node-c "${agent[@]}"
PI0_FAKE_NVML_STATE=$nvml_state e2e_start_node_agent "$work/gpu-agent/pi0-agent" node-gpu \
  "${agent[@]}" --nvml-library "$fake_nvml" --gpu-probe-interval 1m
NODES=(node-a node-b node-c node-gpu)
agents=$(e2e_agents_flag "${NODES[@]}")
agents_ready() {
  local node
  for node in "${NODES[@]}"; do
    curl -sf --noproxy '*' --max-time 2 "${E2E_AGENT_URLS[$node]}/fingerprint" | grep -q '"ready":true' ||
      return 1
  done
}
e2e_wait_for "the four agents ready" 30 agents_ready

# The fleet feed's readers, as the chart makes them: service accounts whose tokens are for the
# audience pi0-fleet; and the feed's serving pair, for the DNS name readers check (pi0-fleet).
FLEET_READERS=system:serviceaccount:pi0-system:pi0-webhook,system:serviceaccount:pi0-system:pi0-operator
for sa in pi0-webhook pi0-operator; do
  k -n pi0-system create serviceaccount "$sa" >/dev/null
  k -n pi0-system create token "$sa" --audience pi0-fleet --duration 1h >"$work/$sa.token" ||
    e2e_fail "kubectl create token $sa failed (kubectl 1.24 or later makes tokens)"
done
e2e_make_fleet_certificates "$work"

# ---------------------------------------------------------------------------------------------
e2e_log "pi0-webhook, self-managed certificates, reading the fleet feed (no leader yet: the agents)"
k apply -f "$source_dir/examples/resources/00-namespace.yaml" >/dev/null
e2e_wait_for "the default ServiceAccount token in $NS" 60 e2e_namespace_has_token "$NS"
# 1.20 does not label namespaces with their name by itself.
k label namespace "$NS" "kubernetes.io/metadata.name=$NS" --overwrite >/dev/null
webhook_port=$(e2e_free_port)
e2e_register_webhook pi0-monitoring "https://127.0.0.1:$webhook_port" --failure-policy Ignore \
  --hook pods.stability.pi0.io pods --namespace "$NS" --timeout 5 \
  --hook channels.stability.pi0.io channels \
  --hook shutdownmatrices.stability.pi0.io shutdownmatrices
mkdir -p "$work/webhook"
"$webhook_bin" --kubeconfig "$KUBECONFIG" --bind-address "127.0.0.1:$webhook_port" \
  --tls-cert-file "$work/webhook/tls.crt" --tls-private-key-file "$work/webhook/tls.key" \
  --agents "$agents" --poll-interval 500ms --agent-timeout 300ms \
  --self-managed-secret pi0-system/pi0-webhook-certs --webhook-configuration pi0-monitoring \
  --serving-names 127.0.0.1 --shutdown-delay 0s --fleet-lease default/pi0-operator \
  --fleet-ca-file "$work/fleet-ca.crt" --fleet-token-file "$work/pi0-webhook.token" \
  --gate-policy default \
  </dev/null >"$work/webhook.log" 2>&1 &
webhook_pid=$!
disown "$webhook_pid"
e2e_at_exit "kill -KILL $webhook_pid 2>/dev/null || true"
e2e_at_exit "[[ -e $work/passed ]] || { echo '--- webhook.log'; tail -n 20 $work/webhook.log; } >&2"
webhook_ready() {
  e2e_pid_alive "$webhook_pid" || { tail -n 20 "$work/webhook.log" >&2; e2e_fail "pi0-webhook exited"; }
  [[ $(curl -sk --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 \
    "https://127.0.0.1:$webhook_port/readyz") == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 60 webhook_ready
ca_in_bundles() {
  e2e_api GET /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/pi0-monitoring |
    e2e_json 'sys.exit(0 if all(w["clientConfig"].get("caBundle") for w in d["webhooks"]) else 1)'
}
e2e_wait_for "the webhook's CA in every caBundle" 30 ca_in_bundles
e2e_api GET /api/v1/namespaces/pi0-system/secrets/pi0-webhook-certs |
  e2e_json 'import base64; print(base64.b64decode(d["data"]["ca.crt"]).decode(), end="")' \
    >"$work/webhook-ca.crt"
https() { curl -sS --noproxy '*' --cacert "$work/webhook-ca.crt" --max-time 5 "$@"; }
https -o /dev/null "https://127.0.0.1:$webhook_port/healthz" ||
  e2e_fail "the webhook's certificate is not signed by the CA in its Secret"

# ---------------------------------------------------------------------------------------------
e2e_log "Prometheus, scraping every second, with alerts/pi0.rules.yaml"
operator_port=$(e2e_free_port)
probe_port=$(e2e_free_port)
fleet_port=$(e2e_free_port)
prom_port=$(e2e_free_port)
PROM=http://127.0.0.1:$prom_port
cp "$source_dir/alerts/pi0.rules.yaml" "$work/pi0.rules.yaml"
{
  cat <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - $work/pi0.rules.yaml
scrape_configs:
  - job_name: pi0-agent
    static_configs:
YAML
  # The node label, as the chart's PodMonitor sets it from __meta_kubernetes_pod_node_name.
  for node in "${NODES[@]}"; do
    printf "      - targets: ['%s']\n        labels: {node: %s}\n" "${E2E_AGENT_URLS[$node]#http://}" "$node"
  done
  cat <<YAML
  - job_name: pi0-operator
    static_configs:
      - targets: ['127.0.0.1:$operator_port']
  - job_name: pi0-webhook
    scheme: https
    tls_config:
      ca_file: $work/webhook-ca.crt
    static_configs:
      - targets: ['127.0.0.1:$webhook_port']
YAML
} >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" </dev/null >"$work/prometheus.log" 2>&1 &
prom_pid=$!
disown "$prom_pid"
e2e_at_exit "e2e_stop_pid $prom_pid 5"
e2e_at_exit "[[ -e $work/passed ]] || { echo '--- prometheus.log'; tail -n 20 $work/prometheus.log; } >&2"
# promql EXPR: the JSON result of an instant query.
promql() {
  curl -sf --noproxy '*' --max-time 10 --get "$PROM/api/v1/query" --data-urlencode "query=$1"
}
# holds EXPR: the query returns at least one series.
holds() { promql "$1" 2>/dev/null | e2e_json 'sys.exit(0 if d["data"]["result"] else 1)' 2>/dev/null; }
prometheus_up() {
  e2e_pid_alive "$prom_pid" || { tail -n 20 "$work/prometheus.log" >&2; e2e_fail "prometheus exited"; }
  holds 'count(up{job=~"pi0-agent|pi0-webhook"} == 1) == 5'
}
e2e_wait_for "Prometheus scraping the four agents and the webhook" 60 prometheus_up

# The error counters exist before the first error, at 0, so that a rate sees that error.
for series in 'pi0_agent_sample_errors_total{node="node-gpu",source="gpu"}' \
  'pi0_webhook_bad_requests_total{endpoint="pods"}'; do
  e2e_wait_for "$series at 0 in Prometheus" 10 holds "$series == 0"
done
# No operator leads yet: the webhook finds no feed in the Lease and polls the agents itself.
e2e_wait_for "the webhook polling the agents itself, its feed requests failing (no leader yet)" 10 \
  holds 'pi0_webhook_fleet_source{source="agents"} == 1 and on (instance) pi0_webhook_fleet_feed_errors_total > 0'
# A transient NVML error (counted in pi0_agent_sample_errors_total) and two XID errors, while
# Prometheus watches: the error lasts 3 s, a few failed samples.
printf '%s\n%s\n' "${gpu_line/util=35/util=UNKNOWN} xid=2" "$cuda_line" >"$nvml_state.new"
mv "$nvml_state.new" "$nvml_state"
sleep 3
printf '%s xid=2\n%s\n' "$gpu_line" "$cuda_line" >"$nvml_state.new"
mv "$nvml_state.new" "$nvml_state"

# ---------------------------------------------------------------------------------------------
e2e_log "the shop (examples/resources) and pi0-operator"
k apply -f "$source_dir/examples/resources/" >/dev/null
# Faster than the example's 30 s steps and 120 s dwell; a stalled restore retried after 1 s.
k patch shutdownmatrix default --type=merge -p \
  '{"spec":{"stepIntervalSeconds":1,"hysteresis":{"margin":0.05,"dwellSeconds":3},"restore":{"backoffSeconds":1,"maxBackoffSeconds":2}}}' \
  >/dev/null
k patch channel batch-reports -n "$NS" --type=merge -p '{"spec":{"restoreTimeoutSeconds":1}}' >/dev/null
# workloads NAME=REPLICAS...: every Deployment and StatefulSet has those replicas, all ready.
workloads() {
  k get deployments,statefulsets -n "$NS" -o json | e2e_json '
want = dict(a.split("=") for a in sys.argv[1:])
have = {o["metadata"]["name"]: (o["spec"]["replicas"], (o.get("status") or {}).get("readyReplicas") or 0)
        for o in d["items"]}
sys.exit(0 if all(have.get(n) == (int(r), int(r)) for n, r in want.items()) else 1)' "$@"
}
ORIGINAL=(database=3 api=4 frontend=3 recommendations=4 recommendations-cache=2 batch-reports=2)
e2e_wait_for "the shop's workloads ready" 120 workloads "${ORIGINAL[@]}"

"$operator_bin" --kubeconfig "$KUBECONFIG" --leader-elect --identity pi0-monitoring-1 \
  --metrics-bind-address "127.0.0.1:$operator_port" --health-probe-bind-address "127.0.0.1:$probe_port" \
  --agents "$agents" --poll-interval 500ms --agent-timeout 300ms --prometheus-url "$PROM" \
  --fleet-bind-address "127.0.0.1:$fleet_port" --fleet-cert-file "$work/fleet.crt" \
  --fleet-key-file "$work/fleet.key" --fleet-readers "$FLEET_READERS" \
  --fleet-advertise-url "https://127.0.0.1:$fleet_port" --fleet-lease default/pi0-operator \
  --fleet-ca-file "$work/fleet-ca.crt" --fleet-token-file "$work/pi0-operator.token" \
  --ledger-path "$work/ledger.db" --ledger-writers "system:serviceaccount:pi0-system:pi0-webhook" \
  --outcome-horizon 5s --ledger-check-interval 5s --gate-policy default \
  </dev/null >"$work/operator.log" 2>&1 &
operator_pid=$!
disown "$operator_pid"
e2e_at_exit "kill -KILL $operator_pid 2>/dev/null || true"
e2e_at_exit "[[ -e $work/passed ]] || { echo '--- operator.log'; tail -n 30 $work/operator.log; } >&2"
# metric COMPONENT SERIES: the value of SERIES (labels as exposed) now.
metric() {
  local text
  case $1 in
    operator) text=$(curl -sf --noproxy '*' --max-time 5 "http://127.0.0.1:$operator_port/metrics") ;;
    webhook) text=$(https "https://127.0.0.1:$webhook_port/metrics") ;;
  esac || return 1
  awk -v s="$2" '$1 == s { print $2; f = 1 } END { exit !f }' <<<"$text"
}
at_least() { # COMPONENT SERIES N
  local v
  v=$(metric "$1" "$2" 2>/dev/null) || return 1
  /usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$v" "$3"
}
operator_measures() {
  e2e_pid_alive "$operator_pid" || { tail -n 20 "$work/operator.log" >&2; e2e_fail "pi0-operator exited"; }
  at_least operator pi0_operator_leader 1 && holds 'pi0_operator_level{matrix="default"} == 0' &&
    holds 'pi0_operator_levels{matrix="default"} == 4' &&
    holds 'pi0_operator_stability_threshold{matrix="default"} == 0.5' &&
    holds 'pi0_operator_channel_state{channel_namespace="pi0-demo",channel="batch-reports",state="Active"} == 1'
}
e2e_wait_for "pi0-operator leading, matrix default measured at level normal (of 4), channels Active" \
  60 operator_measures
# The leader publishes the feed (its URL in the Lease); the webhook leaves the agents for it.
e2e_wait_for "the webhook reading the leader's fleet feed (in Prometheus)" 20 holds \
  'pi0_webhook_fleet_source{source="feed"} == 1 and on (instance) pi0_webhook_fleet_source{source="agents"} == 0'

# ---------------------------------------------------------------------------------------------
e2e_log "overload: examples/profiles/overload-step.yaml on node-a, node-b, node-c"
for node in node-a node-b node-c; do e2e_install_profile "$node" "$work/overload.yaml"; done
acted() {
  at_least operator 'pi0_operator_actions_total{action="shutdown",result="ok"}' 2 &&
    at_least operator 'pi0_operator_actions_total{action="degrade",result="ok"}' 1
}
e2e_wait_for "degrade and shutdown steps" 90 acted
channel_inactive() {
  [[ $(k get channel batch-reports -n "$NS" -o jsonpath='{.status.state}') == Inactive ]]
}
e2e_wait_for "channel batch-reports Inactive" 30 channel_inactive
channel_state() { # CHANNEL STATE: its state series is 1 and the two others 0, in Prometheus
  holds "pi0_operator_channel_state{channel_namespace=\"$NS\",channel=\"$1\",state=\"$2\"} == 1" &&
    holds "count(pi0_operator_channel_state{channel_namespace=\"$NS\",channel=\"$1\"} == 0) == 2"
}
e2e_wait_for "pi0_operator_channel_state: batch-reports Inactive" 20 channel_state batch-reports Inactive

# Admission under overload: a pod pinned to node-a, and a pod of the shut-down channel.
pod() { # NAME NODE CHANNEL
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $NS, labels: {app: probe, stability.pi0.io/channel: $3}}
spec:
  nodeSelector: {kubernetes.io/hostname: $2}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 500m, memory: 256Mi}}}
YAML
}
if out=$(pod pinned node-a none | k create --dry-run=server -f - 2>&1); then
  e2e_fail "a pod pinned to the overloaded node-a was admitted"
fi
[[ $out == *"node-a"* ]] || e2e_fail "the denial of a pod pinned to node-a does not name it: $out"
if out=$(pod batch-1 node-b batch-reports | k create --dry-run=server -f - 2>&1); then
  e2e_fail "a pod of the shut-down channel batch-reports was admitted"
fi
[[ $out == *"shut down"* ]] || e2e_fail "the denial of a pod of batch-reports does not say it is shut down: $out"
e2e_log "ok: denied a pod pinned to node-a (gates) and one of batch-reports (shut down)"
# One malformed review: the counter was at 0 already, so this one is the increase the alert sees.
code=$(https -o "$work/bad.txt" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data 'not json' "https://127.0.0.1:$webhook_port/validate-pods") || true
[[ $code == 400 ]] || e2e_fail "a malformed review got $code, not 400"

# A steady trickle of pod reviews from now on: dry-run creations through the apiserver.
client() {
  local i=0
  while :; do
    i=$((i + 1))
    curl -s --noproxy '*' --max-time 5 --cacert "$PI0_CA_FILE" -H "Authorization: Bearer $PI0_TOKEN" \
      -H 'Content-Type: application/json' -o /dev/null -X POST \
      "$PI0_APISERVER/api/v1/namespaces/$NS/pods?dryRun=All" --data "{
        \"apiVersion\": \"v1\", \"kind\": \"Pod\",
        \"metadata\": {\"name\": \"trickle-$i\", \"labels\": {\"app\": \"trickle\"}},
        \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"stand-in\",
          \"resources\": {\"requests\": {\"cpu\": \"100m\", \"memory\": \"64Mi\"}}}]}}" || true
    sleep 0.5
  done
}
client </dev/null >/dev/null 2>&1 &
client_pid=$!
disown "$client_pid"
e2e_at_exit "kill $client_pid 2>/dev/null || true"

# An alert on the operator's series, found by the real Prometheus: pending (its `for` is 15m).
alert_active() { # ALERTNAME [LABEL=VALUE]
  curl -sf --noproxy '*' --max-time 5 "$PROM/api/v1/alerts" | e2e_json '
name, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
sys.exit(0 if any(a["labels"]["alertname"] == name and
                  all(a["labels"].get(k) == v for k, v in want.items())
                  for a in d["data"]["alerts"]) else 1)' "$@"
}
e2e_wait_for "alert Pi0LoadLevelRaised active for matrix default" 20 \
  alert_active Pi0LoadLevelRaised matrix=default
# ℓ ≈ 0.95 is past the example's last bound (0.9): the top of its 4 levels.
e2e_wait_for "alert Pi0ClusterAtCriticalLevel active for matrix default" 20 \
  alert_active Pi0ClusterAtCriticalLevel matrix=default

# ---------------------------------------------------------------------------------------------
e2e_log "calm: steady profiles again; the operator restores, batch-reports' restore stalls once"
e2e_install_profile node-a "$source_dir/examples/profiles/steady-node.yaml"
e2e_install_profile node-b "$source_dir/examples/profiles/steady-node.yaml"
e2e_install_profile node-c "$work/leaking-node.yaml"
e2e_wait_for "everything restored to its original replicas, ready" 150 workloads "${ORIGINAL[@]}"
restored() {
  at_least operator 'pi0_operator_actions_total{action="restore",result="ok"}' 2 &&
    at_least operator 'pi0_operator_actions_total{action="restore",result="error"}' 1 &&
    holds 'pi0_operator_level{matrix="default"} == 0'
}
e2e_wait_for "restore steps, one stalled restore, level normal" 60 restored
e2e_wait_for "pi0_operator_channel_state: batch-reports Active again" 20 channel_state batch-reports Active
for series in 'pi0_webhook_decisions_total{endpoint="pods",reason="GatesFailed",result="denied"}' \
  'pi0_webhook_decisions_total{endpoint="pods",reason="ChannelInactive",result="denied"}' \
  'pi0_webhook_decisions_total{endpoint="pods",reason="Passed",result="allowed"}' \
  'pi0_webhook_decisions_total{endpoint="channels",reason="Valid",result="allowed"}' \
  'pi0_webhook_decisions_total{endpoint="shutdownmatrices",reason="Valid",result="allowed"}' \
  'pi0_webhook_bad_requests_total{endpoint="pods"}'; do
  at_least webhook "$series" 1 || e2e_fail "pi0-webhook: $series is not at least 1; it counts:
$(https "https://127.0.0.1:$webhook_port/metrics" | grep -E '^pi0_webhook_(decisions|bad_requests)_total')"
done
e2e_log "ok: the webhook decided, denied and refused as driven"
for spec in 'webhook pi0_webhook_fleet_feed_pages_total{kind="full"}' \
  'webhook pi0_webhook_fleet_feed_pages_total{kind="delta"}' \
  'webhook pi0_webhook_fleet_source{source="feed"}' \
  'webhook pi0_webhook_decision_data_age_seconds_count' \
  'operator pi0_operator_fleet_feed_answers_total{result="full"}' \
  'operator pi0_operator_fleet_feed_answers_total{result="delta"}' \
  'operator pi0_operator_fleet_feed_sent_bytes_total'; do
  read -r component series <<<"$spec"
  at_least "$component" "$series" 1 ||
    e2e_fail "pi0-$component: $series is not at least 1: $(metric "$component" "$series" || echo missing)"
done
value() { promql "$1" | e2e_json 'print("%.3g" % float(d["data"]["result"][0]["value"][1]))' || echo none; }
e2e_log "ok: the webhook reads the leader's feed. Over the last 15 s: p99 age of its decisions'" \
  "data $(value 'histogram_quantile(0.99, sum by (le) (rate(pi0_webhook_decision_data_age_seconds_bucket[15s])))') s" \
  "(samples every 200 ms), agent reads $(value 'sum(rate(pi0_agent_fingerprint_requests_total[15s]))')/s" \
  "(4 nodes polled every 500 ms by the leader alone: 8), feed pages" \
  "$(value 'sum(rate(pi0_webhook_fleet_feed_pages_total[15s]))')/s (one per 62.5 ms: 16)"

# Rates need a few scrapes after the last change; every alert below is then settled.
sleep 5
for spec in Pi0RestoreStalled "Pi0NodeMemoryExhaustionImminent node=node-c" \
  "Pi0AgentSampleErrors node=node-gpu source=gpu" "Pi0WebhookBadRequests endpoint=pods"; do
  read -ra a <<<"$spec"
  e2e_wait_for "alert ${a[*]} active" 20 alert_active "${a[@]}"
done
for name in Pi0OperatorNoLeader Pi0NodesWithoutFreshData Pi0AgentNotSampling \
  Pi0WebhookFleetFeedFallback; do
  ! alert_active "$name" || e2e_fail "alert $name is active: $(curl -s --noproxy '*' "$PROM/api/v1/alerts")"
done
e2e_log "ok: alerts follow the real series"

# ---------------------------------------------------------------------------------------------
e2e_log "every metric of every panel and alert exists; every panel query returns data"
for node in "${NODES[@]}"; do
  curl -sf --noproxy '*' --max-time 5 "${E2E_AGENT_URLS[$node]}/metrics" >"$work/metrics-$node.txt" ||
    e2e_fail "GET /metrics of the agent on $node failed"
done
curl -sf --noproxy '*' --max-time 5 "http://127.0.0.1:$operator_port/metrics" >"$work/metrics-operator.txt" ||
  e2e_fail "GET /metrics of pi0-operator failed"
https "https://127.0.0.1:$webhook_port/metrics" >"$work/metrics-webhook.txt" ||
  e2e_fail "GET /metrics of pi0-webhook failed"
curl -sf --noproxy '*' --max-time 5 "$PROM/api/v1/rules" >"$work/rules.json" ||
  e2e_fail "GET /api/v1/rules failed"
/usr/bin/python3 "$source_dir/tests/monitoring/monitoring_check.py" live "$PROM" \
  "$source_dir/dashboards" "$work/rules.json" "$work"/metrics-*.txt >"$work/check.log" 2>&1 || {
  cat "$work/check.log" >&2
  e2e_fail "dashboard and alert checks against the programs and Prometheus failed"
}
cat "$work/check.log" >&2
touch "$work/passed"
e2e_log "PASS"
