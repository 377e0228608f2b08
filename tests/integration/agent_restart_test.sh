#!/usr/bin/env bash
# Warm restart: with --state-dir the window is full at once after a restart; a corrupt state
# file is ignored with a log line and the agent starts empty.
# Usage: agent_restart_test.sh PI0_AGENT_BINARY
AGENT=$1
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
require curl curl

STATE="$WORK/state"
args=(--interval 100ms --window 16 --state-dir "$STATE" --state-interval 200ms)

start_agent first "${args[@]}"
wait_for 20 ready || die "first agent never ready"
kill -TERM "$E2E_AGENT_PID"
wait "$E2E_AGENT_PID" || die "pi0-agent did not exit 0 on SIGTERM"
grep -q '"msg":"pi0-agent stopped"' "$WORK/first.log" || die "no clean-stop log line"
[ -s "$STATE/window.json" ] || die "no state file written"

start_agent second "${args[@]}"
# The first request after it starts serving already finds a full window.
code=$(http_code "$E2E_AGENT_URL/readyz")
[ "$code" = 200 ] || die "after a restart /readyz is $code, want 200 at once"
grep -q '"msg":"window restored"' "$WORK/second.log" || die "no 'window restored' log line"
metrics=$(curl -s "$E2E_AGENT_URL/metrics")
grep -q '^pi0_agent_state_restored 1' <<<"$metrics" || die "pi0_agent_state_restored is not 1"
kill -TERM "$E2E_AGENT_PID"
wait "$E2E_AGENT_PID" || die "second agent did not exit 0"

# Corrupt one byte in the payload: the agent must start anyway, empty, and say why.
/usr/bin/python3 - "$STATE/window.json" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-5] = ord("7") if b[-5] != ord("7") else ord("8")
open(p, "wb").write(b)
PY
start_agent third "${args[@]}"
code=$(http_code "$E2E_AGENT_URL/readyz")
[ "$code" = 503 ] || die "with a corrupt state file /readyz is $code, want 503 (empty window)"
grep -q 'checksum mismatch' "$WORK/third.log" || die "corrupt state file not reported in the log"
wait_for 20 ready || die "third agent never ready"
echo "PASS: warm restart and corrupt state"
