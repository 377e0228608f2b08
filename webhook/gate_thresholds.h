// GateThresholds: the thresholds pod reviews judge by, as the GatePolicy named by --gate-policy
// says (admission/gate_policy.h): its status.thresholds in Auto mode, the flags' otherwise. The
// cache's handler calls update() on each change of the object; reviews call current(), a
// pointer copy under a lock, and draw the holdout with holdout().
//
// Thread-safety: every member from any thread.
#pragma once

#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "admission/gate_policy.h"
#include "admission/pod_decision.h"

namespace pi0::webhook {

class WebhookMetrics;

// What a review judges by: the flags' policy with the thresholds in force, and where they came
// from.
struct GateChoice {
  admission::Policy policy;
  admission::ThresholdsInForce inForce;
};

class GateThresholds {
 public:
  // `fixed` is the flags' policy; `metrics` (may be null) outlives this.
  GateThresholds(const admission::Policy& fixed, WebhookMetrics* metrics);

  // The GatePolicy as stored now (null: there is none). Logs and counts a change of the
  // thresholds in force.
  void update(const std::shared_ptr<const nlohmann::json>& policy);
  std::shared_ptr<const GateChoice> current() const;

  // Whether a review is judged with the fixed thresholds, for calibration's holdout: true with
  // probability `share`.
  static bool holdout(double share);

 private:
  const admission::Policy fixed_;
  WebhookMetrics* metrics_;
  mutable std::mutex mu_;
  std::shared_ptr<const GateChoice> current_;  // guarded by mu_
};

}  // namespace pi0::webhook
