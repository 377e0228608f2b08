// Degrades, shuts down and restores the workloads of a channel, so that nothing is lost (see
// workload_state.h): every write is a read-modify-write of one object through a
// kube::ObjectWriter, conditional on what it read and retried on conflict, so a stale cache
// never writes stale data. Calling any method twice, or again after a crash at any point, does
// what is left and nothing more.
//
// A target driven by a HorizontalPodAutoscaler takes several writes, ordered so that whatever
// another controller writes between them and wherever the process dies, the workload's record
// holds its count from before Pi0's first change and the next call finishes the job:
//   scaleDown: (a) record the count on the workload, alone; (b) cap the autoscaler (recording its
//              bounds); (c) scale the workload, keeping the record. After (b) the autoscaler may
//              scale the workload to the cap at once; the record is stored already.
//   raise:     the autoscaler's cap first, then the workload's count (a count above the cap
//              would be scaled back down by the autoscaler), on a later call once the new cap
//              is kAutoscalerSettle old (workload_state.h).
//   restore:   the autoscaler's bounds first (stamped); once they are kAutoscalerSettle old,
//              their stamp removed, then the workload's count, which removes its record last
//              (why: restore() in workload_scaler.cc).
// So a raise or restore of a target with an autoscaler takes two calls at least
// kAutoscalerSettle apart; the first reports the target waiting.
// A workload without an autoscaler takes one write: its record travels with the change.
//
// Thread-safety: as thread-safe as the writer and the store it reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kube/client.h"
#include "kube/object_writer.h"
#include "kube/store.h"
#include "stability/spec.h"

namespace pi0::op {

struct TargetOutcome {
  stability::Target target;
  bool changed = false;            // this call wrote something
  int32_t replicasBefore = 0;      // as the call first read the workload
  int32_t replicasAfter = 0;       // as its last write (or read) left it
  std::string autoscaler;          // the HPA that drives the target, if any
  bool autoscalerChanged = false;  // this call wrote the HPA
  // The count is still to be raised or restored, once the HPA controller has seen the new
  // bounds (kAutoscalerSettle after their write): a later call does it.
  bool waiting = false;
};

class WorkloadScaler {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // `autoscalers` is a cache of HorizontalPodAutoscalers (autoscaling/v1) of every namespace
  // the channels live in; it decides which autoscaler drives a target, and the autoscaler
  // itself is then read and written through `writer`. Both must outlive the scaler. `clock`
  // gives the time of the stamps the scaler writes and reads (workload_state.h).
  WorkloadScaler(
      kube::ObjectWriter& writer, const kube::Store& autoscalers,
      Clock clock = [] { return std::chrono::system_clock::now(); })
      : writer_(writer), autoscalers_(autoscalers), clock_(std::move(clock)) {}

  // Scales every target of the channel down to `replicas` (degrade: degradedReplicas; shutdown:
  // 0). A target driven by an autoscaler gets its bounds capped too (at least 1, as
  // autoscaling/v1 requires), so the autoscaler keeps it down. Stops at the first failure: the
  // targets done so far stay done and are restorable. An autoscaler the cache shows but the
  // API no longer has is no autoscaler.
  kube::ApiResult<std::vector<TargetOutcome>> scaleDown(const stability::ChannelSpec& channel,
                                                        int32_t replicas);

  // From a shutdown to a degrade: raises every recorded target to `replicas` (at most its
  // original count) and its autoscaler's cap with it, keeping the records. A target whose
  // autoscaler's cap is fresh is left waiting, as by restore().
  kube::ApiResult<std::vector<TargetOutcome>> raise(const stability::ChannelSpec& channel,
                                                    int32_t replicas);

  // Puts every target and its autoscaler back to what was recorded before the first change,
  // and removes the records. Finishes a restore cut short at any point. A target whose
  // autoscaler's bounds are fresh is left waiting (TargetOutcome::waiting) for a later call.
  kube::ApiResult<std::vector<TargetOutcome>> restore(const stability::ChannelSpec& channel);

 private:
  kube::ObjectWriter& writer_;
  const kube::Store& autoscalers_;
  Clock clock_;
};

const kube::ResourceType& resourceOf(stability::WorkloadKind kind);

// The cached autoscaler in `ns` whose scaleTargetRef names the target (kind and name), or null.
// Of several, the first by name.
kube::ObjectPtr findAutoscaler(const kube::Store& autoscalers, const std::string& ns,
                               const stability::Target& target);

// TEST HOOK, not a feature: the end-to-end tests kill the process at exact points of a step.
// When the environment variable PI0_CRASH_POINT (read once) equals `name`, the process ends at
// once with _exit(137), as if killed; otherwise this does nothing. The scaler passes each point
// right after the write it names, and only when that write happened:
namespace crash_point {
inline constexpr char kScaleDownRecorded[] = "scale-down:recorded";     // (a): the record alone
inline constexpr char kScaleDownHpaCapped[] = "scale-down:hpa-capped";  // (b): before (c)
inline constexpr char kScaleDownScaled[] = "scale-down:scaled";  // a target done, before the next
inline constexpr char kRaiseHpaRaised[] = "raise:hpa-raised";    // before the workload's count
inline constexpr char kRaiseRaised[] = "raise:raised";
inline constexpr char kRestoreHpaRestored[] = "restore:hpa-restored";  // before the workload's
inline constexpr char kRestoreRestored[] = "restore:restored";
}  // namespace crash_point
void crashPoint(std::string_view name);

}  // namespace pi0::op
