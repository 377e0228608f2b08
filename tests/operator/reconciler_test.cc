// The reconcilers' pure helpers: what a cached Pod keeps, and node capacities. The reconcilers
// themselves run against the real control plane (operator_e2e_test.sh).
#include <doctest/doctest.h>

#include "kube/events.h"
#include "reconciler.h"
#include "stability/health.h"

using nlohmann::json;
using namespace pi0::op;

TEST_CASE("a cached Pod keeps what the operator reads, and nothing else") {
  json pod = json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                 "labels": {"app": "web"}, "annotations": {"big": "xxxxxxxxxxxxxxxx"},
                 "managedFields": [{"manager": "kubectl"}],
                 "creationTimestamp": "2026-11-22T10:00:00Z"},
    "spec": {"nodeName": "node-a", "volumes": [{"name": "v"}],
             "containers": [{"name": "c", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                             "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                           "limits": {"cpu": "1"}}},
                            {"name": "sidecar", "image": "busybox"}]},
    "status": {"phase": "Running", "podIP": "10.0.0.7",
               "conditions": [{"type": "PodScheduled", "status": "True"},
                              {"type": "Ready", "status": "True",
                               "lastTransitionTime": "2026-11-22T10:00:05Z"}],
               "containerStatuses": [{"name": "c", "restartCount": 2, "image": "nginx"},
                                     {"name": "sidecar", "restartCount": 1}]}
  })");
  const json original = pod;
  trimPod(pod);
  CHECK(pod == json::parse(R"({
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"app": "web"},
                 "creationTimestamp": "2026-11-22T10:00:00Z"},
    "spec": {"nodeName": "node-a",
             "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"restartCount": 3}]}
  })"));
  // What the health model reads is the same before and after.
  const auto before = pi0::stability::podSample(original);
  const auto after = pi0::stability::podSample(pod);
  REQUIRE(before);
  REQUIRE(after);
  CHECK(after->uid == before->uid);
  CHECK(after->ready == before->ready);
  CHECK(after->restarts == 3);
  CHECK(pod.dump().size() < original.dump().size());
}

TEST_CASE("a Pod without the optional parts trims without throwing") {
  for (const char* text : {R"({})", R"({"metadata": null, "spec": 3, "status": []})",
                           R"({"spec": {"containers": [null, {"resources": 1}]}})"}) {
    json pod = json::parse(text);
    CHECK_NOTHROW(trimPod(pod));
    CHECK(pod["metadata"].is_object());
  }
}

TEST_CASE("a Node trims to its reference and allocatable: the same capacity and Event subject") {
  json node = json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "node-a", "uid": "n1", "resourceVersion": "42",
                 "labels": {"kubernetes.io/hostname": "node-a"}, "annotations": {"a": "b"}},
    "spec": {"providerID": "aws:///zone/i-1", "taints": [{"key": "k", "effect": "NoSchedule"}]},
    "status": {"capacity": {"cpu": "8"}, "allocatable": {"cpu": "7500m", "memory": "30Gi",
                                                         "nvidia.com/gpu": "1"},
               "conditions": [{"type": "Ready", "status": "True"}],
               "images": [{"names": ["app/web:1.4.2"], "sizeBytes": 86123456}],
               "nodeInfo": {"kubeletVersion": "v1.20.2"}}
  })");
  const auto original = std::make_shared<const json>(node);
  trimNode(node);
  CHECK(node == json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "node-a", "uid": "n1", "resourceVersion": "42"},
    "status": {"allocatable": {"cpu": "7500m", "memory": "30Gi", "nvidia.com/gpu": "1"}}
  })"));
  const auto trimmed = std::make_shared<const json>(node);
  const auto before = capacitiesOf({original}), after = capacitiesOf({trimmed});
  REQUIRE(after.contains("node-a"));
  CHECK(after.at("node-a").cpuMilli == before.at("node-a").cpuMilli);
  CHECK(after.at("node-a").memoryBytes == before.at("node-a").memoryBytes);
  CHECK(after.at("node-a").gpus == 1);
  CHECK(pi0::kube::ObjectReference::of(node).toJson() ==
        pi0::kube::ObjectReference::of(*original).toJson());
  // Without the optional parts: no throw, a metadata object.
  for (const char* text : {R"({})", R"({"metadata": null, "status": []})"}) {
    json n = json::parse(text);
    CHECK_NOTHROW(trimNode(n));
    CHECK(n["metadata"].is_object());
  }
}

TEST_CASE("node capacities from status.allocatable") {
  auto node = [](const char* text) { return std::make_shared<const json>(json::parse(text)); };
  const auto capacities = capacitiesOf({
      node(R"({"metadata": {"name": "a"},
               "status": {"allocatable": {"cpu": "3500m", "memory": "8Gi",
                                          "nvidia.com/gpu": "2", "pods": "110"}}})"),
      node(R"({"metadata": {"name": "b"}, "status": {"allocatable": {"cpu": "4"}}})"),
      node(R"({"metadata": {"name": "c"}, "status": {"allocatable": {"cpu": "lots"}}})"),
  });
  REQUIRE(capacities.size() == 3);
  CHECK(capacities.at("a").cpuMilli == 3500);
  CHECK(capacities.at("a").memoryBytes == 8LL << 30);
  CHECK(capacities.at("a").gpus == 2);
  CHECK(capacities.at("b").cpuMilli == 4000);
  CHECK(capacities.at("b").memoryBytes == 0);
  CHECK(capacities.at("c").cpuMilli == 0);  // unparsable: counts nothing
}
