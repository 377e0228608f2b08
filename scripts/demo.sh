#!/usr/bin/env bash
# Pi0's demo: the three programs keeping a small cluster stable through an overload, on the
# test bed of tests/e2e (a real Kubernetes 1.20 control plane on 127.0.0.1, built from Debian's
# source on first use, about 5 minutes, and cached under ~/.cache/pi0).
#
# What runs: the control plane; three stand-in Nodes, each with its pi0-agent: this machine's
# (reading /proc, with this machine's size) and node-a and node-b (16 times as many CPUs, at
# least 32, so that their synthetic load, which the demo drives, decides the cluster load);
# the fake kubelet (tests/e2e/fake_kubelet.py: there are no kubelets, it marks the pods
# Running); pi0-operator; pi0-webhook, registered for the pods of namespace pi0-demo and for
# Pi0's resources; and Prometheus scraping the five of them. It applies examples/resources/
# (the README's worked example: a shop of five channels and the ShutdownMatrix `default`, with
# its step interval and dwell shortened), then replays the worked example: the cluster load goes
# to 0.75, 0.85 and 0.93 and back to 0.3. It prints, as they happen, the load and the level,
# each admission decision (the pods it creates at each level, and the pods pi0-webhook admits
# or denies for the controllers) and each degrade, shutdown and restore step, then a summary.
# It stops everything it started and removes the cluster when it ends, also on Ctrl-C.
#
# Exit status: 0 when everything went as the worked example says (every level reached, each
# step taken, the admissions as expected, no pod that a restore brought back denied, everything
# restored), 1 when not (the summary says what; logs are kept and their place printed), 2 for
# bad flags or a missing prerequisite, 130 on Ctrl-C.
#
# Usage: scripts/demo.sh [--fast] [--keep] [--build-dir DIR] [--summary-json FILE]
# Needs a build (scripts/build.sh release, or scripts/run.sh, which builds and runs this).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fast=0 keep=0 summary_json=""
build_dir=$root/build/release

usage() {
  cat <<EOF
Usage: scripts/demo.sh [flags]

Pi0 on a Kubernetes control plane on this machine: three agents (this machine's and two on a
synthetic load), pi0-operator, pi0-webhook and Prometheus. The demo overloads the cluster
step by step and lets it calm down, and prints the load level, each admission decision and
each shutdown and restore step as they happen, then a summary. About 2 minutes (plus about 5
the first time, to build the control plane). Ctrl-C stops it and cleans up.

Flags:
  --fast               shorter steps and dwell (about 80 s; what the test runs)
  --keep               after the summary, keep everything running until Ctrl-C, to look
                       around with kubectl and Prometheus
  --build-dir DIR      where the built programs are (default build/release)
  --summary-json FILE  also write the summary's facts as JSON to FILE
  --help               print this help
EOF
}
bad_usage() {
  echo "demo: $*" >&2
  usage >&2
  exit 2
}
while (($#)); do
  case $1 in
    --fast) fast=1; shift ;;
    --keep) keep=1; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --summary-json) summary_json=${2:?--summary-json needs a file}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) bad_usage "unknown flag '$1'" ;;
  esac
done

need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "demo: '$1' not found: install the Debian package $2 (scripts/setup.sh does)" >&2
  exit 2
}
missing_build() {
  echo "demo: $1; build first: scripts/build.sh release (or scripts/run.sh)" >&2
  exit 2
}
need kubectl kubernetes-client
need prometheus prometheus
need openssl openssl
need curl curl
need etcd etcd-server
[[ -x /usr/bin/python3 ]] || { echo "demo: /usr/bin/python3 is missing" >&2; exit 2; }
# The demo's Python helpers ignore SIGINT. Ctrl-C reaches the whole process group, and an
# interpreter it hits while starting prints a traceback of its own start-up; the demo's trap
# stops whatever runs instead. (Python keeps SIGINT ignored when it starts with it ignored.)
py3() { env --ignore-signal=INT /usr/bin/python3 "$@"; }
[[ -d $build_dir ]] || missing_build "no build directory '$build_dir'"
build_dir=$(cd "$build_dir" && pwd)
agent_bin=$build_dir/agent/pi0-agent
operator_bin=$build_dir/operator/pi0-operator
webhook_bin=$build_dir/webhook/pi0-webhook
for b in "$agent_bin" "$operator_bin" "$webhook_bin"; do
  [[ -x $b ]] || missing_build "$b is not built"
done
[[ -n $summary_json ]] && summary_json=$(realpath -m -- "$summary_json")

# Timing. The agents sample every $interval into a window of $window samples; their projected
# peak (a forecast, docs/forecast.md) follows a step up at once and a step down within 3
# samples. The matrix acts one step per $step seconds and recovers after $dwell seconds under the
# lower bound minus its margin. The load moves in steps, as real overloads do.
if ((fast)); then
  interval=200ms window=16 poll=500ms step=3 dwell=6 scrape=1s pause=1
else
  interval=250ms window=16 poll=1s step=6 dwell=15 scrape=2s pause=4
fi
NS=pi0-demo
SYNTHETIC_NODES=(node-a node-b)
# Everything here is on 127.0.0.1: no proxy in between (kubectl would use one).
export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY} no_proxy=127.0.0.1,localhost${no_proxy:+,$no_proxy}

# ---------------------------------------------------------------------------------------------
# Output

started_at=$SECONDS
if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
  bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' yellow=$'\e[33m' reset=$'\e[0m'
else
  bold="" dim="" red="" green="" yellow="" reset=""
fi
export DEMO_COLOR=${bold:+1}
# say KIND TEXT...: one line of the live log.
say() {
  local kind=$1
  shift
  printf '%s  %-9s %s\n' "$(date +%H:%M:%S)" "$kind" "$*"
}
headline() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$reset"; }
demo_fail() {
  say error "${red}$*${reset}"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Clean-up: everything the demo starts is recorded here and stopped on exit, also on Ctrl-C.

work=$(mktemp -d "${TMPDIR:-/tmp}/pi0-demo.XXXXXX")
pids=()        # processes to stop, in start order
pid_names=()   # their names, for the messages
build_pid=""
fg_pid=""
cluster_up=0
keep_logs=0
story_started=0

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"
E2E_WORK=$work # the agents' profiles and logs

# shellcheck disable=SC2317 # the EXIT trap
on_exit() {
  local rc=$1 i
  trap '' INT TERM # a second Ctrl-C does not cut the clean-up short
  if ((rc == 130 || rc == 143)); then
    printf '\n'
    say stop "interrupted; cleaning up"
  elif ((rc != 0)); then
    keep_logs=1
    if [[ -s $work/setup.log ]] && ((!story_started)); then
      say error "the last lines of $work/setup.log:"
      tail -n 15 "$work/setup.log" | sed 's/^/    /'
    fi
  fi
  if [[ -n $fg_pid ]] && e2e_pid_alive "$fg_pid"; then e2e_stop_pid "$fg_pid"; fi
  if [[ -n $build_pid ]] && e2e_pid_alive "$build_pid"; then
    e2e_stop_pid "$build_pid" # cluster.sh stops its make on SIGTERM and caches nothing
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if e2e_pid_alive "${pids[i]}"; then e2e_stop_pid "${pids[i]}"; fi
  done
  e2e_run_at_exit # an agent that e2e_start_agent started but the demo did not record yet
  if ((keep_logs)) && [[ -n ${PI0_CLUSTER_DIR:-} && -d ${PI0_CLUSTER_DIR:-} ]]; then
    mkdir -p "$work/cluster-logs"
    cp "$PI0_CLUSTER_DIR"/logs/*.log "$work/cluster-logs/" 2>/dev/null || true
  fi
  if ((cluster_up)) || [[ -n ${PI0_CLUSTER_DIR:-} ]]; then
    e2e_cluster_down 2>>"$work/setup.log" || true
  fi
  local left=()
  for i in "${!pids[@]}"; do
    if e2e_pid_alive "${pids[i]}"; then left+=("${pid_names[i]} (pid ${pids[i]})"); fi
  done
  if ((${#left[@]})); then
    say stop "${red}still running: ${left[*]}${reset}"
  elif ((${#pids[@]})); then
    say stop "stopped ${#pids[@]} processes and the control plane; removed the cluster"
  elif ((cluster_up)); then
    say stop "stopped the control plane; removed the cluster"
  fi
  if ((keep_logs)); then
    say stop "logs are kept in $work (remove it when done)"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap 'on_exit $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOG CMD...: runs CMD in the background (stdin closed, output to LOG) and records it.
start() {
  local name=$1 log=$2
  shift 2
  "$@" </dev/null >>"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
  pid_names+=("$name")
}

# ---------------------------------------------------------------------------------------------
# The demo's Python helper (scripts/demo.py): talks to the apiserver (its token and CA), the
# agents and the programs' /metrics. Modes: watch (the live log), wait, snapshot, peak, summary.
demo_py=(env --ignore-signal=INT "DEMO_NS=$NS" "DEMO_WORK=$work" /usr/bin/python3
  "$root/scripts/demo.py")
demo_py() { "${demo_py[@]}" "$@"; }
# interruptible CMD...: runs CMD and waits for it in the `wait` builtin, so that SIGTERM or
# SIGINT reach the trap at once rather than once CMD is done; the trap stops CMD.
interruptible() {
  local rc=0
  "$@" &
  fg_pid=$!
  wait "$fg_pid" || rc=$?
  fg_pid=""
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# The control plane: built the first time (with a progress line), then started.

printf '%sPi0 demo%s: a cluster overloaded and calmed down again, on a Kubernetes control plane\n' \
  "$bold" "$reset"
mode=normal
((fast)) && mode=fast
printf '%s(%s mode; Ctrl-C stops it and cleans up)%s\n' "$dim" "$mode" "$reset"
headline "setting up"

# build_control_plane: cluster.sh build (nothing to do when cached), with the elapsed time and
# its current step while it runs.
build_control_plane() {
  local err=$work/build.err build_log=${XDG_CACHE_HOME:-$HOME/.cache}/pi0/kubernetes-1.20.2.build.log
  "$E2E_CLUSTER" build 2>"$err" &
  build_pid=$!
  local t0=$SECONDS shown=0 last_report=0 step="" spin=(- "\\" '|' /) i=0 cols elapsed text
  while e2e_pid_alive "$build_pid"; do
    sleep 0.5
    ((SECONDS - t0 >= 2)) || continue # cached: done in a second, say nothing
    if ((!shown)); then
      say setup "building the Kubernetes 1.20.2 control plane from Debian's source: first run" \
        "only, usually about 5 minutes on 2 cores (log: $build_log)"
      shown=1
    fi
    # cluster.sh's steps, in words.
    case $(grep -o 'build: [a-z-]* [a-z]*' "$err" 2>/dev/null | tail -n 1) in
      *"apt-get update"*) step="reading the Debian archive's package lists" ;;
      *"apt-get source"*) step="downloading the kubernetes source package" ;;
      *"apt-get download"*) step="downloading Go 1.15" ;;
      *make*) step="compiling kube-apiserver, kube-controller-manager and kube-scheduler" ;;
      *done*) step="done" ;;
      *) step="starting" ;;
    esac
    elapsed=$((SECONDS - t0))
    if [[ -t 1 ]]; then
      cols=$(tput cols 2>/dev/null || echo 100)
      text=$(printf '%s %dm%02ds  %s' "${spin[i % 4]}" $((elapsed / 60)) $((elapsed % 60)) "$step")
      i=$((i + 1))
      printf '\r\e[K%s' "${text:0:$((cols - 1))}"
    elif ((elapsed - last_report >= 30)); then
      say setup "still building ($((elapsed / 60))m$((elapsed % 60))s): $step"
      last_report=$elapsed
    fi
  done
  if [[ -t 1 ]] && ((shown)); then printf '\r\e[K'; fi
  local rc=0
  wait "$build_pid" || rc=$?
  build_pid=""
  if ((rc != 0)); then
    cat "$err"
    demo_fail "the control plane could not be built (log: $build_log)"
  fi
  if ((shown)); then
    elapsed=$((SECONDS - t0))
    say setup "control plane built in $((elapsed / 60))m$((elapsed % 60))s and cached in" \
      "${build_log%.build.log}"
  fi
  return 0
}
build_control_plane

t0=$SECONDS
cluster_up=1
env_text=$("$E2E_CLUSTER" up 2>>"$work/setup.log") ||
  demo_fail "the control plane did not start (see $work/setup.log)"
eval "$env_text"
export KUBECONFIG PI0_CLUSTER_DIR PI0_APISERVER PI0_TOKEN PI0_CA_FILE
say setup "control plane up in $((SECONDS - t0)) s: Kubernetes 1.20.2 at $PI0_APISERVER"
k() { kubectl --request-timeout=30s "$@"; }

# Everything below logs its progress to setup.log; the demo says what matters.
exec 3>&2 2>>"$work/setup.log"
e2e_install_crds

# Nodes: this machine, with its real size, and two synthetic ones 16 times its size (at least
# 32 CPUs and 128 GiB): the cluster load is weighted by capacity, so the synthetic load the
# demo drives decides it, whatever this machine does; this machine is measured and counted all
# the same (and the drive allows for it).
this_node=$(hostname | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9.\n-' '-' |
  sed 's/^[^a-z0-9]*//; s/[^a-z0-9]*$//' | cut -c1-63)
[[ -n $this_node ]] || this_node=this-machine
this_cpu=$(nproc)
this_mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
syn_cpu=$((this_cpu * 16 > 32 ? this_cpu * 16 : 32))
syn_memory_gib=$((this_mem_kib / 65536 > 128 ? this_mem_kib / 65536 : 128))
e2e_create_node "$this_node" "$this_cpu" "${this_mem_kib}Ki" demo.pi0.io/pool=this-machine
for n in "${SYNTHETIC_NODES[@]}"; do
  e2e_create_node "$n" "$syn_cpu" "${syn_memory_gib}Gi" demo.pi0.io/pool=synthetic
done
say setup "Nodes: $this_node (this machine: $this_cpu CPUs, $((this_mem_kib / 1048576)) GiB;" \
  "its pi0-agent reads /proc) and ${SYNTHETIC_NODES[0]} and ${SYNTHETIC_NODES[1]} ($syn_cpu CPUs," \
  "$syn_memory_gib GiB each; their agents replay a synthetic load the demo drives)"

# Agents, recorded for the clean-up and the summary.
# set_cpu NODE WAVE: NODE's profile (substrates/synthetic/profile.h) with WAVE for its cpu,
# rewritten atomically: the agent re-reads it within a second and replays it from t = 0.
set_cpu() {
  e2e_install_profile "$1" - <<YAML
memoryTotalBytes: $((syn_memory_gib * 1073741824))
signals:
  cpu: $2
  memory: {wave: noise, mean: 0.30, std: 0.004, seed: 2}
  psi_cpu: {wave: constant, value: 0.01}
YAML
}
for n in "$this_node" "${SYNTHETIC_NODES[@]}"; do
  agent_source=proc
  if [[ $n != "$this_node" ]]; then
    set_cpu "$n" "{wave: noise, mean: 0.30, std: 0.004, seed: 1}"
    agent_source=synthetic:$(e2e_profile "$n")
  fi
  e2e_start_node_agent "$agent_bin" "$n" --source "$agent_source" --interval "$interval" \
    --window "$window" --gpu-probe-interval 0
  pids+=("$E2E_AGENT_PID")
  pid_names+=("pi0-agent $n")
done
for n in "$this_node" "${SYNTHETIC_NODES[@]}"; do
  interruptible "${demo_py[@]}" peak "${E2E_AGENT_URLS[$n]}" >/dev/null ||
    demo_fail "pi0-agent for $n has no full window after 30 s"
done
agents=$(e2e_agents_flag "$this_node" "${SYNTHETIC_NODES[@]}")
say setup "pi0-agent x3 ready (a sample every $interval, windows of $window): $agents"

# pi0-webhook, with a CA and a serving certificate for 127.0.0.1.
mkdir -p "$work/tls"
e2e_make_certificates "$work/tls"
webhook_port=$(e2e_free_port)
start pi0-webhook "$work/webhook.log" "$webhook_bin" --kubeconfig "$KUBECONFIG" \
  --bind-address "127.0.0.1:$webhook_port" --tls-cert-file "$work/tls/tls.crt" \
  --tls-private-key-file "$work/tls/tls.key" --agents "$agents" --poll-interval "$poll" \
  --shutdown-delay 0s
webhook_pid=$last_pid
# shellcheck disable=SC2317 # called through e2e_wait_for
webhook_ready() {
  e2e_pid_alive "$webhook_pid" || demo_fail "pi0-webhook exited (log: $work/webhook.log)"
  [[ $(curl -sS --noproxy '*' --cacert "$work/tls/ca.crt" -o /dev/null -w '%{http_code}' \
    --max-time 2 "https://127.0.0.1:$webhook_port/readyz" 2>/dev/null) == 200 ]]
}
e2e_wait_for "pi0-webhook ready" 60 webhook_ready

# pi0-operator (one replica; no leader election needed) with Prometheus for the Channels'
# throughput queries.
prometheus_port=$(e2e_free_port)
prometheus_url=http://127.0.0.1:$prometheus_port
start pi0-operator "$work/operator.log" "$operator_bin" --kubeconfig "$KUBECONFIG" \
  --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
  --agents "$agents" --poll-interval "$poll" --agent-timeout 500ms \
  --prometheus-url "$prometheus_url"
operator_pid=$last_pid
operator_port=$(e2e_port_from_log "$work/operator.log" "serving metrics" "$operator_pid" \
  pi0-operator) || exit 1
operator_url=http://127.0.0.1:$operator_port

# Prometheus, scraping the five programs.
agent_targets=""
for n in "$this_node" "${SYNTHETIC_NODES[@]}"; do
  agent_targets+="      - {targets: [\"${E2E_AGENT_URLS[$n]#http://}\"], labels: {node: \"$n\"}}"$'\n'
done
cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: $scrape, evaluation_interval: $scrape}
scrape_configs:
  - job_name: pi0-agent
    static_configs:
$agent_targets  - job_name: pi0-operator
    static_configs: [{targets: ["127.0.0.1:$operator_port"]}]
  - job_name: pi0-webhook
    scheme: https
    tls_config: {ca_file: "$work/tls/ca.crt"}
    static_configs: [{targets: ["127.0.0.1:$webhook_port"]}]
YAML
start prometheus "$work/prometheus.log" prometheus --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/prometheus-data" --web.listen-address="127.0.0.1:$prometheus_port"
prometheus_pid=$last_pid
# shellcheck disable=SC2317 # called through e2e_wait_for
prometheus_ready() {
  e2e_pid_alive "$prometheus_pid" || demo_fail "Prometheus exited (log: $work/prometheus.log)"
  curl -sf --noproxy '*' --max-time 2 "$prometheus_url/-/ready" >/dev/null
}
e2e_wait_for "Prometheus ready" 60 prometheus_ready
say setup "pi0-operator (metrics $operator_url/metrics), pi0-webhook" \
  "(https://127.0.0.1:$webhook_port) and Prometheus ($prometheus_url) run"

# The webhook's registration: the pods of namespace pi0-demo, and Pi0's resources.
e2e_register_webhook pi0-webhook "https://127.0.0.1:$webhook_port" --ca-bundle "$work/tls/ca.crt" \
  --failure-policy Fail \
  --hook pods.stability.pi0.io pods --namespace "$NS" --timeout 5 \
  --hook channels.stability.pi0.io channels \
  --hook shutdownmatrices.stability.pi0.io shutdownmatrices

# The shop of examples/resources/, its namespace labelled for the registration above (1.20 does
# not label namespaces with their names itself).
e2e_start_fake_kubelet --ready-delay 1
e2e_create_namespace "$NS"
k label namespace "$NS" "kubernetes.io/metadata.name=$NS" --overwrite >/dev/null
k apply -f "$root/examples/resources/" >/dev/null ||
  demo_fail "kubectl apply -f examples/resources/ failed (see $work/setup.log)"
# The worked example acts every 30 s and recovers after 120 s: too slow to watch.
k patch shutdownmatrix default --type=merge -p "{\"spec\": {\"stepIntervalSeconds\": $step,
  \"hysteresis\": {\"margin\": 0.05, \"dwellSeconds\": $dwell}}}" >/dev/null
say setup "applied examples/resources/ (the README's worked example, validated by" \
  "pi0-webhook): 5 Deployments and a StatefulSet in $NS, 5 Channels, ShutdownMatrix default" \
  "with steps every $step s and recovery after $dwell s (30 s and 120 s in the example)"
all_ready='len(W) == 6 and all(w["ready"] == w["replicas"] for w in W.values())'
all_ready+=' and M.get("level") == "normal" and len(C) == 5 and all(s == "Active" for s in C.values())'
interruptible "${demo_py[@]}" wait 180 "$all_ready" ||
  demo_fail "the shop's workloads did not all become ready in 180 s"
demo_py snapshot >"$work/original.json"
pods_total=$(py3 -c 'import json, sys; print(sum(json.load(open(sys.argv[1])).values()))' \
  "$work/original.json")
say setup "$pods_total pods admitted by pi0-webhook, scheduled, and Running (fake kubelet);" \
  "every Channel Active"
exec 2>&3 3>&-

# ---------------------------------------------------------------------------------------------
# The story.

story_started=1
echo '[]' >"$work/probes.json"
echo '[]' >"$work/probe-results.json"
# probe NAME EXPECT CHANNEL CPU MEMORY [POOL]: kubectl create a pod and say what pi0-webhook
# decided (EXPECT: allowed or denied); records the outcome for the summary.
probe() {
  local name=$1 expect=$2 channel=$3 cpu=$4 memory=$5 pool=${6:-synthetic} labels out rc=0 \
    result reason="" message
  labels="{app: demo-probe${channel:+, stability.pi0.io/channel: $channel}}"
  interruptible sleep 1 # the watcher prints what led here first
  py3 - "$work/probes.json" "$name" <<'PY'
import json, sys
names = json.load(open(sys.argv[1])) + [sys.argv[2]]
json.dump(names, open(sys.argv[1], "w"))
PY
  out=$(k create -f - 2>&1 <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $NS, labels: $labels}
spec:
  nodeSelector: {demo.pi0.io/pool: $pool}
  containers:
    - {name: main, image: placeholder:1, resources: {requests: {cpu: $cpu, memory: $memory}}}
YAML
  ) || rc=$?
  if ((rc == 0)); then
    result=allowed message="admitted"
    k delete pod -n "$NS" "$name" --wait=false >/dev/null 2>&1 || true
    say admission "${green}allowed${reset} pod $name (${channel:+channel $channel, }cpu $cpu, memory $memory)"
  elif [[ $out == *"denied the request: "* ]]; then
    result=denied message=${out#*denied the request: }
    reason=$(webhook_denial_reason "$name")
    say admission "${red}denied${reset}  pod $name (${channel:+channel $channel, }cpu $cpu," \
      "memory $memory): $message${reason:+ [$reason]}"
  else
    demo_fail "kubectl create pod $name failed: $out"
  fi
  [[ $result == "$expect" ]] || say admission "${yellow}(expected: $expect)${reset}"
  record_probe "$name" "$expect" "$result" "$reason" "$message"
}
# record_probe NAME EXPECT RESULT REASON MESSAGE: one admission decision for the summary.
record_probe() {
  py3 - "$work/probe-results.json" "$@" <<'PY'
import json, sys
path, name, expect, result, reason, message = sys.argv[1:7]
results = json.load(open(path)) + [{"name": name, "expect": expect, "result": result,
                                    "reason": reason, "message": message}]
json.dump(results, open(path, "w"))
PY
}
# refused_matrix: kubectl apply of a ShutdownMatrix whose first level (0.6) leaves no margin above
# the admission gate's ceiling (1 - 0.35): pi0-webhook refuses it, saying why.
refused_matrix() {
  local out rc=0 result message
  interruptible sleep 1
  out=$(k apply -f - 2>&1 <<YAML
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: too-tight}
spec:
  levels: [{name: normal, upperBound: 0.6}, {name: overloaded}]
  rows: []
  mode: DryRun
YAML
  ) || rc=$?
  if ((rc == 0)); then
    result=allowed message=admitted
    k delete shutdownmatrix too-tight --wait=false >/dev/null 2>&1 || true
    say admission "${green}allowed${reset} ShutdownMatrix too-tight (first level at 0.6)"
  else
    result=denied message=${out#*denied the request: }
    say admission "${red}denied${reset}  ShutdownMatrix too-tight (first level at 0.6): $message"
  fi
  [[ $result == denied ]] || say admission "${yellow}(expected: denied)${reset}"
  record_probe "ShutdownMatrix/too-tight" denied "$result" Invalid "$message"
}
# webhook_denial_reason POD: the reason pi0-webhook logged when it last denied POD.
webhook_denial_reason() {
  py3 - "$work/webhook.log" "$1" reason <<'PY'
import json, sys
log, pod, field = sys.argv[1:4]
value = ""
for line in open(log, errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == "pod denied" and rec.get("pod", "").split("/")[-1] == pod:
        value = rec.get(field, "")
print(value)
PY
}

# The cluster load ℓ is the capacity-weighted mean of the nodes' projected peaks: the demo sets
# the synthetic nodes' cpu so that ℓ reaches TARGET, counting this machine's measured peak.
current_cpu=0.30
cpu_for() { # cpu_for TARGET: the synthetic nodes' cpu that makes ℓ TARGET
  local real
  real=$(demo_py peak "${E2E_AGENT_URLS[$this_node]}") || real=0.5
  py3 -c '
import sys
target, real, n_real, n_syn, count = (float(x) for x in sys.argv[1:6])
total = n_real + n_syn * count
print("%.3f" % min(1.0, max(0.0, (target * total - real * n_real) / (n_syn * count))))' \
    "$1" "$real" "$this_cpu" "$syn_cpu" "${#SYNTHETIC_NODES[@]}"
}
# load_to TARGET: the synthetic nodes' cpu steps to what makes ℓ TARGET, up or down, at once.
load_to() {
  local target=$1 to wave verb
  to=$(cpu_for "$target")
  verb=$(py3 -c 'import sys; print("steps up" if float(sys.argv[2]) > float(sys.argv[1]) else "steps down")' \
    "$current_cpu" "$to")
  wave="{wave: sum, of: [{wave: constant, value: $to},"
  wave+=" {wave: noise, mean: 0, std: 0.004, seed: 1}]}"
  say drive "${bold}the cpu of ${SYNTHETIC_NODES[0]} and ${SYNTHETIC_NODES[1]} $verb from" \
    "$current_cpu to $to: cluster load -> $target${reset}"
  for n in "${SYNTHETIC_NODES[@]}"; do set_cpu "$n" "$wave"; done
  current_cpu=$to
}
# until_true DESC TIMEOUT EXPR: waits (see scripts/demo.py wait); a timeout is said and the demo goes
# on (the summary then says what did not happen).
until_true() {
  interruptible "${demo_py[@]}" wait "$2" "$3" && return 0
  say drive "${yellow}not within $2 s: $1${reset}"
  return 1
}

# The live log, printed by the watcher (its output is the demo's).
"${demo_py[@]}" watch 0.5 </dev/null &
pids+=("$!")
pid_names+=(watcher)

say info "Prometheus: $prometheus_url/graph?g0.expr=pi0_operator_load&g0.range_input=5m" \
  "(also pi0_operator_level, pi0_webhook_decisions_total, pi0_node_projected_peak_ratio)"
say info "the cluster: export KUBECONFIG=$KUBECONFIG; kubectl get sm;" \
  "kubectl get channels -n $NS"
say info "logs: $work (the programs' logs; removed at the end)"
step_s=$step
level_time=$((3 * step_s + 10))

headline "calm: load 0.30, level normal"
probe report-adhoc-1 allowed batch-reports 500m 512Mi
refused_matrix
interruptible sleep "$pause"

headline "overload, part 1: load 0.75 (elevated)"
load_to 0.75
until_true "level elevated" $((60 + level_time)) 'M.get("level") == "elevated"' || true
probe frontend-big denied frontend 1 256Mi
until_true "batch-reports and recommendations degraded" "$level_time" \
  'C["batch-reports"] == "Degraded" and C["recommendations"] == "Degraded"' || true
interruptible sleep "$pause"

headline "overload, part 2: load 0.85 (high)"
load_to 0.85
until_true "level high" "$level_time" 'M.get("level") == "high"' || true
until_true "batch-reports shut down" "$level_time" 'C["batch-reports"] == "Inactive"' || true
probe report-adhoc-2 denied batch-reports 500m 512Mi
until_true "recommendations shut down" "$level_time" 'C["recommendations"] == "Inactive"' || true
interruptible sleep "$pause"

headline "overload, part 3: load 0.93 (critical)"
load_to 0.93
until_true "level critical" "$level_time" 'M.get("level") == "critical"' || true
until_true "frontend degraded" "$level_time" 'C["frontend"] == "Degraded"' || true
probe adhoc-job denied "" 2 1Gi
interruptible sleep "$((step_s + pause))"

headline "the overload ends: load 0.30"
load_to 0.30
until_true "level normal" $((dwell + 60)) 'M.get("level") == "normal"' || true
until_true "everything restored" 180 "$all_ready"' and all(not w["pi0"] for w in W.values())' || true
probe report-adhoc-3 allowed batch-reports 500m 512Mi
interruptible sleep 2 # the watcher's last lines

headline "summary"
{
  for i in "${!pids[@]}"; do printf '%s\t%s\n' "${pid_names[i]}" "${pids[i]}"; done
  for f in "$PI0_CLUSTER_DIR"/pids/*.pid; do printf '%s\t%s\n' "$(basename "$f" .pid)" "$(<"$f")"; done
} | py3 -c 'import json, sys
json.dump(dict(line.rstrip("\n").split("\t") for line in sys.stdin), sys.stdout)' >"$work/processes.json"
summary_rc=0
demo_py summary "$summary_json" "$operator_url" "https://127.0.0.1:$webhook_port" \
  "$prometheus_url" "$work/tls/ca.crt" || summary_rc=$?
printf '  %-11s %ss\n' duration "$((SECONDS - started_at))"

if ((keep)); then
  headline "kept running (Ctrl-C stops everything)"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get sm; kubectl get channels,deployments -n $NS; kubectl get events -n $NS"
  echo "  Prometheus: $prometheus_url"
  while true; do interruptible sleep 3600; done
fi
headline "cleaning up"
exit "$summary_rc"
