// Calibration's recommendation from judged decisions: a gate whose admissions are falsified
// tightens when its falsified admissions were nearer its threshold, one whose denials are
// needless loosens (on decisions made since its last change, unless its falsified admissions
// were nearer its threshold or those next to its threshold may have been falsified too often),
// a balanced one holds, none moves on too little evidence or past its bounds, and a run of
// rounds walks a threshold one step at a time.
#include <doctest/doctest.h>

#include "admission/calibration.h"

using namespace pi0::admission;

namespace {

// Evidence for one gate. Unless `falsifiedSlack` says otherwise, the falsified admissions were
// nearer the threshold (mean slack 0.01) than the fine ones (0.05); unless `sinceChange` says
// otherwise, every decision was made since the gate's last change; unless `e` says otherwise,
// every fine admission and no falsified one was near the threshold.
std::array<GateEvidence, 4> only(Gate gate, GateEvidence e, double falsifiedSlack = 0.01,
                                 std::int64_t sinceChange = -1) {
  e.falsifiedSlack = falsifiedSlack * static_cast<double>(e.falsified);
  e.fineSlack = 0.05 * static_cast<double>(e.admitted - e.falsified);
  e.sinceChange = sinceChange >= 0 ? sinceChange : e.admitted + e.denied;
  if (e.nearAdmitted == 0) e.nearAdmitted = e.admitted - e.falsified;
  std::array<GateEvidence, 4> all{};
  all[static_cast<std::size_t>(gate)] = e;
  return all;
}

}  // namespace

TEST_CASE("falsified admissions tighten; needless denials loosen; a balance holds") {
  const Thresholds t;  // fit 0.10, glue 0.15, psi 0.25, isolation 0.35
  const CalibrationPolicy p;

  // fit_error: 12 of 80 admissions falsified (0.15), 1 of 20 denials needless: tighten (lower).
  auto r = recommend(t, only(Gate::kFitError, {80, 12, 20, 1}), p);
  CHECK(r[0].move == Move::kTighten);
  CHECK(r[0].recommended == doctest::Approx(0.09));
  CHECK(r[0].reason ==
        "falsification 0.15 (12 of 80), miss 0.05 (1 of 20), slack 0.01 falsified against 0.05 "
        "fine: falsification over 0.05 while miss stays within 0.20");
  // isolation is a minimum: tightening raises it.
  r = recommend(t, only(Gate::kIsolation, {80, 12, 20, 1}), p);
  CHECK(r[3].move == Move::kTighten);
  CHECK(r[3].recommended == doctest::Approx(0.36));

  // psi: 2 of 100 admissions falsified (as far inside as the fine ones), 30 of 60 denials
  // needless: loosen (raise).
  r = recommend(t, only(Gate::kPsi, {100, 2, 60, 30}, 0.05), p);
  CHECK(r[2].move == Move::kLoosen);
  CHECK(r[2].recommended == doctest::Approx(0.26));
  r = recommend(t, only(Gate::kIsolation, {100, 2, 60, 30}, 0.05), p);
  CHECK(r[3].recommended == doctest::Approx(0.34));
  // The same, but the two falsified admissions were a step nearer psi's threshold than the fine
  // ones: a looser psi would let in more like them, so it holds, within its target or not.
  r = recommend(t, only(Gate::kPsi, {100, 2, 60, 30}, 0.01), p);
  CHECK(r[2].move == Move::kHold);
  CHECK(r[2].reason ==
        "falsification 0.02 (2 of 100), miss 0.50 (30 of 60), slack 0.01 falsified against 0.05 "
        "fine: miss over 0.20, but the falsified admissions were a step nearer this threshold "
        "than the fine ones: loosening would let in more of them");

  // Falsified more often than the target, needless less often than falsified but still within
  // the miss target: tighten (the denials it adds are mostly right).
  r = recommend(t, only(Gate::kPsi, {200, 14, 23, 2}), p);
  CHECK(r[2].move == Move::kTighten);
  // Both over their targets, both falsified and needless: the likelier error decides.
  r = recommend(t, only(Gate::kPsi, {100, 30, 40, 10}), p);
  CHECK(r[2].move == Move::kTighten);
  CHECK(r[2].reason ==
        "falsification 0.30 (30 of 100), miss 0.25 (10 of 40), slack 0.01 falsified against 0.05 "
        "fine: falsification over 0.05 and not under the miss ratio");
  // A target of finer grain is said as it is, not rounded to 0.03.
  CalibrationPolicy fine = p;
  fine.targetFalsification = 0.025;
  r = recommend(t, only(Gate::kPsi, {200, 14, 23, 2}), fine);
  CHECK(r[2].reason.ends_with("falsification over 0.025 while miss stays within 0.20"));
  // Falsified and needless alike, but needless more often: no tightening (it would add to the
  // misses), and no loosening (falsification is over its target).
  r = recommend(t, only(Gate::kGluingDelta, {100, 10, 50, 25}), p);
  CHECK(r[1].move == Move::kHold);
  CHECK(r[1].recommended == t.gluingDelta);
  CHECK(r[1].reason ==
        "falsification 0.10 (10 of 100), miss 0.50 (25 of 50): both over their targets (0.05, "
        "0.20), miss the larger: tightening would add needless denials, loosening falsified "
        "admissions");

  // Both within the targets.
  r = recommend(t, only(Gate::kFitError, {100, 3, 50, 5}), p);
  CHECK(r[0].move == Move::kHold);
  CHECK(r[0].reason.ends_with("within the targets"));
}

TEST_CASE("a gate whose value does not tell falsified admissions from fine ones holds") {
  const Thresholds t;
  const CalibrationPolicy p;
  // Falsified as often as above, but the falsified admissions were as far inside fit_error's
  // threshold as the fine ones (slack 0.05 both): one step tighter would deny fine ones as
  // often, so it holds and says why.
  auto r = recommend(t, only(Gate::kFitError, {80, 12, 20, 1}, 0.05), p);
  CHECK(r[0].move == Move::kHold);
  CHECK(r[0].recommended == t.fitError);
  CHECK(r[0].reason ==
        "falsification 0.15 (12 of 80), miss 0.05 (1 of 20), slack 0.05 falsified against 0.05 "
        "fine: falsification over 0.05, but the falsified admissions were not a step nearer "
        "this threshold than the fine ones: tightening would deny fine ones as often");
  // Further inside than the fine ones, or nearer by less than a step (0.01): holds too.
  CHECK(recommend(t, only(Gate::kPsi, {80, 12, 20, 1}, 0.2), p)[2].move == Move::kHold);
  CHECK(recommend(t, only(Gate::kPsi, {80, 12, 20, 1}, 0.045), p)[2].move == Move::kHold);
  CHECK(recommend(t, only(Gate::kPsi, {80, 12, 20, 1}, 0.04), p)[2].move == Move::kTighten);
  // Every admission falsified: nothing to compare with; it tightens.
  r = recommend(t, only(Gate::kPsi, {60, 60, 0, 0}, 0.2), p);
  CHECK(r[2].move == Move::kTighten);
  CHECK(r[2].reason ==
        "falsification 1.00 (60 of 60), miss 0.00 (0 of 0): falsification over 0.05 while miss "
        "stays within 0.20");
}

TEST_CASE("a gate loosens only on decisions made since its last change; it tightens on all") {
  const Thresholds t;
  const CalibrationPolicy p;  // minDecisions 50
  // Needless denials, but only 20 decisions since psi last moved: what a looser psi admits has
  // not been judged yet, so it waits, and says for what.
  auto r = recommend(t, only(Gate::kPsi, {100, 2, 60, 30}, 0.05, 20), p);
  CHECK(r[2].move == Move::kHold);
  CHECK(r[2].reason ==
        "falsification 0.02 (2 of 100), miss 0.50 (30 of 60): miss over 0.20, but loosening "
        "waits for 50 judged decisions since this gate's last change (20 so far)");
  CHECK(recommend(t, only(Gate::kPsi, {100, 2, 60, 30}, 0.05, 50), p)[2].move == Move::kLoosen);
  // Falsified admissions tighten with none since the change: the evidence was judged again with
  // the threshold in force, and a tighter one only denies what it already holds.
  CHECK(recommend(t, only(Gate::kPsi, {80, 12, 20, 1}, 0.01, 0), p)[2].move == Move::kTighten);
}

TEST_CASE("a gate loosens only when the admissions next to its threshold were rarely falsified") {
  const Thresholds t;
  const CalibrationPolicy p;  // step 0.01: near is within 0.02; target falsification 0.05
  // psi's whole evidence is within the falsification target (8 of 400) and its denials are
  // needless: the old rule loosened. But the admissions within 0.02 of its threshold, the ones
  // most like what a looser psi would let in, were falsified 4 times in 40: it holds.
  GateEvidence e{400, 8, 60, 30};
  e.nearAdmitted = 40;
  e.nearFalsified = 4;
  auto r = recommend(t, only(Gate::kPsi, e, 0.05), p);
  CHECK(r[2].move == Move::kHold);
  CHECK(r[2].reason ==
        "falsification 0.02 (8 of 400), miss 0.50 (30 of 60): miss over 0.20, but admissions "
        "within 0.02 of this threshold falsified 4 of 40, at most 0.20 (95 %), over 0.05: "
        "loosening waits for more evidence next to the threshold");
  // None of those 40 falsified is not enough either: 0 of 40 may still be 0.06.
  e.nearFalsified = 0;
  r = recommend(t, only(Gate::kPsi, e, 0.05), p);
  CHECK(r[2].move == Move::kHold);
  CHECK(r[2].reason.find("falsified 0 of 40, at most 0.06 (95 %), over 0.05") != std::string::npos);
  // None of 60: at most 0.04, within the target: it loosens, and says on what.
  e.nearAdmitted = 60;
  r = recommend(t, only(Gate::kPsi, e, 0.05), p);
  CHECK(r[2].move == Move::kLoosen);
  CHECK(r[2].recommended == doctest::Approx(0.26));
  CHECK(r[2].reason.ends_with(
      "while falsification stays within 0.05, admissions within 0.02 of this threshold "
      "falsified 0 of 60, at most 0.04 (95 %)"));
  // No admission near the threshold at all: nothing says what a looser one lets in.
  e.nearAdmitted = 0;
  GateEvidence far = only(Gate::kPsi, e, 0.05)[2];
  far.nearAdmitted = 0;
  std::array<GateEvidence, 4> all{};
  all[2] = far;
  r = recommend(t, all, p);
  CHECK(r[2].move == Move::kHold);
  CHECK(r[2].reason.ends_with(
      "but no admission came within 0.02 of this threshold: nothing says what a looser one "
      "would let in"));
  // The band is two steps.
  CalibrationPolicy wide = p;
  wide.step = 0.02;
  CHECK(nearBand(wide) == doctest::Approx(0.04));
  // Tightening needs no such bound: it errs on the safe side.
  GateEvidence bad{80, 12, 20, 1};
  bad.nearAdmitted = 1;
  CHECK(recommend(t, only(Gate::kPsi, bad), p)[2].move == Move::kTighten);
}

TEST_CASE("the falsification bound: Wilson's 95 % upper bound") {
  CHECK(falsificationBound(0, 0) == 1);
  CHECK(falsificationBound(0, 100) == doctest::Approx(0.02634).epsilon(1e-3));  // 2.71 / 102.71
  CHECK(falsificationBound(5, 100) == doctest::Approx(0.09916).epsilon(1e-3));
  CHECK(falsificationBound(100, 100) == 1);
  // More of the same evidence narrows it; more falsified raises it.
  CHECK(falsificationBound(0, 1000) < falsificationBound(0, 100));
  CHECK(falsificationBound(6, 100) > falsificationBound(5, 100));
}

TEST_CASE("no move on too little evidence, and none past a bound") {
  const CalibrationPolicy p;
  auto r = recommend(Thresholds{}, only(Gate::kFitError, {30, 15, 10, 0}), p);
  CHECK(r[0].move == Move::kHold);
  CHECK(r[0].reason == "not enough evidence: 40 judged decisions of the 50 needed");
  // Gates without evidence hold too.
  CHECK(r[3].move == Move::kHold);

  Thresholds t;
  t.fitError = 0.05;  // the bound
  r = recommend(t, only(Gate::kFitError, {100, 50, 0, 0}), p);
  CHECK(r[0].move == Move::kHold);
  CHECK(r[0].recommended == 0.05);
  CHECK(r[0].reason.ends_with("held at its bound 0.05"));
  t.fitError = 0.055;  // half a step from it: stops at the bound
  r = recommend(t, only(Gate::kFitError, {100, 50, 0, 0}), p);
  CHECK(r[0].recommended == doctest::Approx(0.05));
}

TEST_CASE("a threshold set outside its bounds moves one step toward them, never further out") {
  const CalibrationPolicy p;  // isolation's margin within 0.01-0.50
  Thresholds t;
  t.isolation = 0.80;  // a flag outside the bounds
  // Needless denials: loosen one step, 0.80 -> 0.79 (not a jump to the bound 0.50).
  auto r = recommend(t, only(Gate::kIsolation, {120, 0, 60, 60}), p);
  CHECK(r[3].move == Move::kLoosen);
  CHECK(r[3].recommended == doctest::Approx(0.79));
  // Falsified admissions would tighten (raise the margin) further out of bounds: held.
  r = recommend(t, only(Gate::kIsolation, {100, 50, 0, 0}), p);
  CHECK(r[3].move == Move::kHold);
  CHECK(r[3].recommended == 0.80);
  CHECK(r[3].reason.ends_with("held at its bound 0.80"));
}

TEST_CASE("rounds walk a threshold a step at a time, to where the evidence balances") {
  // A node fleet where admissions above fit_error 0.06 are falsified: each round's evidence
  // follows the threshold in force; calibration walks it down and stops there.
  CalibrationPolicy p;
  Thresholds t;
  int rounds = 0;
  for (; rounds < 20; ++rounds) {
    const bool tooLoose = t.fitError > 0.06 + 1e-9;
    const GateEvidence e = tooLoose ? GateEvidence{100, 20, 20, 1} : GateEvidence{100, 2, 20, 2};
    const auto r = recommend(t, only(Gate::kFitError, e), p);
    if (r[0].move == Move::kHold) break;
    CHECK(std::abs(r[0].recommended - t.fitError) <= p.step + 1e-9);
    t = withThreshold(t, Gate::kFitError, r[0].recommended);
  }
  CHECK(rounds == 4);  // 0.10 → 0.09 → 0.08 → 0.07 → 0.06
  CHECK(t.fitError == doctest::Approx(0.06));
  CHECK(thresholdOf(t, Gate::kFitError) == doctest::Approx(0.06));
}
