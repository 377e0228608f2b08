// What a ShutdownMatrix should do next, as pure functions of the matrix, the channels' state,
// the current level and the load (DESIGN.md "Shutdown and recovery"):
//
// - The target of a channel at level i: Active for anything critical (a critical row, a
//   critical Channel, or anything a critical channel depends on, transitively); for a listed
//   channel, the action of its cell at the highest level ≤ i (a cell's action holds at higher
//   levels until a later cell changes it); for an unlisted channel above the first level,
//   Degraded when its CPO is below ℓ (GDO), and, once Degraded, Degraded for as long as the
//   level stays above the first, whatever its CPO and ℓ do then: GDO's decisions inherit the
//   level's hysteresis (margin and dwell), so a channel whose CPO sits near ℓ is not degraded
//   and restored by turns. New GDO picks still need CPO < ℓ; the restore comes when the level
//   falls back to the first. Inactive for the least reliable channels when SAO is below the
//   stability threshold, as many as it takes to reach it — and none when shutting down every
//   channel it may pick still cannot (the channels that must stay up bound SAO below the
//   threshold): Plan::stability says which, and why. The trigger judges SAO as if every
//   channel were up, so a channel it shut down stays down while bringing it back would put SAO
//   under the threshold again.
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

// Whether the stability trigger (SAO below the matrix's stabilityThreshold) can be met by
// shutting channels down, and what it does about it.
struct StabilityOutlook {
  double sao = 1;        // now, over the active channels
  double threshold = 0;  // the matrix's stabilityThreshold
  // The most SAO can reach by shutting down every channel the trigger may pick: the product
  // over the active channels that must stay up (critical ones, what they depend on, channels
  // without targets). 1 when none is less than fully reliable.
  double bound = 1;
  // SAO is at or above the threshold, or the bound is (shutdowns can get it there). When false,
  // the trigger shuts nothing down: it would lose channels and still miss the threshold.
  bool reachable = true;
  // One sentence for a status condition, e.g. "stability 0.620 is below the threshold 0.900
  // and cannot reach it: the channels that must stay up (shop/db 0.620) bound it at 0.620; no
  // channel is shut down for stability".
  std::string explanation;
};

struct Plan {
  std::vector<PlanStep> steps;       // in order; for recovery, the ones that may run now
  std::vector<std::string> waiting;  // why other changes cannot happen yet
  StabilityOutlook stability;        // the same in a shutdown and a recovery plan of one input
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
