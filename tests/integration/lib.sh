# shellcheck shell=bash
# What Pi0's integration tests (the real pi0-agent, Prometheus and promtool; no cluster) add to
# tests/e2e/lib.sh, which this sources (sourced, not run). Temporary files live in $WORK; at exit
# the processes in PIDS and the agents started with e2e_start_agent are stopped and $WORK removed.
#   die MSG...            print FAIL: MSG and the last lines of $WORK/*.log, exit 1
#   require CMD PACKAGE   fail unless CMD is on PATH (or an executable path), naming PACKAGE
#   start_agent NAME ARGS...
#                         e2e_start_agent $AGENT (no GPUs) with ARGS, its log in $WORK/NAME.log
#   wait_for SECONDS CMD...
#                         retry CMD (its output discarded) every 0.2 s until it succeeds; 1 after
#                         SECONDS
#   http_code URL         the HTTP status of a GET of URL
#   ready                 the agent last started answers /readyz with 200

set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pi0-it.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
e2e_at_exit cleanup # the first registered runs last
trap e2e_on_exit EXIT

die() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# A missing prerequisite fails loudly with what to install.
require() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null || [ -x "$cmd" ] ||
    die "'$cmd' not found: install the Debian package '$pkg' (scripts/setup.sh does)"
}

start_agent() {
  local name=$1
  shift
  e2e_start_agent "$AGENT" "$WORK/$name.log" --nvml-library none --gpu-probe-interval 0 "$@"
}

wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

http_code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
ready() { [ "$(http_code "$E2E_AGENT_URL/readyz")" = 200 ]; }
