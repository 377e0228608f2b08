#include "agent/options.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace pi0::agent {
namespace {

constexpr char kListenExample[] = "e.g. 0.0.0.0:9560";

// --source: "proc" (the real node: no file) or "synthetic:FILE".
Result<std::filesystem::path> parseSource(std::string_view text) {
  if (text == "proc") return std::filesystem::path();
  if (text.starts_with("synthetic:") && text.size() > 10) {
    return std::filesystem::path(text.substr(10));
  }
  const std::string given(text);
  return fail("'" + given + "' is neither 'proc' nor 'synthetic:FILE'");
}

// Every flag, bound to `o`.
FlagTable flagTable(Options& o) {
  FlagTable t("pi0-agent [flags]",
              "Samples this node (CPU, memory, pressure, disks, network, NVIDIA GPUs) into a "
              "rolling window, computes gate metrics and a spectral fingerprint, and serves them "
              "over HTTP.");
  t.add("--listen HOST:PORT", flags::hostPort(o.listen, kListenExample),
        "address to serve on; port 0 = any");
  // Durations stay far from the range where converting them to clock ticks would overflow.
  t.add("--interval DURATION", flags::duration(o.intervalSeconds),
        "sampling interval, e.g. 1s, 250ms; at most 1h");
  t.add("--window N", flags::whole(o.window, 8, 4096, "an even number of samples in 8..4096", 2),
        "samples per window, even, 8..4096");
  t.add("--horizon N", flags::whole(o.horizon, 1, 4096, "a number of samples in 1..4096"),
        "samples the projected peak looks ahead, 1..4096 (30 s at the default interval); see "
        "docs/forecast.md");
  t.add("--pressure-line PERCENT",
        flags::percent(o.pressureLine, 1, 100, "a whole percent in 1..100"),
        "PSI some avg10 that means trouble, 1..100; the early warning counts the seconds until a "
        "PSI forecast crosses it");
  t.add("--host-root PATH", flags::path(o.hostRoot),
        "where the host's /proc and /sys are (/host in a pod)");
  t.add("--node-name NAME", flags::text(o.nodeName), "node name in the fingerprint")
      .defaultText("$NODE_NAME, else the host name");
  t.add("--state-dir DIR", flags::path(o.stateDir), "save the window here and reload it at start")
      .defaultText("off");
  t.add("--state-interval DURATION", flags::duration(o.stateIntervalSeconds),
        "how often to save the window (also on SIGTERM); at most 1h");
  t.add("--source SOURCE", flags::custom(o.syntheticFile, parseSource, "proc"),
        "'proc' for the real node, or 'synthetic:FILE' to replay a load profile");
  t.add("--nvml-library NAME|none", flags::text(o.nvmlLibrary),
        "NVML library to load; none = no GPUs");
  t.add("--gpu-probe-interval DURATION",
        flags::duration(o.gpuProbeIntervalSeconds, {.allowZero = true, .maxSeconds = 7 * 86400}),
        "how often to run the GPU bandwidth probe: at least 1m, at most 168h, or 0 = never");
  t.add("--log-level LEVEL", flags::logLevel(o.logLevel), "debug, info, warn or error");
  t.addStandard(o.version, o.help);
  t.epilogue("Endpoints: /metrics (Prometheus), /fingerprint (JSON), /healthz, /readyz.");
  return t;
}

}  // namespace

Result<ListenAddress> parseListenAddress(std::string_view text) {
  auto address = parseHostPort(text, kListenExample);
  if (!address) return fail("--listen: " + address.error().message);
  return address;
}

std::string usage() {
  return usageOf(flagTable);
}

Result<Options> parseOptions(const std::vector<std::string>& args) {
  auto o = parseFlags(flagTable, args);
  if (!o) return o;
  // The probe loads the GPU for a few milliseconds; it is a periodic health check, not a
  // workload, so it runs at most once a minute.
  if (o->gpuProbeIntervalSeconds != 0 && o->gpuProbeIntervalSeconds < 60) {
    return fail("--gpu-probe-interval must be 0 (never) or at least 1m");
  }
  if (o->nodeName.empty()) {
    if (const char* env = std::getenv("NODE_NAME"); env && *env) {
      o->nodeName = env;
    } else {
      char host[HOST_NAME_MAX + 1] = {};
      if (::gethostname(host, sizeof host - 1) == 0) o->nodeName = host;
    }
  }
  return o;
}

}  // namespace pi0::agent
