// What a ShutdownMatrix should do next, as pure functions of the matrix, the channels' state,
// the current level and the load (DESIGN.md "Shutdown and recovery"):
//
// - The target of a channel at level i: Active for anything critical (a critical row, a
//   critical Channel, or anything a critical channel depends on, transitively); for a listed
//   channel, the action of its cell at the highest level ≤ i (a cell's action holds at higher
//   levels until a later cell changes it); for an unlisted channel above the first level,
//   Degraded when its CPO is below ℓ (GDO); Inactive for the least reliable channels when SAO
//   is below the stability threshold.
// - planShutdown(): the steps that move channels toward a more severe target, in order:
//   stability shutdowns first, then matrix cells by level and cell order, then GDO by CPO. A
//   channel is shut down only after every channel that depends on it (they come first in the
//   plan); if a dependent stays active, the shutdown is blocked and says why. The operator
//   takes the first step, waits a step interval, measures again and plans again.
// - planRecovery(): the restores due at level i (the channels whose state is more severe than
//   their target), highest CPO first; a restore waits until everything the channel depends on
//   is back and verified ready. All steps returned as ready may run in parallel.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stability/graph.h"
#include "stability/spec.h"

namespace pi0::stability {

enum class ChannelState { kActive, kDegraded, kInactive };
const char* channelStateName(ChannelState state);

struct PlannedChannel {
  ChannelRef ref;
  ChannelState state = ChannelState::kActive;
  bool critical = false;  // spec.critical
  std::vector<ChannelRef> dependsOn;
  double cpo = 0;
  double reliability = 1;
  bool ready = true;  // its workloads have the replicas of their state, ready
  // None of its targets exists: there is nothing to act on, so no step is planned for it in
  // either direction (it still counts in the dependency graph).
  bool absent = false;
};

struct PlanStep {
  ChannelRef channel;
  Action action = Action::kDegrade;
  ChannelState target = ChannelState::kDegraded;
  std::string reason;  // for status and Events: "level high: matrix cell (order 1)"
};

struct Plan {
  std::vector<PlanStep> steps;       // in order; for recovery, the ones that may run now
  std::vector<std::string> waiting;  // why other changes cannot happen yet
};

struct PlanInput {
  const MatrixSpec* matrix = nullptr;
  std::vector<PlannedChannel> channels;
  int level = 0;
  double load = 0;
};

// The problems that make planning impossible: a dependency cycle among the channels, a row
// naming a channel that does not exist. Empty when planning can go ahead.
std::vector<std::string> planProblems(const PlanInput& input);

// Target states per channel key.
std::map<std::string, ChannelState> targets(const PlanInput& input);

Plan planShutdown(const PlanInput& input);
Plan planRecovery(const PlanInput& input);

}  // namespace pi0::stability
