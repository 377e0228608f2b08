// WorkloadScaler against FakeCluster (tests/fakes/fake_cluster.h): the order of its writes, and
// that no write by another controller and no crash between two of its writes loses a replica
// count or an autoscaler's bounds. The first cases check the fake's own contract, which the
// rest relies on.
#include <doctest/doctest.h>

#include "fakes/fake_cluster.h"
#include "kube/store.h"

using namespace pi0;
using kube::Json;
using pi0::testing::FakeCluster;

namespace {

const kube::ResourceType& kDeployments = kube::resources::kDeployments;

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
