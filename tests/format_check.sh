#!/usr/bin/env bash
# Fails when a C++ or CUDA file in the tree differs from what clang-format makes of it.
set -euo pipefail
clang_format=${1:-clang-format}
mapfile -t files < <(git ls-files '*.h' '*.cc' '*.cu' '*.c' 2>/dev/null ||
  find src substrates agent tests bench -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.c')
[ ${#files[@]} -gt 0 ] || { echo "format_check: no files found" >&2; exit 1; }
"$clang_format" --dry-run -Werror "${files[@]}"
echo "format_check: ${#files[@]} files formatted"
