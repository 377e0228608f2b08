// WorkloadScaler on the real control plane: Deployments, a StatefulSet and an autoscaler are
// scaled down and restored to exactly their original counts, idempotently, and a channel cut
// off halfway is finished or undone from what is stored in the cluster. Run by
// workload_scaler_e2e_test.sh, which starts the control plane, stand-in Nodes and the fake
// kubelet and exports KUBECONFIG and PI0_E2E_NAMESPACE.
#include <doctest/doctest.h>

#include <cstdlib>
#include <thread>

#include "kube/client.h"
#include "kube_e2e.h"
#include "workload_scaler.h"
#include "workload_state.h"

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
  WorkloadScaler scaler(client());
  CHECK(eventually([&] {
    auto r = scaler.readiness(shop);
    return r && r->desired == 5 && r->settled();
  }));

  auto degraded = scaler.scaleDown(shop, 1);
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
  auto again = scaler.scaleDown(shop, 1);
  REQUIRE_OK(again);
  CHECK_FALSE((*again)[0].changed);
  CHECK_FALSE((*again)[1].changed);

  // Shut down: the record still holds the counts from before the degrade.
  REQUIRE_OK(scaler.scaleDown(shop, 0));
  CHECK(replicas(kube::resources::kDeployments, "web") == 0);
  CHECK(annotationsOf(kube::resources::kDeployments, "web")[kOriginalReplicas] == "3");
  CHECK(eventually([&] {
    auto r = scaler.readiness(shop);
    return r && r->desired == 0 && r->ready == 0;
  }));

  auto restored = scaler.restore(shop);
  REQUIRE_OK(restored);
  CHECK(replicas(kube::resources::kDeployments, "web") == 3);
  CHECK(replicas(kube::resources::kStatefulSets, "db") == 2);
  CHECK_FALSE(annotationsOf(kube::resources::kDeployments, "web").contains(kOriginalReplicas));
  CHECK_FALSE(annotationsOf(kube::resources::kStatefulSets, "db").contains(kManagedBy));
  // Verified: the fake kubelet marks the new pods ready and the counts come back.
  CHECK(eventually([&] {
    auto r = scaler.readiness(shop);
    return r && r->desired == 5 && r->ready == 5;
  }));
  auto twice = scaler.restore(shop);
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
  WorkloadScaler scaler(client());
  auto down = scaler.scaleDown(api, 1);
  REQUIRE_OK(down);
  CHECK((*down)[0].autoscaler == "api");
  CHECK((*down)[0].autoscalerChanged);
  auto again = scaler.scaleDown(api, 1);  // the HPA is already capped: not written again
  REQUIRE_OK(again);
  CHECK_FALSE((*again)[0].autoscalerChanged);
  auto hpa = client().get(kube::resources::kHorizontalPodAutoscalers, ns(), "api");
  REQUIRE_OK(hpa);
  CHECK((*hpa)["spec"]["maxReplicas"] == 1);
  CHECK((*hpa)["spec"]["minReplicas"] == 1);
  CHECK((*hpa)["metadata"]["annotations"][kOriginalMaxReplicas] == "6");
  CHECK(replicas(kube::resources::kDeployments, "api") == 1);

  auto restored = scaler.restore(api);
  REQUIRE_OK(restored);
  CHECK((*restored)[0].autoscalerChanged);
  hpa = client().get(kube::resources::kHorizontalPodAutoscalers, ns(), "api");
  REQUIRE_OK(hpa);
  CHECK((*hpa)["spec"]["maxReplicas"] == 6);
  CHECK((*hpa)["spec"]["minReplicas"] == 2);
  CHECK(replicas(kube::resources::kDeployments, "api") == 4);
}

TEST_CASE("a channel cut off halfway is finished, or undone, from the cluster alone") {
  createDeployment("front", 2);
  // "back" does not exist yet: the first attempt stops there, front already scaled.
  const auto both = channel("pair", {{stability::WorkloadKind::kDeployment, "front"},
                                     {stability::WorkloadKind::kDeployment, "back"}});
  WorkloadScaler scaler(client());
  auto first = scaler.scaleDown(both, 0);
  REQUIRE_FALSE(first);
  CHECK(kube::isNotFound(first.error()));
  CHECK(replicas(kube::resources::kDeployments, "front") == 0);

  // A new scaler (a new leader, say) finishes the job without touching front again...
  createDeployment("back", 3);
  WorkloadScaler successor(client());
  auto second = successor.scaleDown(both, 0);
  REQUIRE_OK(second);
  CHECK_FALSE((*second)[0].changed);
  CHECK((*second)[1].changed);
  // ...and restores both to their own counts.
  REQUIRE_OK(successor.restore(both));
  CHECK(replicas(kube::resources::kDeployments, "front") == 2);
  CHECK(replicas(kube::resources::kDeployments, "back") == 3);
}
