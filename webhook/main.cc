// pi0-webhook: the validating admission webhook. See `pi0-webhook --help`. It keeps caches of
// Nodes, Namespaces, Channels and ShutdownMatrices and a fleet view of the agents, and serves
// /validate-pods, /validate-channels, /validate-shutdownmatrices, /healthz, /readyz and
// /metrics over HTTPS (certificate and key files reloaded when they change). On SIGTERM it
// reports not ready for --shutdown-delay while still answering, then stops, so that a rolling
// restart loses no request.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "admission/pod_decision.h"
#include "certs/self_signed.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/program.h"
#include "fleet/agent_source.h"
#include "fleet/endpoint_slices.h"
#include "fleet/fleet_view.h"
#include "fleet/poller.h"
#include "handlers.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/reflector.h"
#include "kube/resource.h"
#include "kube/store.h"
#include "metrics/exposition.h"
#include "net/https_server.h"
#include "self_managed.h"

#ifndef PI0_VERSION
#define PI0_VERSION "dev"
#endif

namespace pi0::webhook {
namespace {

struct Options {
  std::string kubeconfig;
  std::string host = "0.0.0.0";
  int port = 8443;
  int serverThreads = 0;  // 0: one per CPU
  std::string certFile, keyFile;
  std::optional<std::vector<fleet::Agent>> agents;  // exactly one of the two
  std::optional<fleet::ServiceRef> agentService;
  double pollIntervalSeconds = 1.0;
  double agentTimeoutSeconds = 1.0;
  double shutdownDelaySeconds = 5.0;
  double minimumMargin = 0.05;
  ReservationOptions reservations;
  admission::Policy policy;
  // Self-managed certificates (self_managed.h) when selfManagedSecret is set.
  std::optional<fleet::ServiceRef> selfManagedSecret;
  SelfManagedOptions selfManaged;
  log::Level logLevel = log::Level::kInfo;
  bool help = false;
  bool version = false;
};

std::string usage() {
  return R"(Usage: pi0-webhook --tls-cert-file FILE --tls-private-key-file FILE --agent-service NS/NAME [flags]

Pi0's validating admission webhook: admits a pod only when some node that could host it passes
the gates, its channel is not shut down and its channel's buffer has room; validates Channels and
ShutdownMatrices.

Flags:
  --kubeconfig FILE             kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --bind-address HOST:PORT      where to serve HTTPS (default 0.0.0.0:8443)
  --tls-cert-file FILE          serving certificate (PEM, chain allowed); reloaded on change
  --tls-private-key-file FILE   its key (PEM); reloaded on change
  --agent-service NS/NAME       find the agents from this Service's EndpointSlices
  --agents NODE=URL,...         a fixed list of agents to poll instead
  --poll-interval DURATION      how often to poll every agent (default 1s)
  --agent-timeout DURATION      how long one agent may take (default 1s)
  --mode MODE                   Enforce, Warn or DryRun (default Enforce); a namespace's label
                                stability.pi0.io/admission-mode overrides it
  --stale-policy POLICY         Allow or Deny when no candidate node has fresh data (default Allow)
  --excluded-namespaces NS,...  never reviewed (default kube-system)
  --gate-fit-error X            θ_fit (default 0.10)
  --gate-gluing-delta X         θ_glue (default 0.15)
  --gate-psi X                  θ_psi (default 0.25)
  --gate-isolation X            θ_iso (default 0.35)
  --minimum-margin X            margin between the admission gate and a matrix's first level
                                (default 0.05)
  --trouble-warning-seconds N   warn when an admitted pod's node expects trouble on a resource
                                the pod uses within N seconds (its forecast's secondsToTrouble),
                                0 to 3600; 0 is off (default 60)
  --reservation-timeout DURATION
                                how long room in a channel's buffer stays reserved for a pod
                                this replica admitted, when the operator does not count the pod
                                sooner (the Channel's status.buffer.observedAt 2s after the
                                admission ends it); up to 1h, 0 turns reservations off
                                (default 30s)
  --shutdown-delay DURATION     keep serving, not ready, this long after SIGTERM (default 5s)
  --server-threads N            event loops serving the connections, 1 to 256 (default: one
                                per CPU); idle or slow connections hold none
  --log-level LEVEL             debug, info, warn or error (default info)
  --version, --help

Self-managed certificates (otherwise the files come from cert-manager or the user):
  --self-managed-secret NS/NAME     keep a CA and the serving certificate in this Secret, write
                                    the serving pair to the two files above, and keep the CA in
                                    the caBundle of --webhook-configuration; renewed and rotated
                                    before they expire
  --webhook-configuration NAME      the ValidatingWebhookConfiguration to keep the caBundle of
  --serving-names NAME,...          DNS names (and IP addresses) of the serving certificate,
                                    e.g. pi0-webhook.pi0.svc
  --certificate-check-interval DUR  reconcile at least this often (default 1m)
  --serving-validity DUR            (default 2160h: 90 days)
  --serving-renew-before DUR        (default 720h: 30 days)
  --ca-validity DUR                 (default 87600h: 10 years)
  --ca-renew-before DUR             (default 8760h: 1 year)
  --propagation-delay DUR           how long a new CA stays in the caBundle before it signs the
                                    served certificate, and the old one after (default 5m)
)";
}

// "a,b,,c" -> {"a", "b", "c"}.
std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    auto part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(std::move(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<double> ratio(FlagReader& reader) {
  auto v = reader.nonEmptyValue();
  if (!v) return fail(v.error().message);
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (end != v->c_str() + v->size() || !(x >= 0 && x <= 1)) {
    return fail(reader.flag() + ": '" + *v + "' is not a number in [0,1]");
  }
  return x;
}

Result<Options> parseOptions(const std::vector<std::string>& args) {
  Options o;
  FlagReader reader(args);
  while (reader.next()) {
    const std::string flag = reader.flag();
    auto text = [&](std::string& out) -> Result<void> {
      auto v = reader.nonEmptyValue();
      if (!v) return fail(v.error().message);
      out = *v;
      return {};
    };
    auto seconds = [&](double& out, bool allowZero) -> Result<void> {
      auto d = reader.durationSeconds(allowZero, 3600, "1h");
      if (!d) return fail(d.error().message);
      out = *d;
      return {};
    };
    auto wholeSeconds = [&](std::chrono::seconds& out) -> Result<void> {
      auto d = reader.durationSeconds(false, 100.0 * 365 * 86400, "100 years");
      if (!d) return fail(d.error().message);
      if (*d < 1) return fail(reader.flag() + ": at least 1s");
      out = std::chrono::seconds(std::llround(*d));
      return {};
    };
    auto gate = [&](double& out) -> Result<void> {
      auto x = ratio(reader);
      if (!x) return fail(x.error().message);
      out = *x;
      return {};
    };
    Result<void> ok;
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--version") {
      o.version = true;
    } else if (flag == "--kubeconfig") {
      ok = text(o.kubeconfig);
    } else if (flag == "--bind-address") {
      std::string v;
      ok = text(v);
      const auto colon = v.rfind(':');
      int port = -1;
      if (ok && colon != std::string::npos) port = std::atoi(v.c_str() + colon + 1);
      if (ok && (colon == std::string::npos || port < 0 || port > 65535)) {
        return fail("--bind-address: '" + v + "' is not HOST:PORT");
      }
      if (ok) {
        o.host = colon == 0 ? "0.0.0.0" : v.substr(0, colon);
        o.port = port;
      }
    } else if (flag == "--server-threads") {
      std::string v;
      ok = text(v);
      char* end = nullptr;
      const long n = ok ? std::strtol(v.c_str(), &end, 10) : 0;
      if (ok && (end != v.c_str() + v.size() || n < 1 || n > 256)) {
        return fail("--server-threads: '" + v + "' is not a number from 1 to 256");
      }
      o.serverThreads = static_cast<int>(n);
    } else if (flag == "--tls-cert-file") {
      ok = text(o.certFile);
    } else if (flag == "--tls-private-key-file") {
      ok = text(o.keyFile);
    } else if (flag == "--agents") {
      std::string v;
      ok = text(v);
      if (ok) {
        auto agents = fleet::StaticAgents::parse(v);
        if (!agents) return fail("--agents: " + agents.error().message);
        o.agents = agents->agents();
      }
    } else if (flag == "--agent-service") {
      std::string v;
      ok = text(v);
      if (ok) {
        auto ref = fleet::parseServiceRef(v);
        if (!ref) return fail("--agent-service: " + ref.error().message);
        o.agentService = *ref;
      }
    } else if (flag == "--self-managed-secret") {
      std::string v;
      ok = text(v);
      if (ok) {
        auto ref = fleet::parseServiceRef(v);
        if (!ref)
          return fail("--self-managed-secret: '" + v +
                      "' is not NAMESPACE/NAME (e.g. pi0/pi0-webhook-certs)");
        o.selfManagedSecret = *ref;
      }
    } else if (flag == "--webhook-configuration") {
      ok = text(o.selfManaged.webhookConfiguration);
    } else if (flag == "--serving-names") {
      std::string v;
      ok = text(v);
      if (ok) o.selfManaged.servingNames = splitList(v);
    } else if (flag == "--certificate-check-interval") {
      ok = wholeSeconds(o.selfManaged.checkInterval);
    } else if (flag == "--serving-validity") {
      ok = wholeSeconds(o.selfManaged.policy.servingValidity);
    } else if (flag == "--serving-renew-before") {
      ok = wholeSeconds(o.selfManaged.policy.servingRenewBefore);
    } else if (flag == "--ca-validity") {
      ok = wholeSeconds(o.selfManaged.policy.caValidity);
    } else if (flag == "--ca-renew-before") {
      ok = wholeSeconds(o.selfManaged.policy.caRenewBefore);
    } else if (flag == "--propagation-delay") {
      ok = wholeSeconds(o.selfManaged.policy.propagationDelay);
    } else if (flag == "--poll-interval") {
      ok = seconds(o.pollIntervalSeconds, false);
    } else if (flag == "--agent-timeout") {
      ok = seconds(o.agentTimeoutSeconds, false);
    } else if (flag == "--shutdown-delay") {
      ok = seconds(o.shutdownDelaySeconds, true);
    } else if (flag == "--reservation-timeout") {
      double timeout = 0;
      ok = seconds(timeout, true);
      o.reservations.timeout =
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    } else if (flag == "--mode") {
      std::string v;
      ok = text(v);
      auto mode = admission::parseMode(v);
      if (ok && !mode) return fail("--mode: '" + v + "' is not Enforce, Warn or DryRun");
      if (ok) o.policy.mode = *mode;
    } else if (flag == "--stale-policy") {
      std::string v;
      ok = text(v);
      if (ok && v != "Allow" && v != "Deny") {
        return fail("--stale-policy: '" + v + "' is not Allow or Deny");
      }
      if (ok) {
        o.policy.stale =
            v == "Deny" ? admission::StalePolicy::kDeny : admission::StalePolicy::kAllow;
      }
    } else if (flag == "--excluded-namespaces") {
      auto v = reader.value();
      if (!v) return fail(v.error().message);
      o.policy.excludedNamespaces = splitList(*v);
    } else if (flag == "--gate-fit-error") {
      ok = gate(o.policy.thresholds.fitError);
    } else if (flag == "--gate-gluing-delta") {
      ok = gate(o.policy.thresholds.gluingDelta);
    } else if (flag == "--gate-psi") {
      ok = gate(o.policy.thresholds.psi);
    } else if (flag == "--gate-isolation") {
      ok = gate(o.policy.thresholds.isolation);
    } else if (flag == "--minimum-margin") {
      ok = gate(o.minimumMargin);
    } else if (flag == "--trouble-warning-seconds") {
      std::string v;
      ok = text(v);
      char* end = nullptr;
      const long n = ok ? std::strtol(v.c_str(), &end, 10) : 0;
      if (ok && (end != v.c_str() + v.size() || n < 0 || n > 3600)) {
        return fail("--trouble-warning-seconds: '" + v +
                    "' is not a whole number of seconds from 0 (off) to 3600");
      }
      o.policy.troubleWarningSeconds = static_cast<double>(n);
    } else if (flag == "--log-level") {
      auto v = reader.value();
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
  if (o.certFile.empty() || o.keyFile.empty()) {
    return fail("give --tls-cert-file and --tls-private-key-file (the apiserver calls over HTTPS)");
  }
  if (o.agents && o.agentService) {
    return fail("--agents and --agent-service exclude each other: give one");
  }
  if (!o.agents && !o.agentService) {
    return fail("where are the agents? give --agent-service NS/NAME or --agents NODE=URL,...");
  }
  if (o.selfManagedSecret) {
    o.selfManaged.ns = o.selfManagedSecret->ns;
    o.selfManaged.secret = o.selfManagedSecret->name;
    o.selfManaged.certFile = o.certFile;
    o.selfManaged.keyFile = o.keyFile;
    if (o.selfManaged.webhookConfiguration.empty()) {
      return fail(
          "--self-managed-secret needs --webhook-configuration NAME (whose caBundle to keep)");
    }
    if (o.selfManaged.servingNames.empty()) {
      return fail(
          "--self-managed-secret needs --serving-names NAME,... (e.g. pi0-webhook.pi0.svc)");
    }
    const auto& p = o.selfManaged.policy;
    if (p.servingRenewBefore >= p.servingValidity || p.caRenewBefore >= p.caValidity) {
      return fail("a certificate's renew-before must be shorter than its validity");
    }
  } else if (!o.selfManaged.webhookConfiguration.empty() || !o.selfManaged.servingNames.empty()) {
    return fail("--webhook-configuration and --serving-names need --self-managed-secret");
  }
  return o;
}

// What /metrics says of the certificates: the served file's expiry, the server's reloads and,
// in the self-managed mode, the reconciles.
CertificateFigures certificateFigures(const std::string& certFile, const net::HttpsServer* server,
                                      const SelfManagedCertificates* selfManaged) {
  CertificateFigures f;
  if (auto text = readFile(certFile)) {
    if (auto info = certs::inspect(*text)) {
      f.expiresAt = std::chrono::duration<double>(info->notAfter.time_since_epoch()).count();
    }
  }
  if (server) {
    f.reloads = server->counters().reloads;
    f.reloadFailures = server->counters().reloadFailures;
  }
  if (selfManaged) {
    f.reconcilesOk = selfManaged->counters().ok.load();
    f.reconcileErrors = selfManaged->counters().errors.load();
    f.steps = selfManaged->counters().steps.load();
  }
  return f;
}

// A store kept by a reflector on its own thread.
struct Cache {
  Cache(kube::Client& client, const kube::ResourceType& type,
        kube::Store::Transform trim = kube::Store::dropManagedFields,
        kube::ReflectorOptions options = {})
      : store(std::move(trim)), reflector(client, type, "", store, std::move(options)) {}
  kube::Store store;
  kube::Reflector reflector;
};

int run(const Options& options) {
  log::setLevel(options.logLevel);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = kube::resolveConfig(options.kubeconfig);
  if (!config) {
    log::error("cannot load the Kubernetes configuration", {{"error", config.error().message}});
    return 1;
  }
  config->userAgent = std::string("pi0-webhook/") + PI0_VERSION;
  auto client = kube::Client::create(std::move(*config));
  if (!client) {
    log::error("invalid Kubernetes configuration", {{"error", client.error().message}});
    return 1;
  }

  NodeIndex nodeIndex;
  // Nodes are listed in pages from etcd: a list from the watch cache comes in one response,
  // and thousands of whole Nodes parsed at once were most of the webhook's peak memory.
  kube::ReflectorOptions paged;
  paged.listFromWatchCache = false;
  Cache nodes(**client, kube::resources::kNodes, NodeIndex::trim, paged);
  nodes.store.addHandler(
      [&nodeIndex](const kube::ObjectPtr& oldObject, const kube::ObjectPtr& newObject) {
        nodeIndex.update(oldObject, newObject);
      });
  Cache namespaces(**client, kube::resources::kNamespaces);
  Cache channels(**client, kube::resources::kChannels);
  Cache matrices(**client, kube::resources::kShutdownMatrices);
  std::vector<Cache*> caches = {&nodes, &namespaces, &channels, &matrices};

  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.pollIntervalSeconds));
  fleet::FleetViewOptions viewOptions;
  viewOptions.staleAfter = 3 * interval;
  // Reviews read the view at thousands per second while a round of polls writes it node by
  // node: publish the writes at most every 100 ms (or every tenth of the interval).
  viewOptions.publishLag = std::min<Clock::duration>(std::chrono::milliseconds(100), interval / 10);
  viewOptions.trim = admission::trimFingerprint;
  fleet::FleetView view(viewOptions);
  auto agents = fleet::startAgentSource(**client, options.agents, options.agentService);
  fleet::PollerOptions pollerOptions;
  pollerOptions.timeout = std::chrono::milliseconds(
      std::max<long long>(1, std::llround(options.agentTimeoutSeconds * 1000)));
  auto poller = fleet::FleetPoller::create(*agents.source, view, systemClock(), pollerOptions);
  if (!poller) {
    log::error("invalid poller options", {{"error", poller.error().message}});
    return 2;
  }
  std::atomic<bool> polledOnce{false};

  WebhookMetrics metrics;
  ClusterState state;
  state.nodes = [&] { return nodeIndex.snapshot(); };
  state.namespaceNamed = [&](const std::string& name) { return namespaces.store.get(name); };
  state.channels = [&] { return channels.store.list(); };
  state.matrices = [&] { return matrices.store.list(); };
  state.fleet = [&] { return view.snapshot(); };
  ReservationBook reservations(options.reservations, systemClock());
  Handlers handlers(state, options.policy, options.minimumMargin, metrics, reservations);

  std::atomic<bool> stopping{false};
  auto ready = [&]() -> std::string {
    if (stopping) return "shutting down";
    for (const auto* c : caches) {
      if (!c->store.synced()) return "caches not synced: " + c->reflector.type().qualifiedName();
    }
    if (!agents.source->synced()) return "the agent Service's EndpointSlices are not listed yet";
    if (!polledOnce) return "the fleet view has not been polled yet";
    return "";
  };

  // Self-managed certificates: the files must hold a pair before the server can start.
  std::unique_ptr<SelfManagedCertificates> selfManaged;
  if (options.selfManagedSecret) {
    selfManaged = std::make_unique<SelfManagedCertificates>(**client, options.selfManaged);
    std::chrono::seconds backoff{1};
    while (true) {
      auto first = selfManaged->reconcileOnce(std::chrono::system_clock::now());
      if (first) break;
      log::warn("certificates: cannot make the serving certificate yet; retrying",
                {{"error", first.error().message}, {"retryInSeconds", backoff.count()}});
      const timespec wait{static_cast<time_t>(backoff.count()), 0};
      if (sigtimedwait(&signals, nullptr, &wait) > 0) return 0;
      backoff = std::min(backoff * 2, std::chrono::seconds(30));
    }
  }

  net::HttpsServer* served = nullptr;  // set once the server exists
  net::HttpsServerOptions serverOptions;
  serverOptions.host = options.host;
  serverOptions.port = options.port;
  serverOptions.certFile = options.certFile;
  serverOptions.threads = options.serverThreads;
  serverOptions.keyFile = options.keyFile;
  auto routes = [&](net::Routes& server) {
    auto review = [](std::function<HttpAnswer(std::string_view)> handle) {
      return [handle](const net::HttpRequest& req) {
        HttpAnswer a = handle(req.body);
        return net::HttpResponse{a.status, std::move(a.body), std::move(a.contentType)};
      };
    };
    server.post("/validate-pods", review([&](std::string_view b) { return handlers.pods(b); }));
    server.post("/validate-channels",
                review([&](std::string_view b) { return handlers.channels(b); }));
    server.post("/validate-shutdownmatrices",
                review([&](std::string_view b) { return handlers.matrices(b); }));
    server.get("/healthz", [](const net::HttpRequest&) { return net::HttpResponse{200, "ok\n"}; });
    server.get("/readyz", [&](const net::HttpRequest&) {
      const std::string why = ready();
      return net::HttpResponse{why.empty() ? 200 : 503, why.empty() ? "ok\n" : why + "\n"};
    });
    server.get("/metrics", [&](const net::HttpRequest&) {
      metrics.nodes(nodeIndex, *view.snapshot(), systemClock().now());
      metrics.certificates(certificateFigures(options.certFile, served, selfManaged.get()));
      metrics.polls((*poller)->counters());
      metrics.reservations(handlers.reservations());
      if (served) {
        const auto& c = served->counters();
        metrics.connections({c.connections.load(), c.open.load(), c.refused.load(),
                             c.timeouts.load(), c.handshakeFailures.load(), c.malformed.load()});
      }
      return net::HttpResponse{200, metrics::renderText(*metrics.registry()),
                               std::string(metrics::kTextContentType)};
    });
  };
  auto server = net::HttpsServer::create(serverOptions, routes);
  if (!server) {
    log::error("cannot serve HTTPS", {{"error", server.error().message}});
    return 1;
  }

  std::vector<std::jthread> threads;
  for (auto* c : caches) {
    threads.emplace_back([c](std::stop_token stop) { c->reflector.run(stop); });
  }
  threads.emplace_back([&](std::stop_token stop) {
    (*poller)->run(stop, interval, [&](const fleet::PollRound&) { polledOnce = true; });
  });
  if (selfManaged) {
    threads.emplace_back([&](std::stop_token stop) { selfManaged->run(stop); });
  }
  served = server->get();
  (*server)->start();
  log::info("pi0-webhook started", {{"version", PI0_VERSION},
                                    {"host", options.host},
                                    {"port", (*server)->port()},
                                    {"mode", admission::modeName(options.policy.mode)},
                                    {"certificateSha256", (*server)->certificateSha256()}});

  int received = 0;
  sigwait(&signals, &received);
  stopping = true;
  log::info("shutting down: not ready, still serving",
            {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"},
             {"delaySeconds", options.shutdownDelaySeconds}});
  std::this_thread::sleep_for(std::chrono::duration<double>(options.shutdownDelaySeconds));
  (*server)->stop();
  for (auto& t : threads)
    t.request_stop();
  threads.clear();
  log::info("pi0-webhook stopped");
  return 0;
}

}  // namespace
}  // namespace pi0::webhook

int main(int argc, char** argv) {
  return pi0::programMain(
      "pi0-webhook", PI0_VERSION, argc, argv,
      [](const std::vector<std::string>& args) { return pi0::webhook::parseOptions(args); },
      [] { return pi0::webhook::usage(); },
      [](const auto& options) { return pi0::webhook::run(options); });
}
