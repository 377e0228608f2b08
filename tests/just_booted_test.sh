#!/bin/sh
# Runs every unit test (CTest label `unit`) as if the machine had booted 10 s ago, and fails if
# any fails. steady_clock counts from boot, so code that takes the clock's epoch for "long ago"
# (a default-initialized time_point as "never") works on a machine that has been up a while and
# breaks on one that has just booted; a Linux time namespace shows the tests any uptime.
#
# Usage: just_booted_test.sh CTEST BUILD_DIR
# Exit: 0 all passed, 1 a test failed, 77 skipped (no time namespace here; the reason is printed).
#
# The namespace needs CAP_SYS_ADMIN: as root it is made directly, otherwise inside a user
# namespace that maps only the caller's own uid, so the tests run with the caller's rights.
set -eu

ctest=$1
build=$(cd "$2" && pwd)
skip() {
  echo "SKIPPED: $*"
  exit 77
}

[ -r /proc/uptime ] || skip "no /proc/uptime"
command -v unshare >/dev/null 2>&1 || skip "no unshare (util-linux) on the PATH"
uptime=$(cut -d. -f1 /proc/uptime)
offset=$((uptime > 10 ? uptime - 10 : 0))
shift_clocks="-T --monotonic=-$offset --boottime=-$offset"
# shellcheck disable=SC2086 # $shift_clocks and $userns are lists of options
if unshare $shift_clocks true 2>/dev/null; then
  userns=""
elif unshare --user --map-current-user $shift_clocks true 2>/dev/null; then
  userns="--user --map-current-user"
else
  # shellcheck disable=SC2086
  reason=$(unshare $shift_clocks true 2>&1 || true)
  skip "cannot make a time namespace (unshare -T: ${reason:-refused}); needs root or user namespaces"
fi

# A CTest directory of our own that includes the build's tests: the inner ctest keeps its logs
# there instead of overwriting those of the ctest that runs this test.
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
echo "subdirs(\"$build\")" >"$runs/CTestTestfile.cmake"

jobs=$(nproc 2>/dev/null || echo 2)
# shellcheck disable=SC2086,SC2016 # the inner shell expands its own $(...) and $@
unshare $userns $shift_clocks sh -c \
  'echo "uptime in the namespace: $(cut -d" " -f1 /proc/uptime) s"; exec "$@"' sh \
  "$ctest" --test-dir "$runs" -L '^unit$' --no-tests=error --output-on-failure -j "$jobs"
