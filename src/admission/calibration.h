// Calibration (DESIGN.md "The learning loop", seed 001 P1.5): where each gate's threshold should
// move, from how its decisions turned out (the truth ledger's judged decisions, ledger::GateRate
// summed over resources). Pure: the operator reads the evidence and writes what this recommends.
//
// A gate that let through admissions later falsified (node trouble, an OOM kill, an eviction)
// more often than `targetFalsification`, while its needless denials stay within `targetMiss`
// (or, both over their targets, more often than it made needless denials), tightens by one
// step, provided that its falsified admissions were at least a step nearer its threshold than
// the fine ones on average (GateEvidence's slack): every gate passed every admission, so the
// falsification alone does not say which gate could have denied them, and a gate whose value
// does not tell the two apart would deny fine admissions as often as falsified ones (it holds,
// saying so). One whose denials were needless (the node stayed fine) more often than
// `targetMiss`, while its admissions stayed under `targetFalsification`, loosens by one step,
// unless its falsified admissions were a step nearer its threshold than the fine ones (a looser
// threshold would let in more like them). Otherwise it holds. Tightening lowers a maximum
// (fit_error, gluing_delta, psi) and raises isolation's margin (a minimum). Never outside the
// gate's bounds; never on fewer than `minDecisions` judged decisions. Each recommendation says
// why, with the counts behind it.
//
// The evidence is judged again with the thresholds in force (ledger::GateRate), so that a gate
// may tighten again at the next round: the admissions a tighter threshold would have denied
// leave its falsification and count as its denials. Loosening lets through values that nothing
// judged yet, so a gate loosens only on `minDecisions` judged decisions made since its last
// change (`sinceChange`), and only when the admissions just inside its threshold (within
// nearBand(), two steps: what a looser threshold would let in is most like them) were falsified
// rarely enough that the 95 % upper bound of their ratio (falsificationBound) is within
// `targetFalsification`: a gate's whole evidence can look safe while what lies next to its
// threshold is not, and a few calm hours' admissions prove little. Tightening needs no such
// bound: it errs on the safe side.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "admission/pod_decision.h"

namespace pi0::admission {

// How one gate's judged decisions turned out (see ledger::GateRate).
struct GateEvidence {
  std::int64_t admitted = 0;
  std::int64_t falsified = 0;
  std::int64_t denied = 0;
  std::int64_t missed = 0;
  // The admissions' slack, how far inside the threshold the gate's value was (threshold − value
  // for a maximum, value − threshold for isolation's minimum), summed over the falsified
  // admissions and over the fine ones (admitted − falsified).
  double falsifiedSlack = 0;
  double fineSlack = 0;
  // Of admitted + denied, those made since the gate's last change.
  std::int64_t sinceChange = 0;
  // Of admitted and falsified, those whose slack was under nearBand().
  std::int64_t nearAdmitted = 0;
  std::int64_t nearFalsified = 0;
};

struct GateBounds {
  double min = 0;
  double max = 1;
};

struct CalibrationPolicy {
  // Seed 001: fit 0.05–0.50, isolation margin 0.01–0.50; glue and PSI chosen alike.
  std::array<GateBounds, 4> bounds{{{0.05, 0.50}, {0.05, 0.50}, {0.05, 0.60}, {0.01, 0.50}}};
  double step = 0.01;  // the most a threshold moves in one round
  std::int64_t minDecisions = 50;
  double targetFalsification = 0.05;
  double targetMiss = 0.20;
};

// How close to a gate's threshold an admission counts as near it: two steps.
double nearBand(const CalibrationPolicy& policy);

// The one-sided 95 % upper bound of a ratio of `part` in `whole` (Wilson's score interval):
// 1 for nothing observed; 2.71 / (whole + 2.71) for none of `whole`.
double falsificationBound(std::int64_t part, std::int64_t whole);

enum class Move { kHold, kTighten, kLoosen };
const char* moveName(Move move);  // "Hold", "Tighten", "Loosen"

struct GateRecommendation {
  Gate gate = Gate::kFitError;
  double current = 0;
  double recommended = 0;  // == current when holding (or at a bound)
  Move move = Move::kHold;
  std::string reason;  // "falsification 0.12 (6 of 50) over 0.05 and over the miss ratio 0.02"
};

// The recommendation for each gate, in Gate order. `evidence` is indexed by Gate.
std::array<GateRecommendation, 4> recommend(const Thresholds& current,
                                            const std::array<GateEvidence, 4>& evidence,
                                            const CalibrationPolicy& policy);

// The threshold of `gate` in `t`, and `t` with it replaced.
double thresholdOf(const Thresholds& t, Gate gate);
Thresholds withThreshold(Thresholds t, Gate gate, double value);

}  // namespace pi0::admission
