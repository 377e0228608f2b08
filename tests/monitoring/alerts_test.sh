#!/usr/bin/env bash
# Pi0's alerting rules (alerts/pi0.rules.yaml): `promtool check rules`, the unit tests
# (`promtool test rules alerts/pi0.rules.test.yaml`), and, from the rules as a real Prometheus
# loads them (its /api/v1/rules), that every alert has a `for`, severity and component labels,
# summary, description and a runbook_url pointing at its section of dashboards/README.md, and a
# unit test where it fires and one where it does not (monitoring_check.py rules).
# Usage: alerts_test.sh SOURCE_DIR
set -euo pipefail
src=$(cd "${1:?usage: alerts_test.sh SOURCE_DIR}" && pwd)
for cmd in prometheus promtool; do
  command -v "$cmd" >/dev/null ||
    { echo "FAIL: $cmd not found: install the Debian package prometheus (scripts/setup.sh does)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "FAIL: curl not found: install the Debian package curl" >&2; exit 1; }
[[ -x /usr/bin/python3 ]] || { echo "FAIL: /usr/bin/python3 not found: install the Debian package python3" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pi0-alerts.XXXXXX")
prom_pid=""
cleanup() {
  if [[ -n $prom_pid ]]; then
    kill "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
die() {
  echo "FAIL: $*" >&2
  [[ -f $work/prometheus.log ]] && tail -n 20 "$work/prometheus.log" >&2
  exit 1
}

failed=0
promtool check rules "$src/alerts/pi0.rules.yaml" || die "promtool check rules failed"
promtool test rules "$src/alerts/pi0.rules.test.yaml" || {
  echo "FAIL: promtool test rules failed" >&2
  failed=1
}

# The rules as Prometheus loads them, as JSON.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp "$src/alerts/pi0.rules.yaml" "$work/pi0.rules.yaml"
printf 'global:\n  evaluation_interval: 1s\nrule_files:\n  - %s\n' "$work/pi0.rules.yaml" \
  >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 100); do
  curl -sf --noproxy '*' "http://127.0.0.1:$port/api/v1/rules" >"$work/rules.json" 2>/dev/null &&
    grep -q '"alerting"' "$work/rules.json" && break
  kill -0 "$prom_pid" 2>/dev/null || die "prometheus exited at start"
  sleep 0.2
done
grep -q '"alerting"' "$work/rules.json" 2>/dev/null || die "prometheus did not load the rules in 20 s"
/usr/bin/python3 "$src/tests/monitoring/monitoring_check.py" rules "$work/rules.json" \
  "$src/alerts/pi0.rules.test.yaml" "$src/dashboards/README.md" || die "rule checks failed"
((failed == 0)) || exit 1
echo "PASS: $(grep -o '"type":"alerting"' "$work/rules.json" | wc -l) alerts checked, unit tests pass"
