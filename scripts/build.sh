#!/usr/bin/env bash
# Configures and builds one configuration of Pi0: `release` (default) or `asan`
# (Debug with AddressSanitizer and UndefinedBehaviorSanitizer). Output in build/<config>.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-release}
case "$config" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DPI0_SANITIZE=ON -DPI0_CUDA=OFF) ;;
  *) echo "build: unknown configuration '$config' (want release or asan)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$config" "${flags[@]}" >/dev/null
cmake --build "build/$config" -j "$(nproc)"
