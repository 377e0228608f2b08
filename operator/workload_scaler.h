// Degrades, shuts down and restores the workloads of a channel through the Kubernetes API,
// so that nothing is lost (see workload_state.h): each change is one conditional write of the
// object that carries its own undo record, retried on conflict by reading again. Calling any
// method twice, or after a crash halfway through a channel's targets, does what is left and
// nothing more.
//
// Thread-safety: a WorkloadScaler is as thread-safe as the Client it uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kube/client.h"
#include "stability/spec.h"

namespace pi0::op {

struct TargetOutcome {
  stability::Target target;
  bool changed = false;  // this call wrote something
  int32_t replicasBefore = 0;
  int32_t replicasAfter = 0;
  std::string autoscaler;          // the HPA that drives the target, if any
  bool autoscalerChanged = false;  // this call wrote the HPA
};

struct Readiness {
  int32_t desired = 0;  // spec.replicas
  int32_t ready = 0;    // status.readyReplicas
  bool settled() const { return ready >= desired; }
};

class WorkloadScaler {
 public:
  explicit WorkloadScaler(kube::Client& client) : client_(client) {}

  // Scales every target of the channel down to `replicas` (degrade: degradedReplicas; shutdown:
  // 0). A target driven by a HorizontalPodAutoscaler gets its bounds capped too (at least 1, as
  // autoscaling/v1 requires), so the autoscaler keeps it down. Stops at the first failure: the
  // targets done so far stay done and are restorable.
  kube::ApiResult<std::vector<TargetOutcome>> scaleDown(const stability::ChannelSpec& channel,
                                                        int32_t replicas);

  // From a shutdown to a degrade: raises every recorded target to `replicas` (at most its
  // original count), keeping the records; the autoscalers stay capped.
  kube::ApiResult<std::vector<TargetOutcome>> raise(const stability::ChannelSpec& channel,
                                                    int32_t replicas);

  // Puts every target (and its autoscaler) back to what was recorded before the first change.
  kube::ApiResult<std::vector<TargetOutcome>> restore(const stability::ChannelSpec& channel);

  // Desired and ready replicas summed over the channel's targets; a missing target is NotFound.
  kube::ApiResult<Readiness> readiness(const stability::ChannelSpec& channel);

  // The HorizontalPodAutoscaler in `ns` whose scaleTargetRef names the target, if any.
  kube::ApiResult<std::optional<kube::Json>> autoscalerFor(const std::string& ns,
                                                           const stability::Target& target);

 private:
  kube::Client& client_;
};

const kube::ResourceType& resourceOf(stability::WorkloadKind kind);

}  // namespace pi0::op
