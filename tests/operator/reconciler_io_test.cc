// The reconcilers' I/O layer against FakeCluster (tests/fakes/fake_cluster.h, an in-memory
// stand-in for the API server): what reaches the cluster, in which order, and what a failed
// write does. The caches are filled from the fake (the reflectors never run); the fleet view
// holds one node whose cpu fingerprint gives the load.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <thread>

#include "fakes/fake_cluster.h"
#include "kube/resource.h"
#include "operator_metrics.h"
#include "reconciler.h"
#include "workload_state.h"

using namespace pi0;
using namespace pi0::op;
using kube::Json;
namespace res = kube::resources;

namespace {

struct RecordedEvent {
  std::string kind, name, reason, message;
};

class EventLog final : public kube::EventSink {
 public:
  void record(const kube::ObjectReference& object, kube::EventType, std::string reason,
              std::string message) override {
    std::lock_guard lock(mu_);
    events.push_back({object.kind, object.name, std::move(reason), std::move(message)});
  }
  int count(const std::string& reason) {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count_if(events.begin(), events.end(),
                                          [&](const auto& e) { return e.reason == reason; }));
  }
  std::vector<RecordedEvent> events;

 private:
  std::mutex mu_;
};

Json channel(const std::string& name, int replicas) {
  return {{"apiVersion", "stability.pi0.io/v1alpha1"},
          {"kind", "Channel"},
          {"metadata", {{"namespace", "shop"}, {"name", name}}},
          {"spec", {{"targets", {{{"kind", "Deployment"}, {"name", name}}}}}},
          {"status", {{"priority", 0.5}}}};
  (void)replicas;
}

Json deployment(const std::string& name, int replicas) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"namespace", "shop"}, {"name", name}}},
          {"spec", {{"replicas", replicas}}},
          {"status", {{"observedGeneration", 1}, {"readyReplicas", replicas}}}};
}

Json matrix() {
  return Json::parse(R"({
    "apiVersion": "stability.pi0.io/v1alpha1", "kind": "ShutdownMatrix",
    "metadata": {"name": "default", "creationTimestamp": "2026-12-01T00:00:00Z"},
    "spec": {
      "levels": [{"name": "normal", "upperBound": 0.7}, {"name": "high"}],
      "rows": [{"channel": {"namespace": "shop", "name": "batch"},
                "cells": [{"level": "high", "action": "Shutdown"}]}],
      "loadSignal": {"resources": ["cpu"]},
      "stabilityThreshold": 0,
      "hysteresis": {"margin": 0.05, "dwellSeconds": 0},
      "stepIntervalSeconds": 1
    }
  })");
}

Json node() {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", "worker-1"}}},
          {"status", {{"allocatable", {{"cpu", "8"}, {"memory", "32Gi"}}}}}};
}

fleet::NodeFingerprint fingerprint(double cpu) {
  fleet::NodeFingerprint f;
  f.node = "worker-1";
  f.timestamp = std::chrono::system_clock::now();
  f.windowFill = 1;
  f.ready = true;
  for (const char* name : {"cpu", "memory"}) {
    fleet::SignalFingerprint s;
    s.samples = 64;
    s.current = s.mean = name == std::string("cpu") ? cpu : 0.2;
    s.gates = fleet::SignalGates{s.mean, 0, 0, 0, 1 - s.mean};
    s.projectedPeak = s.mean;
    f.signals[name] = s;
  }
  return f;
}

struct World {
  testing::FakeCluster cluster;
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<Caches> caches;
  fleet::FleetView fleet;
  EventLog events;
  OperatorMetrics metrics;
  std::unique_ptr<Reconcilers> reconcilers;

  World() {
    kube::ClientConfig config;
    config.server = "https://127.0.0.1:1";  // never contacted: the caches are filled by hand
    auto c = kube::Client::create(config);
    REQUIRE(c);
    client = std::move(*c);
    caches = std::make_unique<Caches>(*client);
    fleet.setAgents({{"worker-1", "http://127.0.0.1:1"}});
    cluster.put(res::kNodes, node());
    cluster.put(res::kShutdownMatrices, matrix());
    cluster.put(res::kChannels, channel("batch", 3));
    cluster.put(res::kDeployments, deployment("batch", 3));
    setLoad(0.3);
    sync();
    reconcilers = std::make_unique<Reconcilers>(cluster, *caches, fleet, events, metrics, nullptr);
  }

  void setLoad(double cpu) {
    REQUIRE(fleet.beginPoll("worker-1", systemClock().now()));
    fleet.recordSuccess("worker-1", fingerprint(cpu), systemClock().now());
  }

  void sync() {
    cluster.syncTo(res::kNodes, caches->nodes);
    cluster.syncTo(res::kShutdownMatrices, caches->matrices);
    cluster.syncTo(res::kChannels, caches->channels);
    cluster.syncTo(res::kDeployments, caches->deployments);
    cluster.syncTo(res::kStatefulSets, caches->statefulSets);
    cluster.syncTo(res::kHorizontalPodAutoscalers, caches->autoscalers);
    cluster.syncTo(res::kPods, caches->pods);
  }

  // A matrix reconcile, then the caches catch up (as the watches would).
  Result<kube::ReconcileResult> matrixPass() {
    auto r = reconcilers->reconcileMatrix("default");
    sync();
    return r;
  }

  Json matrixStatus() { return cluster.get(res::kShutdownMatrices, "", "default")->at("status"); }
  int replicas(const std::string& name) {
    return cluster.get(res::kDeployments, "shop", name)->at("spec").at("replicas").get<int>();
  }
};

}  // namespace

TEST_CASE("item 1: the announcement reaches the cluster before the restore's scale-up") {
  World w;
  w.setLoad(0.95);
  REQUIRE(w.matrixPass());
  REQUIRE(w.replicas("batch") == 0);  // shut down at level high
  w.setLoad(0.2);
  // Passes until the restore has scaled the deployment up, recording the order of writes.
  w.cluster.clearWrites();
  for (int i = 0; i < 40 && w.replicas("batch") == 0; ++i) {
    REQUIRE(w.matrixPass());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(w.replicas("batch") == 3);
  // The first write that raised the deployment came after a matrix status that said restoring.
  bool announced = false;
  for (const auto& write : w.cluster.writes()) {
    if (write.type.kind == "ShutdownMatrix") {
      for (const auto& e :
           kube::field<Json>(write.object, "/status/channels"_json_pointer, Json::array())) {
        if (e.value("restoring", false)) announced = true;
      }
    }
    if (write.type.kind == "Deployment" &&
        kube::field<int64_t>(write.object, "/spec/replicas"_json_pointer, 0) > 0) {
      CHECK(announced);
      break;
    }
  }
  CHECK(announced);
}

TEST_CASE("item 8: a status write that fails is an error, and no step is taken after it") {
  World w;
  w.setLoad(0.95);
  w.cluster.beforeWrite([](const kube::ResourceType& type, std::string_view, std::string_view,
                           int) -> std::optional<kube::ApiError> {
    if (type.kind != "ShutdownMatrix") return std::nullopt;
    return kube::ApiError{kube::Reason::kInternalError, 500, "etcd is down", 0};
  });
  auto r = w.matrixPass();
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("etcd is down") != std::string::npos);
  CHECK(w.replicas("batch") == 3);  // nothing scaled without a status that says so

  // A failed step is an error too (the work queue backs off), with a Warning Event.
  w.cluster.beforeWrite([](const kube::ResourceType& type, std::string_view, std::string_view,
                           int) -> std::optional<kube::ApiError> {
    if (type.kind != "Deployment") return std::nullopt;
    return kube::ApiError{kube::Reason::kForbidden, 403, "deployments is forbidden", 0};
  });
  r = w.matrixPass();
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("shop/batch") != std::string::npos);
  CHECK(w.events.count("ScaleFailed") == 1);
  CHECK(w.replicas("batch") == 3);

  // A Channel whose status cannot be written: an error as well.
  w.cluster.beforeWrite([](const kube::ResourceType& type, std::string_view, std::string_view,
                           int) -> std::optional<kube::ApiError> {
    if (type.kind != "Channel") return std::nullopt;
    return kube::ApiError{kube::Reason::kInternalError, 500, "etcd is down", 0};
  });
  CHECK_FALSE(w.reconcilers->reconcileChannel("shop/batch"));
}

TEST_CASE("item 9: a new leader's first Channel reconcile writes what the matrix's status says") {
  World w;
  w.setLoad(0.95);
  REQUIRE(w.matrixPass());
  REQUIRE(w.replicas("batch") == 0);
  const Json status = w.matrixStatus();
  REQUIRE(status.at("level") == "high");

  // A new leader: fresh reconcilers, nothing in memory, the same cluster.
  Reconcilers fresh(w.cluster, *w.caches, w.fleet, w.events, w.metrics, nullptr);
  REQUIRE(fresh.reconcileChannel("shop/batch"));
  w.sync();
  const Json channelStatus = w.cluster.get(res::kChannels, "shop", "batch")->at("status");
  CHECK(channelStatus.at("state") == "Inactive");
  CHECK(channelStatus.at("level") == "high");  // not a default written over it
  // The buffer BAO gave it (nothing: it is shut down) is what the matrix's status says.
  const auto entries = status.at("channels");
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].at("restoring") == false);
  CHECK(entries[0].at("state") == "Inactive");
}

namespace {

// The HPA controller as far as Pi0 meets it (no metrics: it only holds the count within the
// bounds, and leaves a workload at 0 alone), playing after every write of Pi0's.
void hpaController(testing::FakeCluster& cluster) {
  auto hpa = cluster.get(res::kHorizontalPodAutoscalers, "shop", "search");
  auto w = cluster.get(res::kDeployments, "shop", "search");
  if (!hpa || !w) return;
  const int min = hpa->at("spec").value("minReplicas", 1);
  const int max = hpa->at("spec").value("maxReplicas", 1);
  const int replicas = w->at("spec").value("replicas", 1);
  if (replicas == 0) return;
  const int want = std::clamp(replicas, min, max);
  if (want == replicas) return;
  (*w)["spec"]["replicas"] = want;
  cluster.put(res::kDeployments, *w);
}

}  // namespace

TEST_CASE("leaders killed after any write, with the HPA controller between writes, lose nothing") {
  for (unsigned seed = 1; seed <= 2; ++seed) {
    CAPTURE(seed);
    World w;
    w.cluster.put(res::kChannels, Json::parse(R"({
      "apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
      "metadata": {"namespace": "shop", "name": "search"},
      "spec": {"targets": [{"kind": "Deployment", "name": "search"}], "degradedReplicas": 2},
      "status": {"priority": 0.9}})"));
    w.cluster.put(res::kDeployments, deployment("search", 3));
    w.cluster.put(res::kHorizontalPodAutoscalers, Json::parse(R"({
      "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
      "metadata": {"namespace": "shop", "name": "search"},
      "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "search"},
               "minReplicas": 2, "maxReplicas": 6}})"));
    auto m = matrix();
    m["spec"]["levels"] = Json::parse(
        R"([{"name": "normal", "upperBound": 0.6}, {"name": "elevated", "upperBound": 0.8},
            {"name": "critical"}])");
    m["spec"]["rows"] = Json::parse(R"([
      {"channel": {"namespace": "shop", "name": "search"},
       "cells": [{"level": "elevated", "action": "Degrade"}, {"level": "critical", "action": "Shutdown"}]}])");
    w.cluster.put(res::kShutdownMatrices, m);
    w.sync();
    std::mt19937 rng(seed);
    // A new leader is a new process: new caches, listed afresh, and nothing in memory.
    auto newLeader = [&] {
      w.reconcilers.reset();
      w.caches = std::make_unique<Caches>(*w.client);
      w.sync();
      w.reconcilers = std::make_unique<Reconcilers>(w.cluster, *w.caches, w.fleet, w.events,
                                                    w.metrics, nullptr);
    };
    newLeader();
    const double loads[] = {0.3, 0.7, 0.95};
    // 28 passes of random load, then 20 calm ones (5 s: the restore's announcement, its
    // autoscaler's bounds settling, the count).
    for (int pass = 0; pass < 48; ++pass) {
      const double load = pass >= 28 ? 0.3 : loads[rng() % 3];
      w.setLoad(load);
      // One pass in four dies after a random number of writes; a new leader takes over.
      const bool dies = pass < 28 && rng() % 4 == 0;
      const int writes = static_cast<int>(w.cluster.writes().size());
      const int allowed = writes + static_cast<int>(rng() % 4);
      w.cluster.beforeWrite([&, dies, allowed](const kube::ResourceType&, std::string_view,
                                               std::string_view,
                                               int) -> std::optional<kube::ApiError> {
        if (dies && static_cast<int>(w.cluster.writes().size()) >= allowed)
          return kube::ApiError{kube::Reason::kTransport, 0, "the leader died", 0};
        return std::nullopt;
      });
      w.cluster.afterWrite([&](const kube::ResourceType& type, const Json&) {
        if (type.kind != "HorizontalPodAutoscaler" && type.kind != "Deployment") return;
        hpaController(w.cluster);
      });
      (void)w.reconcilers->reconcileMatrix("default");
      w.sync();
      (void)w.reconcilers->reconcileChannel("shop/search");
      w.sync();
      if (dies) {
        w.cluster.beforeWrite(nullptr);
        newLeader();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    const Json d = *w.cluster.get(res::kDeployments, "shop", "search");
    const Json h = *w.cluster.get(res::kHorizontalPodAutoscalers, "shop", "search");
    CHECK(d["spec"]["replicas"] == 3);
    CHECK(h["spec"]["minReplicas"] == 2);
    CHECK(h["spec"]["maxReplicas"] == 6);
    const bool clean =
        kube::field<Json>(d, "/metadata/annotations"_json_pointer, Json::object()).empty() &&
        kube::field<Json>(h, "/metadata/annotations"_json_pointer, Json::object()).empty();
    CHECK(clean);
  }
}
