// FeedClient against a real HTTPS server (net::HttpsServer) answering GET /fleet from a
// FeedPublisher: pages into the consumer's view, the server's certificate checked, the token
// sent, and the fallback when the feed goes silent and its end when it answers again.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "fleet/feed.h"
#include "fleet/feed_client.h"
#include "fleet/fingerprints.h"
#include "fleet_pki.h"
#include "net/https_server.h"

using namespace pi0;
using namespace pi0::fleet;
using namespace std::chrono_literals;

namespace {

using pi0::testing::Pki;

// A publisher of `source` behind GET /fleet, which wants "Bearer secret-token".
struct FeedServer {
  FeedServer(const Pki& pki, FleetView& source) : publisher(source, systemClock()) {
    auto created = net::HttpsServer::create(pki.serverOptions(), [this](net::Routes& r) {
      r.get("/fleet", [this](const net::HttpRequest& req) {
        ++requests;
        if (req.authorization != "Bearer secret-token")
          return net::HttpResponse{401, "missing bearer token\n"};
        auto a = publisher.answer(req.query);
        return net::HttpResponse{a.status, std::move(a.body), "application/json"};
      });
    });
    REQUIRE_MESSAGE(created, (created ? "" : created.error().message));
    server = std::move(*created);
    server->start();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(server->port()); }

  FeedPublisher publisher;
  std::unique_ptr<net::HttpsServer> server;
  std::atomic<int> requests{0};
};

// Runs the client on a thread until the test ends.
struct Running {
  explicit Running(FeedClient& client)
      : thread([&client](std::stop_token st) { client.run(st); }) {}
  std::jthread thread;
};

template <class F>
bool eventually(F condition, std::chrono::seconds within = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

FeedClientOptions options(const Pki& pki) {
  FeedClientOptions o;
  o.caFile = pki.caFile;
  o.tokenFile = pki.dir.path() / "token";
  o.every = 20ms;
  o.timeout = 1000ms;
  o.fallbackAfter = 300ms;
  return o;
}

}  // namespace

TEST_CASE("the client keeps its view current from the feed, and falls back while it is gone") {
  Pki pki;
  FleetView source;
  source.setAgents({{"a", "http://10.0.0.1:9560"}, {"b", "http://10.0.0.2:9560"}});
  source.recordSuccess("a", fleet::testing::fingerprint("a", {{"cpu", 0.5}}), systemClock().now());
  auto server = std::make_unique<FeedServer>(pki, source);
  std::atomic<std::string*> url{nullptr};
  std::string where = server->url();
  url = &where;
  std::atomic<int> located{0};
  FeedLocator locate = [&](std::stop_token) -> Result<std::string> {
    ++located;
    return *url.load();
  };
  FleetView consumer;
  auto client = FeedClient::create(consumer, locate, options(pki));
  REQUIRE(client);
  {
    Running running(**client);
    REQUIRE(eventually([&] { return consumer.snapshot()->size() == 2; }));
    CHECK(consumer.snapshot()->find("a")->fingerprint);
    CHECK((*client)->receivedOnce());
    CHECK_FALSE((*client)->fallback());

    // A change at the source arrives as a delta; the connection is kept (one location).
    source.recordSuccess("b", fleet::testing::fingerprint("b", {{"cpu", 0.2}}),
                         systemClock().now());
    REQUIRE(eventually([&] { return consumer.snapshot()->find("b")->fingerprint != nullptr; }));
    CHECK((*client)->counters().fullPages.load() == 1);
    CHECK((*client)->counters().pages.load() > 1);
    CHECK(located.load() == 1);

    // The publisher dies: the view keeps its data, and the client falls back.
    server.reset();
    REQUIRE(eventually([&] { return (*client)->fallback(); }));
    CHECK(consumer.snapshot()->size() == 2);
    CHECK((*client)->lastError().find("cannot connect") != std::string::npos);
    // Located again after a failure (within relocateEvery, 1 s, of the last location)...
    REQUIRE(eventually([&] { return located.load() > 1; }));
    // ...but at most once a `relocateEvery` (1 s), while pages are tried every 20 ms.
    const int before = located.load();
    const auto errors = (*client)->counters().errors.load();
    std::this_thread::sleep_for(500ms);
    CHECK((*client)->counters().errors.load() >= errors + 10);
    CHECK(located.load() <= before + 1);

    // Another publisher (a new leader, a new epoch) comes: a full page, and no more fallback.
    source.setAgents({{"b", "http://10.0.0.2:9560"}});
    server = std::make_unique<FeedServer>(pki, source);
    where = server->url();
    REQUIRE(eventually([&] { return !(*client)->fallback(); }));
    REQUIRE(eventually([&] { return consumer.snapshot()->size() == 1; }));
    CHECK((*client)->counters().fullPages.load() == 2);
    CHECK((*client)->lastError().empty());
  }
}

TEST_CASE("the client refuses a server whose certificate another CA signed, and says so") {
  Pki pki;
  FleetView source;
  FeedServer server(pki, source);
  FleetView consumer;
  FeedClientOptions o = options(pki);
  o.caFile = pki.otherCaFile;
  auto client = FeedClient::create(
      consumer, [&](std::stop_token) -> Result<std::string> { return server.url(); }, o);
  REQUIRE(client);
  Running running(**client);
  REQUIRE(eventually([&] { return !(*client)->lastError().empty(); }));
  CHECK((*client)->lastError().find("certificate") != std::string::npos);
  CHECK_FALSE((*client)->receivedOnce());
  CHECK(server.requests.load() == 0);  // nothing was asked of it
  REQUIRE(eventually([&] { return (*client)->fallback(); }));
}

TEST_CASE("without the token the publisher refuses, and the client says what it answered") {
  Pki pki;
  FleetView source;
  FeedServer server(pki, source);
  FleetView consumer;
  FeedClientOptions o = options(pki);
  o.tokenFile.clear();
  auto client = FeedClient::create(
      consumer, [&](std::stop_token) -> Result<std::string> { return server.url(); }, o);
  REQUIRE(client);
  Running running(**client);
  REQUIRE(eventually([&] { return !(*client)->lastError().empty(); }));
  CHECK((*client)->lastError().find("HTTP 401: missing bearer token") != std::string::npos);
}

TEST_CASE("a locator that knows no publisher: no page, and the fallback") {
  Pki pki;
  FleetView consumer;
  auto client = FeedClient::create(
      consumer,
      [](std::stop_token) -> Result<std::string> { return fail("no replica holds the Lease"); },
      options(pki));
  REQUIRE(client);
  Running running(**client);
  REQUIRE(eventually([&] { return (*client)->fallback(); }));
  CHECK((*client)->lastError() == "no replica holds the Lease");
}
