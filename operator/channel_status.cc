#include "channel_status.h"

#include <cmath>

#include "common/timestamp.h"
#include "kube/json.h"
#include "kube/quantity.h"
#include "matrix_status.h"
#include "operator/status_numbers.h"
#include "workload_state.h"

namespace pi0::op {
namespace {

using kube::field;
using kube::stringField;
using nlohmann::json;
using stability::ChannelState;

json quantities(const Quantities& q) {
  return {{"cpu", kube::formatCpuMilli(q.cpuMilli)}, {"memory", kube::formatBytes(q.memoryBytes)}};
}

// Both quantities of {"cpu", "memory"}, or nullopt when either is absent or does not parse.
std::optional<Quantities> quantitiesOf(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object() || !it->contains("cpu") || !it->contains("memory"))
    return std::nullopt;
  const auto cpu = kube::parseCpuMilli(stringField(*it, "/cpu"_json_pointer));
  const auto memory = kube::parseBytes(stringField(*it, "/memory"_json_pointer));
  if (!cpu || !memory) return std::nullopt;
  return Quantities{*cpu, *memory};
}

std::optional<WallTime> timeOf(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return parseRfc3339(it->get<std::string>());
}

std::optional<double> numberOf(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::optional<ChannelBuffer> bufferOf(const json& b) {
  if (!b.is_object()) return std::nullopt;
  ChannelBuffer out;
  const json allocated = field<json>(b, "/allocated"_json_pointer, json::object());
  if (allocated.contains("cpu")) {
    auto cpu = kube::parseCpuMilli(stringField(allocated, "/cpu"_json_pointer));
    if (!cpu) return std::nullopt;
    out.allocated.cpuMilli = *cpu;
  }
  if (allocated.contains("memory")) {
    auto memory = kube::parseBytes(stringField(allocated, "/memory"_json_pointer));
    if (!memory) return std::nullopt;
    out.allocated.memoryBytes = *memory;
  }
  auto baseline = quantitiesOf(b, "baseline");
  auto requested = quantitiesOf(b, "requested");
  auto used = quantitiesOf(b, "used");
  auto observedAt = timeOf(b, "observedAt");
  if (!baseline || !requested || !used || !observedAt) return std::nullopt;
  out.baseline = *baseline;
  out.requested = *requested;
  out.used = *used;
  out.observedAt = *observedAt;
  return out;
}

// Whether `j` has every number a measuring pass writes besides the state (planChannel).
bool measuredFields(const json& j) {
  for (const auto& p : {"/priority"_json_pointer, "/terms/throughput"_json_pointer,
                        "/terms/reliability"_json_pointer, "/terms/recovery"_json_pointer,
                        "/failureProbability"_json_pointer, "/replicas/desired"_json_pointer,
                        "/replicas/ready"_json_pointer, "/health/outages"_json_pointer}) {
    if (!j.contains(p) || !j.at(p).is_number()) return false;
  }
  return true;
}

std::optional<WallTime> wholeSeconds(const std::optional<WallTime>& t) {
  if (!t) return t;
  return std::chrono::floor<std::chrono::seconds>(*t);
}

}  // namespace

json toJson(const ChannelStatus& s) {
  json j = json::object();
  j["observedGeneration"] = s.observedGeneration;
  if (s.measured) {
    j["state"] = stability::channelStateName(s.state);
    j["priority"] = round4(s.priority);
    j["terms"] = {{"throughput", round4(s.terms.throughput)},
                  {"reliability", round4(s.terms.reliability)},
                  {"recovery", round4(s.terms.recovery)}};
    j["failureProbability"] = round4(s.failureProbability);
    j["replicas"] = {{"desired", s.replicas.desired}, {"ready", s.replicas.ready}};
    if (s.level) j["level"] = *s.level;
    json health = {{"outages", s.health.outages}};
    if (s.health.observedAt) health["observedAt"] = rfc3339(*s.health.observedAt, 0);
    if (s.health.meanTimeToRecoverSeconds)
      health["meanTimeToRecoverSeconds"] = round4(*s.health.meanTimeToRecoverSeconds);
    if (s.health.notReadySince) health["notReadySince"] = rfc3339(*s.health.notReadySince, 0);
    j["health"] = std::move(health);
    if (const auto& b = s.buffer) {
      json allocated = json::object();
      if (b->allocated.cpuMilli) allocated["cpu"] = kube::formatCpuMilli(*b->allocated.cpuMilli);
      if (b->allocated.memoryBytes)
        allocated["memory"] = kube::formatBytes(*b->allocated.memoryBytes);
      j["buffer"] = {{"allocated", std::move(allocated)},
                     {"baseline", quantities(b->baseline)},
                     {"requested", quantities(b->requested)},
                     {"used", quantities(b->used)},
                     {"observedAt", rfc3339Millis(b->observedAt)}};
    }
  }
  j["conditions"] = toJson(s.conditions);
  return j;
}

ChannelStatus channelStatusFromJson(const json& j) {
  ChannelStatus s;
  if (!j.is_object()) return s;
  s.observedGeneration = field<int64_t>(j, "/observedGeneration"_json_pointer, 0);
  const auto state = parseChannelState(stringField(j, "/state"_json_pointer));
  s.measured = state && measuredFields(j);
  s.state = state.value_or(ChannelState::kActive);
  s.priority = field<double>(j, "/priority"_json_pointer, 0.0);
  s.terms.throughput = field<double>(j, "/terms/throughput"_json_pointer, 1.0);
  s.terms.reliability = field<double>(j, "/terms/reliability"_json_pointer, 1.0);
  s.terms.recovery = field<double>(j, "/terms/recovery"_json_pointer, 1.0);
  s.failureProbability = field<double>(j, "/failureProbability"_json_pointer, 0.0);
  s.replicas.desired = field<int64_t>(j, "/replicas/desired"_json_pointer, 0);
  s.replicas.ready = field<int64_t>(j, "/replicas/ready"_json_pointer, 0);
  if (auto it = j.find("level"); it != j.end() && it->is_string()) s.level = it->get<std::string>();
  if (auto it = j.find("health"); it != j.end() && it->is_object()) {
    s.health.observedAt = timeOf(*it, "observedAt");
    s.health.outages = static_cast<int>(field<int64_t>(*it, "/outages"_json_pointer, 0));
    s.health.meanTimeToRecoverSeconds = numberOf(*it, "meanTimeToRecoverSeconds");
    s.health.notReadySince = timeOf(*it, "notReadySince");
  }
  if (auto it = j.find("buffer"); it != j.end()) s.buffer = bufferOf(*it);
  s.conditions = conditionsFromJson(field<json>(j, "/conditions"_json_pointer, json::array()));
  return s;
}

bool worthWriting(const ChannelStatus& previous, const ChannelStatus& next) {
  // Everything compared exactly but the numbers (near) and the times that move with every look
  // (not at all); the other times as they are written.
  auto stripped = [](ChannelStatus s) {
    s.priority = s.failureProbability = 0;
    s.terms = {};
    s.health.observedAt.reset();
    if (s.health.meanTimeToRecoverSeconds) s.health.meanTimeToRecoverSeconds = 0;  // near, below
    s.health.notReadySince = wholeSeconds(s.health.notReadySince);
    if (s.buffer) s.buffer->observedAt = {};
    for (auto& c : s.conditions)
      c.lastTransitionTime = wholeSeconds(c.lastTransitionTime);
    return s;
  };
  if (!(stripped(previous) == stripped(next))) return true;
  if (!previous.measured) return false;
  return !near(previous.priority, next.priority) ||
         !near(previous.failureProbability, next.failureProbability) ||
         !near(previous.terms.throughput, next.terms.throughput) ||
         !near(previous.terms.reliability, next.terms.reliability) ||
         !near(previous.terms.recovery, next.terms.recovery) ||
         !near(previous.health.meanTimeToRecoverSeconds, next.health.meanTimeToRecoverSeconds);
}

stability::ChannelHealth healthOf(const ChannelStatus& status) {
  stability::ChannelHealth h;
  h.reliability = status.terms.reliability;
  h.meanTimeToRecoverSeconds = status.health.meanTimeToRecoverSeconds;
  h.outages = status.health.outages;
  h.notReadySince = status.health.notReadySince;
  h.lastObserved = status.health.observedAt;
  return h;
}

ChannelState stateFromWorkloads(const std::vector<json>& workloads,
                                const std::vector<json>& autoscalers) {
  ChannelState state = ChannelState::kActive;
  for (std::size_t i = 0; i < workloads.size(); ++i) {
    const auto& w = workloads[i];
    const json* hpa =
        i < autoscalers.size() && !autoscalers[i].is_null() ? &autoscalers[i] : nullptr;
    const auto original = originalReplicas(w);
    const int64_t now = replicasOf(w);
    if (original && now == 0 && *original > 0) return ChannelState::kInactive;
    if (original && now < *original) state = ChannelState::kDegraded;
    // An autoscaler Pi0 still holds (a restore stopped between the workload and its HPA, or a
    // degrade between the cap and the scale): the channel is not back.
    if (hpa && restorePending(json::object(), hpa)) state = ChannelState::kDegraded;
  }
  return state;
}

bool leftoverRecord(const std::vector<json>& workloads, const std::vector<json>& autoscalers) {
  for (std::size_t i = 0; i < workloads.size(); ++i) {
    const json* hpa =
        i < autoscalers.size() && !autoscalers[i].is_null() ? &autoscalers[i] : nullptr;
    // An autoscaler with only the stamp of a restore of its bounds left on it counts too (its
    // workload had no record to restore after it): a restore removes the stamp once settled.
    if (restorePending(workloads[i], hpa) || (hpa && lastActionTime(*hpa))) return true;
  }
  return false;
}

}  // namespace pi0::op
