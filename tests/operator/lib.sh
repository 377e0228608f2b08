#!/usr/bin/env bash
# What pi0-operator's end-to-end scripts share (operator_e2e_test.sh, operator_bad_input_test.sh):
# a cluster with $work and the snapshot of the cluster's state (state.py) with
# expect/wait_for over Python expressions. Source it after tests/e2e/lib.sh, with NS and NODES
# set.

now() { date +%s.%N; }
k() { kubectl --request-timeout=30s "$@"; }

e2e_cluster_up
work=$PI0_CLUSTER_DIR/operator-e2e
mkdir -p "$work"

# state.py reads the snapshot that `snapshot` saves and evaluates Python expressions over it:
#   D[name]  Deployment: replicas (spec), ready, gen (metadata.generation), ann (the
#            stability.pi0.io/ annotations, prefix removed)
#   H[name]  HPA: min, max, ann
#   C[name]  Channel status ({} before the operator writes one); M[name] ShutdownMatrix status,
#            MG[name] its metadata.generation
#   E        pi0-operator's Events: reason, type, kind, name, ns, instance, component, t (epoch
#            seconds of the first occurrence), count, message; sorted by t
#   ev(reason, kind=None, name=None) -> matching Events; n(...) -> the sum of their counts
#   cond(status, type) -> the condition of that type ({} when absent); T(rfc3339) -> epoch
#   V[name]  values given with --var NAME=VALUE (numbers when they parse)
cat >"$work/state.py" <<'PY'
import datetime, json, sys

work, mode = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
V = {}
while len(args) >= 2 and args[0] == "--var":
    name, value = args[1].split("=", 1)
    try:
        value = float(value)
    except ValueError:
        pass
    V[name] = value
    args = args[2:]

def items(name):
    try:
        return json.load(open("%s/%s.json" % (work, name))).get("items") or []
    except (OSError, ValueError):
        return []

def T(ts):
    if not ts:
        return None
    ts = ts.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(ts).timestamp()

PREFIX = "stability.pi0.io/"
def ann(o):
    a = o["metadata"].get("annotations") or {}
    return {k[len(PREFIX):]: v for k, v in a.items() if k.startswith(PREFIX)}

D = {o["metadata"]["name"]: {"replicas": o["spec"].get("replicas"),
                             "ready": (o.get("status") or {}).get("readyReplicas", 0),
                             "gen": o["metadata"].get("generation"), "ann": ann(o)}
     for o in items("deployments")}
H = {o["metadata"]["name"]: {"min": o["spec"].get("minReplicas"),
                             "max": o["spec"].get("maxReplicas"), "ann": ann(o)}
     for o in items("hpas")}
C = {o["metadata"]["name"]: o.get("status") or {} for o in items("channels")}
MS = {o["metadata"]["name"]: o.get("spec") or {} for o in items("matrices")}
M = {o["metadata"]["name"]: o.get("status") or {} for o in items("matrices")}
MG = {o["metadata"]["name"]: o["metadata"].get("generation") for o in items("matrices")}
E = []
for e in items("events"):
    src = (e.get("source") or {}).get("component") or ""
    if src != "pi0-operator" and e.get("reportingComponent") != "pi0-operator":
        continue
    first = e.get("eventTime") or e.get("firstTimestamp") or e.get("lastTimestamp")
    io = e.get("involvedObject") or {}
    E.append({"reason": e.get("reason"), "type": e.get("type"), "kind": io.get("kind"),
              "name": io.get("name"), "ns": io.get("namespace"),
              "instance": e.get("reportingInstance"), "component": src, "t": T(first),
              "count": e.get("count") or 1, "message": e.get("message"), "ref": io})
E.sort(key=lambda e: (e["t"] or 0))

def ev(reason, kind=None, name=None):
    return [e for e in E if e["reason"] == reason and (kind is None or e["kind"] == kind)
            and (name is None or e["name"] == name)]

def n(reason, kind=None, name=None):
    return sum(e["count"] for e in ev(reason, kind, name))

def cond(status, type_):
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return {}

def show():
    out = sys.stderr
    print("  Deployments (replicas ready generation annotations):", file=out)
    for name, d in sorted(D.items()):
        print("    %-16s %s %s gen=%s %s" % (name, d["replicas"], d["ready"], d["gen"], d["ann"]),
              file=out)
    for name, h in sorted(H.items()):
        print("  HPA %s: min=%s max=%s %s" % (name, h["min"], h["max"], h["ann"]), file=out)
    for name, c in sorted(C.items()):
        conds = ["%s=%s(%s: %s)" % (x.get("type"), x.get("status"), x.get("reason"),
                                    x.get("message")) for x in c.get("conditions") or []]
        print("  Channel %s: state=%s level=%s replicas=%s %s" % (
            name, c.get("state"), c.get("level"), c.get("replicas"), "; ".join(conds)), file=out)
    for name, m in sorted(M.items()):
        print("  ShutdownMatrix %s (mode %s): %s" % (name, MS[name].get("mode"),
                                                     json.dumps(m, sort_keys=True)), file=out)
    print("  pi0-operator Events (time reason type object instance count: message):", file=out)
    for e in E:
        t = datetime.datetime.utcfromtimestamp(e["t"]).strftime("%H:%M:%S") if e["t"] else "?"
        print("    %s %-15s %-7s %s/%s %s x%s: %s" % (
            t, e["reason"], e["type"], e["kind"], e["name"], e["instance"], e["count"],
            e["message"]), file=out)
        if not e["kind"]:
            print("      ^ involvedObject without a kind: %s" % json.dumps(e["ref"]), file=out)

if mode == "show":
    show()
    sys.exit(0)
if mode == "value":
    print(eval(args[0]))
    sys.exit(0)
failed = []
for x in args:
    try:
        if not eval(x):
            failed.append("not true: " + x)
    except Exception as e:  # e.g. an Event or annotation that is not there
        failed.append("%s: %r in: %s" % (type(e).__name__, e, x))
if failed:
    if mode == "explain":
        for x in failed:
            print("  " + x, file=sys.stderr)
    sys.exit(1)
PY

snapshot() {
  e2e_api GET "/apis/apps/v1/namespaces/$NS/deployments" >"$work/deployments.json" &&
    e2e_api GET "/apis/autoscaling/v1/namespaces/$NS/horizontalpodautoscalers" >"$work/hpas.json" &&
    e2e_api GET "/apis/stability.pi0.io/v1alpha1/namespaces/$NS/channels" >"$work/channels.json" &&
    e2e_api GET /apis/stability.pi0.io/v1alpha1/shutdownmatrices >"$work/matrices.json" &&
    e2e_api GET /api/v1/events >"$work/events.json"
}
VARS=() # --var NAME=VALUE pairs handed to every evaluation
setvar() { VARS+=(--var "$1=$2"); }
# value EXPR: the value of EXPR over the last snapshot.
value() { /usr/bin/python3 "$work/state.py" "$work" value "${VARS[@]}" "$1"; }
# holds EXPR...: a fresh snapshot, and every expression true.
holds() { snapshot 2>/dev/null && /usr/bin/python3 "$work/state.py" "$work" check "${VARS[@]}" "$@"; }

# shellcheck disable=SC2034 # the sourcing scripts read metrics_port
declare -A op_pid op_log op_id metrics_port
dump() {
  e2e_log "what the test saw:"
  snapshot || true
  /usr/bin/python3 "$work/state.py" "$work" show || true
  local n
  for n in "${!op_log[@]}"; do
    e2e_log "last lines of operator $n (${op_id[$n]}, pid ${op_pid[$n]}):"
    tail -n 40 "${op_log[$n]}" | sed 's/^/    /' >&2
  done
}
fail() {
  dump
  e2e_fail "$@"
}
# expect DESC EXPR...: fails, showing the state and which expressions are false, unless all hold.
expect() {
  local desc=$1
  shift
  if ! holds "$@"; then
    /usr/bin/python3 "$work/state.py" "$work" explain "${VARS[@]}" "$@" || true
    fail "$desc"
  fi
  e2e_log "ok: $desc"
}
# wait_for DESC TIMEOUT_S EXPR...: until every expression holds.
wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until holds "$@"; do
    if ((SECONDS >= deadline)); then
      /usr/bin/python3 "$work/state.py" "$work" explain "${VARS[@]}" "$@" || true
      fail "timed out after ${timeout}s waiting for $desc"
    fi
    sleep 0.3
  done
  e2e_log "ok: $desc"
}

# ---------------------------------------------------------------------------------------------
# Agents on synthetic load, operator replicas and a log of every change to some objects, for the
# scripts that drive pi0-operator through its levels (operator_kill_test.sh,
# operator_rollback_test.sh). They read NODES, operator_bin and agent_bin; the names and meaning
# match operator_e2e_test.sh's own copies.
#   write_profile NODE CPU_WAVE    the profile NODE's agent reads (written atomically: the agent
#                                  reloads on a rename)
#   start_agent NODE               a pi0-agent for NODE (200 ms samples, a window of 16) on a free
#                                  port; sets agent_url[NODE]
#   set_load CPU                   a constant cpu load CPU on every node: the load ℓ is CPU
#   wait_agents_at CPU             until every agent's projected cpu peak is CPU (20 s at most)
#   start_operator N [IDENTITY [NAME=VALUE...]]
#                                  pi0-operator replica N with leader election, identity IDENTITY
#                                  (default pi0-e2e-N) and NAME=VALUE added to its environment;
#                                  returns once it serves metrics; sets op_pid, op_log, op_id and
#                                  metrics_port [N]
#   leading N                      replica N has logged that it leads
#   metric N SERIES                the value of SERIES (labels included, as exposed) on replica N
#   lease_holder                   the holderIdentity of the Lease default/pi0-operator
#   record_changes FILE PATH...    watches each API collection PATH in the background and appends
#                                  to FILE one JSON line per object version, in the order of the
#                                  apiserver's resourceVersions per PATH: {"t": receive time (epoch
#                                  s), "path": PATH, "type": LISTED|ADDED|MODIFIED|DELETED,
#                                  "object": the object without managedFields}; returns once every
#                                  PATH is listed; a dropped watch resumes where it was (relists
#                                  on 410 Gone). Stopped at exit.
declare -A agent_url
profile() { echo "$work/profile-$1.yaml"; }
write_profile() {
  printf 'signals:\n  cpu: %s\n  memory: {wave: constant, value: 0.2}\n' "$2" \
    >"$(profile "$1").new"
  mv "$(profile "$1").new" "$(profile "$1")"
}
set_load() {
  local node
  for node in "${NODES[@]}"; do write_profile "$node" "{wave: constant, value: $1}"; done
  e2e_log "load set to $1"
}
agents_at() {
  local node
  for node in "${NODES[@]}"; do
    curl -sS --noproxy '*' --fail --max-time 2 "${agent_url[$node]}/fingerprint" |
      /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if abs(d["signals"]["cpu"]["projectedPeak"] - float(sys.argv[1])) < 0.005 else 1)' \
        "$1" 2>/dev/null || return 1
  done
}
wait_agents_at() {
  local deadline=$((SECONDS + 20))
  until agents_at "$1"; do
    ((SECONDS < deadline)) || fail "the agents' projected cpu peak did not reach $1 in 20 s"
    sleep 0.2
  done
  e2e_log "ok: every agent's projected cpu peak is $1"
}
start_agent() {
  local node=$1 log=$work/agent-$1.log pid port=""
  [[ -f $(profile "$node") ]] || write_profile "$node" "{wave: constant, value: 0.3}"
  # shellcheck disable=SC2154 # agent_bin: the sourcing script's
  "$agent_bin" --listen 127.0.0.1:0 --nvml-library none --gpu-probe-interval 0 \
    --node-name "$node" --source "synthetic:$(profile "$node")" --interval 200ms --window 16 \
    </dev/null 2>"$log" &
  pid=$!
  disown "$pid" # no "Killed" job notice when the exit trap kills it
  e2e_at_exit "kill -KILL $pid 2>/dev/null || true"
  for _ in $(seq 100); do
    port=$(e2e_log_field "$log" "pi0-agent started" port 2>/dev/null) && break
    e2e_pid_alive "$pid" || { tail -n 20 "$log" >&2; e2e_fail "pi0-agent for $node exited"; }
    sleep 0.1
  done
  [[ -n $port ]] || e2e_fail "pi0-agent for $node did not start serving"
  agent_url[$node]=http://127.0.0.1:$port
}
agents_flag() {
  local node out=""
  for node in "${NODES[@]}"; do out+="${out:+,}$node=${agent_url[$node]}"; done
  echo "$out"
}
start_operator() {
  local n=$1
  op_id[$n]=${2:-pi0-e2e-$n}
  op_log[$n]=$work/operator-$n.log
  # shellcheck disable=SC2154 # operator_bin: the sourcing script's
  env "${@:3}" "$operator_bin" --kubeconfig "$KUBECONFIG" --leader-elect --identity "${op_id[$n]}" \
    --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --agents "$(agents_flag)" --poll-interval 1s --agent-timeout 500ms --log-level info \
    </dev/null >"${op_log[$n]}" 2>&1 &
  op_pid[$n]=$!
  disown "${op_pid[$n]}"
  e2e_at_exit "kill -KILL ${op_pid[$n]} 2>/dev/null || true"
  local deadline=$((SECONDS + 30))
  until metrics_port[$n]=$(e2e_log_field "${op_log[$n]}" "serving metrics" port 2>/dev/null); do
    e2e_pid_alive "${op_pid[$n]}" || fail "operator $n exited at start"
    ((SECONDS < deadline)) || fail "operator $n does not serve metrics after 30 s"
    sleep 0.1
  done
  e2e_log "operator $n started: identity ${op_id[$n]}, pid ${op_pid[$n]}, metrics port ${metrics_port[$n]}${3:+, ${*:3}}"
}
leading() { grep -q '"msg":"leading"' "${op_log[$1]}"; }
metric() {
  local text
  text=$(curl -sS --noproxy '*' --fail --max-time 5 "http://127.0.0.1:${metrics_port[$1]}/metrics") ||
    return 1
  awk -v s="$2" '$1 == s { print $2; f = 1 } END { exit !f }' <<<"$text"
}
lease_holder() {
  e2e_api GET /apis/coordination.k8s.io/v1/namespaces/default/leases/pi0-operator 2>/dev/null |
    e2e_json 'print(d["spec"].get("holderIdentity") or "")'
}
record_changes() {
  local file=$1 pid
  shift
  : >"$file"
  /usr/bin/python3 - "$file" "$@" <<'PY' &
import json, os, ssl, sys, threading, time, urllib.error, urllib.request

out_path, paths = sys.argv[1], sys.argv[2:]
server, token = os.environ["PI0_APISERVER"], os.environ["PI0_TOKEN"]
context = ssl.create_default_context(cafile=os.environ["PI0_CA_FILE"])
lock = threading.Lock()
out = open(out_path, "a", buffering=1)

def emit(path, type_, obj):
    (obj.get("metadata") or {}).pop("managedFields", None)
    with lock:
        out.write(json.dumps({"t": time.time(), "path": path, "type": type_, "object": obj}) + "\n")

def get(url, timeout):
    req = urllib.request.Request(server + url, headers={"Authorization": "Bearer " + token})
    return urllib.request.urlopen(req, context=context, timeout=timeout)

def follow(path):
    rv = None
    while True:
        try:
            if rv is None:
                with get(path, 30) as r:
                    body = json.load(r)
                for o in body.get("items") or []:
                    emit(path, "LISTED", o)
                rv = body["metadata"]["resourceVersion"]
                with lock:
                    out.write(json.dumps({"t": time.time(), "path": path, "type": "SYNCED"}) + "\n")
            with get("%s?watch=1&resourceVersion=%s" % (path, rv), 330) as r:
                for line in r:
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        rv = None if (ev["object"].get("code") == 410) else rv
                        break
                    if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        emit(path, ev["type"], ev["object"])
                        rv = ev["object"]["metadata"]["resourceVersion"]
        except (OSError, ValueError, urllib.error.URLError) as e:
            print("record_changes: %s: %s" % (path, e), file=sys.stderr)
            time.sleep(0.5)

for p in paths:
    threading.Thread(target=follow, args=(p,), daemon=True).start()
while True:
    time.sleep(3600)
PY
  pid=$!
  disown "$pid"
  e2e_at_exit "kill -KILL $pid 2>/dev/null || true"
  local deadline=$((SECONDS + 30))
  until (($(grep -c '"type": "SYNCED"' "$file") >= $#)); do
    e2e_pid_alive "$pid" || e2e_fail "record_changes exited"
    ((SECONDS < deadline)) || e2e_fail "record_changes did not list $* within 30 s"
    sleep 0.1
  done
}
