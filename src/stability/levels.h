// The current level of a ShutdownMatrix for a load ℓ, with hysteresis: the level rises as soon
// as ℓ passes the current level's upper bound, and falls only after ℓ has stayed below the
// lower level's bound minus `margin` for `dwellSeconds` (then to the level that holds even with
// the margin added to ℓ).
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "stability/spec.h"

namespace pi0::stability {

// The first level whose upper bound ℓ does not exceed (the last level is open). Levels must be
// valid (validateMatrix); an empty list gives 0.
int rawLevel(const std::vector<Level>& levels, double load);

struct LevelState {
  int index = 0;
  // Since when ℓ has been below the lower level's bound minus the margin, continuously.
  std::optional<std::chrono::steady_clock::time_point> calmSince;
  friend bool operator==(const LevelState&, const LevelState&) = default;
};

LevelState nextLevel(const std::vector<Level>& levels, const Hysteresis& hysteresis,
                     const LevelState& previous, double load,
                     std::chrono::steady_clock::time_point now);

}  // namespace pi0::stability
