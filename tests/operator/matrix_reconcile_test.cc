// Whole scenarios of the ShutdownMatrix reconciler's pure pass (matrix_reconcile.h), driven the
// way the cluster would: each pass's status is "written" before its steps are taken, the steps
// change the workloads through the same undo records the scaler writes (workload_state.h), the
// workloads' pods become ready (or not) as each test says, and time moves with a fake clock.
// What is judged is the cluster that results: replica counts, what pi0-webhook would read in the
// status at the moment pods are created, and how often a channel flaps.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "channel_view.h"
#include "common/timestamp.h"
#include "matrix_reconcile.h"
#include "workload_state.h"

using namespace pi0;
using namespace pi0::op;
using kube::Json;
using stability::ChannelState;
using std::chrono::seconds;

namespace {

const WallTime kStart = WallTime{} + std::chrono::hours(24 * 365 * 56);

Json deployment(const std::string& name, int replicas) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"namespace", "shop"}, {"name", name}, {"generation", 1}}},
          {"spec", {{"replicas", replicas}}},
          {"status", {{"observedGeneration", 1}, {"readyReplicas", replicas}}}};
}

struct ChannelDef {
  std::string name;
  int replicas = 3;
  double cpo = 0.5;
  double reliability = 1.0;
  std::vector<std::string> dependsOn = {};
  bool critical = false;
  int restoreTimeoutSeconds = 300;
};

// The cluster as the reconciler's caches would show it, and the passes of the reconciler.
struct Sim {
  kube::Store channels, deployments, statefulSets, autoscalers, pods;
  std::map<std::string, Json> workloads;  // by name
  std::map<std::string, Json> channelObjects;
  Json matrixObject;
  stability::MatrixSpec spec;
  MatrixStatus status;  // as written to the cluster
  WallTime now = kStart;
  SteadyTime steadyNow = SteadyTime{} + std::chrono::hours(1000);
  // Pods of these deployments never become ready (a restore that stalls).
  std::set<std::string> stuck;
  // Called when a deployment's pods are created, with the status pi0-webhook would read then.
  std::function<void(const std::string& channel, const MatrixStatus& seen)> onPodsCreated;
  // Every step taken, in order: "Degrade shop/batch", "Restore shop/batch".
  std::vector<std::string> steps;
  std::vector<EventOut> events;
  std::string acting = "default";

  explicit Sim(const std::vector<ChannelDef>& defs, Json matrixSpec) {
    for (const auto& d : defs) {
      Json deps = Json::array();
      for (const auto& dep : d.dependsOn)
        deps.push_back({{"name", dep}});
      channelObjects[d.name] = {
          {"apiVersion", "stability.pi0.io/v1alpha1"},
          {"kind", "Channel"},
          {"metadata",
           {{"namespace", "shop"}, {"name", d.name}, {"uid", "u-" + d.name}, {"generation", 1}}},
          {"spec",
           {{"targets", {{{"kind", "Deployment"}, {"name", d.name}}}},
            {"degradedReplicas", 1},
            {"critical", d.critical},
            {"dependsOn", deps},
            {"restoreTimeoutSeconds", d.restoreTimeoutSeconds}}},
          {"status", {{"priority", d.cpo}, {"terms", {{"reliability", d.reliability}}}}}};
      workloads[d.name] = deployment(d.name, d.replicas);
    }
    matrixObject = {{"apiVersion", "stability.pi0.io/v1alpha1"},
                    {"kind", "ShutdownMatrix"},
                    {"metadata", {{"name", "default"}, {"uid", "m1"}, {"generation", 1}}},
                    {"spec", matrixSpec}};
    auto parsed = stability::parseMatrix(matrixObject);
    REQUIRE_MESSAGE(parsed, (parsed ? "" : parsed.error().message));
    spec = *parsed;
    sync();
  }

  void sync() {
    std::vector<Json> c, d;
    for (const auto& [n, o] : channelObjects)
      c.push_back(o);
    for (const auto& [n, o] : workloads)
      d.push_back(o);
    channels.replace(c);
    deployments.replace(d);
  }

  ChannelState stateOf(const std::string& name) { return stateFromWorkloadsOf(name); }
  ChannelState stateFromWorkloadsOf(const std::string& name) {
    const auto views = viewsOf(channels.list(), {deployments, statefulSets, autoscalers, pods});
    for (const auto& v : views) {
      if (v.spec && v.spec->ref.name == name) return v.state;
    }
    FAIL("no channel " << name);
    return ChannelState::kActive;
  }
  int replicas(const std::string& name) {
    return workloads.at(name)["spec"]["replicas"].get<int>();
  }

  // Applies one step to the simulated workload, as the scaler would.
  void apply(const StepAction& a) {
    const std::string name = a.channel.substr(a.channel.find('/') + 1);
    Json& w = workloads.at(name);
    const int before = w["spec"]["replicas"].get<int>();
    switch (a.kind) {
      case StepKind::kScaleDown:
        scaleDown(w, a.replicas, a.channel);
        break;
      case StepKind::kRaise:
        raiseReplicas(w, a.replicas);
        break;
      case StepKind::kRestore:
        restoreReplicas(w);
        break;
    }
    const int after = w["spec"]["replicas"].get<int>();
    w["metadata"]["generation"] = w["metadata"]["generation"].get<int>() + 1;
    w["status"]["observedGeneration"] = w["metadata"]["generation"];
    // Pods start ready at once, but a stuck workload's new pods never become ready.
    const int readyBefore = w["status"]["readyReplicas"].get<int>();
    w["status"]["readyReplicas"] = stuck.contains(name) ? std::min(readyBefore, after) : after;
    if (after > before && onPodsCreated) onPodsCreated(a.channel, status);
    steps.push_back(std::string(a.kind == StepKind::kScaleDown
                                    ? stability::actionName(a.action)
                                    : (a.rollback ? "Rollback" : "Restore")) +
                    " " + a.channel);
  }

  // One reconcile: plan, write the status, take the steps, settle, write again.
  MatrixPass pass(double load) {
    sync();
    const auto views = viewsOf(channels.list(), {deployments, statefulSets, autoscalers, pods});
    MatrixWorld w;
    w.object = &matrixObject;
    w.spec = &spec;
    w.previous = status;
    w.channels = &views;
    w.acting = acting;
    w.reading.load = load;
    w.reading.measured = true;
    w.reading.measuredReason = "Measured";
    w.reading.measuredMessage = "measured";
    w.freeAllocatable = {8000, int64_t{32} << 30};
    w.now = now;
    w.steadyNow = steadyNow;
    MatrixPass p = planMatrix(w);
    status = p.status;  // written before any step
    std::vector<StepResult> ok;
    for (const auto& a : p.actions) {
      apply(a);
      ok.push_back(StepResult::kTaken);
    }
    settleMatrix(p, ok, now);
    status = p.status;
    events.insert(events.end(), p.events.begin(), p.events.end());
    sync();
    return p;
  }

  void advance(std::chrono::milliseconds d) {
    now += d;
    steadyNow += d;
  }

  // Runs passes every `every` for `total`, with the load from `load(t)`.
  void run(seconds total, seconds every, const std::function<double(int)>& load) {
    for (int t = 0; t < total.count(); t += static_cast<int>(every.count())) {
      pass(load(t));
      advance(every);
    }
  }

  int count(const std::string& step) const {
    return static_cast<int>(std::count(steps.begin(), steps.end(), step));
  }
  int events_(const std::string& reason) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(),
                                          [&](const EventOut& e) { return e.reason == reason; }));
  }
};

Json matrixSpec() {
  return Json::parse(R"({
    "levels": [{"name": "normal", "upperBound": 0.7}, {"name": "elevated", "upperBound": 0.8},
               {"name": "high", "upperBound": 0.9}, {"name": "critical"}],
    "rows": [
      {"channel": {"namespace": "shop", "name": "batch"},
       "cells": [{"level": "elevated", "action": "Degrade"}, {"level": "high", "action": "Shutdown"}]}
    ],
    "stabilityThreshold": 0,
    "hysteresis": {"margin": 0.05, "dwellSeconds": 20},
    "stepIntervalSeconds": 5,
    "rollback": {"settleSeconds": 10, "margin": 0.05, "cooldownSeconds": 120}
  })");
}

}  // namespace

TEST_CASE("item 1: a restore is announced in the status before any of its pods is created") {
  Sim sim({{"batch", 3}, {"web", 3, 0.9}}, matrixSpec());
  int created = 0;
  sim.onPodsCreated = [&](const std::string& channel, const MatrixStatus& seen) {
    ++created;
    const auto* e = seen.entry(channel);
    REQUIRE(e != nullptr);
    // What pi0-webhook reads at that moment: the channel is restoring, so its pods pass.
    CHECK(e->restoring);
  };
  // A step up to high: batch is degraded, then shut down.
  sim.run(seconds(30), seconds(1), [](int) { return 0.95; });
  CHECK(sim.stateOf("batch") == ChannelState::kInactive);
  // The load falls: after the dwell the level falls, and batch is restored.
  sim.run(seconds(60), seconds(1), [](int) { return 0.3; });
  CHECK(sim.stateOf("batch") == ChannelState::kActive);
  CHECK(sim.replicas("batch") == 3);
  CHECK(created >= 1);
  CHECK(sim.count("Restore shop/batch") == 1);
}

TEST_CASE("item 1: a pass announces the restore and a later pass, a second on, scales it") {
  Sim sim({{"batch", 3}}, matrixSpec());
  sim.run(seconds(30), seconds(1), [](int) { return 0.95; });
  REQUIRE(sim.stateOf("batch") == ChannelState::kInactive);
  // Drive passes until a restore is announced.
  MatrixPass p;
  for (int passes = 0; passes < 120; ++passes) {
    sim.advance(seconds(1));
    p = sim.pass(0.3);
    if (!sim.status.progress.restores.empty()) break;
  }
  REQUIRE(sim.status.progress.restores.size() == 1);
  CHECK(sim.status.progress.restores[0].phase == RestoreRecord::Phase::kAnnounced);
  CHECK(p.actions.empty());
  CHECK(sim.status.entry("shop/batch")->restoring);
  CHECK(sim.stateOf("batch") == ChannelState::kInactive);  // nothing scaled yet
  // A pass half a second after the announcement still waits.
  sim.advance(std::chrono::milliseconds(500));
  p = sim.pass(0.3);
  CHECK(p.actions.empty());
  CHECK(sim.stateOf("batch") == ChannelState::kInactive);
  // The next, a second after it, scales.
  sim.advance(std::chrono::milliseconds(500));
  p = sim.pass(0.3);
  REQUIRE(p.actions.size() == 1);
  CHECK(p.actions[0].kind == StepKind::kRestore);
  CHECK(sim.status.progress.restores[0].phase == RestoreRecord::Phase::kScaling);
}

TEST_CASE("item 3: a stalled restore's retry restores to the target at the current level") {
  // Degraded at elevated, shut down at high; the load falls to elevated: the target is Degraded.
  Sim sim({{"batch", 3, 0.5, 1.0, {}, false, 5}}, matrixSpec());
  sim.run(seconds(30), seconds(1), [](int) { return 0.95; });
  REQUIRE(sim.stateOf("batch") == ChannelState::kInactive);
  sim.stuck.insert("batch");  // its pods never become ready
  sim.run(seconds(120), seconds(1), [](int) { return 0.75; });
  // Raised to Degraded (1 replica), stalled, retried: never restored past Degraded.
  CHECK(sim.replicas("batch") == 1);
  CHECK(sim.stateOf("batch") == ChannelState::kDegraded);
  CHECK(sim.events_("RestoreStalled") >= 1);
  CHECK(sim.count("Restore shop/batch") >= 2);  // the raise and at least one retry
  REQUIRE(!sim.status.progress.restores.empty());
  CHECK(sim.status.progress.restores[0].target == ChannelState::kDegraded);
  CHECK(originalReplicas(sim.workloads.at("batch")) == 3);  // the record is kept for later
}

TEST_CASE("after a fall no further step is taken, and a spike takes at most one step") {
  Sim sim({{"batch", 3}, {"web", 3, 0.9}}, matrixSpec());
  // A 2 s spike to high: the level rises at once, one step is taken, then the load is back.
  sim.run(seconds(2), seconds(1), [](int) { return 0.95; });
  const auto taken = sim.steps.size();
  CHECK(taken == 1);
  sim.run(seconds(15), seconds(1), [](int) { return 0.4; });
  CHECK(sim.steps.size() == taken);  // no step after the fall
  // And after the dwell, what was taken comes back.
  sim.run(seconds(60), seconds(1), [](int) { return 0.4; });
  CHECK(sim.stateOf("batch") == ChannelState::kActive);
  CHECK(sim.replicas("batch") == 3);
}

TEST_CASE("a rhythm around a level's bound cycles a channel at most once a minute") {
  Sim sim({{"batch", 3}, {"web", 3, 0.9}}, matrixSpec());
  // 0.65 ↔ 0.85 with a 30 s period (the elevated bound is 0.8, the dwell 20 s).
  sim.run(seconds(600), seconds(1), [](int t) { return (t / 15) % 2 == 0 ? 0.85 : 0.65; });
  const int cycles = sim.count("Restore shop/batch");
  CHECK(cycles <= 10);  // at most one degrade→restore cycle per minute over ten minutes
}

TEST_CASE("rollback: a degrade whose dependent loses its ready pods is undone and held") {
  // web depends on batch; batch's degrade makes web's pods unready.
  Sim sim({{"batch", 3}, {"web", 3, 0.9, 1.0, {"batch"}}}, matrixSpec());
  sim.pass(0.75);  // level elevated: batch degraded
  REQUIRE(sim.stateOf("batch") == ChannelState::kDegraded);
  REQUIRE(sim.status.progress.evaluations.size() == 1);
  CHECK(sim.status.progress.evaluations[0].dependents.size() == 1);
  sim.workloads.at("web")["status"]["readyReplicas"] = 1;  // web suffers
  sim.run(seconds(15), seconds(1), [](int) { return 0.75; });
  CHECK(sim.events_("StepRolledBack") == 2);  // on the channel and on the matrix
  CHECK(sim.count("Rollback shop/batch") == 1);
  CHECK(sim.stateOf("batch") == ChannelState::kActive);
  CHECK(sim.replicas("batch") == 3);
  REQUIRE(sim.status.progress.cooldowns.size() == 1);
  const auto* rolled = findCondition(sim.status.conditions, "RolledBack");
  REQUIRE(rolled != nullptr);
  CHECK(rolled->status);
  // During the cool-down the step is not taken again, although the level still asks for it.
  sim.workloads.at("web")["status"]["readyReplicas"] = 3;
  sim.run(seconds(100), seconds(1), [](int) { return 0.75; });
  CHECK(sim.count("Degrade shop/batch") == 1);
  // After it, it is.
  sim.run(seconds(30), seconds(1), [](int) { return 0.75; });
  CHECK(sim.count("Degrade shop/batch") == 2);
}

TEST_CASE("rollback: a degrade that harms nobody is kept") {
  Sim sim({{"batch", 3}, {"web", 3, 0.9, 1.0, {"batch"}}}, matrixSpec());
  sim.run(seconds(30), seconds(1), [](int) { return 0.75; });
  CHECK(sim.stateOf("batch") == ChannelState::kDegraded);
  CHECK(sim.events_("StepRolledBack") == 0);
  CHECK(sim.status.progress.evaluations.empty());  // judged and dropped
}

TEST_CASE("a record left by a degrade interrupted after its first write is cleared") {
  Sim sim({{"batch", 3}}, matrixSpec());
  // The leader recorded the original count and died before scaling (the HPA crash point
  // scale-down:recorded); the load then fell.
  sim.workloads.at("batch")["metadata"]["annotations"][kOriginalReplicas] = "3";
  sim.workloads.at("batch")["metadata"]["annotations"][kManagedBy] = "shop/batch";
  REQUIRE(sim.stateOf("batch") == ChannelState::kActive);
  sim.pass(0.3);
  CHECK(sim.count("Restore shop/batch") == 1);
  CHECK_FALSE(originalReplicas(sim.workloads.at("batch")));
  CHECK(sim.replicas("batch") == 3);
  sim.pass(0.3);
  CHECK(sim.count("Restore shop/batch") == 1);  // once
}

TEST_CASE("an HPA's last-action stamp counts toward the step interval") {
  Sim sim({{"batch", 3}, {"web", 3, 0.9}}, matrixSpec());
  // A leader capped batch's HPA (the step's last write) and died; the next leader starts now.
  Json hpa = {{"apiVersion", "autoscaling/v1"},
              {"kind", "HorizontalPodAutoscaler"},
              {"metadata", {{"namespace", "shop"}, {"name", "batch"}}},
              {"spec",
               {{"scaleTargetRef", {{"kind", "Deployment"}, {"name", "batch"}}},
                {"minReplicas", 1},
                {"maxReplicas", 1}}}};
  hpa["metadata"]["annotations"][kOriginalMinReplicas] = "2";
  hpa["metadata"]["annotations"][kOriginalMaxReplicas] = "6";
  markAction(hpa, rfc3339Millis(sim.now - std::chrono::seconds(1)));
  sim.autoscalers.replace({hpa});
  sim.workloads.at("batch")["metadata"]["annotations"][kOriginalReplicas] = "3";
  // At critical, web is next (GDO), but the step interval (5 s) runs from the HPA's stamp.
  sim.pass(0.95);
  CHECK(sim.steps.empty());
  sim.advance(seconds(4));
  sim.pass(0.95);
  CHECK_FALSE(sim.steps.empty());
}

TEST_CASE("a matrix that does not act announces and scales nothing") {
  Sim sim({{"batch", 3}}, matrixSpec());
  sim.acting = "other";
  sim.run(seconds(30), seconds(1), [](int) { return 0.95; });
  CHECK(sim.steps.empty());
  CHECK(sim.status.progress.restores.empty());
  const auto* enforcing = findCondition(sim.status.conditions, "Enforcing");
  REQUIRE(enforcing != nullptr);
  CHECK_FALSE(enforcing->status);
}

TEST_CASE("the status round-trips through its JSON") {
  Sim sim({{"batch", 3}, {"web", 3, 0.9, 1.0, {"batch"}}}, matrixSpec());
  sim.run(seconds(8), seconds(1), [](int) { return 0.95; });
  const MatrixStatus back = matrixStatusFromJson(toJson(sim.status));
  CHECK_FALSE(worthWriting(sim.status, back));
  CHECK(back.progress.evaluations == sim.status.progress.evaluations);
  CHECK(back.channels == sim.status.channels);
  CHECK(back.level == sim.status.level);
}

// Every field the operator writes into a matrix's status, as one document: the same file
// tests/crds/crds_test.sh writes through the status subresource of the real apiserver, which
// must accept it and prune nothing (the CRD's schema and the operator's JSON agree).
TEST_CASE("a status with every field matches the fixture the CRD test applies") {
  MatrixStatus s;
  s.observedGeneration = 3;
  s.level = "high";
  s.levelIndex = 2;
  s.load = 0.87;
  s.loadByResource = {{"cpu", 0.87}, {"memory", 0.5}};
  s.anticipatedLoad = 0.9;
  s.levelCause = "Anticipated";
  s.stability = 0.9;
  s.availability = 0.8;
  s.systemState = "Degraded";
  s.plan = {{stability::Action::kShutdown, {"shop", "batch"}, "level high", {"Deployment/batch"}}};
  auto& p = s.progress;
  p.phase = "Restoring";
  p.calmSince = kStart;
  p.lastActionTime = kStart + std::chrono::milliseconds(1500);
  p.completedSteps = 2;
  p.message = "1 restore(s) can start";
  RestoreRecord announced;
  announced.channel = {"shop", "web"};
  announced.announcedAt = kStart;
  RestoreRecord scaling;
  scaling.channel = {"shop", "batch"};
  scaling.target = ChannelState::kDegraded;
  scaling.phase = RestoreRecord::Phase::kScaling;
  scaling.rollback = true;
  scaling.announcedAt = kStart;
  scaling.startedAt = kStart + seconds(1);
  scaling.attempts = 2;
  scaling.stalled = true;
  scaling.retryAt = kStart + seconds(30);
  p.restores = {announced, scaling};
  p.evaluations = {{{"shop", "cache"},
                    stability::Action::kDegrade,
                    ChannelState::kActive,
                    kStart,
                    0.75,
                    0.95,
                    1.0,
                    {{"shop/web", 1.0, 2}}}};
  p.cooldowns = {{{"shop", "batch"}, kStart + seconds(600), "dependent shop/web ready share fell"}};
  s.channels = {
      {{"shop", "batch"},
       ChannelState::kInactive,
       ChannelState::kDegraded,
       true,
       stability::Resources{500, int64_t{256} << 20}},
      {{"shop", "web"}, ChannelState::kActive, ChannelState::kActive, false, std::nullopt}};
  setCondition(s.conditions, "RolledBack", true, "StepMadeThingsWorse", "held", 3, kStart);
  setCondition(s.conditions, "StabilityReachable", false, "BoundByCriticalChannels", "bound", 3,
               kStart);
  const Json written = {{"status", toJson(s)}};
  const std::string path = std::string(PI0_SOURCE_DIR) + "/tests/fixtures/kube/matrix_status.json";
  if (std::getenv("PI0_UPDATE_FIXTURES")) {
    std::ofstream(path) << written.dump(2) << "\n";
  }
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, path << " is missing: run with PI0_UPDATE_FIXTURES=1 to write it");
  const Json fixture = Json::parse(in);
  CHECK(fixture == written);
  // And it reads back as what was written.
  CHECK(matrixStatusFromJson(fixture["status"]) == s);
}
