#!/usr/bin/env bash
# Pi0's whole test suite: installs what it needs, then builds and runs every test (unit,
# integration with a real Prometheus, format check) in the Release and the ASan+UBSan builds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
status=0
for config in release asan; do
  echo "=== $config build"
  scripts/build.sh "$config"
  echo "=== $config tests"
  ctest --test-dir "build/$config" --output-on-failure -j 2 || status=1
done
exit $status
