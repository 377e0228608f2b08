#include "operator/options.h"

#include <unistd.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <system_error>

#include "common/files.h"
#include "common/flags.h"
#include "kube/names.h"
#include "metrics/prometheus_query.h"

namespace pi0::op {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

std::string randomHex(int digits) {
  std::random_device rd;
  std::uniform_int_distribution<int> nibble(0, 15);
  std::string out;
  for (int i = 0; i < digits; ++i)
    out += "0123456789abcdef"[nibble(rd)];
  return out;
}

// Go's strconv.ParseBool, as pflag's bool flags accept.
std::optional<bool> parseBool(std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  return std::nullopt;
}

}  // namespace

Result<BindAddress> parseBindAddress(std::string_view flag, std::string_view text) {
  if (text == "0") return BindAddress{false, "", 0};
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return fail(std::string(flag) + ": '" + std::string(text) +
                "' is not HOST:PORT (e.g. :8080, 127.0.0.1:8080; 0 turns it off)");
  }
  BindAddress out;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:8080
  }
  if (!host.empty()) out.host = std::string(host);
  auto port = parseUint(text.substr(colon + 1));
  if (!port || *port > 65535) {
    return fail(std::string(flag) + ": invalid port in '" + std::string(text) + "' (want 0-65535)");
  }
  out.port = static_cast<int>(*port);
  return out;
}

Environment currentEnvironment() {
  Environment env;
  if (const char* pod = std::getenv("POD_NAME"); pod && *pod) env.podName = pod;
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) == 0) env.hostname = host;
  return env;
}

std::string usage() {
  return R"(Usage: pi0-operator [flags]

Reconciles Channel and ShutdownMatrix resources from the fleet of pi0-agents: degrades, shuts
down and restores workloads. Run two replicas with --leader-elect; one leads at a time.

Flags:
  --kubeconfig PATH                  kubeconfig file (default: $KUBECONFIG, else in-cluster,
                                     else ~/.kube/config)
  --leader-elect[=true|false]        elect a leader on a Lease so that one replica acts
                                     (default false)
  --leader-election-namespace NS     namespace of the Lease (default: the pod's namespace,
                                     else "default")
  --leader-election-id NAME          name of the Lease (default pi0-operator)
  --identity NAME                    this candidate's name in the Lease (default: $POD_NAME or
                                     the host name, plus "_" and 6 random hex digits)
  --metrics-bind-address HOST:PORT   where to serve /metrics (default :8080; port 0 = any
                                     free port; "0" = off)
  --health-probe-bind-address H:P    where to serve /healthz and /readyz (default :8081;
                                     port 0 = any free port; "0" = off)
  --agents NODE=URL,...              a fixed list of agents to poll, e.g.
                                     node-a=http://10.0.0.7:9560
  --agent-service NS/NAME            find the agents from this Service's EndpointSlices
                                     (exactly one of --agents and --agent-service)
  --poll-interval DURATION           how often to poll every agent (default 1s)
  --agent-timeout DURATION           how long one agent may take to answer (default 2s)
  --prometheus-url URL               Prometheus for Channels' throughput queries and
                                     ShutdownMatrices' Prometheus load signals, e.g.
                                     http://prometheus.monitoring:9090 (default: none)
  --qps N                            Kubernetes client rate limit, requests/s (default 20)
  --burst N                          Kubernetes client burst (default 30)
  --log-level LEVEL                  debug, info, warn or error (default info)
  --version                          print the version and exit
  --help                             print this help and exit

Endpoints: /metrics (Prometheus); /healthz, /readyz (probes).
)";
}

Result<Options> parseOptions(const std::vector<std::string>& args, const Environment& env) {
  Options o;
  FlagReader reader(args);
  while (reader.next()) {
    const std::string flag = reader.flag();
    auto next = [&] { return reader.value(); };
    // At most an hour: far from where converting to clock ticks could overflow, and longer
    // than any sensible poll.
    auto duration = [&](double& out) -> Result<void> {
      auto d = reader.durationSeconds(/*allowZero=*/false, 3600, "1h");
      if (!d) return fail(d.error().message);
      out = *d;
      return {};
    };
    auto string = [&](std::string& out) -> Result<void> {
      auto v = reader.nonEmptyValue();
      if (!v) return fail(v.error().message);
      out = *v;
      return {};
    };
    Result<void> ok;
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--version") {
      o.version = true;
    } else if (flag == "--kubeconfig") {
      ok = string(o.kubeconfig);
    } else if (flag == "--leader-elect") {
      // A bool flag: a value only with '=', as pflag reads it.
      if (!reader.hasInlineValue()) {
        o.leaderElect = true;
      } else if (auto b = parseBool(reader.inlineValue())) {
        o.leaderElect = *b;
      } else {
        return fail("--leader-elect: '" + reader.inlineValue() + "' is not true or false");
      }
    } else if (flag == "--leader-election-namespace") {
      ok = string(o.leaderElectionNamespace);
      if (ok && !kube::isDnsLabel(o.leaderElectionNamespace)) {
        return fail("--leader-election-namespace: '" + o.leaderElectionNamespace +
                    "' is not a namespace name");
      }
    } else if (flag == "--leader-election-id") {
      ok = string(o.leaderElectionId);
      if (ok && !kube::isDnsSubdomain(o.leaderElectionId)) {
        return fail("--leader-election-id: '" + o.leaderElectionId +
                    "' is not a valid Lease name (lower case letters, digits, '-' and '.')");
      }
    } else if (flag == "--identity") {
      ok = string(o.identity);
    } else if (flag == "--metrics-bind-address" || flag == "--health-probe-bind-address") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto addr = parseBindAddress(flag, *v);
      if (!addr) return fail(addr.error().message);
      (flag == "--metrics-bind-address" ? o.metricsBindAddress : o.healthProbeBindAddress) = *addr;
    } else if (flag == "--agents") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto agents = fleet::StaticAgents::parse(*v);
      if (!agents) return fail("--agents: " + agents.error().message);
      o.agents = agents->agents();
    } else if (flag == "--agent-service") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto ref = fleet::parseServiceRef(*v);
      if (!ref) return fail("--agent-service: " + ref.error().message);
      o.agentService = *ref;
    } else if (flag == "--poll-interval") {
      ok = duration(o.pollIntervalSeconds);
    } else if (flag == "--agent-timeout") {
      ok = duration(o.agentTimeoutSeconds);
    } else if (flag == "--prometheus-url") {
      ok = string(o.prometheusUrl);
      if (ok && !PrometheusClient::create(o.prometheusUrl)) {
        return fail("--prometheus-url: " +
                    PrometheusClient::create(o.prometheusUrl).error().message);
      }
    } else if (flag == "--qps") {
      auto v = next();
      if (!v) return fail(v.error().message);
      double qps = 0;
      const auto* end = v->data() + v->size();
      auto [ptr, ec] = std::from_chars(v->data(), end, qps);
      if (v->empty() || ec != std::errc() || ptr != end || !std::isfinite(qps) || qps <= 0) {
        return fail("--qps: '" + *v + "' is not a number greater than 0");
      }
      o.qps = qps;
    } else if (flag == "--burst") {
      auto v = next();
      if (!v) return fail(v.error().message);
      auto n = parseUint(*v);
      if (!n || *n < 1 || *n > 100000) {
        return fail("--burst: '" + *v + "' is not a whole number in 1..100000");
      }
      o.burst = static_cast<int>(*n);
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
  if (o.help || o.version) return o;

  if (o.agents && o.agentService) {
    return fail("--agents and --agent-service exclude each other: give one");
  }
  if (!o.agents && !o.agentService) {
    return fail("where are the agents? give --agents NODE=URL,... or --agent-service NS/NAME");
  }
  if (o.leaderElectionNamespace.empty()) {
    // In a pod, the Lease lives beside the operator, as controller-runtime places it.
    auto ns = readFile(env.namespaceFile);
    o.leaderElectionNamespace = ns ? trim(*ns) : "";
    if (o.leaderElectionNamespace.empty()) o.leaderElectionNamespace = "default";
  }
  if (o.identity.empty()) {
    // client-go's leader election identity: the pod (or host) name, made unique per process
    // so that a restarted replica does not mistake its predecessor's Lease for its own.
    const std::string base = !env.podName.empty()    ? env.podName
                             : !env.hostname.empty() ? env.hostname
                                                     : "pi0-operator";
    o.identity = base + "_" + (env.identitySuffix.empty() ? randomHex(6) : env.identitySuffix);
  }
  return o;
}

}  // namespace pi0::op
