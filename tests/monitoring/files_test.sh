#!/usr/bin/env bash
# The dashboards and the alerting rules as files: the Helm chart's copies
# (charts/pi0/files/dashboards/*.json, charts/pi0/files/pi0.rules.yaml) are byte-identical to
# dashboards/*.json and alerts/pi0.rules.yaml; the rules file has `groups:` at its top level (the
# chart makes it a PrometheusRule's spec); every dashboard is valid JSON with a stable uid (its
# file name), the datasource variable, used by every panel, query and variable, the variables
# its queries use, and panels that neither overlap nor leave the grid
# (monitoring_check.py dashboards).
# Usage: files_test.sh SOURCE_DIR
set -euo pipefail
src=$(cd "${1:?usage: files_test.sh SOURCE_DIR}" && pwd)
cd "$src"
failed=0
fail() {
  echo "FAIL: $*" >&2
  failed=1
}
[[ -x /usr/bin/python3 ]] || { echo "FAIL: /usr/bin/python3 not found: install the Debian package python3" >&2; exit 1; }

fix="cp dashboards/*.json charts/pi0/files/dashboards/ && cp alerts/pi0.rules.yaml charts/pi0/files/pi0.rules.yaml"
shopt -s nullglob
dashboards=(dashboards/*.json)
((${#dashboards[@]} > 0)) || fail "no dashboards in dashboards/"
for f in "${dashboards[@]}"; do
  copy=charts/pi0/files/dashboards/$(basename "$f")
  if [[ ! -f $copy ]]; then
    fail "$copy is missing"
  elif ! cmp -s "$f" "$copy"; then
    fail "$copy differs from $f"
  fi
done
for copy in charts/pi0/files/dashboards/*; do
  [[ -f dashboards/$(basename "$copy") ]] ||
    fail "$copy has no original in dashboards/ (remove it, or add it to dashboards/)"
done
if [[ ! -f charts/pi0/files/pi0.rules.yaml ]]; then
  fail "charts/pi0/files/pi0.rules.yaml is missing"
elif ! cmp -s alerts/pi0.rules.yaml charts/pi0/files/pi0.rules.yaml; then
  fail "charts/pi0/files/pi0.rules.yaml differs from alerts/pi0.rules.yaml"
fi
if ((failed)); then
  echo "The chart's copies are out of date. From the repository's root: $fix" >&2
fi
grep -q '^groups:' alerts/pi0.rules.yaml ||
  fail "alerts/pi0.rules.yaml has no top-level 'groups:' (the chart's PrometheusRule spec is this file)"
grep -q '^[^#[:space:]]' <(grep -v '^groups:' alerts/pi0.rules.yaml) &&
  fail "alerts/pi0.rules.yaml has top-level keys besides 'groups:': $(grep -v '^groups:' alerts/pi0.rules.yaml | grep '^[^#[:space:]]' | head -3)"

/usr/bin/python3 "$src/tests/monitoring/monitoring_check.py" dashboards dashboards || failed=1
((failed == 0)) || exit 1
echo "PASS: ${#dashboards[@]} dashboards and the rules, and their copies in the chart"
