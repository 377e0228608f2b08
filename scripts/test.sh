#!/usr/bin/env bash
# Pi0's whole test suite: installs what it needs, then builds and runs every test (unit,
# integration with a real Prometheus, end-to-end on a real Kubernetes control plane, format check)
# in the Release and the ASan+UBSan builds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The e2e tests (ctest -L e2e) run on a Kubernetes 1.20 control plane built from Debian's source
# package. Build it once here, outside the tree (~/.cache/pi0), rather than inside a test's timeout.
echo "=== e2e control plane (the first build takes about 5 minutes; later runs reuse the cache)"
tests/e2e/cluster.sh build
status=0
for config in release asan; do
  echo "=== $config build"
  scripts/build.sh "$config"
  echo "=== $config tests"
  ctest --test-dir "build/$config" --output-on-failure -j 2 || status=1
done
exit $status
