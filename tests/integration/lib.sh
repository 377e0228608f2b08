# Shared helpers of Pi0's integration tests (sourced, not run).
# Every process a test starts is recorded and stopped on exit; temporary files live in $WORK.

set -euo pipefail

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pi0-it.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

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

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_agent NAME ARGS...: starts pi0-agent on a free port, logging to $WORK/NAME.log; sets
# AGENT_PID and AGENT_URL once it is serving.
start_agent() {
  local name=$1
  shift
  "$AGENT" --listen 127.0.0.1:0 --nvml-library none --gpu-probe-interval 0 "$@" \
    2>"$WORK/$name.log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  local port="" i
  for i in $(seq 100); do
    port=$(grep -o '"msg":"pi0-agent started".*"port":[0-9]*' "$WORK/$name.log" 2>/dev/null |
      grep -o '"port":[0-9]*' | cut -d: -f2 || true)
    [ -n "$port" ] && break
    kill -0 "$AGENT_PID" 2>/dev/null || die "pi0-agent exited at start"
    sleep 0.1
  done
  [ -n "$port" ] || die "pi0-agent did not start serving"
  AGENT_URL="http://127.0.0.1:$port"
}

# wait_for SECONDS CMD...: retries CMD every 0.2 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

http_code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
ready() { [ "$(http_code "$AGENT_URL/readyz")" = 200 ]; }
