// GatePolicy (stability.pi0.io/v1alpha1, cluster-scoped): the thresholds of the admission gates
// in force, as calibration moves them (DESIGN.md "The learning loop", seed 001 P1.5). Pure: the
// operator reads the spec and writes the status; the webhook reads which thresholds apply.
//
//   spec:
//     mode: Recommend            # Off | Recommend | Auto
//     holdoutShare: 0.05         # Auto: this share of reviews is judged with the fixed thresholds
//     step: 0.01                 # the most a threshold moves in one round
//     minDecisions: 50           # judged decisions a gate needs before it moves
//     interval: 1h               # between calibration rounds
//     window: 24h                # the oldest evidence a round reads
//     targets: {falsification: 0.05, miss: 0.20}
//     bounds: {fitError: {min: 0.05, max: 0.50}, gluingDelta: ..., psi: ..., isolation: ...}
//   status:
//     thresholds: {fitError: 0.09, gluingDelta: 0.15, psi: 0.25, isolation: 0.35}
//     ...  (the operator's: see operator/gate_policy_reconcile.h)
//
// The fixed thresholds are the programs' flags (the chart's webhook.gates); `status.thresholds`
// apply only in Auto mode. Off and Recommend leave the flags in force.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "admission/calibration.h"
#include "admission/pod_decision.h"
#include "common/result.h"

namespace pi0 {
class FlagTable;
}

namespace pi0::admission {

inline constexpr char kDefaultGatePolicy[] = "default";

enum class CalibrationMode { kOff, kRecommend, kAuto };
const char* calibrationModeName(CalibrationMode mode);  // "Off", "Recommend", "Auto"

struct GatePolicySpec {
  CalibrationMode mode = CalibrationMode::kRecommend;
  CalibrationPolicy calibration;  // bounds, step, minDecisions, targets
  double holdoutShare = 0.05;     // in [0, 0.5]
  std::chrono::seconds interval{3600};
  std::chrono::seconds window{86400};
};

// The spec of a GatePolicy object (the whole object: its `spec` is read; absent fields take
// the defaults above). Errors name the field and the rule: "spec.bounds.psi: min 0.7 is not
// below max 0.6". Never throws.
Result<GatePolicySpec> parseGatePolicySpec(const nlohmann::json& object);

// Thresholds as the API writes them: {"fitError": .., "gluingDelta": .., "psi": .., "isolation":
// ..}.
nlohmann::json thresholdsToJson(const Thresholds& t);
// All four required, each a number in [0,1]; the error names the field under `path`.
Result<Thresholds> parseThresholds(const nlohmann::json& value, std::string_view path);

// What the webhook applies: the policy's status.thresholds in Auto mode, with a holdout share of
// reviews judged with the fixed thresholds; the fixed thresholds otherwise.
struct ThresholdsInForce {
  Thresholds thresholds;
  bool calibrated = false;  // status.thresholds apply (Auto mode, status written)
  double holdoutShare = 0;  // only when calibrated
  std::string source;       // for logs: "GatePolicy default (Auto, generation 3)", "the flags: ..."
};

// The fixed thresholds' flags, --gate-fit-error, --gate-gluing-delta, --gate-psi and
// --gate-isolation (the webhook's and the operator's alike), and --gate-policy NAME.
void addGateFlags(FlagTable& table, Thresholds& fixed, std::string& policyName);

// Which thresholds apply, given the GatePolicy object (null: none exists) and the flags'.
// A policy whose spec or status cannot be read leaves the flags in force and says why in
// `source`.
ThresholdsInForce thresholdsInForce(const nlohmann::json* policy, const Thresholds& fixed);

}  // namespace pi0::admission
