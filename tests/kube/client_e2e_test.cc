// The client against the real apiserver of the test bed. Run by client_e2e_test.sh, which
// starts the control plane, applies Pi0's CRDs and exports KUBECONFIG and PI0_E2E_NAMESPACE.
#include <doctest/doctest.h>

#include <cstdlib>
#include <set>
#include <thread>

#include "kube/client.h"
#include "kube/events.h"
#include "kube/reflector.h"
#include "kube/store.h"
#include "kube_e2e.h"

using namespace pi0;
using namespace pi0::kube;
using pi0::testing::client;
using pi0::testing::eventually;
using pi0::testing::ns;

namespace {

Json configMap(const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"labels", {{"suite", "client-e2e"}}}}},
          {"data", {{"value", value}}}};
}

}  // namespace

TEST_CASE("create, get, update, patch and delete ConfigMaps; typed errors") {
  auto& c = client();
  auto created = c.create(resources::kConfigMaps, ns(), configMap("crud", "1"));
  REQUIRE_OK(created);
  CHECK((*created)["metadata"]["namespace"] == ns());

  auto again = c.create(resources::kConfigMaps, ns(), configMap("crud", "1"));
  REQUIRE_FALSE(again);
  CHECK(isAlreadyExists(again.error()));

  auto got = c.get(resources::kConfigMaps, ns(), "crud");
  REQUIRE_OK(got);
  (*got)["data"]["value"] = "2";
  auto updated = c.update(resources::kConfigMaps, *got);
  REQUIRE_OK(updated);
  CHECK((*updated)["data"]["value"] == "2");

  // The copy read before the update is stale now: the apiserver refuses it.
  auto stale = c.update(resources::kConfigMaps, *got);
  REQUIRE_FALSE(stale);
  CHECK(isConflict(stale.error()));

  auto merged = c.patch(resources::kConfigMaps, ns(), "crud", PatchType::kMerge,
                        {{"data", {{"extra", "m"}}}});
  REQUIRE_OK(merged);
  CHECK((*merged)["data"]["extra"] == "m");
  auto jsonPatched =
      c.patch(resources::kConfigMaps, ns(), "crud", PatchType::kJson,
              Json::array({{{"op", "replace"}, {"path", "/data/value"}, {"value", "3"}}}));
  REQUIRE_OK(jsonPatched);
  CHECK((*jsonPatched)["data"]["value"] == "3");
  auto badPatch =
      c.patch(resources::kConfigMaps, ns(), "crud", PatchType::kJson,
              Json::array({{{"op", "test"}, {"path", "/data/value"}, {"value", "nope"}}}));
  REQUIRE_FALSE(badPatch);
  CHECK(badPatch.error().code >= 400);

  const std::string uid = (*jsonPatched)["metadata"]["uid"];
  DeleteOptions wrongUid;
  wrongUid.preconditionUid = "not-" + uid;
  auto refused = c.remove(resources::kConfigMaps, ns(), "crud", wrongUid);
  REQUIRE_FALSE(refused);
  CHECK(isConflict(refused.error()));
  DeleteOptions rightUid;
  rightUid.preconditionUid = uid;
  REQUIRE_OK(c.remove(resources::kConfigMaps, ns(), "crud", rightUid));
  auto gone = c.get(resources::kConfigMaps, ns(), "crud");
  REQUIRE_FALSE(gone);
  CHECK(isNotFound(gone.error()));
  CHECK(gone.error().message.find("\"crud\" not found") != std::string::npos);
}

TEST_CASE("a paged list returns every object once, whatever the page size") {
  auto& c = client();
  for (int i = 0; i < 7; ++i)
    REQUIRE_OK(c.create(resources::kConfigMaps, ns(), configMap("page-" + std::to_string(i), "x")));
  for (int limit : {1, 2, 3, 500}) {
    CAPTURE(limit);
    ListOptions options;
    options.limit = limit;
    options.labelSelector = "suite=client-e2e";
    auto list = c.list(resources::kConfigMaps, ns(), options);
    REQUIRE_OK(list);
    std::set<std::string> names;
    for (const auto& item : list->items)
      names.insert(item["metadata"]["name"].get<std::string>());
    CHECK(names.size() == list->items.size());
    CHECK(names.size() == 7);
    CHECK_FALSE(list->resourceVersion.empty());
  }
  auto page = c.listPage(resources::kConfigMaps, ns(), [] {
    ListOptions o;
    o.limit = 3;
    o.labelSelector = "suite=client-e2e";
    return o;
  }());
  REQUIRE_OK(page);
  CHECK(page->items.size() == 3);
  CHECK_FALSE(page->continueToken.empty());
}

TEST_CASE("Deployments: the scale subresource") {
  auto& c = client();
  Json deployment = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", {{"name", "web"}}},
      {"spec",
       {{"replicas", 3},
        {"selector", {{"matchLabels", {{"app", "web"}}}}},
        {"template",
         {{"metadata", {{"labels", {{"app", "web"}}}}},
          {"spec",
           {{"containers", Json::array({{{"name", "web"}, {"image", "nginx:1.25"}}})}}}}}}}};
  REQUIRE_OK(c.create(resources::kDeployments, ns(), deployment));
  auto scale = c.get(resources::kDeployments, ns(), "web", Subresource::kScale);
  REQUIRE_OK(scale);
  CHECK((*scale)["spec"]["replicas"] == 3);
  REQUIRE_OK(c.modify(
      resources::kDeployments, ns(), "web",
      [](Json& s) {
        s["spec"]["replicas"] = 1;
        return true;
      },
      Subresource::kScale));
  auto after = c.get(resources::kDeployments, ns(), "web");
  REQUIRE_OK(after);
  CHECK((*after)["spec"]["replicas"] == 1);
  auto missing = c.get(resources::kDeployments, ns(), "absent", Subresource::kScale);
  REQUIRE_FALSE(missing);
  CHECK(isNotFound(missing.error()));
}

TEST_CASE("Channels: create, status subresource, read-modify-write") {
  auto& c = client();
  Json channel = {
      {"apiVersion", "stability.pi0.io/v1alpha1"},
      {"kind", "Channel"},
      {"metadata", {{"name", "checkout"}}},
      {"spec", {{"targets", Json::array({{{"kind", "Deployment"}, {"name", "web"}}})}}}};
  auto created = c.create(resources::kChannels, ns(), channel);
  REQUIRE_OK(created);
  // The status subresource ignores spec changes and vice versa.
  auto withStatus = c.modify(
      resources::kChannels, ns(), "checkout",
      [](Json& ch) {
        ch["status"]["state"] = "Degraded";
        ch["status"]["priority"] = 0.42;
        ch["spec"]["degradedReplicas"] = 7;  // dropped by the status endpoint
        return true;
      },
      Subresource::kStatus);
  REQUIRE_OK(withStatus);
  CHECK((*withStatus)["status"]["state"] == "Degraded");
  auto read = c.get(resources::kChannels, ns(), "checkout");
  REQUIRE_OK(read);
  CHECK((*read)["status"]["priority"] == doctest::Approx(0.42));
  CHECK((*read)["spec"].value("degradedReplicas", -1) != 7);

  auto patched = c.patch(resources::kChannels, ns(), "checkout", PatchType::kMerge,
                         {{"spec", {{"critical", true}}}});
  REQUIRE_OK(patched);
  CHECK((*patched)["spec"]["critical"] == true);
  CHECK((*patched)["status"]["state"] == "Degraded");

  // No change: modify returns without writing (the resourceVersion stays).
  auto unchanged = c.modify(resources::kChannels, ns(), "checkout", [](Json&) { return false; });
  REQUIRE_OK(unchanged);
  CHECK((*unchanged)["metadata"]["resourceVersion"] == (*patched)["metadata"]["resourceVersion"]);
}

TEST_CASE("a reflector's cache follows creates, updates and deletes") {
  auto& c = client();
  Store store(Store::dropManagedFields);
  ReflectorOptions options;
  options.labelSelector = "suite=watch";
  Reflector reflector(c, resources::kConfigMaps, ns(), store, options);
  std::jthread run([&](std::stop_token stop) { reflector.run(stop); });
  REQUIRE(store.waitForSync({}, std::chrono::seconds(30)));
  CHECK(store.size() == 0);

  for (int i = 0; i < 5; ++i) {
    auto cm = configMap("w-" + std::to_string(i), "0");
    cm["metadata"]["labels"]["suite"] = "watch";
    REQUIRE_OK(c.create(resources::kConfigMaps, ns(), cm));
  }
  REQUIRE_OK(c.patch(resources::kConfigMaps, ns(), "w-1", PatchType::kMerge,
                     {{"data", {{"value", "9"}}}}));
  REQUIRE_OK(c.remove(resources::kConfigMaps, ns(), "w-4"));
  const std::string key1 = ns() + "/w-1";
  CHECK(eventually([&] {
    auto w1 = store.get(key1);
    return store.size() == 4 && w1 && (*w1)["data"]["value"] == "9";
  }));
  CHECK(store.get(ns() + "/w-4") == nullptr);
  CHECK(store.get(key1)->at("metadata").contains("managedFields") == false);
  CHECK(reflector.counters().lists == 1);
  CHECK(reflector.counters().events >= 7);
}

TEST_CASE("Events are recorded against the real apiserver and repeats are folded") {
  auto& c = client();
  auto cm = c.create(resources::kConfigMaps, ns(), configMap("evented", "1"));
  REQUIRE_OK(cm);
  {
    EventRecorder recorder(c, "pi0-e2e", "test");
    for (int i = 0; i < 3; ++i) {
      recorder.record(ObjectReference::of(*cm), EventType::kNormal, "Tested",
                      "the client recorded this");
    }
    recorder.flush();
    CHECK(recorder.counters().failed == 0);
  }
  ListOptions options;
  options.fieldSelector = "involvedObject.name=evented";
  auto events = c.list(resources::kEvents, ns(), options);
  REQUIRE_OK(events);
  REQUIRE(events->items.size() == 1);
  CHECK(events->items[0]["count"] == 3);
  CHECK(events->items[0]["reason"] == "Tested");
  CHECK(events->items[0]["involvedObject"]["kind"] == "ConfigMap");
}
