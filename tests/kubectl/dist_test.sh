#!/usr/bin/env bash
# kubectl pi0's release file, as a user installs it: the checksum verifies, the archive holds the
# plugin, its completion helper and the README; from the extracted directory on the PATH, the
# plugin answers --help and kubectl_complete-pi0 completes the way kubectl's plugin completion
# reads it (candidates, then the directive ":4").
#
# Usage: dist_test.sh DIST_DIR
set -euo pipefail
dist=$(cd "${1:?usage: dist_test.sh DIST_DIR}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
mapfile -t tarballs < <(ls "$dist"/kubectl-pi0-*-linux-*.tar.gz)
((${#tarballs[@]} == 1)) || fail "want one release file in $dist, found: ${tarballs[*]}"
(cd "$dist" && sha256sum --quiet -c "$(basename "${tarballs[0]}").sha256") || fail "the checksum does not verify"
tar -C "$work" -xzf "${tarballs[0]}"
dir=$(echo "$work"/kubectl-pi0-*)
for f in kubectl-pi0 kubectl_complete-pi0 README-kubectl-pi0.txt; do
  [[ -f $dir/$f ]] || fail "$f is not in the release file"
done
[[ -x $dir/kubectl-pi0 && -x $dir/kubectl_complete-pi0 ]] || fail "the programs are not executable"
PATH=$dir:$PATH
kubectl-pi0 --help | grep -q '^  kubectl pi0 why' || fail "kubectl-pi0 --help: $(kubectl-pi0 --help | head -3)"
completed=$(kubectl_complete-pi0 c)
[[ $completed == $'calibration\ncompletion\n:4' ]] || fail "kubectl_complete-pi0 c: $completed"
kubectl-pi0 completion bash | grep -q 'complete -F _kubectl_pi0 kubectl-pi0' || fail "completion bash"
echo "ok: $(basename "${tarballs[0]}")"
