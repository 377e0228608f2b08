// One pass of the Channel reconciler as a pure function: from the Channel as the caches show
// it, its previous status, its pods, the throughput query's answer and what the acting
// ShutdownMatrix's status says of it, to the status it should have and the Events to record.
// No I/O, no clock of its own: reconciler.cc gathers the world, records the Events and
// metrics, and writes the status when worthWriting (channel_status.h) says so.
//
// A pass:
//  - A spec that does not parse: only the condition Valid (False, InvalidSpec) and
//    observedGeneration change; everything measured before is kept.
//  - Else the channel is measured: its state from its workloads' undo records (ChannelView),
//    its replicas, its health (stability::observe, from the health kept in the status, and
//    without counting the pods Pi0 starts or stops as outages while Pi0 changes the channel:
//    a restore under way in the matrix's status, or a step stamped on its workloads within
//    spec.restoreTimeoutSeconds, unless the restore stalled), its terms and priority (CPO), the
//    level and the buffer the acting matrix's status gives it, and the conditions TargetsFound,
//    Ready, ThroughputMeasured (when spec.throughput is set or the query failed) and Valid.
//  - The Warning Events InvalidSpec and TargetMissing, each only when its condition turns
//    False (the previous status did not say so already).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "admission/buffer_count.h"
#include "channel_status.h"
#include "channel_view.h"
#include "kube/resource_list.h"
#include "matrix_reconcile.h"
#include "matrix_status.h"
#include "stability/health.h"
#include "stability/spec.h"

namespace pi0::op {

struct ChannelWorld {
  const ChannelView* view = nullptr;  // the Channel (never null; its object neither)
  // Why the spec is not valid: the parse error when view->spec is absent, else
  // stability::validateChannel's problems. Empty when it is valid.
  std::vector<std::string> problems;
  ChannelStatus previous;  // as stored
  // The acting matrix's status (admission::actingMatrix), null when no matrix acts: its level,
  // its restores and its status.channels entry for this channel (the buffer BAO gave it).
  const MatrixStatus* matrix = nullptr;
  stability::Weights matrixWeights;        // the acting matrix's, for a channel without its own
  std::vector<stability::PodSample> pods;  // the channel's pods that count (podSample)
  kube::ResourceList requested;            // what those pods request, summed
  std::optional<WallTime> newestPod;       // the newest of those pods' creationTimestamp
  std::optional<double> throughputValue;   // the Prometheus query's value, when it answered
  std::optional<std::string> throughputError;
  // The restart count per pod this leader saw at its last look; nullopt before its first (a
  // new leader takes the pods' counts as they are as the baseline).
  std::optional<std::map<std::string, int>> restartsByPod;
  std::chrono::milliseconds period{10000};  // the channel period
  WallTime now;
};

struct ChannelPass {
  ChannelStatus status;
  std::vector<EventOut> events;  // on the Channel (EventOut::channel is its key)
  // Set when the pass measured the channel (its spec parses): the state, for the metric, and
  // the restart baseline to keep for the next look.
  std::optional<stability::ChannelState> state;
  std::optional<std::map<std::string, int>> restartsByPod;
  bool ready = false;  // every target exists and has its replicas ready
  // The status must be written although nothing but status.buffer.observedAt moved: the last
  // count written is older than kCountedAfter past the newest pod, so pi0-webhook may still
  // hold a reservation for a pod that `used` already counts (held twice until the timeout).
  bool recount = false;
  // Not ready: soon (2 s, to time the recovery); ready: the channel period; a spec that does not
  // parse: nullopt (the next change of the Channel brings it back).
  std::optional<std::chrono::nanoseconds> requeue;
};

ChannelPass planChannel(const ChannelWorld& world);

// How long after a pod's creationTimestamp a count of the channel's pods ends pi0-webhook's
// reservation for it: the webhook's grace, plus 1 s for the timestamp's whole seconds and 1 s
// for the time from creation to the admission's end.
inline constexpr std::chrono::seconds kCountedAfter =
    admission::kReservationGrace + std::chrono::seconds(2);

// status.buffer, or none. With an allocation (the acting matrix's status.channels[] buffer, at
// a level above the first, when it names a resource): allocated; baseline, what the channel's
// pods requested when the level rose (kept from `previous` while the level stays up, else
// `requested` now); requested; used, what they request beyond the baseline (never below 0);
// observedAt, `now` (written with milliseconds: pi0-webhook ends its reservations for pods
// admitted before it).
std::optional<ChannelBuffer> bufferStatus(const std::optional<stability::Resources>& allocation,
                                          const kube::ResourceList& requested,
                                          const std::optional<ChannelBuffer>& previous,
                                          WallTime now);

}  // namespace pi0::op
