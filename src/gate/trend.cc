#include "gate/trend.h"

#include <cstddef>

#include <Eigen/Dense>

namespace pi0::gate {

ExhaustionTrend exhaustionTrend(std::span<const double> usedRatio, double intervalSeconds,
                                double minR2) {
  ExhaustionTrend out;
  const std::size_t n = usedRatio.size();
  if (n < 2 || intervalSeconds <= 0) return out;

  // Fit used = a + b·t by least squares, with t the sample's age in seconds relative to the
  // window's middle, so the 2×2 normal equations are well conditioned (Σt = 0). Fixed-size
  // matrices: no allocation, and this runs every round.
  const double middle = 0.5 * static_cast<double>(n - 1);
  auto age = [&](std::size_t i) { return (static_cast<double>(i) - middle) * intervalSeconds; };
  Eigen::Matrix2d normal = Eigen::Matrix2d::Zero();
  Eigen::Vector2d moment = Eigen::Vector2d::Zero();
  for (std::size_t i = 0; i < n; ++i) {
    const Eigen::Vector2d row(1.0, age(i));
    normal.noalias() += row * row.transpose();
    moment += row * usedRatio[i];
  }
  const Eigen::Vector2d coef = normal.ldlt().solve(moment);
  const double slope = coef(1);
  const double now = coef(0) + slope * age(n - 1);  // the fitted value at the newest sample
  out.slopePerSecond = slope;

  const double meanY = coef(0);  // with Σt = 0 the intercept is the mean
  double ssTot = 0, ssRes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = usedRatio[i] - (coef(0) + slope * age(i));
    ssRes += r * r;
    ssTot += (usedRatio[i] - meanY) * (usedRatio[i] - meanY);
  }
  out.r2 = ssTot > 0 ? 1.0 - ssRes / ssTot : 0.0;

  if (now >= 1.0) {
    out.secondsToExhaustion = 0;
  } else if (slope > 1e-12 && out.r2 >= minR2) {
    out.secondsToExhaustion = (1.0 - now) / slope;
  }
  return out;
}

}  // namespace pi0::gate
