#include "kube/resource_list.h"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "common/json_reader.h"
#include "kube/quantity.h"

namespace pi0::kube {

namespace {

using Json = nlohmann::json;

using json::itemPath;
using json::member;

Error typeError(const std::string& path, const char* expected) {
  return Error{path + ": not " + expected};
}

// Saturating: absurd requests must not overflow into small ones.
int64_t addSat(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<int64_t>::max();
  return r;
}

ResourceList plus(const ResourceList& a, const ResourceList& b) {
  return {addSat(a.cpuMilli, b.cpuMilli), addSat(a.memoryBytes, b.memoryBytes),
          addSat(a.gpus, b.gpus)};
}

ResourceList maxOf(const ResourceList& a, const ResourceList& b) {
  return {std::max(a.cpuMilli, b.cpuMilli), std::max(a.memoryBytes, b.memoryBytes),
          std::max(a.gpus, b.gpus)};
}

// The array `key` of `spec` (empty when absent), or an error when it is something else.
Result<const Json*> array(const Json& spec, const char* key) {
  static const Json kEmpty = Json::array();
  const Json* v = member(spec, key);
  if (!v) return &kEmpty;
  if (!v->is_array()) return std::unexpected(typeError(std::string("spec.") + key, "an array"));
  return v;
}

Result<ResourceList> containerRequests(const Json& container, const std::string& path) {
  if (!container.is_object()) return std::unexpected(typeError(path, "an object"));
  const Json* resources = member(container, "resources");
  if (!resources) return ResourceList{};
  if (!resources->is_object()) return std::unexpected(typeError(path + ".resources", "an object"));
  const Json* requests = member(*resources, "requests");
  if (!requests) return ResourceList{};
  return parseResourceList(*requests, path + ".resources.requests");
}

}  // namespace

Result<ResourceList> parseResourceList(const nlohmann::json& list, const std::string& path) {
  ResourceList r;
  if (!list.is_object()) return std::unexpected(typeError(path, "an object"));
  for (const auto& [key, value] : list.items()) {
    const bool cpu = key == "cpu", memory = key == "memory", gpu = key == kGpuResourceName;
    if (!cpu && !memory && !gpu) continue;
    const std::string here = path + "." + key;
    const std::optional<std::string> quantity = quantityText(value);
    if (!quantity) return std::unexpected(typeError(here, "a quantity"));
    const std::string& text = *quantity;
    auto q = memory ? parseBytes(text) : parseCpuMilli(text);
    if (!q) return fail(here + ": " + q.error().message);
    if (*q < 0) return fail(here + ": \"" + text + "\" is negative");
    if (cpu) r.cpuMilli = *q;
    if (memory) r.memoryBytes = *q;
    if (gpu) {
      // A GPU quantity is read as cpu is (to thousandths) so that "500m" is seen and refused.
      if (*q % 1000 != 0) return fail(here + ": \"" + text + "\" is not a whole number of GPUs");
      r.gpus = *q / 1000;
    }
  }
  return r;
}

Result<ResourceList> podRequests(const nlohmann::json& podSpec) {
  if (!podSpec.is_object()) return std::unexpected(typeError("spec", "an object"));
  auto containers = array(podSpec, "containers");
  if (!containers) return std::unexpected(containers.error());
  ResourceList sum;
  for (std::size_t i = 0; i < (*containers)->size(); ++i) {
    auto r = containerRequests((**containers)[i], itemPath("spec.containers", i));
    if (!r) return r;
    sum = plus(sum, *r);
  }
  auto inits = array(podSpec, "initContainers");
  if (!inits) return std::unexpected(inits.error());
  ResourceList sidecars;  // restartable init containers started so far: they keep running
  ResourceList initPeak;
  for (std::size_t i = 0; i < (*inits)->size(); ++i) {
    const Json& c = (**inits)[i];
    const std::string path = itemPath("spec.initContainers", i);
    auto r = containerRequests(c, path);
    if (!r) return r;
    bool restartable = false;
    if (const Json* policy = member(c, "restartPolicy")) {
      if (!policy->is_string())
        return std::unexpected(typeError(path + ".restartPolicy", "a string"));
      restartable = policy->get<std::string>() == "Always";
    }
    if (restartable) {
      sidecars = plus(sidecars, *r);
      initPeak = maxOf(initPeak, sidecars);
    } else {
      initPeak = maxOf(initPeak, plus(*r, sidecars));
    }
  }
  const ResourceList total = maxOf(plus(sum, sidecars), initPeak);
  const Json* overhead = member(podSpec, "overhead");
  if (!overhead) return total;
  auto o = parseResourceList(*overhead, "spec.overhead");
  if (!o) return o;
  return plus(total, *o);
}

Result<ResourceList> nodeAllocatable(const nlohmann::json& node) {
  if (!node.is_object()) return ResourceList{};
  const Json* status = member(node, "status");
  if (!status) return ResourceList{};
  if (!status->is_object()) return std::unexpected(typeError("status", "an object"));
  const Json* list = member(*status, "allocatable");
  if (!list) return ResourceList{};
  return parseResourceList(*list, "status.allocatable");
}

}  // namespace pi0::kube
