// Calibration rounds of the GatePolicy against FakeCluster (the API) and a real SQLite ledger
// (the evidence): thresholds move one step on enough judged decisions of the thresholds in
// force, only in Auto mode, once per interval, each change in the history and an Event; leaving
// Auto puts the fixed thresholds back; the holdout's decisions are evidence apart; an invalid
// spec or a missing ledger is said in the conditions.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "fakes/fake_cluster.h"
#include "ledger/ledger.h"
#include "operator/gate_policy_reconcile.h"
#include "temp_dir.h"

using namespace pi0;
using namespace pi0::op;
using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace res = kube::resources;

namespace {

const WallTime kNow = WallTime(std::chrono::seconds(1'780'000'000));

class EventLog final : public kube::EventSink {
 public:
  void record(const kube::ObjectReference& object, kube::EventType type, std::string reason,
              std::string message) override {
    std::lock_guard lock(mu_);
    events.push_back(
        {object.kind + "/" + object.name, type, std::move(reason), std::move(message)});
  }
  struct Event {
    std::string object;
    kube::EventType type;
    std::string reason, message;
  };
  std::vector<Event> events;

 private:
  std::mutex mu_;
};

Json policy(Json spec) {
  return {{"apiVersion", "stability.pi0.io/v1alpha1"},
          {"kind", "GatePolicy"},
          {"metadata", {{"name", "default"}}},
          {"spec", std::move(spec)}};
}

// `n` decisions at `at` judged by the fit_error gate alone (cpu, threshold 0.10): admitted (the
// gate passed) or denied (it failed, at 0.12); the first `troubled` followed by node trouble,
// the rest by a fine node. The admissions followed by trouble were nearer the threshold
// (`troubledValue`) than the fine ones (0.02).
void judged(ledger::Ledger& l, const std::string& prefix, int n, int troubled, WallTime at,
            bool admitted, bool holdout = false, double troubledValue = 0.095,
            double fineValue = 0.02) {
  std::vector<ledger::Decision> made;
  std::vector<std::pair<std::string, ledger::Outcome>> outcomes;
  for (int i = 0; i < n; ++i) {
    ledger::Decision d;
    d.id = prefix + std::to_string(i);
    d.at = at;
    d.replica = "pi0-webhook-0";
    d.ns = "shop";
    d.pod = "web-" + std::to_string(i);
    d.podUid = "uid-" + d.id;
    d.mode = "Enforce";
    d.allowed = d.verdict = admitted;
    d.reason = admitted ? "Passed" : "GatesFailed";
    d.node = "node-a";
    d.candidates = 3;
    d.holdout = holdout;
    const double value = !admitted ? 0.12 : i < troubled ? troubledValue : fineValue;
    d.gates = {{"cpu", "fit_error", value, 0.10, 0, admitted}};
    made.push_back(d);
    outcomes.push_back({d.id, {i < troubled ? "node_trouble" : "node_fine", at + 15min, ""}});
  }
  REQUIRE(l.record(made));
  REQUIRE(l.addOutcomes(outcomes));
}

struct Bed {
  Bed() {
    ledger::Options o;
    o.path = dir.path() / "ledger.db";
    auto opened = ledger::Ledger::open(o);
    REQUIRE(opened);
    ledger = std::move(*opened);
  }
  Json status() { return (*cluster.get(res::kGatePolicies, "", "default"))["status"]; }
  GatePolicyCalibrator calibrator(bool withLedger = true) {
    CalibratorOptions o;
    o.fixed = admission::Thresholds{};  // 0.10, 0.15, 0.25, 0.35
    return GatePolicyCalibrator(cluster, withLedger ? ledger.get() : nullptr, events, nullptr, o);
  }
  const Json* condition(const Json& s, const std::string& type) {
    for (const auto& c : s["conditions"])
      if (c["type"] == type) return &c;
    return nullptr;
  }

  testing::TempDir dir;
  std::unique_ptr<ledger::Ledger> ledger;
  testing::FakeCluster cluster;
  EventLog events;
};

}  // namespace

TEST_CASE("Auto: a gate whose admissions were falsified tightens one step per round") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Auto"}, {"minDecisions", 50}}));
  // 120 admissions judged, 24 followed by node trouble: falsification 0.20 > 0.05. Those were
  // at fit_error 0.095 (12) and 0.085 (12), the fine ones at 0.02.
  judged(*bed.ledger, "a", 60, 12, kNow - 20min, true);
  judged(*bed.ledger, "b", 60, 12, kNow - 20min, true, false, 0.085);
  auto c = bed.calibrator();

  auto changes = c.round(kNow);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  CHECK((*changes)[0].gate == admission::Gate::kFitError);
  CHECK((*changes)[0].from == doctest::Approx(0.10));
  CHECK((*changes)[0].to == doctest::Approx(0.09));
  Json s = bed.status();
  CHECK(s["mode"] == "Auto");
  CHECK(s["thresholds"]["fitError"].get<double>() == doctest::Approx(0.09));
  CHECK(s["thresholds"]["psi"] == 0.25);  // no evidence: held
  CHECK(s["fixedThresholds"]["fitError"] == 0.10);
  CHECK(s["observedGeneration"] == 1);
  REQUIRE(s["history"].size() == 1);
  CHECK(s["history"][0]["gate"] == "fit_error");
  CHECK(s["history"][0]["to"].get<double>() == doctest::Approx(0.09));
  CHECK(s["evidence"]["gates"][0]["admitted"] == 120);
  CHECK(s["evidence"]["gates"][0]["falsified"] == 24);
  CHECK(s["evidence"]["gates"][0]["falsificationRatio"] == 0.2);
  CHECK(s["evidence"]["gates"][0]["falsifiedSlack"].get<double>() == doctest::Approx(0.01));
  CHECK(s["evidence"]["gates"][0]["fineSlack"].get<double>() == doctest::Approx(0.08));
  CHECK(s["evidence"]["gates"][0]["sinceChange"] == 120);
  CHECK(s["recommendation"][0]["move"] == "Tighten");
  const Json* ready = bed.condition(s, "Ready");
  REQUIRE(ready);
  CHECK((*ready)["status"] == "True");
  const Json* enough = bed.condition(s, "EnoughEvidence");
  REQUIRE(enough);
  CHECK((*enough)["status"] == "False");
  CHECK((*enough)["message"].get<std::string>().find("gluing_delta 0") != std::string::npos);
  REQUIRE(bed.events.events.size() == 1);
  CHECK(bed.events.events[0].object == "GatePolicy/default");
  CHECK(bed.events.events[0].reason == "ThresholdTightened");
  CHECK(bed.events.events[0].message.starts_with(
      "fit_error 0.10 -> 0.09: falsification 0.20 (24 of 120)"));

  // Within the interval: no round, nothing written.
  const auto writes = bed.cluster.writes().size();
  REQUIRE(c.round(kNow + 1min));
  CHECK(bed.cluster.writes().size() == writes);

  // After it, the same decisions judged again with 0.09: the twelve at 0.095 would have been
  // denied (their node was in trouble: not needless), the twelve at 0.085 are still admitted
  // and falsified (12 of 108, 0.11): one more step, with no new decision.
  auto again = c.round(kNow + 61min);
  REQUIRE(again);
  REQUIRE(again->size() == 1);
  s = bed.status();
  CHECK(s["thresholds"]["fitError"].get<double>() == doctest::Approx(0.08));
  CHECK(s["evidence"]["gates"][0]["admitted"] == 108);
  CHECK(s["evidence"]["gates"][0]["falsified"] == 12);
  CHECK(s["evidence"]["gates"][0]["denied"] == 12);
  CHECK(s["evidence"]["gates"][0]["missed"] == 0);
  CHECK(s["evidence"]["gates"][0]["sinceChange"] == 0);
  CHECK(s["history"].size() == 2);

  // With 0.08 no admission left is falsified: it holds there.
  auto held = c.round(kNow + 122min);
  REQUIRE(held);
  CHECK(held->empty());
  s = bed.status();
  CHECK(s["thresholds"]["fitError"].get<double>() == doctest::Approx(0.08));
  CHECK(s["recommendation"][0]["move"] == "Hold");
  CHECK(s["recommendation"][0]["reason"] ==
        "falsification 0.00 (0 of 96), miss 0.00 (0 of 24): within the targets");
}

TEST_CASE("Auto: each gate's last change is its own, not another gate's") {
  Bed bed;
  Json p = policy({{"mode", "Auto"}, {"minDecisions", 50}});
  // psi moved 10 minutes ago; fit_error's evidence is from 20 minutes ago.
  p["status"] = {{"thresholds",
                  {{"fitError", 0.1}, {"gluingDelta", 0.15}, {"psi", 0.24}, {"isolation", 0.35}}},
                 {"history",
                  {{{"time", "2026-05-28T20:16:40Z"},
                    {"gate", "psi"},
                    {"from", 0.25},
                    {"to", 0.24},
                    {"reason", "falsification 0.10 (5 of 50), miss 0.00 (0 of 0): ..."}}}}};
  bed.cluster.put(res::kGatePolicies, p);
  judged(*bed.ledger, "a", 60, 12, kNow - 20min, true);
  auto changes = bed.calibrator().round(kNow);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  CHECK((*changes)[0].gate == admission::Gate::kFitError);
  const Json s = bed.status();
  CHECK(s["thresholds"]["fitError"].get<double>() == doctest::Approx(0.09));
  CHECK(s["thresholds"]["psi"].get<double>() == doctest::Approx(0.24));
  CHECK(s["evidence"]["gates"][0]["since"] == "2026-05-27T20:26:40Z");  // now − window
  CHECK(s["evidence"]["gates"][2]["since"] == "2026-05-28T20:16:40Z");  // psi's change
  CHECK(s["evidence"]["gates"][0]["sinceChange"] == 60);
  CHECK(s["evidence"]["since"] == "2026-05-27T20:26:40Z");
}

TEST_CASE("Auto: a gate whose denials were needless loosens") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Auto"}, {"minDecisions", 50}}));
  judged(*bed.ledger, "d", 60, 0, kNow - 80min, false);  // 60 denials, every node stayed fine
  // Nothing was admitted near the threshold: nothing says what a looser one would let in.
  auto changes = bed.calibrator().round(kNow - 70min);
  REQUIRE(changes);
  CHECK(changes->empty());
  CHECK(bed.status()["recommendation"][0]["reason"].get<std::string>().ends_with(
      "no admission came within 0.02 of this threshold: nothing says what a looser one would "
      "let in"));
  // 60 admissions just inside it (0.095), none falsified: at most 0.04 (95 %), within 0.05.
  judged(*bed.ledger, "n", 60, 0, kNow - 20min, true, false, 0.095, 0.095);
  changes = bed.calibrator().round(kNow);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  CHECK((*changes)[0].to == doctest::Approx(0.11));
  CHECK(bed.events.events.at(0).reason == "ThresholdLoosened");
  CHECK(bed.status()["evidence"]["gates"][0]["missRatio"] == 1.0);
  CHECK(bed.status()["evidence"]["gates"][0]["nearAdmitted"] == 60);
  CHECK(bed.status()["evidence"]["gates"][0]["nearFalsified"] == 0);

  // The denials (0.12) still fail 0.11 and were still needless, but what 0.11 lets through has
  // not been judged yet: no second step until 50 decisions are made at it.
  auto c = bed.calibrator();
  REQUIRE(c.round(kNow + 61min));
  Json s = bed.status();
  CHECK(s["thresholds"]["fitError"].get<double>() == doctest::Approx(0.11));
  CHECK(s["recommendation"][0]["reason"].get<std::string>().ends_with(
      "loosening waits for 50 judged decisions since this gate's last change (0 so far)"));
  judged(*bed.ledger, "e", 60, 0, kNow + 70min, false);
  REQUIRE(c.round(kNow + 122min));
  CHECK(bed.status()["thresholds"]["fitError"].get<double>() == doctest::Approx(0.12));
}

TEST_CASE("Recommend: the recommendation is written, the fixed thresholds stay") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Recommend"}, {"minDecisions", 50}}));
  judged(*bed.ledger, "a", 60, 12, kNow - 20min, true);
  auto changes = bed.calibrator().round(kNow);
  REQUIRE(changes);
  CHECK(changes->empty());
  const Json s = bed.status();
  CHECK(s["thresholds"]["fitError"] == 0.10);
  CHECK(s["recommendation"][0]["move"] == "Tighten");
  CHECK(s["recommendation"][0]["recommended"].get<double>() == doctest::Approx(0.09));
  CHECK(s["history"].empty());
  CHECK(bed.events.events.empty());
}

TEST_CASE("the holdout's decisions are evidence apart, not the thresholds in force's") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Auto"}, {"minDecisions", 50}}));
  judged(*bed.ledger, "h", 60, 30, kNow - 20min, true, /*holdout=*/true);
  auto changes = bed.calibrator().round(kNow);
  REQUIRE(changes);
  CHECK(changes->empty());
  const Json g = bed.status()["evidence"]["gates"][0];
  CHECK(g["admitted"] == 0);
  CHECK(g["holdout"]["admitted"] == 60);
  CHECK(g["holdout"]["falsified"] == 30);
  CHECK(g["holdout"]["falsificationRatio"] == 0.5);
}

TEST_CASE("leaving Auto puts the fixed thresholds back, recorded and announced") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Auto"}, {"minDecisions", 50}}));
  judged(*bed.ledger, "a", 60, 12, kNow - 20min, true);
  auto c = bed.calibrator();
  REQUIRE(c.round(kNow));
  REQUIRE(bed.status()["thresholds"]["fitError"].get<double>() == doctest::Approx(0.09));
  // The spec changes (a new generation): a round is due at once.
  Json p = *bed.cluster.get(res::kGatePolicies, "", "default");
  p["spec"]["mode"] = "Off";
  bed.cluster.put(res::kGatePolicies, p);
  auto changes = c.round(kNow + 1min);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  const Json s = bed.status();
  CHECK(s["thresholds"]["fitError"] == 0.10);
  CHECK(s["observedGeneration"] == 2);
  CHECK(s["history"].size() == 2);
  CHECK(s["history"][1]["reason"] == "mode Off: the fixed thresholds apply");
  CHECK_FALSE(s.contains("recommendation"));
  CHECK(bed.condition(s, "EnoughEvidence") == nullptr);  // Off reads no evidence
  CHECK(bed.events.events.back().reason == "ThresholdReset");
}

TEST_CASE("an invalid spec: the fixed thresholds, Ready False, one Warning") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies,
                  policy({{"mode", "Auto"}, {"bounds", {{"psi", {{"min", 0.7}, {"max", 0.6}}}}}}));
  auto c = bed.calibrator();
  REQUIRE(c.round(kNow));
  const Json s = bed.status();
  CHECK(s["thresholds"]["psi"] == 0.25);
  const Json* ready = bed.condition(s, "Ready");
  REQUIRE(ready);
  CHECK((*ready)["status"] == "False");
  CHECK((*ready)["reason"] == "InvalidSpec");
  CHECK((*ready)["message"] == "spec.bounds.psi: min 0.70 is not below max 0.60");
  REQUIRE(bed.events.events.size() == 1);
  CHECK(bed.events.events[0].type == kube::EventType::kWarning);
  CHECK(bed.events.events[0].reason == "InvalidGatePolicy");
  // Judged at this generation: no further round, no further Event, until the spec changes.
  REQUIRE(c.round(kNow + 2h));
  CHECK(bed.events.events.size() == 1);
}

TEST_CASE("without a ledger there is nothing to calibrate from, and the status says so") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Auto"}}));
  REQUIRE(bed.calibrator(false).round(kNow));
  const Json s = bed.status();
  const Json* ready = bed.condition(s, "Ready");
  REQUIRE(ready);
  CHECK((*ready)["reason"] == "NoLedger");
}

TEST_CASE("no GatePolicy: nothing to do, and no error") {
  Bed bed;
  auto r = bed.calibrator().round(kNow);
  REQUIRE(r);
  CHECK(r->empty());
  CHECK(bed.cluster.writes().empty());
}

TEST_CASE("the history keeps the newest changes only") {
  Bed bed;
  bed.cluster.put(res::kGatePolicies, policy({{"mode", "Auto"}, {"minDecisions", 10}}));
  CalibratorOptions o;
  o.historyLimit = 3;
  GatePolicyCalibrator c(bed.cluster, bed.ledger.get(), bed.events, nullptr, o);
  for (int round = 0; round < 5; ++round) {
    const WallTime at = kNow + std::chrono::hours(2 * round);
    // Each round's falsified admissions just inside the threshold it is at.
    judged(*bed.ledger, "r" + std::to_string(round) + "-", 20, 10, at + 1min, true, false,
           0.095 - 0.01 * round);
    REQUIRE(c.round(at + 1h));
  }
  const Json s = bed.status();
  REQUIRE(s["history"].size() == 3);
  CHECK(s["thresholds"]["fitError"].get<double>() == doctest::Approx(0.05));
  CHECK(s["history"][2]["to"].get<double>() == doctest::Approx(0.05));
}

TEST_CASE("a status with every field matches the fixture the CRD test applies") {
  // Auto, enough evidence for fit_error (tightened), a holdout's share, a change before.
  Json p = policy({{"mode", "Auto"}, {"minDecisions", 50}});
  p["metadata"]["generation"] = 4;
  p["status"] = {{"observedGeneration", 3},
                 {"lastCalibrationTime", "2026-05-28T19:06:40Z"},
                 {"thresholds",
                  {{"fitError", 0.1}, {"gluingDelta", 0.15}, {"psi", 0.24}, {"isolation", 0.35}}},
                 {"history",
                  {{{"time", "2026-05-28T19:06:40Z"},
                    {"gate", "psi"},
                    {"from", 0.25},
                    {"to", 0.24},
                    {"reason", "falsification 0.10 (5 of 50), miss 0.00 (0 of 0): ..."}}}}};
  RoundInput in;
  in.policy = &p;
  in.now = kNow;
  Evidence e;
  e.inForce[0] = {812, 61, 40, 2, 61 * 0.01, 751 * 0.04, 130, 120, 14};
  e.holdout[0] = {41, 4, 2, 1, 4 * 0.02, 37 * 0.05};
  e.inForce[3] = {20, 0, 0, 0, 0, 0, 20};
  in.evidence = e;
  const RoundOutput out = calibrationRound(in);
  REQUIRE(out.changes.size() == 1);
  const Json written = {{"status", out.status}};
  const std::string path =
      std::string(PI0_SOURCE_DIR) + "/tests/fixtures/kube/gatepolicy_status.json";
  if (std::getenv("PI0_UPDATE_FIXTURES")) std::ofstream(path) << written.dump(2) << "\n";
  std::ifstream file(path);
  REQUIRE_MESSAGE(file, path << " is missing: run with PI0_UPDATE_FIXTURES=1 to write it");
  CHECK(Json::parse(file) == written);
  // Every part is there: the CRD test applies this status and reads it back whole.
  for (const char* key :
       {"observedGeneration", "mode", "thresholds", "fixedThresholds", "lastCalibrationTime",
        "evidence", "recommendation", "history", "conditions"})
    CHECK(written["status"].contains(key));
  CHECK(written["status"]["evidence"]["gates"][0]["holdout"]["missRatio"] == 0.5);
  CHECK(written["status"]["evidence"]["gates"][0]["falsifiedSlack"] == 0.01);
  CHECK(written["status"]["evidence"]["gates"][0]["holdout"]["fineSlack"] == 0.05);
  CHECK(written["status"]["evidence"]["gates"][0]["sinceChange"] == 130);
  CHECK(written["status"]["evidence"]["gates"][0]["nearAdmitted"] == 120);
  CHECK(written["status"]["evidence"]["gates"][0]["nearFalsified"] == 14);
}
