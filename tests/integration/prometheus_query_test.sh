#!/usr/bin/env bash
# PrometheusClient (src/metrics/prometheus_query.h) against a real Prometheus.
# Usage: prometheus_query_test.sh TEST_BINARY
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
binary=$1
require prometheus prometheus

port=$(e2e_free_port)
cat >"$WORK/prometheus.yml" <<YML
global:
  evaluation_interval: 1s
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$port" 2>"$WORK/prometheus.log" &
PIDS+=($!)
prometheus_ready() { [ "$(http_code "http://127.0.0.1:$port/-/ready")" = 200 ]; }
wait_for 60 prometheus_ready || die "Prometheus did not become ready"
PI0_PROMETHEUS_URL="http://127.0.0.1:$port" "$binary" || die "prometheus_query_test failed"
echo "PASS"
