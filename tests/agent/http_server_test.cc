#include <doctest/doctest.h>

#include <httplib.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/collector.h"
#include "agent/http_server.h"
#include "fakes/fake_sampler.h"

using namespace pi0;

TEST_CASE("the endpoints answer with the right status and content type") {
  agent::AgentMetrics metrics("test");
  auto collector = std::move(*agent::Collector::create({"node-h", 8, 1.0, {}, {}}, metrics));
  auto fake = std::make_unique<testing::FakeSampler>("fake");
  auto* fakePtr = fake.get();
  collector->addSource(std::move(fake));
  std::atomic<bool> alive{true};
  auto server = agent::HttpServer::create({"127.0.0.1", 0}, *collector, metrics,
                                          [&] { return alive.load(); });
  REQUIRE(server);
  // Stops and joins the server however the test case ends, a failed REQUIRE included.
  struct Running {
    agent::HttpServer& server;
    std::thread thread;
    ~Running() {
      server.stop();
      thread.join();
    }
  } running{**server, std::thread([&] { (*server)->run(); })};
  httplib::Client client("127.0.0.1", (*server)->port());

  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK(ready->body == "window 0% full\n");

  substrates::Clock::time_point now{};
  for (int i = 0; i < 8; ++i) {
    fakePtr->push(substrates::Sample{{{"cpu", 0.5}, {"disk", 0.25}}, {}});
    now += std::chrono::seconds(1);
    collector->step(now, std::chrono::system_clock::now());
  }
  CHECK(client.Get("/readyz")->status == 200);

  auto m = client.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(m->body.find("pi0_node_gate_lambda_int{signal=\"cpu\"} 0.5") != std::string::npos);

  auto fp = client.Get("/fingerprint");
  REQUIRE(fp);
  CHECK(fp->get_header_value("Content-Type") == "application/json");
  auto json = nlohmann::json::parse(fp->body);
  CHECK(json["node"] == "node-h");
  CHECK(json["signals"]["cpu"]["gates"]["isolation"].get<double>() == doctest::Approx(0.5));
  // Spectra and entropy only when asked for.
  CHECK_FALSE(json["signals"]["cpu"].contains("spectrum"));
  CHECK_FALSE(json["signals"]["cpu"].contains("entropy"));
  auto spectra = client.Get("/fingerprint?detail=spectra");
  REQUIRE(spectra);
  CHECK(spectra->status == 200);
  auto withSpectra = nlohmann::json::parse(spectra->body);
  CHECK(withSpectra["signals"]["cpu"]["spectrum"].size() == 4);
  CHECK(withSpectra["signals"]["cpu"].contains("entropy"));
  auto resources = client.Get("/fingerprint?detail=resources");
  REQUIRE(resources);
  CHECK(resources->status == 200);
  auto onlyResources = nlohmann::json::parse(resources->body);
  CHECK(onlyResources["signals"].contains("cpu"));
  CHECK(onlyResources["signals"].size() < json["signals"].size());
  CHECK(client.Get("/fingerprint?detail=everything")->status == 400);

  CHECK(client.Get("/healthz")->status == 200);

  // Clients that keep their connections open cannot starve the probes: every response closes.
  std::vector<std::unique_ptr<httplib::Client>> pollers;
  for (int i = 0; i < 6; ++i) {
    pollers.push_back(std::make_unique<httplib::Client>("127.0.0.1", (*server)->port()));
    pollers.back()->set_keep_alive(true);
    auto r = pollers.back()->Get("/fingerprint");
    REQUIRE(r);
    CHECK(r->get_header_value("Connection") == "close");
  }
  httplib::Client probe("127.0.0.1", (*server)->port());
  probe.set_connection_timeout(1, 0);
  probe.set_read_timeout(1, 0);
  CHECK(probe.Get("/healthz")->status == 200);
  alive = false;
  CHECK(client.Get("/healthz")->status == 503);

  auto missing = client.Get("/nope");
  CHECK(missing->status == 404);
  CHECK(missing->body.find("/fingerprint") != std::string::npos);

  // A second server on the same port fails with a clear error.
  auto clash = agent::HttpServer::create({"127.0.0.1", (*server)->port()}, *collector, metrics,
                                         [] { return true; });
  REQUIRE_FALSE(clash);
  CHECK(clash.error().message.find("cannot listen") != std::string::npos);
}
