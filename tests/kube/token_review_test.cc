// TokenReviewer and BearerAuthorizer against FakeApiServer (a stand-in apiserver, named as
// such) that answers TokenReviews from a table and counts them, with a fake clock for the
// cache's TTLs; and the Authorization header through both of Pi0's servers to the authorizer.
// The same checks against the real apiserver's TokenReview are in token_review_e2e_test.cc.
#include "kube/token_review.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "certs/self_signed.h"
#include "fake_server_helpers.h"
#include "fakes/fake_apiserver.h"
#include "fakes/fake_clock.h"
#include "net/http_server.h"
#include "net/https_server.h"
#include "temp_dir.h"

using namespace pi0;
using namespace pi0::kube;
using namespace pi0::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews";
constexpr const char* kWebhook = "system:serviceaccount:pi0-system:pi0-webhook";

// A stand-in apiserver whose TokenReviews follow these rules (by the token's name):
//   "webhook-token"    authenticated as kWebhook, audiences as asked
//   "user-X"           authenticated as system:serviceaccount:ns:user-X, audiences as asked
//   "no-audience"      authenticated, status.audiences absent (an audience-unaware server)
//   "wrong-audience"   authenticated, status.audiences ["elsewhere"]
//   "no-user"          authenticated, status.user absent
//   "fixed-later"      rejected until `fixed` is set, then as "webhook-token"
//   anything else      not authenticated, error "invalid bearer token"
// While `failing` is set it answers 500 (a Status) instead.
struct ReviewServer {
  FakeApiServer fake;
  std::atomic<int> calls{0};
  std::atomic<bool> failing{false};
  std::atomic<bool> fixed{false};
  std::mutex mu;
  std::vector<Json> bodies;  // what each review asked, guarded by mu

  ReviewServer() {
    fake.server().Post(kReviewPath, [this](const httplib::Request& req, httplib::Response& res) {
      answer(req, res);
    });
    fake.start();
  }

  void answer(const httplib::Request& req, httplib::Response& res) {
    ++calls;
    if (failing) return status(res, 500, "InternalError", "etcd is on fire");
    Json review = Json::parse(req.body);
    {
      std::lock_guard lock(mu);
      bodies.push_back(review);
    }
    const std::string token = review["spec"]["token"];
    Json status = {{"authenticated", true}};
    const Json audiences = review["spec"].value("audiences", Json::array());
    std::string user;
    if (token == "webhook-token" || (token == "fixed-later" && fixed)) {
      user = kWebhook;
    } else if (token.starts_with("user-")) {
      user = "system:serviceaccount:ns:" + token;
    } else if (token == "no-audience" || token == "wrong-audience" || token == "no-user") {
      user = "system:serviceaccount:ns:odd";
    } else {
      status = {{"authenticated", false}, {"error", "invalid bearer token"}};
    }
    if (!user.empty()) {
      status["user"] = {{"username", user}, {"groups", {"system:serviceaccounts"}}};
      status["audiences"] = audiences;
    }
    if (token == "no-audience") status.erase("audiences");
    if (token == "wrong-audience") status["audiences"] = {"elsewhere"};
    if (token == "no-user") status.erase("user");
    review["status"] = status;
    res.status = 201;
    res.set_content(review.dump(), "application/json");
  }

  std::unique_ptr<Client> client() const { return clientFor(fake); }

  Json lastBody() {
    std::lock_guard lock(mu);
    REQUIRE_FALSE(bodies.empty());
    return bodies.back();
  }
};

}  // namespace

TEST_CASE("bearerToken: the scheme in any case, one token, spaces around it ignored") {
  struct Row {
    std::string_view header, token;
  };
  for (const Row& row : std::vector<Row>{
           {"Bearer abc.def", "abc.def"},
           {"bearer abc", "abc"},
           {"BEARER abc", "abc"},
           {"BeArEr abc", "abc"},
           {"Bearer   abc  ", "abc"},
           {"  Bearer abc", "abc"},
           {"Bearer\tabc", "abc"},
           {"", ""},
           {"Bearer", ""},
           {"Bearer ", ""},
           {"Bearer    ", ""},
           {"Bearerabc", ""},
           {"Bearer: abc", ""},
           {"Basic dXNlcjpwYXNz", ""},
           {"Token abc", ""},
           {"Bearer abc def", ""},
           {"abc", ""},
       }) {
    CAPTURE(row.header);
    CHECK(bearerToken(row.header) == row.token);
  }
}

TEST_CASE("an authenticated token is reviewed once per TTL, and the review asks for the audience") {
  ReviewServer server;
  auto client = server.client();
  FakeClock clock;
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock);

  auto user = reviewer.authenticate("webhook-token");
  REQUIRE(user);
  CHECK(*user == kWebhook);
  CHECK(server.calls == 1);  // the stand-in answers POST to kReviewPath only
  const Json asked = server.lastBody();
  CHECK(asked["apiVersion"] == "authentication.k8s.io/v1");
  CHECK(asked["kind"] == "TokenReview");
  CHECK(asked["spec"]["token"] == "webhook-token");
  CHECK(asked["spec"]["audiences"] == Json::array({"pi0-fleet"}));

  // Within the TTL: from the cache, however often.
  for (int i = 0; i < 5; ++i)
    CHECK(reviewer.authenticate("webhook-token").value_or("") == kWebhook);
  clock.advance(59s);
  CHECK(reviewer.authenticate("webhook-token").value_or("") == kWebhook);
  CHECK(server.calls == 1);
  CHECK(reviewer.reviews() == 1);

  // At 60 s the entry has expired: reviewed again, then cached again from then on.
  clock.advance(1s);
  CHECK(reviewer.authenticate("webhook-token").value_or("") == kWebhook);
  CHECK(server.calls == 2);
  clock.advance(59s);
  CHECK(reviewer.authenticate("webhook-token").value_or("") == kWebhook);
  CHECK(server.calls == 2);

  // Another token is another entry.
  CHECK(reviewer.authenticate("user-a").value_or("") == "system:serviceaccount:ns:user-a");
  CHECK(server.calls == 3);
}

TEST_CASE("a rejected token is remembered for 5 s only, so a fixed token gets in soon") {
  ReviewServer server;
  auto client = server.client();
  FakeClock clock;
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock);

  auto refused = reviewer.authenticate("fixed-later");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "token not authenticated: invalid bearer token");
  CHECK(server.calls == 1);
  server.fixed = true;  // e.g. the ServiceAccount was created meanwhile
  clock.advance(4s);
  CHECK_FALSE(reviewer.authenticate("fixed-later"));  // still the cached rejection
  CHECK(server.calls == 1);
  clock.advance(1s);  // 5 s after the rejection
  CHECK(reviewer.authenticate("fixed-later").value_or("") == kWebhook);
  CHECK(server.calls == 2);
  clock.advance(50s);  // now cached for the full TTL
  CHECK(reviewer.authenticate("fixed-later").value_or("") == kWebhook);
  CHECK(server.calls == 2);

  // A TTL below 5 s bounds rejections too.
  TokenReviewer brief(*client, {"pi0-fleet"}, 2s, clock);
  CHECK_FALSE(brief.authenticate("garbage"));
  CHECK(server.calls == 3);
  clock.advance(1s);
  CHECK_FALSE(brief.authenticate("garbage"));
  CHECK(server.calls == 3);
  clock.advance(1s);
  CHECK_FALSE(brief.authenticate("garbage"));
  CHECK(server.calls == 4);
}

TEST_CASE("an empty token is rejected without asking") {
  ReviewServer server;
  auto client = server.client();
  TokenReviewer reviewer(*client, {"pi0-fleet"});
  auto refused = reviewer.authenticate("");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "token not authenticated: no token");
  CHECK(server.calls == 0);
}

TEST_CASE("an error answer from the apiserver is not remembered") {
  ReviewServer server;
  auto client = server.client();
  FakeClock clock;
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock);

  server.failing = true;
  auto failed = reviewer.authenticate("webhook-token");
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message.starts_with("cannot review the token: "));
  CHECK(failed.error().message.find("etcd is on fire") != std::string::npos);
  CHECK(server.calls == 1);
  CHECK_FALSE(reviewer.authenticate("webhook-token"));  // asked again, no time having passed
  CHECK(server.calls == 2);

  server.failing = false;
  CHECK(reviewer.authenticate("webhook-token").value_or("") == kWebhook);
  CHECK(server.calls == 3);
}

TEST_CASE("a transport error (no apiserver listening) is not remembered") {
  // A port that was just free: the fake listened on it and stopped.
  ReviewServer first;
  auto client = first.client();
  const int port = first.fake.port();
  first.fake.stop();
  FakeClock clock;
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock);

  auto failed = reviewer.authenticate("webhook-token");
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message.starts_with("cannot review the token: "));
  CHECK(failed.error().message.find("Transport") != std::string::npos);
  CHECK(reviewer.reviews() == 1);

  // An apiserver appears on that port: the same token, no time having passed, is reviewed.
  std::atomic<int> calls{0};
  httplib::Server second;
  // One request per connection: the client's pooled connection would hold stop() for the
  // server's keep-alive timeout (5 s).
  second.set_keep_alive_max_count(1);
  second.Post(kReviewPath, [&](const httplib::Request& req, httplib::Response& res) {
    ++calls;
    Json review = Json::parse(req.body);
    review["status"] = {
        {"authenticated", true}, {"user", {{"username", kWebhook}}}, {"audiences", {"pi0-fleet"}}};
    res.status = 201;
    res.set_content(review.dump(), "application/json");
  });
  REQUIRE(second.bind_to_port("127.0.0.1", port));
  std::thread serving([&] { second.listen_after_bind(); });
  while (!second.is_running())
    std::this_thread::sleep_for(1ms);
  CHECK(reviewer.authenticate("webhook-token").value_or("") == kWebhook);
  CHECK(calls == 1);
  CHECK(reviewer.reviews() == 2);
  second.stop();
  serving.join();
}

TEST_CASE("an answer that does not confirm the audience, or names no user, is not believed") {
  ReviewServer server;
  auto client = server.client();
  FakeClock clock;
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock);

  auto unaware = reviewer.review("no-audience");
  CHECK(unaware.verdict == TokenVerdict::kRejected);
  CHECK(unaware.reason ==
        "the apiserver did not confirm the token's audience (asked for pi0-fleet, answered [])");
  auto elsewhere = reviewer.review("wrong-audience");
  CHECK(elsewhere.verdict == TokenVerdict::kRejected);
  CHECK(elsewhere.reason ==
        "the apiserver did not confirm the token's audience (asked for "
        "pi0-fleet, answered [\"elsewhere\"])");
  CHECK(elsewhere.user.empty());

  // Authenticated without a user is a broken answer: unavailable, and asked again next time.
  auto nobody = reviewer.review("no-user");
  CHECK(nobody.verdict == TokenVerdict::kUnavailable);
  CHECK(server.calls == 3);
  CHECK(reviewer.review("no-user").verdict == TokenVerdict::kUnavailable);
  CHECK(server.calls == 4);

  // Without audiences of its own the reviewer asks for none and checks none.
  TokenReviewer anyAudience(*client, {}, 60s, clock);
  CHECK(anyAudience.review("no-audience").verdict == TokenVerdict::kAuthenticated);
  CHECK_FALSE(server.lastBody()["spec"].contains("audiences"));
}

TEST_CASE("a full cache drops the expired answers first, then the oldest") {
  ReviewServer server;
  auto client = server.client();
  FakeClock clock;
  // Four entries rather than the default 1,024: each review costs the stand-in ~40 ms (the
  // client's request goes out in two writes, and Nagle waits for the delayed ACK).
  static_assert(TokenReviewer::kCacheCapacity == 1024);
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock, 4);

  // The oldest entry, authenticated for 60 s, then three rejections (5 s): full.
  REQUIRE(reviewer.authenticate("webhook-token"));
  clock.advance(1ms);
  for (int i = 0; i < 3; ++i)
    REQUIRE_FALSE(reviewer.authenticate("bad-" + std::to_string(i)));
  REQUIRE(server.calls == 4);
  // Past the rejections' 5 s: a new answer drops the expired ones, not the oldest live one.
  clock.advance(6s);
  REQUIRE(reviewer.authenticate("user-first"));
  CHECK(server.calls == 5);
  REQUIRE(reviewer.authenticate("webhook-token"));
  CHECK(server.calls == 5);

  // Two live entries; two more fill the cache, each a millisecond younger than the last.
  for (int i = 0; i < 2; ++i) {
    clock.advance(1ms);
    REQUIRE(reviewer.authenticate("user-" + std::to_string(i)));
  }
  REQUIRE(server.calls == 7);
  for (int i = 0; i < 2; ++i)
    REQUIRE(reviewer.authenticate("user-" + std::to_string(i)));
  REQUIRE(server.calls == 7);  // all four held
  // None has expired: the next answer drops the oldest (webhook-token), and only it.
  REQUIRE(reviewer.authenticate("user-last"));
  CHECK(server.calls == 8);
  REQUIRE(reviewer.authenticate("user-first"));
  REQUIRE(reviewer.authenticate("user-0"));
  REQUIRE(reviewer.authenticate("user-1"));
  CHECK(server.calls == 8);
  REQUIRE(reviewer.authenticate("webhook-token"));
  CHECK(server.calls == 9);
}

TEST_CASE("several threads authenticating at once all get the answer") {
  ReviewServer server;
  auto client = server.client();
  TokenReviewer reviewer(*client, {"pi0-fleet"});
  std::atomic<int> right{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          const std::string token = i % 2 ? "webhook-token" : "user-" + std::to_string(t % 2);
          auto user = reviewer.authenticate(token);
          if (user &&
              *user == (i % 2 ? std::string(kWebhook) : "system:serviceaccount:ns:" + token)) {
            ++right;
          }
        }
      });
    }
  }
  CHECK(right == 8 * 50);
  // Three tokens: each reviewed at least once, and at most once per thread that missed it.
  CHECK(server.calls >= 3);
  CHECK(server.calls <= 3 * 8);
}

TEST_CASE(
    "BearerAuthorizer: 401 without a valid token, 403 off the list, 503 when it cannot tell") {
  ReviewServer server;
  auto client = server.client();
  FakeClock clock;
  TokenReviewer reviewer(*client, {"pi0-fleet"}, 60s, clock);
  BearerAuthorizer authorizer(reviewer, {kWebhook, "system:serviceaccount:pi0-system:pi0-cli"});

  struct Row {
    std::string header;
    int status;
    std::string message, user;
  };
  const std::string other = "system:serviceaccount:ns:user-x";
  for (const Row& row : std::vector<Row>{
           {"", 401, "missing bearer token", ""},
           {"Basic dXNlcjpwYXNz", 401, "missing bearer token", ""},
           {"Bearer", 401, "missing bearer token", ""},
           {"Bearer a b", 401, "missing bearer token", ""},
           {"Bearer garbage", 401, "token not authenticated: invalid bearer token", ""},
           {"Bearer wrong-audience", 401,
            "token not authenticated: the apiserver did not confirm the token's audience (asked "
            "for pi0-fleet, answered [\"elsewhere\"])",
            ""},
           {"Bearer user-x", 403, "user " + other + " may not read the fleet view", other},
           {"Bearer webhook-token", 200, "", kWebhook},
           {"bearer  webhook-token ", 200, "", kWebhook},
       }) {
    CAPTURE(row.header);
    const BearerCheck check = authorizer.check(row.header);
    CHECK(check.status == row.status);
    CHECK(check.message == row.message);
    CHECK(check.user == row.user);
  }
  CHECK(server.calls == 4);  // the malformed headers never reached the apiserver

  server.failing = true;
  const BearerCheck down = authorizer.check("Bearer user-y");
  CHECK(down.status == 503);
  CHECK(down.message.starts_with("cannot review the token: "));
  CHECK(down.user.empty());
  // The answers already known still count while the apiserver fails.
  CHECK(authorizer.check("Bearer webhook-token").status == 200);

  // The wording of the 403 is the caller's; an empty list admits nobody.
  BearerAuthorizer metrics(reviewer, {}, "scrape the metrics");
  const BearerCheck nobody = metrics.check("Bearer webhook-token");
  CHECK(nobody.status == 403);
  CHECK(nobody.message == std::string("user ") + kWebhook + " may not scrape the metrics");
}

namespace {

// GET /fleet guarded by `authorizer`, as the operator would serve it.
void fleetRoute(net::Routes& routes, BearerAuthorizer& authorizer) {
  routes.get("/fleet", [&authorizer](const net::HttpRequest& req) {
    const BearerCheck check = authorizer.check(req.authorization);
    if (check.status != 200) return net::HttpResponse{check.status, check.message + "\n"};
    return net::HttpResponse{200, "fleet for " + check.user + "\n"};
  });
}

}  // namespace

TEST_CASE("the Authorization header reaches the handler through HttpServer and HttpsServer") {
  ReviewServer server;
  auto client = server.client();
  TokenReviewer reviewer(*client, {"pi0-fleet"});
  BearerAuthorizer authorizer(reviewer, {kWebhook});

  // Each server is asked the same four questions; the answers say what the handler saw.
  const auto ask = [](httplib::ClientImpl& c) {
    auto none = c.Get("/fleet");
    REQUIRE(none);
    CHECK(none->status == 401);
    CHECK(none->body == "missing bearer token\n");
    auto garbage = c.Get("/fleet", {{"Authorization", "Bearer garbage"}});
    REQUIRE(garbage);
    CHECK(garbage->status == 401);
    CHECK(garbage->body == "token not authenticated: invalid bearer token\n");
    auto other = c.Get("/fleet", {{"Authorization", "Bearer user-x"}});
    REQUIRE(other);
    CHECK(other->status == 403);
    auto admitted = c.Get("/fleet", {{"Authorization", "bearer webhook-token"}});
    REQUIRE(admitted);
    CHECK(admitted->status == 200);
    CHECK(admitted->body == std::string("fleet for ") + kWebhook + "\n");
  };

  SUBCASE("HttpServer (cpp-httplib)") {
    auto http = net::HttpServer::create({"test", {"127.0.0.1", 0}, 2},
                                        [&](net::Routes& r) { fleetRoute(r, authorizer); });
    REQUIRE(http);
    std::thread serving([&] { (*http)->run(); });
    httplib::ClientImpl c("127.0.0.1", (*http)->port());
    ask(c);
    (*http)->stop();
    serving.join();
  }
  SUBCASE("HttpsServer (Beast)") {
    const auto now = std::chrono::system_clock::now();
    auto ca = certs::makeCa("pi0-test-ca", 24h, now);
    REQUIRE(ca);
    auto serving = certs::makeServing(*ca, {"localhost"}, {"127.0.0.1"}, 24h, now);
    REQUIRE(serving);
    TempDir dir;
    net::HttpsServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.certFile = dir.write("tls.crt", serving->certificate);
    options.keyFile = dir.write("tls.key", serving->key);
    options.threads = 2;
    auto https =
        net::HttpsServer::create(options, [&](net::Routes& r) { fleetRoute(r, authorizer); });
    REQUIRE_MESSAGE(https.has_value(), (https ? "" : https.error().message));
    (*https)->start();
    const auto caFile = dir.write("ca.crt", ca->certificate);
    httplib::SSLClient c("127.0.0.1", (*https)->port());
    c.set_ca_cert_path(caFile.c_str());
    c.enable_server_certificate_verification(true);
    ask(c);
    (*https)->stop();
  }
}
