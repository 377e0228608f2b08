#!/usr/bin/env bash
# Fuzzes pi0-webhook's request parsing and decisions (tests/fuzz/admission_fuzz.cc) for a
# bounded time:
#  1. configures SOURCE_DIR/build/fuzz with clang-19 and PI0_FUZZ=ON (the top-level
#     CMakeLists.txt then configures only src/ and tests/fuzz, every library compiled with
#     -fsanitize=fuzzer-no-link,address,undefined) and builds only the target admission_fuzz;
#  2. runs it with ASan, UBSan and LeakSanitizer on a temporary copy of the seed corpus
#     (tests/fuzz/corpus: AdmissionReviews captured from the test bed's apiserver by
#     capture_corpus.sh, and some malformed ones) for PI0_FUZZ_SECONDS seconds (default 60);
#  3. fails, printing libFuzzer's report (the stack) and the path of the saved input, on any
#     crash, leak, timeout, out-of-memory or broken check; otherwise prints the executions and
#     the coverage reached.
# A crashing input is kept in SOURCE_DIR/build/fuzz/artifacts; replay it with
#   build/fuzz/tests/fuzz/admission_fuzz build/fuzz/artifacts/crash-...
# Usage: fuzz_test.sh SOURCE_DIR
# Environment: PI0_FUZZ_SECONDS (default 60), PI0_FUZZ_JOBS (build jobs, default nproc),
# PI0_FUZZ_CC and PI0_FUZZ_CXX (default clang-19 and clang++-19; CC and CXX are not read, so that
# a GCC chosen for the other builds does not leak in).
set -euo pipefail
source_dir=$(cd "${1:?usage: fuzz_test.sh SOURCE_DIR}" && pwd)
seconds=${PI0_FUZZ_SECONDS:-60}
jobs=${PI0_FUZZ_JOBS:-$(nproc)}
cc=${PI0_FUZZ_CC:-clang-19}
cxx=${PI0_FUZZ_CXX:-clang++-19}
build_dir=$source_dir/build/fuzz
seeds=$source_dir/tests/fuzz/corpus
# Real AdmissionReviews are a few KiB; a Pod with many containers some tens.
max_len=262144

log() { printf '[fuzz %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[fuzz %s] FAIL: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "PI0_FUZZ_SECONDS must be a positive number of seconds, not '$seconds'"
packages="install the Debian packages clang-19 and libclang-rt-19-dev (scripts/setup.sh does)"
command -v "$cc" >/dev/null || die "$cc not found: $packages"
command -v "$cxx" >/dev/null || die "$cxx not found: $packages"
command -v cmake >/dev/null || die "cmake not found: install the Debian package cmake"
shopt -s nullglob
seed_files=("$seeds"/*)
shopt -u nullglob
((${#seed_files[@]} > 0)) || die "no seeds in $seeds"

work=$(mktemp -d "${TMPDIR:-/tmp}/pi0-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# libFuzzer's runtime and the sanitizers' come with libclang-rt-19-dev, not with clang-19.
cat >"$work/probe.cc" <<'CC'
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }
CC
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$work/probe.cc" -o "$work/probe" \
  >"$work/probe.log" 2>&1; then
  cat "$work/probe.log" >&2
  die "$cxx cannot link a libFuzzer target with ASan and UBSan: $packages"
fi

started=$SECONDS
mkdir -p "$build_dir"
log "configuring $build_dir ($cxx, PI0_FUZZ=ON)"
if ! CC=$cc CXX=$cxx cmake -S "$source_dir" -B "$build_dir" -DPI0_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" >"$build_dir/configure.log" 2>&1; then
  tail -n 40 "$build_dir/configure.log" >&2
  die "cmake could not configure the fuzz build (log: $build_dir/configure.log)"
fi
log "building admission_fuzz with $jobs jobs"
if ! cmake --build "$build_dir" --target admission_fuzz -j "$jobs" >"$build_dir/build.log" 2>&1; then
  grep -E -A5 'error:|Error ' "$build_dir/build.log" | head -n 80 >&2 || tail -n 60 "$build_dir/build.log" >&2
  die "the fuzz target did not build (log: $build_dir/build.log)"
fi
built=$SECONDS
log "built in $((built - started)) s"
fuzzer=$build_dir/tests/fuzz/admission_fuzz

# libFuzzer adds what it finds to the corpus directory it is given: work on a copy.
mkdir -p "$work/corpus" "$work/artifacts"
cp -- "${seed_files[@]}" "$work/corpus/"
log "fuzzing for $seconds s from ${#seed_files[@]} seeds"
status=0
ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$fuzzer" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
  -dict="$source_dir/tests/fuzz/admission.dict" -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?
ran=$SECONDS

# Findings: crash-, leak-, timeout- and oom- inputs (slow-unit- ones are not failures).
shopt -s nullglob
artifacts=("$work"/artifacts/crash-* "$work"/artifacts/leak-* "$work"/artifacts/timeout-*
  "$work"/artifacts/oom-*)
shopt -u nullglob
if ((status != 0 || ${#artifacts[@]} > 0)); then
  tail -n 150 "$work/fuzz.log" >&2
  if ((${#artifacts[@]} > 0)); then
    mkdir -p "$build_dir/artifacts"
    cp -- "${artifacts[@]}" "$build_dir/artifacts/"
    for a in "${artifacts[@]}"; do
      log "input: $build_dir/artifacts/$(basename "$a") ($(wc -c <"$a") bytes); replay: $fuzzer $build_dir/artifacts/$(basename "$a")"
    done
  fi
  die "admission_fuzz failed (exit status $status) after $((ran - built)) s"
fi

final_stat() { sed -n "s/^stat::$1: *//p" "$work/fuzz.log" | tail -n 1; }
coverage=$(grep -E '^#[0-9]+' "$work/fuzz.log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
corpus=$(find "$work/corpus" -type f | wc -l)
log "execs: $(final_stat number_of_executed_units) in $((ran - built)) s" \
  "($(final_stat average_exec_per_sec)/s); coverage: ${coverage:-unknown} (edges, features);" \
  "corpus: ${#seed_files[@]} seeds -> $corpus inputs; peak RSS $(final_stat peak_rss_mb) MB"
log "PASS: admission_fuzz ran $seconds s without a finding (build $((built - started)) s, run $((ran - built)) s)"
