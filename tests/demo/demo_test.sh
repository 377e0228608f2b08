#!/usr/bin/env bash
# The one-command demo (scripts/demo.sh) on the test bed, twice:
#
#  1. `scripts/demo.sh --fast` to the end: it exits 0, and the facts of its summary (its
#     --summary-json) hold: the levels elevated, high and critical were reached and the level
#     ended at normal; at least one Degraded, ShutDown and Restored step; the demo's pods were
#     admitted and denied as expected, with at least one of each and the webhook's reasons
#     ChannelInactive, BufferExhausted and GatesFailed among its denials, and a ShutdownMatrix
#     without margin above the admission gate refused; pi0-webhook's metrics count them; no pod
#     that a restore brought back was denied as ChannelInactive or BufferExhausted; every
#     workload is back at exactly the replicas it had before the overload (examples/resources/'),
#     ready, without Pi0's annotations; Prometheus scraped all five programs and saw the
#     critical level. The printed live log and summary say the same. Afterwards nothing it
#     started runs (its processes, the control plane, the fake kubelet) and its directories are
#     gone.
#  2. Ctrl-C in the middle of the overload (SIGINT to its process group, as a terminal sends):
#     it exits 130 within 60 s, says it is cleaning up, and leaves nothing running or on disk.
#
# Usage: demo_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir=$(cd "${1:?usage: demo_test.sh SOURCE_DIR BUILD_DIR}" && pwd)
build_dir=$(cd "${2:?missing BUILD_DIR}" && pwd)
demo=$source_dir/scripts/demo.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pi0-demo-test.XXXXXX")
demo_pid=""
cleanup() {
  if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM -- "-$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

log() { printf '[demo-test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

# nothing_left SUMMARY_JSON: none of the processes the summary lists runs (the same pid with the
# same program), no process names the demo's directories, and they are gone.
nothing_left() {
  /usr/bin/python3 - "$1" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))
problems = []
for name, pid in s["processes"].items():
    try:
        with open("/proc/%s/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state not in ("Z", "X"):
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
            problems.append("%s (pid %s) still runs: %s" % (name, pid, cmd[:200]))
    except OSError:
        pass
dirs = [d for d in (s["workDir"], s["clusterDir"]) if d]
for d in dirs:
    if os.path.exists(d):
        problems.append("%s still exists" % d)
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        continue
    if any(d + "/" in cmd for d in dirs):
        problems.append("pid %s names the demo's directories: %s" % (pid, cmd[:200]))
if len(s["processes"]) < 11:  # 3 agents, webhook, operator, Prometheus, watcher, 4 + kubelet
    problems.append("only %d processes listed: %s" % (len(s["processes"]), s["processes"]))
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

# ---------------------------------------------------------------------------------------------
log "1. scripts/demo.sh --fast, to the end"
started=$SECONDS
rc=0
"$demo" --fast --build-dir "$build_dir" --summary-json "$tmp/summary.json" >"$tmp/out.log" 2>&1 ||
  rc=$?
sed 's/^/    /' "$tmp/out.log" >&2
log "the demo took $((SECONDS - started)) s and exited $rc"
((rc == 0)) || fail "the demo exited $rc, not 0"
[[ -s $tmp/summary.json ]] || fail "no summary JSON"

/usr/bin/python3 - "$tmp/summary.json" <<'PY' || fail "the summary's facts do not hold"
import json, sys
s = json.load(open(sys.argv[1]))
problems = []
def check(cond, what):
    if not cond:
        problems.append(what)
levels = s["levels"]
check(levels[:1] == ["normal"] and levels[-1:] == ["normal"], "levels start and end at normal: %s" % levels)
for want in ("elevated", "high", "critical"):
    check(want in levels, "level %s reached: %s" % (want, levels))
check(s["highestLevel"] == "critical" and s["maxLoad"] > 0.9, "highest critical, load > 0.9")
check(s["finalLevel"] == "normal" and s["finalLoad"] < 0.65, "final level normal, load < 0.65")
st = s["steps"]
check(st["Degraded"] >= 1 and st["ShutDown"] >= 1 and st["Restored"] >= 1,
      "at least one Degraded, ShutDown and Restored step: %s" % st)
check(st["ScaleFailed"] == 0 and st["RestoreStalled"] == 0, "no failed or stalled step: %s" % st)
acts = s["operatorActions"]
check(acts["shutdown"] == st["ShutDown"] and acts["restore"] >= st["Restored"],
      "the operator's action counters agree with the Events: %s %s" % (acts, st))
a = s["admission"]
check(a["allowed"] >= 1 and a["denied"] >= 1, "a pod allowed and one denied: %s" % a)
check(all(p["result"] == p["expect"] for p in a["probes"]), "every probe as expected: %s" % a["probes"])
reasons = {p["reason"] for p in a["probes"] if p["result"] == "denied"}
check({"ChannelInactive", "BufferExhausted", "GatesFailed", "Invalid"} <= reasons,
      "the denials' reasons from pi0-webhook's log: %s" % reasons)
check(all(p["message"] for p in a["probes"] if p["result"] == "denied"), "each denial has a message")
pods = a["webhookDecisions"].get("pods", {})
check(pods.get("allowed/Passed", 0) >= a["allowed"] + 18,
      "pi0-webhook's metrics count the allowed pods (the shop's 18 and the demo's): %s" % pods)
check(sum(v for k, v in pods.items() if k.startswith("denied/")) >= a["denied"],
      "pi0-webhook's metrics count the denials: %s" % pods)
# The operator announces a restore before it scales up, and pi0-webhook lets a restoring
# channel's pods through: none of them is denied (it used to be 10 to 20 a run).
check(a["restoredDenied"] == [], "no pod of a restoring channel denied: %s" % a["restoredDenied"])
matrices = a["webhookDecisions"].get("shutdownmatrices", {})
check(a["resourcesDenied"] == 1 and matrices.get("denied/Invalid") == 1
      and matrices.get("allowed/Valid", 0) >= 1,
      "the too-tight ShutdownMatrix refused, the example's admitted: %s" % matrices)
check(a["webhookDecisions"].get("channels", {}).get("allowed/Valid", 0) >= 5,
      "the example's five Channels validated: %s" % a["webhookDecisions"].get("channels"))
w = s["workloads"]
check(sorted(w) == ["api", "batch-reports", "database", "frontend", "recommendations",
                    "recommendations-cache"], "the six workloads: %s" % sorted(w))
for name, r in w.items():
    check(r["original"] is not None and r["original"] > 0 and r["replicas"] == r["original"]
          and r["ready"] == r["original"] and not r["annotations"],
          "%s back at its original replicas, ready, unannotated: %s" % (name, r))
check(w["batch-reports"]["original"] == 2 and w["recommendations"]["original"] == 4,
      "the originals are examples/resources/'s")
check(s["restored"] and not s["notRestored"] and not s["channelsNotActive"], "restored")
p = s["prometheus"]
check(len(p["targetsUp"]) == 5 and not p["targetsDown"], "five targets up: %s" % p)
check(p["peakLevel"] == 3 and p["peakLoad"] > 0.9, "Prometheus saw level 3 and load > 0.9: %s" % p)
check(s["ok"] and not s["problems"], "the demo found no problem: %s" % s["problems"])
for x in problems:
    print("  not true: " + x, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
log "ok: the summary's facts hold"

# The live log said it as it happened, and the summary says the same.
expect_line() { # expect_line REGEX DESCRIPTION
  grep -Eq "$1" "$tmp/out.log" || fail "the output has no line for $2 (/$1/)"
}
expect_line '^[0-9:]{8}  level +normal -> elevated at load 0\.[0-9]+$' "the level rising to elevated"
expect_line '^[0-9:]{8}  level +critical -> (high|elevated|normal) at load 0\.[0-9]+$' "the level falling from critical"
expect_line '^[0-9:]{8}  level +(high|elevated|critical) -> normal at load 0\.[0-9]+$' "the level falling to normal"
expect_line '^[0-9:]{8}  step +ShutDown +batch-reports: Deployment/batch-reports 1 -> 0' "batch-reports shut down"
expect_line '^[0-9:]{8}  step +Restored +batch-reports: every target has its replicas ready' "batch-reports restored"
expect_line '^[0-9:]{8}  admission denied +pod report-adhoc-2 .*is shut down at level high.*\[ChannelInactive\]$' "the denial of a pod of the shut-down channel"
expect_line '^[0-9:]{8}  admission allowed pod report-adhoc-3 ' "the admission after the restore"
expect_line '^[0-9:]{8}  admission denied +ShutdownMatrix too-tight \(first level at 0\.6\): .*0\.6' "the refused ShutdownMatrix"
expect_line '^  levels +normal -> elevated -> high -> critical -> ([a-z]+ -> )*normal ' "the summary's levels"
expect_line '^  restores +0 restored pods denied \(none expected\)$' "the summary's restores"
expect_line 'everything went as the worked example says; nothing was lost' "the summary's verdict"
expect_line '^[0-9:]{8}  stop +stopped [0-9]+ processes and the control plane; removed the cluster$' "the clean-up"
# The watcher prints each denial of the demo's own pods once (the demo prints it itself).
n=$(grep -c 'report-adhoc-2' "$tmp/out.log") || true
((n == 2)) || fail "report-adhoc-2 is named $n times, not twice (its denial and the summary)"
log "ok: the live log and the summary"

nothing_left "$tmp/summary.json" || fail "the demo left something behind"
log "ok: nothing left running, its directories removed"

# ---------------------------------------------------------------------------------------------
log "2. Ctrl-C during the overload"
rm -f "$tmp/summary.json"
# Its own process group, as a shell runs a foreground job, with SIGINT at its default (a
# background job of a script starts with SIGINT ignored); SIGINT goes to the whole group.
: >"$tmp/int.log"
/usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setpgid(0, 0)
os.execv(sys.argv[1], sys.argv[1:])' "$demo" --fast --build-dir "$build_dir" >"$tmp/int.log" 2>&1 &
demo_pid=$!
demo_pgid=$demo_pid
deadline=$((SECONDS + 120))
until grep -q '^== overload, part 2' "$tmp/int.log"; do
  kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/int.log" >&2; fail "the demo ended before the overload"; }
  ((SECONDS < deadline)) || { cat "$tmp/int.log" >&2; fail "the overload did not begin within 120 s"; }
  sleep 0.2
done
# What runs now, to look for afterwards: the processes naming the cluster's or the demo's
# directory (the first 'export KUBECONFIG=' line names the cluster's).
cluster_dir=$(sed -n 's|.*export KUBECONFIG=\(.*\)/kubeconfig;.*|\1|p' "$tmp/int.log" | head -n 1)
[[ -n $cluster_dir && -d $cluster_dir ]] || fail "no cluster directory in the demo's output"
work_dir=$(sed -n 's|.*  info  *logs: \(/[^ ]*\) .*|\1|p' "$tmp/int.log" | head -n 1)
[[ -n $work_dir && -d $work_dir ]] || fail "no logs directory in the demo's output"
# The control plane (sessions of its own) names the cluster's directory; what the demo started
# itself is in its process group.
mapfile -t running < <(
  grep -l -F -e "$cluster_dir/" -e "$work_dir/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
  pgrep -g "$demo_pgid" || true
)
((${#running[@]} >= 12)) || fail "only ${#running[@]} processes found: ${running[*]}"
kill -INT -- "-$demo_pgid"
t_int=$SECONDS
rc=0
wait "$demo_pid" || rc=$?
demo_pid=""
sed 's/^/    /' "$tmp/int.log" >&2
log "the demo exited $rc $((SECONDS - t_int)) s after SIGINT"
((rc == 130)) || fail "exit status $rc after Ctrl-C, not 130"
((SECONDS - t_int <= 60)) || fail "the clean-up took more than 60 s"
grep -q 'interrupted; cleaning up' "$tmp/int.log" || fail "the demo did not say it was interrupted"
grep -q 'Traceback' "$tmp/int.log" && fail "a Python traceback in the output"
grep -Eq 'stopped [0-9]+ processes and the control plane; removed the cluster' "$tmp/int.log" ||
  fail "the demo did not say it cleaned up"
left=$(pgrep -g "$demo_pgid" || true)
[[ -z $left ]] || fail "processes of the demo's group still run: $left"
for pid in "${running[@]}"; do
  if grep -q -F -e "$cluster_dir/" -e "$work_dir/" "/proc/$pid/cmdline" 2>/dev/null; then
    fail "pid $pid still runs: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
  fi
done
[[ ! -e $cluster_dir ]] || fail "$cluster_dir still exists"
[[ ! -e $work_dir ]] || fail "$work_dir still exists"
log "ok: Ctrl-C stops everything and removes the cluster"
log "PASS"
