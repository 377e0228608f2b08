#include "fleet/load.h"

#include <algorithm>
#include <vector>

namespace pi0::fleet {
namespace {

bool isGpuSmSignal(std::string_view name) {
  // "gpu<digits>_sm"
  if (!name.starts_with("gpu") || !name.ends_with("_sm")) return false;
  const std::string_view index = name.substr(3, name.size() - 6);
  return !index.empty() &&
         std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; });
}

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

namespace {

// `of` applied to the resource's signal (cpu, memory) or, for gpu, the mean over the node's
// GPUs; nullopt when a signal has no value.
template <class F>
std::optional<double> perResource(const NodeFingerprint& fingerprint, Resource resource, F of) {
  switch (resource) {
    case Resource::kCpu:
    case Resource::kMemory: {
      const SignalFingerprint* s = fingerprint.signal(resourceName(resource));
      return s ? of(*s) : std::nullopt;
    }
    case Resource::kGpu: {
      double sum = 0;
      int n = 0;
      for (const auto& [name, s] : fingerprint.signals) {
        if (!isGpuSmSignal(name)) continue;
        auto p = of(s);
        // One GPU without data leaves the node's mean unknown rather than biased.
        if (!p) return std::nullopt;
        sum += *p;
        ++n;
      }
      if (n == 0) return std::nullopt;
      return sum / n;
    }
  }
  return std::nullopt;
}

std::optional<double> peakOf(const SignalFingerprint& s) {
  if (!s.gates) return std::nullopt;
  return 1.0 - s.gates->isolation;
}

}  // namespace

std::optional<double> projectedPeak(const NodeFingerprint& fingerprint, Resource resource) {
  return perResource(fingerprint, resource, peakOf);
}

std::optional<double> forecastAt(const NodeFingerprint& fingerprint, Resource resource,
                                 double seconds) {
  return perResource(fingerprint, resource,
                     [seconds](const SignalFingerprint& s) -> std::optional<double> {
                       if (!s.forecast) return std::nullopt;
                       return s.forecast->at(seconds);
                     });
}

std::optional<double> anticipatedPeak(const NodeFingerprint& fingerprint, Resource resource,
                                      double leadSeconds) {
  return perResource(
      fingerprint, resource, [leadSeconds](const SignalFingerprint& s) -> std::optional<double> {
        const std::optional<double> peak = peakOf(s);
        if (!peak || !s.forecast) return peak;
        // Never below the peak ℓ counts, whatever rounding the agent's
        // numbers went through.
        return std::max(*peak, s.forecast->at(s.forecast->horizonSeconds + leadSeconds));
      });
}

std::optional<double> secondsToTrouble(const NodeFingerprint& fingerprint, Resource resource) {
  std::optional<double> soonest;
  auto consider = [&](const SignalFingerprint& s) {
    if (!s.forecast || !s.forecast->secondsToTrouble) return;
    if (!soonest || *s.forecast->secondsToTrouble < *soonest)
      soonest = s.forecast->secondsToTrouble;
  };
  if (resource == Resource::kGpu) {
    for (const auto& [name, s] : fingerprint.signals) {
      if (isGpuSmSignal(name)) consider(s);
    }
    return soonest;
  }
  const std::string_view name = resourceName(resource);
  for (const std::string& signal : {std::string(name), "psi_" + std::string(name)}) {
    if (const SignalFingerprint* s = fingerprint.signal(signal)) consider(*s);
  }
  return soonest;
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
      const std::optional<double> peak =
          node.fingerprint ? projectedPeak(*node.fingerprint, r) : std::nullopt;
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
        if (forecastAt(*node.fingerprint, r, lead)) ++load.nodesForecast;
        anticipatedSum[static_cast<std::size_t>(r)] +=
            capacity * anticipatedPeak(*node.fingerprint, r, lead).value_or(*peak);
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
