// The ledger sender against a real HTTPS server that stores into a real SQLite ledger: decisions
// reach the ledger once each whatever the server answers in between (503 while it does not lead,
// an answer lost after storing, the server gone), a batch the server refuses as malformed is
// dropped and counted, and a sender that stops hands over what it holds.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "decision_log.h"
#include "fleet_pki.h"
#include "ledger/ledger.h"
#include "ledger_sender.h"
#include "net/https_server.h"

using namespace pi0;
using namespace pi0::webhook;
using namespace std::chrono_literals;

namespace {

using pi0::testing::Pki;

admission::PodRequest pod(int i) {
  admission::PodRequest p;
  p.ns = "shop";
  p.name = "web-" + std::to_string(i);
  p.uid = "uid-" + std::to_string(i);
  return p;
}

admission::Decision passed() {
  admission::Decision d;
  d.reason = admission::Reason::kPassed;
  d.node = "node-a";
  d.candidates = 2;
  d.gates = {{Resource::kCpu, admission::Gate::kFitError, 0.02, 0.10, 0, true}};
  return d;
}

// POST /ledger/decisions into a ledger, as the operator leader answers it; `before` may answer
// first (a 503, a 400), `after` may replace the 200 of a stored batch (the answer lost).
struct LedgerServer {
  LedgerServer(const Pki& pki, ledger::Ledger& into) : store(into) {
    auto created = net::HttpsServer::create(pki.serverOptions(), [this](net::Routes& r) {
      r.post(kLedgerDecisionsPath, [this](const net::HttpRequest& req) {
        ++requests;
        if (req.authorization != "Bearer secret-token")
          return net::HttpResponse{401, "missing bearer token\n"};
        if (int status = before.exchange(0); status != 0)
          return net::HttpResponse{status, "refused for the test\n"};
        auto decisions = ledger::parseDecisions(req.body);
        if (!decisions) return net::HttpResponse{400, decisions.error().message + "\n"};
        auto stored = store.record(*decisions);
        if (!stored) return net::HttpResponse{500, stored.error().message + "\n"};
        if (int status = after.exchange(0); status != 0)
          return net::HttpResponse{status, "stored, but the answer is lost\n"};
        return net::HttpResponse{200, "{}", "application/json"};
      });
    });
    REQUIRE_MESSAGE(created, (created ? "" : created.error().message));
    server = std::move(*created);
    server->start();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(server->port()); }

  ledger::Ledger& store;
  std::unique_ptr<net::HttpsServer> server;
  std::atomic<int> requests{0};
  std::atomic<int> before{0}, after{0};
};

std::unique_ptr<ledger::Ledger> openLedger(const Pki& pki) {
  ledger::Options o;
  o.path = pki.dir.path() / "ledger.db";
  auto l = ledger::Ledger::open(o);
  REQUIRE_MESSAGE(l, (l ? "" : l.error().message));
  return std::move(*l);
}

std::int64_t storedDecisions(ledger::Ledger& l) {
  auto s = l.stats();
  REQUIRE(s);
  return s->decisions;
}

fleet::LeaderLink link(const Pki& pki, std::function<Result<std::string>()> where) {
  fleet::LeaderLinkOptions o;
  o.caFile = pki.caFile;
  o.tokenFile = pki.dir.path() / "token";
  o.timeout = 1000ms;
  o.relocateEvery = 0s;
  return fleet::LeaderLink([where](std::stop_token) { return where(); }, o, systemClock());
}

LedgerSenderOptions smallBatches() {
  LedgerSenderOptions o;
  o.every = 10ms;
  o.batch = 4;
  return o;
}

void add(DecisionLog& log, int from, int to) {
  for (int i = from; i < to; ++i)
    log.add(pod(i), passed(), "shop/web", std::chrono::system_clock::now());
}

}  // namespace

TEST_CASE("decisions reach the ledger once each, through 503s and a lost answer") {
  Pki pki;
  auto l = openLedger(pki);
  LedgerServer server(pki, *l);
  DecisionLog log("pi0-webhook-0", 1000);
  LedgerSender sender(log, link(pki, [&] { return server.url(); }), smallBatches());

  add(log, 0, 10);
  CHECK(sender.sendAll({}));  // three batches of at most 4
  CHECK(log.size() == 0);
  CHECK(storedDecisions(*l) == 10);
  CHECK(sender.counters().sent == 10);
  CHECK(sender.counters().requests == 3);

  // Not the leader: nothing stored, nothing acknowledged; the next send stores them.
  add(log, 10, 13);
  server.before = 503;
  CHECK_FALSE(sender.sendAll({}));
  CHECK(log.size() == 3);
  CHECK(storedDecisions(*l) == 10);
  CHECK(sender.counters().errors == 1);
  CHECK(sender.lastError().find("HTTP 503: refused for the test") != std::string::npos);
  CHECK(sender.sendAll({}));
  CHECK(log.size() == 0);
  CHECK(storedDecisions(*l) == 13);
  CHECK(sender.lastError().empty());

  // Stored, but the answer is lost: the batch is sent again and stored once.
  add(log, 13, 15);
  server.after = 500;
  CHECK_FALSE(sender.sendAll({}));
  CHECK(log.size() == 2);
  CHECK(storedDecisions(*l) == 15);
  CHECK(sender.sendAll({}));
  CHECK(log.size() == 0);
  CHECK(storedDecisions(*l) == 15);
  ledger::Query q;
  q.limit = 100;
  auto rows = l->decisions(q);
  REQUIRE(rows);
  CHECK(rows->size() == 15);
  CHECK(rows->front().decision.pod == "web-14");  // newest first
  CHECK(rows->front().decision.replica == "pi0-webhook-0");
  CHECK(rows->front().decision.gates.size() == 1);
}

TEST_CASE("a batch refused as malformed is dropped and counted; later ones go on") {
  Pki pki;
  auto l = openLedger(pki);
  LedgerServer server(pki, *l);
  DecisionLog log("r", 1000);
  LedgerSender sender(log, link(pki, [&] { return server.url(); }), smallBatches());
  add(log, 0, 6);
  server.before = 400;
  CHECK(sender.sendAll({}));
  CHECK(sender.counters().rejected == 4);  // the first batch
  CHECK(sender.counters().sent == 2);
  CHECK(storedDecisions(*l) == 2);
  CHECK(log.size() == 0);
}

TEST_CASE("while the leader is out of reach the log keeps the decisions, then sends them") {
  Pki pki;
  auto l = openLedger(pki);
  std::unique_ptr<LedgerServer> server;
  std::atomic<bool> leader{false};
  std::string url;
  DecisionLog log("r", 1000);
  LedgerSender sender(log,
                      link(pki,
                           [&]() -> Result<std::string> {
                             if (!leader) return fail("no replica holds the Lease");
                             return url;
                           }),
                      smallBatches());
  add(log, 0, 5);
  CHECK_FALSE(sender.sendAll({}));
  CHECK(sender.lastError() == "no replica holds the Lease");
  CHECK(log.size() == 5);

  // A leader that is gone: the located address refuses the connection.
  {
    LedgerServer gone(pki, *l);
    url = gone.url();
  }
  leader = true;
  CHECK_FALSE(sender.sendAll({}));
  CHECK(sender.lastError().find("cannot connect") != std::string::npos);
  CHECK(log.size() == 5);

  server = std::make_unique<LedgerServer>(pki, *l);
  url = server->url();
  CHECK(sender.sendAll({}));
  CHECK(storedDecisions(*l) == 5);
}

TEST_CASE("run() sends every period, and hands over what it holds when it stops") {
  Pki pki;
  auto l = openLedger(pki);
  LedgerServer server(pki, *l);
  DecisionLog log("r", 1000);
  {
    LedgerSenderOptions o;
    o.every = 50ms;
    LedgerSender sender(log, link(pki, [&] { return server.url(); }), o);
    std::jthread running([&](std::stop_token st) { sender.run(st); });
    add(log, 0, 3);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (storedDecisions(*l) < 3 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    CHECK(storedDecisions(*l) == 3);
  }
  {
    LedgerSenderOptions o;
    o.every = std::chrono::hours(1);  // the first send finds nothing; the next is at the stop
    LedgerSender sender(log, link(pki, [&] { return server.url(); }), o);
    std::jthread running([&](std::stop_token st) { sender.run(st); });
    std::this_thread::sleep_for(100ms);
    add(log, 3, 8);
    CHECK(storedDecisions(*l) == 3);
    running.request_stop();
    running.join();
    CHECK(storedDecisions(*l) == 8);
    CHECK(log.size() == 0);
  }
}
