// Memory-exhaustion early warning: a least-squares line through the memory-used ratio over
// the window, and how long until it reaches 1 if the trend holds. Pure computation.
#pragma once

#include <limits>
#include <span>

namespace pi0::gate {

struct ExhaustionTrend {
  double slopePerSecond = 0;  // ratio of total memory per second (> 0: growing)
  // Seconds until the fitted line reaches 1; +inf when usage is flat or falling, or when the
  // line does not explain the window (r2 < minR2: noise, not a leak); 0 when the fit says
  // memory is already exhausted.
  double secondsToExhaustion = std::numeric_limits<double>::infinity();
  double r2 = 0;  // coefficient of determination of the fit (0 for a flat window)
};

// usedRatio: samples oldest first, taken every intervalSeconds; needs at least 2 samples.
inline constexpr double kMinLeakR2 = 0.5;
ExhaustionTrend exhaustionTrend(std::span<const double> usedRatio, double intervalSeconds,
                                double minR2 = kMinLeakR2);

}  // namespace pi0::gate
