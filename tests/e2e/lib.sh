# shellcheck shell=bash
# Helpers for Pi0's end-to-end test scripts, sourced after `set -euo pipefail`:
#
#   source "$(dirname "$0")/lib.sh"
#   e2e_cluster_up                      # a control plane; cleaned up when the script exits
#   e2e_create_node node-a 8 32Gi 1 pool=gpu
#   e2e_start_fake_kubelet
#   ...
#
# Functions (all log to stderr):
#   e2e_log MSG...                      a progress line
#   e2e_fail MSG...                     print FAIL: MSG and exit 1 (the EXIT trap cleans up)
#   e2e_cluster_up [DIR]                cluster.sh up DIR (default: a new temporary directory);
#                                       exports KUBECONFIG, PI0_CLUSTER_DIR,
#                                       PI0_APISERVER, PI0_TOKEN, PI0_CA_FILE; sets E2E_PIDS (the
#                                       control plane's pids) and an EXIT/INT/TERM trap that runs
#                                       e2e_cluster_down (after printing diagnostics on failure)
#   e2e_cluster_down                    stop the fake kubelet and the cluster; remove its DIR
#   e2e_install_crds                    apply crds/ and wait until they are Established
#   e2e_free_port                       print a free TCP port on 127.0.0.1
#   e2e_make_fleet_certificates DIR     the fleet feed's pair in DIR: fleet-ca.crt (a CA),
#                                       fleet.crt and fleet.key (DNS name pi0-fleet, the readers'
#                                       default --fleet-server-name)
#   e2e_log_field LOG MSG FIELD         FIELD of the first JSON log line of LOG whose msg is MSG
#   e2e_at_exit COMMAND                 run COMMAND (evaluated) at exit, before the cluster goes
#                                       down (don't replace the EXIT trap; if you must, call
#                                       e2e_on_exit STATUS from yours)
#   e2e_wait_for DESC TIMEOUT_S FUNCTION [ARGS...]
#                                       call FUNCTION ARGS every 0.5s until it succeeds; fail
#                                       after TIMEOUT_S saying what was awaited
#   e2e_create_node NAME CPU MEMORY [GPU] [LABEL=VALUE...]
#                                       a Ready Node object (capacity and allocatable: cpu,
#                                       memory, pods=110, nvidia.com/gpu when GPU is given),
#                                       labelled, with no node.kubernetes.io/not-ready taint
#   e2e_set_node_ready NAME true|false  set the Node's Ready condition (false also adds the
#                                       node.kubernetes.io/not-ready:NoSchedule taint)
#   e2e_create_namespace NAME           create a namespace and wait for its default
#                                       ServiceAccount token (pods are rejected before it exists)
#   e2e_start_fake_kubelet [ARGS...]    start fake_kubelet.py (ARGS: --nodes, --ready-delay);
#                                       log in $PI0_CLUSTER_DIR/logs/fake-kubelet.log
#   e2e_stop_fake_kubelet               stop it (SIGTERM, then SIGKILL)
#   e2e_pid_alive PID                   PID runs (a zombie counts as dead)
#   e2e_api METHOD PATH [BODY]          curl the apiserver with the admin token; prints the body
#                                       (BODY: JSON; PATCH sends it as a merge patch)
#   e2e_json PROGRAM [ARGS...]          run Python PROGRAM on the JSON on stdin (as `d`)
#   e2e_run_at_exit                     run (and forget) what e2e_at_exit registered, the last
#                                       first: for a script whose EXIT trap is its own
#   e2e_stop_pid PID [TIMEOUT_S]        SIGTERM, SIGKILL after TIMEOUT_S (default 10); reaps PID;
#                                       drops an e2e_at_exit "e2e_stop_pid PID"
#   e2e_port_from_log LOG MSG PID WHAT  print the "port" field of LOG's JSON line MSG once it is
#                                       there; fail (with LOG's last lines) when PID, which WHAT
#                                       names, exits first, or after 30 s
#
# pi0-agents (E2E_WORK: a directory the sourcing script sets, for profiles and logs):
#   e2e_start_agent BIN LOG [ARGS...]   BIN (a pi0-agent) --listen 127.0.0.1:0 ARGS... in the
#                                       background, stdin closed, output to LOG, stopped at exit
#                                       (e2e_stop_pid); returns once it serves; sets
#                                       E2E_AGENT_PID and E2E_AGENT_URL (http://127.0.0.1:PORT)
#   e2e_start_node_agent BIN NODE [ARGS...]
#                                       e2e_start_agent for NODE: --node-name NODE ARGS..., log
#                                       E2E_WORK/agent-NODE.log; also sets E2E_AGENT_URLS[NODE]
#   e2e_start_synthetic_agent BIN NODE [ARGS...]
#                                       e2e_start_node_agent replaying NODE's profile, no GPUs
#                                       (--source synthetic:PROFILE --nvml-library none
#                                       --gpu-probe-interval 0 ARGS...)
#   e2e_agents_flag NODE...             NODE=URL,... of their agents: the --agents of
#                                       pi0-operator and pi0-webhook
#   e2e_profile NODE                    print NODE's load profile: E2E_WORK/profile-NODE.yaml
#   e2e_write_profile NODE CPU_WAVE     write it: cpu CPU_WAVE (a wave, e.g. "{wave: constant,
#                                       value: 0.3}"), memory a constant 0.2; atomically (the
#                                       agent re-reads it, within a second, on a rename)
#   e2e_install_profile NODE FILE       FILE (- for stdin) as NODE's profile, atomically
#
# pi0-webhook:
#   e2e_register_webhook CONFIG URL [OPTION...] [--hook NAME RESOURCE [OPTION...]]...
#                                       kubectl apply the ValidatingWebhookConfiguration CONFIG:
#                                       for each --hook, the webhook NAME for RESOURCE (pods:
#                                       CREATE; nodes, channels, shutdownmatrices: CREATE and
#                                       UPDATE) at URL/validate-RESOURCE, sideEffects None. An
#                                       OPTION before the first --hook sets every hook's, after
#                                       one that hook's: --ca-bundle FILE (the caBundle; default
#                                       none), --failure-policy Fail|Ignore (default Fail),
#                                       --namespace NS (a namespaceSelector on the label
#                                       kubernetes.io/metadata.name), --timeout SECONDS (default
#                                       the apiserver's, 10), --review-versions V[,V...] (default
#                                       v1), --path PATH (default /validate-RESOURCE)
#
# Variables: E2E_DIR (this directory), E2E_CLUSTER (cluster.sh), E2E_PIDS (array),
# E2E_FAKE_KUBELET_PID, E2E_AT_EXIT (array), E2E_WORK, E2E_AGENT_PID, E2E_AGENT_URL,
# E2E_AGENT_URLS (NODE -> URL).

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_CLUSTER=$E2E_DIR/cluster.sh
E2E_PIDS=()
E2E_FAKE_KUBELET_PID=""
E2E_AT_EXIT=()
E2E_WORK=${E2E_WORK:-}
E2E_AGENT_PID=""
E2E_AGENT_URL=""
declare -gA E2E_AGENT_URLS=()
e2e_cleaned_up=0
e2e_made_dir=""

e2e_log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

e2e_fail() {
  printf '[e2e %s] FAIL: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

e2e_pid_alive() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -ra fields <<<"${stat##*) }" # fields[0]: the state
  [[ ${fields[0]:-} != "" && ${fields[0]} != Z && ${fields[0]} != X ]]
}

# shellcheck disable=SC2120 # optional arguments
e2e_cluster_up() {
  local env_text dir=${1:-}
  command -v kubectl >/dev/null ||
    e2e_fail "kubectl not found: the e2e tests need kubectl on PATH (any version from 1.20)"
  if [[ -z $dir ]]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/pi0-e2e.XXXXXX")
    e2e_made_dir=$dir
  fi
  # Known before `up` returns, so that an interrupted `up` is cleaned up too.
  PI0_CLUSTER_DIR=$(realpath -m -- "$dir")
  trap e2e_on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  env_text=$("$E2E_CLUSTER" up "$PI0_CLUSTER_DIR") || e2e_fail "cluster.sh up failed"
  eval "$env_text"
  export KUBECONFIG PI0_CLUSTER_DIR PI0_APISERVER PI0_TOKEN PI0_CA_FILE
  local f
  E2E_PIDS=()
  for f in "$PI0_CLUSTER_DIR"/pids/*.pid; do E2E_PIDS+=("$(<"$f")"); done
  e2e_log "cluster up in $PI0_CLUSTER_DIR (apiserver $PI0_APISERVER, pids ${E2E_PIDS[*]})"
}

# Diagnostics for a failed test, then the cleanup.
# e2e_at_exit COMMAND: run COMMAND (a string, evaluated) when the script exits, before the
# cluster goes down; the last registered runs first. Use this rather than replacing the EXIT trap.
e2e_at_exit() { E2E_AT_EXIT+=("$1"); }

# e2e_on_exit [STATUS]: the EXIT trap that e2e_cluster_up sets. A script that sets its own EXIT
# trap anyway must pass the status it exits with: trap 'rc=$?; ...; e2e_on_exit "$rc"' EXIT.
e2e_on_exit() {
  local status=${1:-$?}
  if ((status != 0)) && [[ -n ${PI0_CLUSTER_DIR:-} && -d ${PI0_CLUSTER_DIR:-} ]]; then
    e2e_log "test failed (status $status)"
    if [[ -f $PI0_CLUSTER_DIR/kubeconfig ]]; then
      e2e_log "cluster state:"
      kubectl --kubeconfig "$PI0_CLUSTER_DIR/kubeconfig" --request-timeout=5s \
        get nodes,pods -A -o wide >&2 2>&1 || true
    fi
    local log
    for log in "$PI0_CLUSTER_DIR"/logs/*.log; do
      [[ -s $log ]] || continue
      e2e_log "last lines of $(basename "$log"):"
      tail -n 15 "$log" | sed 's/^/    /' >&2
    done
  fi
  e2e_run_at_exit
  e2e_cluster_down
  exit "$status"
}

e2e_run_at_exit() {
  local commands=("${E2E_AT_EXIT[@]}") i
  E2E_AT_EXIT=()
  for ((i = ${#commands[@]} - 1; i >= 0; i--)); do
    eval "${commands[i]}" || e2e_log "at exit: '${commands[i]}' failed"
  done
}

e2e_cluster_down() {
  ((e2e_cleaned_up)) && return 0
  e2e_cleaned_up=1
  e2e_stop_fake_kubelet
  if [[ -n ${PI0_CLUSTER_DIR:-} && -f $PI0_CLUSTER_DIR/.pi0-cluster ]]; then
    "$E2E_CLUSTER" down "$PI0_CLUSTER_DIR" || e2e_log "cluster.sh down failed"
  fi
  # `up` failed before it marked the directory: nothing runs there.
  if [[ -n $e2e_made_dir && -d $e2e_made_dir && ! -f $e2e_made_dir/.pi0-cluster ]]; then
    rm -rf "$e2e_made_dir"
  fi
}

e2e_wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  while ! "$@"; do
    ((SECONDS < deadline)) || e2e_fail "timed out after ${timeout}s waiting for $desc"
    sleep 0.5
  done
  e2e_log "ok: $desc"
}

e2e_api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS --noproxy '*' --fail-with-body --max-time 10 --cacert "$PI0_CA_FILE"
    -H "Authorization: Bearer $PI0_TOKEN" -X "$method")
  if [[ -n $body ]]; then
    local type=application/json
    [[ $method == PATCH ]] && type=application/merge-patch+json
    args+=(-H "Content-Type: $type" --data-binary "$body")
  fi
  curl "${args[@]}" "$PI0_APISERVER$path"
}

# e2e_json PROGRAM [ARGS...]: runs the Python PROGRAM with the JSON document on stdin bound to
# `d` (and json, sys imported; ARGS in sys.argv[1:]).
e2e_json() {
  local program=$1
  shift
  /usr/bin/python3 -c "import json, sys; d = json.load(sys.stdin)
$program" "$@"
}

e2e_create_node() {
  local name=$1 cpu=$2 memory=$3 gpu="" labels=()
  shift 3
  if [[ $# -gt 0 && $1 != *=* ]]; then
    gpu=$1
    shift
  fi
  labels=("$@")
  local node
  node=$(/usr/bin/python3 - "$name" "${labels[@]}" <<'PY'
import json, sys
name, labels = sys.argv[1], dict(l.split("=", 1) for l in sys.argv[2:])
labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64", **labels}
print(json.dumps({"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": name, "labels": labels}, "spec": {}}))
PY
  ) || e2e_fail "e2e_create_node: bad labels: $*"
  kubectl create -f - <<<"$node" >/dev/null || e2e_fail "cannot create node $name"
  # Status only through the status subresource (a create ignores most of it).
  local status
  status=$(/usr/bin/python3 - "$name" "$cpu" "$memory" "$gpu" <<'PY'
import datetime, hashlib, json, sys
name, cpu, memory, gpu = sys.argv[1:5]
resources = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
if gpu:
    resources["nvidia.com/gpu"] = gpu
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
h = hashlib.sha256(name.encode()).digest()
ip = "10.99.%d.%d" % (h[0], h[1] % 250 + 2)
cond = lambda t, s, reason: {"type": t, "status": s, "reason": reason, "message": "set by e2e",
                             "lastHeartbeatTime": now, "lastTransitionTime": now}
print(json.dumps({"status": {
    "capacity": resources, "allocatable": resources,
    "conditions": [cond("Ready", "True", "KubeletReady"),
                   cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                   cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                   cond("PIDPressure", "False", "KubeletHasSufficientPID")],
    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
    "nodeInfo": {"kubeletVersion": "v1.20.2-fake", "kubeProxyVersion": "v1.20.2-fake",
                 "operatingSystem": "linux", "architecture": "amd64",
                 "containerRuntimeVersion": "fake://0", "osImage": "fake-kubelet",
                 "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}}))
PY
  )
  # Through the API rather than `kubectl patch --subresource=status`, which needs kubectl 1.24+
  # (it works with 1.32 against this 1.20 apiserver; Debian's kubectl is 1.20).
  e2e_api PATCH "/api/v1/nodes/$name/status" "$status" >/dev/null ||
    e2e_fail "cannot set the status of node $name"
  e2e_node_set_taint "$name" node.kubernetes.io/not-ready ""
  e2e_log "node $name: cpu=$cpu memory=$memory${gpu:+ nvidia.com/gpu=$gpu} ${labels[*]}"
}

# e2e_node_set_taint NAME KEY EFFECT: replaces the taints with KEY by one with EFFECT (none when
# EFFECT is empty).
e2e_node_set_taint() {
  local name=$1 key=$2 effect=$3 node patch
  node=$(kubectl get node "$name" -o json) || e2e_fail "cannot read node $name"
  patch=$(e2e_json "
key, effect = sys.argv[1], sys.argv[2]
taints = [t for t in d['spec'].get('taints') or [] if t['key'] != key]
if effect:
    taints.append({'key': key, 'effect': effect})
print(json.dumps({'spec': {'taints': taints or None}}))" "$key" "$effect" <<<"$node")
  kubectl patch node "$name" --type=merge -p "$patch" >/dev/null ||
    e2e_fail "cannot set the taints of node $name"
}

e2e_set_node_ready() {
  local name=$1 ready=$2 status
  case $ready in
    true) status=True ;;
    false) status=False ;;
    *) e2e_fail "e2e_set_node_ready: want true or false, not '$ready'" ;;
  esac
  local node patch
  node=$(kubectl get node "$name" -o json) || e2e_fail "cannot read node $name"
  patch=$(e2e_json "
import datetime
now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
conds = d['status'].get('conditions') or []
for c in conds:
    if c['type'] == 'Ready':
        if c['status'] != sys.argv[1]:
            c['lastTransitionTime'] = now
        c['status'] = sys.argv[1]
        c['lastHeartbeatTime'] = now
        c['reason'] = 'KubeletReady' if sys.argv[1] == 'True' else 'KubeletNotReady'
print(json.dumps({'status': {'conditions': conds}}))" "$status" <<<"$node")
  e2e_api PATCH "/api/v1/nodes/$name/status" "$patch" >/dev/null ||
    e2e_fail "cannot set the Ready condition of node $name"
  if [[ $ready == true ]]; then
    e2e_node_set_taint "$name" node.kubernetes.io/not-ready ""
  else
    e2e_node_set_taint "$name" node.kubernetes.io/not-ready NoSchedule
  fi
  e2e_log "node $name: Ready=$status"
}

e2e_namespace_has_token() {
  local out
  out=$(kubectl get serviceaccount default -n "$1" -o json 2>/dev/null) || return 1
  e2e_json "sys.exit(0 if d.get('secrets') else 1)" <<<"$out"
}

e2e_create_namespace() {
  kubectl create namespace "$1" >/dev/null || e2e_fail "cannot create namespace $1"
  e2e_wait_for "the default ServiceAccount token in namespace $1" 60 e2e_namespace_has_token "$1"
}

# e2e_make_certificates DIR: a CA (DIR/ca.crt, ca.key) and a serving certificate for
# 127.0.0.1 signed by it (DIR/tls.crt, tls.key), EC P-256, valid for a day, made with the openssl
# CLI: what a webhook registered by URL with a caBundle needs.
e2e_make_certificates() {
  local dir=$1
  command -v openssl >/dev/null || e2e_fail "openssl is not installed"
  (
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -out ca.crt -subj /CN=pi0-e2e-ca -days 1 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
      -subj /CN=pi0-webhook 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt \
      -days 1 -extfile ext 2>/dev/null
  ) || e2e_fail "cannot make the test certificates in $dir"
}

e2e_make_fleet_certificates() {
  local dir=$1
  command -v openssl >/dev/null || e2e_fail "openssl is not installed"
  (
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout fleet-ca.key \
      -out fleet-ca.crt -subj /CN=pi0-fleet-ca -days 1 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout fleet.key \
      -out fleet.csr -subj /CN=pi0-fleet 2>/dev/null
    printf 'subjectAltName=DNS:pi0-fleet\nextendedKeyUsage=serverAuth\n' >fleet.ext
    openssl x509 -req -in fleet.csr -CA fleet-ca.crt -CAkey fleet-ca.key -CAcreateserial \
      -out fleet.crt -days 1 -extfile fleet.ext 2>/dev/null
  ) || e2e_fail "cannot make the fleet feed's certificates in $dir"
}

e2e_free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# e2e_log_field LOG MSG FIELD: FIELD of the first JSON log line of LOG whose msg is MSG (the
# programs' structured logs); fails when there is none.
e2e_log_field() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
log, msg, field = sys.argv[1:4]
for line in open(log, errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == msg and field in rec:
        print(rec[field])
        sys.exit(0)
sys.exit(1)
PY
}

# e2e_install_crds: applies Pi0's CRDs (crds/) and waits until they are Established.
e2e_install_crds() {
  kubectl apply -f "$E2E_DIR/../../crds/" >/dev/null || e2e_fail "cannot apply crds/"
  kubectl wait --for condition=established --timeout=60s \
    crd/channels.stability.pi0.io crd/shutdownmatrices.stability.pi0.io >/dev/null ||
    e2e_fail "the CRDs did not become Established within 60 s"
}

# shellcheck disable=SC2120 # optional arguments
e2e_start_fake_kubelet() {
  [[ -n ${PI0_CLUSTER_DIR:-} ]] || e2e_fail "e2e_start_fake_kubelet: no cluster (e2e_cluster_up)"
  [[ -z $E2E_FAKE_KUBELET_PID ]] || e2e_fail "the fake kubelet already runs"
  local log=$PI0_CLUSTER_DIR/logs/fake-kubelet.log
  # --env-file names the cluster directory, so `cluster.sh down` recognizes (and stops) it too.
  setsid /usr/bin/python3 "$E2E_DIR/fake_kubelet.py" --env-file "$PI0_CLUSTER_DIR/env" "$@" \
    </dev/null >>"$log" 2>&1 &
  E2E_FAKE_KUBELET_PID=$!
  echo "$E2E_FAKE_KUBELET_PID" >"$PI0_CLUSTER_DIR/pids/fake-kubelet.pid"
  e2e_wait_for "the fake kubelet to watch pods" 30 e2e_fake_kubelet_watching "$log"
}

e2e_fake_kubelet_watching() {
  e2e_pid_alive "$E2E_FAKE_KUBELET_PID" || {
    tail -n 20 "$1" >&2
    e2e_fail "the fake kubelet exited"
  }
  grep -q 'watching$' "$1"
}

e2e_stop_fake_kubelet() {
  [[ -n $E2E_FAKE_KUBELET_PID ]] || return 0
  local pid=$E2E_FAKE_KUBELET_PID deadline=$((SECONDS + 10))
  E2E_FAKE_KUBELET_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  while e2e_pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if e2e_pid_alive "$pid"; then
    e2e_log "the fake kubelet (pid $pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  rm -f "${PI0_CLUSTER_DIR:-/nonexistent}/pids/fake-kubelet.pid"
}

e2e_stop_pid() {
  local pid=$1 deadline=$((SECONDS + ${2:-10})) kept=() command
  # Stopped now, it is not stopped again at exit, when its pid may be another process's.
  for command in "${E2E_AT_EXIT[@]}"; do
    [[ $command == "e2e_stop_pid $pid" ]] || kept+=("$command")
  done
  E2E_AT_EXIT=("${kept[@]}")
  kill -TERM "$pid" 2>/dev/null || return 0
  while e2e_pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# e2e_start LOG PROGRAM ARGS...: runs PROGRAM in the background with its output in LOG, its pid
# in E2E_STARTED_PID; stopped (e2e_stop_pid) at exit.
e2e_start() {
  local log=$1
  shift
  "$@" </dev/null >"$log" 2>&1 &
  E2E_STARTED_PID=$!
  e2e_at_exit "e2e_stop_pid $E2E_STARTED_PID"
}

# e2e_port_from_log LOG MSG PID WHAT: the "port" of the first LOG line whose msg is MSG, waited
# for up to 30 s; fails when PID exits first.
e2e_port_from_log() {
  local log=$1 msg=$2 pid=$3 what=$4 port deadline=$((SECONDS + 30))
  until port=$(e2e_log_field "$log" "$msg" port 2>/dev/null); do
    e2e_pid_alive "$pid" || {
      tail -n 20 "$log" >&2
      e2e_fail "$what exited at start (log: $log)"
    }
    ((SECONDS < deadline)) || e2e_fail "$what did not start serving in 30 s (log: $log)"
    sleep 0.1
  done
  echo "$port"
}

# ---------------------------------------------------------------------------------------------
# pi0-agents

e2e_start_agent() {
  local bin=$1 log=$2 port
  shift 2
  e2e_start "$log" "$bin" --listen 127.0.0.1:0 "$@"
  E2E_AGENT_PID=$E2E_STARTED_PID
  # In $(...) e2e_fail ends only the subshell.
  port=$(e2e_port_from_log "$log" "pi0-agent started" "$E2E_AGENT_PID" "pi0-agent") || exit 1
  E2E_AGENT_URL=http://127.0.0.1:$port
}

e2e_start_node_agent() {
  local bin=$1 node=$2
  shift 2
  [[ -n $E2E_WORK ]] || e2e_fail "e2e_start_node_agent: set E2E_WORK first"
  e2e_start_agent "$bin" "$E2E_WORK/agent-$node.log" --node-name "$node" "$@"
  E2E_AGENT_URLS[$node]=$E2E_AGENT_URL
}

e2e_start_synthetic_agent() {
  local bin=$1 node=$2 profile
  shift 2
  profile=$(e2e_profile "$node") || exit 1
  e2e_start_node_agent "$bin" "$node" --source "synthetic:$profile" --nvml-library none \
    --gpu-probe-interval 0 "$@"
}

e2e_agents_flag() {
  local node out=""
  for node in "$@"; do out+="${out:+,}$node=${E2E_AGENT_URLS[$node]}"; done
  echo "$out"
}

e2e_profile() {
  [[ -n $E2E_WORK ]] || e2e_fail "e2e_profile: set E2E_WORK first"
  echo "$E2E_WORK/profile-$1.yaml"
}

e2e_write_profile() {
  printf 'signals:\n  cpu: %s\n  memory: {wave: constant, value: 0.2}\n' "$2" |
    e2e_install_profile "$1" -
}

e2e_install_profile() {
  local profile
  profile=$(e2e_profile "$1") || exit 1
  if [[ $2 == - ]]; then cat; else cat -- "$2"; fi >"$profile.new" ||
    e2e_fail "cannot write the profile of $1"
  mv "$profile.new" "$profile"
}

# ---------------------------------------------------------------------------------------------
# pi0-webhook

e2e_register_webhook() {
  local config=$1 yaml
  yaml=$(e2e_webhook_configuration "$@") || exit 1
  kubectl --request-timeout=30s apply -f - <<<"$yaml" >/dev/null ||
    e2e_fail "cannot apply the ValidatingWebhookConfiguration $config"
}

# e2e_webhook_configuration CONFIG URL [OPTION...] [--hook NAME RESOURCE [OPTION...]]...: the
# YAML that e2e_register_webhook applies.
e2e_webhook_configuration() {
  local config=$1 url=$2 n=-1 i key rule ca
  shift 2
  local -A defaults=([failure-policy]=Fail [review-versions]=v1) own=()
  local names=() resources=()
  while (($#)); do
    case $1 in
      --hook)
        (($# >= 3)) || e2e_fail "e2e_register_webhook: --hook takes NAME RESOURCE"
        n=$((n + 1))
        names[n]=$2 resources[n]=$3
        shift 3
        ;;
      --ca-bundle | --failure-policy | --namespace | --timeout | --review-versions | --path)
        (($# >= 2)) || e2e_fail "e2e_register_webhook: $1 needs a value"
        if ((n < 0)); then defaults[${1#--}]=$2; else own["$n ${1#--}"]=$2; fi
        shift 2
        ;;
      *) e2e_fail "e2e_register_webhook: unknown argument '$1'" ;;
    esac
  done
  ((n >= 0)) || e2e_fail "e2e_register_webhook: no --hook"
  printf 'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n'
  printf 'metadata: {name: %s}\nwebhooks:\n' "$config"
  for ((i = 0; i <= n; i++)); do
    local -A o=()
    for key in ca-bundle failure-policy namespace timeout review-versions path; do
      o[$key]=${own["$i $key"]-${defaults[$key]-}}
    done
    case ${resources[i]} in
      pods) rule='apiGroups: [""], apiVersions: [v1], operations: [CREATE]' ;;
      nodes) rule='apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE]' ;;
      channels | shutdownmatrices)
        rule='apiGroups: [stability.pi0.io], apiVersions: [v1alpha1], operations: [CREATE, UPDATE]'
        ;;
      *) e2e_fail "e2e_register_webhook: no rule for resource '${resources[i]}'" ;;
    esac
    printf '  - name: %s\n' "${names[i]}"
    printf '    clientConfig:\n      url: "%s%s"\n' "$url" "${o[path]:-/validate-${resources[i]}}"
    if [[ -n ${o[ca-bundle]} ]]; then
      ca=$(base64 -w0 <"${o[ca-bundle]}") ||
        e2e_fail "e2e_register_webhook: cannot read ${o[ca-bundle]}"
      printf '      caBundle: "%s"\n' "$ca"
    fi
    printf '    rules: [{%s, resources: [%s]}]\n' "$rule" "${resources[i]}"
    if [[ -n ${o[namespace]} ]]; then
      printf '    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}\n' \
        "${o[namespace]}"
    fi
    printf '    failurePolicy: %s\n    sideEffects: None\n' "${o[failure-policy]}"
    printf '    admissionReviewVersions: [%s]\n' "${o[review-versions]//,/, }"
    if [[ -n ${o[timeout]} ]]; then printf '    timeoutSeconds: %s\n' "${o[timeout]}"; fi
  done
}
