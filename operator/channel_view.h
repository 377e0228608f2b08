// What the operator knows of one Channel, from its caches: the parsed spec, its target
// workloads (and which are missing), the state their undo records give, whether their replicas
// are ready, and its pods' restarts. Built by the reconcilers' I/O layer; read by the pure
// decisions (matrix_reconcile.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kube/store.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::op {

struct ChannelView {
  kube::ObjectPtr object;
  std::optional<stability::ChannelSpec> spec;  // nullopt when the object does not parse
  std::string parseError;
  std::vector<kube::ObjectPtr> workloads;    // the targets that exist, in spec order
  std::vector<std::string> missing;          // "Deployment/web"
  std::vector<kube::ObjectPtr> autoscalers;  // [i]: workloads[i]'s HPA, null when none
  stability::ChannelState state = stability::ChannelState::kActive;
  // A workload or HPA carries Pi0's record although the state is Active: a step stopped after
  // its first write; a restore clears it.
  bool leftover = false;
  bool ready = true;    // every target exists and has its replicas ready
  int64_t desired = 0;  // spec.replicas summed over the targets
  int64_t readyReplicas = 0;
  // Container restarts summed over the channel's pods; counted only for a channel with
  // dependsOn (a rollback check watches the dependents of the channel a step touched).
  int64_t restarts = 0;
  // The latest stability.pi0.io/last-action-time stamp on its workloads and their HPAs.
  std::optional<std::chrono::system_clock::time_point> lastAction;

  std::string key() const;
  // The spec with only the targets that exist: a step acts on those and says what it skipped.
  stability::ChannelSpec existing() const;
  // Ready over desired replicas (1 when nothing is desired and the channel is not shut down).
  double readyShare() const;
  // priority and terms.reliability from the Channel's status.
  double cpo() const;
  double reliability() const;
};

// The caches a view is built from.
struct ViewSources {
  const kube::Store& deployments;
  const kube::Store& statefulSets;
  const kube::Store& autoscalers;
  const kube::Store& pods;
};

ChannelView viewOf(const kube::ObjectPtr& channel, const ViewSources& sources);
// Every Channel, sorted by key.
std::vector<ChannelView> viewsOf(const std::vector<kube::ObjectPtr>& channels,
                                 const ViewSources& sources);

std::string targetName(const stability::Target& target);

}  // namespace pi0::op
