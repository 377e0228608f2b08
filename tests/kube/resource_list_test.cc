// The scheduler's effective requests and a node's allocatable (kube/resource_list.h), each case
// computed by hand in its comment.
#include "kube/resource_list.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

using namespace pi0;
using namespace pi0::kube;
using Json = nlohmann::json;

namespace {

constexpr std::int64_t kMi = 1024LL * 1024;
constexpr std::int64_t kGi = 1024 * kMi;

Json container(const char* cpu, const char* memory, const char* gpus = nullptr) {
  Json r = Json::object();
  if (cpu) r["cpu"] = cpu;
  if (memory) r["memory"] = memory;
  if (gpus) r["nvidia.com/gpu"] = gpus;
  return Json{{"name", "c"}, {"resources", {{"requests", r}}}};
}

Json sidecar(const char* cpu, const char* memory) {
  Json s = container(cpu, memory);
  s["restartPolicy"] = "Always";
  return s;
}

ResourceList requestsOf(const Json& spec) {
  auto r = podRequests(spec);
  REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
  return *r;
}

}  // namespace

TEST_CASE("podRequests: containers, init containers, sidecars and overhead, per resource") {
  struct Case {
    const char* name;
    Json spec;
    ResourceList want;
  };
  const Case cases[] = {
      // Nothing asked for: zero everywhere.
      {"empty spec", Json::object(), {}},
      {"a container without resources", {{"containers", {Json{{"name", "c"}}}}}, {}},
      {"null resources and requests",
       {{"containers",
         {Json{{"resources", nullptr}}, Json{{"resources", {{"requests", nullptr}}}}}}},
       {}},
      // 500m + 250m = 750m; 1Gi + 512Mi = 1536Mi; 0 + 2 GPUs.
      {"containers are summed",
       {{"containers", {container("500m", "1Gi"), container("250m", "512Mi", "2")}}},
       {750, 1536 * kMi, 2}},
      // Containers 500m/1Gi; the init container 2/64Mi runs alone before them: cpu max(500m, 2)
      // = 2000m, memory max(1Gi, 64Mi) = 1Gi. Each resource takes its own maximum.
      {"an init container larger on cpu only",
       {{"containers", {container("500m", "1Gi")}}, {"initContainers", {container("2", "64Mi")}}},
       {2000, kGi, 0}},
      // Two init containers run one after the other: the larger of them, not their sum.
      {"init containers are not summed",
       {{"containers", {container("100m", "64Mi")}},
        {"initContainers", {container("1", "128Mi"), container("700m", "256Mi")}}},
       {1000, 256 * kMi, 0}},
      // The sidecar 100m/128Mi keeps running beside the init container after it (1 + 100m =
      // 1100m, 64Mi + 128Mi = 192Mi) and beside the containers (500m + 100m = 600m, 1Gi +
      // 128Mi = 1152Mi): cpu max(1100m, 600m), memory max(192Mi, 1152Mi).
      {"a sidecar runs beside later init containers and the containers",
       {{"containers", {container("500m", "1Gi")}},
        {"initContainers", {sidecar("100m", "128Mi"), container("1", "64Mi")}}},
       {1100, 1152 * kMi, 0}},
      // The init container 2 runs before the sidecar 1 starts: peak 2000m; then sidecar +
      // containers 1 + 500m = 1500m. Had the sidecar come first, the peak would be 3000m.
      {"a sidecar started after an init container does not add to it",
       {{"containers", {container("500m", nullptr)}},
        {"initContainers", {container("2", nullptr), sidecar("1", nullptr)}}},
       {2000, 0, 0}},
      {"the same sidecar first adds to the init container",
       {{"containers", {container("500m", nullptr)}},
        {"initContainers", {sidecar("1", nullptr), container("2", nullptr)}}},
       {3000, 0, 0}},
      // Overhead is added after the maximum: max(500m, 2) + 250m = 2250m; 1Gi + 1Gi.
      {"overhead is added on top",
       {{"containers", {container("500m", "1Gi")}},
        {"initContainers", {container("2", nullptr)}},
        {"overhead", {{"cpu", "250m"}, {"memory", "1Gi"}}}},
       {2250, 2 * kGi, 0}},
      // Quantities may be JSON numbers; unknown resources are ignored.
      {"numbers and other resources",
       {{"containers",
         {Json{{"resources", {{"requests", {{"cpu", 2}, {"ephemeral-storage", "1Gi"}}}}}}}}},
       {2000, 0, 0}},
      // restartPolicy other than Always is a plain init container.
      {"an init container with restartPolicy Never",
       {{"containers", {container("1", nullptr)}}, {"initContainers", {[] {
                                                      Json c = container("300m", nullptr);
                                                      c["restartPolicy"] = "Never";
                                                      return c;
                                                    }()}}},
       {1000, 0, 0}},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    const ResourceList got = requestsOf(tc.spec);
    CHECK(got.cpuMilli == tc.want.cpuMilli);
    CHECK(got.memoryBytes == tc.want.memoryBytes);
    CHECK(got.gpus == tc.want.gpus);
  }
}

TEST_CASE("podRequests saturates instead of overflowing") {
  // 2^62 bytes twice would overflow int64 to a negative number; it must stay at the maximum.
  const Json spec = {
      {"containers",
       {container(nullptr, "4611686018427387904"), container(nullptr, "4611686018427387904")}}};
  CHECK(requestsOf(spec).memoryBytes == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("podRequests names the field at fault, never throws") {
  struct Case {
    Json spec;
    const char* error;  // a substring of the message
  };
  const Case cases[] = {
      {Json::array(), "spec: not an object"},
      {{{"containers", Json::object()}}, "spec.containers: not an array"},
      {{{"initContainers", 3}}, "spec.initContainers: not an array"},
      {{{"containers", {Json::array()}}}, "spec.containers[0]: not an object"},
      {{{"containers", {container("1", nullptr), container("5x", nullptr)}}},
       "spec.containers[1].resources.requests.cpu: \"5x\" is not a quantity"},
      {{{"containers", {Json{{"resources", {{"requests", {{"memory", true}}}}}}}}},
       "spec.containers[0].resources.requests.memory: not a quantity"},
      {{{"containers", {container("-1", nullptr)}}},
       "spec.containers[0].resources.requests.cpu: \"-1\" is negative"},
      {{{"containers", {container(nullptr, nullptr, "500m")}}},
       "spec.containers[0].resources.requests.nvidia.com/gpu: \"500m\" is not a whole number of "
       "GPUs"},
      {{{"initContainers", {Json{{"resources", Json::array()}}}}},
       "spec.initContainers[0].resources: not an object"},
      {{{"initContainers", {Json{{"restartPolicy", 1}}}}},
       "spec.initContainers[0].restartPolicy: not a string"},
      {{{"overhead", Json::array()}}, "spec.overhead: not an object"},
      {{{"overhead", {{"memory", "lots"}}}}, "spec.overhead.memory: \"lots\" is not a quantity"},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.spec.dump());
    auto r = podRequests(tc.spec);
    REQUIRE_FALSE(r.has_value());
    CHECK_MESSAGE(r.error().message.find(tc.error) != std::string::npos, r.error().message);
  }
}

TEST_CASE("parseResourceList reads cpu, memory and whole GPUs, naming the list in errors") {
  auto r = parseResourceList(
      Json{{"cpu", "3500m"}, {"memory", "2Gi"}, {"nvidia.com/gpu", 4}, {"pods", "110"}},
      "status.allocatable");
  REQUIRE(r.has_value());
  CHECK(*r == ResourceList{3500, 2 * kGi, 4});
  auto bad = parseResourceList(Json{{"cpu", "x"}}, "status.allocatable");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message.find("status.allocatable.cpu: \"x\"") == 0);
  auto notObject = parseResourceList(Json::array(), "status.allocatable");
  REQUIRE_FALSE(notObject.has_value());
  CHECK(notObject.error().message == "status.allocatable: not an object");
}

TEST_CASE("nodeAllocatable reads status.allocatable; absent parts are 0") {
  auto r = nodeAllocatable(Json::parse(R"({"metadata": {"name": "n"},
      "status": {"allocatable": {"cpu": "3900m", "memory": "15Gi", "nvidia.com/gpu": "2"}}})"));
  REQUIRE(r.has_value());
  CHECK(*r == ResourceList{3900, 15 * kGi, 2});
  for (const char* text : {R"({})", R"({"status": null})", R"({"status": {}})",
                           R"({"status": {"allocatable": null}})"}) {
    CAPTURE(text);
    auto empty = nodeAllocatable(Json::parse(text));
    REQUIRE(empty.has_value());
    CHECK(*empty == ResourceList{});
  }
  auto notObject = nodeAllocatable(Json::parse(R"({"status": []})"));
  REQUIRE_FALSE(notObject.has_value());
  CHECK(notObject.error().message == "status: not an object");
  auto bad = nodeAllocatable(Json::parse(R"({"status": {"allocatable": {"memory": "lots"}}})"));
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message.find("status.allocatable.memory: \"lots\" is not a quantity") == 0);
}
