#include "matrix_reconcile.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>

#include "common/format.h"
#include "common/timestamp.h"
#include "kube/quantity.h"
#include "stability/graph.h"
#include "stability/levels.h"
#include "stability/operators.h"

namespace pi0::op {
namespace {

using stability::ChannelState;

int severity(ChannelState s) {
  return static_cast<int>(s);
}

std::string joined(const std::vector<std::string>& parts, const char* separator = "; ") {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : separator) + p;
  return out;
}

SteadyTime toSteady(WallTime t, WallTime wallNow, SteadyTime steadyNow) {
  return t >= wallNow
             ? steadyNow
             : steadyNow -
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(wallNow - t);
}

WallTime toWall(SteadyTime t, WallTime wallNow, SteadyTime steadyNow) {
  return wallNow - std::chrono::duration_cast<WallTime::duration>(steadyNow - t);
}

long seconds(std::chrono::system_clock::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

// The availability of the channels Pi0 is not acting on (no restore, no step under evaluation,
// state Active), excluding `except`: what a step must not lower.
double untouchedAvailability(const std::vector<const ChannelView*>& views,
                             const std::set<std::string>& touched) {
  std::vector<stability::ChannelFacts> facts;
  for (const auto* v : views) {
    if (touched.contains(v->key()) || v->state != ChannelState::kActive) continue;
    stability::ChannelFacts f;
    f.key = v->key();
    f.critical = v->spec->critical;
    f.cpo = v->cpo();
    f.readyShare = v->readyShare();
    facts.push_back(f);
  }
  return stability::availability(facts);
}

struct Context {
  const MatrixWorld& w;
  const stability::MatrixSpec& spec;
  std::map<std::string, const ChannelView*> byKey;
  std::vector<const ChannelView*> valid;  // the views whose spec parses, by key
  stability::DependencyGraph graph;

  explicit Context(const MatrixWorld& world) : w(world), spec(*world.spec) {
    for (const auto& v : *world.channels) {
      if (!v.spec) continue;
      byKey[v.key()] = &v;
      valid.push_back(&v);
      auto& deps = graph[v.key()];
      for (const auto& d : v.spec->dependsOn)
        deps.push_back(d.key());
    }
  }

  const ChannelView* view(const std::string& key) const {
    auto it = byKey.find(key);
    return it == byKey.end() ? nullptr : it->second;
  }

  std::vector<DependentSample> dependents(const std::string& key) const {
    std::vector<DependentSample> out;
    for (const auto& d : stability::dependentsOf(graph, key)) {
      if (const auto* v = view(d)) out.push_back({d, v->readyShare(), v->restarts});
    }
    return out;
  }
};

// Why an evaluated step made things worse, or "" when it did not.
std::string harm(const Context& c, const Evaluation& e, double sao, double available) {
  const double margin = c.spec.rollback.margin;
  std::vector<std::string> why;
  for (const auto& before : e.dependents) {
    const auto* v = c.view(before.key);
    if (!v) continue;
    const double share = v->readyShare();
    if (share < before.readyShare - margin) {
      why.push_back("dependent " + before.key + " ready share fell from " +
                    fixed(before.readyShare) + " to " + fixed(share));
    }
    // A restart storm: three restarts or more since the step.
    if (v->restarts - before.restarts >= 3) {
      why.push_back("dependent " + before.key + " restarted " +
                    std::to_string(v->restarts - before.restarts) + " times");
    }
  }
  if (sao < e.stability - margin)
    why.push_back("stability fell from " + fixed(e.stability, 3) + " to " + fixed(sao, 3));
  if (available < e.availability - margin) {
    why.push_back("the availability of the channels Pi0 had not touched fell from " +
                  fixed(e.availability) + " to " + fixed(available));
  }
  return joined(why);
}

// What a pass has decided by the time it judges its steps and follows its restores.
struct Decided {
  const MatrixWorld& w;
  const Context& c;
  MatrixPass& pass;
  std::function<ChannelState(const std::string&)> targetOf;
  double effectiveLoad = 0;
  double saoNow = 1;
  std::set<std::string> touched;  // channels with a restore or a step under evaluation
  std::set<std::string> cooling;  // channels held after a rollback
};

// Rollback checks: each step whose settle time has passed is kept, or undone (a rollback restore,
// announced) and its channel held for the cool-down.
void judgeSteps(Decided& x) {
  const auto& w = x.w;
  const auto& c = x.c;
  const auto& spec = c.spec;
  auto& pass = x.pass;
  auto& progress = pass.status.progress;
  const double effectiveLoad = x.effectiveLoad;
  const double saoNow = x.saoNow;
  const auto& touched = x.touched;
  auto& cooling = x.cooling;
  std::vector<Evaluation> evaluations;
  for (const auto& e : w.previous.progress.evaluations) {
    const std::string key = e.channel.key();
    const auto* v = c.view(key);
    // Gone, or restored since (nothing left to undo), or no longer ours to act on.
    if (!v || severity(v->state) <= severity(e.before) || !pass.enforcing) continue;
    if (w.now - e.takenAt < std::chrono::seconds(spec.rollback.settleSeconds)) {
      evaluations.push_back(e);
      continue;
    }
    const std::string why = harm(c, e, saoNow, untouchedAvailability(c.valid, touched));
    if (why.empty()) continue;  // the step holds
    const std::string message =
        std::string(stability::actionName(e.action)) + " of " + key + " made things worse after " +
        std::to_string(spec.rollback.settleSeconds) + " s: " + why + " (load " + fixed(e.load) +
        " -> " + fixed(effectiveLoad) + "); undoing it, and not taking it again for " +
        std::to_string(spec.rollback.cooldownSeconds) + " s";
    pass.events.push_back({key, kube::EventType::kWarning, "StepRolledBack", message});
    pass.events.push_back({"", kube::EventType::kWarning, "StepRolledBack", message});
    ++pass.rollbacks;
    std::erase_if(progress.restores,
                  [&](const RestoreRecord& rr) { return rr.channel.key() == key; });
    RestoreRecord rr;
    rr.channel = e.channel;
    rr.target = e.before;
    rr.rollback = true;
    rr.announcedAt = w.now;
    progress.restores.push_back(rr);
    std::erase_if(progress.cooldowns, [&](const Cooldown& cd) { return cd.channel.key() == key; });
    progress.cooldowns.push_back(
        {e.channel, w.now + std::chrono::seconds(spec.rollback.cooldownSeconds), why});
    cooling.insert(key);
  }
  progress.evaluations = std::move(evaluations);
}

// Restores under way: an announced one is scaled once the announcement is kAnnounceLead old; a
// scaling one is verified ready, declared stalled after the channel's restore timeout and retried
// with backoff, always to the channel's target at the current level. Returns the records kept.
std::vector<RestoreRecord> followRestores(Decided& x) {
  const auto& w = x.w;
  const auto& c = x.c;
  const auto& spec = c.spec;
  auto& pass = x.pass;
  auto& progress = pass.status.progress;
  const auto& targetOf = x.targetOf;
  std::vector<RestoreRecord> restores;
  for (auto rr : progress.restores) {
    const std::string key = rr.channel.key();
    const auto* v = c.view(key);
    if (!v || !pass.enforcing) continue;  // gone, or no longer ours to follow
    if (!rr.rollback) rr.target = targetOf(key);
    const bool reached = severity(v->state) <= severity(rr.target);
    if (rr.phase == RestoreRecord::Phase::kAnnounced) {
      if (reached && rr.attempts == 0) continue;  // nothing left to restore
      if (w.now - rr.announcedAt >= kAnnounceLead) {
        pass.actions.push_back(
            {rr.target == ChannelState::kDegraded ? StepKind::kRaise : StepKind::kRestore, key,
             stability::Action::kRestore, v->spec->degradedReplicas,
             rr.rollback
                 ? "rollback of a step that made things worse"
                 : "load fell: restore to " + std::string(stability::channelStateName(rr.target)),
             rr.rollback, std::nullopt, true});
      }
      restores.push_back(rr);
      continue;
    }
    const auto started = rr.startedAt.value_or(w.now);
    if (reached && v->ready) {
      pass.events.push_back({key, kube::EventType::kNormal, "Restored",
                             "every target has its replicas ready again, " +
                                 std::to_string(seconds(w.now - started)) +
                                 " s after the restore began"});
      continue;
    }
    if (!reached && !rr.stalled) {
      // The target moved past what was restored (a raise to Degraded, now Active): scale on.
      pass.actions.push_back(
          {rr.target == ChannelState::kDegraded ? StepKind::kRaise : StepKind::kRestore, key,
           stability::Action::kRestore, v->spec->degradedReplicas,
           "restore to " + std::string(stability::channelStateName(rr.target)), rr.rollback,
           std::nullopt, false});
    } else if (!rr.stalled &&
               w.now - started > std::chrono::seconds(v->spec->restoreTimeoutSeconds)) {
      const int64_t backoff = std::min<int64_t>(spec.restore.maxBackoffSeconds,
                                                static_cast<int64_t>(spec.restore.backoffSeconds)
                                                    << std::min(std::max(rr.attempts, 1) - 1, 20));
      rr.stalled = true;
      rr.retryAt = w.now + std::chrono::seconds(backoff);
      ++pass.stalledNow;
      pass.events.push_back(
          {key, kube::EventType::kWarning, "RestoreStalled",
           "replicas not ready " + std::to_string(v->spec->restoreTimeoutSeconds) +
               " s after the restore began (attempt " + std::to_string(rr.attempts) +
               "); retrying in " + std::to_string(backoff) + " s"});
    } else if (rr.stalled && rr.retryAt.value_or(w.now) <= w.now) {
      // A retry restores to the target at the current level, never past it.
      pass.actions.push_back(
          {rr.target == ChannelState::kDegraded ? StepKind::kRaise : StepKind::kRestore, key,
           stability::Action::kRestore, v->spec->degradedReplicas,
           "retry " + std::to_string(rr.attempts + 1) + " of a stalled restore to " +
               stability::channelStateName(rr.target),
           rr.rollback, std::nullopt, true});
    }
    restores.push_back(rr);
  }
  return restores;
}

// The conditions a pass sets from the spec, the acting matrix and the load reading: Enforcing,
// LoadMeasured, Anticipating, AgentsHealthy. Returns whether this matrix acts.
bool readingConditions(const MatrixWorld& w, const stability::MatrixSpec& spec,
                       std::vector<Condition>& conditions, int64_t generation) {
  auto condition = [&](const char* type, bool value, std::string reason, std::string message) {
    setCondition(conditions, type, value, std::move(reason), std::move(message), generation, w.now);
  };
  // Which matrix acts: the oldest in Enforce mode (admission::actingMatrix).
  const bool enforcing = spec.mode == stability::Mode::kEnforce && w.acting == spec.name;
  if (spec.mode == stability::Mode::kDryRun) {
    condition("Enforcing", false, "DryRun",
              "mode DryRun: the plan is published and nothing is changed");
  } else if (!enforcing) {
    condition("Enforcing", false, "AnotherMatrixEnforces",
              "ShutdownMatrix " + w.acting + " is older and acts; this one only plans");
  } else {
    condition("Enforcing", true, "Enforcing", "this matrix acts on its plan");
  }

  // The load.
  const auto& r = w.reading;
  condition("LoadMeasured", r.measured, r.measuredReason, r.measuredMessage);
  if (spec.anticipationSeconds == 0) {
    condition("Anticipating", false, "Off",
              "spec.anticipationSeconds is 0: the level follows the load alone");
  } else if (spec.loadSignal.source == stability::LoadSource::kPrometheus) {
    condition("Anticipating", false, "NoForecast",
              "spec.loadSignal is a Prometheus query, which has no forecast: "
              "spec.anticipationSeconds has no effect");
  } else if (!r.anticipated) {
    condition("Anticipating", false, "NoData", "no anticipated load without a measured load");
  } else {
    condition("Anticipating", true, "Forecast",
              "the level follows the larger of the load and the load forecast " +
                  std::to_string(spec.anticipationSeconds) + " s past the nodes' horizon (" +
                  r.forecastCoverage + ")");
  }
  if (r.agentTrouble.empty()) {
    condition("AgentsHealthy", true, "AgentsAnswer", "every node's agent answers");
  } else {
    condition("AgentsHealthy", false, "AgentsFailing", r.agentTrouble);
  }

  return enforcing;
}

// Sets one condition of the status at the pass's generation and time.
using SetCondition = std::function<void(const char*, bool, std::string, std::string)>;

// What the status remembers, as steady-clock times: the level, since when it is calm, and the
// latest action (the matrix's or any of its channels').
MatrixMemory memoryOf(const Context& c) {
  const auto& w = c.w;
  MatrixMemory memory;
  for (std::size_t i = 0; i < c.spec.levels.size(); ++i) {
    if (c.spec.levels[i].name == w.previous.level) memory.level.index = static_cast<int>(i);
  }
  if (w.previous.progress.calmSince)
    memory.level.calmSince = toSteady(*w.previous.progress.calmSince, w.now, w.steadyNow);
  std::optional<WallTime> last = w.previous.progress.lastActionTime;
  for (const auto* v : c.valid) {
    if (v->lastAction && (!last || *v->lastAction > *last)) last = v->lastAction;
  }
  if (last) memory.lastActionAt = toSteady(*last, w.now, w.steadyNow);
  return memory;
}

// The channels as the planner sees them. One with nothing to act on, or held after a rollback
// (`cooling`), plans no step either way.
std::vector<stability::PlannedChannel> plannedChannels(const Context& c,
                                                       const std::set<std::string>& cooling) {
  std::vector<stability::PlannedChannel> planned;
  for (const auto* v : c.valid) {
    stability::PlannedChannel p;
    p.ref = v->spec->ref;
    p.state = v->state;
    p.critical = v->spec->critical;
    p.dependsOn = v->spec->dependsOn;
    p.cpo = v->cpo();
    p.reliability = v->reliability();
    p.ready = v->ready;
    p.absent = v->workloads.empty() || cooling.contains(v->key());
    planned.push_back(p);
  }
  return planned;
}

// The Event of a change of level: LevelChanged, or Anticipated when the forecast raised it.
void levelEvent(const Context& c, const MatrixDecision& d, int previousLevel, MatrixPass& pass) {
  const auto& r = c.w.reading;
  if (d.level.index == previousLevel || !r.load) return;
  const auto& levels = c.spec.levels;
  const std::string change = "level " + levels[static_cast<std::size_t>(previousLevel)].name +
                             " -> " + levels[static_cast<std::size_t>(d.level.index)].name;
  if (d.anticipatedRise) {
    pass.events.push_back(
        {"", kube::EventType::kNormal, "Anticipated", change + " early: " + d.anticipation});
    pass.anticipatedRise = true;
  } else {
    pass.events.push_back(
        {"", kube::EventType::kNormal, "LevelChanged", change + " at load " + fixed(*r.load)});
  }
}

// The channels' facts for SAO and availability; a channel being restored counts as active.
std::vector<stability::ChannelFacts> channelFacts(const Context& c,
                                                  const std::set<std::string>& restoring) {
  std::set<std::string> listed;
  for (const auto& row : c.spec.rows)
    listed.insert(row.channel.key());
  std::vector<stability::ChannelFacts> facts;
  for (const auto* v : c.valid) {
    stability::ChannelFacts f;
    f.key = v->key();
    f.critical = v->spec->critical;
    f.active = v->state != ChannelState::kInactive || restoring.contains(f.key);
    f.listed = listed.contains(f.key);
    f.cpo = v->cpo();
    f.reliability = v->reliability();
    f.readyShare = v->desired > 0 ? v->readyShare() : (f.active ? 1.0 : 0.0);
    f.bufferMax = v->spec->bufferMax;
    facts.push_back(f);
  }
  return facts;
}

bool tracks(const std::vector<RestoreRecord>& restores, const std::string& key) {
  return std::any_of(restores.begin(), restores.end(),
                     [&](const RestoreRecord& rr) { return rr.channel.key() == key; });
}

// The restores the pass keeps: those under way (followRestores), the decision's new ones
// (announced now, scaled on a later pass), and a restore step for each record left by a step
// interrupted after its first write (an Active channel whose workload or HPA still carries Pi0's
// record) at a level where the channel is to be Active: it clears the record and changes no
// replica count, so there is nothing to announce.
std::vector<RestoreRecord> planRestores(Decided& x, const MatrixDecision& d) {
  std::vector<RestoreRecord> restores = followRestores(x);
  for (const auto& step : d.restoreNow) {
    if (tracks(restores, step.channel.key()) || x.cooling.contains(step.channel.key())) continue;
    RestoreRecord rr;
    rr.channel = step.channel;
    rr.target = step.target;
    rr.announcedAt = x.w.now;
    restores.push_back(rr);
  }
  for (const auto* v : x.c.valid) {
    const std::string key = v->key();
    if (!x.pass.enforcing || !v->leftover || tracks(restores, key) || x.cooling.contains(key) ||
        x.targetOf(key) != ChannelState::kActive) {
      continue;
    }
    x.pass.actions.push_back({StepKind::kRestore, key, stability::Action::kRestore, 0,
                              "clears the record of a step that was interrupted", false,
                              std::nullopt, false});
  }
  return restores;
}

// The decision's shutdown step due now, with what its rollback check will compare against.
void planShutdown(Decided& x, const MatrixDecision& d, const std::set<std::string>& restoring) {
  if (!d.shutdownNow || restoring.contains(d.shutdownNow->channel.key())) return;
  const auto& now = *d.shutdownNow;
  const std::string key = now.channel.key();
  const auto* v = x.c.view(key);
  if (!v) return;
  StepAction a;
  a.kind = StepKind::kScaleDown;
  a.channel = key;
  a.action = now.action;
  a.replicas = now.action == stability::Action::kShutdown ? 0 : v->spec->degradedReplicas;
  a.reason = now.reason;
  if (x.c.spec.rollback.settleSeconds > 0) {
    std::set<std::string> others = x.touched;
    others.insert(key);
    a.evaluation = Evaluation{now.channel,
                              now.action,
                              v->state,
                              x.w.now,
                              x.effectiveLoad,
                              x.saoNow,
                              untouchedAvailability(x.c.valid, others),
                              x.c.dependents(key)};
  }
  x.pass.actions.push_back(std::move(a));
}

// BAO's B: spec.totalBuffer, else the free allocatable plus what the buffers hold now (a pod
// admitted on a buffer raises its channel's use and lowers the free allocatable alike).
stability::Resources baoTotal(const Context& c) {
  if (c.spec.totalBuffer) return *c.spec.totalBuffer;
  stability::Resources total = c.w.freeAllocatable;
  for (const auto* v : c.valid) {
    const auto used = kube::field<kube::Json>(*v->object, "/status/buffer/used"_json_pointer,
                                              kube::Json::object());
    if (auto cpu = kube::parseCpuMilli(kube::stringField(used, "/cpu"_json_pointer));
        cpu && used.contains("cpu") && total.cpuMilli)
      *total.cpuMilli += *cpu;
    if (auto m = kube::parseBytes(kube::stringField(used, "/memory"_json_pointer));
        m && used.contains("memory") && total.memoryBytes)
      *total.memoryBytes += *m;
  }
  return total;
}

// The status's figures: SAO, availability, the level, the plan, and status.channels with each
// channel's BAO share above the first level.
void writeFigures(const Decided& x, const MatrixDecision& d,
                  const std::set<std::string>& restoring) {
  const auto& c = x.c;
  const auto& r = c.w.reading;
  auto& status = x.pass.status;
  const auto facts = channelFacts(c, restoring);
  status.stability = stability::sao(facts);
  status.availability = stability::availability(facts);
  status.systemState = stability::systemStateName(stability::systemState(status.availability));
  status.level = c.spec.levels[static_cast<std::size_t>(d.level.index)].name;
  status.levelIndex = d.level.index;
  status.load = r.load;
  status.loadByResource = r.byResource;
  status.anticipatedLoad.reset();
  if (r.anticipated && r.load) status.anticipatedLoad = std::max(*r.anticipated, *r.load);
  status.levelCause = d.anticipated ? "Anticipated" : "Load";
  status.plan.clear();
  for (const auto& step : d.plan) {
    PlanStepStatus p{step.action, step.channel, step.reason, {}};
    if (const auto* v = c.view(step.channel.key())) {
      for (const auto& t : v->spec->targets)
        p.targets.push_back(targetName(t));
    }
    status.plan.push_back(std::move(p));
  }
  const auto shares = stability::bao(facts, baoTotal(c));
  status.channels.clear();
  for (std::size_t i = 0; i < c.valid.size(); ++i) {
    const auto* v = c.valid[i];
    ChannelEntry e;
    e.channel = v->spec->ref;
    e.state = v->state;
    e.target = x.targetOf(v->key());
    e.restoring = restoring.contains(v->key());
    if (d.level.index > 0) {
      e.buffer = shares[i];
      // Whole MiB: a status that reads "1536Mi", not a byte count that moves with every pod.
      if (e.buffer->memoryBytes) *e.buffer->memoryBytes &= ~((int64_t{1} << 20) - 1);
    }
    status.channels.push_back(std::move(e));
  }
}

// status.progress: its phase (a new sequence starts its count again) and message.
void writeProgress(const Decided& x, const MatrixDecision& d) {
  const auto& w = x.w;
  auto& progress = x.pass.status.progress;
  Phase phase = d.phase;
  if (!progress.restores.empty() && phase == Phase::kIdle) phase = Phase::kRestoring;
  if (progress.phase == phaseName(Phase::kIdle) && phase != Phase::kIdle)
    progress.completedSteps = 0;  // a new sequence
  progress.phase = phaseName(phase);
  progress.calmSince.reset();
  if (d.level.calmSince) progress.calmSince = toWall(*d.level.calmSince, w.now, w.steadyNow);
  std::string message = d.message;
  if (!d.waiting.empty()) message += "; " + joined(d.waiting);
  if (!x.pass.enforcing && x.c.spec.mode == stability::Mode::kEnforce)
    message += " (another matrix enforces)";
  for (const auto& cd : progress.cooldowns) {
    message += "; " + cd.channel.key() + " is held after a rollback until " + rfc3339(cd.until, 0);
  }
  progress.message = message;
}

// The conditions a pass sets from its decision: Stalled, StabilityReachable, RolledBack.
void decisionConditions(const Decided& x, const MatrixDecision& d, const SetCondition& condition) {
  const auto& progress = x.pass.status.progress;
  std::vector<std::string> stalled;
  for (const auto& rr : progress.restores) {
    if (rr.stalled) stalled.push_back(rr.channel.key());
  }
  if (!stalled.empty()) {
    condition("Stalled", true, "RestoreStalled",
              "restores not ready within their timeout: " + joined(stalled, ", "));
  } else {
    condition("Stalled", false, "NotStalled", "no restore is stalled");
  }
  if (x.c.spec.stabilityThreshold <= 0) {
    condition("StabilityReachable", true, "TriggerOff",
              "spec.stabilityThreshold is 0: no channel is shut down for stability");
  } else if (!x.w.reading.load) {
    // decideMatrix holds without a load and plans nothing: keep what was known.
  } else if (d.stability.reachable) {
    condition("StabilityReachable", true, "Reachable", d.stability.explanation);
  } else {
    condition("StabilityReachable", false, "BoundByCriticalChannels", d.stability.explanation);
  }
  if (progress.cooldowns.empty()) {
    condition("RolledBack", false, "NoRollback", "no step is held after a rollback");
  } else {
    std::vector<std::string> held;
    for (const auto& cd : progress.cooldowns)
      held.push_back(cd.channel.key() + " until " + rfc3339(cd.until, 0) + " (" + cd.reason + ")");
    condition("RolledBack", true, "StepMadeThingsWorse",
              "steps undone and held: " + joined(held, "; "));
  }
}

}  // namespace

MatrixPass planMatrix(const MatrixWorld& w) {
  MatrixPass pass;
  MatrixStatus& status = pass.status;
  status = w.previous;
  const int64_t generation =
      kube::field<int64_t>(*w.object, "/metadata/generation"_json_pointer, 0);
  status.observedGeneration = generation;
  const SetCondition condition = [&](const char* type, bool value, std::string reason,
                                     std::string message) {
    setCondition(status.conditions, type, value, std::move(reason), std::move(message), generation,
                 w.now);
  };
  if (!w.problems.empty()) {
    const std::string message = joined(w.problems);
    if (const auto* valid = findCondition(w.previous.conditions, "Valid"); !valid || valid->status)
      pass.events.push_back({"", kube::EventType::kWarning, "InvalidSpec", message});
    condition("Valid", false, "InvalidSpec", message);
    status.progress.phase = phaseName(Phase::kHolding);
    status.progress.message = "the spec is invalid: no action until it is fixed";
    status.plan.clear();
    pass.requeue = std::chrono::seconds(30);
    return pass;
  }
  const Context c(w);
  const auto& spec = c.spec;
  const auto& r = w.reading;
  condition("Valid", true, "SpecValid", "the spec is valid");
  pass.enforcing = readingConditions(w, spec, status.conditions, generation);

  // 1. Cool-downs still running hold their channels as they are: no step plans them.
  auto& progress = status.progress;
  std::erase_if(progress.cooldowns,
                [&](const Cooldown& cd) { return cd.until <= w.now || !c.view(cd.channel.key()); });
  std::set<std::string> cooling;
  for (const auto& cd : progress.cooldowns)
    cooling.insert(cd.channel.key());

  // 2. The decision: the level, the plan, the step due now and the restores due.
  const MatrixMemory memory = memoryOf(c);
  const auto planned = plannedChannels(c, cooling);
  MatrixDecision d = decideMatrix(spec, memory, r.load, planned, w.steadyNow, r.anticipated);
  if (!pass.enforcing) {
    d.shutdownNow.reset();
    d.restoreNow.clear();
  }
  levelEvent(c, d, memory.level.index, pass);
  const double effectiveLoad = std::max(
      r.load.value_or(0.0),
      spec.anticipationSeconds > 0 && r.anticipated ? *r.anticipated : r.load.value_or(0.0));
  const auto targets =
      stability::targets(stability::PlanInput{&spec, planned, d.level.index, effectiveLoad});
  auto targetOf = [&](const std::string& key) {
    auto it = targets.find(key);
    return it == targets.end() ? ChannelState::kActive : it->second;
  };
  std::set<std::string> touched;
  for (const auto& rr : w.previous.progress.restores)
    touched.insert(rr.channel.key());
  for (const auto& e : w.previous.progress.evaluations)
    touched.insert(e.channel.key());
  Decided x{w,       c,      pass, targetOf, effectiveLoad, stability::sao(channelFacts(c, {})),
            touched, cooling};

  // 3. Rollback checks; 4. restores under way and new ones; 5. the shutdown step due now.
  judgeSteps(x);
  progress.restores = planRestores(x, d);
  std::set<std::string> restoring;
  for (const auto& rr : progress.restores)
    restoring.insert(rr.channel.key());
  planShutdown(x, d, restoring);

  // 6. The status: figures, progress, conditions.
  writeFigures(x, d, restoring);
  writeProgress(x, d);
  decisionConditions(x, d, condition);
  return pass;
}

void settleMatrix(MatrixPass& pass, const std::vector<StepResult>& results, WallTime now) {
  auto& progress = pass.status.progress;
  int taken = 0;
  for (std::size_t i = 0; i < pass.actions.size() && i < results.size(); ++i) {
    if (results[i] != StepResult::kTaken) continue;
    const auto& a = pass.actions[i];
    ++taken;
    for (auto& e : pass.status.channels) {
      if (e.channel.key() != a.channel) continue;
      e.state = a.kind == StepKind::kRestore               ? ChannelState::kActive
                : a.kind == StepKind::kRaise               ? ChannelState::kDegraded
                : a.action == stability::Action::kShutdown ? ChannelState::kInactive
                                                           : ChannelState::kDegraded;
    }
    if (a.evaluation) {
      std::erase_if(progress.evaluations,
                    [&](const Evaluation& e) { return e.channel.key() == a.channel; });
      progress.evaluations.push_back(*a.evaluation);
    }
    if (a.restoreRecord) {
      for (auto& rr : progress.restores) {
        if (rr.channel.key() != a.channel) continue;
        rr.phase = RestoreRecord::Phase::kScaling;
        rr.startedAt = now;
        ++rr.attempts;
        rr.stalled = false;
        rr.retryAt.reset();
      }
    }
  }
  if (taken > 0) {
    progress.lastActionTime = now;
    progress.completedSteps += taken;
  }
}

}  // namespace pi0::op
