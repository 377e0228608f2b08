#include "agent/options.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "common/files.h"
#include "common/flags.h"

namespace pi0::agent {

Result<ListenAddress> parseListenAddress(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return fail("--listen: '" + std::string(text) + "' is not HOST:PORT (e.g. 0.0.0.0:9560)");
  }
  ListenAddress out;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:9560
  }
  if (!host.empty()) out.host = std::string(host);
  auto port = parseUint(text.substr(colon + 1));
  if (!port || *port > 65535) {
    return fail("--listen: invalid port in '" + std::string(text) + "' (want 0-65535)");
  }
  out.port = static_cast<int>(*port);
  return out;
}

std::string usage() {
  return R"(Usage: pi0-agent [flags]

Samples this node (CPU, memory, pressure, disks, network, NVIDIA GPUs) into a rolling window,
computes gate metrics and a spectral fingerprint, and serves them over HTTP.

Flags:
  --listen HOST:PORT          address to serve on (default 0.0.0.0:9560; port 0 = any)
  --interval DURATION         sampling interval, e.g. 1s, 250ms (default 1s)
  --window N                  samples per window, even, >= 8 (default 64)
  --horizon N                 samples the projected peak looks ahead, 1..4096 (default 30:
                              30 s at the default interval); see docs/forecast.md
  --pressure-line PERCENT     PSI some avg10 that means trouble, 1..100 (default 20); the
                              early warning counts the seconds until a PSI forecast crosses it
  --host-root PATH            where the host's /proc and /sys are (default /; /host in a pod)
  --node-name NAME            node name in the fingerprint (default $NODE_NAME, else hostname)
  --state-dir DIR             save the window here and reload it at start (default: off)
  --state-interval DURATION   how often to save the window (default 10s)
  --source SOURCE             'proc' (default) or 'synthetic:FILE' to replay a load profile
  --nvml-library NAME|none    NVML library to load (default libnvidia-ml.so.1; none = no GPUs)
  --gpu-probe-interval DUR    how often to run the GPU bandwidth probe (default 5m, at least
                              1m; 0 = never)
  --log-level LEVEL           debug, info, warn or error (default info)
  --version                   print the version and exit
  --help                      print this help and exit

Endpoints: /metrics (Prometheus), /fingerprint (JSON), /healthz, /readyz.
)";
}

Result<Options> parseOptions(const std::vector<std::string>& args) {
  Options o;
  FlagReader reader(args);
  while (reader.next()) {
    const std::string flag = reader.flag();
    auto next = [&] { return reader.value(); };
    // maxSeconds keeps every duration far from the range where converting it to clock ticks
    // would overflow.
    auto duration = [&](double& out, bool allowZero, double maxSeconds,
                        std::string_view maxText) -> Result<void> {
      auto d = reader.durationSeconds(allowZero, maxSeconds, maxText);
      if (!d) return fail(d.error().message);
      out = *d;
      return {};
    };
    Result<void> ok;
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--version") {
      o.version = true;
    } else if (flag == "--listen") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto addr = parseListenAddress(*v);
      if (!addr) return fail(addr.error().message);
      o.listen = *addr;
    } else if (flag == "--interval") {
      ok = duration(o.intervalSeconds, false, 3600, "1h");
    } else if (flag == "--state-interval") {
      ok = duration(o.stateIntervalSeconds, false, 3600, "1h");
    } else if (flag == "--gpu-probe-interval") {
      ok = duration(o.gpuProbeIntervalSeconds, true, 7 * 86400, "168h");
    } else if (flag == "--window") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto n = parseUint(*v);
      if (!n || *n < 8 || *n % 2 != 0 || *n > 4096) {
        return fail("--window: '" + *v + "' is not an even number of samples in 8..4096");
      }
      o.window = *n;
    } else if (flag == "--horizon") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto n = parseUint(*v);
      if (!n || *n < 1 || *n > 4096) {
        return fail("--horizon: '" + *v + "' is not a number of samples in 1..4096");
      }
      o.horizon = *n;
    } else if (flag == "--pressure-line") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto n = parseUint(*v);
      if (!n || *n < 1 || *n > 100) {
        return fail("--pressure-line: '" + *v + "' is not a whole percent in 1..100");
      }
      o.pressureLine = static_cast<double>(*n) / 100.0;
    } else if (flag == "--host-root") {
      auto v = next();
      if (!v) return fail(v.error().message);
      o.hostRoot = *v;
    } else if (flag == "--node-name") {
      auto v = next();
      if (!v) return fail(v.error().message);
      o.nodeName = *v;
    } else if (flag == "--state-dir") {
      auto v = next();
      if (!v) return fail(v.error().message);
      o.stateDir = *v;
    } else if (flag == "--source") {
      auto v = next();
      if (!v) return fail(v.error().message);
      if (*v == "proc") {
        o.syntheticFile.clear();
      } else if (v->starts_with("synthetic:") && v->size() > 10) {
        o.syntheticFile = v->substr(10);
      } else {
        return fail("--source: '" + *v + "' is neither 'proc' nor 'synthetic:FILE'");
      }
    } else if (flag == "--nvml-library") {
      auto v = next();
      if (!v) return fail(v.error().message);
      o.nvmlLibrary = *v;
    } else if (flag == "--log-level") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto level = log::parseLevel(*v);
      if (!level) return fail("--log-level: " + level.error().message);
      o.logLevel = *level;
    } else {
      return fail("unknown flag '" + reader.raw() + "'");
    }
    if (!ok) return fail(ok.error().message);
  }
  // The probe loads the GPU for a few milliseconds; it is a periodic health check, not a
  // workload, so it runs at most once a minute.
  if (o.gpuProbeIntervalSeconds != 0 && o.gpuProbeIntervalSeconds < 60) {
    return fail("--gpu-probe-interval must be 0 (never) or at least 1m");
  }
  if (o.nodeName.empty()) {
    if (const char* env = std::getenv("NODE_NAME"); env && *env) {
      o.nodeName = env;
    } else {
      char host[HOST_NAME_MAX + 1] = {};
      if (::gethostname(host, sizeof host - 1) == 0) o.nodeName = host;
    }
  }
  return o;
}

}  // namespace pi0::agent
