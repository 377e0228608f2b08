# shellcheck shell=bash
# Pieces shared by bench/webhook_bench.sh (5,000 Nodes) and bench/webhook_vs_go.sh (a small
# fleet): wrk, the Go peer (bench/go_peer) and the side-by-side runs. Sourced after
# tests/e2e/lib.sh, whose e2e_* helpers they use (e2e_start_agent for the agents, e2e_stop_pid);
# every process started here is stopped at exit through e2e_at_exit.
#
#   bench_cpu_ticks PID                 utime + stime of PID, in clock ticks
#   bench_vm PID FIELD                  VmHWM or VmRSS of PID, in KiB
#   bench_go_peer_build OUT             go build bench/go_peer into the binary OUT, offline (Go's
#                                       caches under ${XDG_CACHE_HOME:-~/.cache}/pi0/go-peer);
#                                       exits 2 when Go is missing or the build fails
#   bench_go_peer_start BIN CERT KEY LOG
#                                       the Go peer on a free port, until /healthz answers; sets
#                                       BENCH_GO_PEER_PID and BENCH_GO_PEER_URL (https://...)
#   bench_wrk URL CONNECTIONS DURATION OUT BODY...
#                                       wrk -t min(CONNECTIONS, 2) with webhook_wrk.lua, POSTing
#                                       the BODY files round-robin to URL; its output in OUT
#   bench_side_by_side DIR CONNECTIONS DURATION ROUNDS WARMUP BODY...
#                                       the servers of BENCH_SERVERS (names; BENCH_URL[name] and
#                                       BENCH_PID[name] say where and which process) measured in
#                                       turn, ROUNDS times each, after a WARMUP run of each; a
#                                       line per run on stderr, one JSON line per run appended to
#                                       DIR/side-by-side.jsonl (webhook_bench.py side-by-side
#                                       prints the medians and the ratio)

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
declare -a BENCH_SERVERS=()
declare -A BENCH_URL=() BENCH_PID=()

bench_vm() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

bench_cpu_ticks() {
  local stat fields
  stat=$(<"/proc/$1/stat")
  read -ra fields <<<"${stat##*) }"
  echo $((fields[11] + fields[12]))
}

bench_go_peer_build() {
  local out=$1 cache=${XDG_CACHE_HOME:-$HOME/.cache}/pi0/go-peer
  if ! command -v go >/dev/null; then
    echo "bench: go is not installed; the Go peer needs it (Debian package golang-go)" >&2
    exit 2
  fi
  e2e_log "building the Go peer (bench/go_peer, $(go version | awk '{ print $3 }'))"
  # Offline, with no dependency to fetch; the caches stay out of the source tree.
  if ! (cd "$bench_root/bench/go_peer" &&
    GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on CGO_ENABLED=0 \
      GOCACHE=$cache/build GOPATH=$cache/path go build -trimpath -o "$out" .); then
    echo "bench: cannot build bench/go_peer (above)" >&2
    exit 2
  fi
}

bench_go_peer_start() {
  local bin=$1 cert=$2 key=$3 log=$4 port
  port=$(e2e_free_port)
  "$bin" --listen "127.0.0.1:$port" --cert "$cert" --key "$key" </dev/null >"$log" 2>&1 &
  BENCH_GO_PEER_PID=$!
  BENCH_GO_PEER_URL=https://127.0.0.1:$port
  e2e_at_exit "e2e_stop_pid $BENCH_GO_PEER_PID"
  e2e_wait_for "the Go peer serving on port $port" 30 bench_go_peer_up "$log"
}
bench_go_peer_up() { # LOG
  e2e_pid_alive "$BENCH_GO_PEER_PID" || { cat "$1" >&2; e2e_fail "the Go peer exited"; }
  # -k: only whether it serves; the bodies' checks verify its certificate.
  curl -sf --noproxy '*' -k --max-time 2 -o /dev/null "$BENCH_GO_PEER_URL/healthz"
}

# wrk runs in the background and is waited for: wrk handles SIGINT itself and exits 0, and bash
# does not run its INT trap after a foreground command that handled the signal, so Ctrl-C would
# only end the current run. `wait` returns at once on a trapped signal.
bench_wrk_pid=""
bench_wrk_trap=0
bench_stop_wrk() { if [[ -n $bench_wrk_pid ]]; then kill -INT "$bench_wrk_pid" 2>/dev/null || true; fi; }
bench_wrk() {
  local url=$1 c=$2 duration=$3 out=$4 status=0
  shift 4
  if ((!bench_wrk_trap)); then
    e2e_at_exit bench_stop_wrk
    bench_wrk_trap=1
  fi
  wrk -t $((c < 2 ? c : 2)) -c "$c" -d "$duration" --timeout 5s -s "$bench_root/bench/webhook_wrk.lua" \
    "$url" -- "$@" >"$out" 2>&1 &
  bench_wrk_pid=$!
  wait "$bench_wrk_pid" || status=$?
  bench_wrk_pid=""
  return "$status"
}

bench_side_by_side() {
  local dir=$1 c=$2 duration=$3 rounds=$4 warmup=$5 name round t0 t1 out load
  shift 5
  mkdir -p "$dir"
  : >"$dir/side-by-side.jsonl"
  for name in "${BENCH_SERVERS[@]}"; do
    e2e_log "side by side: warm-up of $name, $c connections, $warmup"
    bench_wrk "${BENCH_URL[$name]}/validate-pods" "$c" "$warmup" "$dir/warmup-$name.txt" "$@" ||
      { cat "$dir/warmup-$name.txt" >&2; e2e_fail "wrk failed against $name"; }
  done
  for ((round = 1; round <= rounds; round++)); do
    for name in "${BENCH_SERVERS[@]}"; do
      out=$dir/wrk-$name-$round.txt
      load=$(cut -d' ' -f1 /proc/loadavg)
      t0=$(bench_cpu_ticks "${BENCH_PID[$name]}")
      bench_wrk "${BENCH_URL[$name]}/validate-pods" "$c" "$duration" "$out" "$@" ||
        { cat "$out" >&2; e2e_fail "wrk failed against $name"; }
      t1=$(bench_cpu_ticks "${BENCH_PID[$name]}")
      /usr/bin/python3 "$bench_root/bench/webhook_bench.py" side-run "$out" "$name" "$round" "$c" \
        $((c < 2 ? c : 2)) $((t1 - t0)) "$load" >>"$dir/side-by-side.jsonl" ||
        e2e_fail "no figures from wrk against $name: $(cat "$out")"
      e2e_log "$name, round $round: $(tail -n 1 "$dir/side-by-side.jsonl" | e2e_json '
print("%.0f reviews/s, p50 %.3f ms, p99 %.3f ms, %d non-2xx, %d socket errors, %.0f µs CPU per "
      "review" % (d["rps"], d["p50"] / 1e3, d["p99"] / 1e3, d["errors"]["status"],
                  d["socket_errors"], d["cpu_us_per_request"]))')"
    done
  done
}
