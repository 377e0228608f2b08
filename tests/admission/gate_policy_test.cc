// GatePolicy's spec and which thresholds apply: defaults, each rule's error naming its field,
// and the webhook's choice between the flags and the calibrated status.thresholds.
#include <doctest/doctest.h>

#include "admission/gate_policy.h"

using namespace pi0::admission;
using nlohmann::json;

namespace {

json policy(json spec, json status = nullptr) {
  json p = {{"apiVersion", "stability.pi0.io/v1alpha1"},
            {"kind", "GatePolicy"},
            {"metadata", {{"name", "default"}, {"generation", 3}}},
            {"spec", std::move(spec)}};
  if (!status.is_null()) p["status"] = std::move(status);
  return p;
}

const json kCalibrated = {
    {"thresholds", {{"fitError", 0.08}, {"gluingDelta", 0.14}, {"psi", 0.2}, {"isolation", 0.4}}}};

}  // namespace

TEST_CASE("a GatePolicy spec: the defaults, and every field read") {
  auto empty = parseGatePolicySpec(policy(json::object()));
  REQUIRE(empty);
  CHECK(empty->mode == CalibrationMode::kRecommend);
  CHECK(empty->holdoutShare == 0.05);
  CHECK(empty->interval == std::chrono::hours(1));
  CHECK(empty->window == std::chrono::hours(24));
  CHECK(empty->calibration.bounds[0].min == 0.05);  // seed 001: fit 0.05–0.50
  CHECK(empty->calibration.bounds[3].max == 0.50);  // isolation margin 0.01–0.50

  auto full = parseGatePolicySpec(policy({{"mode", "Auto"},
                                          {"holdoutShare", 0.1},
                                          {"step", 0.02},
                                          {"minDecisions", 20},
                                          {"interval", "30s"},
                                          {"window", "2h"},
                                          {"targets", {{"falsification", 0.1}, {"miss", 0.3}}},
                                          {"bounds", {{"psi", {{"min", 0.1}, {"max", 0.4}}}}}}));
  REQUIRE(full);
  CHECK(full->mode == CalibrationMode::kAuto);
  CHECK(full->holdoutShare == 0.1);
  CHECK(full->calibration.step == 0.02);
  CHECK(full->calibration.minDecisions == 20);
  CHECK(full->interval == std::chrono::seconds(30));
  CHECK(full->window == std::chrono::hours(2));
  CHECK(full->calibration.targetFalsification == 0.1);
  CHECK(full->calibration.targetMiss == 0.3);
  CHECK(full->calibration.bounds[2].min == 0.1);
  CHECK(full->calibration.bounds[2].max == 0.4);
  CHECK(full->calibration.bounds[0].max == 0.50);  // untouched
}

TEST_CASE("a GatePolicy spec: each error names its field") {
  struct Case {
    json spec;
    std::string error;
  };
  const Case cases[] = {
      {{{"mode", "Sometimes"}},
       "spec.mode: unknown mode \"Sometimes\"; expected Off, Recommend or Auto"},
      {{{"holdoutShare", 0.6}}, "spec.holdoutShare: must be in [0.00, 0.50], not 0.60"},
      {{{"holdoutShare", "5%"}}, "spec.holdoutShare: must be a number, not string"},
      {{{"step", 0.5}}, "spec.step: must be in [0.00, 0.10], not 0.50"},
      {{{"minDecisions", 0}}, "spec.minDecisions"},
      {{{"interval", "0s"}}, "spec.interval: must be at least 1s, not \"0s\""},
      {{{"window", "soon"}}, "spec.window: "},
      {{{"bounds", {{"psi", {{"min", 0.7}, {"max", 0.6}}}}}},
       "spec.bounds.psi: min 0.70 is not below max 0.60"},
      {{{"bounds", {{"fitError", {{"max", 1.5}}}}}},
       "spec.bounds.fitError.max: must be in [0.00, 1.00]"},
      {{{"targets", {{"miss", -0.1}}}}, "spec.targets.miss: must be in [0.00, 1.00], not -0.10"},
      {"Auto", "spec: must be an object"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.spec.dump());
    auto parsed = parseGatePolicySpec(policy(c.spec));
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().message.starts_with(c.error));
  }
}

TEST_CASE("thresholds: all four, each in [0,1]") {
  auto t = parseThresholds(kCalibrated["thresholds"], "status.thresholds");
  REQUIRE(t);
  CHECK(t->fitError == 0.08);
  CHECK(t->isolation == 0.4);
  CHECK(thresholdsToJson(*t) == kCalibrated["thresholds"]);
  auto missing = parseThresholds(json{{"fitError", 0.1}}, "status.thresholds");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "status.thresholds.gluingDelta: is required");
  auto outside =
      parseThresholds(json{{"fitError", 0.1}, {"gluingDelta", 2}, {"psi", 0.2}, {"isolation", 0.3}},
                      "status.thresholds");
  REQUIRE_FALSE(outside);
  CHECK(outside.error().message ==
        "status.thresholds.gluingDelta: must be in [0.00, 1.00], not 2.00");
}

TEST_CASE("the webhook applies status.thresholds only in Auto mode, with the holdout share") {
  const Thresholds flags;  // 0.10, 0.15, 0.25, 0.35
  SUBCASE("no GatePolicy: the flags") {
    auto f = thresholdsInForce(nullptr, flags);
    CHECK_FALSE(f.calibrated);
    CHECK(f.thresholds.fitError == 0.10);
    CHECK(f.holdoutShare == 0);
  }
  SUBCASE("Recommend: the flags, whatever the status holds") {
    const json p = policy({{"mode", "Recommend"}}, kCalibrated);
    auto f = thresholdsInForce(&p, flags);
    CHECK_FALSE(f.calibrated);
    CHECK(f.thresholds.fitError == 0.10);
    CHECK(f.source == "the flags (GatePolicy default is in mode Recommend)");
  }
  SUBCASE("Auto before the first round: the flags") {
    const json p = policy({{"mode", "Auto"}});
    auto f = thresholdsInForce(&p, flags);
    CHECK_FALSE(f.calibrated);
    CHECK(f.thresholds.psi == 0.25);
  }
  SUBCASE("Auto with status.thresholds: the calibrated ones, and the holdout share") {
    const json p = policy({{"mode", "Auto"}, {"holdoutShare", 0.1}}, kCalibrated);
    auto f = thresholdsInForce(&p, flags);
    CHECK(f.calibrated);
    CHECK(f.thresholds.fitError == 0.08);
    CHECK(f.thresholds.gluingDelta == 0.14);
    CHECK(f.thresholds.psi == 0.2);
    CHECK(f.thresholds.isolation == 0.4);
    CHECK(f.holdoutShare == 0.1);
    CHECK(f.source == "GatePolicy default (Auto, generation 3)");
  }
  SUBCASE("an invalid spec or status leaves the flags, and says why") {
    const json bad = policy({{"mode", "Auto"}, {"holdoutShare", 0.9}}, kCalibrated);
    auto f = thresholdsInForce(&bad, flags);
    CHECK_FALSE(f.calibrated);
    CHECK(f.source.find("spec.holdoutShare") != std::string::npos);
    json broken = policy({{"mode", "Auto"}}, {{"thresholds", {{"fitError", "low"}}}});
    auto g = thresholdsInForce(&broken, flags);
    CHECK_FALSE(g.calibrated);
    CHECK(g.thresholds.fitError == 0.10);
    CHECK(g.source.find("status.thresholds.fitError") != std::string::npos);
  }
}
