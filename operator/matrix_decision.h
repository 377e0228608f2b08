// What a ShutdownMatrix does now, as a pure function of its spec, what its status remembers
// (the level, since when the load has been calm, when the last action was taken), the load and
// the channels: the new level, the published plan, and the one shutdown step to take now (one
// per step interval) or the restores that may run now (independent channels in parallel).
// A DryRun matrix gets the same plan and nothing to do.
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
};

// `load` is nullopt when it cannot be measured (no agent answers): the matrix holds and takes
// no action in either direction.
MatrixDecision decideMatrix(const stability::MatrixSpec& matrix, const MatrixMemory& memory,
                            std::optional<double> load,
                            const std::vector<stability::PlannedChannel>& channels, SteadyTime now);

}  // namespace pi0::op
