#include "workload_scaler.h"

#include "common/timestamp.h"
#include "kube/json.h"
#include "workload_state.h"

namespace pi0::op {
namespace {

using kube::ApiResult;
using kube::Json;

int32_t replicasOf(const Json& workload) {
  return static_cast<int32_t>(kube::field<int64_t>(workload, "/spec/replicas"_json_pointer, 1));
}

}  // namespace

const kube::ResourceType& resourceOf(stability::WorkloadKind kind) {
  return kind == stability::WorkloadKind::kStatefulSet ? kube::resources::kStatefulSets
                                                       : kube::resources::kDeployments;
}

ApiResult<std::optional<Json>> WorkloadScaler::autoscalerFor(const std::string& ns,
                                                             const stability::Target& target) {
  auto list = client_.list(kube::resources::kHorizontalPodAutoscalers, ns, {});
  if (!list) return std::unexpected(list.error());
  for (auto& hpa : list->items) {
    if (kube::stringField(hpa, "/spec/scaleTargetRef/kind"_json_pointer) ==
            stability::workloadKindName(target.kind) &&
        kube::stringField(hpa, "/spec/scaleTargetRef/name"_json_pointer) == target.name) {
      return std::optional<Json>(std::move(hpa));
    }
  }
  return std::optional<Json>();
}

ApiResult<std::vector<TargetOutcome>> WorkloadScaler::scaleDown(
    const stability::ChannelSpec& channel, int32_t replicas) {
  std::vector<TargetOutcome> outcomes;
  const std::string& ns = channel.ref.ns;
  const std::string key = channel.ref.key();
  const std::string now = rfc3339Millis(std::chrono::system_clock::now());
  for (const auto& target : channel.targets) {
    TargetOutcome outcome;
    outcome.target = target;
    auto hpa = autoscalerFor(ns, target);
    if (!hpa) return std::unexpected(hpa.error());
    if (*hpa) {
      outcome.autoscaler = kube::stringField(**hpa, "/metadata/name"_json_pointer);
      bool wrote = false;
      auto limited = client_.modify(kube::resources::kHorizontalPodAutoscalers, ns,
                                    outcome.autoscaler, [&](Json& object) {
                                      wrote = limitAutoscaler(object, replicas, key);
                                      if (wrote) markAction(object, now);
                                      return wrote;
                                    });
      if (!limited) return std::unexpected(limited.error());
      outcome.changed |= wrote;
      outcome.autoscalerChanged = wrote;
    }
    bool wrote = false;
    auto scaled = client_.modify(resourceOf(target.kind), ns, target.name, [&](Json& object) {
      outcome.replicasBefore = replicasOf(object);
      wrote = op::scaleDown(object, replicas, key);
      if (wrote) markAction(object, now);
      return wrote;
    });
    if (!scaled) return std::unexpected(scaled.error());
    outcome.changed |= wrote;
    outcome.replicasAfter = replicasOf(*scaled);
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

ApiResult<std::vector<TargetOutcome>> WorkloadScaler::raise(const stability::ChannelSpec& channel,
                                                            int32_t replicas) {
  std::vector<TargetOutcome> outcomes;
  const std::string now = rfc3339Millis(std::chrono::system_clock::now());
  for (const auto& target : channel.targets) {
    TargetOutcome outcome;
    outcome.target = target;
    bool wrote = false;
    auto raised =
        client_.modify(resourceOf(target.kind), channel.ref.ns, target.name, [&](Json& object) {
          outcome.replicasBefore = replicasOf(object);
          wrote = raiseReplicas(object, replicas);
          if (wrote) markAction(object, now);
          return wrote;
        });
    if (!raised) return std::unexpected(raised.error());
    outcome.changed = wrote;
    outcome.replicasAfter = replicasOf(*raised);
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

ApiResult<std::vector<TargetOutcome>> WorkloadScaler::restore(
    const stability::ChannelSpec& channel) {
  std::vector<TargetOutcome> outcomes;
  const std::string& ns = channel.ref.ns;
  for (const auto& target : channel.targets) {
    TargetOutcome outcome;
    outcome.target = target;
    // The workload first: an autoscaler restored first could scale it before its own count is
    // back.
    bool wrote = false;
    auto restored = client_.modify(resourceOf(target.kind), ns, target.name, [&](Json& object) {
      outcome.replicasBefore = replicasOf(object);
      return wrote = restoreReplicas(object);
    });
    if (!restored) return std::unexpected(restored.error());
    outcome.changed |= wrote;
    outcome.replicasAfter = replicasOf(*restored);
    auto hpa = autoscalerFor(ns, target);
    if (!hpa) return std::unexpected(hpa.error());
    if (*hpa) {
      outcome.autoscaler = kube::stringField(**hpa, "/metadata/name"_json_pointer);
      bool hpaWrote = false;
      auto back =
          client_.modify(kube::resources::kHorizontalPodAutoscalers, ns, outcome.autoscaler,
                         [&](Json& object) { return hpaWrote = restoreAutoscaler(object); });
      if (!back) return std::unexpected(back.error());
      outcome.changed |= hpaWrote;
      outcome.autoscalerChanged = hpaWrote;
    }
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

ApiResult<Readiness> WorkloadScaler::readiness(const stability::ChannelSpec& channel) {
  Readiness total;
  for (const auto& target : channel.targets) {
    auto object = client_.get(resourceOf(target.kind), channel.ref.ns, target.name);
    if (!object) return std::unexpected(object.error());
    total.desired += replicasOf(*object);
    total.ready += static_cast<int32_t>(
        kube::field<int64_t>(*object, "/status/readyReplicas"_json_pointer, 0));
  }
  return total;
}

}  // namespace pi0::op
