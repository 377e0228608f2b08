#include <doctest/doctest.h>

#include "channel_status.h"
#include "common/timestamp.h"
#include "workload_state.h"

using nlohmann::json;
using namespace pi0;
using namespace pi0::op;
using stability::ChannelState;
using std::chrono::seconds;

namespace {

json workload(const std::string& name, int replicas, int ready,
              std::optional<int> original = std::nullopt) {
  json w = {{"metadata", {{"name", name}}},
            {"spec", {{"replicas", replicas}}},
            {"status", {{"readyReplicas", ready}}}};
  if (original) w["metadata"]["annotations"][kOriginalReplicas] = std::to_string(*original);
  return w;
}

const stability::WallClock::time_point t0 =
    stability::WallClock::from_time_t(1795000000);  // 2026-11-18

stability::ChannelSpec shop() {
  stability::ChannelSpec spec;
  spec.ref = {"shop", "web"};
  spec.generation = 4;
  return spec;
}

const json* condition(const json& status, const std::string& type) {
  for (const auto& c : status["conditions"]) {
    if (c["type"] == type) return &c;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("a channel's state comes from its workloads' undo records") {
  CHECK(stateFromWorkloads({workload("a", 3, 3)}) == ChannelState::kActive);
  CHECK(stateFromWorkloads({workload("a", 1, 1, 3), workload("b", 2, 2)}) ==
        ChannelState::kDegraded);
  CHECK(stateFromWorkloads({workload("a", 1, 1, 3), workload("b", 0, 0, 2)}) ==
        ChannelState::kInactive);
  // Recorded but already at or below the degraded count from the start: still degraded, not shut
  // down.
  CHECK(stateFromWorkloads({workload("a", 1, 1, 1)}) == ChannelState::kActive);
  CHECK(stateFromWorkloads({workload("a", 0, 0, 0)}) == ChannelState::kActive);
}

TEST_CASE(
    "item 12: an HPA that still carries Pi0's record keeps the channel from counting as back") {
  // A restore stopped after the workload's count came back but before its HPA's bounds did.
  json hpa = {{"metadata", {{"name", "a"}}}, {"spec", {{"minReplicas", 1}, {"maxReplicas", 1}}}};
  hpa["metadata"]["annotations"][kOriginalMinReplicas] = "2";
  hpa["metadata"]["annotations"][kOriginalMaxReplicas] = "6";
  CHECK(stateFromWorkloads({workload("a", 3, 3)}, {hpa}) == ChannelState::kDegraded);
  CHECK(stateFromWorkloads({workload("a", 3, 3)}, {json()}) == ChannelState::kActive);
  // A record on the workload alone at its original count (a degrade stopped after its first
  // write): Active, and a leftover record a restore clears.
  CHECK(stateFromWorkloads({workload("a", 3, 3, 3)}, {json()}) == ChannelState::kActive);
  CHECK(leftoverRecord({workload("a", 3, 3, 3)}, {json()}));
  CHECK_FALSE(leftoverRecord({workload("a", 3, 3)}, {json()}));
}

TEST_CASE("status: terms, priority, replicas, conditions") {
  const auto spec = shop();
  ChannelInputs in;
  in.spec = &spec;
  in.workloads = {workload("web", 1, 1, 3), workload("worker", 2, 2)};
  in.pods = {{"p1", true, 0}, {"p2", true, 0}, {"p3", true, 0}};
  in.level = "elevated";
  in.now = t0;
  // Before Pi0 degraded it, the channel delivered a throughput of 0.9.
  in.previousStatus = {{"terms", {{"throughput", 0.9}}}};
  const auto out = channelStatus(in);
  CHECK(out.state == ChannelState::kDegraded);
  CHECK(out.ready);
  // Pi0 holds it Degraded, so throughput keeps its value from before (0.9), not ready 3 over
  // original 3 + 2 = 0.6 (what Pi0 did must not lower the priority it acts on); reliability 1;
  // recovery 1: CPO = 0.4·0.9 + 0.4·1 + 0.2·1 = 0.96.
  CHECK(out.cpo == doctest::Approx(0.96));
  CHECK(out.status["priority"] == 0.96);
  CHECK(out.status["state"] == "Degraded");
  CHECK(out.status["level"] == "elevated");
  CHECK(out.status["replicas"] == json{{"desired", 3}, {"ready", 3}});
  CHECK(out.status["failureProbability"] == 0.0);
  CHECK(out.status["observedGeneration"] == 4);
  REQUIRE(condition(out.status, "Ready"));
  CHECK((*condition(out.status, "Ready"))["status"] == "True");
  CHECK((*condition(out.status, "TargetsFound"))["status"] == "True");
  CHECK((*condition(out.status, "Ready"))["observedGeneration"] == 4);
}

TEST_CASE("a missing target is a condition that says which") {
  const auto spec = shop();
  ChannelInputs in;
  in.spec = &spec;
  in.workloads = {workload("web", 2, 2)};
  in.missingTargets = {"Deployment/cache"};
  in.now = t0;
  const auto out = channelStatus(in);
  const auto* found = condition(out.status, "TargetsFound");
  REQUIRE(found);
  CHECK((*found)["status"] == "False");
  CHECK((*found)["reason"] == "TargetMissing");
  CHECK((*found)["message"] == "not found in namespace shop: Deployment/cache");
  CHECK_FALSE(out.ready);
}

TEST_CASE("nothing changes, nothing is written; a change is; transitions keep their time") {
  const auto spec = shop();
  ChannelInputs in;
  in.spec = &spec;
  in.workloads = {workload("web", 2, 2)};
  in.pods = {{"p1", true, 0}, {"p2", true, 0}};
  in.now = t0;
  auto first = channelStatus(in);
  in.previousStatus = first.status;
  in.health = healthFromStatus(first.status);
  in.now = t0 + seconds(10);
  auto second = channelStatus(in);
  CHECK_FALSE(statusChanged(first.status, second.status));

  // One pod goes NotReady: the status changes, an outage starts, Ready turns False with a new time.
  in.previousStatus = second.status;
  in.health = healthFromStatus(second.status);
  in.workloads = {workload("web", 2, 1)};
  in.pods = {{"p1", true, 0}, {"p2", false, 1}};
  in.now = t0 + seconds(20);
  auto third = channelStatus(in);
  CHECK(statusChanged(second.status, third.status));
  CHECK((*condition(third.status, "Ready"))["status"] == "False");
  CHECK((*condition(third.status, "Ready"))["lastTransitionTime"] == rfc3339(t0 + seconds(20), 0));
  CHECK(third.status["health"]["notReadySince"] == rfc3339(t0 + seconds(20), 0));

  // The outage is kept in the status: a new leader reads it back and finishes it 40 s later.
  const auto restored = healthFromStatus(third.status);
  CHECK(restored.notReadySince == t0 + seconds(20));
  in.previousStatus = third.status;
  in.health = restored;
  in.workloads = {workload("web", 2, 2)};
  in.pods = {{"p1", true, 0}, {"p2", true, 1}};
  in.now = t0 + seconds(60);
  auto fourth = channelStatus(in);
  CHECK(fourth.status["health"]["outages"] == 1);
  CHECK(fourth.status["health"]["meanTimeToRecoverSeconds"] == 40.0);
  CHECK(fourth.status["terms"]["recovery"] == doctest::Approx(0.6));  // 1 / (1 + 40/60)
}

TEST_CASE("throughput from the query, and a failing query is a condition") {
  auto spec = shop();
  spec.throughput = stability::Throughput{"sum(rate(http_requests_total[1m]))", 200};
  ChannelInputs in;
  in.spec = &spec;
  in.workloads = {workload("web", 2, 2)};
  in.throughputValue = 50;
  in.now = t0;
  auto out = channelStatus(in);
  CHECK(out.status["terms"]["throughput"] == 0.25);
  CHECK((*condition(out.status, "ThroughputMeasured"))["status"] == "True");
  in.throughputValue.reset();
  in.throughputError = "Prometheus at http://prometheus:9090: connection refused";
  out = channelStatus(in);
  CHECK((*condition(out.status, "ThroughputMeasured"))["status"] == "False");
  CHECK((*condition(out.status, "ThroughputMeasured"))["message"] == *in.throughputError);
  CHECK(out.status["terms"]["throughput"] == 1.0);  // falls back to ready/desired
}

TEST_CASE("status.buffer: allocated, a baseline kept while the level stays up, used beyond it") {
  const stability::Resources allocation{500, int64_t{1} << 30};
  // First look at an elevated level: the baseline is what the pods request now, nothing used.
  json b = bufferStatus(allocation, {300, int64_t{256} << 20, 0}, json::object(), t0);
  CHECK(b["allocated"] == json{{"cpu", "500m"}, {"memory", "1Gi"}});
  CHECK(b["baseline"] == json{{"cpu", "300m"}, {"memory", "256Mi"}});
  CHECK(b["used"] == json{{"cpu", "0"}, {"memory", "0"}});
  CHECK(b["observedAt"] == rfc3339Millis(t0));
  // Two more pods of 100m and 64Mi: used grows by them, the baseline is kept.
  const json previous = {{"buffer", b}};
  b = bufferStatus(allocation, {500, int64_t{384} << 20, 0}, previous, t0 + seconds(5));
  CHECK(b["baseline"] == json{{"cpu", "300m"}, {"memory", "256Mi"}});
  CHECK(b["requested"] == json{{"cpu", "500m"}, {"memory", "384Mi"}});
  CHECK(b["used"] == json{{"cpu", "200m"}, {"memory", "128Mi"}});
  // Fewer pods than at the rise (a shutdown): nothing used, never negative.
  b = bufferStatus(allocation, {0, 0, 0}, previous, t0 + seconds(9));
  CHECK(b["used"] == json{{"cpu", "0"}, {"memory", "0"}});
  // No allocation (the first level): no buffer at all.
  CHECK(bufferStatus(std::nullopt, {300, 0, 0}, previous, t0).is_null());
  CHECK(bufferStatus(stability::Resources{}, {300, 0, 0}, previous, t0).is_null());
}
