#include <doctest/doctest.h>

#include "stability/health.h"

using namespace pi0::stability;
using std::chrono::seconds;

namespace {
const WallClock::time_point t0 = WallClock::time_point{} + std::chrono::hours(24 * 365 * 50);

PodSample pod(const std::string& uid, bool ready, int restarts = 0) {
  return PodSample{uid, ready, restarts};
}

ObserveOptions pi0Transition(bool on = true) {
  ObserveOptions options;
  options.pi0Transition = on;
  return options;
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
  h.lastObserved = t0;  // what the operator reads back from a Channel's status (healthOf): a time,
                        // no per-pod baseline
  auto o = observe(h, {pod("a", true, 7)}, 1, t0 + seconds(5));
  CHECK(o.newRestarts == 0);
  o = observe(o.health, {pod("a", true, 8)}, 1, t0 + seconds(10));
  CHECK(o.newRestarts == 1);
}

TEST_CASE("Pi0's own restore is no outage: the same restore with and without pi0Transition") {
  // The channel was shut down (nothing desired); at t0+10 s Pi0 restores it to 3 replicas. The
  // pods become ready over 40 s: one at +20, two at +30 (where c restarts once), all three at +50.
  struct Look {
    int at;
    int desired;
    std::vector<PodSample> pods;
  };
  const std::vector<Look> looks = {
      {0, 0, {}},
      {10, 3, {pod("a", false), pod("b", false), pod("c", false)}},
      {20, 3, {pod("a", true), pod("b", false), pod("c", false)}},
      {30, 3, {pod("a", true), pod("b", true), pod("c", false, 1)}},
      {50, 3, {pod("a", true), pod("b", true), pod("c", true, 1)}},
  };
  // Without the flag, with a = 1 − e^(−10/600) = 0.0165285 and a₂ = 1 − e^(−20/600) = 0.0327839:
  //   +10: 1 + a(0 − 1) = 0.983471 (outage from +10)
  //   +20: 0.983471 + a(1/3 − 0.983471) = 0.972726
  //   +30: (0.972726 + a(2/3 − 0.972726)) · 0.95 = 0.919284 (c's restart)
  //   +50: 0.919284 + a₂(1 − 0.919284) = 0.921930; one outage of 40 s: recovery 1/(1 + 40/60) = 0.6
  // With it: reliability stays 1, no outage, no MTTR, recovery 1.
  struct Expected {
    double reliability;
    bool inOutage;
  };
  const std::vector<Expected> without = {
      {1.0, false}, {0.983471, true}, {0.972726, true}, {0.919284, true}, {0.921930, false}};
  for (const bool transition : {false, true}) {
    CAPTURE(transition);
    ChannelHealth h;
    Observation o;
    for (std::size_t i = 0; i < looks.size(); ++i) {
      CAPTURE(looks[i].at);
      // The flag is set from the restore on; the first look is of the channel shut down.
      o = observe(h, looks[i].pods, looks[i].desired, t0 + seconds(looks[i].at),
                  pi0Transition(transition && i > 0));
      h = o.health;
      if (transition) {
        CHECK(h.reliability == 1.0);
        CHECK_FALSE(h.notReadySince);
      } else {
        CHECK(h.reliability == doctest::Approx(without[i].reliability).epsilon(1e-5));
        CHECK(h.notReadySince.has_value() == without[i].inOutage);
      }
    }
    // The real ready share is still reported: all 3 at the end.
    CHECK(o.readyShare == 1.0);
    if (transition) {
      CHECK(h.outages == 0);
      CHECK_FALSE(h.meanTimeToRecoverSeconds);
      CHECK(o.terms.recovery == 1.0);
      CHECK(o.terms.reliability == 1.0);
    } else {
      CHECK(h.outages == 1);
      CHECK(h.meanTimeToRecoverSeconds == doctest::Approx(40));
      CHECK(o.terms.recovery == doctest::Approx(0.6));
    }
  }
}

TEST_CASE("during a transition reliability may rise; an outage from before it keeps counting") {
  // Reliability 0.8, one of three ready, 10 s under the flag: the shortfall does not count, the
  // update sees a full share: 0.8 + (1 − e^(−10/600))(1 − 0.8) = 0.803306.
  ChannelHealth h;
  h.reliability = 0.8;
  h.lastObserved = t0;
  h.restartsKnown = true;
  auto o = observe(h, {pod("a", true), pod("b", false), pod("c", false)}, 3, t0 + seconds(10),
                   pi0Transition());
  CHECK(o.health.reliability == doctest::Approx(0.803306).epsilon(1e-5));
  CHECK(o.readyShare == doctest::Approx(1.0 / 3));
  CHECK_FALSE(o.health.notReadySince);

  // An outage that began before Pi0 acted: at +10 one of three is not ready (no flag):
  // 1 + a(2/3 − 1) = 0.994490 with a = 1 − e^(−10/600). Pi0 steps in at +20 with the same
  // shortfall: the outage goes on and lowers reliability as before: 0.994490 + a(2/3 − 0.994490)
  // = 0.989072. All ready at +40: one outage of 30 s, reliability 0.989072 + (1 −
  // e^(−20/600))(1 − 0.989072) = 0.989430.
  ChannelHealth g;
  auto p = observe(g, {pod("a", true), pod("b", true), pod("c", true)}, 3, t0);
  p = observe(p.health, {pod("a", true), pod("b", true), pod("c", false)}, 3, t0 + seconds(10));
  CHECK(p.health.notReadySince == t0 + seconds(10));
  CHECK(p.health.reliability == doctest::Approx(0.994490).epsilon(1e-5));
  p = observe(p.health, {pod("a", true), pod("b", true), pod("c", false)}, 3, t0 + seconds(20),
              pi0Transition());
  CHECK(p.health.notReadySince == t0 + seconds(10));
  CHECK(p.health.reliability == doctest::Approx(0.989072).epsilon(1e-5));
  p = observe(p.health, {pod("a", true), pod("b", true), pod("c", true)}, 3, t0 + seconds(40),
              pi0Transition());
  CHECK_FALSE(p.health.notReadySince);
  CHECK(p.health.outages == 1);
  CHECK(p.health.meanTimeToRecoverSeconds == doctest::Approx(30));
  CHECK(p.health.reliability == doctest::Approx(0.989430).epsilon(1e-5));
}
