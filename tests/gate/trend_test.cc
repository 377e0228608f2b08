#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "gate/trend.h"

using pi0::gate::exhaustionTrend;

TEST_CASE("a steady leak: slope and time to exhaustion") {
  // 64 samples at 0.5 s growing 0.001 per sample: 0.002/s, last value 0.2 + 63·0.001 = 0.263,
  // so (1 - 0.263) / 0.002 = 368.5 s until exhausted.
  std::vector<double> used(64);
  for (std::size_t i = 0; i < used.size(); ++i)
    used[i] = 0.2 + 0.001 * static_cast<double>(i);
  auto t = exhaustionTrend(used, 0.5);
  CHECK(t.slopePerSecond == doctest::Approx(0.002));
  CHECK(t.secondsToExhaustion == doctest::Approx(368.5));
  CHECK(t.r2 == doctest::Approx(1.0));
}

TEST_CASE("flat or falling memory never runs out") {
  std::vector<double> flat(64, 0.5);
  CHECK(std::isinf(exhaustionTrend(flat, 1.0).secondsToExhaustion));
  std::vector<double> falling(64);
  for (std::size_t i = 0; i < falling.size(); ++i)
    falling[i] = 0.9 - 0.01 * static_cast<double>(i);
  auto t = exhaustionTrend(falling, 1.0);
  CHECK(t.slopePerSecond == doctest::Approx(-0.01));
  CHECK(std::isinf(t.secondsToExhaustion));
}

TEST_CASE("noise around a flat line is not a leak") {
  // Alternating ±0.05 around 0.5 with a tiny upward drift of 1e-4 per sample: the slope is
  // positive but the line explains almost none of the variance.
  std::vector<double> noisy(64);
  for (std::size_t i = 0; i < noisy.size(); ++i) {
    noisy[i] = 0.5 + (i % 2 ? 0.05 : -0.05) + 1e-4 * static_cast<double>(i);
  }
  auto t = exhaustionTrend(noisy, 1.0);
  CHECK(t.slopePerSecond > 0);
  CHECK(t.r2 < 0.1);
  CHECK(std::isinf(t.secondsToExhaustion));
  // The same series is projected when the caller accepts any fit.
  CHECK(std::isfinite(exhaustionTrend(noisy, 1.0, 0.0).secondsToExhaustion));
}

TEST_CASE("already exhausted is zero seconds") {
  std::vector<double> full(16, 1.0);
  full[0] = 0.98;
  CHECK(exhaustionTrend(full, 1.0).secondsToExhaustion == 0.0);
}

TEST_CASE("too few samples or a bad interval give no trend") {
  std::vector<double> one{0.5};
  CHECK(exhaustionTrend(one, 1.0).slopePerSecond == 0.0);
  std::vector<double> two{0.1, 0.2};
  CHECK(std::isinf(exhaustionTrend(two, 0.0).secondsToExhaustion));
}
