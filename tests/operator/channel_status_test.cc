// A Channel's status: its state from the workloads' undo records, the typed status and its JSON
// (channel_status.h), and the status one pass computes (channel_reconcile.h) over a few looks.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <functional>

#include "channel_reconcile.h"
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

// The view the I/O layer would build (viewOf) of a Channel with `spec` and these workloads.
ChannelView viewWith(const stability::ChannelSpec& spec, const std::vector<json>& workloads,
                     std::vector<std::string> missing = {}) {
  ChannelView v;
  v.object = std::make_shared<const json>(json{
      {"metadata",
       {{"namespace", spec.ref.ns}, {"name", spec.ref.name}, {"generation", spec.generation}}}});
  v.spec = spec;
  v.missing = std::move(missing);
  for (const auto& w : workloads) {
    v.desired += w["spec"]["replicas"].get<int64_t>();
    v.readyReplicas += w["status"]["readyReplicas"].get<int64_t>();
  }
  v.state = stateFromWorkloads(workloads);
  return v;
}

// The JSON form of a condition in the status `s` writes.
json condition(const ChannelStatus& s, const std::string& type) {
  const json conditions = toJson(s)["conditions"];  // held: not a temporary's member
  for (const auto& c : conditions) {
    if (c["type"] == type) return c;
  }
  return json();
}

// status.buffer as written, or null.
json bufferJson(const std::optional<ChannelBuffer>& buffer) {
  ChannelStatus s;
  s.measured = true;
  s.buffer = buffer;
  const json j = toJson(s);
  return j.contains("buffer") ? j["buffer"] : json();
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
  const auto view = viewWith(shop(), {workload("web", 1, 1, 3), workload("worker", 2, 2)});
  MatrixStatus matrix;
  matrix.level = "elevated";
  matrix.levelIndex = 1;
  ChannelWorld w;
  w.view = &view;
  w.matrix = &matrix;
  w.pods = {{"p1", true, 0}, {"p2", true, 0}, {"p3", true, 0}};
  w.now = t0;
  // Before Pi0 degraded it, the channel delivered a throughput of 0.9.
  w.previous.measured = true;
  w.previous.terms.throughput = 0.9;
  const auto pass = planChannel(w);
  const auto& s = pass.status;
  CHECK(s.state == ChannelState::kDegraded);
  CHECK(pass.state == ChannelState::kDegraded);
  CHECK(pass.ready);
  // Pi0 holds it Degraded, so throughput keeps its value from before (0.9), not ready 3 over
  // original 3 + 2 = 0.6 (what Pi0 did must not lower the priority it acts on); reliability 1;
  // recovery 1: CPO = 0.4·0.9 + 0.4·1 + 0.2·1 = 0.96.
  CHECK(s.priority == doctest::Approx(0.96));
  const json j = toJson(s);
  CHECK(j["priority"] == 0.96);
  CHECK(j["state"] == "Degraded");
  CHECK(j["level"] == "elevated");
  CHECK(j["replicas"] == json{{"desired", 3}, {"ready", 3}});
  CHECK(j["failureProbability"] == 0.0);
  CHECK(j["observedGeneration"] == 4);
  CHECK(condition(s, "Ready")["status"] == "True");
  CHECK(condition(s, "TargetsFound")["status"] == "True");
  CHECK(condition(s, "Ready")["observedGeneration"] == 4);
  CHECK(condition(s, "Valid")["status"] == "True");
  CHECK(condition(s, "ThroughputMeasured").is_null());  // no query, no condition
}

TEST_CASE("a missing target is a condition that says which") {
  const auto view = viewWith(shop(), {workload("web", 2, 2)}, {"Deployment/cache"});
  ChannelWorld w;
  w.view = &view;
  w.now = t0;
  const auto pass = planChannel(w);
  const auto found = condition(pass.status, "TargetsFound");
  REQUIRE(found.is_object());
  CHECK(found["status"] == "False");
  CHECK(found["reason"] == "TargetMissing");
  CHECK(found["message"] == "not found in namespace shop: Deployment/cache");
  CHECK_FALSE(pass.ready);
}

TEST_CASE("nothing changes, nothing is written; a change is; transitions keep their time") {
  auto view = viewWith(shop(), {workload("web", 2, 2)});
  ChannelWorld w;
  w.view = &view;
  w.pods = {{"p1", true, 0}, {"p2", true, 0}};
  w.now = t0;
  // Each pass reads back what the one before wrote, as the reconciler does.
  auto look = [&](ChannelWorld& world) {
    auto pass = planChannel(world);
    world.previous = channelStatusFromJson(toJson(pass.status));
    world.restartsByPod = pass.restartsByPod;
    return pass.status;
  };
  const auto first = look(w);
  w.now = t0 + seconds(10);
  const auto second = look(w);
  CHECK_FALSE(worthWriting(first, second));
  CHECK(first.health.observedAt != second.health.observedAt);

  // One pod goes NotReady: the status changes, an outage starts, Ready turns False with a new time.
  view = viewWith(shop(), {workload("web", 2, 1)});
  w.pods = {{"p1", true, 0}, {"p2", false, 1}};
  w.now = t0 + seconds(20);
  const auto third = look(w);
  CHECK(worthWriting(second, third));
  CHECK(condition(third, "Ready")["status"] == "False");
  CHECK(condition(third, "Ready")["lastTransitionTime"] == rfc3339(t0 + seconds(20), 0));
  CHECK(toJson(third)["health"]["notReadySince"] == rfc3339(t0 + seconds(20), 0));

  // The outage is kept in the status: a new leader reads it back and finishes it 40 s later.
  const auto restored = healthOf(channelStatusFromJson(toJson(third)));
  CHECK(restored.notReadySince == t0 + seconds(20));
  CHECK_FALSE(restored.restartsKnown);
  w.restartsByPod.reset();  // a new leader
  view = viewWith(shop(), {workload("web", 2, 2)});
  w.pods = {{"p1", true, 0}, {"p2", true, 1}};
  w.now = t0 + seconds(60);
  const auto fourth = look(w);
  const json j = toJson(fourth);
  CHECK(j["health"]["outages"] == 1);
  CHECK(j["health"]["meanTimeToRecoverSeconds"] == 40.0);
  CHECK(j["terms"]["recovery"] == doctest::Approx(0.6));  // 1 / (1 + 40/60)
  CHECK(condition(fourth, "Ready")["lastTransitionTime"] == rfc3339(t0 + seconds(60), 0));
}

TEST_CASE("throughput from the query, and a failing query is a condition") {
  auto spec = shop();
  spec.throughput = stability::Throughput{"sum(rate(http_requests_total[1m]))", 200};
  const auto view = viewWith(spec, {workload("web", 2, 2)});
  ChannelWorld w;
  w.view = &view;
  w.throughputValue = 50;
  w.now = t0;
  auto pass = planChannel(w);
  CHECK(toJson(pass.status)["terms"]["throughput"] == 0.25);
  CHECK(condition(pass.status, "ThroughputMeasured")["status"] == "True");
  w.throughputValue.reset();
  w.throughputError = "Prometheus at http://prometheus:9090: connection refused";
  pass = planChannel(w);
  CHECK(condition(pass.status, "ThroughputMeasured")["status"] == "False");
  CHECK(condition(pass.status, "ThroughputMeasured")["message"] == *w.throughputError);
  CHECK(toJson(pass.status)["terms"]["throughput"] == 1.0);  // falls back to ready/desired
}

TEST_CASE("status.buffer: allocated, a baseline kept while the level stays up, used beyond it") {
  const stability::Resources allocation{500, int64_t{1} << 30};
  // First look at an elevated level: the baseline is what the pods request now, nothing used.
  auto b = bufferStatus(allocation, {300, int64_t{256} << 20, 0}, std::nullopt, t0);
  REQUIRE(b);
  CHECK(b->baseline == Quantities{300, int64_t{256} << 20});
  json j = bufferJson(b);
  CHECK(j["allocated"] == json{{"cpu", "500m"}, {"memory", "1Gi"}});
  CHECK(j["baseline"] == json{{"cpu", "300m"}, {"memory", "256Mi"}});
  CHECK(j["used"] == json{{"cpu", "0"}, {"memory", "0"}});
  CHECK(j["observedAt"] == rfc3339Millis(t0));
  // Two more pods of 100m and 64Mi: used grows by them, the baseline is kept.
  const auto previous = b;
  b = bufferStatus(allocation, {500, int64_t{384} << 20, 0}, previous, t0 + seconds(5));
  j = bufferJson(b);
  CHECK(j["baseline"] == json{{"cpu", "300m"}, {"memory", "256Mi"}});
  CHECK(j["requested"] == json{{"cpu", "500m"}, {"memory", "384Mi"}});
  CHECK(j["used"] == json{{"cpu", "200m"}, {"memory", "128Mi"}});
  // Fewer pods than at the rise (a shutdown): nothing used, never negative.
  b = bufferStatus(allocation, {0, 0, 0}, previous, t0 + seconds(9));
  CHECK(bufferJson(b)["used"] == json{{"cpu", "0"}, {"memory", "0"}});
  // No allocation (the first level): no buffer at all.
  CHECK_FALSE(bufferStatus(std::nullopt, {300, 0, 0}, previous, t0));
  CHECK_FALSE(bufferStatus(stability::Resources{}, {300, 0, 0}, previous, t0));
  // An allocation of one resource names only that one.
  CHECK(bufferJson(bufferStatus(stability::Resources{250, std::nullopt}, {0, 0, 0}, std::nullopt,
                                t0))["allocated"] == json{{"cpu", "250m"}});
}

TEST_CASE("worth writing: not for the observation times or the numbers' last digits") {
  ChannelStatus a;
  a.measured = true;
  a.state = ChannelState::kDegraded;
  a.priority = 0.5;
  a.terms = {0.9, 0.8, 0.7};
  a.failureProbability = 0.2;
  a.replicas = {3, 3};
  a.level = "high";
  a.health = {t0, 1, 40.0, std::nullopt};
  a.buffer = ChannelBuffer{{500, std::nullopt}, {100, 0}, {200, 0}, {100, 0}, t0};
  setCondition(a.conditions, "Ready", true, "ReplicasReady", "3 of 3 replicas ready", 4, t0);
  CHECK_FALSE(worthWriting(a, a));

  struct Row {
    const char* change;
    std::function<void(ChannelStatus&)> apply;
    bool write;
  };
  const Row rows[] = {
      {"health.observedAt", [](ChannelStatus& s) { s.health.observedAt = t0 + seconds(10); },
       false},
      {"buffer.observedAt", [](ChannelStatus& s) { s.buffer->observedAt = t0 + seconds(10); },
       false},
      {"priority +0.005", [](ChannelStatus& s) { s.priority += 0.005; }, false},
      {"priority +0.02", [](ChannelStatus& s) { s.priority += 0.02; }, true},
      {"terms.reliability -0.02", [](ChannelStatus& s) { s.terms.reliability -= 0.02; }, true},
      {"mttr +0.005", [](ChannelStatus& s) { *s.health.meanTimeToRecoverSeconds += 0.005; }, false},
      {"mttr gone", [](ChannelStatus& s) { s.health.meanTimeToRecoverSeconds.reset(); }, true},
      {"outages", [](ChannelStatus& s) { s.health.outages = 2; }, true},
      {"notReadySince", [](ChannelStatus& s) { s.health.notReadySince = t0; }, true},
      {"state", [](ChannelStatus& s) { s.state = ChannelState::kInactive; }, true},
      {"level", [](ChannelStatus& s) { s.level.reset(); }, true},
      {"ready replicas", [](ChannelStatus& s) { s.replicas.ready = 2; }, true},
      {"buffer used", [](ChannelStatus& s) { s.buffer->used.cpuMilli = 150; }, true},
      {"buffer gone", [](ChannelStatus& s) { s.buffer.reset(); }, true},
      {"observedGeneration", [](ChannelStatus& s) { s.observedGeneration = 5; }, true},
      {"condition message",
       [](ChannelStatus& s) { s.conditions[0].message = "2 of 3 replicas ready"; }, true},
      // A transition time as written: whole seconds (the stored one was read back truncated).
      {"transition time within its second",
       [](ChannelStatus& s) {
         *s.conditions[0].lastTransitionTime += std::chrono::milliseconds(300);
       },
       false},
      {"not measured", [](ChannelStatus& s) { s.measured = false; }, true},
  };
  for (const auto& row : rows) {
    CAPTURE(row.change);
    ChannelStatus b = a;
    row.apply(b);
    CHECK(worthWriting(a, b) == row.write);
    CHECK(worthWriting(b, a) == row.write);
  }
}

TEST_CASE("a status that was never measured is written as observedGeneration and conditions") {
  ChannelStatus s;
  s.observedGeneration = 2;
  s.priority = 0.7;  // not written: not measured
  setCondition(s.conditions, "Valid", false, "InvalidSpec", "spec.targets: not an array", 2, t0);
  const json j = toJson(s);
  CHECK(j == json{{"observedGeneration", 2},
                  {"conditions",
                   {{{"type", "Valid"},
                     {"status", "False"},
                     {"reason", "InvalidSpec"},
                     {"message", "spec.targets: not an array"},
                     {"observedGeneration", 2},
                     {"lastTransitionTime", rfc3339(t0, 0)}}}}});
  CHECK_FALSE(channelStatusFromJson(j).measured);
  // A status that lacks one of the measured fields (written by hand) reads as unmeasured, so
  // the next measuring pass writes it whole.
  CHECK_FALSE(channelStatusFromJson({{"state", "Inactive"}}).measured);
  CHECK_FALSE(channelStatusFromJson({{"priority", 0.5}}).measured);
  CHECK_FALSE(channelStatusFromJson(json()).measured);
}

TEST_CASE("the operator's full channel status: the fixture is its JSON, and reads back whole") {
  // A degraded channel at level high with a buffer, in an outage since t0 + 40 s, after two
  // outages of 30 s and 50 s on average 40 s, its throughput query failing.
  ChannelStatus s;
  s.observedGeneration = 7;
  s.measured = true;
  s.state = ChannelState::kDegraded;
  s.priority = 0.7849;  // 0.4·0.75 + 0.4·0.9123 + 0.2·0.6
  s.terms = {0.75, 0.9123, 0.6};
  s.failureProbability = 0.0877;
  s.replicas = {2, 1};
  s.level = "high";
  s.health = {t0 + seconds(90), 2, 40.0, t0 + seconds(40)};
  s.buffer = ChannelBuffer{{500, int64_t{1} << 30},
                           {300, int64_t{256} << 20},
                           {400, int64_t{384} << 20},
                           {100, int64_t{128} << 20},
                           t0 + seconds(90) + std::chrono::milliseconds(250)};
  setCondition(s.conditions, "TargetsFound", true, "Found", "every target exists", 7, t0);
  setCondition(s.conditions, "Ready", false, "ReplicasNotReady", "1 of 2 replicas ready", 7,
               t0 + seconds(40));
  setCondition(s.conditions, "ThroughputMeasured", false, "QueryFailed",
               "Prometheus at http://prometheus:9090: connection refused", 7, t0 + seconds(10));
  setCondition(s.conditions, "Valid", true, "SpecValid", "the spec is valid", 7, t0);
  const json written = {{"status", toJson(s)}};
  const std::string path = std::string(PI0_SOURCE_DIR) + "/tests/fixtures/kube/channel_status.json";
  if (std::getenv("PI0_UPDATE_FIXTURES")) {
    std::ofstream(path) << written.dump(2) << "\n";
  }
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, path << " is missing: run with PI0_UPDATE_FIXTURES=1 to write it");
  const json fixture = json::parse(in);
  CHECK(fixture == written);
  // The wire forms, by hand: quantities as Kubernetes writes them, whole seconds but for the
  // buffer's milliseconds.
  CHECK(fixture["status"]["buffer"]["allocated"] == json{{"cpu", "500m"}, {"memory", "1Gi"}});
  CHECK(fixture["status"]["buffer"]["observedAt"] == "2026-11-18T11:08:10.250Z");
  CHECK(fixture["status"]["health"]["notReadySince"] == "2026-11-18T11:07:20Z");
  // JSON -> typed -> JSON is the same JSON, and the typed value is what was written.
  const ChannelStatus read = channelStatusFromJson(fixture["status"]);
  CHECK(read == s);
  CHECK(toJson(read) == fixture["status"]);
  CHECK_FALSE(worthWriting(s, read));
}
