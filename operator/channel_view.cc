#include "channel_view.h"

#include <algorithm>

#include "channel_status.h"
#include "kube/json.h"
#include "stability/health.h"
#include "workload_scaler.h"
#include "workload_state.h"

namespace pi0::op {
namespace {

using kube::field;
using kube::Json;
using kube::labelsOf;
using kube::stringField;

}  // namespace

std::string targetName(const stability::Target& t) {
  return std::string(stability::workloadKindName(t.kind)) + "/" + t.name;
}

std::string ChannelView::key() const {
  return spec ? spec->ref.key() : kube::objectKey(*object);
}

stability::ChannelSpec ChannelView::existing() const {
  stability::ChannelSpec s = *spec;
  std::erase_if(s.targets, [&](const stability::Target& t) {
    return std::find(missing.begin(), missing.end(), targetName(t)) != missing.end();
  });
  return s;
}

double ChannelView::readyShare() const {
  if (desired <= 0) return state == stability::ChannelState::kInactive ? 0.0 : 1.0;
  return std::min(1.0, static_cast<double>(readyReplicas) / static_cast<double>(desired));
}

double ChannelView::cpo() const {
  return field<double>(*object, "/status/priority"_json_pointer, 0.0);
}

double ChannelView::reliability() const {
  return field<double>(*object, "/status/terms/reliability"_json_pointer, 1.0);
}

ChannelView viewOf(const kube::ObjectPtr& object, const ViewSources& sources) {
  ChannelView v;
  v.object = object;
  auto spec = stability::parseChannel(*object);
  if (!spec) {
    v.parseError = spec.error().message;
    return v;
  }
  v.spec = std::move(*spec);
  std::vector<Json> workloads;
  std::vector<Json> autoscalers;  // parallel to workloads; null for none
  for (const auto& t : v.spec->targets) {
    const auto& store = t.kind == stability::WorkloadKind::kStatefulSet ? sources.statefulSets
                                                                        : sources.deployments;
    auto w = store.get(v.spec->ref.ns + "/" + t.name);
    if (!w) {
      v.missing.push_back(targetName(t));
      v.ready = false;
      continue;
    }
    v.workloads.push_back(w);
    workloads.push_back(*w);
    auto hpa = findAutoscaler(sources.autoscalers, v.spec->ref.ns, t);
    v.autoscalers.push_back(hpa);
    autoscalers.push_back(hpa ? *hpa : Json());
    // A step's first write may be its HPA's (a degrade stopped after the cap): its stamp counts
    // toward the step interval as the workload's does.
    if (hpa) {
      if (auto at = lastActionTime(*hpa); at && (!v.lastAction || *at > *v.lastAction))
        v.lastAction = at;
    }
    v.desired += replicasOf(*w);
    v.readyReplicas += field<int64_t>(*w, "/status/readyReplicas"_json_pointer, 0);
    const bool current = field<int64_t>(*w, "/status/observedGeneration"_json_pointer, 0) >=
                         field<int64_t>(*w, "/metadata/generation"_json_pointer, 0);
    if (!current || field<int64_t>(*w, "/status/readyReplicas"_json_pointer, 0) < replicasOf(*w)) {
      v.ready = false;
    }
    if (auto at = lastActionTime(*w); at && (!v.lastAction || *at > *v.lastAction))
      v.lastAction = at;
  }
  v.state = stateFromWorkloads(workloads, autoscalers);
  v.leftover =
      v.state == stability::ChannelState::kActive && leftoverRecord(workloads, autoscalers);
  // Restarts are read only for a channel that depends on another (what a rollback check watches):
  // a scan of every cached pod per channel and pass would cost the most where pods are many.
  if (v.spec->dependsOn.empty()) return v;
  for (const auto& pod : sources.pods.list()) {
    if (stringField(*pod, "/metadata/namespace"_json_pointer) != v.spec->ref.ns) continue;
    if (!v.spec->selector.matches(labelsOf(*pod))) continue;
    if (auto sample = stability::podSample(*pod)) v.restarts += sample->restarts;
  }
  return v;
}

std::vector<ChannelView> viewsOf(const std::vector<kube::ObjectPtr>& channels,
                                 const ViewSources& sources) {
  std::vector<ChannelView> views;
  views.reserve(channels.size());
  for (const auto& object : channels)
    views.push_back(viewOf(object, sources));
  std::sort(views.begin(), views.end(),
            [](const ChannelView& a, const ChannelView& b) { return a.key() < b.key(); });
  return views;
}

}  // namespace pi0::op
