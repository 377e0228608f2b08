#include "stability/levels.h"

#include <algorithm>

namespace pi0::stability {

int rawLevel(const std::vector<Level>& levels, double load) {
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (!levels[i].upperBound || load <= *levels[i].upperBound) return static_cast<int>(i);
  }
  return levels.empty() ? 0 : static_cast<int>(levels.size()) - 1;
}

LevelState nextLevel(const std::vector<Level>& levels, const Hysteresis& hysteresis,
                     const LevelState& previous, double load,
                     std::chrono::steady_clock::time_point now) {
  const int raw = rawLevel(levels, load);
  if (raw >= previous.index) return LevelState{raw, std::nullopt};  // up at once, or unchanged
  // Below the current level: calm only once ℓ is under the lower level's bound minus the margin.
  const auto& lowerBound = levels[static_cast<std::size_t>(previous.index - 1)].upperBound;
  const bool calm = lowerBound && load < *lowerBound - hysteresis.margin;
  if (!calm) return LevelState{previous.index, std::nullopt};
  const auto since = previous.calmSince.value_or(now);
  if (now - since < std::chrono::seconds(hysteresis.dwellSeconds))
    return LevelState{previous.index, since};
  // Dwelt long enough: fall to the level that holds even with the margin added.
  const int target = std::min(previous.index - 1, rawLevel(levels, load + hysteresis.margin));
  return LevelState{target, std::nullopt};
}

}  // namespace pi0::stability
