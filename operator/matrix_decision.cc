#include "matrix_decision.h"

#include <cstdio>

namespace pi0::op {

const char* phaseName(Phase phase) {
  switch (phase) {
    case Phase::kIdle:
      return "Idle";
    case Phase::kShuttingDown:
      return "ShuttingDown";
    case Phase::kHolding:
      return "Holding";
    case Phase::kRestoring:
      return "Restoring";
  }
  return "Idle";
}

MatrixDecision decideMatrix(const stability::MatrixSpec& matrix, const MatrixMemory& memory,
                            std::optional<double> load,
                            const std::vector<stability::PlannedChannel>& channels,
                            SteadyTime now) {
  MatrixDecision d;
  d.level = memory.level;
  if (!load) {
    d.phase = Phase::kHolding;
    d.message = "the load cannot be measured (no agent has fresh data): holding";
    return d;
  }
  d.level = stability::nextLevel(matrix.levels, matrix.hysteresis, memory.level, *load, now);
  const stability::PlanInput input{&matrix, channels, d.level.index, *load};

  const auto shutdown = stability::planShutdown(input);
  d.waiting = shutdown.waiting;
  if (!shutdown.steps.empty()) {
    d.plan = shutdown.steps;
    const auto interval = std::chrono::seconds(matrix.stepIntervalSeconds);
    const bool due = !memory.lastActionAt || now - *memory.lastActionAt >= interval;
    // A step is taken only while the load still earns the level: once it is under the bound
    // of the level below, the sequence stops there (the level itself falls only after the
    // dwell, and then recovery begins).
    const bool earned = stability::rawLevel(matrix.levels, *load) >= d.level.index;
    const auto& level = matrix.levels[static_cast<std::size_t>(d.level.index)];
    char text[200];
    if (!earned) {
      const auto& below = matrix.levels[static_cast<std::size_t>(d.level.index - 1)];
      std::snprintf(text, sizeof text,
                    "load %.2f at level %s is under %s's bound %.2f: no further step while it "
                    "stays there",
                    *load, level.name.c_str(), below.name.c_str(), below.upperBound.value_or(1.0));
    } else {
      std::snprintf(text, sizeof text, "load %.2f at level %s: %zu step(s) to take%s", *load,
                    level.name.c_str(), d.plan.size(),
                    due ? "" : ", waiting for the step interval");
    }
    d.message = text;
    d.phase = due && earned ? Phase::kShuttingDown : Phase::kHolding;
    if (due && earned && matrix.mode == stability::Mode::kEnforce) d.shutdownNow = d.plan.front();
    return d;
  }
  const auto recovery = stability::planRecovery(input);
  d.waiting.insert(d.waiting.end(), recovery.waiting.begin(), recovery.waiting.end());
  if (!recovery.steps.empty() || !recovery.waiting.empty()) {
    d.plan = recovery.steps;
    d.phase = Phase::kRestoring;
    d.message = std::to_string(recovery.steps.size()) + " restore(s) can start, " +
                std::to_string(recovery.waiting.size()) + " wait for their dependencies";
    if (matrix.mode == stability::Mode::kEnforce) d.restoreNow = recovery.steps;
    return d;
  }
  d.phase = Phase::kIdle;
  char text[96];
  std::snprintf(text, sizeof text, "load %.2f at level %s: nothing to do", *load,
                matrix.levels.empty()
                    ? "?"
                    : matrix.levels[static_cast<std::size_t>(d.level.index)].name.c_str());
  d.message = text;
  return d;
}

}  // namespace pi0::op
