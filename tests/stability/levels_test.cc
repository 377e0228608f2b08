// Levels with hysteresis (stability/levels.h).
#include <doctest/doctest.h>

#include <chrono>

#include "stability/levels.h"

using namespace pi0::stability;
using std::chrono::seconds;

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
