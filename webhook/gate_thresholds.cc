#include "gate_thresholds.h"

#include <random>

#include "common/log.h"
#include "metrics.h"

namespace pi0::webhook {

GateThresholds::GateThresholds(const admission::Policy& fixed, WebhookMetrics* metrics)
    : fixed_(fixed), metrics_(metrics) {
  auto first = std::make_shared<GateChoice>();
  first->policy = fixed_;
  first->inForce = admission::thresholdsInForce(nullptr, fixed_.thresholds);
  current_ = std::move(first);
  if (metrics_) metrics_->gateThresholds(current_->inForce);
}

void GateThresholds::update(const std::shared_ptr<const nlohmann::json>& policy) {
  auto next = std::make_shared<GateChoice>();
  next->inForce = admission::thresholdsInForce(policy.get(), fixed_.thresholds);
  next->policy = fixed_;
  next->policy.thresholds = next->inForce.thresholds;
  std::shared_ptr<const GateChoice> before;
  {
    std::lock_guard lock(mu_);
    before = std::exchange(current_, next);
  }
  const auto& a = before->inForce;
  const auto& b = next->inForce;
  const bool changed = a.calibrated != b.calibrated || a.holdoutShare != b.holdoutShare ||
                       a.thresholds.fitError != b.thresholds.fitError ||
                       a.thresholds.gluingDelta != b.thresholds.gluingDelta ||
                       a.thresholds.psi != b.thresholds.psi ||
                       a.thresholds.isolation != b.thresholds.isolation;
  if (!changed) return;
  log::info("gate thresholds in force changed", {{"source", b.source},
                                                 {"fitError", b.thresholds.fitError},
                                                 {"gluingDelta", b.thresholds.gluingDelta},
                                                 {"psi", b.thresholds.psi},
                                                 {"isolation", b.thresholds.isolation},
                                                 {"holdoutShare", b.holdoutShare}});
  if (metrics_) {
    metrics_->gateThresholds(b);
    metrics_->gateThresholdsChanged();
  }
}

std::shared_ptr<const GateChoice> GateThresholds::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

bool GateThresholds::holdout(double share) {
  if (share <= 0) return false;
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 1)(engine) < share;
}

}  // namespace pi0::webhook
