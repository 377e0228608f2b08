#include "workload_scaler.h"

#include <unistd.h>

#include <cstdlib>

#include "common/timestamp.h"
#include "kube/json.h"
#include "workload_state.h"

namespace pi0::op {
namespace {

using kube::ApiResult;
using kube::Json;

const kube::ResourceType& kAutoscalers = kube::resources::kHorizontalPodAutoscalers;

// One write of the target's autoscaler through `change`.
// Sets outcome.autoscaler and autoscalerChanged, and `stored` (when given) to the autoscaler as
// the API holds it after the call. An autoscaler gone from the API (the cache lags behind its
// delete) is no autoscaler: the outcome forgets it, `stored` stays null and the call succeeds.
// Returns whether it wrote.
ApiResult<bool> writeAutoscaler(kube::ObjectWriter& writer, const std::string& ns,
                                const kube::ObjectPtr& hpa, TargetOutcome& outcome,
                                const std::function<bool(Json&)>& change, Json* stored = nullptr) {
  outcome.autoscaler = kube::stringField(*hpa, "/metadata/name"_json_pointer);
  bool wrote = false;
  auto written = writer.modify(kAutoscalers, ns, outcome.autoscaler,
                               [&](Json& object) { return wrote = change(object); });
  if (!written) {
    if (!kube::isNotFound(written.error())) return std::unexpected(written.error());
    outcome.autoscaler.clear();
    return false;
  }
  outcome.changed |= wrote;
  outcome.autoscalerChanged |= wrote;
  if (stored != nullptr) *stored = std::move(*written);
  return wrote;
}

// The workload's step of raise() and restore(), after its autoscaler's: `change` writes the
// count once the autoscaler has `settled`; until then nothing is written and `pending` says
// whether the step is still to come (outcome.waiting). Sets replicasBefore and replicasAfter,
// and `crashPoint` follows a write.
ApiResult<void> writeWorkload(kube::ObjectWriter& writer, const std::string& ns,
                              const stability::Target& target, bool settled, TargetOutcome& outcome,
                              const std::function<bool(Json&)>& change,
                              const std::function<bool(const Json&)>& pending, const char* point) {
  bool wrote = false;
  auto written = writer.modify(resourceOf(target.kind), ns, target.name, [&](Json& object) {
    outcome.replicasBefore = replicasOf(object);
    if (!settled) {
      outcome.waiting = pending(object);
      return false;
    }
    return wrote = change(object);
  });
  if (!written) return std::unexpected(written.error());
  outcome.changed |= wrote;
  outcome.replicasAfter = replicasOf(*written);
  if (wrote) crashPoint(point);
  return {};
}

}  // namespace

const kube::ResourceType& resourceOf(stability::WorkloadKind kind) {
  return kind == stability::WorkloadKind::kStatefulSet ? kube::resources::kStatefulSets
                                                       : kube::resources::kDeployments;
}

kube::ObjectPtr findAutoscaler(const kube::Store& autoscalers, const std::string& ns,
                               const stability::Target& target) {
  kube::ObjectPtr found;
  const std::string kind(stability::workloadKindName(target.kind));
  for (const auto& hpa : autoscalers.list()) {
    if (kube::stringField(*hpa, "/metadata/namespace"_json_pointer) != ns ||
        kube::stringField(*hpa, "/spec/scaleTargetRef/kind"_json_pointer) != kind ||
        kube::stringField(*hpa, "/spec/scaleTargetRef/name"_json_pointer) != target.name) {
      continue;
    }
    if (!found || kube::stringField(*hpa, "/metadata/name"_json_pointer) <
                      kube::stringField(*found, "/metadata/name"_json_pointer)) {
      found = hpa;
    }
  }
  return found;
}

void crashPoint(std::string_view name) {
  static const std::string armed = [] {
    const char* value = std::getenv("PI0_CRASH_POINT");
    return std::string(value == nullptr ? "" : value);
  }();
  if (armed.empty() || armed != name) return;
  const std::string line = "pi0: crash point " + armed + ": exiting with 137\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  ::_exit(137);
}

ApiResult<std::vector<TargetOutcome>> WorkloadScaler::scaleDown(
    const stability::ChannelSpec& channel, int32_t replicas) {
  std::vector<TargetOutcome> outcomes;
  const std::string& ns = channel.ref.ns;
  const std::string key = channel.ref.key();
  const std::string now = rfc3339Millis(clock_());
  for (const auto& target : channel.targets) {
    TargetOutcome outcome;
    outcome.target = target;
    const auto& type = resourceOf(target.kind);
    bool read = false;  // replicasBefore is the count as first read
    if (auto hpa = findAutoscaler(autoscalers_, ns, target)) {
      // (a) The record alone, before anything can change the count: the autoscaler scales the
      // workload to its cap as soon as (b) is stored, often before (c) could read it.
      bool recorded = false;
      auto first = writer_.modify(type, ns, target.name, [&](Json& object) {
        outcome.replicasBefore = replicasOf(object);
        recorded = recordOriginal(object, key);
        if (recorded) markAction(object, now);
        return recorded;
      });
      if (!first) return std::unexpected(first.error());
      read = true;
      outcome.changed |= recorded;
      if (recorded) crashPoint(crash_point::kScaleDownRecorded);
      // (b)
      auto capped = writeAutoscaler(writer_, ns, hpa, outcome, [&](Json& object) {
        const bool wrote = limitAutoscaler(object, replicas, key);
        if (wrote) markAction(object, now);
        return wrote;
      });
      if (!capped) return std::unexpected(capped.error());
      if (*capped) crashPoint(crash_point::kScaleDownHpaCapped);
    }
    // (c), or the only write of a workload without an autoscaler: never overwrites a record.
    bool wrote = false;
    auto scaled = writer_.modify(type, ns, target.name, [&](Json& object) {
      if (!read) outcome.replicasBefore = replicasOf(object);
      wrote = op::scaleDown(object, replicas, key);
      if (wrote) markAction(object, now);
      return wrote;
    });
    if (!scaled) return std::unexpected(scaled.error());
    outcome.changed |= wrote;
    outcome.replicasAfter = replicasOf(*scaled);
    outcomes.push_back(std::move(outcome));
    if (wrote) crashPoint(crash_point::kScaleDownScaled);
  }
  return outcomes;
}

ApiResult<std::vector<TargetOutcome>> WorkloadScaler::raise(const stability::ChannelSpec& channel,
                                                            int32_t replicas) {
  std::vector<TargetOutcome> outcomes;
  const std::string& ns = channel.ref.ns;
  const auto now = clock_();
  const std::string stamp = rfc3339Millis(now);
  for (const auto& target : channel.targets) {
    TargetOutcome outcome;
    outcome.target = target;
    // The cap first: a count raised above the shutdown's cap of 1 would be scaled back to it.
    // While the workload is still at 0 the autoscaler leaves it alone, whatever its bounds. The
    // count follows once the HPA controller has seen the new cap (kAutoscalerSettle).
    bool settled = true;
    if (auto hpa = findAutoscaler(autoscalers_, ns, target)) {
      Json stored;
      auto raised = writeAutoscaler(
          writer_, ns, hpa, outcome,
          [&](Json& object) {
            const bool wrote = raiseAutoscaler(object, replicas);
            if (wrote) markAction(object, stamp);
            return wrote;
          },
          &stored);
      if (!raised) return std::unexpected(raised.error());
      if (*raised) crashPoint(crash_point::kRaiseHpaRaised);
      settled = stored.is_null() || autoscalerSettled(stored, now);
    }
    auto raised = writeWorkload(
        writer_, ns, target, settled, outcome,
        [&](Json& object) {
          const bool wrote = raiseReplicas(object, replicas);
          if (wrote) markAction(object, stamp);
          return wrote;
        },
        [&](const Json& object) {
          Json probe = object;
          return raiseReplicas(probe, replicas);
        },
        crash_point::kRaiseRaised);
    if (!raised) return std::unexpected(raised.error());
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

ApiResult<std::vector<TargetOutcome>> WorkloadScaler::restore(
    const stability::ChannelSpec& channel) {
  std::vector<TargetOutcome> outcomes;
  const std::string& ns = channel.ref.ns;
  const auto now = clock_();
  const std::string stamp = rfc3339Millis(now);
  for (const auto& target : channel.targets) {
    TargetOutcome outcome;
    outcome.target = target;
    // The autoscaler's bounds first, the workload's count last, on a later call: once the
    // bounds are kAutoscalerSettle old, the stamp the restore of the bounds left is removed, then
    // the count restored with its record. Cut short anywhere, the workload still carries its
    // record (the next restore finishes the job) and the autoscaler, back at its own bounds, can
    // only move the count within them until then. The other orders lose the count: with the
    // workload's record gone while the HPA controller still sees the cap (capped, or its cache
    // a moment behind the restored bounds), it scales the workload to the cap, and the bounds
    // then come back around whatever count is left.
    bool settled = true;
    if (auto hpa = findAutoscaler(autoscalers_, ns, target)) {
      Json stored;
      auto back = writeAutoscaler(
          writer_, ns, hpa, outcome, [&](Json& object) { return restoreAutoscaler(object, stamp); },
          &stored);
      if (!back) return std::unexpected(back.error());
      if (*back) crashPoint(crash_point::kRestoreHpaRestored);
      settled = stored.is_null() || autoscalerSettled(stored, now);
      if (settled && !stored.is_null()) {
        TargetOutcome scratch = outcome;  // the stamp's removal changes no bounds
        auto cleared = writeAutoscaler(writer_, ns, hpa, scratch,
                                       [](Json& object) { return clearAutoscalerStamp(object); });
        if (!cleared) return std::unexpected(cleared.error());
        outcome.changed |= *cleared;
      }
    }
    auto restored = writeWorkload(
        writer_, ns, target, settled, outcome, [](Json& object) { return restoreReplicas(object); },
        [](const Json& object) { return originalReplicas(object).has_value(); },
        crash_point::kRestoreRestored);
    if (!restored) return std::unexpected(restored.error());
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace pi0::op
