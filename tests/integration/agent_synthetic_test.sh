#!/usr/bin/env bash
# pi0-agent --source synthetic:FILE end to end: the fingerprint shows the profile's known
# values, and rewriting the file changes the load within seconds (how later end-to-end tests
# drive overloads). An invalid profile, or a --host-root without /proc, is a clear error at
# start, not a silent fallback.
# Usage: agent_synthetic_test.sh PI0_AGENT_BINARY
AGENT=$1
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
require curl curl
require /usr/bin/python3 python3

PROFILE="$WORK/profile.yaml"
cat >"$PROFILE" <<'YAML'
signals:
  cpu:     {wave: sine, mean: 0.5, amplitude: 0.2, periodSeconds: 0.8}
  memory:  {wave: constant, value: 0.3}
  psi_cpu: {wave: constant, value: 0.05}
YAML

start_agent synthetic --source "synthetic:$PROFILE" --interval 100ms --window 16
wait_for 20 ready || die "agent not ready within 20 s"

# check_fingerprint PYTHON_EXPR...: every expression over `d` (the fingerprint) must be true.
check_fingerprint() {
  curl -sf "$E2E_AGENT_URL/fingerprint" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["signals"]
for expr in sys.argv[1:]:
    if not eval(expr):
        sys.exit("not true: " + expr)
' "$@"
}
# A constant 0.3: lambda_int 0.3, isolation 0.7. A sine of 0.8 s sampled every 0.1 s is 8
# samples a period: one rhythm, period 0.8 s (the clock jitters a little around 100 ms).
check_fingerprint \
  'sorted(s) == ["cpu", "memory", "psi_cpu"]' \
  'abs(s["memory"]["gates"]["lambda_int"] - 0.3) < 1e-9' \
  'abs(s["memory"]["gates"]["isolation"] - 0.7) < 1e-9' \
  's["cpu"]["gates"]["lambda1"] > 0.8' \
  'abs(s["cpu"]["dominantPeriodSeconds"] - 0.8) < 1e-9' \
  'd["missingSources"] == []' ||
  die "fingerprint does not show the profile"

# Overload: rewrite the profile; within a few seconds PSI reads 0.9.
cat >"$PROFILE.new" <<'YAML'
signals:
  cpu:     {wave: constant, value: 0.95}
  memory:  {wave: constant, value: 0.3}
  psi_cpu: {wave: constant, value: 0.9}
YAML
mv "$PROFILE.new" "$PROFILE"
wait_for 10 check_fingerprint 'abs(s["psi_cpu"]["current"] - 0.9) < 1e-9' ||
  die "rewriting the profile did not change the load"
grep -q 'reload' "$WORK/synthetic.log" || die "the reload was not logged"

# An invalid profile is refused at start with the file, signal and field in the message.
echo 'signals: {cpu: {wave: sine, mean: 0.5}}' >"$WORK/bad.yaml"
if "$AGENT" --source "synthetic:$WORK/bad.yaml" --listen 127.0.0.1:0 2>"$WORK/bad.log"; then
  die "an invalid profile was accepted"
fi
grep -q 'bad.yaml.*signals.cpu' "$WORK/bad.log" || die "unclear error for an invalid profile"
# A host root without /proc is a configuration mistake, refused at start with the reason.
mkdir -p "$WORK/empty-root"
if "$AGENT" --host-root "$WORK/empty-root" --nvml-library none --listen 127.0.0.1:0 \
  2>"$WORK/empty-root.log"; then
  die "an empty --host-root was accepted"
fi
grep -q 'no host source is readable under --host-root' "$WORK/empty-root.log" ||
  die "unclear error for an empty --host-root"
echo "PASS: synthetic source end to end"
