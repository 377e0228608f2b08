// What a ShutdownMatrix does now, as a pure function of its spec, what its status remembers
// (the level, since when the load has been calm, when the last action was taken), the load and
// the channels: the new level, the published plan, and the one shutdown step to take now (one
// per step interval) or the restores that may run now (independent channels in parallel).
// A DryRun matrix gets the same plan and nothing to do.
//
// Anticipation (spec.anticipationSeconds > 0): the caller also passes the anticipated load, the
// load the nodes' forecasts expect that many seconds past their horizon (fleet/load.h). The level
// machine (stability/levels.h) is fed the larger of the two, so the level rises as soon as the
// anticipated load passes a bound, and falls only after the larger of the two has stayed calm
// for the dwell: a forecast that does not come true lets the level fall back under the same
// rules. Shutdown steps are taken while that larger load earns the level. The decision says when
// the forecast alone earns the level (cause Anticipated) and why.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "stability/levels.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::op {

using SteadyTime = std::chrono::steady_clock::time_point;

struct MatrixMemory {
  stability::LevelState level;
  std::optional<SteadyTime> lastActionAt;
};

enum class Phase { kIdle, kShuttingDown, kHolding, kRestoring };
const char* phaseName(Phase phase);

struct MatrixDecision {
  stability::LevelState level;
  Phase phase = Phase::kIdle;
  std::vector<stability::PlanStep> plan;  // what it would do next, in order (for the status)
  std::vector<std::string> waiting;       // why other changes wait
  std::optional<stability::PlanStep> shutdownNow;  // the step to take now, if any
  std::vector<stability::PlanStep> restoreNow;     // the restores to start now
  std::string message;                             // one line for the status and logs
  // The level is above what the load alone earns, and the anticipated load earns it.
  bool anticipated = false;
  // This decision raised the level beyond what the load alone would have (an Anticipated Event).
  bool anticipatedRise = false;
  // When `anticipated`: why, e.g. "Anticipated: forecast load 0.83 (lead 45 s) is above
  // elevated's bound 0.80; the load 0.74 alone is at level elevated".
  std::string anticipation;
  // Whether the stability trigger can meet spec.stabilityThreshold, and why (the planner's).
  stability::StabilityOutlook stability;
};

// `load` is nullopt when it cannot be measured (no agent answers): the matrix holds and takes
// no action in either direction. `anticipatedLoad` is nullopt when anticipation is off or has no
// forecast (a Prometheus load signal); it is ignored while matrix.anticipationSeconds is 0.
MatrixDecision decideMatrix(const stability::MatrixSpec& matrix, const MatrixMemory& memory,
                            std::optional<double> load,
                            const std::vector<stability::PlannedChannel>& channels, SteadyTime now,
                            std::optional<double> anticipatedLoad = std::nullopt);

}  // namespace pi0::op
