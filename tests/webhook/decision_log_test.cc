// The decision log: a decision's record carries what admission saw and judged; records leave
// the log only when acknowledged, a failed send keeps them, and a full log drops the oldest and
// counts them.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "decision_log.h"

using namespace pi0;
using namespace pi0::webhook;
using namespace std::chrono_literals;

namespace {

const ledger::Time kStart = ledger::Time(std::chrono::milliseconds(1'780'000'000'000));

admission::PodRequest pod() {
  admission::PodRequest p;
  p.ns = "shop";
  p.generateName = "web-7d9f-";
  p.uid = "0b5e4a9c";
  p.ownerKind = "ReplicaSet";
  p.ownerName = "web-7d9f";
  return p;
}

admission::Decision denied() {
  admission::Decision d;
  d.allowed = true;  // Warn: the answer allows
  d.verdict = false;
  d.reason = admission::Reason::kGatesFailed;
  d.mode = admission::Mode::kWarn;
  d.node = "node-b";
  d.candidates = 3;
  d.gates = {{Resource::kCpu, admission::Gate::kFitError, 0.18, 0.10, 0, false},
             {Resource::kMemory, admission::Gate::kIsolation, 0.5, 0.30, 0.25, true}};
  return d;
}

}  // namespace

TEST_CASE("a decision's record: the pod, the verdict, the node and every gate read") {
  const ledger::Decision r = DecisionLog::record(pod(), denied(), "shop/web", kStart + 5s);
  CHECK(r.at == kStart + 5s);
  CHECK(r.ns == "shop");
  CHECK(r.pod == "web-7d9f-");  // not named yet: its generateName
  CHECK(r.podUid == "0b5e4a9c");
  CHECK(r.ownerKind == "ReplicaSet");
  CHECK(r.ownerName == "web-7d9f");
  CHECK(r.channel == "shop/web");
  CHECK(r.mode == "Warn");
  CHECK(r.allowed);
  CHECK_FALSE(r.verdict);
  CHECK(r.reason == "GatesFailed");
  CHECK(r.node == "node-b");
  CHECK(r.candidates == 3);
  CHECK(r.gates == std::vector<ledger::GateRecord>{{"cpu", "fit_error", 0.18, 0.10, 0, false},
                                                   {"memory", "isolation", 0.5, 0.30, 0.25, true}});
  admission::PodRequest named = pod();
  named.name = "web-7d9f-abcde";
  CHECK(DecisionLog::record(named, denied(), "", kStart).pod == "web-7d9f-abcde");
}

TEST_CASE("records leave the log only when acknowledged; a full log drops the oldest") {
  DecisionLog log("pi0-webhook-0", 4, kStart);
  CHECK_FALSE(log.peek(10));
  for (int i = 0; i < 3; ++i)
    log.add(pod(), denied(), "", kStart + std::chrono::seconds(i));
  auto batch = log.peek(2);
  REQUIRE(batch);
  REQUIRE(batch->decisions.size() == 2);
  CHECK(batch->decisions[0].id == "pi0-webhook-0/1780000000000/1");
  CHECK(batch->decisions[1].id == "pi0-webhook-0/1780000000000/2");
  CHECK(batch->decisions[0].replica == "pi0-webhook-0");
  CHECK(batch->last == 2);

  // The send failed: nothing is acknowledged, the same records come again.
  auto again = log.peek(2);
  REQUIRE(again);
  CHECK(again->decisions == batch->decisions);

  // A record added while the batch is out stays after the acknowledgement.
  log.add(pod(), denied(), "", kStart + 3s);
  log.acknowledge(batch->last);
  CHECK(log.size() == 2);
  auto rest = log.peek(10);
  REQUIRE(rest);
  CHECK(rest->decisions.front().id == "pi0-webhook-0/1780000000000/3");
  CHECK(rest->last == 4);

  // Full (4): the oldest make room and are counted.
  for (int i = 0; i < 5; ++i)
    log.add(pod(), denied(), "", kStart + 10s);
  CHECK(log.size() == 4);
  CHECK(log.dropped() == 3);
  CHECK(log.added() == 9);
  auto kept = log.peek(10);
  REQUIRE(kept);
  CHECK(kept->decisions.front().id == "pi0-webhook-0/1780000000000/6");
  // Acknowledging a batch some of whose records were dropped meanwhile removes only up to it.
  log.acknowledge(rest->last);
  CHECK(log.size() == 4);
  log.acknowledge(kept->last);
  CHECK(log.size() == 0);

  // A replica started again names its records apart.
  DecisionLog restarted("pi0-webhook-0", 4, kStart + 60s);
  restarted.add(pod(), denied(), "", kStart + 61s);
  CHECK(restarted.peek(1)->decisions[0].id == "pi0-webhook-0/1780000060000/1");
}

TEST_CASE("a batch of the log travels as the ledger's JSON and reads back the same") {
  DecisionLog log("pi0-webhook-1", 100, kStart);
  log.add(pod(), denied(), "shop/web", kStart + 1s);
  log.add(pod(), admission::Decision{}, "", kStart + 2s);  // a plain pass, no node
  auto batch = log.peek(100);
  REQUIRE(batch);
  auto back = ledger::parseDecisions(ledger::toJson(batch->decisions));
  REQUIRE_MESSAGE(back, (back ? "" : back.error().message));
  CHECK(*back == batch->decisions);
}
