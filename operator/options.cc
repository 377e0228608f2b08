#include "operator/options.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <limits>
#include <random>

#include "admission/gate_policy.h"
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

Result<BindAddress> parseBind(std::string_view text) {
  if (text == "0") return BindAddress{false, "", 0};
  auto address = parseHostPort(text, "e.g. :8080, 127.0.0.1:8080; 0 turns it off");
  if (!address) return fail(address.error().message);
  return BindAddress{true, address->host, address->port};
}

}  // namespace

Result<BindAddress> parseBindAddress(std::string_view flag, std::string_view text) {
  auto address = parseBind(text);
  if (!address) return fail(std::string(flag) + ": " + address.error().message);
  return address;
}

Environment currentEnvironment() {
  Environment env;
  if (const char* pod = std::getenv("POD_NAME"); pod && *pod) env.podName = pod;
  if (const char* ip = std::getenv("POD_IP"); ip && *ip) env.podIp = ip;
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) == 0) env.hostname = host;
  return env;
}

namespace {

flags::Value bindAddress(BindAddress& into) {
  auto parse = [](const std::string& text) { return parseBind(text); };
  const std::string host = into.host == "0.0.0.0" ? "" : into.host;
  return flags::custom(into, parse, into.enabled ? host + ":" + std::to_string(into.port) : "0");
}

// Text that `valid` accepts, else "'TEXT' is not " + `what`.
flags::Value checkedText(std::string& into, bool (*valid)(std::string_view), std::string what) {
  auto parse = [valid, what](const std::string& text) -> Result<std::string> {
    if (!valid(text)) return fail("'" + text + "' is not " + what);
    return text;
  };
  return flags::nonEmpty(flags::custom(into, parse, into));
}

// A URL PrometheusClient takes.
Result<std::string> parsePrometheusUrl(const std::string& text) {
  if (auto client = PrometheusClient::create(text); !client) return fail(client.error().message);
  return text;
}

// The feed's publishing flags go together.
Result<void> checkFeed(Options& o, const Environment& env) {
  if (!o.fleetBindAddress.enabled) return {};
  if (!o.leaderElect)
    return fail("--fleet-bind-address needs --leader-elect: readers find the feed in the Lease");
  if (o.fleetCertFile.empty() || o.fleetKeyFile.empty())
    return fail("--fleet-bind-address needs --fleet-cert-file and --fleet-key-file");
  if (o.fleetReaders.empty())
    return fail("--fleet-bind-address needs --fleet-readers (who may read the fleet)");
  if (o.fleetAdvertiseUrl.empty()) {
    if (env.podIp.empty())
      return fail("--fleet-bind-address needs --fleet-advertise-url (or $POD_IP to make it)");
    const bool v6 = env.podIp.find(':') != std::string::npos;
    o.fleetAdvertiseUrl = "https://" + (v6 ? "[" + env.podIp + "]" : env.podIp) + ":" +
                          std::to_string(o.fleetBindAddress.port);
  }
  if (auto url = fleet::parseFeedUrl(o.fleetAdvertiseUrl); !url)
    return fail("--fleet-advertise-url: " + url.error().message);
  return {};
}

// The query API's flags go together.
Result<void> checkQuery(Options& o) {
  if (!o.queryBindAddress.enabled) return {};
  if (o.ledgerPath.empty())
    return fail("--query-bind-address needs --ledger-path: the queries read the truth ledger");
  if (o.queryCertFile.empty() != o.queryKeyFile.empty())
    return fail("--query-cert-file and --query-key-file go together");
  if (o.queryCertFile.empty()) {
    o.queryCertFile = o.fleetCertFile;
    o.queryKeyFile = o.fleetKeyFile;
  }
  if (o.queryCertFile.empty())
    return fail(
        "--query-bind-address needs --query-cert-file and --query-key-file (or the feed's)");
  return {};
}

// Every flag, bound to `o`.
FlagTable flagTable(Options& o) {
  FlagTable t("pi0-operator [flags]",
              "Reconciles Channel and ShutdownMatrix resources from the fleet of pi0-agents: "
              "degrades, shuts down and restores workloads. Run two replicas with --leader-elect; "
              "one leads at a time.");
  t.add("--kubeconfig PATH", flags::nonEmpty(flags::text(o.kubeconfig)), "kubeconfig file")
      .defaultText("$KUBECONFIG, else in-cluster, else ~/.kube/config");
  t.add("--leader-elect[=true|false]", flags::boolean(o.leaderElect),
        "elect a leader on a Lease so that one replica acts");
  t.add("--leader-election-namespace NS",
        checkedText(o.leaderElectionNamespace, kube::isDnsLabel, "a namespace name"),
        "namespace of the Lease")
      .defaultText("the pod's namespace, else \"default\"");
  t.add("--leader-election-id NAME",
        checkedText(o.leaderElectionId, kube::isDnsSubdomain,
                    "a valid Lease name (lower case letters, digits, '-' and '.')"),
        "name of the Lease");
  t.add("--identity NAME", flags::nonEmpty(flags::text(o.identity)),
        "this candidate's name in the Lease")
      .defaultText("$POD_NAME or the host name, plus \"_\" and 6 random hex digits");
  t.add("--metrics-bind-address HOST:PORT", bindAddress(o.metricsBindAddress),
        "where to serve /metrics; port 0 = any free port, \"0\" = off");
  t.add("--health-probe-bind-address HOST:PORT", bindAddress(o.healthProbeBindAddress),
        "where to serve /healthz and /readyz; port 0 = any free port, \"0\" = off");
  fleet::addPollingFlags(t, o);
  t.add("--fleet-bind-address HOST:PORT", bindAddress(o.fleetBindAddress),
        "where to serve the fleet feed (GET /fleet, HTTPS) while leading; \"0\" = off");
  t.add("--fleet-cert-file FILE", flags::nonEmpty(flags::text(o.fleetCertFile)),
        "the feed's serving certificate (PEM); reloaded on change");
  t.add("--fleet-key-file FILE", flags::nonEmpty(flags::text(o.fleetKeyFile)), "its key (PEM)");
  t.add("--fleet-readers USER,...", flags::list(o.fleetReaders),
        "who may read the feed: user names as TokenReview reports them, e.g. "
        "system:serviceaccount:pi0-system:pi0-webhook");
  t.add("--fleet-audience NAME", flags::nonEmpty(flags::text(o.fleetAudience)),
        "the audience a reader's token must be for");
  t.add("--fleet-advertise-url URL", flags::nonEmpty(flags::text(o.fleetAdvertiseUrl)),
        "where readers reach this replica's feed, written into the Lease while leading, e.g. "
        "https://10.0.0.5:9444")
      .defaultText("https://$POD_IP:PORT");
  t.add("--ledger-path FILE", flags::nonEmpty(flags::text(o.ledgerPath)),
        "the truth ledger's SQLite file, kept by the leader; its directory must exist. The "
        "webhook replicas' decisions come to POST /ledger/decisions on the feed's address")
      .defaultText("none: no ledger");
  t.add("--query-bind-address HOST:PORT", bindAddress(o.queryBindAddress),
        "where to serve the query API that kubectl pi0 reads (GET /query/..., HTTPS) while "
        "leading, through the apiserver's service proxy; needs --ledger-path; \"0\" = off");
  t.add("--query-cert-file FILE", flags::nonEmpty(flags::text(o.queryCertFile)),
        "the query API's serving certificate (PEM); reloaded on change")
      .defaultText("--fleet-cert-file");
  t.add("--query-key-file FILE", flags::nonEmpty(flags::text(o.queryKeyFile)), "its key (PEM)")
      .defaultText("--fleet-key-file");
  t.add(
      "--ledger-max-age DURATION",
      flags::wholeSeconds(o.ledgerMaxAge, {.maxSeconds = 366.0 * 24 * 3600, .glossDefault = true}),
      "records older than this are deleted; at most 366 days");
  t.add("--ledger-max-mib N",
        flags::whole(o.ledgerMaxMiB, 1, 1 << 20, "a whole number of MiB in 1..1048576"),
        "the ledger file's size bound: the oldest records go until it fits");
  t.add("--ledger-check-interval DURATION",
        flags::wholeSeconds(o.ledgerCheckInterval, {.maxSeconds = 3600}),
        "how often the ledger's retention runs and its figures and the gates' ratios (metrics) "
        "are computed; at most 1h");
  t.add("--ledger-writers USER,...", flags::list(o.ledgerWriters),
        "who may write decisions to the ledger, e.g. "
        "system:serviceaccount:pi0-system:pi0-webhook");
  t.add("--outcome-horizon DURATION",
        flags::wholeSeconds(o.outcomeHorizon, {.maxSeconds = 24 * 3600.0}),
        "how long after a decision what followed is joined to it in the ledger: the pod's "
        "outcomes, and whether its node was in trouble; at most 24h");
  admission::addGateFlags(t, o.fixedThresholds, o.gatePolicy);
  t.add("--prometheus-url URL", flags::nonEmpty(flags::custom(o.prometheusUrl, parsePrometheusUrl)),
        "Prometheus for Channels' throughput queries and ShutdownMatrices' Prometheus load "
        "signals, e.g. http://prometheus.monitoring:9090")
      .defaultText("none");
  t.add("--qps N",
        flags::number(o.qps, {.min = 0, .max = std::numeric_limits<double>::max(), .minOpen = true},
                      "a number greater than 0"),
        "Kubernetes client rate limit, requests/s");
  t.add("--burst N", flags::whole(o.burst, 1, 100000, "a whole number in 1..100000"),
        "Kubernetes client burst");
  t.add("--log-level LEVEL", flags::logLevel(o.logLevel), "debug, info, warn or error");
  t.addStandard(o.version, o.help);
  t.epilogue("Endpoints: /metrics (Prometheus); /healthz, /readyz (probes).");
  return t;
}

}  // namespace

std::string usage() {
  return usageOf(flagTable);
}

Result<Options> parseOptions(const std::vector<std::string>& args, const Environment& env) {
  auto o = parseFlags(flagTable, args);
  if (!o || o->help || o->version) return o;

  if (auto polling = fleet::checkPollingOptions(*o); !polling) return fail(polling.error().message);
  if (auto feed = checkFeed(*o, env); !feed) return fail(feed.error().message);
  if (auto query = checkQuery(*o); !query) return fail(query.error().message);
  if (!o->ledgerWriters.empty() && (o->ledgerPath.empty() || !o->fleetBindAddress.enabled))
    return fail(
        "--ledger-writers needs --ledger-path and --fleet-bind-address (decisions come "
        "to the feed's address)");
  if (o->leaderElectionNamespace.empty()) {
    // In a pod, the Lease lives beside the operator, as controller-runtime places it.
    auto ns = readFile(env.namespaceFile);
    o->leaderElectionNamespace = ns ? trim(*ns) : "";
    if (o->leaderElectionNamespace.empty()) o->leaderElectionNamespace = "default";
  }
  if (o->identity.empty()) {
    // client-go's leader election identity: the pod (or host) name, made unique per process
    // so that a restarted replica does not mistake its predecessor's Lease for its own.
    const std::string base = !env.podName.empty()    ? env.podName
                             : !env.hostname.empty() ? env.hostname
                                                     : "pi0-operator";
    o->identity = base + "_" + (env.identitySuffix.empty() ? randomHex(6) : env.identitySuffix);
  }
  return o;
}

}  // namespace pi0::op
