// WorkloadScaler on the real control plane: Deployments, a StatefulSet and an autoscaler are
// scaled down and restored to exactly their original counts, idempotently, and a channel cut
// off halfway is finished or undone from what is stored in the cluster. The autoscalers are
// real ones: kube-controller-manager's HPA controller keeps their targets within their bounds
// (without metrics it does nothing else), and acts between Pi0's writes whenever it likes.
// The crash points (workload_scaler.h) are hit for real: a driver process (this binary again,
// running its skipped "scaler driver" case) is killed at each, and a fresh one finishes the job.
// Run by workload_scaler_e2e_test.sh, which starts the control plane, stand-in Nodes and the
// fake kubelet and exports KUBECONFIG and PI0_E2E_NAMESPACE.
#include <doctest/doctest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "kube/client.h"
#include "kube/object_writer.h"
#include "kube/store.h"
#include "kube_e2e.h"
#include "workload_scaler.h"
#include "workload_state.h"

extern char** environ;

using namespace pi0;
using namespace pi0::op;
using kube::Json;
using pi0::testing::client;
using pi0::testing::eventually;
using pi0::testing::ns;

namespace {

Json podTemplate(const std::string& app) {
  return {{"metadata", {{"labels", {{"app", app}}}}},
          {"spec", {{"containers", Json::array({{{"name", app}, {"image", "nginx:1.25"}}})}}}};
}

void createDeployment(const std::string& name, int replicas) {
  REQUIRE_OK(client().create(kube::resources::kDeployments, ns(),
                             Json{{"apiVersion", "apps/v1"},
                                  {"kind", "Deployment"},
                                  {"metadata", {{"name", name}}},
                                  {"spec",
                                   {{"replicas", replicas},
                                    {"selector", {{"matchLabels", {{"app", name}}}}},
                                    {"template", podTemplate(name)}}}}));
}

int replicas(const kube::ResourceType& type, const std::string& name) {
  auto object = client().get(type, ns(), name);
  REQUIRE_OK(object);
  return (*object)["spec"].value("replicas", -1);
}

Json annotationsOf(const kube::ResourceType& type, const std::string& name) {
  auto object = client().get(type, ns(), name);
  REQUIRE_OK(object);
  return (*object)["metadata"].value("annotations", Json::object());
}

stability::ChannelSpec channel(const std::string& name, std::vector<stability::Target> targets) {
  stability::ChannelSpec c;
  c.ref = {ns(), name};
  c.targets = std::move(targets);
  return c;
}

// A scaler as pi0-operator builds one: writing through the client, finding autoscalers in a
// cache (here listed afresh before each call rather than watched).
class Scaler {
 public:
  WorkloadScaler& operator()() {
    auto list = client().list(kube::resources::kHorizontalPodAutoscalers, ns(), {});
    REQUIRE_OK(list);
    autoscalers_.replace(std::move(list->items));
    return scaler_;
  }

  // A raise or restore to its end, as the operator's passes take it: the call, and, when it
  // left a target waiting for its autoscaler's new bounds to settle, the call again after that.
  kube::ApiResult<std::vector<TargetOutcome>> raiseAll(const stability::ChannelSpec& c, int n) {
    return twice([&] { return (*this)().raise(c, n); });
  }
  kube::ApiResult<std::vector<TargetOutcome>> restoreAll(const stability::ChannelSpec& c) {
    return twice([&] { return (*this)().restore(c); });
  }

 private:
  kube::ClientWriter writer_{client()};
  kube::Store autoscalers_;
  WorkloadScaler scaler_{writer_, autoscalers_};

  template <class Call>
  kube::ApiResult<std::vector<TargetOutcome>> twice(const Call& call) {
    auto first = call();
    if (!first || std::none_of(first->begin(), first->end(),
                               [](const TargetOutcome& o) { return o.waiting; })) {
      return first;
    }
    std::this_thread::sleep_for(kAutoscalerSettle + std::chrono::milliseconds(100));
    return call();
  }
};

struct Readiness {
  int desired = 0;  // spec.replicas
  int ready = 0;    // status.readyReplicas
};

Readiness readiness(const stability::ChannelSpec& c) {
  Readiness total;
  for (const auto& target : c.targets) {
    auto object = client().get(resourceOf(target.kind), ns(), target.name);
    REQUIRE_OK(object);
    total.desired += (*object)["spec"].value("replicas", 1);
    total.ready += (*object).value("status", Json::object()).value("readyReplicas", 0);
  }
  return total;
}

void createAutoscaler(const std::string& name, int min, int max) {
  REQUIRE_OK(client().create(
      kube::resources::kHorizontalPodAutoscalers, ns(),
      Json{
          {"apiVersion", "autoscaling/v1"},
          {"kind", "HorizontalPodAutoscaler"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"scaleTargetRef", {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", name}}},
            {"minReplicas", min},
            {"maxReplicas", max},
            {"targetCPUUtilizationPercentage", 80}}}}));
}

Json autoscalerOf(const std::string& name) {
  auto hpa = client().get(kube::resources::kHorizontalPodAutoscalers, ns(), name);
  REQUIRE_OK(hpa);
  return *hpa;
}

std::pair<int, int> boundsOf(const std::string& name) {
  const Json hpa = autoscalerOf(name);
  return {hpa["spec"].value("minReplicas", 1), hpa["spec"].value("maxReplicas", -1)};
}

// The count the HPA controller last saw on its target (status.currentReplicas): waiting for a
// value proves the controller has acted on the autoscaler since it last saw another.
int seenByAutoscaler(const std::string& name) {
  return autoscalerOf(name).value("status", Json::object()).value("currentReplicas", -1);
}

// The annotations Pi0 writes (stability.pi0.io/...) on the object; the controllers' own
// (deployment.kubernetes.io/revision, the HPA's autoscaling.alpha.kubernetes.io/...) not.
std::vector<std::string> pi0Annotations(const kube::ResourceType& type, const std::string& name) {
  std::vector<std::string> keys;
  // Held in a variable: a range-for over items() of a temporary would outlive it.
  const kube::Json annotations = annotationsOf(type, name);
  for (const auto& [key, value] : annotations.items()) {
    if (key.starts_with("stability.pi0.io/")) keys.push_back(key);
  }
  return keys;
}

// Everything as it was before Pi0 touched it: the count, the bounds, none of Pi0's annotations.
void checkPristine(const std::string& name, int replicas_, std::pair<int, int> bounds) {
  CAPTURE(name);
  CHECK(replicas(kube::resources::kDeployments, name) == replicas_);
  CHECK(boundsOf(name) == bounds);
  CHECK(pi0Annotations(kube::resources::kDeployments, name).empty());
  CHECK(pi0Annotations(kube::resources::kHorizontalPodAutoscalers, name).empty());
}

// Runs this binary's "scaler driver" case in a new process: `op` ("scale-down:N", "raise:N" or
// "restore") on a channel of the one Deployment `target`, with PI0_CRASH_POINT=`crashPoint`.
// Returns the exit status (137: killed at the crash point; 0: done).
int drive(const std::string& op, const std::string& target, const std::string& crashPoint) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.starts_with("PI0_CRASH_POINT=") || entry.starts_with("PI0_SCALER_DRIVE")) continue;
    env.push_back(entry);
  }
  env.push_back("PI0_SCALER_DRIVE=" + op);
  env.push_back("PI0_SCALER_DRIVE_TARGET=" + target);
  if (!crashPoint.empty()) env.push_back("PI0_CRASH_POINT=" + crashPoint);
  std::vector<std::string> args = {"workload_scaler_e2e_test", "--test-case=scaler driver",
                                   "--no-skip=true", "--minimal=true"};
  auto pointers = [](std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings)
      out.push_back(s.data());
    out.push_back(nullptr);
    return out;
  };
  auto argv = pointers(args);
  auto envp = pointers(env);
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data());
  REQUIRE(spawned == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("a Deployment and a StatefulSet go down and come back to exactly their counts") {
  createDeployment("web", 3);
  REQUIRE_OK(client().create(kube::resources::kStatefulSets, ns(),
                             Json{{"apiVersion", "apps/v1"},
                                  {"kind", "StatefulSet"},
                                  {"metadata", {{"name", "db"}}},
                                  {"spec",
                                   {{"replicas", 2},
                                    {"serviceName", "db"},
                                    {"selector", {{"matchLabels", {{"app", "db"}}}}},
                                    {"template", podTemplate("db")}}}}));
  const auto shop = channel("shop", {{stability::WorkloadKind::kDeployment, "web"},
                                     {stability::WorkloadKind::kStatefulSet, "db"}});
  Scaler scaler;
  CHECK(eventually([&] {
    auto r = readiness(shop);
    return r.desired == 5 && r.ready >= r.desired;
  }));

  auto degraded = scaler().scaleDown(shop, 1);
  REQUIRE_OK(degraded);
  REQUIRE(degraded->size() == 2);
  CHECK((*degraded)[0].changed);
  CHECK((*degraded)[0].replicasBefore == 3);
  CHECK((*degraded)[0].replicasAfter == 1);
  CHECK(replicas(kube::resources::kDeployments, "web") == 1);
  CHECK(replicas(kube::resources::kStatefulSets, "db") == 1);
  CHECK(annotationsOf(kube::resources::kDeployments, "web")[kOriginalReplicas] == "3");
  CHECK(annotationsOf(kube::resources::kStatefulSets, "db")[kOriginalReplicas] == "2");
  CHECK(annotationsOf(kube::resources::kDeployments, "web")[kManagedBy] == ns() + "/shop");

  // Again: nothing to do, nothing written.
  auto again = scaler().scaleDown(shop, 1);
  REQUIRE_OK(again);
  CHECK_FALSE((*again)[0].changed);
  CHECK_FALSE((*again)[1].changed);

  // Shut down: the record still holds the counts from before the degrade.
  REQUIRE_OK(scaler().scaleDown(shop, 0));
  CHECK(replicas(kube::resources::kDeployments, "web") == 0);
  CHECK(annotationsOf(kube::resources::kDeployments, "web")[kOriginalReplicas] == "3");
  CHECK(eventually([&] {
    auto r = readiness(shop);
    return r.desired == 0 && r.ready == 0;
  }));

  auto restored = scaler().restore(shop);
  REQUIRE_OK(restored);
  CHECK(replicas(kube::resources::kDeployments, "web") == 3);
  CHECK(replicas(kube::resources::kStatefulSets, "db") == 2);
  CHECK_FALSE(annotationsOf(kube::resources::kDeployments, "web").contains(kOriginalReplicas));
  CHECK_FALSE(annotationsOf(kube::resources::kStatefulSets, "db").contains(kManagedBy));
  // Verified: the fake kubelet marks the new pods ready and the counts come back.
  CHECK(eventually([&] {
    auto r = readiness(shop);
    return r.desired == 5 && r.ready == 5;
  }));
  auto twice = scaler().restore(shop);
  REQUIRE_OK(twice);
  CHECK_FALSE((*twice)[0].changed);
}

TEST_CASE("a target with an autoscaler is held down through the autoscaler's bounds") {
  createDeployment("api", 4);
  REQUIRE_OK(
      client().create(kube::resources::kHorizontalPodAutoscalers, ns(),
                      Json{{"apiVersion", "autoscaling/v1"},
                           {"kind", "HorizontalPodAutoscaler"},
                           {"metadata", {{"name", "api"}}},
                           {"spec",
                            {{"scaleTargetRef",
                              {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", "api"}}},
                             {"minReplicas", 2},
                             {"maxReplicas", 6},
                             {"targetCPUUtilizationPercentage", 80}}}}));
  const auto api = channel("api", {{stability::WorkloadKind::kDeployment, "api"}});
  Scaler scaler;
  auto down = scaler().scaleDown(api, 1);
  REQUIRE_OK(down);
  CHECK((*down)[0].autoscaler == "api");
  CHECK((*down)[0].autoscalerChanged);
  auto again = scaler().scaleDown(api, 1);  // the HPA is already capped: not written again
  REQUIRE_OK(again);
  CHECK_FALSE((*again)[0].autoscalerChanged);
  auto hpa = client().get(kube::resources::kHorizontalPodAutoscalers, ns(), "api");
  REQUIRE_OK(hpa);
  CHECK((*hpa)["spec"]["maxReplicas"] == 1);
  CHECK((*hpa)["spec"]["minReplicas"] == 1);
  CHECK((*hpa)["metadata"]["annotations"][kOriginalMaxReplicas] == "6");
  CHECK(replicas(kube::resources::kDeployments, "api") == 1);

  // The bounds first; the count waits for the HPA controller to see them.
  auto bounds = scaler().restore(api);
  REQUIRE_OK(bounds);
  CHECK((*bounds)[0].autoscalerChanged);
  CHECK((*bounds)[0].waiting);
  hpa = client().get(kube::resources::kHorizontalPodAutoscalers, ns(), "api");
  REQUIRE_OK(hpa);
  CHECK((*hpa)["spec"]["maxReplicas"] == 6);
  CHECK((*hpa)["spec"]["minReplicas"] == 2);
  CHECK(annotationsOf(kube::resources::kDeployments, "api")[kOriginalReplicas] == "4");
  REQUIRE_OK(scaler.restoreAll(api));
  CHECK(replicas(kube::resources::kDeployments, "api") == 4);
  CHECK(annotationsOf(kube::resources::kHorizontalPodAutoscalers, "api").empty());
}

TEST_CASE("a channel cut off halfway is finished, or undone, from the cluster alone") {
  createDeployment("front", 2);
  // "back" does not exist yet: the first attempt stops there, front already scaled.
  const auto both = channel("pair", {{stability::WorkloadKind::kDeployment, "front"},
                                     {stability::WorkloadKind::kDeployment, "back"}});
  Scaler scaler;
  auto first = scaler().scaleDown(both, 0);
  REQUIRE_FALSE(first);
  CHECK(kube::isNotFound(first.error()));
  CHECK(replicas(kube::resources::kDeployments, "front") == 0);

  // A new scaler (a new leader, say) finishes the job without touching front again...
  createDeployment("back", 3);
  Scaler successor;
  auto second = successor().scaleDown(both, 0);
  REQUIRE_OK(second);
  CHECK_FALSE((*second)[0].changed);
  CHECK((*second)[1].changed);
  // ...and restores both to their own counts.
  REQUIRE_OK(successor().restore(both));
  CHECK(replicas(kube::resources::kDeployments, "front") == 2);
  CHECK(replicas(kube::resources::kDeployments, "back") == 3);
}

// Not a test: what drive() runs in a process of its own (skipped unless asked for with
// --no-skip). One call of the scaler, as PI0_SCALER_DRIVE says, on a channel of the Deployment
// PI0_SCALER_DRIVE_TARGET; exits 137 from a crash point when PI0_CRASH_POINT names one it passes.
TEST_CASE("scaler driver" * doctest::skip()) {
  const char* op = std::getenv("PI0_SCALER_DRIVE");
  const char* target = std::getenv("PI0_SCALER_DRIVE_TARGET");
  REQUIRE(op != nullptr);
  REQUIRE(target != nullptr);
  const auto c = channel(target, {{stability::WorkloadKind::kDeployment, target}});
  const std::string what = op;
  Scaler scaler;
  if (what.starts_with("scale-down:")) {
    REQUIRE_OK(scaler().scaleDown(c, std::stoi(what.substr(11))));
  } else if (what.starts_with("raise:")) {
    REQUIRE_OK(scaler.raiseAll(c, std::stoi(what.substr(6))));
  } else {
    REQUIRE(what == "restore");
    REQUIRE_OK(scaler.restoreAll(c));
  }
}

TEST_CASE("an autoscaled Deployment keeps its count through a degrade and a restore") {
  // Issue 11: the HPA controller scales the Deployment to the cap right after it is written;
  // the count recorded must still be 3.
  createDeployment("auto", 3);
  createAutoscaler("auto", 2, 6);
  // The HPA controller has seen it (it syncs every 15 s).
  REQUIRE(eventually([] { return seenByAutoscaler("auto") == 3; }));
  const auto c = channel("auto", {{stability::WorkloadKind::kDeployment, "auto"}});
  Scaler scaler;
  auto down = scaler().scaleDown(c, 1);
  REQUIRE_OK(down);
  CHECK((*down)[0].replicasBefore == 3);
  CHECK(replicas(kube::resources::kDeployments, "auto") == 1);
  CHECK(boundsOf("auto") == std::pair{1, 1});
  // The HPA controller acts on the capped autoscaler; the record is untouched.
  CHECK(eventually([] { return seenByAutoscaler("auto") == 1; }));
  CHECK(replicas(kube::resources::kDeployments, "auto") == 1);
  CHECK(annotationsOf(kube::resources::kDeployments, "auto")[kOriginalReplicas] == "3");
  CHECK(annotationsOf(kube::resources::kHorizontalPodAutoscalers, "auto")[kOriginalMaxReplicas] ==
        "6");

  auto back = scaler.restoreAll(c);
  REQUIRE_OK(back);
  CHECK((*back)[0].replicasAfter == 3);
  // The HPA controller sees 3 within the restored bounds and leaves it there.
  CHECK(eventually([] { return seenByAutoscaler("auto") == 3; }));
  checkPristine("auto", 3, {2, 6});
}

TEST_CASE("killed at any crash point, a fresh process finishes the step and restores all") {
  struct Case {
    std::string point;
    std::string name;   // of the Deployment and its autoscaler
    std::string setup;  // a step done before, uninterrupted ("" for none)
    std::string op;     // the step killed at the point
  };
  const std::vector<Case> cases = {
      {crash_point::kScaleDownRecorded, "cp-recorded", "", "scale-down:1"},
      {crash_point::kScaleDownHpaCapped, "cp-capped", "", "scale-down:1"},
      {crash_point::kScaleDownScaled, "cp-scaled", "", "scale-down:1"},
      {crash_point::kRaiseHpaRaised, "cp-hpa-raised", "scale-down:0", "raise:2"},
      {crash_point::kRaiseRaised, "cp-raised", "scale-down:0", "raise:2"},
      {crash_point::kRestoreHpaRestored, "cp-hpa-restored", "scale-down:1", "restore"},
      {crash_point::kRestoreRestored, "cp-restored", "scale-down:1", "restore"},
  };
  for (const auto& k : cases) {
    createDeployment(k.name, 3);
    createAutoscaler(k.name, 2, 6);
  }
  for (const auto& k : cases)
    REQUIRE(eventually([&] { return seenByAutoscaler(k.name) == 3; }));

  for (const auto& k : cases) {
    CAPTURE(k.point);
    const auto& name = k.name;
    if (!k.setup.empty()) REQUIRE(drive(k.setup, name, "") == 0);
    REQUIRE(drive(k.op, name, k.point) == 137);

    // What the killed process left, and what the HPA controller does with it meanwhile.
    const auto original = [&] {
      return annotationsOf(kube::resources::kDeployments, name).value(kOriginalReplicas, "");
    };
    if (k.point == crash_point::kScaleDownRecorded) {
      CHECK(original() == "3");
      CHECK(replicas(kube::resources::kDeployments, name) == 3);
      CHECK(boundsOf(name) == std::pair{2, 6});
    } else if (k.point == crash_point::kScaleDownHpaCapped) {
      // The race of issue 11, every time: the controller scales to the cap before Pi0 does.
      CHECK(boundsOf(name) == std::pair{1, 1});
      CHECK(eventually([&] { return replicas(kube::resources::kDeployments, name) == 1; }));
      CHECK(original() == "3");
    } else if (k.point == crash_point::kRaiseHpaRaised) {
      CHECK(boundsOf(name) == std::pair{1, 2});
      CHECK(replicas(kube::resources::kDeployments, name) == 0);
    } else if (k.point == crash_point::kRestoreHpaRestored) {
      // Issue 12, the other way round: the bounds are back, the workload still carries its
      // record; the controller raises the count into the bounds meanwhile.
      CHECK(boundsOf(name) == std::pair{2, 6});
      CHECK(original() == "3");
      CHECK(eventually([&] { return replicas(kube::resources::kDeployments, name) == 2; }));
      CHECK(original() == "3");
    }

    // A fresh process finishes the step...
    REQUIRE(drive(k.op, name, "") == 0);
    if (k.op == "scale-down:1") {
      CHECK(replicas(kube::resources::kDeployments, name) == 1);
      CHECK(boundsOf(name) == std::pair{1, 1});
      CHECK(original() == "3");
    } else if (k.op == "raise:2") {
      CHECK(replicas(kube::resources::kDeployments, name) == 2);
      CHECK(boundsOf(name) == std::pair{1, 2});
      CHECK(original() == "3");
    }
    // ...and restores everything.
    if (k.op != "restore") REQUIRE(drive("restore", name, "") == 0);
    checkPristine(name, 3, {2, 6});
  }
  // The HPA controller agrees with every restored count: it sees 3 and leaves it.
  for (const auto& k : cases) {
    CAPTURE(k.name);
    CHECK(eventually([&] { return seenByAutoscaler(k.name) == 3; }));
    checkPristine(k.name, 3, {2, 6});
  }
}
