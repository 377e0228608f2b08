#include <doctest/doctest.h>

#include "stability/health.h"

using namespace pi0::stability;
using std::chrono::seconds;

namespace {
const WallClock::time_point t0 = WallClock::time_point{} + std::chrono::hours(24 * 365 * 50);

PodSample pod(const std::string& uid, bool ready, int restarts = 0) {
  return PodSample{uid, ready, restarts};
}
}  // namespace

TEST_CASE("pods as the API serves them") {
  const auto ready = nlohmann::json::parse(R"({
    "metadata": {"uid": "u1"},
    "status": {"phase": "Running",
               "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
               "containerStatuses": [{"restartCount": 2}, {"restartCount": 1}]}})");
  auto s = podSample(ready);
  REQUIRE(s);
  CHECK(s->uid == "u1");
  CHECK(s->ready);
  CHECK(s->restarts == 3);
  auto pending = podSample(
      nlohmann::json::parse(R"({"metadata": {"uid": "u2"}, "status": {"phase": "Pending"}})"));
  REQUIRE(pending);
  CHECK_FALSE(pending->ready);
  CHECK_FALSE(
      podSample(nlohmann::json::parse(R"({"metadata": {"uid": "u3", "deletionTimestamp": "x"}})")));
  CHECK_FALSE(podSample(
      nlohmann::json::parse(R"({"metadata": {"uid": "u4"}, "status": {"phase": "Failed"}})")));
  // Garbage in the status does not throw.
  auto odd = podSample(
      nlohmann::json::parse(R"({"status": {"conditions": "yes", "containerStatuses": [7]}})"));
  REQUIRE(odd);
  CHECK_FALSE(odd->ready);
}

TEST_CASE("an outage and its recovery: MTTR, recovery term, reliability") {
  ChannelHealth h;
  // First look: all 2 ready; restarts from before Pi0 do not count.
  auto o = observe(h, {pod("a", true, 5), pod("b", true)}, 2, t0);
  CHECK(o.newRestarts == 0);
  CHECK(o.readyShare == 1.0);
  CHECK(o.health.reliability == 1.0);
  CHECK(o.terms.recovery == 1.0);  // no outage yet
  // 60 s later one pod is not ready and restarted once: an outage begins.
  o = observe(o.health, {pod("a", false, 6), pod("b", true)}, 2, t0 + seconds(60));
  CHECK(o.newRestarts == 1);
  CHECK(o.readyShare == 0.5);
  CHECK(o.health.notReadySince == t0 + seconds(60));
  // r = (1 + (1 − e^(−60/600))(0.5 − 1)) · 0.95 = (1 − 0.5·0.0951626) · 0.95 = 0.904798
  CHECK(o.health.reliability == doctest::Approx(0.904798).epsilon(1e-5));
  // Ready again 120 s later: one outage of 120 s; recovery = 1 / (1 + 120/60) = 1/3.
  o = observe(o.health, {pod("a", true, 6), pod("b", true)}, 2, t0 + seconds(180));
  CHECK(o.health.outages == 1);
  CHECK(o.health.meanTimeToRecoverSeconds == doctest::Approx(120));
  CHECK(o.terms.recovery == doctest::Approx(1.0 / 3));
  CHECK_FALSE(o.health.notReadySince);
  // A second outage of 60 s: mean (120 + 60) / 2 = 90 s; recovery 1 / 2.5 = 0.4.
  o = observe(o.health, {pod("a", true), pod("c", false)}, 2, t0 + seconds(200));
  o = observe(o.health, {pod("a", true), pod("c", true)}, 2, t0 + seconds(260));
  CHECK(o.health.meanTimeToRecoverSeconds == doctest::Approx(90));
  CHECK(o.terms.recovery == doctest::Approx(0.4));
}

TEST_CASE("a replaced pod brings its restarts; nothing desired is no outage") {
  ChannelHealth h;
  auto o = observe(h, {pod("a", true)}, 1, t0);
  o = observe(o.health, {pod("new", true, 2)}, 1, t0 + seconds(1));
  CHECK(o.newRestarts == 2);
  o = observe(o.health, {}, 0, t0 + seconds(2));  // shut down on purpose
  CHECK(o.readyShare == 1.0);
  CHECK_FALSE(o.health.notReadySince);
}

TEST_CASE("a state read back from the status counts no old restarts as new") {
  ChannelHealth h;
  h.lastObserved = t0;  // what healthFromStatus gives: a time, no per-pod baseline
  auto o = observe(h, {pod("a", true, 7)}, 1, t0 + seconds(5));
  CHECK(o.newRestarts == 0);
  o = observe(o.health, {pod("a", true, 8)}, 1, t0 + seconds(10));
  CHECK(o.newRestarts == 1);
}
