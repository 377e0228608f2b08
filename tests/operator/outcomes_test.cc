// What followed a decision: a pod's outcomes from its status (as the cache keeps it, trimPod), a
// node's trouble from its fingerprint and its history over time, and the tracker joining both to
// decisions in a real SQLite ledger: an admitted pod's Ready and OOM kill, an eviction, and the
// node verdict after the horizon, trouble for one decision and fine for another; a decision made
// before the history began gets none.
#include <doctest/doctest.h>

#include <chrono>

#include "ledger/ledger.h"
#include "operator/outcomes.h"
#include "reconciler.h"
#include "temp_dir.h"

using nlohmann::json;
using namespace pi0;
using namespace pi0::op;
using namespace std::chrono_literals;

namespace {

const ledger::Time kT0 = ledger::Time(std::chrono::milliseconds(1'780'000'000'000));

json pod(const std::string& uid, const json& status) {
  json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", "web-" + uid}, {"namespace", "shop"}, {"uid", uid}}},
            {"spec", {{"containers", json::array({{{"name", "app"}}})}}},
            {"status", status}};
  trimPod(p);  // what the operator's cache holds
  return p;
}

std::vector<std::string> kinds(const std::vector<ledger::Outcome>& outcomes) {
  std::vector<std::string> out;
  for (const auto& o : outcomes)
    out.push_back(o.kind);
  return out;
}

fleet::NodeFingerprint node(const std::string& name, double psiMemory, double cpu = 0.3) {
  fleet::NodeFingerprint fp;
  fp.node = name;
  fp.ready = true;
  fp.windowFill = 1;
  fleet::SignalFingerprint s;
  s.samples = 64;
  s.current = cpu;
  s.forecast = fleet::SignalForecast{};
  s.forecast->troubleLine = 1;
  fp.signals["cpu"] = s;
  s.current = psiMemory;
  s.forecast->troubleLine = 0.25;
  fp.signals["psi_memory"] = s;
  return fp;
}

ledger::Decision decision(const std::string& id, const std::string& uid, ledger::Time at,
                          bool allowed) {
  ledger::Decision d;
  d.id = id;
  d.at = at;
  d.replica = "pi0-webhook-0";
  d.ns = "shop";
  d.pod = "web-" + uid;
  d.podUid = uid;
  d.mode = "Enforce";
  d.allowed = allowed;
  d.verdict = allowed;
  d.reason = allowed ? "Passed" : "GatesFailed";
  d.node = "node-a";
  return d;
}

}  // namespace

TEST_CASE("a pod's outcomes from its status, as the cache keeps it") {
  CHECK(kinds(podOutcomes(pod("1", {{"phase", "Pending"}}), kT0)).empty());
  CHECK(kinds(podOutcomes(
            pod("1", {{"phase", "Running"},
                      {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}),
            kT0)) == std::vector<std::string>{"ready"});
  CHECK(kinds(podOutcomes(pod("1", {{"phase", "Running"},
                                    {"conditions",
                                     json::array({{{"type", "Ready"}, {"status", "False"}}})}}),
                          kT0))
            .empty());

  const auto oom = podOutcomes(
      pod("1", {{"phase", "Running"},
                {"containerStatuses",
                 json::array({{{"name", "app"},
                               {"restartCount", 1},
                               {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}}}}},
                               {"lastState", {{"terminated", {{"reason", "OOMKilled"}}}}}}})}}),
      kT0 + 3s);
  CHECK(kinds(oom) == std::vector<std::string>{"oom_killed", "crash_looping"});
  CHECK(oom[0].detail == "container app: OOMKilled");
  CHECK(oom[0].at == kT0 + 3s);

  const auto evicted =
      podOutcomes(pod("1", {{"phase", "Running"},
                            {"conditions", json::array({{{"type", "DisruptionTarget"},
                                                         {"status", "True"},
                                                         {"reason", "TerminationByKubelet"},
                                                         {"message", "memory pressure"}}})}}),
                  kT0);
  CHECK(kinds(evicted) == std::vector<std::string>{"evicted"});
  CHECK(evicted[0].detail == "TerminationByKubelet: memory pressure");
  CHECK(kinds(podOutcomes(
            pod("1", {{"phase", "Running"},
                      {"conditions", json::array({{{"type", "DisruptionTarget"},
                                                   {"status", "True"},
                                                   {"reason", "PreemptionByScheduler"}}})}}),
            kT0)) == std::vector<std::string>{"preempted"});
  // A kubelet of before DisruptionTarget: phase Failed, reason Evicted.
  const auto old = podOutcomes(
      pod("1", {{"phase", "Failed"}, {"reason", "Evicted"}, {"message", "low on memory"}}), kT0);
  CHECK(kinds(old) == std::vector<std::string>{"evicted"});
  CHECK(old[0].detail == "Evicted: low on memory");
  CHECK(kinds(podOutcomes(pod("1", {{"phase", "Failed"}, {"reason", "DeadlineExceeded"}}), kT0)) ==
        std::vector<std::string>{"failed"});
}

TEST_CASE("a node is in trouble when a pressure reaches its line or a utilization saturates") {
  CHECK_FALSE(nodeTrouble(node("a", 0.10)));
  CHECK(nodeTrouble(node("a", 0.31)) == "psi_memory 0.31 >= 0.25");
  CHECK(nodeTrouble(node("a", 0.0, 1.0)) == "cpu 1.00 at saturation");
  fleet::NodeFingerprint early = node("a", 0.21);
  early.signals["psi_memory"].forecast.reset();  // window not full: the default line, 0.20
  CHECK(nodeTrouble(early) == "psi_memory 0.21 >= 0.20");
}

TEST_CASE("a node's trouble history: episodes open and close with what the view shows") {
  TroubleHistory h;
  fleet::FleetView view;
  view.setAgents({{"node-a", "http://127.0.0.1:1"}});
  const Clock::time_point c0 = systemClock().now();
  auto at = [&](double psi, int second) {
    view.recordSuccess("node-a", node("node-a", psi), c0);
    h.observe(*view.snapshot(), c0, kT0 + std::chrono::seconds(second));
  };
  at(0.1, 0);
  at(0.4, 10);  // trouble from 10 s
  at(0.1, 20);  // to 20 s
  CHECK(h.observedSince() == kT0);
  CHECK_FALSE(h.troubleWithin("node-a", kT0, kT0 + 10s));
  auto seen = h.troubleWithin("node-a", kT0, kT0 + 60s);
  REQUIRE(seen);
  CHECK(seen->at == kT0 + 10s);
  CHECK(seen->detail == "psi_memory 0.40 >= 0.25");
  CHECK(h.troubleWithin("node-a", kT0 + 15s, kT0 + 60s)->at == kT0 + 15s);  // ongoing at 15 s
  CHECK_FALSE(h.troubleWithin("node-a", kT0 + 20s, kT0 + 60s));
  CHECK_FALSE(h.troubleWithin("node-b", kT0, kT0 + 60s));
  h.forget(kT0 + 30s);
  CHECK_FALSE(h.troubleWithin("node-a", kT0, kT0 + 60s));
}

TEST_CASE("the tracker joins pod outcomes and node verdicts to the ledger's decisions") {
  pi0::testing::TempDir dir;
  ledger::Options options;
  options.path = dir.path() / "ledger.db";
  auto l = ledger::Ledger::open(options);
  REQUIRE(l);
  const auto horizon = std::chrono::minutes(15);
  OutcomeTracker tracker(**l, horizon);

  fleet::FleetView view;
  view.setAgents({{"node-a", "http://127.0.0.1:1"}});
  const Clock::time_point c0 = systemClock().now();
  auto observe = [&](double psi, ledger::Time at) {
    view.recordSuccess("node-a", node("node-a", psi), c0);
    tracker.nodesObserved(*view.snapshot(), c0, at);
  };
  // History from kT0; decision "early" came before it.
  observe(0.1, kT0);
  const std::vector<ledger::Decision> made = {
      decision("early", "u0", kT0 - 1min, true), decision("admitted", "u1", kT0 + 1min, true),
      decision("denied", "u2", kT0 + 2min, false), decision("later", "u3", kT0 + 20min, true)};
  REQUIRE((*l)->record(made));

  // u1 becomes Ready, then is OOMKilled; a pod no decision names changes too.
  const auto ready = std::make_shared<const json>(
      pod("u1", {{"phase", "Running"},
                 {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}));
  tracker.podChanged(nullptr, ready, kT0 + 2min);
  const auto oom = std::make_shared<const json>(
      pod("u1", {{"phase", "Running"},
                 {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
                 {"containerStatuses",
                  json::array({{{"name", "app"},
                                {"restartCount", 1},
                                {"lastState", {{"terminated", {{"reason", "OOMKilled"}}}}}}})}}));
  tracker.podChanged(ready, oom, kT0 + 5min);  // only the new outcome is queued
  tracker.podChanged(nullptr, std::make_shared<const json>(pod("nobody", {{"phase", "Failed"}})),
                     kT0 + 5min);
  CHECK(tracker.queued() == 3);

  // Node trouble from 10 to 12 minutes.
  observe(0.4, kT0 + 10min);
  observe(0.1, kT0 + 12min);

  tracker.flush(kT0 + 17min);  // "admitted"'s horizon has passed (at 16 min), "denied"'s not
  CHECK(tracker.queued() == 0);
  auto byId = [&](const std::string& id) {
    ledger::Query q;
    q.limit = 10;
    auto rows = (*l)->decisions(q);
    REQUIRE(rows);
    for (const auto& r : *rows)
      if (r.decision.id == id) return kinds(r.outcomes);
    FAIL("no decision " << id);
    return std::vector<std::string>{};
  };
  CHECK(byId("admitted") == std::vector<std::string>{"ready", "oom_killed", "node_trouble"});
  CHECK(byId("denied").empty());
  CHECK(byId("early").empty());  // before the history: never judged

  tracker.flush(kT0 + 40min);
  CHECK(byId("denied") == std::vector<std::string>{"node_trouble"});  // trouble at 10 min
  CHECK(byId("later") == std::vector<std::string>{"node_fine"});      // 20 to 35 min: calm
  CHECK(byId("early").empty());
  ledger::Query q;
  q.podUid = "u1";
  auto rows = (*l)->decisions(q);
  REQUIRE(rows);
  REQUIRE(rows->size() == 1);
  const auto& outcomes = rows->front().outcomes;
  REQUIRE(outcomes.size() == 3);
  CHECK(outcomes[1].detail == "container app: OOMKilled");
  CHECK(outcomes[2].at == kT0 + 10min);
  CHECK(outcomes[2].detail == "psi_memory 0.40 >= 0.25");
}

TEST_CASE("a pod outcome seen before its decision arrives waits for it, a while") {
  pi0::testing::TempDir dir;
  ledger::Options options;
  options.path = dir.path() / "ledger.db";
  auto l = ledger::Ledger::open(options);
  REQUIRE(l);
  OutcomeTracker tracker(**l, std::chrono::minutes(15));
  const auto ready = [](const std::string& uid) {
    return std::make_shared<const json>(
        pod(uid, {{"phase", "Running"},
                  {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}}));
  };
  // The pod is Ready before the webhook replica's batch with its decision has come.
  tracker.podChanged(nullptr, ready("late"), kT0 + 2s);
  tracker.podChanged(nullptr, ready("undecided"), kT0 + 2s);  // an excluded namespace's pod
  tracker.flush(kT0 + 3s);
  CHECK(tracker.queued() == 2);
  // The decision arrives, stamped a little after the outcome by a clock that runs ahead.
  REQUIRE((*l)->record(std::vector<ledger::Decision>{decision("d", "late", kT0 + 2500ms, true)}));
  tracker.flush(kT0 + 8s);
  CHECK(tracker.queued() == 1);
  ledger::Query q;
  q.podUid = "late";
  auto rows = (*l)->decisions(q);
  REQUIRE(rows);
  REQUIRE(rows->size() == 1);
  REQUIRE(rows->front().outcomes.size() == 1);
  CHECK(rows->front().outcomes[0].kind == "ready");
  // The other never gets one: dropped once the grace has passed.
  tracker.flush(kT0 + 2s + OutcomeTracker::kDecisionGrace + 1s);
  CHECK(tracker.queued() == 0);
}
