#include "gate/trend.h"

#include <Eigen/Dense>

namespace pi0::gate {

ExhaustionTrend exhaustionTrend(std::span<const double> usedRatio, double intervalSeconds,
                                double minR2) {
  ExhaustionTrend out;
  const auto n = static_cast<Eigen::Index>(usedRatio.size());
  if (n < 2 || intervalSeconds <= 0) return out;

  // Fit used = a + b·t with t the sample's age in seconds relative to the newest sample (so a
  // is the fitted value now).
  Eigen::MatrixXd design(n, 2);
  Eigen::VectorXd y(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    design(i, 0) = 1.0;
    design(i, 1) = static_cast<double>(i - (n - 1)) * intervalSeconds;
    y(i) = usedRatio[static_cast<std::size_t>(i)];
  }
  const Eigen::Vector2d coef = design.colPivHouseholderQr().solve(y);
  const double now = coef(0);
  const double slope = coef(1);
  out.slopePerSecond = slope;

  const double meanY = y.mean();
  const double ssTot = (y.array() - meanY).square().sum();
  const double ssRes = (y - design * coef).squaredNorm();
  out.r2 = ssTot > 0 ? 1.0 - ssRes / ssTot : 0.0;

  if (now >= 1.0) {
    out.secondsToExhaustion = 0;
  } else if (slope > 1e-12 && out.r2 >= minR2) {
    out.secondsToExhaustion = (1.0 - now) / slope;
  }
  return out;
}

}  // namespace pi0::gate
