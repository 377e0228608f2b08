#!/usr/bin/env bash
# Proves, without a Docker engine, that the Dockerfile's runtime stage holds every shared library
# the three programs and kubectl-pi0 need: for each library that `ldd` lists for the Release binaries of BUILD_DIR,
# `dpkg -S` names the Debian package that ships it on this machine (Debian 12, the image's own
# release), and that package must be one the runtime stage installs (its `apt-get install` list,
# with the dependencies apt installs along, read from this machine's dpkg database) or one of the
# slim base image's (the list below, each entry with the dependency that puts it there, checked
# too). Also checks the stage's shape: --no-install-recommends, apt lists removed, a numeric
# non-root USER, the four binaries (and kubectl_complete-pi0) in /usr/local/bin, no ENTRYPOINT, and the image's version
# label against the project's version.
#
#   tests/docker/runtime_libs_test.sh BUILD_DIR [DOCKERFILE]   # e.g. build/release
#
# Libraries loaded with dlopen are not in `ldd`'s answer; they are named here and checked to be
# the ones the sources load: libnvidia-ml.so.1 (the NVIDIA container toolkit mounts the driver's
# into the container on a GPU node) and libpi0_cuda_probe.so (built only with the CUDA toolkit,
# which the image's build stage does not have; when BUILD_DIR has one, its own libraries are
# checked as well, as they would be needed if it were shipped).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: runtime_libs_test.sh BUILD_DIR [DOCKERFILE]}
dockerfile=${2:-$root/Dockerfile}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

for tool in ldd dpkg dpkg-query; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done
[[ -f $dockerfile ]] || { echo "FAIL: no Dockerfile at the repository's root" >&2; exit 1; }

binaries=("$build/agent/pi0-agent" "$build/operator/pi0-operator" "$build/webhook/pi0-webhook"
  "$build/kubectl-pi0/kubectl-pi0")
for b in "${binaries[@]}"; do
  [[ -x $b ]] || { echo "FAIL: $b is missing: build the Release configuration first (scripts/build.sh release)" >&2; exit 1; }
done
probe=$build/agent/libpi0_cuda_probe.so
[[ -f $probe ]] && binaries+=("$probe")

# --- The runtime stage of the Dockerfile: from its FROM to the end of the file. -----------------
mapfile -t stage_lines < <(awk '
  /^FROM[ \t]/ { n++; stage = "" }
  { lines[n] = lines[n] $0 "\n" }
  END { printf "%s", lines[n] }' "$dockerfile")
stage=$(printf '%s\n' "${stage_lines[@]}")
[[ $(grep -c '^FROM[[:space:]]' "$dockerfile") -ge 2 ]] || fail "the Dockerfile is not multi-stage"
grep -Eq '^FROM[[:space:]]+debian:bookworm-slim([[:space:]]|$)' <<<"${stage_lines[0]}" ||
  fail "the runtime stage does not start FROM debian:bookworm-slim: '${stage_lines[0]}'"

# The logical lines (continuations joined) of the runtime stage.
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' <<<"$stage")
install_line=$(grep -E 'apt-get install' <<<"$joined" || true)
[[ $(grep -c . <<<"$install_line") -eq 1 ]] ||
  { echo "FAIL: want exactly one RUN with apt-get install in the runtime stage, found: $install_line" >&2; exit 1; }
grep -q -- '--no-install-recommends' <<<"$install_line" ||
  fail "the runtime stage's apt-get install lacks --no-install-recommends"
grep -q 'rm -rf /var/lib/apt/lists' <<<"$install_line" ||
  fail "the runtime stage does not remove /var/lib/apt/lists in the RUN that installs"
# The words after "apt-get install" up to the next && or ;, less the options.
runtime_packages=()
read -ra words <<<"$(sed -E 's/.*apt-get install//; s/(&&|;).*//' <<<"$install_line")"
for w in "${words[@]}"; do
  [[ $w == -* ]] || runtime_packages+=("$w")
done
((${#runtime_packages[@]} > 0)) || { echo "FAIL: no package in the runtime stage's apt-get install" >&2; exit 1; }
echo "runtime stage installs: ${runtime_packages[*]}"

user=$(grep -E '^USER[[:space:]]' <<<"$joined" | tail -n 1 | awk '{print $2}')
[[ $user =~ ^([0-9]+)(:[0-9]+)?$ && ${BASH_REMATCH[1]} != 0 ]] ||
  fail "the runtime stage's USER is '$user', want a numeric non-root UID (e.g. 65532:65532)"
for p in pi0-agent pi0-operator pi0-webhook kubectl-pi0 kubectl_complete-pi0; do
  grep -Eq "^COPY[[:space:]]+--from=[a-z]+[[:space:]].*/${p}[[:space:]].*/usr/local/bin/?$" <<<"$joined" ||
    fail "the runtime stage does not COPY $p from the build stage into /usr/local/bin"
done
if grep -Eq '^ENTRYPOINT' <<<"$joined"; then
  fail "the runtime stage has an ENTRYPOINT: the program is chosen by the command (charts/pi0)"
fi
project_version=$(sed -nE 's/^project\(pi0 VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")
grep -q "org.opencontainers.image.version=\"$project_version\"" <<<"$joined" ||
  fail "the image's version label is not the project's version $project_version (CMakeLists.txt)"

# --- What the runtime stage's packages bring: themselves and their Depends/Pre-Depends. ----------
declare -A installed_by=() # package -> why
queue=()
for p in "${runtime_packages[@]}"; do
  dpkg-query -W "$p" >/dev/null 2>&1 ||
    { fail "the runtime stage installs $p, which is not a Debian 12 package installed here (dpkg-query -W $p)"; continue; }
  installed_by[$p]="in the runtime stage's apt-get install"
  queue+=("$p")
done
while ((${#queue[@]} > 0)); do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  deps=$(dpkg-query -W -f='${Pre-Depends}, ${Depends}' "$p" 2>/dev/null || true)
  # "a (>= 1), b | c, d:any" -> the first alternative of each, without versions and arch.
  while IFS= read -r dep; do
    [[ -n $dep ]] || continue
    if [[ -z ${installed_by[$dep]:-} ]] && dpkg-query -W "$dep" >/dev/null 2>&1; then
      installed_by[$dep]="a dependency of $p"
      queue+=("$dep")
    fi
  done < <(tr ',' '\n' <<<"$deps" | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g')
done

# --- The slim base: packages every debian:bookworm-slim image has. The slim image is a minbase
# debootstrap: the Priority "required" packages (dpkg, coreutils, libc-bin, ...) and apt, with
# their dependencies. Each entry names a package of that set that depends on it; the dependency is
# checked below in this machine's dpkg database, so a wrong claim fails the test.
declare -A slim_base=(
  [libc6]=libc-bin  # the C library: everything depends on it
  [libgcc-s1]=libc6 # the GCC runtime
  [libstdc++6]=apt  # the C++ runtime: apt is written in C++
  [zlib1g]=dpkg     # dpkg reads compressed archives
)
for p in "${!slim_base[@]}"; do
  dependent=${slim_base[$p]}
  deps=$(dpkg-query -W -f='${Pre-Depends}, ${Depends}' "$dependent" 2>/dev/null) ||
    { fail "slim base: cannot read the dependencies of $dependent"; continue; }
  if tr ',' '\n' <<<"$deps" | sed -E 's/\(.*\)//; s/:any//; s/[[:space:]]//g' | tr '|' '\n' | grep -qx "$p"; then
    [[ -n ${installed_by[$p]:-} ]] || installed_by[$p]="in the slim base (a dependency of $dependent)"
  else
    fail "slim base: $dependent does not depend on $p, so the base list's reason for $p is wrong"
  fi
done

# --- Every library ldd lists, to its package. ----------------------------------------------------
# ldd may print /lib/... for a file the package ships as /usr/lib/... (merged /usr): both, and the
# resolved path, are tried.
package_of() {
  local path=$1 real alt candidate out
  real=$(readlink -f "$path")
  for candidate in "$path" "$real"; do
    case $candidate in
      /usr/lib/*) alt=${candidate#/usr} ;;
      /lib/* | /lib64/*) alt=/usr$candidate ;;
      *) alt="" ;;
    esac
    for c in "$candidate" $alt; do
      if out=$(dpkg -S "$c" 2>/dev/null); then
        # "libfoo1:amd64: /usr/lib/..." -> libfoo1 (a diversion line has no package: skipped)
        sed -nE 's/^([^: ,]+)(:[a-z0-9]+)?: .*/\1/p' <<<"$out" | head -n 1
        return 0
      fi
    done
  done
  return 1
}

checked=0
for b in "${binaries[@]}"; do
  if ! lines=$(ldd "$b" 2>&1); then
    fail "ldd $b failed: $lines"
    continue
  fi
  while IFS= read -r line; do
    # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)",
    # "linux-vdso.so.1 (0x...)" (in the kernel: no file), "libbar.so => not found".
    [[ $line =~ linux-vdso|linux-gate ]] && continue
    if [[ $line =~ "=> not found" ]]; then
      fail "$(basename "$b"): $(awk '{print $1}' <<<"$line") is not found on this machine"
      continue
    fi
    path=$(sed -nE 's/.*=> (\/[^ ]+) .*/\1/p; t; s/^[[:space:]]*(\/[^ ]+) .*/\1/p' <<<"$line")
    [[ -n $path ]] || continue
    lib=$(basename "$path")
    if ! pkg=$(package_of "$path"); then
      fail "$(basename "$b"): $lib ($path) belongs to no Debian package (dpkg -S): the image cannot get it from apt"
      continue
    fi
    checked=$((checked + 1))
    if [[ -n ${installed_by[$pkg]:-} ]]; then
      echo "ok: $(basename "$b"): $lib from $pkg (${installed_by[$pkg]})"
    else
      fail "$(basename "$b"): $lib comes from package $pkg, which the runtime stage does not install (add it to the runtime stage's apt-get install in the Dockerfile)"
    fi
  done <<<"$lines"
done
((checked > 0)) || fail "ldd listed no library at all"

# --- Libraries opened with dlopen: the ones the sources name, none of them from the image. -------
for name in libnvidia-ml.so.1 libpi0_cuda_probe.so; do
  grep -rqF "$name" "$root/substrates/gpu" "$root/agent" ||
    fail "the sources no longer name $name: update this test's list of dlopen'ed libraries"
done
mapfile -t dlopens < <(grep -rlE '\bdlopen\(' "$root/src" "$root/substrates" "$root/agent" "$root/operator" "$root/webhook" | sort)
expected=("$root/substrates/gpu/cuda_probe_loader.cc" "$root/substrates/gpu/nvml_api.cc")
[[ "${dlopens[*]}" == "${expected[*]}" ]] ||
  fail "dlopen is called in ${dlopens[*]}; this test knows only ${expected[*]}: check what the new one loads"
echo "dlopen: libnvidia-ml.so.1 (mounted by the NVIDIA container toolkit on GPU nodes), libpi0_cuda_probe.so (not in the image: built only with the CUDA toolkit)"

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "runtime stage complete: $checked libraries of ${#binaries[@]} binaries covered"
