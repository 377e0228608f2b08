// The stability math and the planner, with values computed by hand.
#include <doctest/doctest.h>

#include <chrono>
#include <random>

#include "stability/graph.h"
#include "stability/levels.h"
#include "stability/operators.h"
#include "stability/planner.h"

using namespace pi0::stability;
using std::chrono::seconds;

TEST_CASE("CPO and its terms") {
  // 0.4·0.5 + 0.4·0.9 + 0.2·0.5 = 0.2 + 0.36 + 0.1 = 0.66
  CHECK(cpo(Weights{}, Terms{0.5, 0.9, 0.5}) == doctest::Approx(0.66));
  CHECK(cpo(Weights{1, 1, 1}, Terms{1, 1, 1}) == 1.0);             // clipped
  CHECK(cpo(Weights{}, Terms{2, -1, 0}) == doctest::Approx(0.4));  // terms clipped first
  CHECK(throughputFromQuery(50, 200) == 0.25);
  CHECK(throughputFromQuery(500, 200) == 1.0);
  CHECK(throughputFromQuery(5, 0) == 0.0);
  CHECK(throughputFromReplicas(2, 4) == 0.5);
  CHECK(throughputFromReplicas(0, 0) == 0.0);
  CHECK(recoveryTerm(std::nullopt) == 1.0);
  CHECK(recoveryTerm(seconds(60)) == 0.5);    // 1 / (1 + 1)
  CHECK(recoveryTerm(seconds(180)) == 0.25);  // 1 / (1 + 3)
}

TEST_CASE("reliability: exponentially weighted ready share, lowered by restarts") {
  // One time constant at readiness 0 from 1: 1 + (1 − e⁻¹)(0 − 1) = e⁻¹ ≈ 0.3679.
  CHECK(updateReliability(1.0, 0.0, std::chrono::minutes(10), 0) ==
        doctest::Approx(0.367879).epsilon(1e-5));
  CHECK(updateReliability(0.5, 0.5, seconds(30), 0) == doctest::Approx(0.5));
  // Two restarts with penalty 0.05: 1 · 0.95² = 0.9025.
  CHECK(updateReliability(1.0, 1.0, seconds(1), 2) == doctest::Approx(0.9025));
  CHECK(failureProbability(0.9) == doctest::Approx(0.1));
}

namespace {
std::string join(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys)
    out += (out.empty() ? "" : ", ") + k;
  return out;
}

ChannelFacts facts(const std::string& key, double cpoValue, double reliability, bool active = true,
                   bool critical = false, double ready = 1.0) {
  ChannelFacts f;
  f.key = key;
  f.cpo = cpoValue;
  f.reliability = reliability;
  f.active = active;
  f.critical = critical;
  f.readyShare = ready;
  return f;
}
}  // namespace

TEST_CASE("SAO, availability and the system state") {
  // SAO = 0.9 · 0.8 (the shut-down channel does not count) = 0.72.
  const std::vector<ChannelFacts> cs = {facts("a", 0.5, 0.9), facts("b", 0.2, 0.8),
                                        facts("c", 0.3, 0.1, false)};
  CHECK(sao(cs) == doctest::Approx(0.72));
  CHECK(sao({}) == 1.0);
  // Weights: a critical channel 1 + 0.6 = 1.6, b 0.4, c 0.5 (shut down: h = 0).
  // A = (1.6·1 + 0.4·0.5 + 0.5·0) / (1.6 + 0.4 + 0.5) = 1.8 / 2.5 = 0.72.
  const std::vector<ChannelFacts> av = {facts("a", 0.6, 1, true, true, 1.0),
                                        facts("b", 0.4, 1, true, false, 0.5),
                                        facts("c", 0.5, 1, false)};
  CHECK(availability(av) == doctest::Approx(0.72));
  CHECK(systemState(0.72) == SystemState::kDegraded);
  CHECK(systemState(0.9) == SystemState::kRunning);
  CHECK(systemState(0.49) == SystemState::kCritical);
  CHECK(std::string(systemStateName(SystemState::kCritical)) == "Critical");
}

TEST_CASE("BAO partitions the buffer in proportion to CPO, water-filling over the caps") {
  auto a = facts("a", 0.8, 1);
  auto b = facts("b", 0.4, 1);
  b.bufferMax = Resources{std::nullopt, 100};
  auto c = facts("c", 0.6, 1, false);  // shut down: nothing, and its CPO does not count
  const auto shares = bao({a, b, c}, Resources{4000, 1000});
  REQUIRE(shares.size() == 3);
  // Σ CPO over the active = 1.2. cpu: a ⌊4000·0.8/1.2⌋ = ⌊2666.7⌋ = 2666, b ⌊1333.3⌋ = 1333.
  // memory: b's 333.3 is over its cap 100: b 100, and the 900 left all go to a.
  CHECK(shares[0].cpuMilli == 2666);
  CHECK(shares[1].cpuMilli == 1333);
  CHECK(shares[0].memoryBytes == 900);
  CHECK(shares[1].memoryBytes == 100);
  CHECK(shares[2].cpuMilli == 0);
  CHECK(shares[2].memoryBytes == 0);
  // A resource the total does not name is absent.
  CHECK_FALSE(bao({a}, Resources{1000, std::nullopt})[0].memoryBytes);

  struct Case {
    const char* name;
    std::vector<ChannelFacts> channels;
    int64_t total;
    std::vector<int64_t> expected;  // cpu shares
  };
  auto capped = [](ChannelFacts f, int64_t cpu) {
    f.bufferMax = Resources{cpu, std::nullopt};
    return f;
  };
  const std::vector<Case> cases = {
      // Equal CPOs split evenly (the old rule gave each of them all 3000): 1000 each.
      {"equal",
       {facts("a", 0.5, 1), facts("b", 0.5, 1), facts("c", 0.5, 1)},
       3000,
       {1000, 1000, 1000}},
      // 1000 / 3 = 333.3 each, floored: 999 in all, less than one unit short per channel.
      {"floored",
       {facts("a", 0.5, 1), facts("b", 0.5, 1), facts("c", 0.5, 1)},
       1000,
       {333, 333, 333}},
      // Two rounds: 0.5, 0.3, 0.2 of 1000 → 500, 300, 200; b's cap 100 binds. 900 over a and c
      // (0.7): a 642.9 is over its cap 600; c alone gets the 300 left.
      {"water-filling",
       {capped(facts("a", 0.5, 1), 600), capped(facts("b", 0.3, 1), 100), facts("c", 0.2, 1)},
       1000,
       {600, 100, 300}},
      // Every active CPO 0: equal shares, ⌊1001 / 2⌋ = 500.
      {"all zero", {facts("a", 0, 1), facts("b", 0, 1)}, 1001, {500, 500}},
      // A is capped at 100; what is left goes to the uncapped b, whose CPO is 0: equally among
      // the uncapped when their CPOs are all 0, so nothing stays in the pool.
      {"zero after caps", {capped(facts("a", 0.5, 1), 100), facts("b", 0, 1)}, 1000, {100, 900}},
      // A zero CPO beside a positive one gets nothing.
      {"zero beside positive", {facts("a", 0.5, 1), facts("b", 0, 1)}, 1000, {1000, 0}},
      // Every cap binds: each its cap, 700 stay in the pool.
      {"all capped",
       {capped(facts("a", 0.5, 1), 100), capped(facts("b", 0.5, 1), 200)},
       1000,
       {100, 200}},
      // A shut-down channel neither gets a share nor weighs in the others' split.
      {"shut down", {facts("a", 0.2, 1), facts("b", 0.9, 1, false)}, 1000, {1000, 0}},
  };
  for (const auto& row : cases) {
    CAPTURE(row.name);
    const auto got = bao(row.channels, Resources{row.total, std::nullopt});
    REQUIRE(got.size() == row.expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].cpuMilli == row.expected[i]);
    }
  }
}

TEST_CASE("BAO never hands out more than the total (random channels, fixed seed)") {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int> count(1, 8);
  std::uniform_int_distribution<int> coin(0, 3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int64_t> cpuTotal(0, 64000);
  std::uniform_int_distribution<int64_t> memTotal(0, int64_t{1} << 40);
  for (int round = 0; round < 2000; ++round) {
    CAPTURE(round);
    std::vector<ChannelFacts> cs;
    const int n = count(rng);
    for (int i = 0; i < n; ++i) {
      // CPO 0 a quarter of the time, shut down a quarter of the time, caps half the time.
      std::string key = "c";
      key += std::to_string(i);  // (not "c" + …: GCC 12 warns of a false -Wrestrict there)
      auto f = facts(key, coin(rng) == 0 ? 0.0 : unit(rng), 1, coin(rng) != 0);
      if (coin(rng) < 2) {
        f.bufferMax = Resources{static_cast<int64_t>(unit(rng) * 20000),
                                static_cast<int64_t>(unit(rng) * double(int64_t{1} << 38))};
      }
      cs.push_back(f);
    }
    const Resources total{cpuTotal(rng), memTotal(rng)};
    const auto shares = bao(cs, total);
    REQUIRE(shares.size() == cs.size());
    using Field = std::optional<int64_t> Resources::*;
    for (Field field : {&Resources::cpuMilli, &Resources::memoryBytes}) {
      const int64_t pool = *(total.*field);
      int64_t sum = 0;
      int64_t capSum = 0;
      int active = 0;
      bool someBelowCap = false;
      for (std::size_t i = 0; i < cs.size(); ++i) {
        const int64_t share = *(shares[i].*field);
        CHECK(share >= 0);
        sum += share;
        if (!cs[i].active) {
          CHECK(share == 0);
          continue;
        }
        ++active;
        const std::optional<int64_t> cap =
            cs[i].bufferMax ? (*cs[i].bufferMax).*field : std::nullopt;
        if (cap) {
          CHECK(share <= *cap);
          capSum += *cap;
        }
        if (!cap || share < *cap) someBelowCap = true;
        // Among channels below their caps, a higher CPO never gets less.
        for (std::size_t j = 0; j < i; ++j) {
          const std::optional<int64_t> capJ =
              cs[j].bufferMax ? (*cs[j].bufferMax).*field : std::nullopt;
          const int64_t shareJ = *(shares[j].*field);
          if (!cs[j].active || (capJ && shareJ >= *capJ) || (cap && share >= *cap)) continue;
          if (cs[i].cpo > cs[j].cpo) CHECK(share >= shareJ);
          if (cs[i].cpo < cs[j].cpo) CHECK(share <= shareJ);
        }
      }
      CHECK(sum <= pool);
      // The guarantee: while any active channel is below its cap, less than one unit per active
      // channel is lost to flooring; when every cap binds, each has its cap.
      if (someBelowCap) {
        CHECK(sum > pool - active);
      } else if (active > 0) {
        CHECK(sum == capSum);
      }
    }
  }
}

TEST_CASE("GDO and stability shutdowns pick in the right order") {
  auto listed = facts("listed", 0.1, 1);
  listed.listed = true;
  const std::vector<ChannelFacts> cs = {facts("x", 0.5, 1),
                                        facts("y", 0.3, 1),
                                        facts("z", 0.9, 1),
                                        listed,
                                        facts("crit", 0.1, 1, true, true),
                                        facts("off", 0.1, 1, false)};
  CHECK(join(gdo(cs, 0.85)) == "y, x");
  CHECK(gdo(cs, 0.2).empty());
  // SAO = 0.5 · 0.6 · 0.9 = 0.27 < 0.5: shut down the least reliable (0.5 → 0.54 ≥ 0.5).
  const std::vector<ChannelFacts> rel = {facts("p", 0.5, 0.5), facts("q", 0.5, 0.6),
                                         facts("r", 0.5, 0.9), facts("s", 0.5, 0.2, true, true)};
  // With the critical s (0.2) SAO = 0.054; shutting down all of p, q, r leaves s alone: 0.2 < 0.5.
  // The threshold cannot be reached, so nothing is shut down for it.
  CHECK(saoBound(rel) == doctest::Approx(0.2));
  CHECK(stabilityShutdowns(rel, 0.5).empty());
  // A bound exactly at the threshold is reachable: p (0.5) and s (critical, 0.5) give 0.25;
  // without p, 0.5.
  const std::vector<ChannelFacts> edge = {facts("p", 0.5, 0.5), facts("s", 0.5, 0.5, true, true)};
  CHECK(saoBound(edge) == doctest::Approx(0.5));
  CHECK(join(stabilityShutdowns(edge, 0.5)) == "p");
  const std::vector<ChannelFacts> rel2 = {facts("p", 0.5, 0.5), facts("q", 0.5, 0.6),
                                          facts("r", 0.5, 0.9)};
  CHECK(join(stabilityShutdowns(rel2, 0.5)) == "p");
  CHECK(stabilityShutdowns(rel2, 0.2).empty());
}

TEST_CASE("dependency graph: cycles, closure, dependents") {
  const DependencyGraph g = {{"web", {"api"}}, {"api", {"db"}}, {"db", {}}, {"batch", {}}};
  CHECK_FALSE(findCycle(g));
  CHECK(criticalClosure(g, {"api"}) == std::set<std::string>{"api", "db"});
  CHECK(dependentsOf(g, "db") == std::set<std::string>{"api", "web"});
  CHECK(dependenciesOf(g, "web") == std::set<std::string>{"api", "db"});
  const DependencyGraph cyclic = {{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}};
  auto cycle = findCycle(cyclic);
  REQUIRE(cycle);
  CHECK(describeCycle(*cycle) == "a -> b -> c -> a");
  CHECK(describeCycle(*findCycle({{"self", {"self"}}})) == "self -> self");
}

namespace {
std::vector<Level> fourLevels() {
  return {{"normal", 0.7}, {"elevated", 0.8}, {"high", 0.9}, {"critical", std::nullopt}};
}
}  // namespace

TEST_CASE("levels: up at once, down only after the dwell below the bound minus the margin") {
  const auto levels = fourLevels();
  CHECK(rawLevel(levels, 0.0) == 0);
  CHECK(rawLevel(levels, 0.7) == 0);
  CHECK(rawLevel(levels, 0.71) == 1);
  CHECK(rawLevel(levels, 0.95) == 3);
  const Hysteresis h{0.05, 60};
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  struct Step {
    int secondsAfter;
    double load;
    int level;
  };
  // From level 0: up to 2 at once; 0.76 is under high's lower bound 0.8 but not under 0.8 −
  // 0.05: stays; 0.74 is calm: after 60 s it falls to the level that holds for 0.74 + 0.05
  // (elevated); a spike resets the calm.
  const std::vector<Step> steps = {{0, 0.85, 2},   {10, 0.76, 2}, {20, 0.74, 2},  {79, 0.74, 2},
                                   {80, 0.74, 1},  {90, 0.60, 1}, {100, 0.75, 1}, {140, 0.60, 1},
                                   {200, 0.60, 0}, {201, 0.95, 3}};
  LevelState state;
  for (const auto& s : steps) {
    CAPTURE(s.secondsAfter);
    state = nextLevel(levels, h, state, s.load, t0 + seconds(s.secondsAfter));
    CHECK(state.index == s.level);
  }
}

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
