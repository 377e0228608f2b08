// WorkloadScaler against FakeCluster (tests/fakes/fake_cluster.h): the order of its writes, and
// that no write by another controller and no crash between two of its writes loses a replica
// count or an autoscaler's bounds. The first cases check the fake's own contract, which the
// rest relies on.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/timestamp.h"
#include "fakes/fake_cluster.h"
#include "kube/store.h"
#include "workload_scaler.h"
#include "workload_state.h"

using namespace pi0;
using namespace pi0::op;
using kube::Json;
using pi0::testing::FakeCluster;

namespace {

const kube::ResourceType& kDeployments = kube::resources::kDeployments;
const kube::ResourceType& kStatefulSets = kube::resources::kStatefulSets;
const kube::ResourceType& kAutoscalers = kube::resources::kHorizontalPodAutoscalers;

Json deployment(const std::string& name, int replicas) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}, {"namespace", "shop"}}},
          {"spec", {{"replicas", replicas}}}};
}

}  // namespace

TEST_CASE("FakeCluster: modify bumps the resourceVersion, and the generation on spec changes") {
  FakeCluster cluster;
  const Json created = cluster.put(kDeployments, deployment("web", 3));
  CHECK(created["metadata"]["generation"] == 1);
  const std::string rv = created["metadata"]["resourceVersion"];

  auto annotated = cluster.modify(kDeployments, "shop", "web", [](Json& d) {
    d["metadata"]["annotations"]["a"] = "b";
    return true;
  });
  REQUIRE(annotated);
  CHECK((*annotated)["metadata"]["generation"] == 1);  // metadata only
  CHECK((*annotated)["metadata"]["resourceVersion"] != rv);

  auto scaled = cluster.modify(kDeployments, "shop", "web", [](Json& d) {
    d["spec"]["replicas"] = 1;
    d["status"] = {{"replicas", 7}};  // ignored: status is a subresource
    return true;
  });
  REQUIRE(scaled);
  CHECK((*scaled)["metadata"]["generation"] == 2);
  CHECK_FALSE(scaled->contains("status"));
  CHECK(cluster.get(kDeployments, "shop", "web")->at("spec")["replicas"] == 1);

  auto status = cluster.modify(
      kDeployments, "shop", "web",
      [](Json& d) {
        d["status"] = {{"readyReplicas", 1}};
        d["spec"]["replicas"] = 9;  // ignored: a status write changes only the status
        return true;
      },
      kube::Subresource::kStatus);
  REQUIRE(status);
  CHECK((*status)["status"]["readyReplicas"] == 1);
  CHECK((*status)["spec"]["replicas"] == 1);
  CHECK((*status)["metadata"]["generation"] == 2);

  const auto before = cluster.writes().size();
  auto unchanged = cluster.modify(kDeployments, "shop", "web", [](Json&) { return false; });
  REQUIRE(unchanged);
  CHECK(cluster.writes().size() == before);  // mutate said no: nothing written
  CHECK(before == 3);
}

TEST_CASE("FakeCluster: a missing object is NotFound; injected errors and conflicts") {
  FakeCluster cluster;
  auto missing = cluster.modify(kDeployments, "shop", "nope", [](Json&) { return true; });
  REQUIRE_FALSE(missing);
  CHECK(kube::isNotFound(missing.error()));

  cluster.put(kDeployments, deployment("web", 3));
  // Another writer changes the object between the read and the write: the write conflicts, and
  // modify reads again and applies its change to the new object.
  int calls = 0;
  cluster.beforeWrite([&](const kube::ResourceType&, std::string_view, std::string_view,
                          int attempt) -> std::optional<kube::ApiError> {
    if (attempt == 1) {
      auto theirs = *cluster.get(kDeployments, "shop", "web");
      theirs["metadata"]["labels"]["theirs"] = "x";
      cluster.put(kDeployments, theirs);
    }
    return std::nullopt;
  });
  auto ours = cluster.modify(kDeployments, "shop", "web", [&](Json& d) {
    ++calls;
    d["metadata"]["annotations"]["ours"] = "y";
    return true;
  });
  REQUIRE(ours);
  CHECK(calls == 2);
  CHECK((*ours)["metadata"]["labels"]["theirs"] == "x");
  CHECK((*ours)["metadata"]["annotations"]["ours"] == "y");

  cluster.beforeWrite(FakeCluster::crashAfter(2));  // attempts 1 and 2 were made above
  auto crashed = cluster.modify(kDeployments, "shop", "web", [](Json& d) {
    d["spec"]["replicas"] = 0;
    return true;
  });
  REQUIRE_FALSE(crashed);
  CHECK(crashed.error().reason == kube::Reason::kTransport);
  CHECK(cluster.get(kDeployments, "shop", "web")->at("spec")["replicas"] == 3);
  CHECK(cluster.writes().size() == 1);
}

TEST_CASE("FakeCluster: afterWrite plays another controller; syncTo fills a cache") {
  FakeCluster cluster;
  cluster.put(kDeployments, deployment("web", 3));
  cluster.put(kDeployments, deployment("db", 2));
  cluster.afterWrite([&](const kube::ResourceType& type, const Json& stored) {
    if (stored["metadata"]["name"] != "web") return;
    Json other = stored;
    other["spec"]["replicas"] = 5;
    cluster.put(type, other);
  });
  auto wrote = cluster.modify(kDeployments, "shop", "web", [](Json& d) {
    d["spec"]["replicas"] = 1;
    return true;
  });
  REQUIRE(wrote);
  CHECK((*wrote)["spec"]["replicas"] == 1);  // what this write stored...
  CHECK(cluster.get(kDeployments, "shop", "web")->at("spec")["replicas"] == 5);  // ...and after

  kube::Store store;
  cluster.syncTo(kDeployments, store);
  CHECK(store.synced());
  CHECK(store.size() == 2);
  REQUIRE(store.get("shop/web"));
  CHECK((*store.get("shop/web"))["spec"]["replicas"] == 5);
}

// ---------------------------------------------------------------------------------------------
// WorkloadScaler

namespace {

Json statefulSet(const std::string& name, int replicas) {
  Json s = deployment(name, replicas);
  s["kind"] = "StatefulSet";
  return s;
}

Json autoscaler(const std::string& name, const std::string& kind, const std::string& target,
                int min, int max, const std::string& ns = "shop") {
  return {{"apiVersion", "autoscaling/v1"},
          {"kind", "HorizontalPodAutoscaler"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec",
           {{"scaleTargetRef", {{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", target}}},
            {"minReplicas", min},
            {"maxReplicas", max}}}};
}

// The channel shop/api: the Deployment "api" (3 replicas) driven by the autoscaler "api"
// (bounds 2..6), and the StatefulSet "db" (2 replicas) without one.
struct Bed {
  FakeCluster cluster;
  kube::Store autoscalers;
  stability::ChannelSpec channel;
  std::chrono::system_clock::time_point now = *parseRfc3339("2026-12-06T10:00:00Z");

  Bed() {
    cluster.put(kDeployments, deployment("api", 3));
    cluster.put(kAutoscalers, autoscaler("api", "Deployment", "api", 2, 6));
    cluster.put(kStatefulSets, statefulSet("db", 2));
    cluster.syncTo(kAutoscalers, autoscalers);
    channel.ref = {"shop", "api"};
    channel.targets = {{stability::WorkloadKind::kDeployment, "api"},
                       {stability::WorkloadKind::kStatefulSet, "db"}};
  }

  // The scalers' clock.
  WorkloadScaler::Clock clock() {
    return [this] { return now; };
  }
  // The time between the two calls of a raise or restore of a target with an autoscaler.
  void settle() { now += kAutoscalerSettle; }

  Json object(const kube::ResourceType& type, const std::string& name) const {
    auto o = cluster.get(type, "shop", name);
    REQUIRE(o);
    return *o;
  }
  int replicas(const kube::ResourceType& type, const std::string& name) const {
    return object(type, name)["spec"]["replicas"].get<int>();
  }
  Json annotations(const kube::ResourceType& type, const std::string& name) const {
    return kube::field<Json>(object(type, name), "/metadata/annotations"_json_pointer,
                             Json::object());
  }
  std::pair<int, int> bounds() const {
    const Json h = object(kAutoscalers, "api");
    return {h["spec"]["minReplicas"].get<int>(), h["spec"]["maxReplicas"].get<int>()};
  }
  // True when some target (or its autoscaler) still carries a Pi0 record.
  bool pending() const {
    const Json hpa = object(kAutoscalers, "api");
    return restorePending(object(kDeployments, "api"), &hpa) ||
           restorePending(object(kStatefulSets, "db"), nullptr);
  }
  // Everything as it was before Pi0 touched it, with none of Pi0's annotations left.
  void checkPristine() const {
    CHECK(replicas(kDeployments, "api") == 3);
    CHECK(replicas(kStatefulSets, "db") == 2);
    CHECK(bounds() == std::pair{2, 6});
    CHECK(annotations(kDeployments, "api").empty());
    CHECK(annotations(kStatefulSets, "db").empty());
    CHECK(annotations(kAutoscalers, "api").empty());
    CHECK_FALSE(pending());
  }
};

// What the HPA controller does without metrics (Kubernetes 1.20, reconcileAutoscaler): a
// target at 0 replicas is left alone (autoscaling disabled), one above maxReplicas is scaled to
// it, one below minReplicas to it. As an afterWrite hook it acts right after every write, the
// tightest interleaving there is.
void enforceBounds(FakeCluster& cluster) {
  for (const auto& hpa : cluster.objects(kAutoscalers)) {
    const auto& type =
        hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet" ? kStatefulSets : kDeployments;
    auto workload = cluster.get(type, hpa["metadata"]["namespace"].get<std::string>(),
                                hpa["spec"]["scaleTargetRef"]["name"].get<std::string>());
    if (!workload) continue;
    const int now = (*workload)["spec"]["replicas"].get<int>();
    const int min = hpa["spec"]["minReplicas"].get<int>();
    const int max = hpa["spec"]["maxReplicas"].get<int>();
    const int want = now == 0 ? 0 : std::clamp(now, min, max);
    if (want == now) continue;
    (*workload)["spec"]["replicas"] = want;
    cluster.put(type, *workload);
  }
}

void actAsAutoscaler(FakeCluster& cluster) {
  cluster.afterWrite(
      [&cluster](const kube::ResourceType&, const Json&) { enforceBounds(cluster); });
}

using WallTime = std::chrono::system_clock::time_point;
using namespace std::chrono_literals;

// The HPA controller as it runs: it reads an autoscaler from its informer's cache, which trails
// the API by a little, and the workload's count from the API. So right after a write of the
// bounds it may act on the bounds from before that write. This one sees each autoscaler as it
// was `lag` before the test's clock `now`, and acts as enforceBounds does, right after every
// write and whenever act() is called.
class LaggingAutoscaler {
 public:
  LaggingAutoscaler(FakeCluster& cluster, const WallTime& now, std::chrono::milliseconds lag)
      : cluster_(cluster), now_(now), lag_(lag) {
    for (const auto& hpa : cluster.objects(kAutoscalers))
      history_[hpa["metadata"]["name"]].push_back({WallTime::min(), hpa});
    cluster.afterWrite([this](const kube::ResourceType& type, const Json& stored) {
      if (type.kind == kAutoscalers.kind)
        history_[stored["metadata"]["name"]].push_back({now_, stored});
      act();
    });
  }

  void act() {
    for (const auto& [name, versions] : history_) {
      const Json* seen = &versions.front().second;
      for (const auto& [at, hpa] : versions) {
        if (at <= now_ - lag_) seen = &hpa;
      }
      const Json& hpa = *seen;
      const auto& type =
          hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet" ? kStatefulSets : kDeployments;
      auto workload = cluster_.get(type, hpa["metadata"]["namespace"].get<std::string>(),
                                   hpa["spec"]["scaleTargetRef"]["name"].get<std::string>());
      if (!workload) continue;
      const int now = (*workload)["spec"]["replicas"].get<int>();
      const int want = now == 0 ? 0
                                : std::clamp(now, hpa["spec"]["minReplicas"].get<int>(),
                                             hpa["spec"]["maxReplicas"].get<int>());
      if (want == now) continue;
      (*workload)["spec"]["replicas"] = want;
      cluster_.put(type, *workload);
    }
  }

 private:
  FakeCluster& cluster_;
  const WallTime& now_;
  std::chrono::milliseconds lag_;
  std::map<std::string, std::vector<std::pair<WallTime, Json>>> history_;
};

std::vector<std::string> writeOrder(const FakeCluster& cluster) {
  std::vector<std::string> order;
  for (const auto& w : cluster.writes())
    order.push_back(w.type.kind + "/" + w.name);
  return order;
}

// A restore or raise to its end: the call that writes the autoscalers and the targets without
// one, then, the new bounds settled, the call that finishes the targets it left waiting.
kube::ApiResult<std::vector<TargetOutcome>> restoreAll(WorkloadScaler& scaler, Bed& bed) {
  auto first = scaler.restore(bed.channel);
  if (!first) return first;
  bed.settle();
  return scaler.restore(bed.channel);
}
kube::ApiResult<std::vector<TargetOutcome>> raiseAll(WorkloadScaler& scaler, Bed& bed,
                                                     int replicas) {
  auto first = scaler.raise(bed.channel, replicas);
  if (!first) return first;
  bed.settle();
  return scaler.raise(bed.channel, replicas);
}

}  // namespace

TEST_CASE("a degrade records the workload's count first, then caps its autoscaler, then scales") {
  Bed bed;
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  auto down = scaler.scaleDown(bed.channel, 1);
  REQUIRE(down);
  REQUIRE(down->size() == 2);
  CHECK((*down)[0].autoscaler == "api");
  CHECK((*down)[0].autoscalerChanged);
  CHECK((*down)[0].replicasBefore == 3);
  CHECK((*down)[0].replicasAfter == 1);
  CHECK((*down)[1].autoscaler.empty());
  CHECK((*down)[1].replicasBefore == 2);
  CHECK((*down)[1].replicasAfter == 1);

  const auto writes = bed.cluster.writes();
  REQUIRE(writeOrder(bed.cluster) == std::vector<std::string>{"Deployment/api",
                                                              "HorizontalPodAutoscaler/api",
                                                              "Deployment/api", "StatefulSet/db"});
  // The first write only records: the count is as it was.
  CHECK(writes[0].object["spec"]["replicas"] == 3);
  CHECK(originalReplicas(writes[0].object) == 3);
  CHECK(writes[1].object["spec"]["maxReplicas"] == 1);
  CHECK(writes[1].object["metadata"]["annotations"][kOriginalMaxReplicas] == "6");
  CHECK(writes[2].object["spec"]["replicas"] == 1);
  CHECK(originalReplicas(writes[2].object) == 3);
  // Without an autoscaler the record travels in the write that scales.
  CHECK(writes[3].object["spec"]["replicas"] == 1);
  CHECK(originalReplicas(writes[3].object) == 2);

  // Again: nothing left to do, nothing written.
  bed.cluster.clearWrites();
  auto again = scaler.scaleDown(bed.channel, 1);
  REQUIRE(again);
  CHECK_FALSE((*again)[0].changed);
  CHECK_FALSE((*again)[1].changed);
  CHECK(bed.cluster.writes().empty());
}

TEST_CASE("the autoscaler scaling the workload right after the cap does not change the record") {
  // Issue 11: the HPA controller scaled the Deployment 3 -> 1 nine milliseconds after the cap,
  // and the operator recorded 1 as the original.
  Bed bed;
  actAsAutoscaler(bed.cluster);
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  auto down = scaler.scaleDown(bed.channel, 1);
  REQUIRE(down);
  CHECK((*down)[0].replicasBefore == 3);
  CHECK(bed.replicas(kDeployments, "api") == 1);
  CHECK(bed.annotations(kDeployments, "api")[kOriginalReplicas] == "3");
  CHECK(bed.pending());

  REQUIRE(scaler.scaleDown(bed.channel, 0));  // and on to a shutdown
  CHECK(bed.replicas(kDeployments, "api") == 0);
  CHECK(bed.annotations(kDeployments, "api")[kOriginalReplicas] == "3");

  auto bounds = scaler.restore(bed.channel);
  REQUIRE(bounds);
  CHECK((*bounds)[0].autoscalerChanged);
  CHECK((*bounds)[0].waiting);
  bed.settle();
  auto back = scaler.restore(bed.channel);
  REQUIRE(back);
  CHECK((*back)[0].replicasAfter == 3);
  CHECK_FALSE((*back)[0].autoscalerChanged);  // only its stamp went: no bounds changed
  CHECK((*back)[0].changed);
  bed.checkPristine();
}

TEST_CASE("a crash after any write of a degrade loses nothing: a new scaler finishes it") {
  // With the autoscaler acting right after every write, the degrade writes 3 times (the
  // record, the cap, the StatefulSet: the autoscaler scaled the Deployment to its cap itself)
  // and the shutdown after it 2 times (both workloads to 0). Crash after each.
  {
    Bed bed;
    actAsAutoscaler(bed.cluster);
    WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
    REQUIRE(scaler.scaleDown(bed.channel, 1));
    CHECK(bed.cluster.writes().size() == 3);
    REQUIRE(scaler.scaleDown(bed.channel, 0));
    CHECK(bed.cluster.writes().size() == 5);
  }
  for (int crashAfter = 0; crashAfter < 5; ++crashAfter) {
    CAPTURE(crashAfter);
    Bed bed;
    actAsAutoscaler(bed.cluster);
    bed.cluster.beforeWrite(FakeCluster::crashAfter(crashAfter));
    bool degraded = false;
    {
      WorkloadScaler doomed(bed.cluster, bed.autoscalers, bed.clock());
      degraded = doomed.scaleDown(bed.channel, 1).has_value();
      CHECK(degraded == (crashAfter >= 3));
      if (degraded) CHECK_FALSE(doomed.scaleDown(bed.channel, 0));
    }
    // A new leader repeats the step that was cut short, then goes on.
    bed.cluster.beforeWrite({});
    WorkloadScaler successor(bed.cluster, bed.autoscalers, bed.clock());
    if (!degraded) {
      REQUIRE(successor.scaleDown(bed.channel, 1));
      CHECK(bed.replicas(kDeployments, "api") == 1);
      CHECK(bed.replicas(kStatefulSets, "db") == 1);
      CHECK(bed.bounds() == std::pair{1, 1});
    }
    REQUIRE(successor.scaleDown(bed.channel, 0));
    CHECK(bed.replicas(kDeployments, "api") == 0);
    CHECK(bed.replicas(kStatefulSets, "db") == 0);
    CHECK(bed.bounds() == std::pair{1, 1});
    CHECK(bed.annotations(kDeployments, "api")[kOriginalReplicas] == "3");
    CHECK(bed.annotations(kStatefulSets, "db")[kOriginalReplicas] == "2");
    CHECK(bed.annotations(kAutoscalers, "api")[kOriginalMinReplicas] == "2");
    CHECK(bed.annotations(kAutoscalers, "api")[kOriginalMaxReplicas] == "6");
    REQUIRE(restoreAll(successor, bed));
    bed.checkPristine();
  }
}

TEST_CASE("a crash after any write of a restore is finished by the next restore") {
  // The restore of the shut-down channel writes 4 times: the autoscaler's bounds and the
  // StatefulSet, then, the bounds settled, the autoscaler's stamp and the Deployment. Crash
  // after each, with the autoscaler acting between every two writes.
  for (const int level : {1, 0}) {  // from a degrade, from a shutdown
    for (int crashAfter = 0; crashAfter < 4; ++crashAfter) {
      CAPTURE(level);
      CAPTURE(crashAfter);
      Bed bed;
      actAsAutoscaler(bed.cluster);
      WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
      REQUIRE(scaler.scaleDown(bed.channel, level));
      const int done = static_cast<int>(bed.cluster.writes().size());
      bed.cluster.beforeWrite(FakeCluster::crashAfter(done + crashAfter));
      {
        WorkloadScaler doomed(bed.cluster, bed.autoscalers, bed.clock());
        CHECK_FALSE(restoreAll(doomed, bed));
      }
      // The channel still shows a restore pending, whatever is left of it.
      CHECK(bed.pending());
      bed.cluster.beforeWrite({});
      WorkloadScaler successor(bed.cluster, bed.autoscalers, bed.clock());
      REQUIRE(restoreAll(successor, bed));
      CHECK(bed.cluster.writes().size() == static_cast<size_t>(done + 4));
      bed.checkPristine();
    }
  }
}

TEST_CASE("a restore puts the autoscaler's bounds back before the workload's count") {
  Bed bed;
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  REQUIRE(scaler.scaleDown(bed.channel, 1));
  bed.cluster.clearWrites();
  // The first call: the bounds, and the target without an autoscaler. The Deployment waits.
  auto first = scaler.restore(bed.channel);
  REQUIRE(first);
  CHECK(writeOrder(bed.cluster) ==
        std::vector<std::string>{"HorizontalPodAutoscaler/api", "StatefulSet/db"});
  CHECK((*first)[0].autoscalerChanged);
  CHECK((*first)[0].waiting);
  CHECK((*first)[0].replicasAfter == 1);
  CHECK_FALSE((*first)[1].waiting);
  CHECK((*first)[1].replicasAfter == 2);
  CHECK(bed.bounds() == std::pair{2, 6});
  CHECK(bed.annotations(kDeployments, "api")[kOriginalReplicas] == "3");
  // Called again too soon, it still waits and writes nothing.
  bed.now += kAutoscalerSettle - std::chrono::milliseconds(1);
  bed.cluster.clearWrites();
  auto early = scaler.restore(bed.channel);
  REQUIRE(early);
  CHECK((*early)[0].waiting);
  CHECK_FALSE((*early)[0].changed);
  CHECK(bed.cluster.writes().empty());
  // Settled: the stamp goes, then the count comes back with the record removed.
  bed.now += std::chrono::milliseconds(1);
  auto last = scaler.restore(bed.channel);
  REQUIRE(last);
  CHECK_FALSE((*last)[0].waiting);
  CHECK((*last)[0].replicasBefore == 1);
  CHECK((*last)[0].replicasAfter == 3);
  CHECK(writeOrder(bed.cluster) ==
        std::vector<std::string>{"HorizontalPodAutoscaler/api", "Deployment/api"});
  bed.checkPristine();
}

TEST_CASE("a restore scales the workload only once the autoscaler has seen its bounds back") {
  // Seen once in operator_kill_test: the HPA controller, its cache a moment behind the restore
  // of the bounds (still 1..1), read the restored count 3 and scaled it to 1; then, with 2..6 in
  // its cache, to 2. The restore had removed the record with its write, and 2 stayed for good.
  for (const int level : {1, 0}) {  // from a degrade, from a shutdown
    CAPTURE(level);
    Bed bed;
    WallTime& now = bed.now;
    LaggingAutoscaler controller(bed.cluster, now, 500ms);
    WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
    REQUIRE(scaler.scaleDown(bed.channel, level));
    now += 30s;
    controller.act();
    REQUIRE(bed.pending());
    // Passes a second apart, each restoring what is left, until nothing is.
    for (int pass = 0; pass < 10 && bed.pending(); ++pass) {
      REQUIRE(scaler.restore(bed.channel));
      now += 1s;
      controller.act();
    }
    now += 30s;
    controller.act();
    bed.checkPristine();
  }
}

TEST_CASE("an autoscaler left capped after its workload was restored is restored too") {
  // What a crash between the two writes of a restore left behind when the workload went first
  // (Pi0 before issue 12): the workload's record gone, the autoscaler capped with Pi0's record,
  // and the autoscaler holding the workload at its cap.
  Bed bed;
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  REQUIRE(scaler.scaleDown(bed.channel, 1));
  Json api = bed.object(kDeployments, "api");
  REQUIRE(restoreReplicas(api));
  api["spec"]["replicas"] = 1;
  bed.cluster.put(kDeployments, api);
  CHECK(bed.pending());

  auto back = scaler.restore(bed.channel);
  REQUIRE(back);
  CHECK((*back)[0].autoscalerChanged);
  CHECK_FALSE((*back)[0].waiting);  // no record on the workload: nothing waits
  CHECK(bed.bounds() == std::pair{2, 6});
  CHECK(bed.pending() == false);
  // The stamp of the restore is left on the autoscaler (the channel reads as a leftover, whose
  // restore removes it once settled).
  CHECK_FALSE(bed.annotations(kAutoscalers, "api").empty());
  bed.settle();
  REQUIRE(scaler.restore(bed.channel));
  CHECK(bed.annotations(kAutoscalers, "api").empty());
  CHECK_FALSE(bed.pending());
}

TEST_CASE("from a shutdown to a degrade, the autoscaler's cap is raised before the count") {
  Bed bed;
  actAsAutoscaler(bed.cluster);
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  REQUIRE(scaler.scaleDown(bed.channel, 0));
  CHECK(bed.replicas(kDeployments, "api") == 0);
  bed.cluster.clearWrites();
  auto first = scaler.raise(bed.channel, 2);
  REQUIRE(first);
  CHECK(writeOrder(bed.cluster) ==
        std::vector<std::string>{"HorizontalPodAutoscaler/api", "StatefulSet/db"});
  CHECK((*first)[0].autoscalerChanged);
  CHECK((*first)[0].waiting);
  CHECK(bed.replicas(kDeployments, "api") == 0);
  bed.settle();
  auto up = scaler.raise(bed.channel, 2);
  REQUIRE(up);
  CHECK_FALSE((*up)[0].waiting);
  CHECK(writeOrder(bed.cluster) == std::vector<std::string>{"HorizontalPodAutoscaler/api",
                                                            "StatefulSet/db", "Deployment/api"});
  // The autoscaler, acting after each write, keeps it at 2: its cap is 2, not the shutdown's 1.
  CHECK(bed.replicas(kDeployments, "api") == 2);
  CHECK(bed.bounds() == std::pair{1, 2});
  CHECK(bed.replicas(kStatefulSets, "db") == 2);
  CHECK(bed.annotations(kDeployments, "api")[kOriginalReplicas] == "3");
  REQUIRE(restoreAll(scaler, bed));
  bed.checkPristine();
}

TEST_CASE("a crash after any write of a raise is finished by the next raise") {
  // The raise of the shut-down channel to 2 writes 3 times: the cap and the StatefulSet, then,
  // the cap settled, the Deployment.
  for (int crashAfter = 0; crashAfter < 3; ++crashAfter) {
    CAPTURE(crashAfter);
    Bed bed;
    actAsAutoscaler(bed.cluster);
    WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
    REQUIRE(scaler.scaleDown(bed.channel, 0));
    const int done = static_cast<int>(bed.cluster.writes().size());
    bed.cluster.beforeWrite(FakeCluster::crashAfter(done + crashAfter));
    {
      WorkloadScaler doomed(bed.cluster, bed.autoscalers, bed.clock());
      CHECK_FALSE(raiseAll(doomed, bed, 2));
    }
    bed.cluster.beforeWrite({});
    WorkloadScaler successor(bed.cluster, bed.autoscalers, bed.clock());
    REQUIRE(raiseAll(successor, bed, 2));
    CHECK(bed.cluster.writes().size() == static_cast<size_t>(done + 3));
    CHECK(bed.replicas(kDeployments, "api") == 2);
    CHECK(bed.replicas(kStatefulSets, "db") == 2);
    CHECK(bed.bounds() == std::pair{1, 2});
    CHECK(bed.pending());
    REQUIRE(restoreAll(successor, bed));
    bed.checkPristine();
  }
}

TEST_CASE("the autoscaler is found in the cache, and written from what the API holds") {
  Bed bed;
  // An autoscaler of the same name for another kind, and one in another namespace, are not
  // this target's.
  bed.cluster.put(kAutoscalers, autoscaler("web", "StatefulSet", "api", 1, 9));
  bed.cluster.put(kAutoscalers, autoscaler("api2", "Deployment", "api", 1, 9, "other"));
  bed.cluster.syncTo(kAutoscalers, bed.autoscalers);
  CHECK(findAutoscaler(bed.autoscalers, "shop", bed.channel.targets[0])->at("metadata")["name"] ==
        "api");
  CHECK_FALSE(findAutoscaler(bed.autoscalers, "shop", bed.channel.targets[1]));
  CHECK_FALSE(
      findAutoscaler(bed.autoscalers, "other", {stability::WorkloadKind::kStatefulSet, "api"}));

  // The cache is stale: someone raised the maximum to 8 since. The record holds 8.
  Json hpa = bed.object(kAutoscalers, "api");
  hpa["spec"]["maxReplicas"] = 8;
  bed.cluster.put(kAutoscalers, hpa);
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  REQUIRE(scaler.scaleDown(bed.channel, 1));
  CHECK(bed.annotations(kAutoscalers, "api")[kOriginalMaxReplicas] == "8");
  REQUIRE(restoreAll(scaler, bed));
  CHECK(bed.object(kAutoscalers, "api")["spec"]["maxReplicas"] == 8);
}

TEST_CASE("an autoscaler the cache still shows but the API deleted is no autoscaler") {
  Bed bed;
  REQUIRE(bed.cluster.remove(kAutoscalers, "shop", "api"));
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  auto down = scaler.scaleDown(bed.channel, 1);
  REQUIRE(down);
  CHECK((*down)[0].autoscaler.empty());
  CHECK_FALSE((*down)[0].autoscalerChanged);
  CHECK(bed.replicas(kDeployments, "api") == 1);
  CHECK(bed.annotations(kDeployments, "api")[kOriginalReplicas] == "3");
  auto back = scaler.restore(bed.channel);
  REQUIRE(back);
  CHECK(bed.replicas(kDeployments, "api") == 3);
}

TEST_CASE("a failure stops the step; what was done stays done and restorable") {
  Bed bed;
  bed.channel.targets.insert(bed.channel.targets.begin() + 1,
                             {stability::WorkloadKind::kDeployment, "missing"});
  WorkloadScaler scaler(bed.cluster, bed.autoscalers, bed.clock());
  auto down = scaler.scaleDown(bed.channel, 0);
  REQUIRE_FALSE(down);
  CHECK(kube::isNotFound(down.error()));
  CHECK(bed.replicas(kDeployments, "api") == 0);
  CHECK(bed.replicas(kStatefulSets, "db") == 2);  // after the failure: untouched
}
