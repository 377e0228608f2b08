// Cluster load ℓ (DESIGN.md, "Gate metrics"): for each resource, the capacity-weighted mean over
// nodes of the projected peak; ℓ is the largest of those, and that resource is the binding one.
// Pure functions: no I/O, no clock (the time to judge freshness is an argument).
//
// Decisions:
// - A node's projected peak of a resource is its ResourceView's (fleet/resource_view.h):
//   1 − isolation of "cpu" or "memory", and for gpu the mean over the node's GPUs.
// - A node counts for a resource when its data is usable (FleetSnapshot::isUsable: a
//   fingerprint fetched within staleAfter, node not Failed) and the resource's signal has gate
//   metrics (the agent's window is full). Otherwise it is missing: left out of the mean (which
//   is renormalized over the nodes counted) and reported in nodesMissing, so the caller sees the
//   coverage. Nodes are the keys of the capacity map (the cluster's Node objects); agents with
//   no capacity entry are ignored, nodes with no agent are missing.
// - A node with zero capacity of a resource (no GPUs) takes no part in that resource.
// - A resource asked for with capacity in the cluster but no node counted makes ℓ unknown
//   (nullopt): ℓ over the other resources alone could be far too low. A resource with no
//   capacity anywhere (gpu on a cluster without GPUs) is left out of ℓ. No resource left, or
//   none asked for: ℓ unknown.
// - The anticipated load at a lead A (a ShutdownMatrix's spec.anticipationSeconds) is the same
//   mean of each node's forecast A seconds past its horizon, F(horizon + A)
//   (ResourceView::anticipatedPeak), over the same nodes: a node whose agent publishes no forecast
//   (one older than the forecast) contributes its projected peak, as it does to ℓ. Since F never
//   falls with τ, the anticipated load is at least ℓ.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/resource.h"
#include "fleet/fingerprint.h"
#include "fleet/fleet_view.h"
#include "fleet/resource_view.h"

namespace pi0::fleet {

using pi0::kAllResources;
using pi0::Resource;
using pi0::resourceName;

// A node's allocatable capacity (from its Node object's status.allocatable). Negative values
// are read as 0.
struct Capacity {
  std::int64_t cpuMilli = 0;
  std::int64_t memoryBytes = 0;
  std::int64_t gpus = 0;

  double of(Resource resource) const;
};

using CapacityMap = std::map<std::string, Capacity, std::less<>>;

struct ResourceLoad {
  std::optional<double> peak;  // capacity-weighted mean projected peak; nullopt when unknown
  // The same of anticipatedPeak() at the lead asked for; nullopt without a lead or a peak.
  std::optional<double> anticipated;
  int nodesForecast = 0;       // of nodesCounted, those whose forecast went into `anticipated`
  double capacityCounted = 0;  // the weight behind `peak` (millicores, bytes or GPUs)
  int nodesCounted = 0;        // nodes with capacity of this resource whose data went in
  int nodesMissing = 0;        // nodes with capacity of this resource whose data did not
};

struct ClusterLoad {
  std::optional<double> load;         // ℓ; nullopt when unknown (see above)
  Resource binding = Resource::kCpu;  // the resource ℓ comes from; meaningful only with load
  // ℓ at the lead asked for (the largest resource's anticipated load); nullopt when ℓ is, or
  // when no lead was asked for.
  std::optional<double> anticipated;
  Resource anticipatedBinding = Resource::kCpu;
  ResourceLoad cpu, memory, gpu;
  // Over the nodes with capacity of some resource asked for: those that counted for every such
  // resource, and those missing for at least one.
  int nodesCounted = 0;
  int nodesMissing = 0;

  const ResourceLoad& of(Resource resource) const;
};

// One node's input to clusterLoad(): `fingerprint` is null when the node's data is missing,
// stale or the node is Failed.
struct NodeLoadInput {
  std::string_view node;
  Capacity capacity;
  const NodeFingerprint* fingerprint = nullptr;
};

// `leadSeconds` (>= 0; nullopt: none) asks for the anticipated load as well.
ClusterLoad clusterLoad(std::span<const NodeLoadInput> nodes, std::span<const Resource> resources,
                        std::optional<double> leadSeconds = std::nullopt);

// The same over a fleet snapshot at `now`, for the nodes of `capacity`.
ClusterLoad clusterLoad(const FleetSnapshot& fleet, Clock::time_point now,
                        const CapacityMap& capacity, std::span<const Resource> resources,
                        std::optional<double> leadSeconds = std::nullopt);

}  // namespace pi0::fleet
