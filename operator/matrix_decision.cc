#include "matrix_decision.h"

#include <algorithm>
#include <cstdio>

#include "common/format.h"

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
                            const std::vector<stability::PlannedChannel>& channels, SteadyTime now,
                            std::optional<double> anticipatedLoad) {
  MatrixDecision d;
  d.level = memory.level;
  if (!load) {
    d.phase = Phase::kHolding;
    d.message = "the load cannot be measured (no agent has fresh data): holding";
    return d;
  }
  // The level machine sees the larger of the load and the anticipated load (see the header).
  const bool anticipating = matrix.anticipationSeconds > 0 && anticipatedLoad;
  const double effective = anticipating ? std::max(*load, *anticipatedLoad) : *load;
  d.level = stability::nextLevel(matrix.levels, matrix.hysteresis, memory.level, effective, now);
  const int loadLevel = stability::rawLevel(matrix.levels, *load);
  const bool effectiveEarns = stability::rawLevel(matrix.levels, effective) >= d.level.index;
  if (anticipating && effectiveEarns && loadLevel < d.level.index && d.level.index > 0) {
    d.anticipated = true;
    d.anticipatedRise = d.level.index > memory.level.index;
    const auto& crossed = matrix.levels[static_cast<std::size_t>(d.level.index - 1)];
    char text[240];
    std::snprintf(text, sizeof text,
                  "Anticipated: forecast load %.2f (lead %d s) is above %s's bound %.2f; the load "
                  "%.2f alone is at level %s",
                  *anticipatedLoad, matrix.anticipationSeconds, crossed.name.c_str(),
                  crossed.upperBound.value_or(1.0), *load,
                  matrix.levels[static_cast<std::size_t>(loadLevel)].name.c_str());
    d.anticipation = text;
  }
  const stability::PlanInput input{&matrix, channels, d.level.index, effective};

  const auto shutdown = stability::planShutdown(input);
  d.stability = shutdown.stability;
  d.waiting = shutdown.waiting;
  if (!shutdown.steps.empty()) {
    d.plan = shutdown.steps;
    const auto interval = std::chrono::seconds(matrix.stepIntervalSeconds);
    const bool due = !memory.lastActionAt || now - *memory.lastActionAt >= interval;
    // A step is taken only while the load still earns the level: once it is under the bound
    // of the level below, the sequence stops there (the level itself falls only after the
    // dwell, and then recovery begins).
    const bool earned = effectiveEarns;
    const auto& level = matrix.levels[static_cast<std::size_t>(d.level.index)];
    char text[400];
    // With a forecast, "load" in these lines is the larger of the two the level follows.
    const std::string loadText = anticipating && *anticipatedLoad > *load
                                     ? fixed(*load) + " (forecast " + fixed(*anticipatedLoad) + ")"
                                     : fixed(*load);
    if (!earned) {
      const auto& below = matrix.levels[static_cast<std::size_t>(d.level.index - 1)];
      std::snprintf(text, sizeof text,
                    "load %s at level %s is under %s's bound %.2f: no further step while it "
                    "stays there",
                    loadText.c_str(), level.name.c_str(), below.name.c_str(),
                    below.upperBound.value_or(1.0));
    } else if (d.anticipated) {
      std::snprintf(text, sizeof text, "%s: %zu step(s) to take%s", d.anticipation.c_str(),
                    d.plan.size(), due ? "" : ", waiting for the step interval");
      for (auto& step : d.plan)
        step.reason += " (anticipated)";
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
  d.message = d.anticipated ? d.anticipation + ": nothing to do" : std::string(text);
  return d;
}

}  // namespace pi0::op
