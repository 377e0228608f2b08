// pi0-operator: the operator's process. See `pi0-operator --help` and README.md. It connects to
// the API server, serves /metrics and the probes, keeps the fleet view and the caches current,
// and, when leader election is on, campaigns for the Lease; the reconcilers run while this
// replica leads (runLeader). The Runner owns the signals, the threads and the shutdown.
#include <atomic>
#include <memory>
#include <optional>

#include "common/log.h"
#include "common/program.h"
#include "common/runner.h"
#include "fleet/feed.h"
#include "fleet/polling.h"
#include "fleet/resource_view.h"
#include "kube/client.h"
#include "kube/connect.h"
#include "kube/leader_election.h"
#include "kube/token_review.h"
#include "ledger/ledger.h"
#include "metrics/exposition.h"
#include "metrics/prometheus_query.h"
#include "net/http_server.h"
#include "net/https_server.h"
#include "operator/gate_policy_reconcile.h"
#include "operator/memory_recorder.h"
#include "operator/operator_metrics.h"
#include "operator/options.h"
#include "operator/outcomes.h"
#include "operator/query_server.h"
#include "operator/reconciler.h"

#ifndef PI0_VERSION
#define PI0_VERSION "dev"
#endif

namespace pi0::op {
namespace {

// Serves `routes` on `address` on the runner, unless the address is off ("0"). False (logged)
// when it cannot bind; `server` holds it, and must outlive runner.run().
bool serve(Runner& runner, const std::string& what, const BindAddress& address,
           const std::function<void(net::Routes&)>& routes,
           std::unique_ptr<net::HttpServer>& server) {
  if (!address.enabled) return true;
  auto created = net::HttpServer::create({what, {address.host, address.port}, 2}, routes);
  if (!created) {
    log::error("cannot serve " + what, {{"error", created.error().message}});
    return false;
  }
  server = std::move(*created);
  log::info("serving " + what, {{"host", address.host}, {"port", server->port()}});
  runner.addServer(
      what, [s = server.get()] { return s->run(); }, [s = server.get()] { s->stop(); });
  return true;
}

// Ready once every cache has synced and the elector runs. Like controller-runtime, a standby
// that campaigns is ready: readiness says "can serve", and a standby takes over without a
// restart.
void addReadiness(Probes& probes, const Caches& caches, const std::atomic<bool>& electorRunning) {
  probes.addReadiness([&caches]() -> std::string {
    if (caches.synced()) return "";
    std::string missing;
    for (const auto& name : caches.unsynced())
      missing += (missing.empty() ? "" : ", ") + name;
    return "caches not synced: " + missing +
           " (for channels and shutdownmatrices: are Pi0's CRDs installed?)";
  });
  probes.addReadiness([&electorRunning]() -> std::string {
    return electorRunning ? "" : "leader election not running";
  });
}

// What the leader does: runs the reconcilers until `stop` fires (leadership lost or shutdown).
void runLeader(std::stop_token stop, OperatorMetrics& metrics, Reconcilers& reconcilers) {
  metrics.setLeader(true);
  log::info("leading");
  reconcilers.run(stop);
  metrics.setLeader(false);
  log::info("stopped leading");
}

// Leads, or campaigns with `elector` (null: leader election is off) and leads while elected.
// As controller-runtime does, a replica that loses its Lease exits (1), and starts again as a
// standby with nothing left over from leading.
void addLeading(Runner& runner, const Options& options, kube::LeaderElector* elector,
                OperatorMetrics& metrics, Reconcilers& reconcilers,
                std::atomic<bool>& electorRunning) {
  runner.add([&, elector](std::stop_token stop) {
    electorRunning = true;
    if (elector == nullptr) {
      runLeader(stop, metrics, reconcilers);
      return;
    }
    if (!elector->run(stop, [&](std::stop_token st) { runLeader(st, metrics, reconcilers); })) {
      electorRunning = false;
      runner.fail("leadership lost; exiting",
                  {{"lease", options.leaderElectionNamespace + "/" + options.leaderElectionId}});
    }
  });
}

std::unique_ptr<kube::LeaderElector> makeElector(kube::Client& client, const Options& options) {
  kube::LeaderElectionConfig le;
  le.leaseNamespace = options.leaderElectionNamespace;
  le.leaseName = options.leaderElectionId;
  le.identity = options.identity;
  // Readers of the fleet feed find the leader's in its Lease.
  if (options.fleetBindAddress.enabled)
    le.annotations[std::string(fleet::kFleetUrlAnnotation)] = options.fleetAdvertiseUrl;
  auto created = kube::LeaderElector::create(client, le);
  if (!created) {
    log::error("cannot start leader election", {{"error", created.error().message}});
    return nullptr;
  }
  return std::move(*created);
}

// The fleet feed (fleet/feed.h): GET /fleet over HTTPS, answered while this replica leads, to
// callers whose token TokenReview authenticates as one of --fleet-readers. On the same address,
// with --ledger-path, POST /ledger/decisions takes the webhook replicas' decisions into the
// truth ledger, from callers that authenticate as one of --ledger-writers.
struct FeedServing {
  std::unique_ptr<fleet::FeedPublisher> publisher;
  std::unique_ptr<kube::TokenReviewer> reviewer;
  std::unique_ptr<kube::BearerAuthorizer> authorizer;
  std::unique_ptr<kube::BearerAuthorizer> ledgerWriters;
  std::unique_ptr<net::HttpsServer> server;
};

// The result label of a refused caller (pi0_operator_*_answers_total).
const char* refusal(int status) {
  return status == 401 ? "unauthorized" : status == 403 ? "forbidden" : "unavailable";
}

// POST /ledger/decisions: a DecisionBatch (ledger/records.h) from a webhook replica, stored in
// one transaction before the answer, so that a 200 means the decisions survive this process.
net::HttpResponse takeDecisions(const net::HttpRequest& req, FeedServing& feed,
                                ledger::Ledger& ledger, const std::function<bool()>& leading,
                                const std::string& notLeader, OperatorMetrics& metrics) {
  const kube::BearerCheck check = feed.ledgerWriters->check(req.authorization);
  if (check.status != 200) {
    metrics.countLedgerWrite(refusal(check.status));
    return net::HttpResponse{check.status, check.message + "\n"};
  }
  if (!leading()) {
    metrics.countLedgerWrite("not_leader");
    return net::HttpResponse{503, notLeader};
  }
  auto decisions = ledger::parseDecisions(req.body);
  if (!decisions) {
    metrics.countLedgerWrite("bad_request");
    return net::HttpResponse{400, "invalid DecisionBatch: " + decisions.error().message + "\n"};
  }
  auto stored = ledger.record(*decisions);
  if (!stored) {
    metrics.countLedgerWrite("error");
    log::error("ledger: cannot store decisions", {{"error", stored.error().message}});
    return net::HttpResponse{500, "the ledger cannot store: " + stored.error().message + "\n"};
  }
  metrics.countLedgerWrite("stored", *stored, decisions->size() - *stored);
  return net::HttpResponse{200,
                           "{\"received\":" + std::to_string(decisions->size()) +
                               ",\"stored\":" + std::to_string(*stored) + "}",
                           "application/json"};
}

// Starts serving the feed when --fleet-bind-address is on. False (logged) when it cannot.
bool serveFeed(Runner& runner, const Options& options, kube::Client& client, fleet::FleetView& view,
               std::function<bool()> leading, OperatorMetrics& metrics, ledger::Ledger* ledger,
               FeedServing& feed) {
  if (!options.fleetBindAddress.enabled) return true;
  feed.publisher = std::make_unique<fleet::FeedPublisher>(view, systemClock());
  feed.reviewer = std::make_unique<kube::TokenReviewer>(
      client, std::vector<std::string>{options.fleetAudience});
  feed.authorizer = std::make_unique<kube::BearerAuthorizer>(*feed.reviewer, options.fleetReaders);
  feed.ledgerWriters = std::make_unique<kube::BearerAuthorizer>(
      *feed.reviewer, options.ledgerWriters, "write decisions to the ledger");
  const std::string notLeader =
      "this replica does not lead; the fleet feed is served by the "
      "holder of the Lease " +
      options.leaderElectionNamespace + "/" + options.leaderElectionId + "\n";
  net::HttpsServerOptions serverOptions;
  serverOptions.host = options.fleetBindAddress.host;
  serverOptions.port = options.fleetBindAddress.port;
  serverOptions.certFile = options.fleetCertFile;
  serverOptions.keyFile = options.fleetKeyFile;
  serverOptions.threads = 2;
  auto server = net::HttpsServer::create(serverOptions, [&, leading, notLeader](net::Routes& r) {
    r.get("/fleet", [&feed, &metrics, leading, notLeader](const net::HttpRequest& req) {
      // Who asks comes first: a caller without a valid token learns nothing, not even who leads.
      const kube::BearerCheck check = feed.authorizer->check(req.authorization);
      if (check.status != 200) {
        metrics.countFeedAnswer(refusal(check.status), 0);
        return net::HttpResponse{check.status, check.message + "\n"};
      }
      if (!leading()) {
        metrics.countFeedAnswer("not_leader", 0);
        return net::HttpResponse{503, notLeader};
      }
      fleet::FeedPublisher::Answer a = feed.publisher->answer(req.query);
      if (a.status != 200) {
        metrics.countFeedAnswer("bad_request", 0);
        return net::HttpResponse{a.status, std::move(a.body)};
      }
      metrics.countFeedAnswer(a.full ? "full" : "delta", a.body.size());
      return net::HttpResponse{200, std::move(a.body), "application/json"};
    });
    if (ledger) {
      r.post("/ledger/decisions",
             [&feed, &metrics, ledger, leading, notLeader](const net::HttpRequest& req) {
               return takeDecisions(req, feed, *ledger, leading, notLeader, metrics);
             });
    }
  });
  if (!server) {
    log::error("cannot serve the fleet feed", {{"error", server.error().message}});
    return false;
  }
  feed.server = std::move(*server);
  log::info("serving the fleet feed while leading", {{"host", options.fleetBindAddress.host},
                                                     {"port", feed.server->port()},
                                                     {"advertised", options.fleetAdvertiseUrl}});
  runner.addStartStop([s = feed.server.get()] { s->start(); },
                      [s = feed.server.get()] { s->stop(); });
  return true;
}

// Starts serving the query API (operator/query_server.h) when --query-bind-address is on.
// False (logged) when it cannot.
bool serveQueries(Runner& runner, const Options& options, const QueryContext& context,
                  std::unique_ptr<net::HttpsServer>& server) {
  if (!options.queryBindAddress.enabled) return true;
  net::HttpsServerOptions serverOptions;
  serverOptions.host = options.queryBindAddress.host;
  serverOptions.port = options.queryBindAddress.port;
  serverOptions.certFile = options.queryCertFile;
  serverOptions.keyFile = options.queryKeyFile;
  serverOptions.threads = 1;
  auto created = net::HttpsServer::create(
      serverOptions, [&context](net::Routes& r) { addQueryRoutes(r, context); });
  if (!created) {
    log::error("cannot serve the query API", {{"error", created.error().message}});
    return false;
  }
  server = std::move(*created);
  log::info("serving the query API while leading",
            {{"host", options.queryBindAddress.host}, {"port", server->port()}});
  runner.addStartStop([s = server.get()] { s->start(); }, [s = server.get()] { s->stop(); });
  return true;
}

// Opens the ledger of --ledger-path (null when none) and keeps its retention: every
// --ledger-check-interval, prunes it and sets its metrics (its size, the gates' ratios). False
// (logged) when it cannot be opened.
bool openLedger(Runner& runner, const Options& options, OperatorMetrics& metrics,
                MemoryRecorder* recorder, std::unique_ptr<ledger::Ledger>& ledger) {
  if (options.ledgerPath.empty()) return true;
  ledger::Options lo;
  lo.path = options.ledgerPath;
  lo.maxAge = options.ledgerMaxAge;
  lo.maxBytes = static_cast<std::uint64_t>(options.ledgerMaxMiB) << 20;
  auto opened = ledger::Ledger::open(lo);
  if (!opened) {
    log::error("cannot open the ledger", {{"error", opened.error().message}});
    return false;
  }
  ledger = std::move(*opened);
  log::info("ledger open", {{"path", options.ledgerPath},
                            {"maxAgeSeconds", options.ledgerMaxAge.count()},
                            {"maxMiB", options.ledgerMaxMiB}});
  // The fingerprint memory starts from the states the ledger kept (a leader change with
  // persistence loses none of them).
  if (recorder) {
    auto records = ledger->memoryRecords(recorder->options().capacity);
    if (!records) {
      log::warn("ledger: cannot read the memory's states; the memory starts empty",
                {{"error", records.error().message}});
    } else {
      const std::size_t loaded = recorder->load(entriesOf(*records));
      log::info("fingerprint memory loaded", {{"entries", loaded}});
    }
  }
  runner.add([&metrics, recorder, l = ledger.get(),
              every = options.ledgerCheckInterval](std::stop_token stop) {
    while (!stop.stop_requested()) {
      if (auto pruned = l->prune(std::chrono::system_clock::now()); !pruned) {
        log::warn("ledger: retention failed", {{"error", pruned.error().message}});
      } else if (pruned->decisions > 0 || pruned->actions > 0) {
        metrics.countLedgerPruned(pruned->decisions, pruned->actions);
        log::info("ledger: retention removed records", {{"decisions", pruned->decisions},
                                                        {"actions", pruned->actions},
                                                        {"bytesAfter", pruned->bytesAfter}});
      }
      if (auto stats = l->stats())
        metrics.setLedgerSize(stats->decisions, stats->actions, stats->outcomes, stats->bytes);
      if (auto rates = l->gateRates(std::chrono::system_clock::now() - std::chrono::hours(24)))
        metrics.setGateRates(*rates);
      if (recorder) {
        std::map<std::string, std::size_t> byLabel;
        for (const auto& [label, n] : recorder->entriesByLabel())
          byLabel[std::string(memory::labelName(label))] = n;
        metrics.setMemoryEntries(byLabel);
        metrics.setArchetypes(archetypeFigures(*recorder));
      }
      systemClock().sleepUntil(systemClock().now() + every, stop);
    }
  });
  return true;
}

int run(const Options& options) {
  log::setLevel(options.logLevel);
  Runner runner("pi0-operator");
  auto client = kube::connect({.kubeconfig = options.kubeconfig,
                               .userAgent = std::string("pi0-operator/") + PI0_VERSION,
                               .qps = options.qps,
                               .burst = options.burst,
                               .checkServer = true});
  if (!client) return 1;

  // The fleet view is polled whether or not this replica leads, so that a standby that takes
  // over starts with a current view.
  OperatorMetrics metrics;
  // The operator reads nodes only through resourceView (the cluster load, the feed's records):
  // the view keeps what it reads, thousands of nodes in a few MiB.
  // The fingerprint memory, kept with the truth ledger: it takes each polled fingerprint's
  // features before the trim (which drops what they read).
  std::unique_ptr<MemoryRecorder> recorder;
  if (!options.ledgerPath.empty()) {
    recorder = std::make_unique<MemoryRecorder>(MemoryRecorderOptions::forHorizon(
        std::chrono::duration_cast<std::chrono::milliseconds>(options.outcomeHorizon)));
  }
  fleet::FleetViewOptions viewOptions;
  viewOptions.trim = [m = recorder.get()](fleet::NodeFingerprint& fingerprint) {
    if (m) {
      m->observe(fingerprint, std::chrono::system_clock::now());
      // The memory's verdict travels with the fingerprint to the webhook's history gate.
      fingerprint.history = m->verdict(fingerprint.node);
    }
    fleet::trimToResourceView(fingerprint);
  };
  auto polling = fleet::startPolling(runner, *client, options, viewOptions);
  if (!polling) {
    log::error("cannot poll the agents", {{"error", polling.error().message}});
    return 2;
  }
  std::optional<PrometheusClient> prometheus;
  if (!options.prometheusUrl.empty()) {
    auto created = PrometheusClient::create(options.prometheusUrl);
    if (!created) {
      log::error("invalid --prometheus-url", {{"error", created.error().message}});
      return 2;
    }
    prometheus = std::move(*created);
  }
  kube::EventRecorder events(*client, "pi0-operator", options.identity);
  Caches caches(*client);
  std::unique_ptr<ledger::Ledger> ledger;
  if (!openLedger(runner, options, metrics, recorder.get(), ledger)) return 1;
  // What followed each decision: the pods' outcomes from the Pod cache, the nodes' trouble from
  // each round of the fleet view.
  std::unique_ptr<OutcomeTracker> outcomes;
  if (ledger) {
    outcomes = std::make_unique<OutcomeTracker>(
        *ledger, std::chrono::duration_cast<std::chrono::milliseconds>(options.outcomeHorizon),
        &metrics);
    caches.pods.addHandler(
        [o = outcomes.get()](const kube::ObjectPtr& before, const kube::ObjectPtr& now) {
          o->podChanged(before, now, std::chrono::system_clock::now());
        });
    runner.add(
        [o = outcomes.get()](std::stop_token stop) { o->run(stop, std::chrono::seconds(5)); });
  }
  ReconcilerOptions reconcilerOptions;
  if (ledger) {
    reconcilerOptions.recordActions = [l = ledger.get()](const std::vector<ledger::Action>& a) {
      if (a.empty()) return;
      if (auto stored = l->record(a); !stored)
        log::warn("ledger: cannot record the matrix's steps", {{"error", stored.error().message}});
    };
  }
  // Every poll round wakes the matrices, so a load crossing a level is acted on within one poll
  // interval; the period is the fallback should rounds stop.
  reconcilerOptions.matrixPeriod = std::max<std::chrono::milliseconds>(
      std::chrono::seconds(10),
      2 * std::chrono::duration_cast<std::chrono::milliseconds>((*polling)->interval()));
  kube::ClientWriter writer(*client);
  Reconcilers reconcilers(writer, caches, (*polling)->view(), events, metrics,
                          prometheus ? &*prometheus : nullptr, reconcilerOptions);

  std::atomic<bool> electorRunning{false};
  addReadiness(runner.probes(), caches, electorRunning);
  std::unique_ptr<net::HttpServer> metricsHttp, probeHttp;
  auto metricsRoutes = [&](net::Routes& r) {
    r.get("/metrics", [&](const net::HttpRequest&) {
      metrics.syncFleet((*polling)->counters(), (*polling)->pollsAgents(),
                        (*polling)->feed() ? &(*polling)->feed()->counters() : nullptr);
      metrics.syncEvents(events.counters());
      caches.forEachCounters([&](const std::string& resource, const auto& counters) {
        metrics.syncCache(resource, counters);
      });
      return net::HttpResponse{200, metrics.render(), std::string(metrics::kTextContentType)};
    });
  };
  auto probeRoutes = [&](net::Routes& r) { net::addProbes(r, runner.probes()); };
  if (!serve(runner, "metrics", options.metricsBindAddress, metricsRoutes, metricsHttp) ||
      !serve(runner, "probes", options.healthProbeBindAddress, probeRoutes, probeHttp)) {
    return 1;
  }
  std::unique_ptr<kube::LeaderElector> elector;
  if (options.leaderElect && !(elector = makeElector(*client, options))) return 1;
  // The leader reads the agents (and publishes them); a standby reads the leader's feed.
  auto leading = [&elector] { return !elector || elector->isLeader(); };
  (*polling)->publishesWhen(leading);
  (*polling)->onRound([&](const fleet::PollRound&) {
    reconcilers.fleetPolled();
    const auto snapshot = (*polling)->view().snapshot();
    const auto wallNow = std::chrono::system_clock::now();
    if (outcomes) outcomes->nodesObserved(*snapshot, systemClock().now(), wallNow);
    // The leader labels the states it polled and keeps the new entries in the ledger.
    if (recorder && leading()) {
      const std::vector<memory::Entry> entries =
          recorder->round(*snapshot, systemClock().now(), wallNow);
      if (!entries.empty()) {
        if (auto stored = ledger->record(toRecords(entries)); !stored)
          log::warn("ledger: cannot keep the memory's states", {{"error", stored.error().message}});
      }
    }
  });
  FeedServing feed;
  if (!serveFeed(runner, options, *client, (*polling)->view(), leading, metrics, ledger.get(),
                 feed))
    return 1;
  QueryContext queries;
  queries.ledger = ledger.get();
  queries.leading = leading;
  queries.notLeader =
      "this replica does not lead; the queries are answered by the holder of the "
      "Lease " +
      options.leaderElectionNamespace + "/" + options.leaderElectionId + ": ask again\n";
  queries.metrics = &metrics;
  queries.memory = recorder.get();
  std::unique_ptr<net::HttpsServer> queryServer;
  if (!serveQueries(runner, options, queries, queryServer)) return 1;
  // Calibration: the leader moves the GatePolicy's thresholds by the ledger's outcomes.
  std::unique_ptr<GatePolicyCalibrator> calibrator;
  if (!options.gatePolicy.empty()) {
    CalibratorOptions co;
    co.name = options.gatePolicy;
    co.fixed = options.fixedThresholds;
    calibrator = std::make_unique<GatePolicyCalibrator>(writer, ledger.get(), events, &metrics, co);
    runner.add([c = calibrator.get(), leading](std::stop_token stop) {
      c->run(stop, leading, systemClock());
    });
  }

  // Shutdown runs these backwards: leading stops first (the elector releases the Lease so that
  // a standby takes over at once), then the Events are flushed, the caches, the servers and the
  // polls stop.
  runner.add([&caches](std::stop_token stop) { caches.run(stop); });
  runner.atStop([&events] { events.flush(); });
  addLeading(runner, options, elector.get(), metrics, reconcilers, electorRunning);
  log::info("pi0-operator started",
            {{"version", PI0_VERSION},
             {"identity", options.identity},
             {"leaderElect", options.leaderElect},
             {"lease", options.leaderElectionNamespace + "/" + options.leaderElectionId},
             {"pollIntervalSeconds", options.pollIntervalSeconds}});
  return runner.run();
}

}  // namespace
}  // namespace pi0::op

int main(int argc, char** argv) {
  return pi0::programMain(
      "pi0-operator", PI0_VERSION, argc, argv,
      [](const std::vector<std::string>& args) { return pi0::op::parseOptions(args); },
      [] { return pi0::op::usage(); }, [](const auto& options) { return pi0::op::run(options); });
}
