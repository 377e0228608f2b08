#!/usr/bin/env bash
# End-to-end test of src/kube/token_review on the real control plane of tests/e2e/cluster.sh:
# service-account tokens from the TokenRequest API, reviewed by the apiserver's TokenReview for
# the audience "pi0-fleet", and the allowed-user check on top (token_review_e2e_test.cc).
# Usage: token_review_e2e_test.sh SOURCE_DIR E2E_TEST_BINARY
# Exit: 0 passed, 1 failed, 77 skipped (no kubectl or etcd, or the control plane cannot be
# built here; the reason is printed).
set -euo pipefail
source_dir=$1
e2e_binary=$2
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"

skip() {
  e2e_log "SKIP: $*"
  exit 77
}
command -v kubectl >/dev/null || skip "kubectl is not on PATH"
command -v etcd >/dev/null || skip "etcd is not installed (Debian package etcd-server)"
# Builds the control plane once (cached); where that cannot be done, nothing here can run.
"$E2E_CLUSTER" build || skip "the control plane cannot be built here (cluster.sh build failed)"

e2e_cluster_up
e2e_create_namespace token-review
PI0_E2E_NAMESPACE=token-review "$e2e_binary" || e2e_fail "kube_token_review_e2e_test failed"
e2e_log "PASS"
