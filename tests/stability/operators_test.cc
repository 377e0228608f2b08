// CPO, reliability, SAO, BAO and GDO (stability/operators.h), with values computed by hand.
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "stability/operators.h"

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
