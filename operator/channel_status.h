// A Channel's status as a pure function of what the operator observed: its workloads (with the
// operator's undo records), its pods, the last health state and the throughput query's value.
// The reconciler writes the result only when it differs from the stored status (see
// statusChanged), so a quiet cluster sees no writes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stability/health.h"
#include "stability/planner.h"
#include "stability/requests.h"
#include "stability/spec.h"

namespace pi0::op {

struct ChannelInputs {
  const stability::ChannelSpec* spec = nullptr;
  stability::Weights weights;               // the channel's own, else its matrix's
  std::vector<nlohmann::json> workloads;    // the targets that exist
  std::vector<nlohmann::json> autoscalers;  // [i]: workloads[i]'s HPA, null when none
  std::vector<std::string> missingTargets;  // "Deployment/web" for targets that do not
  std::vector<stability::PodSample> pods;
  std::optional<double> throughputValue;  // the Prometheus query's value, when there is one
  std::optional<std::string> throughputError;
  stability::ChannelHealth health;  // from the stored status (healthFromStatus)
  std::string level;                // the matrix level that put it in its state
  // Pi0 is changing the channel's replicas now (a step or a restore): pods starting or going
  // are not the channel's outages (stability::observe).
  bool pi0Transition = false;
  nlohmann::json previousStatus = nlohmann::json::object();
  stability::WallClock::time_point now;
};

struct ChannelOutcome {
  nlohmann::json status;
  stability::ChannelState state = stability::ChannelState::kActive;
  double cpo = 0;
  stability::ChannelHealth health;
  bool ready = true;  // every target has its replicas ready
};

// The channel's state from its workloads' records: Inactive when a recorded target is at 0
// replicas, Degraded when a recorded target runs fewer than its original count, else Active.
// `autoscalers[i]` is workloads[i]'s HorizontalPodAutoscaler (null when it has none; the vector
// may be shorter): an autoscaler that still carries Pi0's record makes the channel Degraded.
stability::ChannelState stateFromWorkloads(const std::vector<nlohmann::json>& workloads,
                                           const std::vector<nlohmann::json>& autoscalers = {});
// Whether any workload or autoscaler carries a record of Pi0's (restorePending), or an
// autoscaler the stamp of a restore of its bounds: on an Active channel, the trace of a step
// interrupted after its first write, which a restore clears.
bool leftoverRecord(const std::vector<nlohmann::json>& workloads,
                    const std::vector<nlohmann::json>& autoscalers);

ChannelOutcome channelStatus(const ChannelInputs& in);

// status.buffer, or null for none. With an allocation (the acting matrix's status.channels[]
// buffer, at a level above the first, when it names a resource): allocated; baseline, what the
// channel's pods requested when the level rose (kept from `previousStatus` while the level stays
// up, else `requested` now); requested; used, what they request beyond the baseline (never below
// 0); observedAt, `now` with milliseconds (pi0-webhook ends its reservations for pods admitted
// before it).
nlohmann::json bufferStatus(const std::optional<stability::Resources>& allocation,
                            const stability::PodRequests& requested,
                            const nlohmann::json& previousStatus,
                            stability::WallClock::time_point now);

// The health state kept in status.health (and the reliability in status.terms).
stability::ChannelHealth healthFromStatus(const nlohmann::json& status);

// True when `next` differs from `previous` in anything but the timestamps that change on every
// look (health.observedAt).
bool statusChanged(const nlohmann::json& previous, const nlohmann::json& next);

// Sets or updates a metav1.Condition in `conditions`, keeping lastTransitionTime when the status
// did not change.
void setCondition(nlohmann::json& conditions, const std::string& type, bool status,
                  const std::string& reason, const std::string& message, int64_t observedGeneration,
                  const std::string& now);

}  // namespace pi0::op
