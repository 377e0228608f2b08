#!/usr/bin/env bash
# Installs every Debian package Pi0's build, tests and benchmarks need. Idempotent: when
# everything is already installed it changes nothing; otherwise it runs `apt-get update` and
# installs what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  # libraries (the product card)
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev
  libeigen3-dev libfftw3-dev doctest-dev
  # tests: a real Prometheus and promtool, JSON Schema validation, HTTP
  prometheus python3 python3-jsonschema curl clang-format
  # fuzzing (tests/fuzz): clang and its runtimes (libFuzzer, ASan, UBSan)
  clang-19 libclang-rt-19-dev
  # benchmark: the peer it is measured against, and the profiler
  prometheus-node-exporter valgrind wrk
  # e2e test bed (tests/e2e): etcd as the store; rsync, make and `apt-get source` (dpkg-dev,
  # xz-utils) to build the Kubernetes 1.20 control plane from Debian's source package; openssl
  # for its certificates; the archive keyring to verify the bullseye Go 1.15 packages
  etcd-server rsync openssl dpkg-dev xz-utils ca-certificates debian-archive-keyring
)
# kubectl for the e2e tests: Debian's kubernetes-client (1.20, the test bed's own version),
# unless a kubectl is already installed (a newer one works as well).
command -v kubectl >/dev/null || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
