// The JSON a batch of decisions travels in from pi0-webhook to the ledger: a batch reads back as
// it was written, and each defect is refused with the field it is in.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/records.h"

using namespace pi0;
using namespace pi0::ledger;
using namespace std::chrono_literals;

namespace {

Decision sample(const std::string& id) {
  Decision d;
  d.id = id;
  d.at = Time(std::chrono::milliseconds(1'780'000'000'123));
  d.replica = "pi0-webhook-7c9d-x2";
  d.ns = "shop";
  d.pod = "web-7d9f-";
  d.podUid = "0b5e4a9c-7f7e-4c53-9d1c-3a1f6a2e8b10";
  d.ownerKind = "ReplicaSet";
  d.ownerName = "web-7d9f";
  d.channel = "shop/web";
  d.mode = "Warn";
  d.allowed = true;
  d.verdict = false;
  d.reason = "GatesFailed";
  d.node = "ip-10-20-0-7";
  d.candidates = 4950;
  d.gates = {{"cpu", "fit_error", 0.1234567890123, 0.1, 0, false},
             {"memory", "isolation", 0.31, 0.35 + 1.0 / 3, 1.0 / 3, false}};
  d.holdout = true;
  return d;
}

}  // namespace

TEST_CASE("a batch of decisions reads back as it was written") {
  const std::vector<Decision> batch{sample("a/1"), sample("a/2")};
  auto back = parseDecisions(toJson(batch));
  REQUIRE_MESSAGE(back, (back ? "" : back.error().message));
  CHECK(*back == batch);
  auto empty = parseDecisions(toJson({}));
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("a defect is refused, naming its field") {
  const nlohmann::json good = nlohmann::json::parse(toJson(std::vector<Decision>{sample("a/1")}));
  struct Case {
    const char* what;
    nlohmann::json::json_pointer at;
    nlohmann::json value;  // null: remove the field
    std::string error;
  };
  using P = nlohmann::json::json_pointer;
  const Case cases[] = {
      {"kind", P("/kind"), "Fingerprint",
       "decision batch: stability.pi0.io/v1alpha1 Fingerprint, expected stability.pi0.io/v1alpha1 "
       "DecisionBatch"},
      {"no decisions", P("/decisions"), nullptr, "decision batch: batch.decisions: missing"},
      {"time", P("/decisions/0/at"), "yesterday",
       "decision batch: batch.decisions[0].at: not an RFC 3339 time"},
      {"no id", P("/decisions/0/id"), nullptr, "decision batch: batch.decisions[0].id: missing"},
      {"empty id", P("/decisions/0/id"), "", "decision batch: batch.decisions[0].id: empty"},
      {"allowed", P("/decisions/0/allowed"), "yes",
       "decision batch: batch.decisions[0].allowed: must be a boolean, not string"},
      {"candidates", P("/decisions/0/candidates"), -1, "batch.decisions[0].candidates"},
      {"owner", P("/decisions/0/owner/kind"), nullptr,
       "decision batch: batch.decisions[0].owner.kind: missing"},
      {"gate value", P("/decisions/0/gates/1/value"), "high",
       "decision batch: batch.decisions[0].gates[1].value: must be a number, not string"},
      {"gates", P("/decisions/0/gates"), nlohmann::json::object(),
       "decision batch: batch.decisions[0].gates: must be an array, not object"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    nlohmann::json doc = good;
    if (c.value.is_null()) {
      doc[c.at.parent_pointer()].erase(c.at.back());
    } else {
      doc[c.at] = c.value;
    }
    auto r = parseDecisions(doc.dump());
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error().message.find(c.error) != std::string::npos, r.error().message);
  }
  auto notJson = parseDecisions("{\"decisions\": [");
  REQUIRE_FALSE(notJson);
  CHECK(notJson.error().message.starts_with("decision batch: not JSON: "));
}
