#include "workload_state.h"

#include <algorithm>
#include <charconv>

#include "common/timestamp.h"
#include "kube/json.h"

namespace pi0::op {
namespace {

using Json = nlohmann::json;
using kube::field;

std::optional<int32_t> annotationInt(const Json& object, const char* key) {
  const auto annotations =
      field<Json>(object, "/metadata/annotations"_json_pointer, Json::object());
  auto it = annotations.find(key);
  if (it == annotations.end() || !it->is_string()) return std::nullopt;
  const auto& text = it->get_ref<const std::string&>();
  int32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

void annotate(Json& object, const char* key, const std::string& value) {
  object["metadata"]["annotations"][key] = value;
}

void unannotate(Json& object, const char* key) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return;
  auto annotations = meta->find("annotations");
  if (annotations == meta->end() || !annotations->is_object()) return;
  annotations->erase(key);
}

}  // namespace

int32_t replicasOf(const Json& workload) {
  return static_cast<int32_t>(field<int64_t>(workload, "/spec/replicas"_json_pointer, 1));
}

std::optional<int32_t> originalReplicas(const Json& workload) {
  return annotationInt(workload, kOriginalReplicas);
}

bool recordOriginal(Json& workload, const std::string& channelKey) {
  if (originalReplicas(workload)) return false;
  annotate(workload, kOriginalReplicas, std::to_string(replicasOf(workload)));
  annotate(workload, kManagedBy, channelKey);
  return true;
}

bool scaleDown(Json& workload, int32_t replicas, const std::string& channelKey) {
  const int32_t current = replicasOf(workload);
  bool changed = recordOriginal(workload, channelKey);
  if (current > replicas) {
    workload["spec"]["replicas"] = replicas;
    changed = true;
  }
  return changed;
}

void markAction(Json& object, const std::string& rfc3339Time) {
  annotate(object, kLastActionTime, rfc3339Time);
}

std::optional<std::chrono::system_clock::time_point> lastActionTime(const Json& object) {
  const auto annotations =
      field<Json>(object, "/metadata/annotations"_json_pointer, Json::object());
  auto it = annotations.find(kLastActionTime);
  if (it == annotations.end() || !it->is_string()) return std::nullopt;
  return parseRfc3339(it->get<std::string>());
}

bool raiseReplicas(Json& workload, int32_t replicas) {
  const auto original = originalReplicas(workload);
  if (!original) return false;
  const int32_t want = std::min(*original, replicas);
  if (replicasOf(workload) >= want) return false;
  workload["spec"]["replicas"] = want;
  return true;
}

bool restoreReplicas(Json& workload) {
  const auto original = originalReplicas(workload);
  if (!original) return false;
  workload["spec"]["replicas"] = *original;
  unannotate(workload, kOriginalReplicas);
  unannotate(workload, kManagedBy);
  unannotate(workload, kLastActionTime);
  return true;
}

bool limitAutoscaler(Json& hpa, int32_t replicas, const std::string& channelKey) {
  bool changed = false;
  const auto min = static_cast<int32_t>(field<int64_t>(hpa, "/spec/minReplicas"_json_pointer, 1));
  const auto max = static_cast<int32_t>(field<int64_t>(hpa, "/spec/maxReplicas"_json_pointer, 1));
  if (!annotationInt(hpa, kOriginalMaxReplicas)) {
    annotate(hpa, kOriginalMinReplicas, std::to_string(min));
    annotate(hpa, kOriginalMaxReplicas, std::to_string(max));
    annotate(hpa, kManagedBy, channelKey);
    changed = true;
  }
  const int32_t cap = std::max(1, replicas);
  if (max > cap) {
    hpa["spec"]["maxReplicas"] = cap;
    changed = true;
  }
  if (min > cap) {
    hpa["spec"]["minReplicas"] = cap;
    changed = true;
  }
  return changed;
}

bool raiseAutoscaler(Json& hpa, int32_t replicas) {
  const auto original = annotationInt(hpa, kOriginalMaxReplicas);
  if (!original) return false;
  const int32_t want = std::max(1, std::min(*original, replicas));
  if (field<int64_t>(hpa, "/spec/maxReplicas"_json_pointer, 1) >= want) return false;
  hpa["spec"]["maxReplicas"] = want;
  return true;
}

bool restorePending(const Json& workload, const Json* hpa) {
  return originalReplicas(workload).has_value() ||
         (hpa != nullptr && annotationInt(*hpa, kOriginalMaxReplicas).has_value());
}

bool restoreAutoscaler(Json& hpa, const std::string& rfc3339Time) {
  const auto min = annotationInt(hpa, kOriginalMinReplicas);
  const auto max = annotationInt(hpa, kOriginalMaxReplicas);
  if (!max) return false;
  hpa["spec"]["maxReplicas"] = *max;
  if (min) hpa["spec"]["minReplicas"] = *min;
  unannotate(hpa, kOriginalMinReplicas);
  unannotate(hpa, kOriginalMaxReplicas);
  unannotate(hpa, kManagedBy);
  markAction(hpa, rfc3339Time);
  return true;
}

bool autoscalerSettled(const Json& hpa, std::chrono::system_clock::time_point now) {
  const auto at = lastActionTime(hpa);
  return !at || now - *at >= kAutoscalerSettle;
}

bool clearAutoscalerStamp(Json& hpa) {
  if (annotationInt(hpa, kOriginalMaxReplicas) || !lastActionTime(hpa)) return false;
  unannotate(hpa, kLastActionTime);
  return true;
}

}  // namespace pi0::op
