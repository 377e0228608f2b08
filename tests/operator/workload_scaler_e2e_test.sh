#!/usr/bin/env bash
# End-to-end test of the operator's WorkloadScaler on the real control plane (tests/e2e): two
# stand-in Nodes, the fake kubelet marking pods ready, kube-controller-manager's HPA controller
# acting on the autoscalers, and workload_scaler_e2e_test, which also runs itself as a driver
# process killed at each of the scaler's crash points (PI0_CRASH_POINT).
# Usage: workload_scaler_e2e_test.sh SOURCE_DIR TEST_BINARY
set -euo pipefail
source_dir=$1
binary=$2
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

e2e_cluster_up
e2e_create_node worker-a 8 32Gi
e2e_create_node worker-b 8 32Gi
e2e_start_fake_kubelet
e2e_create_namespace scaler
PI0_E2E_NAMESPACE=scaler "$binary" || e2e_fail "workload_scaler_e2e_test failed"
e2e_log "PASS"
