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
  /usr/bin/python3 "$source_dir/tests/demo/demo_nothing_left.py" "$1"
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

/usr/bin/python3 "$source_dir/tests/demo/demo_summary_check.py" "$tmp/summary.json" ||
  fail "the summary's facts do not hold"
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
  {
    grep -l -F -e "$cluster_dir/" -e "$work_dir/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
    pgrep -g "$demo_pgid" || true
  } | sort -un
)
# Each program must be among them, or the checks after the Ctrl-C would prove nothing. (A count
# would not do: how many helpers, kubectl calls and sleeps run at this moment is a matter of
# timing.)
found=$(for pid in "${running[@]}"; do
  { tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1 | sed 's|.*/||'; } 2>/dev/null || true
done | sort | uniq -c)
for program in etcd kube-apiserver pi0-agent pi0-operator pi0-webhook prometheus; do
  grep -Eq " $program\$" <<<"$found" ||
    fail "no $program among the processes found: $(tr -s ' \n' ' ' <<<"$found")"
done
log "running before the Ctrl-C (count, program):$(tr -s ' \n' ' ' <<<"$found")"
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
