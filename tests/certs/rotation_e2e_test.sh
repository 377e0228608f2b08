#!/usr/bin/env bash
# End-to-end test of pi0-webhook's self-managed certificates (src/certs/rotation.h) on the real
# control plane of tests/e2e/cluster.sh: the Secret and the ValidatingWebhookConfiguration's
# caBundles as reconcileCertificates writes them, through a serving renewal and a CA rotation.
# Usage: rotation_e2e_test.sh SOURCE_DIR E2E_TEST_BINARY
set -euo pipefail
source_dir=$1
e2e_binary=$2
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

e2e_cluster_up
e2e_create_namespace certs-e2e
PI0_E2E_NAMESPACE=certs-e2e "$e2e_binary" || e2e_fail "certs_rotation_e2e_test failed"
e2e_log "PASS"
