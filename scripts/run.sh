#!/usr/bin/env bash
# Pi0's main job on this machine: install what it needs (scripts/setup.sh), build the three
# programs (Release, in build/release: only pi0-agent, pi0-operator and pi0-webhook, not the
# tests), and run the demo (scripts/demo.sh): a Kubernetes control plane on this machine with
# the three programs and Prometheus, overloaded and calmed down again, printed as it happens.
# Extra arguments go to the demo (--fast, --keep; see scripts/demo.sh --help).
#
#   scripts/run.sh --agent-only [FLAGS]   only build and run pi0-agent on this machine, serving
#                                         on http://127.0.0.1:9560; FLAGS go to pi0-agent
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(pi0-agent pi0-operator pi0-webhook)
agent_only=0
if [[ ${1:-} == --agent-only ]]; then
  agent_only=1
  targets=(pi0-agent)
  shift
fi
scripts/setup.sh
# As scripts/build.sh release configures it, but only the programs.
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target "${targets[@]}"
if ((agent_only)); then
  echo "pi0-agent: http://127.0.0.1:9560/metrics and /fingerprint (Ctrl-C stops it)"
  exec build/release/agent/pi0-agent --listen 127.0.0.1:9560 "$@"
fi
exec scripts/demo.sh --build-dir build/release "$@"
