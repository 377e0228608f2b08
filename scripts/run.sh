#!/usr/bin/env bash
# Pi0's main job on this machine: install, build, and run the node agent serving on localhost.
# Extra arguments go to pi0-agent (see `pi0-agent --help`), e.g. --interval 500ms.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
echo "pi0-agent: http://127.0.0.1:9560/metrics and /fingerprint (Ctrl-C stops it)"
exec build/release/agent/pi0-agent --listen 127.0.0.1:9560 "$@"
