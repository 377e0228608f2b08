#!/usr/bin/env bash
# End-to-end test of the EndpointSlice agent discovery (src/fleet/endpoint_slices.h) on the real control plane
# (tests/e2e): hand-made EndpointSlices (discovery.k8s.io/v1beta1) of the pi0-agent Service in a
# namespace, read by endpoint_slices_e2e_test.
# Usage: endpoint_slices_e2e_test.sh SOURCE_DIR TEST_BINARY
set -euo pipefail
source_dir=$1
binary=$2
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

e2e_cluster_up
e2e_create_namespace discovery
PI0_E2E_NAMESPACE=discovery "$binary" || e2e_fail "fleet_endpoint_slices_e2e_test failed"
e2e_log "PASS"
