#!/usr/bin/env bash
# pi0-agent on this machine's real /proc and /sys, scraped by a real Prometheus every second.
# Checks: promtool accepts /metrics, /fingerprint validates against the schema in docs/, and
# Prometheus's HTTP API returns the pi0_ series with sane values.
# Usage: agent_prometheus_test.sh PI0_AGENT_BINARY SCHEMA_FILE
AGENT=$1
SCHEMA=$2
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

require prometheus prometheus
require promtool prometheus
require curl curl
require /usr/bin/python3 python3
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null ||
  die "python3 module jsonschema missing: install the Debian package 'python3-jsonschema'"

start_agent agent --interval 100ms --window 16
wait_for 20 ready || die "agent not ready within 20 s"

# /metrics: content type and promtool's lint.
ctype=$(curl -s -o "$WORK/metrics.txt" -w '%{content_type}' "$E2E_AGENT_URL/metrics")
[ "$ctype" = "text/plain; version=0.0.4; charset=utf-8" ] || die "wrong Content-Type: $ctype"
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.log" 2>&1 ||
  die "promtool check metrics: $(cat "$WORK/promtool.log")"
for name in pi0_agent_build_info pi0_agent_samples_total pi0_agent_ready \
  pi0_node_gate_isolation pi0_node_gate_fit_error pi0_node_memory_total_bytes \
  pi0_agent_source_up; do
  grep -q "^$name" "$WORK/metrics.txt" || die "/metrics lacks $name"
done
grep -q '^pi0_agent_source_up{source="gpu"} 0' "$WORK/metrics.txt" ||
  die "the disabled GPU source is not reported as missing"

# /fingerprint against the schema, and sanity of this machine's values.
# The default body leaves spectra and entropy out; ?detail=spectra has them.
curl -sf "$E2E_AGENT_URL/fingerprint?detail=spectra" >"$WORK/fingerprint.json" ||
  die "GET /fingerprint?detail=spectra failed"
curl -sf "$E2E_AGENT_URL/fingerprint" >"$WORK/summary.json" || die "GET /fingerprint failed"
/usr/bin/python3 - "$SCHEMA" "$WORK/fingerprint.json" "$WORK/summary.json" <<'PY' || die "fingerprint check failed"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
summary = json.load(open(sys.argv[3]))
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
validator.validate(doc)
validator.validate(summary)
assert all("spectrum" not in s and "entropy" not in s for s in summary["signals"].values())
assert doc["ready"] is True, doc["ready"]
assert doc["windowSize"] == 16
for name in ("cpu", "memory"):
    sig = doc["signals"][name]
    assert sig["gates"] is not None, name
    assert len(sig["spectrum"]) == 8, name
# Memory in use on a running machine is neither 0 nor 100 %.
assert 0 < doc["signals"]["memory"]["mean"] < 1
assert any(m["source"] == "gpu" for m in doc["missingSources"])
PY

# A real Prometheus scraping the agent every second.
prom_port=$(e2e_free_port)
cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pi0-agent
    static_configs:
      - targets: ['${E2E_AGENT_URL#http://}']
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" 2>"$WORK/prometheus.log" &
PIDS+=($!)
PROM="http://127.0.0.1:$prom_port"

# query EXPR: prints the first sample's value, fails when there is none.
query() {
  curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1]) if r else sys.exit(1)'
}
wait_for 60 query 'up{job="pi0-agent"} == 1' || die "Prometheus never scraped the agent"
wait_for 30 query 'pi0_agent_ready' || die "pi0_agent_ready not in Prometheus"

check_range() {  # check_range EXPR MIN MAX
  local v
  wait_for 30 query "$1" || die "no data for $1"
  v=$(query "$1")
  /usr/bin/python3 -c "import sys; v=float('$v'); sys.exit(0 if $2 <= v <= $3 else 1)" ||
    die "$1 = $v, expected within [$2, $3]"
  echo "ok: $1 = $v"
}
check_range 'pi0_agent_ready' 1 1
check_range 'pi0_node_gate_isolation{signal="cpu"}' 0 1
check_range 'pi0_node_gate_lambda_int{signal="memory"}' 0.0001 0.9999
check_range 'pi0_node_signal_ratio{signal="cpu"}' 0 1
check_range 'pi0_node_memory_total_bytes' 1e8 1e15
check_range 'pi0_agent_window_fill_ratio' 1 1
# The rate needs a few scrapes behind it; deriv() fits a slope and does not extrapolate.
wait_for 30 query 'count_over_time(pi0_agent_samples_total[10s]) >= 8' || die "too few scrapes"
check_range 'deriv(pi0_agent_samples_total[10s])' 7 12  # 10 per second at 100 ms
check_range 'count(pi0_node_gate_fit_error)' 2 20
echo "PASS: agent scraped by Prometheus"
