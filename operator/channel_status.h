// The status of a Channel as a typed value (crds/ defines the JSON, docs/resources.md is the
// user's reference), and the channel's state as its workloads' undo records give it. The
// Channel reconciler computes a ChannelStatus from the previous one and the cluster
// (channel_reconcile.h) and writes its JSON only when worthWriting says so, so a quiet cluster
// sees no writes. The health a new leader goes on from (reliability, outages, recovery time,
// an outage under way) and the buffer pi0-webhook reads are here, in the cluster.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube/resource_list.h"
#include "operator/condition.h"
#include "stability/health.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::op {

// The three terms of CPO (status.terms), each in [0,1].
struct ChannelTerms {
  double throughput = 1;
  double reliability = 1;
  double recovery = 1;
  friend bool operator==(const ChannelTerms&, const ChannelTerms&) = default;
};

// Replicas over the targets (status.replicas).
struct ChannelReplicas {
  int64_t desired = 0;
  int64_t ready = 0;
  friend bool operator==(const ChannelReplicas&, const ChannelReplicas&) = default;
};

// What stability::observe keeps between looks (status.health); the reliability is in terms.
struct ChannelHealthStatus {
  std::optional<WallTime> observedAt;
  int outages = 0;
  std::optional<double> meanTimeToRecoverSeconds;
  std::optional<WallTime> notReadySince;  // in an outage since
  friend bool operator==(const ChannelHealthStatus&, const ChannelHealthStatus&) = default;
};

// CPU in millicores and memory in bytes (written as Kubernetes quantities).
struct Quantities {
  int64_t cpuMilli = 0;
  int64_t memoryBytes = 0;
  friend bool operator==(const Quantities&, const Quantities&) = default;
};

// status.buffer: the share of the acting matrix's buffer the channel holds at an elevated
// level, and what its pods use of it (pi0-webhook admits pods against allocated − used).
struct ChannelBuffer {
  stability::Resources allocated;  // cpu and/or memory
  Quantities baseline;             // what the pods requested when the level rose
  Quantities requested;            // what they request now
  Quantities used;                 // requested beyond the baseline, never below 0
  WallTime observedAt;             // written with milliseconds
  friend bool operator==(const ChannelBuffer&, const ChannelBuffer&) = default;
};

struct ChannelStatus {
  int64_t observedGeneration = 0;
  // Whether the status holds a measurement (every field from state to health). False until the
  // operator first measures the channel (while its spec has never parsed): toJson then writes
  // only observedGeneration and conditions. A stored status that lacks one of those fields
  // (written by hand) reads as unmeasured, so the next measuring pass writes it whole.
  bool measured = false;
  stability::ChannelState state = stability::ChannelState::kActive;
  double priority = 0;  // CPO
  ChannelTerms terms;
  double failureProbability = 0;
  ChannelReplicas replicas;
  std::optional<std::string> level;  // the matrix level that put it in a state below Active
  ChannelHealthStatus health;
  std::optional<ChannelBuffer> buffer;
  std::vector<Condition> conditions;
  friend bool operator==(const ChannelStatus&, const ChannelStatus&) = default;
};

// The JSON the operator writes: numbers rounded to 4 decimals, quantities as Kubernetes
// writes them ("500m", "256Mi"), times in RFC 3339 with whole seconds (conditions, health) or
// milliseconds (buffer.observedAt).
nlohmann::json toJson(const ChannelStatus& status);
// Never throws: what does not parse takes its default (see ChannelStatus::measured); a buffer
// with a part missing or a quantity that does not parse reads as none. Unknown fields are
// dropped.
ChannelStatus channelStatusFromJson(const nlohmann::json& status);

// Whether `next` differs from `previous` in anything but what moves with every look: the
// times health.observedAt and buffer.observedAt, and the numbers' last digits (within 0.01).
// Numbers and times are compared as they are written (4 decimals, whole seconds).
bool worthWriting(const ChannelStatus& previous, const ChannelStatus& next);

// The health state kept in the status (status.health, and the reliability in status.terms),
// for stability::observe; without a per-pod restart baseline (restartsKnown false).
stability::ChannelHealth healthOf(const ChannelStatus& status);

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

}  // namespace pi0::op
