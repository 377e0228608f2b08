#!/usr/bin/env bash
# Benchmark: pi0-agent against Debian's prometheus-node-exporter on this machine.
#
# Prints, for each program, CPU seconds per 1,000 collections and peak RSS (VmHWM), and the
# ratios agent/node_exporter. A collection is:
#   pi0-agent      one sampling round (every source sampled, every gate and FFT recomputed),
#                  counted by its own pi0_agent_samples_total;
#   node_exporter  one scrape of its /metrics (default collectors).
# CPU time is utime+stime of the process from /proc/PID/stat over the measured span, nothing
# subtracted. The agent is also run at its default interval (1s) until its window is full and
# has served a few scrapes of /metrics and /fingerprint, since that is the RSS that matters.
#
# A benchmark prints figures; it asserts nothing. It exits 0 once it has measured, 1 when a
# measurement failed, 2 on a usage error or a missing prerequisite.
#
# Usage: bench/agent_vs_node_exporter.sh [flags]   (see --help)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$root/tests/e2e/lib.sh"

collections=1000
rounds=2000
interval=10ms
agent="${PI0_AGENT:-$root/build/release/agent/pi0-agent}"
exporter="${NODE_EXPORTER:-prometheus-node-exporter}"
realistic=1
max_seconds=900

usage() {
  cat <<EOF
Usage: bench/agent_vs_node_exporter.sh [flags]

Runs pi0-agent and prometheus-node-exporter on 127.0.0.1 and prints CPU seconds per 1,000
collections, peak RSS (VmHWM) and the ratios agent/node_exporter.

Flags:
  --collections N     node_exporter scrapes to measure (default $collections)
  --rounds N          pi0-agent sampling rounds to measure (default $rounds)
  --interval DUR      pi0-agent sampling interval for the CPU run (default $interval)
  --agent PATH        pi0-agent binary (default build/release/agent/pi0-agent, or \$PI0_AGENT)
  --exporter PATH     node exporter binary (default prometheus-node-exporter, or \$NODE_EXPORTER)
  --no-realistic      skip the RSS run at the default interval (1s; takes about 70 s)
  --max-seconds N     give up after N seconds in all (default $max_seconds)
  --help              print this help
EOF
}

die() {
  echo "agent_vs_node_exporter: $*" >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --collections) collections=${2:?--collections needs a value}; shift 2 ;;
    --collections=*) collections=${1#*=}; shift ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --rounds=*) rounds=${1#*=}; shift ;;
    --interval) interval=${2:?--interval needs a value}; shift 2 ;;
    --interval=*) interval=${1#*=}; shift ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    --agent=*) agent=${1#*=}; shift ;;
    --exporter) exporter=${2:?--exporter needs a value}; shift 2 ;;
    --exporter=*) exporter=${1#*=}; shift ;;
    --no-realistic) realistic=0; shift ;;
    --max-seconds) max_seconds=${2:?--max-seconds needs a value}; shift 2 ;;
    --max-seconds=*) max_seconds=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "agent_vs_node_exporter: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$collections" "$rounds" "$max_seconds"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive whole number"
done

# --- prerequisites -------------------------------------------------------------------------
[[ -x $agent ]] || die "no pi0-agent binary at '$agent'. Build it: scripts/build.sh release"
exporter_bin=$(command -v "$exporter" 2>/dev/null) ||
  die "no '$exporter'. Install Debian's node exporter: apt-get install prometheus-node-exporter"
command -v curl >/dev/null || die "no curl. Install it: apt-get install curl"
for tool in awk getconf; do
  command -v "$tool" >/dev/null || die "no $tool in PATH"
done
[[ -r /proc/self/stat ]] || die "no /proc: this benchmark needs Linux"
clk_tck=$(getconf CLK_TCK)

# No NVIDIA driver here means the default NVML source would only report itself missing; say
# so rather than leave a reader to guess whether GPU sampling was in the figures.
gpu_note="default NVML library (GPU source on)"
nvml_flags=()
if [[ ! -e /dev/nvidiactl ]] && ! { command -v ldconfig >/dev/null &&
  grep -q 'libnvidia-ml\.so\.1' <<<"$(ldconfig -p 2>/dev/null)"; }; then
  nvml_flags=(--nvml-library none)
  gpu_note="no NVIDIA GPU/NVML on this machine: agent run with --nvml-library none"
fi

# --- lifecycle -----------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/pi0-bench.XXXXXX")
pids=()
nap_pid=""
cleanup() {
  local pid
  [[ -n $nap_pid ]] && kill "$nap_pid" 2>/dev/null
  e2e_run_at_exit # the agents (e2e_start_agent)
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "agent_vs_node_exporter: interrupted" >&2; exit 130' INT TERM

deadline=$((SECONDS + max_seconds))
remaining() {
  local left=$((deadline - SECONDS))
  ((left > 0)) || fail "ran past --max-seconds $max_seconds"
  echo "$left"
}
fail() {
  echo "agent_vs_node_exporter: $*" >&2
  exit 1
}

# sleep, interruptible: bash runs a trap only once the foreground command is done, so a long
# sleep in the foreground would hold off the cleanup of an interrupted run.
nap() {
  sleep "$1" &
  nap_pid=$!
  wait "$nap_pid" || true
  nap_pid=""
}
# utime+stime of a process, in clock ticks. Field 2 (comm) may hold blanks; cut it off first.
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat") || fail "process $1 is gone"
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}
# A field of /proc/PID/status in kB (VmHWM, VmRSS).
status_kb() {
  awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}
alive() {
  kill -0 "$1" 2>/dev/null
}
# Stops a process this script started and forgets it, so cleanup never signals a reused pid.
stop() {
  local pid=$1 kept=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do
    [[ $p == "$pid" ]] || kept+=("$p")
  done
  pids=("${kept[@]}")
}
# The value of an unlabelled sample in a Prometheus text exposition on stdin.
metric() {
  awk -v name="$1" '$1 == name { print $2 + 0; found = 1 } END { if (!found) print "" }'
}
scrape() {
  curl -sf -m 5 "$1"
}

# Waits until the agent at $1 has taken at least $2 rounds; prints the count.
wait_rounds() {
  local url=$1 want=$2 got
  while :; do
    remaining >/dev/null
    got=$(scrape "$url/metrics" | metric pi0_agent_samples_total) || got=""
    if [[ -n $got ]] && awk -v g="$got" -v w="$want" 'BEGIN { exit !(g >= w) }'; then
      echo "$got"
      return
    fi
    nap 0.25
  done
}

# Waits until the agent at $1 reports pi0_agent_ready 1 (every window full).
wait_ready() {
  local url=$1 ready
  while :; do
    remaining >/dev/null
    ready=$(scrape "$url/metrics" | metric pi0_agent_ready) || ready=""
    [[ $ready == 1 ]] && return
    nap 0.5
  done
}

# --- the realistic agent (default interval), started first so its window fills meanwhile ---
if ((realistic)); then
  echo "starting pi0-agent at --interval 1s for the RSS run (its window fills in about 65 s)"
  e2e_start_agent "$agent" "$work/agent-1s.log" "${nvml_flags[@]}" --interval 1s
  real_pid=$E2E_AGENT_PID real_url=$E2E_AGENT_URL
fi

# --- pi0-agent: CPU per sampling round -----------------------------------------------------
echo "measuring pi0-agent: $rounds sampling rounds at --interval $interval"
e2e_start_agent "$agent" "$work/agent.log" "${nvml_flags[@]}" --interval "$interval"
fast_pid=$E2E_AGENT_PID fast_url=$E2E_AGENT_URL
# Warm-up: every window full (FFTs on every signal from then on), then 50 rounds more.
wait_ready "$fast_url"
warm=$(wait_rounds "$fast_url" 0)
wait_rounds "$fast_url" "$((${warm%.*} + 50))" >/dev/null

before=$(scrape "$fast_url/metrics") || fail "cannot scrape pi0-agent"
t0=$(cpu_ticks "$fast_pid")
s0=$(metric pi0_agent_samples_total <<<"$before")
d0=$(metric pi0_agent_sample_duration_seconds_sum <<<"$before")
c0=$(metric pi0_agent_sample_duration_seconds_count <<<"$before")
interval_s=$(awk -v d="$interval" 'BEGIN {
  if (d ~ /ms$/) print d / 1000; else if (d ~ /us$/) print d / 1e6;
  else if (d ~ /m$/) print d * 60; else print d + 0 }')
# Sleep through most of the span (polling /metrics costs the agent CPU too), never past the
# deadline.
nap "$(awk -v n="$rounds" -v i="$interval_s" -v left="$(remaining)" \
  'BEGIN { s = n * i * 0.95; if (s > left - 1) s = left - 1; if (s < 0) s = 0; printf "%.3f", s }')"
wait_rounds "$fast_url" "$(awk -v s="$s0" -v n="$rounds" 'BEGIN { print s + n }')" >/dev/null
after=$(scrape "$fast_url/metrics") || fail "cannot scrape pi0-agent"
t1=$(cpu_ticks "$fast_pid")
s1=$(metric pi0_agent_samples_total <<<"$after")
d1=$(metric pi0_agent_sample_duration_seconds_sum <<<"$after")
c1=$(metric pi0_agent_sample_duration_seconds_count <<<"$after")
agent_hwm_kb=$(status_kb "$fast_pid" VmHWM)
# Sources by pi0_agent_source_up value (1 = up, 0 = missing), as "cpu, disk, ...".
sources() {
  awk -v want="$1" '/^pi0_agent_source_up\{/ && $2 + 0 == want {
    sub(/.*source="/, ""); sub(/".*/, ""); out = out (out == "" ? "" : ", ") $0 }
    END { print out }'
}
sources_up=$(sources 1 <<<"$after")
sources_down=$(sources 0 <<<"$after")
e2e_stop_pid "$fast_pid"

# --- node_exporter: CPU per scrape ---------------------------------------------------------
echo "measuring prometheus-node-exporter: $collections scrapes of /metrics"
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
ne_pid=""
for _ in 1 2 3 4 5 6 7 8; do
  ne_port=$((20000 + RANDOM % 40000))
  port_free "$ne_port" || continue
  "$exporter_bin" --web.listen-address="127.0.0.1:$ne_port" >"$work/exporter.log" 2>&1 &
  ne_pid=$!
  pids+=("$ne_pid")
  give_up=$((SECONDS + 15))
  while alive "$ne_pid" && ((SECONDS < give_up)) && ! scrape "http://127.0.0.1:$ne_port/metrics" >/dev/null; do
    nap 0.1
  done
  alive "$ne_pid" && break
  stop "$ne_pid"  # lost a race for the port; try another
  ne_pid=""
done
if [[ -z $ne_pid ]] || ! alive "$ne_pid"; then
  fail "prometheus-node-exporter did not start: $(tail -3 "$work/exporter.log")"
fi
ne_url="http://127.0.0.1:$ne_port/metrics"

# One curl for many scrapes, over one kept-alive connection as Prometheus scrapes.
curl_batch() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    printf 'url = "%s"\noutput = "/dev/null"\n' "$ne_url"
  done >"$work/curl.cfg"
  curl -s -m "$(remaining)" -K "$work/curl.cfg" -w '%{http_code}\n' || true
}
curl_batch 20 >/dev/null  # warm-up
e0=$(cpu_ticks "$ne_pid")
codes=$(curl_batch "$collections")
e1=$(cpu_ticks "$ne_pid")
ok=$(grep -c '^200$' <<<"$codes" || true)
((ok == collections)) || fail "only $ok of $collections node_exporter scrapes returned 200"
ne_hwm_kb=$(status_kb "$ne_pid" VmHWM)
ne_series=$(scrape "$ne_url" | grep -vc '^#' || true)
# Collectors that fail on every scrape (systemd without D-Bus, in a container) are part of the
# exporter's default cost here; name them rather than hide them.
ne_failed=$(grep -o 'msg="collector failed" name=[a-z_]*' "$work/exporter.log" | sort -u |
  sed 's/.*name=//' | paste -sd, - || true)
stop "$ne_pid"

# --- realistic agent RSS -------------------------------------------------------------------
if ((realistic)); then
  echo "waiting for the 1s agent's window to fill, then 5 scrapes of /metrics and /fingerprint"
  alive "$real_pid" || fail "the 1s pi0-agent exited: $(tail -3 "$work/agent-1s.log")"
  wait_ready "$real_url"
  for _ in 1 2 3 4 5; do
    scrape "$real_url/metrics" >/dev/null || fail "cannot scrape the 1s pi0-agent /metrics"
    scrape "$real_url/fingerprint" >/dev/null || fail "cannot get the 1s pi0-agent /fingerprint"
    nap 1
  done
  real_hwm_kb=$(status_kb "$real_pid" VmHWM)
  real_rss_kb=$(status_kb "$real_pid" VmRSS)
  real_rounds=$(scrape "$real_url/metrics" | metric pi0_agent_samples_total)
fi

# --- report --------------------------------------------------------------------------------
awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v d0="$d0" -v d1="$d1" -v c0="$c0" \
  -v c1="$c1" -v e0="$e0" -v e1="$e1" -v n="$collections" -v hz="$clk_tck" \
  -v ahwm="$agent_hwm_kb" -v ehwm="$ne_hwm_kb" -v realistic="$realistic" \
  -v rhwm="${real_hwm_kb:-0}" -v rrss="${real_rss_kb:-0}" -v rr="${real_rounds:-0}" \
  -v interval="$interval" -v gpu="$gpu_note" -v up="$sources_up" -v down="$sources_down" \
  -v series="$ne_series" -v failed="${ne_failed:-}" -v cpus="$(nproc 2>/dev/null || echo '?')" 'BEGIN {
  rounds = s1 - s0
  acpu = (t1 - t0) / hz; ecpu = (e1 - e0) / hz
  a1k = acpu / rounds * 1000; e1k = ecpu / n * 1000
  inproc = (c1 > c0) ? (d1 - d0) / (c1 - c0) : 0
  amib = ahwm / 1024; emib = ehwm / 1024
  peak = realistic ? rhwm / 1024 : amib
  printf "\n"
  printf "machine: %s CPUs, CLK_TCK %d\n", cpus, hz
  printf "pi0-agent: %s; sources up: %s%s\n", gpu, up, (down != "" ? "; missing: " down : "")
  printf "node_exporter: default collectors, %d samples per scrape%s\n\n", series, (failed != "" ? "; collectors failing on every scrape here: " failed : "")
  printf "%-34s %16s %16s %14s\n", "", "pi0-agent", "node_exporter", "agent/exporter"
  printf "%-34s %16s %16s %14s\n", "collections measured", rounds " rounds", n " scrapes", ""
  printf "%-34s %16.3f %16.3f %14s\n", "CPU seconds (utime+stime)", acpu, ecpu, ""
  printf "%-34s %16.4f %16.4f %14.4f\n", "CPU seconds per 1000 collections", a1k, e1k, a1k / e1k
  printf "%-34s %16.1f %16.1f %14s\n", "CPU us per collection", a1k * 1000, e1k * 1000, ""
  printf "%-34s %16.1f %16.1f %14.3f\n", "peak RSS (VmHWM), MiB", amib, emib, amib / emib
  printf "\n"
  printf "agent in-process cost per round (pi0_agent_sample_duration_seconds sum/count): %.1f us\n", inproc * 1e6
  printf "agent CPU run: --interval %s; CPU includes its HTTP thread (a few /metrics polls)\n", interval
  if (realistic) {
    printf "agent at --interval 1s after %d rounds (window full) and 5 scrapes of /metrics and /fingerprint: VmHWM %.1f MiB, VmRSS %.1f MiB\n", rr, rhwm / 1024, rrss / 1024
  } else {
    printf "agent RSS at --interval 1s: skipped (--no-realistic); peak RSS below is from the CPU run\n"
  }
  printf "\n"
  printf "ratio cpu_per_collection agent/node_exporter = %.4f (goal <= 0.05)\n", a1k / e1k
  printf "agent peak RSS = %.1f MiB (goal <= 12 MiB)\n", peak
}'
