#!/usr/bin/env bash
# Cold cache sync of Pi0's Kubernetes client against `kubectl get configmaps -A -o json`, on
# the real control plane of tests/e2e/cluster.sh holding N ConfigMaps (default 5,000 of
# about 1 KiB of data each).
#
#   Pi0:     pi0-kube-probe sync: a Reflector lists (resourceVersion "0", from the apiserver's
#            watch cache, as client-go's reflectors list), decodes every object into its Store,
#            and starts the watch; the time is until the Store reports synced; peak RSS is the
#            probe's ru_maxrss.
#   kubectl: `kubectl get configmaps -A -o json > FILE`: lists (paged by 500 from etcd, its
#            default), decodes and writes JSON; the time is the whole command.
# Each is run --runs times (default 5), alternating; the script prints every run, the medians
# and the ratio Pi0/kubectl (below 1: Pi0 is faster).
#
# Usage: bench/kube_sync_vs_kubectl.sh [--objects N] [--size BYTES] [--runs R]
# Needs a Release build (scripts/build.sh release) and the control plane (built on first use).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
objects=5000 size=1024 runs=5
while (($#)); do
  case $1 in
    --objects) objects=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--objects N] [--size BYTES] [--runs R]" >&2; exit 2 ;;
  esac
done
probe=$root/build/release/tests/kube/pi0-kube-probe
[[ -x $probe ]] || { echo "bench: $probe is missing; run scripts/build.sh release first" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "bench: kubectl is not installed" >&2; exit 1; }

# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"
e2e_cluster_up
kubectl create namespace bench >/dev/null
e2e_log "creating $objects ConfigMaps of $size bytes"
"$probe" fill --namespace bench --count "$objects" --size "$size" --threads 8 --qps 2000 --burst 2000 >/dev/null
total=$(kubectl get configmaps -A --no-headers | wc -l)
e2e_log "the cluster holds $total ConfigMaps"

/usr/bin/python3 - "$probe" "$runs" "$PI0_CLUSTER_DIR" "$total" <<'PY'
import json, resource, statistics, subprocess, sys, time
probe, runs, workdir, total = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
pi0, kubectl, rss = [], [], []
for run in range(runs):
    out = subprocess.run([probe, "sync", "--resource", "configmaps"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    if r["objects"] != total:
        sys.exit(f"bench: the cache holds {r['objects']} objects, the cluster {total}")
    pi0.append(r["sync_seconds"]); rss.append(r["peak_rss_kib"] / 1024)
    start = time.monotonic()
    with open(f"{workdir}/kubectl.json", "w") as f:
        subprocess.run(["kubectl", "get", "configmaps", "-A", "-o", "json"], check=True, stdout=f)
    kubectl.append(time.monotonic() - start)
    print(f"run {run + 1}: pi0 sync {pi0[-1]:.3f} s (peak RSS {rss[-1]:.1f} MiB), kubectl {kubectl[-1]:.3f} s")
p, k = statistics.median(pi0), statistics.median(kubectl)
print(f"objects: {total}")
print(f"pi0 cold list+watch sync: median {p:.3f} s (min {min(pi0):.3f}, max {max(pi0):.3f})")
print(f"kubectl get -A -o json:   median {k:.3f} s (min {min(kubectl):.3f}, max {max(kubectl):.3f})")
print(f"ratio pi0/kubectl: {p / k:.2f}")
print(f"pi0 peak RSS: {max(rss):.1f} MiB (goal: under 64 MiB)")
PY
