// Calibration rounds of the GatePolicy (admission/gate_policy.h), run by the leader: every
// spec.interval it reads how each gate's decisions turned out in the truth ledger, asks
// admission::recommend where each threshold should move, and writes the status:
//
//   status:
//     observedGeneration: 3
//     mode: Auto
//     thresholds: {fitError: 0.09, ...}       # in force (Auto: calibrated; else the flags')
//     fixedThresholds: {fitError: 0.10, ...}  # the flags': the holdout's, and Off/Recommend's
//     lastCalibrationTime: "2026-12-07T01:00:00Z"
//     evidence:
//       since: "..."          # now − window: the oldest decision read
//       gates: [{gate: fit_error, since: "...", sinceChange: 130, nearAdmitted: 120,
//                nearFalsified: 14, admitted: 812, falsified: 61,
//                denied: 40, missed: 9, falsificationRatio: 0.075, missRatio: 0.225,
//                falsifiedSlack: 0.01, fineSlack: 0.04,
//                holdout: {admitted: 41, falsified: 4, denied: 2, missed: 1, ...}}, ...]
//     recommendation: [{gate: fit_error, current: 0.10, recommended: 0.09, move: Tighten,
//                       reason: "falsification 0.08 (61 of 812), ..."}, ...]
//     history: [{time, gate, from, to, reason}, ...]   # every change, the newest last, bounded
//     conditions: [Ready, EnoughEvidence]
//
// Evidence is read from the decisions judged with the thresholds in force (not the holdout)
// over spec.window, each judged again with the threshold now in force (ledger::GateRate), so
// that a step stands on what the threshold it moves would have decided; a gate's `since` is its
// last change, and `sinceChange` the judged decisions made after it, on which alone a gate
// loosens; `nearAdmitted` and `nearFalsified` the admissions within admission::nearBand inside
// the threshold now, whose falsification must be low for it to loosen (admission::recommend). In
// Auto mode each move is applied, recorded in the history and announced by an Event
// (ThresholdTightened, ThresholdLoosened). Off and Recommend put the fixed thresholds in force (a
// change back to them is recorded too); Recommend still writes the recommendation.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/calibration.h"
#include "admission/gate_policy.h"
#include "common/clock.h"
#include "common/result.h"
#include "kube/events.h"
#include "kube/object_writer.h"
#include "ledger/ledger.h"

namespace pi0::op {

class OperatorMetrics;

using WallTime = std::chrono::system_clock::time_point;
using GateEvidenceSet = std::array<admission::GateEvidence, 4>;  // by admission::Gate

// Each gate's evidence summed over resources, the decisions judged with the thresholds in force
// and the holdout's apart.
struct Evidence {
  GateEvidenceSet inForce{};
  GateEvidenceSet holdout{};
};
Evidence evidenceOf(const std::vector<ledger::GateRate>& rates);

// One change of a threshold.
struct ThresholdChange {
  WallTime at;
  admission::Gate gate = admission::Gate::kFitError;
  double from = 0;
  double to = 0;
  std::string reason;
};

// What a round works from: the policy as stored and what the ledger says.
struct RoundInput {
  const nlohmann::json* policy = nullptr;  // the whole GatePolicy object
  admission::Thresholds fixed;             // the flags'
  std::optional<Evidence> evidence;        // nullopt: no ledger (nothing to judge by)
  std::string evidenceError;               // why there is no evidence, when there is a ledger
  WallTime now;
  std::size_t historyLimit = 50;
};

// What a round decided: the status to write, and the changes it made (for Events and metrics).
struct RoundOutput {
  nlohmann::json status;
  std::vector<ThresholdChange> changes;
  std::optional<admission::GatePolicySpec> spec;  // nullopt when invalid
  std::string invalid;                            // why, when the spec is invalid
};

// Whether a round is due: the spec changed since the last round (generation), or none ran yet,
// or spec.interval has passed since status.lastCalibrationTime.
bool roundDue(const nlohmann::json& policy, WallTime now);
// Each gate's last change (by admission::Gate): the later of now − spec.window and the gate's
// last change in the history. Another gate's change does not count.
std::array<WallTime, 4> evidenceSince(const nlohmann::json& policy,
                                      const admission::GatePolicySpec& spec, WallTime now);
// The thresholds in force before a round: status.thresholds in Auto mode (while they parse),
// the fixed ones otherwise.
admission::Thresholds inForce(const nlohmann::json& policy, const admission::GatePolicySpec& spec,
                              const admission::Thresholds& fixed);
// The round itself: pure.
RoundOutput calibrationRound(const RoundInput& input);

struct CalibratorOptions {
  std::string name = admission::kDefaultGatePolicy;  // the GatePolicy calibrated
  admission::Thresholds fixed;                       // the flags'
  std::size_t historyLimit = 50;
  std::chrono::seconds tick{5};  // how often run() looks whether a round is due
};

// Runs the rounds against the API and the ledger (null: no ledger; the status says so).
// `writer`, `ledger`, `events` and `metrics` (may be null) outlive it. One thread calls
// round() or run().
class GatePolicyCalibrator {
 public:
  GatePolicyCalibrator(kube::ObjectWriter& writer, ledger::Ledger* ledger, kube::EventSink& events,
                       OperatorMetrics* metrics, CalibratorOptions options);

  // One round if due, as of `now`. The changes made (none when not due or holding); a missing
  // GatePolicy is no error (nothing to calibrate).
  Result<std::vector<ThresholdChange>> round(WallTime now);

  // Rounds every options.tick while `leading()`, until `stop`.
  void run(std::stop_token stop, const std::function<bool()>& leading, Clock& clock);

 private:
  kube::ObjectWriter& writer_;
  ledger::Ledger* ledger_;
  kube::EventSink& events_;
  OperatorMetrics* metrics_;
  CalibratorOptions options_;
  std::string lastInvalid_;  // the spec's last error announced by an Event
};

}  // namespace pi0::op
