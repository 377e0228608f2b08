#!/usr/bin/env bash
# The evidence experiment in one command: does Pi0's forecast see trouble coming better than
# static thresholds? (bench/evidence/README.md)
#
#   1. record  real overloads of this machine (stress-ng in a cgroup of its own) with the real
#              pi0-agent reading /proc at 1 s, and the kernel's ground truth (PSI, OOM kills):
#              bench/evidence/record.py, into recordings/<date-time>.csv;
#   2. replay  the recording through Pi0's forecast and the other detectors' inputs:
#              pi0-forecast-replay, into recordings/<date-time>.replay.csv;
#   3. report  sensitivity, false alarms per hour, lead times with bootstrap intervals, plots:
#              bench/evidence/report.py, into results/ (report.md, summary.json, *.png).
#
# --report-only skips the recording: it replays the recordings given (files that are already
# replays are used as they are) and reports them together.
#
# A benchmark prints figures; it asserts nothing. Exit codes: 0 measured, 1 failed, 2 usage or
# a missing prerequisite (recording needs root, cgroups, PSI and stress-ng).
#
# Usage: bench/evidence/run.sh [flags]   (see --help)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=/usr/bin/python3  # Debian's, with python3-numpy and python3-matplotlib

agent="${PI0_AGENT:-$root/build/release/agent/pi0-agent}"
replay="${PI0_FORECAST_REPLAY:-$root/build/release/bench/evidence/pi0-forecast-replay}"
recordings="$here/recordings"
out_dir=""
record_flags=()
report_flags=()
smoke=0
report_only=0
pressure_line=0.2
inputs=()

usage() {
  cat <<EOF
Usage: bench/evidence/run.sh [flags]
       bench/evidence/run.sh --report-only RECORDING_OR_REPLAY.csv... [flags]

Records real overloads of this machine with the real pi0-agent, replays them through every
detector and writes the report (report.md, summary.json, episodes.png, roc.png).

Flags:
  --episodes-per-kind N   episodes of each kind (cpu, memory, io), shapes in turn (default 12;
                          about 95 minutes in all with the defaults)
  --calm-minutes M        calm-only minutes for counting false alarms (default 10)
  --seed S                the plan's random seed (default 1)
  --memory-margin SIZE    the experiment's memory limit is MemTotal minus this (default 2G)
  --smoke                 one ~20 s cpu episode, about 50 s: checks the set-up (recording and
                          replay); too short for a report
  --report-only FILE...   no recording: replay and report these recordings (or replays)
  --trouble-line PCT      PSI some avg10 percent that means trouble (default 20)
  --min-lead S            seconds before onset that count as early (default 5)
  --out-dir DIR           where the report goes (default bench/evidence/results)
  --recordings-dir DIR    where recordings and replays go (default bench/evidence/recordings)
  --agent PATH            pi0-agent (default build/release/agent/pi0-agent, or \$PI0_AGENT)
  --replay PATH           pi0-forecast-replay (default build/release/bench/evidence/
                          pi0-forecast-replay, or \$PI0_FORECAST_REPLAY)
  --help                  print this help
EOF
}

die() {
  echo "evidence: $*" >&2
  exit 2
}
log() { printf '[evidence %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while (($#)); do
  case "$1" in
    --episodes-per-kind | --calm-minutes | --seed | --memory-margin)
      record_flags+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --trouble-line)
      report_flags+=("$1" "${2:?$1 needs a value}")
      # the replay's early warning aims at the same line, as a ratio
      pressure_line=$(awk -v p="$2" 'BEGIN { if (p + 0 > 0 && p + 0 <= 100) print p / 100 }')
      [[ -n $pressure_line ]] || die "--trouble-line takes a percentage in (0, 100]"
      shift 2 ;;
    --min-lead)
      report_flags+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --smoke) smoke=1; record_flags+=(--smoke); shift ;;
    --report-only)
      report_only=1; shift
      while (($#)) && [[ $1 != --* ]]; do inputs+=("$1"); shift; done
      ((${#inputs[@]})) || die "--report-only needs at least one recording or replay" ;;
    --out-dir) out_dir=${2:?--out-dir needs a value}; shift 2 ;;
    --recordings-dir) recordings=${2:?--recordings-dir needs a value}; shift 2 ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    --replay) replay=${2:?--replay needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "evidence: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

# --- prerequisites -------------------------------------------------------------------------
[[ -x $python ]] || die "no $python. Install Debian's Python: apt-get install python3"
"$python" -c 'import numpy, matplotlib' 2>/dev/null ||
  die "the report needs numpy and matplotlib: apt-get install python3-numpy python3-matplotlib"
[[ -x $replay ]] || die "no pi0-forecast-replay at '$replay'. Build it: scripts/build.sh release"
if ((!report_only)); then
  ((EUID == 0)) || die "recording needs root (cgroups, a memory limit): run it with sudo, or" \
    "report existing recordings with --report-only"
  [[ -x $agent ]] || die "no pi0-agent binary at '$agent'. Build it: scripts/build.sh release"
  command -v stress-ng >/dev/null || die "no stress-ng. Install it: apt-get install stress-ng"
  for r in cpu memory io; do
    [[ -r /proc/pressure/$r ]] || die "no /proc/pressure/$r: the kernel needs PSI (psi=1)"
  done
fi
mkdir -p "$recordings"

# Runs a command in the background and waits for it, passing SIGINT and SIGTERM on to it, so
# that the recorder cleans up (cgroups, stress-ng, the agent) whoever is signalled; returns its
# exit status.
child=""
trap '[[ -n $child ]] && kill -INT "$child" 2>/dev/null' INT
trap '[[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM
run_forwarding() {
  local rc
  "$@" &
  child=$!
  while :; do
    rc=0
    wait "$child" || rc=$?
    # A trap ends the wait early (status > 128) while the command is still cleaning up.
    if ((rc <= 128)) || ! kill -0 "$child" 2>/dev/null; then break; fi
  done
  child=""
  return "$rc"
}

# A recording's replay, into the recordings directory as NAME.replay.csv.
replay_one() {
  local in=$1 name out
  name=$(basename "$in" .csv)
  out="$recordings/$name.replay.csv"
  log "replaying $in"
  if ! "$replay" --window 64 --horizon 30 --interval 1 --pressure-line "$pressure_line" \
    <"$in" >"$out.tmp"; then
    rm -f "$out.tmp"
    echo "evidence: pi0-forecast-replay failed on $in" >&2
    exit 1
  fi
  mv "$out.tmp" "$out"
  # the sidecar (seed, flags, machine) goes along, for the report
  local meta=${in%.csv}.meta.json
  if [[ -r $meta && ! $recordings/$name.meta.json -ef $meta ]]; then
    cp "$meta" "$recordings/$name.meta.json"
  fi
  replays+=("$out")
}

replays=()
if ((report_only)); then
  for f in "${inputs[@]}"; do
    [[ -r $f ]] || die "cannot read '$f'"
    if head -n 1 "$f" | tr ',' '\n' | grep -qx cpu_peak; then
      replays+=("$f")
    else
      replay_one "$f"
    fi
  done
  out_dir=${out_dir:-$here/results}
else
  stamp=$(date -u +%Y%m%d-%H%M%S)
  recording="$recordings/$stamp.csv"
  ((smoke)) && recording="$recordings/$stamp-smoke.csv"
  log "recording to $recording"
  rc=0
  run_forwarding "$python" "$here/record.py" --out "$recording" --agent "$agent" \
    "${record_flags[@]}" || rc=$?
  case $rc in
    0) ;;
    2) exit 2 ;;
    1) echo "evidence: the recording failed" >&2; exit 1 ;;
    *) log "recording interrupted (exit $rc); what was recorded is in $recording"; exit "$rc" ;;
  esac
  replay_one "$recording"
  if ((smoke)); then
    # Too short for the windows to fill, so nothing to report: say what was recorded.
    rows=$(($(wc -l <"$recording") - 1))
    replayed=$(($(wc -l <"${replays[0]}") - 1))
    log "smoke: $rows rows recorded, $replayed replayed ($recording)"
    ((rows > 0 && rows == replayed)) || { echo "evidence: smoke run incomplete" >&2; exit 1; }
    exit 0
  fi
  out_dir=${out_dir:-$here/results}
fi

log "reporting ${#replays[@]} replay(s) into $out_dir"
rc=0
"$python" "$here/report.py" --out-dir "$out_dir" "${report_flags[@]}" "${replays[@]}" || rc=$?
case $rc in
  0) exit 0 ;;
  2) exit 2 ;;
  *) echo "evidence: the report failed" >&2; exit 1 ;;
esac
