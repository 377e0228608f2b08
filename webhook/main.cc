// pi0-webhook: the validating admission webhook. See `pi0-webhook --help`. It keeps caches of
// Nodes, Namespaces, Channels and ShutdownMatrices and a fleet view of the agents, and serves
// /validate-pods, /validate-channels, /validate-shutdownmatrices, /healthz, /readyz and
// /metrics over HTTPS (certificate and key files reloaded when they change). On SIGTERM it
// reports not ready for --shutdown-delay while still answering, then stops, so that a rolling
// restart loses no request. The Runner owns the signals, the threads and the shutdown.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admission/pod_decision.h"
#include "certs/self_signed.h"
#include "common/files.h"
#include "common/log.h"
#include "common/program.h"
#include "common/runner.h"
#include "fleet/polling.h"
#include "fleet/resource_view.h"
#include "gate_thresholds.h"
#include "handlers.h"
#include "kube/client.h"
#include "kube/connect.h"
#include "kube/reflector.h"
#include "kube/resource.h"
#include "kube/store.h"
#include "ledger_sender.h"
#include "metrics.h"
#include "metrics/exposition.h"
#include "net/https_server.h"
#include "options.h"
#include "self_managed.h"

#ifndef PI0_VERSION
#define PI0_VERSION "dev"
#endif

namespace pi0::webhook {
namespace {

// How long an idle keep-alive connection stays open: longer than the apiserver keeps one (90 s).
constexpr std::chrono::seconds kApiserverIdleConnections{120};

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
        kube::ReflectorOptions options = {}, kube::Store::Keep keep = kube::Store::Keep::kObject)
      : store(std::move(trim), keep), reflector(client, type, "", store, std::move(options)) {}
  kube::Store store;
  kube::Reflector reflector;
};

// What the reviews read of the cluster: Nodes (parsed into the node index), Namespaces,
// Channels and ShutdownMatrices, each kept by a reflector on the runner.
struct ClusterCaches {
  // `gatePolicy` names the GatePolicy to watch ("": none).
  ClusterCaches(kube::Client& client, const std::string& gatePolicy)
      // Nodes are listed in pages from etcd: a list from the watch cache comes in one response,
      // and thousands of whole Nodes parsed at once were most of the webhook's peak memory. The
      // node index keeps what admission reads of each Node; the store, only its reference.
      : nodes(client, kube::resources::kNodes, NodeIndex::trim, paged(),
              kube::Store::Keep::kReference),
        namespaces(client, kube::resources::kNamespaces),
        channels(client, kube::resources::kChannels),
        matrices(client, kube::resources::kShutdownMatrices) {
    if (!gatePolicy.empty()) {
      kube::ReflectorOptions one;
      one.fieldSelector = "metadata.name=" + gatePolicy;
      gatePolicies.emplace(client, kube::resources::kGatePolicies, kube::Store::dropManagedFields,
                           one);
    }
    nodes.store.addHandler(
        [this](const kube::ObjectPtr& oldObject, const kube::ObjectPtr& newObject) {
          nodeIndex.update(oldObject, newObject);
        });
  }

  void addTo(Runner& runner) {
    for (Cache* c : all()) {
      runner.add([c](std::stop_token stop) { c->reflector.run(stop); });
    }
  }

  // "" once every cache has its first list, else the first that has not. The GatePolicy's is
  // not waited for: until it lists (its CRD missing, say), the flags' thresholds apply.
  std::string notSynced() const {
    for (const Cache* c : {&nodes, &namespaces, &channels, &matrices}) {
      if (!c->store.synced()) return "caches not synced: " + c->reflector.type().qualifiedName();
    }
    return "";
  }

  ClusterState state(fleet::FleetView& view) {
    ClusterState s;
    s.nodes = [this] { return nodeIndex.snapshot(); };
    s.namespaceNamed = [this](const std::string& name) { return namespaces.store.get(name); };
    s.channels = [this] { return channels.store.list(); };
    s.matrices = [this] { return matrices.store.list(); };
    s.fleet = [&view] { return view.snapshot(); };
    return s;
  }

  NodeIndex nodeIndex;
  Cache nodes, namespaces, channels, matrices;
  std::optional<Cache> gatePolicies;  // only the one --gate-policy names

 private:
  std::vector<Cache*> all() {
    std::vector<Cache*> out{&nodes, &namespaces, &channels, &matrices};
    if (gatePolicies) out.push_back(&*gatePolicies);
    return out;
  }
  static kube::ReflectorOptions paged() {
    kube::ReflectorOptions options;
    options.listFromWatchCache = false;
    return options;
  }
};

// Self-managed certificates: the files must hold a pair before the server can start. Retries,
// backing off, until they do (true) or a signal comes (false: the program ends).
bool makeFirstCertificate(Runner& runner, SelfManagedCertificates& selfManaged) {
  std::chrono::seconds backoff{1};
  while (true) {
    auto first = selfManaged.reconcileOnce(std::chrono::system_clock::now());
    if (first) return true;
    log::warn("certificates: cannot make the serving certificate yet; retrying",
              {{"error", first.error().message}, {"retryInSeconds", backoff.count()}});
    if (runner.waitForSignal(backoff)) return false;
    backoff = std::min(backoff * 2, std::chrono::seconds(30));
  }
}

// What the webhook's parts count, as /metrics says it at each scrape.
struct Scrape {
  WebhookMetrics& metrics;
  const ClusterCaches& caches;
  fleet::FleetPolling& polling;
  Handlers& handlers;
  const DecisionLog* decisions;
  const LedgerSender* sender;
  const std::string& certFile;
  const SelfManagedCertificates* selfManaged;
  const net::HttpsServer* served = nullptr;  // set once the server exists

  net::HttpResponse operator()() {
    metrics.nodes(caches.nodeIndex, *polling.view().snapshot(), systemClock().now());
    metrics.certificates(certificateFigures(certFile, served, selfManaged));
    metrics.polls(polling.counters(), polling.pollsAgents(),
                  polling.feed() ? &polling.feed()->counters() : nullptr);
    metrics.reservations(handlers.reservations());
    if (decisions) {
      LedgerFigures f;
      f.queued = decisions->size();
      f.added = decisions->added();
      f.dropped = decisions->dropped();
      if (sender) {
        f.sent = sender->counters().sent;
        f.rejected = sender->counters().rejected;
        f.sendErrors = sender->counters().errors;
      }
      metrics.ledger(f);
    }
    if (served) {
      const auto& c = served->counters();
      metrics.connections({c.connections.load(), c.open.load(), c.refused.load(), c.timeouts.load(),
                           c.handshakeFailures.load(), c.malformed.load()});
    }
    return net::HttpResponse{200, metrics::renderText(*metrics.registry()),
                             std::string(metrics::kTextContentType)};
  }
};

void addRoutes(net::Routes& routes, Handlers& handlers, const Probes& probes, Scrape& scrape) {
  auto review = [](std::function<HttpAnswer(std::string_view)> handle) {
    return [handle](const net::HttpRequest& req) {
      HttpAnswer a = handle(req.body);
      return net::HttpResponse{a.status, std::move(a.body), std::move(a.contentType)};
    };
  };
  routes.post("/validate-pods", review([&](std::string_view b) { return handlers.pods(b); }));
  routes.post("/validate-channels",
              review([&](std::string_view b) { return handlers.channels(b); }));
  routes.post("/validate-shutdownmatrices",
              review([&](std::string_view b) { return handlers.matrices(b); }));
  routes.get("/metrics", [&scrape](const net::HttpRequest&) { return scrape(); });
  net::addProbes(routes, probes);
}

int run(const Options& options) {
  log::setLevel(options.logLevel);
  Runner runner("pi0-webhook");
  kube::ConnectOptions connection;  // set member by member: GCC 12 warns on designated ones
  connection.kubeconfig = options.kubeconfig;
  connection.userAgent = std::string("pi0-webhook/") + PI0_VERSION;
  auto client = kube::connect(connection);
  if (!client) return 1;

  ClusterCaches caches(*client, options.gatePolicy);
  fleet::FleetViewOptions viewOptions;
  // Reviews read the view at thousands per second while a round of polls writes it node by
  // node: publish the writes at most every 100 ms (or every tenth of the interval).
  viewOptions.publishLag = std::min<Clock::duration>(
      std::chrono::milliseconds(100),
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(options.pollIntervalSeconds / 10)));
  viewOptions.trim = fleet::trimToResourceView;
  auto polling = fleet::startPolling(runner, *client, options, viewOptions);
  if (!polling) {
    log::error("cannot poll the agents", {{"error", polling.error().message}});
    return 2;
  }
  caches.addTo(runner);
  runner.probes().addReadiness([&caches] { return caches.notSynced(); });
  runner.probes().addReadiness([&p = **polling]() -> std::string {
    if (!p.agentsListed()) return "the agent Service's EndpointSlices are not listed yet";
    if (!p.hasData()) return "the fleet view has no data yet (no feed page, no round of polls)";
    return "";
  });

  WebhookMetrics metrics;
  ReservationBook reservations(options.reservations, systemClock());
  // The truth ledger: each decision is logged here and sent to the operator leader, over a link
  // of its own to the feed's publisher.
  std::unique_ptr<DecisionLog> decisions;
  std::unique_ptr<LedgerSender> sender;
  if (options.ledgerQueue > 0) {
    if (auto link = fleet::linkToPublisher(*client, options, std::chrono::seconds(5))) {
      decisions = std::make_unique<DecisionLog>(options.replica, options.ledgerQueue);
      sender = std::make_unique<LedgerSender>(*decisions, std::move(*link), LedgerSenderOptions{});
    } else {
      log::info(
          "not recording decisions in the truth ledger: it is reached over the fleet feed "
          "(--fleet-lease)");
    }
  }
  // The thresholds in force: the GatePolicy's in its Auto mode, the flags' otherwise.
  GateThresholds gates(options.policy, &metrics);
  ClusterState state = caches.state((*polling)->view());
  if (caches.gatePolicies) {
    caches.gatePolicies->store.addHandler(
        [&gates](const kube::ObjectPtr&, const kube::ObjectPtr& now) { gates.update(now); });
    state.gates = [&gates] { return gates.current(); };
  }
  Handlers handlers(std::move(state), options.policy, options.minimumMargin, metrics, reservations,
                    systemClock(), decisions.get());
  std::unique_ptr<SelfManagedCertificates> selfManaged;
  if (options.selfManagedSecret) {
    selfManaged = std::make_unique<SelfManagedCertificates>(*client, options.selfManaged);
    if (!makeFirstCertificate(runner, *selfManaged)) return 0;
    runner.add([&](std::stop_token stop) { selfManaged->run(stop); });
  }

  Scrape scrape{metrics,         caches,       **polling,        handlers,
                decisions.get(), sender.get(), options.certFile, selfManaged.get()};
  net::HttpsServerOptions serverOptions;
  serverOptions.host = options.bindAddress.host;
  serverOptions.port = options.bindAddress.port;
  serverOptions.certFile = options.certFile;
  serverOptions.keyFile = options.keyFile;
  serverOptions.threads = options.serverThreads;
  // The apiserver keeps an idle connection to a webhook for 90 s (Go's http.Transport default)
  // and does not send a POST again when the server closed its connection under it: the pod's
  // create fails with "failed calling webhook ...: EOF". So an idle connection stays open
  // longer here (kApiserverIdleConnections), and the apiserver is the side that closes it. (With
  // the server's 5 s, the calibration benchmark saw 3 such failures in 1,167 pod creates.)
  serverOptions.idleTimeout = kApiserverIdleConnections;
  auto server = net::HttpsServer::create(serverOptions, [&](net::Routes& routes) {
    addRoutes(routes, handlers, runner.probes(), scrape);
  });
  if (!server) {
    log::error("cannot serve HTTPS", {{"error", server.error().message}});
    return 1;
  }
  scrape.served = server->get();
  // Stopped after the server: the last send hands over every decision it made.
  if (sender) runner.add([&sender](std::stop_token stop) { sender->run(stop); });
  // Added last, stopped first: after the drain, the server ends before what it reads.
  runner.addStartStop([&] { (*server)->start(); }, [&] { (*server)->stop(); });
  log::info("pi0-webhook started", {{"version", PI0_VERSION},
                                    {"host", options.bindAddress.host},
                                    {"port", (*server)->port()},
                                    {"mode", admission::modeName(options.policy.mode)},
                                    {"certificateSha256", (*server)->certificateSha256()}});
  return runner.run({.drain = std::chrono::duration<double>(options.shutdownDelaySeconds)});
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
