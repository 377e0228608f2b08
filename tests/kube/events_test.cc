// The event recorder (kube/events.h) against FakeApiServer: repeated events folded into one
// with a count, and the spam filter.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "fake_server_helpers.h"
#include "fakes/fake_apiserver.h"
#include "fakes/fake_clock.h"
#include "kube/client.h"
#include "kube/events.h"

using namespace pi0;
using namespace pi0::kube;
using namespace pi0::testing;

TEST_CASE("repeated events are folded into one Event with a count") {
  FakeApiServer fake;
  std::mutex mu;
  std::vector<Json> posted;
  std::vector<Json> patched;
  fake.server().Post("/api/v1/namespaces/ns/events",
                     [&](const httplib::Request& req, httplib::Response& res) {
                       std::lock_guard lock(mu);
                       posted.push_back(Json::parse(req.body));
                       res.status = 201;
                       res.set_content(req.body, "application/json");
                     });
  fake.server().Patch(R"(/api/v1/namespaces/ns/events/(.*))", [&](const httplib::Request& req,
                                                                  httplib::Response& res) {
    std::lock_guard lock(mu);
    CHECK(req.get_header_value("Content-Type") == "application/merge-patch+json");
    patched.push_back(Json::parse(req.body));
    res.set_content("{}", "application/json");
  });
  fake.start();
  auto client = clientFor(fake);
  {
    EventRecorder recorder(*client, "pi0-test", "replica-1");
    ObjectReference ref{"apps/v1", "Deployment", "ns", "web", "uid-1", "5"};
    recorder.record(ref, EventType::kNormal, "ScaledDown", "Scaled web from 3 to 1 replicas");
    recorder.record(ref, EventType::kNormal, "ScaledDown", "Scaled web from 3 to 1 replicas");
    recorder.record(ref, EventType::kNormal, "ScaledDown", "Scaled web from 3 to 1 replicas");
    recorder.record(ref, EventType::kWarning, "RestoreStalled",
                    "web has 0 of 3 ready replicas after 300 s");
    recorder.flush();
    CHECK(recorder.counters().created == 2);
    CHECK(recorder.counters().aggregated == 2);
  }
  std::lock_guard lock(mu);
  REQUIRE(posted.size() == 2);
  CHECK(posted[0]["involvedObject"]["name"] == "web");
  CHECK(posted[0]["involvedObject"]["uid"] == "uid-1");
  CHECK(posted[0]["type"] == "Normal");
  CHECK(posted[0]["count"] == 1);
  CHECK(posted[0]["source"]["component"] == "pi0-test");
  CHECK(posted[1]["type"] == "Warning");
  REQUIRE(patched.size() == 2);
  CHECK(patched[0]["count"] == 2);
  CHECK(patched[1]["count"] == 3);
}

TEST_CASE("the spam filter drops an object's events beyond a burst of 25") {
  FakeApiServer fake;
  std::atomic<int> posts{0};
  fake.server().Post("/api/v1/namespaces/ns/events",
                     [&](const httplib::Request& req, httplib::Response& res) {
                       ++posts;
                       res.status = 201;
                       res.set_content(req.body, "application/json");
                     });
  fake.start();
  auto client = clientFor(fake);
  EventRecorder recorder(*client, "pi0-test", "replica-1");
  ObjectReference ref{"v1", "ConfigMap", "ns", "noisy", "uid-2", ""};
  for (int i = 0; i < 40; ++i)
    recorder.record(ref, EventType::kNormal, "Tick", "tick " + std::to_string(i));
  recorder.flush();
  CHECK(posts == 25);
  CHECK(recorder.counters().dropped == 15);
}
