// Leader election (kube/leader_election.h) against FakeApiServer's stand-in Lease API.
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
#include "kube/leader_election.h"

using namespace pi0;
using namespace pi0::kube;
using namespace pi0::testing;

namespace {

// A Lease endpoint that stores one Lease with optimistic concurrency, and can be made to fail.
struct FakeLeases {
  std::mutex mu;
  Json lease;  // null until created
  int version = 0;
  std::atomic<bool> failing{false};

  void install(FakeApiServer& fake) {
    const std::string path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
    fake.server().Get(path + "/pi0", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu);
      if (failing) return status(res, 500, "InternalError", "etcd is down");
      if (lease.is_null()) return status(res, 404, "NotFound", "leases \"pi0\" not found");
      res.set_content(lease.dump(), "application/json");
    });
    fake.server().Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu);
      if (failing) return status(res, 500, "InternalError", "etcd is down");
      if (!lease.is_null()) return status(res, 409, "AlreadyExists", "exists");
      lease = Json::parse(req.body);
      lease["metadata"]["resourceVersion"] = std::to_string(++version);
      res.status = 201;
      res.set_content(lease.dump(), "application/json");
    });
    fake.server().Put(path + "/pi0", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu);
      if (failing) return status(res, 500, "InternalError", "etcd is down");
      auto body = Json::parse(req.body);
      if (body["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"]) {
        return status(res, 409, "Conflict", "the object has been modified");
      }
      lease = body;
      lease["metadata"]["resourceVersion"] = std::to_string(++version);
      res.set_content(lease.dump(), "application/json");
    });
  }

  std::string holder() {
    std::lock_guard lock(mu);
    return lease.is_null() ? "" : lease["spec"].value("holderIdentity", "");
  }
};

LeaderElectionConfig fastElection(const std::string& identity) {
  LeaderElectionConfig config;
  config.leaseNamespace = "ns";
  config.leaseName = "pi0";
  config.identity = identity;
  config.leaseDuration = std::chrono::seconds(3);
  config.renewDeadline = std::chrono::seconds(2);
  config.retryPeriod = std::chrono::seconds(1);
  return config;
}

}  // namespace

TEST_CASE("a leader that cannot renew stops its work within the renew deadline") {
  FakeApiServer fake;
  FakeLeases leases;
  leases.install(fake);
  fake.start();
  auto client = clientFor(fake);
  auto elector = LeaderElector::create(*client, fastElection("me"));
  REQUIRE(elector);
  std::atomic<bool> leading{false};
  std::atomic<bool> stoppedLeading{false};
  std::atomic<bool> result{true};
  std::jthread candidate([&](std::stop_token stop) {
    result = (*elector)->run(stop, [&](std::stop_token lost) {
      leading = true;
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      cv.wait(lock, lost, [] { return false; });
      stoppedLeading = true;
    });
  });
  for (int i = 0; i < 1000 && !leading; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(leading);
  CHECK((*elector)->isLeader());
  CHECK(leases.holder() == "me");

  leases.failing = true;  // the apiserver answers 500 from now on
  candidate.join();       // run() returns once the work has stopped
  CHECK(stoppedLeading);
  CHECK_FALSE(result);  // lost, not a clean stop
  CHECK_FALSE((*elector)->isLeader());
}

TEST_CASE("a second candidate waits while the lease is renewed; a clean stop hands it over") {
  FakeApiServer fake;
  FakeLeases leases;
  leases.install(fake);
  fake.start();
  auto client = clientFor(fake);
  auto first = LeaderElector::create(*client, fastElection("first"));
  auto second = LeaderElector::create(*client, fastElection("second"));
  REQUIRE(first);
  REQUIRE(second);
  std::atomic<int> leaders{0};
  std::atomic<bool> secondLed{false};
  auto work = [&](std::atomic<bool>* flag) {
    return [&, flag](std::stop_token lost) {
      ++leaders;
      if (flag != nullptr) *flag = true;
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      cv.wait(lock, lost, [] { return false; });
      --leaders;
    };
  };
  std::jthread a([&](std::stop_token stop) { (*first)->run(stop, work(nullptr)); });
  for (int i = 0; i < 1000 && leases.holder() != "first"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(leases.holder() == "first");
  std::jthread b([&](std::stop_token stop) { (*second)->run(stop, work(&secondLed)); });
  // Longer than the lease duration: the first keeps renewing, so the second must not lead.
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  CHECK(leaders == 1);
  CHECK_FALSE(secondLed);
  CHECK((*second)->observedHolder() == "first");

  a.request_stop();  // clean stop: the lease is released
  a.join();
  for (int i = 0; i < 1000 && !secondLed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(secondLed);
  CHECK(leases.holder() == "second");
  CHECK(leaders == 1);
}

TEST_CASE("a lease held by another is taken a lease duration after the first look, on any clock") {
  // At the clock's epoch (a machine that has just booted) and far from it: the countdown starts
  // at the candidate's first look, wherever its clock stands.
  for (const auto start : {Clock::time_point{}, Clock::time_point{} + std::chrono::hours(1000)}) {
    CAPTURE(start.time_since_epoch().count());
    FakeClock clock(start);
    FakeApiServer fake;
    FakeLeases leases;
    leases.install(fake);
    // "other" holds the lease for 3 s and never renews it.
    leases.lease = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", "pi0"}, {"namespace", "ns"}, {"resourceVersion", "1"}}},
                    {"spec",
                     {{"holderIdentity", "other"},
                      {"leaseDurationSeconds", 3},
                      {"renewTime", "2024-01-01T00:00:00.000000Z"}}}};
    leases.version = 1;
    fake.start();
    auto client = clientFor(fake);
    auto elector = LeaderElector::create(*client, fastElection("me"), clock);
    REQUIRE(elector);
    std::jthread candidate([&](std::stop_token stop) {
      (*elector)->run(stop, [](std::stop_token lost) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait(lock, lost, [] { return false; });
      });
    });
    auto looks = [&] {
      int n = 0;
      for (const auto& r : fake.requests())
        n += r.method == "GET" ? 1 : 0;
      return n;
    };
    // Looks at +0, +1.2 s and +2.4 s find the lease still held: the candidate goes back to
    // sleep (a retry sleeps 1 to 1.2 s, so steps of 1.2 s wake it every time).
    for (int look = 1; look <= 3; ++look) {
      CAPTURE(look);
      for (int i = 0; i < 1000 && looks() < look; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      REQUIRE(looks() == look);
      REQUIRE(clock.awaitSleepers(1));
      CHECK(leases.holder() == "other");
      CHECK_FALSE((*elector)->isLeader());
      clock.advance(std::chrono::milliseconds(1200));
    }
    // The look at +3.6 s finds it expired and takes it.
    for (int i = 0; i < 1000 && leases.holder() != "me"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(leases.holder() == "me");
    candidate.request_stop();
    candidate.join();
  }
}
