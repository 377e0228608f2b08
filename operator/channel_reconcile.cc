#include "channel_reconcile.h"

#include <algorithm>

#include "kube/json.h"
#include "stability/operators.h"

namespace pi0::op {
namespace {

using stability::ChannelState;

std::string joined(const std::vector<std::string>& parts, const char* separator = "; ") {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : separator) + p;
  return out;
}

// Whether the stored status does not already say that `type` is False: an Event is due when
// the condition turns False.
bool turnsFalse(const ChannelStatus& previous, std::string_view type) {
  const Condition* c = findCondition(previous.conditions, type);
  return c == nullptr || c->status;
}

// Pi0 is changing the channel's replicas: a restore under way, or a step within the channel's
// restore timeout. A stalled restore is the channel's own trouble again.
bool pi0Transition(const ChannelWorld& w, const stability::ChannelSpec& spec) {
  bool restoring = false, stalled = false;
  if (w.matrix) {
    for (const auto& r : w.matrix->progress.restores) {
      if (r.channel.key() != spec.ref.key()) continue;
      restoring = true;
      stalled = r.stalled;
    }
  }
  const auto& last = w.view->lastAction;
  return !stalled &&
         (restoring || (last && w.now - *last < std::chrono::seconds(spec.restoreTimeoutSeconds)));
}

// A count that ends pi0-webhook's reservations of the newest pods: written once it is
// kCountedAfter past the newest pod's creation, and a pass is due then.
void countAfterNewestPod(const ChannelWorld& w, ChannelPass& pass) {
  if (!pass.status.buffer || !w.newestPod) return;
  const WallTime countedBy = *w.newestPod + kCountedAfter;
  const auto& counted = w.previous.buffer;
  if (w.now < countedBy) {
    pass.requeue = std::min<std::chrono::nanoseconds>(*pass.requeue, countedBy - w.now);
  } else if (!counted || counted->observedAt < countedBy) {
    pass.recount = true;
  }
}

void measure(const ChannelWorld& w, ChannelPass& pass) {
  const ChannelView& view = *w.view;
  const auto& spec = *view.spec;
  ChannelStatus& status = pass.status;
  const ChannelState state = view.state;
  const int64_t desired = view.desired;
  const int64_t ready = view.readyReplicas;
  pass.ready = view.missing.empty() && ready >= desired;

  stability::ChannelHealth health = healthOf(w.previous);
  if (w.restartsByPod) {
    health.restartsByPod = *w.restartsByPod;
    health.restartsKnown = true;
  }
  stability::ObserveOptions options;
  options.pi0Transition = pi0Transition(w, spec);
  auto observation = stability::observe(health, w.pods, static_cast<int>(desired), w.now, options);
  if (state == ChannelState::kInactive) {
    // Shut down by Pi0: nothing runs, so nothing is learned; its reliability and recovery keep
    // the values they had when it went down (a channel held at 0 must not look more reliable
    // with every look and be restored for it).
    observation.health.reliability = health.reliability;
    observation.terms.reliability = health.reliability;
  }
  stability::Terms terms = observation.terms;
  // Throughput: the query over its maximum, else ready replicas over desired. While Pi0 holds the
  // channel below its original count (Degraded, Inactive) the term keeps the value it had before
  // (the status's): what Pi0 did to a channel must not lower the priority Pi0 acts on.
  const double fromReplicas = stability::throughputFromReplicas(ready, desired);
  const double before = w.previous.measured ? w.previous.terms.throughput : fromReplicas;
  terms.throughput = spec.throughput && w.throughputValue
                         ? stability::throughputFromQuery(*w.throughputValue, spec.throughput->max)
                     : state != ChannelState::kActive ? before
                                                      : fromReplicas;

  status.measured = true;
  status.state = state;
  status.priority = stability::cpo(spec.weights.value_or(w.matrixWeights), terms);
  status.terms = {terms.throughput, terms.reliability, terms.recovery};
  status.failureProbability = stability::failureProbability(terms.reliability);
  status.replicas = {desired, ready};
  status.level.reset();
  if (state != ChannelState::kActive && w.matrix && !w.matrix->level.empty())
    status.level = w.matrix->level;
  status.health = {w.now, observation.health.outages, observation.health.meanTimeToRecoverSeconds,
                   observation.health.notReadySince};
  // The buffer BAO gave the channel, at a level above the first.
  const ChannelEntry* entry = w.matrix ? w.matrix->entry(spec.ref.key()) : nullptr;
  const bool elevated = w.matrix && w.matrix->levelIndex > 0;
  status.buffer = bufferStatus(elevated && entry ? entry->buffer : std::nullopt, w.requested,
                               w.previous.buffer, w.now);

  auto& conditions = status.conditions;
  if (view.missing.empty()) {
    setCondition(conditions, "TargetsFound", true, "Found", "every target exists", spec.generation,
                 w.now);
  } else {
    setCondition(conditions, "TargetsFound", false, "TargetMissing",
                 "not found in namespace " + spec.ref.ns + ": " + joined(view.missing, ", "),
                 spec.generation, w.now);
  }
  setCondition(conditions, "Ready", pass.ready, pass.ready ? "ReplicasReady" : "ReplicasNotReady",
               std::to_string(ready) + " of " + std::to_string(desired) + " replicas ready",
               spec.generation, w.now);
  if (w.throughputError) {
    setCondition(conditions, "ThroughputMeasured", false, "QueryFailed", *w.throughputError,
                 spec.generation, w.now);
  } else if (spec.throughput) {
    setCondition(conditions, "ThroughputMeasured", true, "QueryAnswered",
                 "the Prometheus query answered", spec.generation, w.now);
  }

  pass.state = state;
  pass.restartsByPod = std::move(observation.health.restartsByPod);
  pass.requeue = pass.ready ? std::chrono::nanoseconds(w.period)
                            : std::min<std::chrono::nanoseconds>(w.period, std::chrono::seconds(2));
  countAfterNewestPod(w, pass);
}

}  // namespace

ChannelPass planChannel(const ChannelWorld& w) {
  const ChannelView& view = *w.view;
  const std::string key = view.key();
  const int64_t generation =
      kube::field<int64_t>(*view.object, "/metadata/generation"_json_pointer, 0);
  const std::string problems = joined(w.problems);
  ChannelPass pass;
  pass.status = w.previous;
  if (view.spec) measure(w, pass);
  auto& status = pass.status;
  status.observedGeneration = generation;
  setCondition(status.conditions, "Valid", w.problems.empty(),
               w.problems.empty() ? "SpecValid" : "InvalidSpec",
               w.problems.empty() ? "the spec is valid" : problems, generation, w.now);

  if (!w.problems.empty() && turnsFalse(w.previous, "Valid"))
    pass.events.push_back({key, kube::EventType::kWarning, "InvalidSpec", problems});
  if (view.spec && !view.missing.empty() && turnsFalse(w.previous, "TargetsFound")) {
    pass.events.push_back(
        {key, kube::EventType::kWarning, "TargetMissing",
         "not found in namespace " + view.spec->ref.ns + ": " + joined(view.missing, ", ")});
  }
  return pass;
}

std::optional<ChannelBuffer> bufferStatus(const std::optional<stability::Resources>& allocation,
                                          const kube::ResourceList& requested,
                                          const std::optional<ChannelBuffer>& previous,
                                          WallTime now) {
  if (!allocation || (!allocation->cpuMilli && !allocation->memoryBytes)) return std::nullopt;
  const Quantities requestedNow{requested.cpuMilli, requested.memoryBytes};
  const Quantities baseline = previous ? previous->baseline : requestedNow;
  return ChannelBuffer{*allocation,
                       baseline,
                       requestedNow,
                       {std::max<int64_t>(0, requested.cpuMilli - baseline.cpuMilli),
                        std::max<int64_t>(0, requested.memoryBytes - baseline.memoryBytes)},
                       now};
}

}  // namespace pi0::op
