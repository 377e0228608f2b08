#include "kube/resource_list.h"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "common/json_reader.h"
#include "kube/quantity.h"

namespace pi0::kube {

namespace {

using json::Node;
using json::Reader;

// The pod and node readers' wording: "spec.containers: not an array".
Reader terseReader() {
  return Reader(": ", Reader::Wording::kNot);
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

// One resource list: cpu, memory and nvidia.com/gpu, others ignored.
ResourceList readList(Reader& r, const Node& list) {
  ResourceList out;
  if (!r.object(list)) return out;
  for (const auto& [key, value] : list.value->items()) {
    const bool cpu = key == "cpu", memory = key == "memory", gpu = key == kGpuResourceName;
    if (!cpu && !memory && !gpu) continue;
    const Node here = list.child(key);
    const std::optional<std::string> text = quantityText(value);
    if (!text) {
      r.problem(here, "not a quantity");
      continue;
    }
    auto q = memory ? parseBytes(*text) : parseCpuMilli(*text);
    if (!q) {
      r.problem(here, q.error().message);
    } else if (*q < 0) {
      r.problem(here, json::quote(*text) + " is negative");
    } else if (cpu) {
      out.cpuMilli = *q;
    } else if (memory) {
      out.memoryBytes = *q;
    } else if (*q % 1000 != 0) {
      // A GPU quantity is read as cpu is (to thousandths) so that "500m" is seen and refused.
      r.problem(here, json::quote(*text) + " is not a whole number of GPUs");
    } else {
      out.gpus = *q / 1000;
    }
  }
  return out;
}

// A container's requests; a container that is not an object (null included) is a problem.
ResourceList containerRequests(Reader& r, const Node& container) {
  if (!container.present()) {
    r.problem(container, "not an object");
    return {};
  }
  if (!r.object(container)) return {};
  const Node resources = container.child("resources");
  if (!r.object(resources)) return {};
  const Node requests = resources.child("requests");
  return requests.present() ? readList(r, requests) : ResourceList{};
}

}  // namespace

Result<ResourceList> parseResourceList(const nlohmann::json& list, const std::string& path) {
  Reader r = terseReader();
  const ResourceList out = readList(r, Node::root(list, path));
  if (!r.ok()) return fail(r.error());
  return out;
}

Result<ResourceList> podRequests(const nlohmann::json& podSpec) {
  if (!podSpec.is_object()) return fail("spec: not an object");
  Reader r = terseReader();
  const Node spec = Node::root(podSpec, "spec");
  ResourceList sum;
  for (const Node& c : r.items(spec.child("containers")))
    sum = plus(sum, containerRequests(r, c));
  ResourceList sidecars;  // restartable init containers started so far: they keep running
  ResourceList initPeak;
  for (const Node& c : r.items(spec.child("initContainers"))) {
    const ResourceList requests = containerRequests(r, c);
    if (r.string(c.child("restartPolicy")) == "Always") {
      sidecars = plus(sidecars, requests);
      initPeak = maxOf(initPeak, sidecars);
    } else {
      initPeak = maxOf(initPeak, plus(requests, sidecars));
    }
  }
  ResourceList total = maxOf(plus(sum, sidecars), initPeak);
  const Node overhead = spec.child("overhead");
  if (overhead.present()) total = plus(total, readList(r, overhead));
  if (!r.ok()) return fail(r.error());
  return total;
}

Result<ResourceList> nodeAllocatable(const nlohmann::json& node) {
  Reader r = terseReader();
  const Node status = Node::root(node).child("status");
  if (!status.present() || !r.object(status)) {
    if (!r.ok()) return fail(r.error());
    return ResourceList{};
  }
  const Node list = status.child("allocatable");
  const ResourceList out = list.present() ? readList(r, list) : ResourceList{};
  if (!r.ok()) return fail(r.error());
  return out;
}

}  // namespace pi0::kube
