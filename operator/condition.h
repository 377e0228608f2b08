// metav1.Condition as a typed value, shared by the statuses of Channels (channel_status.h) and
// ShutdownMatrices (matrix_status.h): set by the pure passes, written as JSON at the edge.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pi0::op {

using WallTime = std::chrono::system_clock::time_point;

// metav1.Condition.
struct Condition {
  std::string type;
  bool status = false;
  std::string reason;
  std::string message;
  int64_t observedGeneration = 0;
  std::optional<WallTime> lastTransitionTime;
  friend bool operator==(const Condition&, const Condition&) = default;
};

// Sets the condition of `type` (appended when there is none), keeping its lastTransitionTime
// unless the status flips.
void setCondition(std::vector<Condition>& conditions, std::string_view type, bool status,
                  std::string reason, std::string message, int64_t observedGeneration,
                  WallTime now);
// The condition of `type`, or null; the pointer lives as long as `conditions` is not changed.
const Condition* findCondition(const std::vector<Condition>& conditions, std::string_view type);

// The JSON array as the API holds it: status "True"/"False", lastTransitionTime in whole
// seconds (metav1.Time).
nlohmann::json toJson(const std::vector<Condition>& conditions);
// Never throws: entries without a type are skipped, any status but "True" reads as false.
std::vector<Condition> conditionsFromJson(const nlohmann::json& array);

}  // namespace pi0::op
