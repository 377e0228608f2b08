#!/usr/bin/env bash
# The evidence experiment (bench/evidence), briefly:
#
#  1. report.py on a hand-made replay whose numbers are worked out by hand (report_check.py):
#     onset, leads, sensitivity, calm time and false alarms per hour.
#  2. The committed fixture recordings (bench/evidence/fixtures/*.csv) through
#     `run.sh --report-only` with the real pi0-forecast-replay: report.md, summary.json,
#     episodes.png and roc.png are written, and the table has a row for every detector.
#  3. Where root, cgroups, PSI and stress-ng are available: `run.sh --smoke` (about 50 s) with
#     the real pi0-agent: a row about every second, the ground-truth columns (PSI avg10, OOM
#     kills) filled in every row, an injection recorded, the replay as long as the recording,
#     and nothing left behind (cgroups, processes).
#
# Exits 77 (skipped) after 1 and 2 when 3 cannot run, saying why.
#
# Usage: smoke_test.sh PI0_AGENT PI0_FORECAST_REPLAY
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
evidence=$root/bench/evidence
agent=$(realpath "${1:?usage: smoke_test.sh PI0_AGENT PI0_FORECAST_REPLAY}")
replay=$(realpath "${2:?usage: smoke_test.sh PI0_AGENT PI0_FORECAST_REPLAY}")
python=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1  # nothing written into the source tree

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pi0-evidence-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

log() { printf '[evidence-test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

"$python" -c 'import numpy, matplotlib' 2>/dev/null ||
  fail "the report needs python3-numpy and python3-matplotlib (scripts/setup.sh installs them)"

# --- 1. the report's arithmetic ---------------------------------------------------------------
log "report.py on a hand-worked replay"
"$python" "$here/report_check.py" "$evidence/report.py" "$tmp" || fail "report_check.py"

# --- 2. the fixtures, replayed and reported ---------------------------------------------------
shopt -s nullglob
fixtures=("$evidence"/fixtures/*.csv)
((${#fixtures[@]})) || fail "no fixture recording in bench/evidence/fixtures"
log "run.sh --report-only on ${#fixtures[@]} fixture(s)"
"$evidence/run.sh" --report-only "${fixtures[@]}" --replay "$replay" \
  --recordings-dir "$tmp/recordings" --out-dir "$tmp/results" >"$tmp/report.out" 2>&1 ||
  { cat "$tmp/report.out" >&2; fail "run.sh --report-only exited $?"; }
for f in report.md summary.json episodes.png roc.png; do
  [[ -s $tmp/results/$f ]] || fail "no $f in the report"
done
detectors=$("$python" -c "import sys; sys.path.insert(0, '$evidence'); import report
print(' '.join(d.name for d in report.DETECTORS))")
for d in pi0-forecast pi0-warning static-80 koordinator trimaran legacy-mu2sigma $detectors; do
  grep -q "^| $d | " "$tmp/results/report.md" || fail "no row for $d in report.md"
  grep -q "^| $d | " "$tmp/report.out" || fail "no row for $d in the printed table"
done
grep -q "^| pi0-forecast | 0.8 | [0-9]* % \[" "$tmp/results/report.md" ||
  fail "pi0-forecast's row has no measured sensitivity: $(grep '^| pi0-forecast' \
    "$tmp/results/report.md")"
log "fixtures: report written, every detector has its row"

# --- 3. a short real recording ------------------------------------------------------------------
skip=""
cg=/sys/fs/cgroup
if ((EUID != 0)); then
  skip="not root"
elif ! command -v stress-ng >/dev/null; then
  skip="no stress-ng (apt-get install stress-ng)"
elif [[ ! -r /proc/pressure/cpu || ! -r /proc/pressure/memory || ! -r /proc/pressure/io ]]; then
  skip="no PSI in /proc/pressure"
elif [[ ! -e $cg/memory/memory.limit_in_bytes && ! -e $cg/cgroup.controllers ]]; then
  skip="no memory cgroup controller"
elif grep -qs . "$cg"/{memory/,}pi0-evidence{,-bg}/cgroup.procs; then
  skip="another evidence recording is running"
fi
if [[ -n $skip ]]; then
  log "SKIP the live recording: $skip"
  exit 77
fi

log "run.sh --smoke (about 50 s)"
"$evidence/run.sh" --smoke --agent "$agent" --replay "$replay" \
  --recordings-dir "$tmp/live" >"$tmp/smoke.out" 2>&1 ||
  { cat "$tmp/smoke.out" >&2; fail "run.sh --smoke failed"; }
recording=$(ls "$tmp"/live/*-smoke.csv)
"$python" - "$recording" "${recording%.csv}.replay.csv" <<'EOF' || fail "the smoke recording"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
replay = list(csv.DictReader(open(sys.argv[2])))
def check(cond, what):
    if not cond:
        sys.exit(f"smoke recording: {what}")
check(len(rows) >= 35, f"{len(rows)} rows, want >= 35 (about 50 s at 1 s)")
t = [float(r["t"]) for r in rows]
gaps = sorted(b - a for a, b in zip(t, t[1:]))
check(0.9 <= gaps[len(gaps) // 2] <= 1.1, f"median gap {gaps[len(gaps) // 2]:.3f} s, want ~1 s")
check(gaps[-1] <= 2.5, f"largest gap {gaps[-1]:.3f} s")
for col in ("psi_cpu_avg10", "psi_memory_avg10", "psi_io_avg10", "oom_kills"):
    check(all(r[col] != "" for r in rows), f"empty {col}")
check(all(r["memory"] != "" for r in rows[1:]), "the agent's memory signal is missing")
check(any(r["phase"] == "inject" and r["kind"] == "cpu" for r in rows), "no cpu injection")
check({r["phase"] for r in rows} >= {"warmup", "inject", "recover"}, "phases")
check(len(replay) == len(rows), f"replay has {len(replay)} rows, recording {len(rows)}")
check(all(r["cpu_peak"] == "" for r in replay), "cpu_peak before the window was full")
EOF
[[ -s ${recording%.csv}.meta.json ]] || fail "no .meta.json sidecar"
leftover=(/sys/fs/cgroup/*/pi0-evidence* /sys/fs/cgroup/pi0-evidence*)  # nullglob is on
((${#leftover[@]} == 0)) || fail "cgroups left behind: ${leftover[*]}"
log "live smoke recording: $(($(wc -l <"$recording") - 1)) rows, ground truth filled"
log "PASS"
