#!/usr/bin/env bash
# End-to-end smoke test of the test bed itself: a real control plane (cluster.sh up), stand-in
# Nodes, the fake kubelet, a Deployment scheduled by the real scheduler and run by the real
# controllers, the fake kubelet's failure injection, and a `down` that leaves nothing behind.
# Usage: cluster_smoke_test.sh [SOURCE_DIR]   (SOURCE_DIR: the project root; default: from $0)
set -euo pipefail
source_dir=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

ns=smoke

e2e_cluster_up

readyz=$(kubectl get --raw /readyz) || e2e_fail "kubectl get --raw /readyz failed"
[[ $readyz == ok ]] || e2e_fail "/readyz answered '$readyz'"
e2e_log "ok: /readyz through kubectl"

# The other kubeconfig forms work too.
for form in kubeconfig-data kubeconfig-cert kubeconfig-cert-data; do
  who=$(kubectl --kubeconfig "$PI0_CLUSTER_DIR/$form" auth can-i '*' '*') ||
    e2e_fail "$form: kubectl auth can-i failed"
  [[ $who == yes ]] || e2e_fail "$form: not an administrator ($who)"
done
e2e_log "ok: kubeconfig, kubeconfig-data, kubeconfig-cert and kubeconfig-cert-data are admins"

e2e_create_node e2e-worker 4 8Gi pool=e2e
e2e_create_node e2e-gpu 8 32Gi 2 accelerator=nvidia

node_json=$(kubectl get node e2e-gpu -o json)
check=$(e2e_json "
s, t = d['status'], d['spec'].get('taints') or []
ready = [c['status'] for c in s['conditions'] if c['type'] == 'Ready']
print(s['allocatable'].get('nvidia.com/gpu'), s['capacity'].get('cpu'), ready, len(t),
      d['metadata']['labels'].get('kubernetes.io/hostname'))" <<<"$node_json")
[[ $check == "2 8 ['True'] 0 e2e-gpu" ]] ||
  e2e_fail "node e2e-gpu: gpu, cpu, Ready, taints, hostname are '$check'"
e2e_log "ok: node e2e-gpu is Ready, untainted, with 2 GPUs"

e2e_start_fake_kubelet
e2e_create_namespace "$ns"

kubectl apply -n "$ns" -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {pool: e2e}
      containers:
      - name: web
        image: registry.invalid/pause:3.2
        resources:
          requests: {cpu: 100m, memory: 64Mi}
EOF

ready_replicas() {
  local out
  out=$(kubectl get deployment web -n "$ns" -o jsonpath='{.status.readyReplicas}') || return 1
  [[ ${out:-0} == "$1" ]]
}

pods_json() { kubectl get pods -n "$ns" -l app=web -o json; }

# pods_are N NODE: exactly N pods, all Running, with a podIP, on NODE.
pods_are() {
  local out
  out=$(pods_json) || return 1
  e2e_json "
items = d['items']
ok = len(items) == int(sys.argv[1]) and all(
    p['spec'].get('nodeName') == sys.argv[2] and p['status'].get('phase') == 'Running'
    and p['status'].get('podIP') for p in items)
sys.exit(0 if ok else 1)" "$1" "$2" <<<"$out"
}

e2e_wait_for "Deployment web to report 3 ready replicas" 120 ready_replicas 3
e2e_wait_for "3 Running pods bound to e2e-worker" 30 pods_are 3 e2e-worker

# Failure injection: one pod NotReady.
pod=$(kubectl get pods -n "$ns" -l app=web -o jsonpath='{.items[0].metadata.name}')
kubectl annotate pod "$pod" -n "$ns" fake-kubelet.pi0.test/ready=false >/dev/null
e2e_wait_for "readyReplicas to drop to 2 after $pod turned NotReady" 60 ready_replicas 2
pod_field() { kubectl get pod "$1" -n "$ns" -o jsonpath="$2"; }
cond=$(pod_field "$pod" '{.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].ready} {.status.phase}')
[[ $cond == "False false Running" ]] || e2e_fail "$pod: Ready, container ready, phase are '$cond'"
kubectl annotate pod "$pod" -n "$ns" fake-kubelet.pi0.test/ready- >/dev/null
e2e_wait_for "readyReplicas back at 3 after the annotation is removed" 60 ready_replicas 3

# Restarts.
restarts_are() { [[ $(pod_field "$1" '{.status.containerStatuses[0].restartCount}') == "$2" ]]; }
kubectl annotate pod "$pod" -n "$ns" fake-kubelet.pi0.test/restart=4 >/dev/null
e2e_wait_for "$pod to report 4 restarts" 60 restarts_are "$pod" 4
last=$(pod_field "$pod" '{.status.containerStatuses[0].lastState.terminated.exitCode}')
[[ $last == 1 ]] || e2e_fail "$pod: lastState.terminated.exitCode is '$last'"

# A failed pod is replaced by the ReplicaSet.
phase_is() { [[ $(pod_field "$1" '{.status.phase}') == "$2" ]]; }
kubectl annotate pod "$pod" -n "$ns" fake-kubelet.pi0.test/phase=Failed >/dev/null
e2e_wait_for "$pod to fail" 60 phase_is "$pod" Failed
running_ready() {
  local out
  out=$(pods_json) || return 1
  e2e_json "
n = sum(1 for p in d['items'] if p['status'].get('phase') == 'Running' and any(
    c['type'] == 'Ready' and c['status'] == 'True' for c in p['status'].get('conditions', [])))
sys.exit(0 if n == int(sys.argv[1]) else 1)" "$1" <<<"$out"
}
e2e_wait_for "a replacement pod: 3 Running and Ready again" 60 running_ready 3
kubectl delete pod "$pod" -n "$ns" --wait=false >/dev/null

# Scale to zero: the ReplicaSet deletes gracefully, the fake kubelet finishes the pods.
kubectl scale deployment web -n "$ns" --replicas=0 >/dev/null
no_pods() {
  local out
  out=$(kubectl get pods -n "$ns" -o name) || return 1
  [[ -z $out ]]
}
e2e_wait_for "no pods left after scaling to 0" 60 no_pods

# down: nothing of the cluster is left.
pids=("${E2E_PIDS[@]}" "$E2E_FAKE_KUBELET_PID")
dir=$PI0_CLUSTER_DIR
e2e_cluster_down
for pid in "${pids[@]}"; do
  ! e2e_pid_alive "$pid" || e2e_fail "pid $pid is still alive after down: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
done
[[ ! -e $dir ]] || e2e_fail "$dir still exists after down"
"$E2E_CLUSTER" down "$dir" 2>/dev/null || e2e_fail "a second down failed (must be idempotent)"
e2e_log "ok: down stopped pids ${pids[*]} and removed $dir"
e2e_log "PASS"
