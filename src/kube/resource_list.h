// The resources Pi0 counts (cpu, memory, nvidia.com/gpu) as Kubernetes lists them: a pod's
// effective requests as the scheduler computes them (k8s.io/component-helpers
// resource.PodRequests), from a Pod's spec or a pod template's spec, and a node's allocatable.
// The webhook checks a new pod against a channel's buffer and a node with them, and the operator
// counts a channel's pods into its buffer and the nodes' capacity with them: one formula each,
// so that the two agree. Pure functions, no I/O, never throw; any thread may call them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pi0::kube {

inline constexpr std::string_view kGpuResourceName = "nvidia.com/gpu";

// cpu in millicores, memory in bytes, nvidia.com/gpu in whole devices.
struct ResourceList {
  int64_t cpuMilli = 0;
  int64_t memoryBytes = 0;
  int64_t gpus = 0;
  friend bool operator==(const ResourceList&, const ResourceList&) = default;
};

// The pod's effective requests, per resource separately: the larger of
//  - the sum over containers plus the restartable init containers (sidecars, restartPolicy
//    Always), and
//  - the largest of each init container plus the sidecars started before it (init containers
//    run one at a time, while sidecars keep running),
// plus spec.overhead. Absent and null fields are empty; quantities may be strings or JSON
// numbers; resources other than cpu, memory and nvidia.com/gpu are ignored; sums saturate at
// INT64_MAX instead of overflowing. An Error names the field, counted from "spec", e.g.
// "spec.containers[1].resources.requests.cpu: \"5x\" is not a quantity: ...", and is given for
// a spec that is not an object, a negative quantity, or a fraction of a GPU.
Result<ResourceList> podRequests(const nlohmann::json& podSpec);

// One resource list (a container's requests, spec.overhead, a node's status.allocatable): cpu,
// memory and nvidia.com/gpu, others ignored, absent ones 0. `path` names the list in errors
// ("status.allocatable.cpu: ...", "status.allocatable: not an object").
Result<ResourceList> parseResourceList(const nlohmann::json& list, const std::string& path);

// A Node's status.allocatable (absent: all 0). An Error names the field, as parseResourceList
// does; "status: not an object" when the status is something else.
Result<ResourceList> nodeAllocatable(const nlohmann::json& node);

}  // namespace pi0::kube
