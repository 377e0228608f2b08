#!/usr/bin/env bash
# End-to-end test of `cluster.sh stop apiserver` / `start apiserver`: the apiserver is killed
# (-9) and started again on the same port with the same etcd; the data survives, the
# controller-manager and the scheduler carry on, and the fake kubelet's watch resumes.
# Usage: cluster_restart_test.sh [SOURCE_DIR]   (SOURCE_DIR: the project root; default: from $0)
set -euo pipefail
source_dir=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

ns=restart

e2e_cluster_up
e2e_create_node e2e-worker 4 8Gi
e2e_start_fake_kubelet
e2e_create_namespace "$ns"
kubectl create configmap survivor -n "$ns" --from-literal=answer=42 >/dev/null

apiserver_pid=$(<"$PI0_CLUSTER_DIR/pids/kube-apiserver.pid")
"$E2E_CLUSTER" stop apiserver
! e2e_pid_alive "$apiserver_pid" || e2e_fail "the apiserver (pid $apiserver_pid) still runs"
if kubectl get --raw /readyz --request-timeout=3s >/dev/null 2>&1; then
  e2e_fail "the apiserver still answers after stop"
fi
e2e_log "ok: the apiserver is down"
sleep 2 # let the fake kubelet's watch notice

"$E2E_CLUSTER" start apiserver
readyz=$(kubectl get --raw /readyz) || e2e_fail "kubectl get --raw /readyz failed after start"
[[ $readyz == ok ]] || e2e_fail "/readyz answered '$readyz' after start"
new_pid=$(<"$PI0_CLUSTER_DIR/pids/kube-apiserver.pid")
[[ $new_pid != "$apiserver_pid" ]] || e2e_fail "the apiserver pid did not change"
e2e_log "ok: the apiserver is back on $PI0_APISERVER (pid $new_pid)"

answer=$(kubectl get configmap survivor -n "$ns" -o jsonpath='{.data.answer}')
[[ $answer == 42 ]] || e2e_fail "configmap survivor has answer='$answer' after the restart"
e2e_log "ok: the data survived"

"$E2E_CLUSTER" status >&2 || e2e_fail "a component stopped while the apiserver was down"

# Created after the restart: the scheduler binds, the controllers create, and the fake kubelet
# (whose watch had to resume) runs the pods.
kubectl create deployment after -n "$ns" --image=registry.invalid/pause:3.2 --replicas=2 >/dev/null
ready_replicas() {
  local out
  out=$(kubectl get deployment after -n "$ns" -o jsonpath='{.status.readyReplicas}') || return 1
  [[ ${out:-0} == "$1" ]]
}
e2e_wait_for "Deployment after to report 2 ready replicas" 120 ready_replicas 2
grep -q 'watch: ' "$PI0_CLUSTER_DIR/logs/fake-kubelet.log" ||
  e2e_fail "the fake kubelet's log shows no interrupted watch"

pids=("${E2E_PIDS[@]}" "$new_pid" "$E2E_FAKE_KUBELET_PID")
dir=$PI0_CLUSTER_DIR
e2e_cluster_down
for pid in "${pids[@]}"; do
  ! e2e_pid_alive "$pid" || e2e_fail "pid $pid is still alive after down"
done
[[ ! -e $dir ]] || e2e_fail "$dir still exists after down"
e2e_log "PASS"
