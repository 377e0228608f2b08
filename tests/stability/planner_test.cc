// The planner (stability/planner.h): shutdown plans, the stability trigger and recovery, with
// values computed by hand.
#include <doctest/doctest.h>

#include <chrono>
#include <random>

#include "stability/graph.h"
#include "stability/levels.h"
#include "stability/operators.h"
#include "stability/planner.h"

using namespace pi0::stability;
using std::chrono::seconds;

namespace {
std::vector<Level> fourLevels() {
  return {{"normal", 0.7}, {"elevated", 0.8}, {"high", 0.9}, {"critical", std::nullopt}};
}
}  // namespace

namespace {

PlannedChannel channel(const std::string& name, double cpoValue,
                       ChannelState state = ChannelState::kActive,
                       std::vector<std::string> deps = {}, bool critical = false) {
  PlannedChannel c;
  c.ref = {"shop", name};
  c.cpo = cpoValue;
  c.state = state;
  c.critical = critical;
  for (const auto& d : deps)
    c.dependsOn.push_back({"shop", d});
  return c;
}

MatrixSpec shopMatrix() {
  MatrixSpec m;
  m.name = "default";
  m.levels = fourLevels();
  m.rows = {
      {{"shop", "batch"},
       false,
       {{"elevated", Action::kDegrade, 0}, {"high", Action::kShutdown, 0}}},
      {{"shop", "recs"},
       false,
       {{"elevated", Action::kDegrade, 1}, {"high", Action::kShutdown, 1}}},
      {{"shop", "web"}, false, {{"critical", Action::kDegrade, 0}}},
      {{"shop", "db"}, true, {}},
  };
  return m;
}

// "Degrade batch, Shutdown recs": the steps of a plan, in order.
std::string describe(const Plan& plan) {
  std::string out;
  for (const auto& s : plan.steps) {
    out += (out.empty() ? "" : ", ") + std::string(actionName(s.action)) + " " + s.channel.name;
  }
  return out;
}

}  // namespace

TEST_CASE("shutdown plans: matrix × load → ordered actions") {
  const MatrixSpec m = shopMatrix();
  // web → api → db (a critical row). api and extra are unlisted: GDO degrades them when their CPO
  // (0.7, 0.6) is below the load, lowest first.
  const std::vector<PlannedChannel> channels = {channel("batch", 0.3),
                                                channel("recs", 0.5),
                                                channel("web", 0.8, ChannelState::kActive, {"api"}),
                                                channel("api", 0.7, ChannelState::kActive, {"db"}),
                                                channel("db", 0.9),
                                                channel("extra", 0.6)};
  struct Case {
    int level;
    double load;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {0, 0.5, ""},
      {1, 0.75,
       "Degrade batch, Degrade recs, Degrade extra, Degrade api"},  // cells by order, then GDO
      {1, 0.55, "Degrade batch, Degrade recs"},  // extra's CPO 0.6 is above the load
      {2, 0.85, "Shutdown batch, Shutdown recs, Degrade extra, Degrade api"},
      {3, 0.95, "Shutdown batch, Shutdown recs, Degrade web, Degrade extra, Degrade api"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.level);
    PlanInput input{&m, channels, c.level, c.load};
    CHECK(planProblems(input).empty());
    CHECK(describe(planShutdown(input)) == c.expected);
  }
  // Already degraded channels get only what is left to do.
  auto partly = channels;
  partly[0].state = ChannelState::kInactive;
  partly[1].state = ChannelState::kDegraded;
  CHECK(describe(planShutdown(PlanInput{&m, partly, 2, 0.85})) ==
        "Shutdown recs, Degrade extra, Degrade api");
}

TEST_CASE("a channel is shut down only after its dependents; an active dependent blocks it") {
  MatrixSpec m;
  m.levels = fourLevels();
  // reports depends on warehouse; the matrix shuts warehouse down first by order, but its
  // dependent reports must go first.
  m.rows = {{{"shop", "warehouse"}, false, {{"high", Action::kShutdown, 0}}},
            {{"shop", "reports"}, false, {{"high", Action::kShutdown, 5}}}};
  std::vector<PlannedChannel> channels = {
      channel("warehouse", 0.4), channel("reports", 0.5, ChannelState::kActive, {"warehouse"})};
  auto plan = planShutdown(PlanInput{&m, channels, 2, 0.85});
  CHECK(describe(plan) == "Shutdown reports, Shutdown warehouse");

  // Only degraded at this level: reports stays active, so warehouse cannot be shut down.
  m.rows[1].cells = {{"high", Action::kDegrade, 0}};
  plan = planShutdown(PlanInput{&m, channels, 2, 0.85});
  CHECK(describe(plan) == "Degrade reports");
  REQUIRE(plan.waiting.size() == 1);
  CHECK(plan.waiting[0] ==
        "shutdown of shop/warehouse is blocked: shop/reports depends on it and stays active");
}

TEST_CASE("critical channels and their dependencies are never touched") {
  MatrixSpec m;
  m.levels = fourLevels();
  m.rows = {{{"shop", "cache"}, false, {{"elevated", Action::kShutdown, 0}}}};
  // checkout is critical and depends on cache: the cell for cache is ignored.
  const std::vector<PlannedChannel> channels = {
      channel("cache", 0.1), channel("checkout", 0.9, ChannelState::kActive, {"cache"}, true)};
  const PlanInput input{&m, channels, 3, 0.99};
  CHECK(planShutdown(input).steps.empty());
  CHECK(targets(input).at("shop/cache") == ChannelState::kActive);
}

TEST_CASE("a channel none of whose targets exists gets no step in either direction") {
  MatrixSpec m;
  m.levels = fourLevels();
  m.rows = {{{"shop", "ghost"}, false, {{"elevated", Action::kShutdown, 0}}},
            {{"shop", "cache"}, false, {{"elevated", Action::kShutdown, 1}}}};
  auto ghost = channel("ghost", 0.1);
  ghost.absent = true;
  const PlanInput high{&m, {ghost, channel("cache", 0.2), channel("extra", 0.05)}, 3, 0.99};
  CHECK(describe(planShutdown(high)) == "Shutdown cache, Degrade extra");
  CHECK(targets(high).at("shop/ghost") == ChannelState::kActive);
  ghost.state = ChannelState::kInactive;
  CHECK(planRecovery(PlanInput{&m, {ghost}, 0, 0.1}).steps.empty());
}

TEST_CASE("cycles and unknown channels are problems") {
  MatrixSpec m = shopMatrix();
  const std::vector<PlannedChannel> channels = {channel("a", 0.1, ChannelState::kActive, {"b"}),
                                                channel("b", 0.1, ChannelState::kActive, {"a"})};
  const auto problems = planProblems(PlanInput{&m, channels, 0, 0});
  REQUIRE(problems.size() == 5);  // the cycle and the four rows naming channels that do not exist
  CHECK(problems[0] == "channels depend on each other in a cycle: shop/a -> shop/b -> shop/a");
  CHECK(problems[1] == "row names channel shop/batch, which does not exist");
}

TEST_CASE("the stability trigger shuts down the least reliable first, before the levels' actions") {
  MatrixSpec m = shopMatrix();
  m.stabilityThreshold = 0.5;
  auto flaky = channel("flaky", 0.6);
  flaky.reliability = 0.3;  // SAO 0.3 < 0.5
  auto batch = channel("batch", 0.3);
  const auto plan = planShutdown(PlanInput{&m, {batch, flaky}, 1, 0.75});
  CHECK(describe(plan) == "Shutdown flaky, Degrade batch");
  CHECK(plan.steps[0].reason.find("stability 0.300 is below the threshold 0.500") !=
        std::string::npos);
  CHECK(plan.stability.reachable);
  CHECK(plan.stability.sao == doctest::Approx(0.3));
  CHECK(plan.stability.bound == 1.0);  // nothing must stay up
  CHECK(plan.stability.explanation ==
        "stability 0.300 is below the threshold 0.500: shutting down the least reliable "
        "(shop/flaky) brings it to 1.000");
}

TEST_CASE("the stability trigger shuts nothing down when the threshold is out of reach") {
  MatrixSpec m = shopMatrix();  // db is a critical row
  m.stabilityThreshold = 0.9;
  auto db = channel("db", 0.9);
  db.reliability = 0.62;
  auto flaky = channel("flaky", 0.6);
  flaky.reliability = 0.3;
  auto batch = channel("batch", 0.3);
  batch.reliability = 0.9;
  // SAO = 0.62 · 0.3 · 0.9 = 0.1674. With flaky and batch shut down only db is left: 0.62 < 0.9.
  // Shutting them down cannot reach the threshold and only loses them.
  struct Case {
    int level;
    double threshold;
    std::string shutdown;
    bool reachable;
    std::string explanation;
  };
  const std::vector<Case> cases = {
      {0, 0.9, "", false,
       "stability 0.167 is below the threshold 0.900 and cannot reach it: the channels that must "
       "stay up (shop/db 0.620) bound it at 0.620; no channel is shut down for stability"},
      // At level 1 the matrix degrades batch and GDO flaky (CPO 0.6 < 0.75); the trigger adds
      // nothing.
      {1, 0.9, "Degrade batch, Degrade flaky", false,
       "stability 0.167 is below the threshold 0.900 and cannot reach it: the channels that must "
       "stay up (shop/db 0.620) bound it at 0.620; no channel is shut down for stability"},
      // Threshold 0.5: flaky alone suffices, 0.62 · 0.9 = 0.558 ≥ 0.5.
      {0, 0.5, "Shutdown flaky", true,
       "stability 0.167 is below the threshold 0.500: shutting down the least reliable "
       "(shop/flaky) brings it to 0.558"},
      // Threshold 0.1: already there.
      {0, 0.1, "", true, "stability 0.167 is at or above the threshold 0.100"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.level);
    CAPTURE(c.threshold);
    m.stabilityThreshold = c.threshold;
    const PlanInput input{&m, {db, flaky, batch}, c.level, 0.75};
    const auto shutdown = planShutdown(input);
    CHECK(describe(shutdown) == c.shutdown);
    CHECK(shutdown.stability.reachable == c.reachable);
    CHECK(shutdown.stability.bound == doctest::Approx(0.62));
    CHECK(shutdown.stability.sao == doctest::Approx(0.1674));
    CHECK(shutdown.stability.explanation == c.explanation);
    // Recovery plans carry the same outlook.
    const auto recovery = planRecovery(input);
    CHECK(recovery.stability.reachable == c.reachable);
    CHECK(recovery.stability.explanation == c.explanation);
  }
  // Once out of reach, nothing that stability would have shut down is kept down for it: a
  // channel shut down earlier comes back (flaky's target is Active at level 0).
  flaky.state = ChannelState::kInactive;
  m.stabilityThreshold = 0.9;
  // SAO now 0.62 · 0.9 = 0.558; bound still 0.62 < 0.9.
  const PlanInput after{&m, {db, flaky, batch}, 0, 0.5};
  CHECK(describe(planShutdown(after)).empty());  // the old rule shut down batch here
  CHECK(describe(planRecovery(after)) == "Restore flaky");
  CHECK_FALSE(planRecovery(after).stability.reachable);
}

TEST_CASE(
    "GDO decisions keep the level's hysteresis: degraded until the level falls to the first") {
  MatrixSpec m = shopMatrix();  // extra is not listed
  struct Case {
    int level;
    double load;
    ChannelState state;
    std::string shutdown;
    std::string recovery;
  };
  // extra's CPO is 0.6.
  const std::vector<Case> cases = {
      {1, 0.65, ChannelState::kActive, "Degrade extra", ""},  // a new pick: 0.6 < 0.65
      {1, 0.55, ChannelState::kActive, "", ""},               // not a new pick: 0.6 ≥ 0.55
      {1, 0.55, ChannelState::kDegraded, "", ""},  // kept (the old rule restored it here)
      {1, 0.65, ChannelState::kDegraded, "", ""},
      {2, 0.10, ChannelState::kDegraded, "", ""},  // any level above the first keeps it
      {0, 0.55, ChannelState::kDegraded, "", "Restore extra"},
      {0, 0.65, ChannelState::kDegraded, "", "Restore extra"},  // level 0: no GDO at all
  };
  for (const auto& c : cases) {
    CAPTURE(c.level);
    CAPTURE(c.load);
    CAPTURE(channelStateName(c.state));
    const PlanInput input{&m, {channel("extra", 0.6, c.state)}, c.level, c.load};
    CHECK(describe(planShutdown(input)) == c.shutdown);
    CHECK(describe(planRecovery(input)) == c.recovery);
  }

  // The load swings around extra's CPO at level 1 for a while; the operator takes every step the
  // planner gives (shutdown steps first, recovery when there are none). extra is degraded once and
  // never restored; when the level falls to 0 it is.
  ChannelState state = ChannelState::kActive;
  int degrades = 0;
  for (double load : {0.55, 0.62, 0.58, 0.65, 0.59, 0.61, 0.50, 0.70, 0.40}) {
    CAPTURE(load);
    const PlanInput input{&m, {channel("extra", 0.6, state)}, 1, load};
    const auto shutdown = planShutdown(input);
    for (const auto& step : shutdown.steps) {
      state = step.target;
      ++degrades;
    }
    if (shutdown.steps.empty()) {
      const auto recovery = planRecovery(input);
      CHECK(recovery.steps.empty());
      for (const auto& step : recovery.steps)
        state = step.target;
    }
    CHECK(targets(input).at("shop/extra") == (load > 0.6 || state == ChannelState::kDegraded
                                                  ? ChannelState::kDegraded
                                                  : ChannelState::kActive));
  }
  CHECK(degrades == 1);  // at 0.62
  CHECK(state == ChannelState::kDegraded);
  const auto back = planRecovery(PlanInput{&m, {channel("extra", 0.6, state)}, 0, 0.40});
  REQUIRE(back.steps.size() == 1);
  CHECK(back.steps[0].target == ChannelState::kActive);
}

TEST_CASE("recovery: highest CPO first, dependencies back and ready before dependents") {
  MatrixSpec m = shopMatrix();
  // Everything was shut down at level 3; the level fell to 0.
  std::vector<PlannedChannel> channels = {
      channel("batch", 0.3, ChannelState::kInactive), channel("recs", 0.5, ChannelState::kInactive),
      channel("web", 0.8, ChannelState::kDegraded, {"api"}),
      channel("api", 0.7, ChannelState::kActive, {"db"}), channel("db", 0.9)};
  channels[3].ready = false;  // api is not ready yet: web waits
  auto plan = planRecovery(PlanInput{&m, channels, 0, 0.4});
  CHECK(describe(plan) == "Restore recs, Restore batch");
  REQUIRE(plan.waiting.size() == 1);
  CHECK(plan.waiting[0] == "restore of shop/web waits for shop/api to be back and ready");
  channels[3].ready = true;
  plan = planRecovery(PlanInput{&m, channels, 0, 0.4});
  CHECK(describe(plan) == "Restore web, Restore recs, Restore batch");
  CHECK(plan.steps[0].target == ChannelState::kActive);

  // At level 1 the matrix still degrades batch and recs: they come back as Degraded.
  plan = planRecovery(PlanInput{&m, channels, 1, 0.72});
  CHECK(describe(plan) == "Restore web, Restore recs, Restore batch");
  CHECK(plan.steps[1].target == ChannelState::kDegraded);
}
