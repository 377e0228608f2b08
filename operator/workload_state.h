// What the operator writes on a workload it changes, so that nothing is lost: before the first
// change, the original replica count (or, for a HorizontalPodAutoscaler, its original bounds) is
// stored in an annotation on the object itself, in the same write that changes it. Every
// function here is a pure, idempotent transformation of the object as read from the API; the
// caller writes the result back with the resourceVersion it read (kube::Client::modify), so a
// crash between two steps leaves either the old object or the new one, never half of each, and
// a workload the operator touched can always be restored from the cluster alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace pi0::op {

inline constexpr char kOriginalReplicas[] = "stability.pi0.io/original-replicas";
inline constexpr char kOriginalMinReplicas[] = "stability.pi0.io/original-min-replicas";
inline constexpr char kOriginalMaxReplicas[] = "stability.pi0.io/original-max-replicas";
inline constexpr char kManagedBy[] = "stability.pi0.io/channel";  // the channel that changed it
// When the operator last changed the object (RFC 3339): after a crash, the next leader waits a
// full step interval from here before the next step, even if the matrix's status missed it.
inline constexpr char kLastActionTime[] = "stability.pi0.io/last-action-time";

// The replica count recorded before the first change, if the operator changed this workload.
std::optional<int32_t> originalReplicas(const nlohmann::json& workload);

// Stamps kLastActionTime (call it with a change scaleDown or limitAutoscaler made).
void markAction(nlohmann::json& object, const std::string& rfc3339Time);
// The stamp, if the object carries a valid one.
std::optional<std::chrono::system_clock::time_point> lastActionTime(const nlohmann::json& object);

// Deployment or StatefulSet: scales to `replicas`, recording the original count first if it is
// not recorded yet. Never scales up: a workload already at or below `replicas` keeps its count
// (but is still marked, so a restore brings back the original). Returns false when the object
// needs no change.
bool scaleDown(nlohmann::json& workload, int32_t replicas, const std::string& channelKey);

// Part of the way back (from a shutdown to a degrade): up to `replicas`, never above the
// recorded count, keeping the record. False when there is no record or nothing to raise.
bool raiseReplicas(nlohmann::json& workload, int32_t replicas);

// Back to the recorded count, removing the record. False when there is nothing to restore.
bool restoreReplicas(nlohmann::json& workload);

// HorizontalPodAutoscaler (autoscaling/v1): caps maxReplicas at `replicas` (minReplicas at most
// that too, and at least 1, which autoscaling/v1 requires), recording the original bounds first.
bool limitAutoscaler(nlohmann::json& hpa, int32_t replicas, const std::string& channelKey);
bool restoreAutoscaler(nlohmann::json& hpa);

}  // namespace pi0::op
