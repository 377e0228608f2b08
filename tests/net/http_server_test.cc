// net::HttpServer (cpp-httplib, hardened) with routes and the runner's probes.
#include "net/http_server.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <httplib.h>

#include "common/runner.h"

namespace pi0::net {

TEST_CASE("routes, probes, 404s that list the endpoints, one request per connection") {
  Probes probes;
  std::atomic<bool> synced{false};
  probes.addReadiness([&]() -> std::string { return synced ? "" : "caches not synced: nodes"; });
  auto server = HttpServer::create({"test", {"127.0.0.1", 0}, 2}, [&](Routes& r) {
    r.get("/metrics", [](const HttpRequest&) {
      return HttpResponse{200, "up 1\n", "text/plain; version=0.0.4"};
    });
    r.post("/echo", [](const HttpRequest& req) {
      return HttpResponse{201, std::string(req.body)};
    });
    r.get("/throw", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
    addProbes(r, probes);
  });
  REQUIRE(server);
  std::thread serving([&] { CHECK((*server)->run()); });
  httplib::Client client("127.0.0.1", (*server)->port());
  client.set_keep_alive(true);

  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK(ready->body == "caches not synced: nodes\n");
  CHECK(ready->get_header_value("Connection") == "close");
  synced = true;
  CHECK(client.Get("/readyz")->body == "ok\n");
  CHECK(client.Get("/healthz")->status == 200);
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body == "up 1\n");
  CHECK(metrics->get_header_value("Content-Type") == "text/plain; version=0.0.4");
  auto echo = client.Post("/echo", "hello", "text/plain");
  REQUIRE(echo);
  CHECK(echo->status == 201);
  CHECK(echo->body == "hello");
  auto missing = client.Get("/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->body == "not found: /nope (endpoints: /echo /healthz /metrics /readyz /throw)\n");
  auto thrown = client.Get("/throw");
  REQUIRE(thrown);
  CHECK(thrown->status == 500);
  CHECK(thrown->body == "internal error\n");

  // A busy port is an error at create(), which names it.
  auto clash = HttpServer::create({"metrics", {"127.0.0.1", (*server)->port()}, 1}, [](Routes&) {});
  REQUIRE_FALSE(clash);
  CHECK(clash.error().message ==
        "cannot listen on 127.0.0.1:" + std::to_string((*server)->port()) +
            " for metrics (address in use, or not an address of this host)");

  (*server)->stop();
  serving.join();
}

TEST_CASE("stop() before run() has begun listening still ends it") {
  for (int i = 0; i < 20; ++i) {
    auto server = HttpServer::create({"test", {"127.0.0.1", 0}, 1}, [](Routes&) {});
    REQUIRE(server);
    std::thread serving([&] { (*server)->run(); });
    (*server)->stop();  // may come before, during or after run() starts to listen
    serving.join();
  }
  auto server = HttpServer::create({"test", {"127.0.0.1", 0}, 1}, [](Routes&) {});
  REQUIRE(server);
  (*server)->stop();
  CHECK((*server)->run());  // returns at once
}

}  // namespace pi0::net
