#include "stability/requests.h"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "stability/spec.h"

namespace pi0::stability {

namespace {

using Json = nlohmann::json;

// The member `key` of `object`, or nullptr when absent or null (Kubernetes treats a null field as
// an absent one). `object` is an object.
const Json* member(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Error typeError(const std::string& path, const char* expected) {
  return Error{path + ": not " + expected};
}

std::string indexed(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// Saturating: absurd requests must not overflow into small ones.
int64_t addSat(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<int64_t>::max();
  return r;
}

PodRequests plus(const PodRequests& a, const PodRequests& b) {
  return {addSat(a.cpuMilli, b.cpuMilli), addSat(a.memoryBytes, b.memoryBytes),
          addSat(a.gpus, b.gpus)};
}

PodRequests maxOf(const PodRequests& a, const PodRequests& b) {
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

Result<PodRequests> containerRequests(const Json& container, const std::string& path) {
  if (!container.is_object()) return std::unexpected(typeError(path, "an object"));
  const Json* resources = member(container, "resources");
  if (!resources) return PodRequests{};
  if (!resources->is_object()) return std::unexpected(typeError(path + ".resources", "an object"));
  const Json* requests = member(*resources, "requests");
  if (!requests) return PodRequests{};
  return parseResourceList(*requests, path + ".resources.requests");
}

}  // namespace

Result<PodRequests> parseResourceList(const nlohmann::json& list, const std::string& path) {
  PodRequests r;
  if (!list.is_object()) return std::unexpected(typeError(path, "an object"));
  for (const auto& [key, value] : list.items()) {
    const bool cpu = key == "cpu", memory = key == "memory", gpu = key == kGpuResourceName;
    if (!cpu && !memory && !gpu) continue;
    const std::string here = path + "." + key;
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_number()) {
      text = value.dump();
    } else {
      return std::unexpected(typeError(here, "a quantity"));
    }
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

Result<PodRequests> podRequests(const nlohmann::json& podSpec) {
  if (!podSpec.is_object()) return std::unexpected(typeError("spec", "an object"));
  auto containers = array(podSpec, "containers");
  if (!containers) return std::unexpected(containers.error());
  PodRequests sum;
  for (std::size_t i = 0; i < (*containers)->size(); ++i) {
    auto r = containerRequests((**containers)[i], indexed("spec.containers", i));
    if (!r) return r;
    sum = plus(sum, *r);
  }
  auto inits = array(podSpec, "initContainers");
  if (!inits) return std::unexpected(inits.error());
  PodRequests sidecars;  // restartable init containers started so far: they keep running
  PodRequests initPeak;
  for (std::size_t i = 0; i < (*inits)->size(); ++i) {
    const Json& c = (**inits)[i];
    const std::string path = indexed("spec.initContainers", i);
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
  const PodRequests total = maxOf(plus(sum, sidecars), initPeak);
  const Json* overhead = member(podSpec, "overhead");
  if (!overhead) return total;
  auto o = parseResourceList(*overhead, "spec.overhead");
  if (!o) return o;
  return plus(total, *o);
}

}  // namespace pi0::stability
