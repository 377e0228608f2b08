// The status of a ShutdownMatrix and its conditions as typed values (crds/ defines the JSON,
// docs/resources.md is the user's reference). The matrix reconciler computes a MatrixStatus
// from the previous one and the cluster, and writes its JSON; everything a new leader needs to
// go on (the level, calm time, last action, restores under way, steps under evaluation,
// cool-downs) and everything a Channel's status and pi0-webhook read (status.channels) is here,
// in the cluster, never in one replica's memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "operator/condition.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::op {

// A restore under way (progress.restores). Announced first: the status that says a channel is
// restoring is written before its workloads are scaled up, so that pi0-webhook admits the pods
// the restore creates (it reads status.channels[].restoring); the scale-up follows on a later
// pass, at least kAnnounceLead after the announcement.
struct RestoreRecord {
  enum class Phase { kAnnounced, kScaling };
  stability::ChannelRef channel;
  // The state it is restored to: the channel's target at the current level, updated every pass
  // (so a retry never restores past what the level allows); a rollback's is the state before
  // the step it undoes.
  stability::ChannelState target = stability::ChannelState::kActive;
  Phase phase = Phase::kAnnounced;
  bool rollback = false;  // undoes a step that made things worse
  WallTime announcedAt;
  std::optional<WallTime> startedAt;  // the scale-up of this attempt
  int attempts = 0;
  bool stalled = false;
  std::optional<WallTime> retryAt;
  friend bool operator==(const RestoreRecord&, const RestoreRecord&) = default;
};

inline constexpr std::chrono::seconds kAnnounceLead{1};

// What a dependent channel looked like just before a step (for the rollback's comparison).
struct DependentSample {
  std::string key;
  double readyShare = 1;
  int64_t restarts = 0;
  friend bool operator==(const DependentSample&, const DependentSample&) = default;
};

// A degrade or shutdown step waiting for its rollback check (progress.evaluations).
struct Evaluation {
  stability::ChannelRef channel;
  stability::Action action = stability::Action::kDegrade;
  stability::ChannelState before = stability::ChannelState::kActive;  // state before the step
  WallTime takenAt;
  double load = 0;          // the load the level followed, just before
  double stability = 1;     // SAO
  double availability = 1;  // of the channels Pi0 had not touched
  std::vector<DependentSample> dependents;
  friend bool operator==(const Evaluation&, const Evaluation&) = default;
};

// A step that was rolled back and is not taken again before `until` (progress.cooldowns).
struct Cooldown {
  stability::ChannelRef channel;
  WallTime until;
  std::string reason;
  friend bool operator==(const Cooldown&, const Cooldown&) = default;
};

// What the acting matrix tells each channel (status.channels): read by the Channel reconciler
// (level, buffer) and by pi0-webhook (restoring).
struct ChannelEntry {
  stability::ChannelRef channel;
  stability::ChannelState state = stability::ChannelState::kActive;   // observed now
  stability::ChannelState target = stability::ChannelState::kActive;  // at the current level
  bool restoring = false;
  std::optional<stability::Resources> buffer;  // BAO's share; absent at the first level
  friend bool operator==(const ChannelEntry&, const ChannelEntry&) = default;
};

struct PlanStepStatus {
  stability::Action action = stability::Action::kDegrade;
  stability::ChannelRef channel;
  std::string reason;
  std::vector<std::string> targets;  // "Deployment/web"
  friend bool operator==(const PlanStepStatus&, const PlanStepStatus&) = default;
};

struct MatrixProgress {
  std::string phase = "Idle";  // Idle, ShuttingDown, Holding, Restoring
  std::optional<WallTime> calmSince;
  std::optional<WallTime> lastActionTime;
  int64_t completedSteps = 0;
  std::string message;
  std::vector<RestoreRecord> restores;
  std::vector<Evaluation> evaluations;
  std::vector<Cooldown> cooldowns;
  friend bool operator==(const MatrixProgress&, const MatrixProgress&) = default;
};

struct MatrixStatus {
  int64_t observedGeneration = 0;
  std::string level;  // empty before the first reconcile
  int levelIndex = 0;
  std::optional<double> load;
  std::map<std::string, double> loadByResource;
  std::optional<double> anticipatedLoad;
  std::string levelCause = "Load";
  double stability = 1;
  double availability = 1;
  std::string systemState = "Running";
  std::vector<PlanStepStatus> plan;
  MatrixProgress progress;
  std::vector<ChannelEntry> channels;
  std::vector<Condition> conditions;
  friend bool operator==(const MatrixStatus&, const MatrixStatus&) = default;

  const ChannelEntry* entry(const std::string& channelKey) const;
};

nlohmann::json toJson(const MatrixStatus& status);
// Never throws: what does not parse takes its default (a status written by an older operator
// still reads).
MatrixStatus matrixStatusFromJson(const nlohmann::json& status);

// Whether `next` differs from `previous` in anything but what moves with every look (messages,
// plan reasons, the load's and the ratios' last digits): a quiet cluster sees no writes.
bool worthWriting(const MatrixStatus& previous, const MatrixStatus& next);

// "Active", "Degraded", "Inactive" back to the state; nullopt for anything else.
std::optional<stability::ChannelState> parseChannelState(std::string_view name);

}  // namespace pi0::op
