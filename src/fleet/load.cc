#include "fleet/load.h"

#include <algorithm>
#include <vector>

namespace pi0::fleet {
namespace {

ResourceLoad& slot(ClusterLoad& load, Resource resource) {
  switch (resource) {
    case Resource::kCpu:
      return load.cpu;
    case Resource::kMemory:
      return load.memory;
    case Resource::kGpu:
      return load.gpu;
  }
  return load.cpu;
}

}  // namespace

double Capacity::of(Resource resource) const {
  std::int64_t v = 0;
  switch (resource) {
    case Resource::kCpu:
      v = cpuMilli;
      break;
    case Resource::kMemory:
      v = memoryBytes;
      break;
    case Resource::kGpu:
      v = gpus;
      break;
  }
  return static_cast<double>(std::max<std::int64_t>(v, 0));
}

const ResourceLoad& ClusterLoad::of(Resource resource) const {
  switch (resource) {
    case Resource::kCpu:
      return cpu;
    case Resource::kMemory:
      return memory;
    case Resource::kGpu:
      return gpu;
  }
  return cpu;
}

ClusterLoad clusterLoad(std::span<const NodeLoadInput> nodes, std::span<const Resource> resources,
                        std::optional<double> leadSeconds) {
  ClusterLoad out;
  std::vector<Resource> asked;
  for (Resource r : resources) {
    if (std::find(asked.begin(), asked.end(), r) == asked.end()) asked.push_back(r);
  }

  std::array<double, 3> weightedSum{}, anticipatedSum{};
  for (const NodeLoadInput& node : nodes) {
    bool relevant = false;
    bool complete = true;
    for (Resource r : asked) {
      const double capacity = node.capacity.of(r);
      if (capacity <= 0) continue;
      relevant = true;
      ResourceLoad& load = slot(out, r);
      std::optional<ResourceView> view;
      if (node.fingerprint) view = resourceView(*node.fingerprint, r);
      const std::optional<double> peak = view ? view->projectedPeak : std::nullopt;
      if (!peak) {
        ++load.nodesMissing;
        complete = false;
        continue;
      }
      ++load.nodesCounted;
      load.capacityCounted += capacity;
      weightedSum[static_cast<std::size_t>(r)] += capacity * *peak;
      if (leadSeconds) {
        // A node without a forecast contributes its projected peak (load.h).
        const double lead = std::max(*leadSeconds, 0.0);
        if (view->forecastAt(lead)) ++load.nodesForecast;
        anticipatedSum[static_cast<std::size_t>(r)] +=
            capacity * view->anticipatedPeak(lead).value_or(*peak);
      }
    }
    if (!relevant) continue;
    ++(complete ? out.nodesCounted : out.nodesMissing);
  }

  bool unknown = false;
  for (Resource r : asked) {
    ResourceLoad& load = slot(out, r);
    if (load.nodesCounted == 0) {
      // Capacity but no data: unknown, and so is ℓ. No capacity at all: not part of ℓ.
      if (load.nodesMissing > 0) unknown = true;
      continue;
    }
    load.peak = weightedSum[static_cast<std::size_t>(r)] / load.capacityCounted;
    if (!out.load || *load.peak > *out.load) {
      out.load = load.peak;
      out.binding = r;
    }
    if (!leadSeconds) continue;
    load.anticipated = anticipatedSum[static_cast<std::size_t>(r)] / load.capacityCounted;
    if (!out.anticipated || *load.anticipated > *out.anticipated) {
      out.anticipated = load.anticipated;
      out.anticipatedBinding = r;
    }
  }
  if (unknown) {
    out.load.reset();
    out.anticipated.reset();
  }
  return out;
}

ClusterLoad clusterLoad(const FleetSnapshot& fleet, Clock::time_point now,
                        const CapacityMap& capacity, std::span<const Resource> resources,
                        std::optional<double> leadSeconds) {
  std::vector<NodeLoadInput> inputs;
  inputs.reserve(capacity.size());
  for (const auto& [node, cap] : capacity) {
    const NodeStatus* status = fleet.find(node);
    const NodeFingerprint* fp =
        status && fleet.isUsable(*status, now) ? status->fingerprint.get() : nullptr;
    inputs.push_back({node, cap, fp});
  }
  return clusterLoad(inputs, resources, leadSeconds);
}

}  // namespace pi0::fleet
