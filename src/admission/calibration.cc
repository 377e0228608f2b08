#include "admission/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/format.h"

namespace pi0::admission {
namespace {

std::string ratio(std::int64_t part, std::int64_t whole) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f (%lld of %lld)",
                whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0,
                static_cast<long long>(part), static_cast<long long>(whole));
  return buf;
}

}  // namespace

const char* moveName(Move move) {
  switch (move) {
    case Move::kHold:
      return "Hold";
    case Move::kTighten:
      return "Tighten";
    case Move::kLoosen:
      return "Loosen";
  }
  return "Hold";
}

double nearBand(const CalibrationPolicy& policy) {
  return 2 * policy.step;
}

double falsificationBound(std::int64_t part, std::int64_t whole) {
  if (whole <= 0) return 1;
  constexpr double z = 1.6448536269514722;  // the standard normal's 95th percentile
  const double n = static_cast<double>(whole);
  const double p = static_cast<double>(part) / n;
  const double centre = p + z * z / (2 * n);
  const double spread = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n));
  return std::min(1.0, (centre + spread) / (1 + z * z / n));
}

double thresholdOf(const Thresholds& t, Gate gate) {
  switch (gate) {
    case Gate::kFitError:
      return t.fitError;
    case Gate::kGluingDelta:
      return t.gluingDelta;
    case Gate::kPsi:
      return t.psi;
    case Gate::kIsolation:
      return t.isolation;
  }
  return 0;
}

Thresholds withThreshold(Thresholds t, Gate gate, double value) {
  switch (gate) {
    case Gate::kFitError:
      t.fitError = value;
      break;
    case Gate::kGluingDelta:
      t.gluingDelta = value;
      break;
    case Gate::kPsi:
      t.psi = value;
      break;
    case Gate::kIsolation:
      t.isolation = value;
      break;
  }
  return t;
}

std::array<GateRecommendation, 4> recommend(const Thresholds& current,
                                            const std::array<GateEvidence, 4>& evidence,
                                            const CalibrationPolicy& policy) {
  std::array<GateRecommendation, 4> out;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const Gate gate = static_cast<Gate>(i);
    const GateEvidence& e = evidence[i];
    const GateBounds& b = policy.bounds[i];
    GateRecommendation& r = out[i];
    r.gate = gate;
    r.current = thresholdOf(current, gate);
    r.recommended = r.current;
    const std::int64_t judged = e.admitted + e.denied;
    if (judged < policy.minDecisions) {
      r.reason = "not enough evidence: " + std::to_string(judged) + " judged decisions of the " +
                 std::to_string(policy.minDecisions) + " needed";
      continue;
    }
    const double f =
        e.admitted > 0 ? static_cast<double>(e.falsified) / static_cast<double>(e.admitted) : 0;
    const double m =
        e.denied > 0 ? static_cast<double>(e.missed) / static_cast<double>(e.denied) : 0;
    const std::string facts =
        "falsification " + ratio(e.falsified, e.admitted) + ", miss " + ratio(e.missed, e.denied);
    // isolation is a minimum (a margin): tightening raises it; the others are maxima.
    const double tighter = gate == Gate::kIsolation ? +policy.step : -policy.step;
    double target = r.current;
    // Whether this gate's value tells falsified admissions from fine ones: the falsified were at
    // least a step nearer its threshold on average (their mean slack), so a step tighter denies
    // more of them than of the fine ones, and a step looser would let more of them in.
    const std::int64_t fine = e.admitted - e.falsified;
    const double falsifiedSlack =
        e.falsified > 0 ? e.falsifiedSlack / static_cast<double>(e.falsified) : 0;
    const double fineSlack = fine > 0 ? e.fineSlack / static_cast<double>(fine) : 0;
    const std::string slack = e.falsified > 0 && fine > 0
                                  ? ", slack " + fixed(falsifiedSlack) + " falsified against " +
                                        fixed(fineSlack) + " fine"
                                  : "";
    const bool separates =
        e.falsified > 0 && fine > 0 && falsifiedSlack + policy.step <= fineSlack + 1e-9;
    // Tightening adds denials: only while they stay within the miss target, or where wrong
    // admissions are the likelier error (both over their targets).
    const bool missWithin = m <= policy.targetMiss;
    if (f > policy.targetFalsification && (missWithin || f >= m)) {
      if (fine > 0 && !separates) {
        r.reason = facts + slack + ": falsification over " + settingOf(policy.targetFalsification) +
                   ", but the falsified admissions were not a step nearer this threshold than the "
                   "fine ones: tightening would deny fine ones as often";
        continue;
      }
      r.move = Move::kTighten;
      target = r.current + tighter;
      r.reason = facts + slack + ": falsification over " + settingOf(policy.targetFalsification) +
                 (missWithin ? " while miss stays within " + settingOf(policy.targetMiss)
                             : " and not under the miss ratio");
    } else if (m > policy.targetMiss && f <= policy.targetFalsification) {
      if (e.sinceChange < policy.minDecisions) {
        r.reason = facts + ": miss over " + settingOf(policy.targetMiss) +
                   ", but loosening waits for " + std::to_string(policy.minDecisions) +
                   " judged decisions since this gate's last change (" +
                   std::to_string(e.sinceChange) + " so far)";
        continue;
      }
      if (separates) {
        r.reason = facts + slack + ": miss over " + settingOf(policy.targetMiss) +
                   ", but the falsified admissions were a step nearer this threshold than the "
                   "fine ones: loosening would let in more of them";
        continue;
      }
      const std::string band = settingOf(nearBand(policy));
      if (e.nearAdmitted == 0) {
        r.reason = facts + ": miss over " + settingOf(policy.targetMiss) +
                   ", but no admission came within " + band +
                   " of this threshold: nothing says what a looser one would let in";
        continue;
      }
      const double bound = falsificationBound(e.nearFalsified, e.nearAdmitted);
      const std::string near =
          "within " + band + " of this threshold falsified " + std::to_string(e.nearFalsified) +
          " of " + std::to_string(e.nearAdmitted) + ", at most " + fixed(bound) + " (95 %)";
      if (bound > policy.targetFalsification) {
        r.reason = facts + ": miss over " + settingOf(policy.targetMiss) + ", but admissions " +
                   near + ", over " + settingOf(policy.targetFalsification) +
                   ": loosening waits for more evidence next to the threshold";
        continue;
      }
      r.move = Move::kLoosen;
      target = r.current - tighter;
      r.reason = facts + ": miss over " + settingOf(policy.targetMiss) +
                 " while falsification stays within " + settingOf(policy.targetFalsification) +
                 ", admissions " + near;
    } else if (f > policy.targetFalsification && m > policy.targetMiss) {
      // Both over their targets, needless denials the likelier error: either step adds to one.
      r.reason = facts + ": both over their targets (" + settingOf(policy.targetFalsification) +
                 ", " + settingOf(policy.targetMiss) +
                 "), miss the larger: tightening would add needless denials, loosening "
                 "falsified admissions";
      continue;
    } else {
      r.reason = facts + ": within the targets";
      continue;
    }
    // Within the bounds; a threshold set outside them (a flag) moves one step toward them, never
    // further out and never by more than one step.
    const double bounded = target > r.current ? std::min(target, std::max(r.current, b.max))
                                              : std::max(target, std::min(r.current, b.min));
    // Rounded to the step's grid, so that repeated steps do not drift by floating-point error.
    r.recommended = std::round(bounded * 1e6) / 1e6;
    if (std::abs(r.recommended - r.current) < 1e-9) {
      r.move = Move::kHold;
      r.reason += "; held at its bound " + settingOf(r.current);
    }
  }
  return out;
}

}  // namespace pi0::admission
