// pi0-operator: the operator's process. See `pi0-operator --help` and README.md. It connects to
// the API server, serves /metrics and the probes, keeps the fleet view and the caches current,
// and, when leader election is on, campaigns for the Lease; the reconcilers run while this
// replica leads (runLeader).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include <httplib.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/program.h"
#include "fleet/agent_source.h"
#include "fleet/endpoint_slices.h"
#include "fleet/fleet_view.h"
#include "fleet/poller.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/leader_election.h"
#include "metrics/exposition.h"
#include "metrics/prometheus_query.h"
#include "operator/operator_metrics.h"
#include "operator/options.h"
#include "operator/reconciler.h"

#ifndef PI0_VERSION
#define PI0_VERSION "dev"
#endif

namespace pi0::op {
namespace {

// The process's state the probes read.
struct Health {
  // The reconcilers' caches (every replica keeps them, so a standby takes over warm).
  std::atomic<const Caches*> caches{nullptr};
  // The elector is campaigning or leading (or leader election is off). Like controller-
  // runtime, a standby that campaigns is ready: readiness says "can serve", and a standby
  // takes over without a restart.
  std::atomic<bool> electorRunning{false};
};

// One cpp-httplib server on its own thread, bound at create() so that a busy port is an error
// at start.
class Server {
 public:
  static Result<std::unique_ptr<Server>> create(std::string_view what, const BindAddress& address,
                                                std::unique_ptr<httplib::Server> server) {
    std::unique_ptr<Server> self(new Server());
    // One response per connection: probes and scrapes must not pin worker threads.
    server->new_task_queue = [] { return new httplib::ThreadPool(2); };
    server->set_read_timeout(5, 0);
    server->set_write_timeout(5, 0);
    server->set_keep_alive_max_count(1);
    // cpp-httplib's default also sets SO_REUSEPORT, which would let two operators share a port
    // silently; a busy port must be an error.
    server->set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    int port = address.port == 0
                   ? server->bind_to_any_port(address.host)
                   : (server->bind_to_port(address.host, address.port) ? address.port : -1);
    if (port <= 0) {
      return fail("cannot serve " + std::string(what) + " on " + address.host + ":" +
                  std::to_string(address.port) +
                  " (address in use, or not an address of this host)");
    }
    self->port_ = port;
    self->server_ = std::move(server);
    return self;
  }

  int port() const { return port_; }

  // `onFailure` runs when serving ends without stop() (the listening socket failed).
  void start(std::function<void()> onFailure) {
    thread_ = std::thread([this, onFailure = std::move(onFailure)] {
      if (!server_->listen_after_bind() && !stopping_) onFailure();
    });
  }

  void stop() {
    stopping_ = true;
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  ~Server() { stop(); }

 private:
  Server() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
};

std::unique_ptr<httplib::Server> metricsServer(OperatorMetrics& metrics,
                                               const fleet::FleetPoller& poller) {
  auto server = std::make_unique<httplib::Server>();
  server->Get("/metrics", [&metrics, &poller](const httplib::Request&, httplib::Response& res) {
    metrics.syncFleet(poller.counters());
    res.set_content(metrics.render(), std::string(metrics::kTextContentType));
  });
  return server;
}

std::unique_ptr<httplib::Server> probeServer(const Health& health) {
  auto server = std::make_unique<httplib::Server>();
  // Alive as long as the process serves: every loop that could stall has its own deadline
  // (the poller's timeout, the elector's renew deadline).
  server->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server->Get("/readyz", [&health](const httplib::Request&, httplib::Response& res) {
    const Caches* caches = health.caches;
    if (caches == nullptr || !caches->synced()) {
      std::string missing;
      if (caches != nullptr) {
        for (const auto& name : caches->unsynced())
          missing += (missing.empty() ? "" : ", ") + name;
      }
      res.status = 503;
      res.set_content("caches not synced: " + missing +
                          " (for channels and shutdownmatrices: are Pi0's CRDs installed?)\n",
                      "text/plain");
    } else if (!health.electorRunning) {
      res.status = 503;
      res.set_content("leader election not running\n", "text/plain");
    } else {
      res.set_content("ok\n", "text/plain");
    }
  });
  return server;
}

// What the leader does: runs the reconcilers until `stop` fires (leadership lost or shutdown).
void runLeader(std::stop_token stop, OperatorMetrics& metrics, Reconcilers& reconcilers) {
  metrics.setLeader(true);
  log::info("leading");
  reconcilers.run(stop);
  metrics.setLeader(false);
  log::info("stopped leading");
}

int run(const Options& options) {
  log::setLevel(options.logLevel);

  // SIGTERM and SIGINT are taken by sigwait below; block them before any thread starts so
  // every thread inherits the mask.
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
  config->qps = options.qps;
  config->burst = options.burst;
  config->userAgent = std::string("pi0-operator/") + PI0_VERSION;
  const std::string source = config->source;
  const std::string apiServer = config->server;
  auto client = kube::Client::create(std::move(*config));
  if (!client) {
    log::error("invalid Kubernetes configuration", {{"error", client.error().message}});
    return 1;
  }
  auto version = (*client)->serverVersion();
  if (!version) {
    log::error("cannot reach the API server",
               {{"server", apiServer}, {"config", source}, {"error", version.error().describe()}});
    return 1;
  }
  log::info(
      "connected to the API server",
      {{"server", apiServer}, {"config", source}, {"version", version->value("gitVersion", "")}});

  OperatorMetrics metrics;
  Health health;

  // The fleet view: polled on its own thread whether or not this replica leads, so that a
  // standby that takes over starts with a current view.
  auto agents = fleet::startAgentSource(**client, options.agents, options.agentService);
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.pollIntervalSeconds));
  fleet::FleetViewOptions viewOptions;
  viewOptions.staleAfter = 3 * interval;
  fleet::FleetView view(viewOptions);
  fleet::PollerOptions pollerOptions;
  pollerOptions.timeout = std::chrono::milliseconds(
      std::max<long long>(1, std::llround(options.agentTimeoutSeconds * 1000)));
  auto poller = fleet::FleetPoller::create(*agents.source, view, systemClock(), pollerOptions);
  if (!poller) {
    log::error("invalid poller options", {{"error", poller.error().message}});
    return 2;
  }

  // A server that stops on its own leaves the operator unobservable: stop (exit 1) so that it
  // is restarted.
  std::atomic<bool> failed{false};
  auto failNow = [&failed](std::string_view why) {
    failed = true;
    log::error(why);
    ::kill(::getpid(), SIGTERM);
  };
  std::unique_ptr<Server> metricsHttp, probeHttp;
  if (options.metricsBindAddress.enabled) {
    auto s =
        Server::create("metrics", options.metricsBindAddress, metricsServer(metrics, **poller));
    if (!s) {
      log::error("cannot serve metrics", {{"error", s.error().message}});
      return 1;
    }
    metricsHttp = std::move(*s);
    log::info("serving metrics",
              {{"host", options.metricsBindAddress.host}, {"port", metricsHttp->port()}});
  }
  if (options.healthProbeBindAddress.enabled) {
    auto s = Server::create("probes", options.healthProbeBindAddress, probeServer(health));
    if (!s) {
      log::error("cannot serve probes", {{"error", s.error().message}});
      return 1;
    }
    probeHttp = std::move(*s);
    log::info("serving probes",
              {{"host", options.healthProbeBindAddress.host}, {"port", probeHttp->port()}});
  }
  if (metricsHttp) metricsHttp->start([&] { failNow("the metrics server stopped unexpectedly"); });
  if (probeHttp) probeHttp->start([&] { failNow("the probe server stopped unexpectedly"); });

  std::optional<PrometheusClient> prometheus;
  if (!options.prometheusUrl.empty()) {
    auto created = PrometheusClient::create(options.prometheusUrl);
    if (!created) {
      log::error("invalid --prometheus-url", {{"error", created.error().message}});
      return 2;
    }
    prometheus = std::move(*created);
  }
  kube::EventRecorder events(**client, "pi0-operator", options.identity);
  Caches caches(**client);
  ReconcilerOptions reconcilerOptions;
  // Every poll round wakes the matrices (below); the period is the fallback should rounds stop.
  reconcilerOptions.matrixPeriod = std::max<std::chrono::milliseconds>(
      std::chrono::seconds(10),
      2 * std::chrono::duration_cast<std::chrono::milliseconds>(interval));
  kube::ClientWriter writer(**client);
  Reconcilers reconcilers(writer, caches, view, events, metrics,
                          prometheus ? &*prometheus : nullptr, reconcilerOptions);
  std::jthread caching([&caches](std::stop_token stop) { caches.run(stop); });
  // Each round of polls wakes the matrices, so a load crossing a level is acted on within one
  // poll interval.
  std::jthread polling([&](std::stop_token stop) {
    (*poller)->run(stop, interval, [&](const fleet::PollRound&) { reconcilers.fleetPolled(); });
  });
  health.caches = &caches;
  // The probes stop reading the caches before they go, on every way out of run().
  struct Unpublish {
    Health& health;
    ~Unpublish() { health.caches = nullptr; }
  } unpublish{health};

  std::unique_ptr<kube::LeaderElector> elector;
  if (options.leaderElect) {
    kube::LeaderElectionConfig le;
    le.leaseNamespace = options.leaderElectionNamespace;
    le.leaseName = options.leaderElectionId;
    le.identity = options.identity;
    auto created = kube::LeaderElector::create(**client, le);
    if (!created) {
      log::error("cannot start leader election", {{"error", created.error().message}});
      return 1;
    }
    elector = std::move(*created);
  }
  std::atomic<bool> lostLease{false};
  std::jthread leading([&](std::stop_token stop) {
    health.electorRunning = true;
    if (!elector) {
      runLeader(stop, metrics, reconcilers);
      return;
    }
    const bool clean =
        elector->run(stop, [&](std::stop_token st) { runLeader(st, metrics, reconcilers); });
    if (!clean) {
      // As controller-runtime does: a replica that lost its Lease exits, and starts again as
      // a standby with nothing left over from leading.
      health.electorRunning = false;
      lostLease = true;
      log::error("leadership lost; exiting",
                 {{"lease", options.leaderElectionNamespace + "/" + options.leaderElectionId}});
      ::kill(::getpid(), SIGTERM);
    }
  });
  log::info("pi0-operator started",
            {{"version", PI0_VERSION},
             {"identity", options.identity},
             {"leaderElect", options.leaderElect},
             {"lease", options.leaderElectionNamespace + "/" + options.leaderElectionId},
             {"pollIntervalSeconds", options.pollIntervalSeconds}});

  int received = 0;
  sigwait(&signals, &received);
  if (!failed && !lostLease) {
    log::info("shutting down", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  }
  // Leading stops first (the elector releases the Lease so a standby takes over at once), then
  // the poller, then the servers.
  leading.request_stop();
  leading.join();
  polling.request_stop();
  polling.join();
  caching.request_stop();
  caching.join();
  events.flush();
  if (agents.discovery.joinable()) {
    agents.discovery.request_stop();
    agents.discovery.join();
  }
  if (probeHttp) probeHttp->stop();
  if (metricsHttp) metricsHttp->stop();
  log::info("pi0-operator stopped");
  return failed || lostLease ? 1 : 0;
}

}  // namespace
}  // namespace pi0::op

int main(int argc, char** argv) {
  return pi0::programMain(
      "pi0-operator", PI0_VERSION, argc, argv,
      [](const std::vector<std::string>& args) { return pi0::op::parseOptions(args); },
      [] { return pi0::op::usage(); }, [](const auto& options) { return pi0::op::run(options); });
}
