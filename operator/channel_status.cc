#include "channel_status.h"

#include <algorithm>
#include <cmath>

#include "common/timestamp.h"
#include "kube/json.h"
#include "workload_state.h"

namespace pi0::op {
namespace {

using nlohmann::json;
using stability::ChannelState;

int64_t replicasOf(const json& w) {
  return kube::field<int64_t>(w, "/spec/replicas"_json_pointer, 1);
}

// Rounded so that a status does not change with the last bits of a double.
double round4(double x) {
  return std::round(x * 1e4) / 1e4;
}

}  // namespace

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

stability::ChannelHealth healthFromStatus(const json& status) {
  stability::ChannelHealth h;
  h.reliability = kube::field<double>(status, "/terms/reliability"_json_pointer, 1.0);
  if (status.contains("health") && status["health"].is_object()) {
    const auto& health = status["health"];
    if (auto m = health.find("meanTimeToRecoverSeconds"); m != health.end() && m->is_number()) {
      h.meanTimeToRecoverSeconds = m->get<double>();
    }
    h.outages = static_cast<int>(kube::field<int64_t>(health, "/outages"_json_pointer, 0));
    if (auto t = parseRfc3339(kube::stringField(health, "/notReadySince"_json_pointer)))
      h.notReadySince = t;
    if (auto t = parseRfc3339(kube::stringField(health, "/observedAt"_json_pointer)))
      h.lastObserved = t;
  }
  return h;
}

void setCondition(json& conditions, const std::string& type, bool status, const std::string& reason,
                  const std::string& message, int64_t observedGeneration, const std::string& now) {
  if (!conditions.is_array()) conditions = json::array();
  const std::string value = status ? "True" : "False";
  for (auto& c : conditions) {
    if (c.is_object() && c.value("type", "") == type) {
      if (c.value("status", "") != value) c["lastTransitionTime"] = now;
      c["status"] = value;
      c["reason"] = reason;
      c["message"] = message;
      c["observedGeneration"] = observedGeneration;
      return;
    }
  }
  conditions.push_back({{"type", type},
                        {"status", value},
                        {"reason", reason},
                        {"message", message},
                        {"observedGeneration", observedGeneration},
                        {"lastTransitionTime", now}});
}

ChannelOutcome channelStatus(const ChannelInputs& in) {
  const auto& spec = *in.spec;
  ChannelOutcome out;
  out.state = stateFromWorkloads(in.workloads, in.autoscalers);

  int64_t desired = 0;
  int64_t ready = 0;
  for (const auto& w : in.workloads) {
    desired += replicasOf(w);
    ready += kube::field<int64_t>(w, "/status/readyReplicas"_json_pointer, 0);
  }
  out.ready = in.missingTargets.empty() && ready >= desired;

  stability::ObserveOptions observe;
  observe.pi0Transition = in.pi0Transition;
  auto observation =
      stability::observe(in.health, in.pods, static_cast<int>(desired), in.now, observe);
  if (out.state == ChannelState::kInactive) {
    // Shut down by Pi0: nothing runs, so nothing is learned; its reliability and recovery keep
    // the values they had when it went down (a channel held at 0 must not look more reliable
    // with every look and be restored for it).
    observation.health.reliability = in.health.reliability;
    observation.terms.reliability = in.health.reliability;
  }
  out.health = observation.health;
  stability::Terms terms = observation.terms;
  // Throughput: the query over its maximum, else ready replicas over desired. While Pi0 holds the
  // channel below its original count (Degraded, Inactive) the term keeps the value it had before
  // (the status's): what Pi0 did to a channel must not lower the priority Pi0 acts on.
  const double before = kube::field<double>(in.previousStatus, "/terms/throughput"_json_pointer,
                                            stability::throughputFromReplicas(ready, desired));
  terms.throughput = spec.throughput && in.throughputValue
                         ? stability::throughputFromQuery(*in.throughputValue, spec.throughput->max)
                     : out.state != ChannelState::kActive
                         ? before
                         : stability::throughputFromReplicas(ready, desired);
  out.cpo = stability::cpo(in.weights, terms);

  const std::string now = rfc3339(in.now, 0);
  json status = in.previousStatus.is_object() ? in.previousStatus : json::object();
  status["observedGeneration"] = spec.generation;
  status["state"] = stability::channelStateName(out.state);
  status["priority"] = round4(out.cpo);
  status["terms"] = {{"throughput", round4(terms.throughput)},
                     {"reliability", round4(terms.reliability)},
                     {"recovery", round4(terms.recovery)}};
  status["failureProbability"] = round4(stability::failureProbability(terms.reliability));
  status["replicas"] = {{"desired", desired}, {"ready", ready}};
  if (out.state == ChannelState::kActive || in.level.empty()) {
    status.erase("level");
  } else {
    status["level"] = in.level;
  }
  json health = {{"observedAt", now}, {"outages", out.health.outages}};
  if (out.health.meanTimeToRecoverSeconds)
    health["meanTimeToRecoverSeconds"] = round4(*out.health.meanTimeToRecoverSeconds);
  if (out.health.notReadySince) health["notReadySince"] = rfc3339(*out.health.notReadySince, 0);
  status["health"] = health;

  json conditions = status.value("conditions", json::array());
  if (in.missingTargets.empty()) {
    setCondition(conditions, "TargetsFound", true, "Found", "every target exists", spec.generation,
                 now);
  } else {
    std::string names;
    for (const auto& n : in.missingTargets)
      names += (names.empty() ? "" : ", ") + n;
    setCondition(conditions, "TargetsFound", false, "TargetMissing",
                 "not found in namespace " + spec.ref.ns + ": " + names, spec.generation, now);
  }
  setCondition(conditions, "Ready", out.ready, out.ready ? "ReplicasReady" : "ReplicasNotReady",
               std::to_string(ready) + " of " + std::to_string(desired) + " replicas ready",
               spec.generation, now);
  if (in.throughputError) {
    setCondition(conditions, "ThroughputMeasured", false, "QueryFailed", *in.throughputError,
                 spec.generation, now);
  } else if (spec.throughput) {
    setCondition(conditions, "ThroughputMeasured", true, "QueryAnswered",
                 "the Prometheus query answered", spec.generation, now);
  }
  status["conditions"] = conditions;
  out.status = std::move(status);
  return out;
}

json bufferStatus(const std::optional<stability::Resources>& allocation,
                  const stability::PodRequests& requested, const json& previousStatus,
                  stability::WallClock::time_point now) {
  if (!allocation || (!allocation->cpuMilli && !allocation->memoryBytes)) return json();
  auto quantities = [](int64_t cpu, int64_t memory) {
    return json{{"cpu", stability::formatCpuMilli(cpu)},
                {"memory", stability::formatBytes(memory)}};
  };
  json allocated = json::object();
  if (allocation->cpuMilli) allocated["cpu"] = stability::formatCpuMilli(*allocation->cpuMilli);
  if (allocation->memoryBytes)
    allocated["memory"] = stability::formatBytes(*allocation->memoryBytes);
  const json base =
      kube::field<json>(previousStatus, "/buffer/baseline"_json_pointer, json::object());
  const auto baseCpu = stability::parseCpuMilli(kube::stringField(base, "/cpu"_json_pointer));
  const auto baseMemory = stability::parseBytes(kube::stringField(base, "/memory"_json_pointer));
  const bool kept = base.contains("cpu") && base.contains("memory") && baseCpu && baseMemory;
  const int64_t fromCpu = kept ? *baseCpu : requested.cpuMilli;
  const int64_t fromMemory = kept ? *baseMemory : requested.memoryBytes;
  return {{"allocated", allocated},
          {"baseline", quantities(fromCpu, fromMemory)},
          {"requested", quantities(requested.cpuMilli, requested.memoryBytes)},
          {"used", quantities(std::max<int64_t>(0, requested.cpuMilli - fromCpu),
                              std::max<int64_t>(0, requested.memoryBytes - fromMemory))},
          {"observedAt", rfc3339Millis(now)}};
}

bool statusChanged(const json& previous, const json& next) {
  auto strip = [](json s) {
    if (s.is_object() && s.contains("health") && s["health"].is_object())
      s["health"].erase("observedAt");
    return s;
  };
  return strip(previous) != strip(next);
}

}  // namespace pi0::op
