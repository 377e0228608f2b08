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

// A Deployment's or StatefulSet's spec.replicas; absent means 1, as the apiserver defaults it.
int32_t replicasOf(const nlohmann::json& workload);

// The replica count recorded before the first change, if the operator changed this workload.
std::optional<int32_t> originalReplicas(const nlohmann::json& workload);

// Stamps kLastActionTime (call it with a change scaleDown or limitAutoscaler made).
void markAction(nlohmann::json& object, const std::string& rfc3339Time);
// The stamp, if the object carries a valid one.
std::optional<std::chrono::system_clock::time_point> lastActionTime(const nlohmann::json& object);

// Deployment or StatefulSet: records the current count as the original, changing nothing else,
// unless a count is recorded already. The first of the writes that degrade a workload an
// autoscaler drives (workload_scaler.h): once the record is stored, no write by the autoscaler
// can change it. False when a record exists.
bool recordOriginal(nlohmann::json& workload, const std::string& channelKey);

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
// Part of the way back, as raiseReplicas: maxReplicas up to `replicas` (at least 1, never above
// the recorded maximum), keeping the record. False when there is no record or nothing to raise.
bool raiseAutoscaler(nlohmann::json& hpa, int32_t replicas);
// Back to the recorded bounds, removing the record, and stamped with `rfc3339Time`: the stamp
// says when the bounds came back, so that the workload's count waits for the HPA controller to
// see them (autoscalerSettled). False when there is nothing to restore.
bool restoreAutoscaler(nlohmann::json& hpa, const std::string& rfc3339Time);

// How long the workload's count waits after a write of its autoscaler's bounds. The HPA
// controller reads an autoscaler from its informer's cache and the workload's count from the
// API: a count raised right after the bounds can meet the old bounds in that cache and be
// scaled back to them (seen: a restored 3 scaled to the shutdown's cap 1, then to the minimum 2,
// after the restore had removed the record). The cache trails the API by milliseconds; the
// wait covers that with a wide margin and clock skew between operator replicas.
inline constexpr std::chrono::seconds kAutoscalerSettle{2};
// True when the autoscaler carries no stamp, or a stamp kAutoscalerSettle old or older.
bool autoscalerSettled(const nlohmann::json& hpa, std::chrono::system_clock::time_point now);
// Removes the stamp from an autoscaler that carries no record (a restore's last mark on it).
// False when there is nothing to remove.
bool clearAutoscalerStamp(nlohmann::json& hpa);

// True while the workload or its autoscaler (`hpa`, null when it has none) carries a record
// that restoreReplicas or restoreAutoscaler would restore: a restore of the workload is pending,
// whatever its count. Malformed records are not restorable and do not count.
bool restorePending(const nlohmann::json& workload, const nlohmann::json* hpa);

}  // namespace pi0::op
