#include <doctest/doctest.h>

#include "matrix_decision.h"

using namespace pi0;
using namespace pi0::op;
using stability::ChannelState;
using std::chrono::seconds;

namespace {

const SteadyTime t0 = SteadyTime{} + std::chrono::hours(10);

stability::MatrixSpec matrix() {
  stability::MatrixSpec m;
  m.name = "default";
  m.levels = {{"normal", 0.7}, {"elevated", 0.8}, {"high", 0.9}, {"critical", std::nullopt}};
  m.rows = {
      {{"shop", "batch"},
       false,
       {{"elevated", stability::Action::kDegrade, 0}, {"high", stability::Action::kShutdown, 0}}},
      {{"shop", "recs"},
       false,
       {{"elevated", stability::Action::kDegrade, 1}, {"high", stability::Action::kShutdown, 1}}}};
  m.stepIntervalSeconds = 30;
  m.hysteresis = {0.05, 60};
  return m;
}

stability::PlannedChannel channel(const std::string& name, double cpo,
                                  ChannelState state = ChannelState::kActive) {
  stability::PlannedChannel c;
  c.ref = {"shop", name};
  c.cpo = cpo;
  c.state = state;
  return c;
}

}  // namespace

TEST_CASE("one shutdown step per interval, in the planned order") {
  const auto m = matrix();
  std::vector<stability::PlannedChannel> channels = {channel("batch", 0.3), channel("recs", 0.5)};
  MatrixMemory memory;
  // The load crosses two levels at once: at level high both are shut down, batch first.
  auto d = decideMatrix(m, memory, 0.85, channels, t0);
  CHECK(d.level.index == 2);
  CHECK(d.phase == Phase::kShuttingDown);
  REQUIRE(d.plan.size() == 2);  // at level high the cells say Shutdown for both
  REQUIRE(d.shutdownNow);
  CHECK(d.shutdownNow->channel.name == "batch");
  CHECK(d.shutdownNow->action == stability::Action::kShutdown);

  // Taken; 10 s later the next step is not due yet.
  channels[0].state = ChannelState::kInactive;
  memory = {d.level, t0};
  d = decideMatrix(m, memory, 0.84, channels, t0 + seconds(10));
  CHECK(d.phase == Phase::kHolding);
  CHECK_FALSE(d.shutdownNow);
  CHECK(d.message.find("waiting for the step interval") != std::string::npos);
  // 30 s after the last action it is.
  d = decideMatrix(m, memory, 0.84, channels, t0 + seconds(30));
  REQUIRE(d.shutdownNow);
  CHECK(d.shutdownNow->channel.name == "recs");
}

TEST_CASE("the load falls under the bound: no more steps; after the dwell, restores") {
  const auto m = matrix();
  std::vector<stability::PlannedChannel> channels = {channel("batch", 0.3, ChannelState::kInactive),
                                                     channel("recs", 0.5)};
  MatrixMemory memory{{2, std::nullopt}, t0};
  // Still above elevated's bound (0.8): at level high recs is due for shutdown.
  auto d = decideMatrix(m, memory, 0.82, channels, t0 + seconds(30));
  CHECK(d.level.index == 2);
  REQUIRE(d.shutdownNow);
  CHECK(d.shutdownNow->channel.name == "recs");
  // 0.65: under elevated's bound, so the sequence stops although the level holds until the
  // dwell is over; the plan still shows what a rise would bring.
  d = decideMatrix(m, memory, 0.65, channels, t0 + seconds(30));
  CHECK(d.level.index == 2);
  CHECK_FALSE(d.shutdownNow);
  CHECK(d.phase == Phase::kHolding);
  CHECK(d.plan.size() == 1);
  CHECK(d.message ==
        "load 0.65 at level high is under elevated's bound 0.80: no further step while it stays "
        "there");
  // The calm lasts 60 s: the level falls to normal and batch comes back.
  memory.level = d.level;
  d = decideMatrix(m, memory, 0.6, channels, t0 + seconds(95));
  CHECK(d.level.index == 0);
  CHECK(d.phase == Phase::kRestoring);
  REQUIRE(d.restoreNow.size() == 1);
  CHECK(d.restoreNow[0].channel.name == "batch");
  // Both down: both come back, highest CPO first.
  channels[1].state = ChannelState::kInactive;
  d = decideMatrix(m, memory, 0.6, channels, t0 + seconds(95));
  REQUIRE(d.restoreNow.size() == 2);
  CHECK(d.restoreNow[0].channel.name == "recs");
  CHECK(d.restoreNow[1].channel.name == "batch");
}

TEST_CASE("DryRun publishes the plan and does nothing; an unknown load holds") {
  auto m = matrix();
  m.mode = stability::Mode::kDryRun;
  const std::vector<stability::PlannedChannel> channels = {channel("batch", 0.3),
                                                           channel("recs", 0.5)};
  auto d = decideMatrix(m, {}, 0.75, channels, t0);
  CHECK(d.plan.size() == 2);
  CHECK_FALSE(d.shutdownNow);
  d = decideMatrix(m, {{1, std::nullopt}, std::nullopt}, std::nullopt, channels, t0);
  CHECK(d.phase == Phase::kHolding);
  CHECK(d.level.index == 1);  // unchanged
  CHECK(d.plan.empty());
  CHECK(d.message.find("cannot be measured") != std::string::npos);
}

TEST_CASE("nothing to do at the first level") {
  const auto d = decideMatrix(matrix(), {}, 0.5, {channel("batch", 0.3)}, t0);
  CHECK(d.phase == Phase::kIdle);
  CHECK(d.plan.empty());
  CHECK(d.message == "load 0.50 at level normal: nothing to do");
}

TEST_CASE("anticipation: the forecast load raises the level early, and says why") {
  auto m = matrix();
  m.anticipationSeconds = 45;
  const std::vector<stability::PlannedChannel> channels = {channel("batch", 0.3),
                                                           channel("recs", 0.5)};
  // The load 0.65 is at level normal; the forecast 45 s further expects 0.83, past elevated's
  // bound 0.8: the matrix goes to level high now, and acts on it.
  auto d = decideMatrix(m, {}, 0.65, channels, t0, 0.83);
  CHECK(d.level.index == 2);
  CHECK(d.anticipated);
  CHECK(d.anticipatedRise);
  CHECK(d.anticipation ==
        "Anticipated: forecast load 0.83 (lead 45 s) is above elevated's bound 0.80; the load "
        "0.65 alone is at level normal");
  CHECK(d.message == d.anticipation + ": 2 step(s) to take");
  REQUIRE(d.shutdownNow);
  CHECK(d.shutdownNow->channel.name == "batch");
  CHECK(d.shutdownNow->reason.ends_with(" (anticipated)"));

  // The same numbers with anticipation off: the anticipated load is ignored.
  m.anticipationSeconds = 0;
  d = decideMatrix(m, {}, 0.65, channels, t0, 0.83);
  CHECK(d.level.index == 0);
  CHECK_FALSE(d.anticipated);
  CHECK_FALSE(d.shutdownNow);
  m.anticipationSeconds = 45;

  // No forecast (nullopt, as for a Prometheus load signal): the load alone decides.
  d = decideMatrix(m, {}, 0.65, channels, t0, std::nullopt);
  CHECK(d.level.index == 0);
  CHECK_FALSE(d.anticipated);

  // The load itself earns the level: not Anticipated, whatever the forecast says.
  d = decideMatrix(m, {}, 0.85, channels, t0, 0.86);
  CHECK(d.level.index == 2);
  CHECK_FALSE(d.anticipated);
  CHECK_FALSE(d.anticipatedRise);
  CHECK(d.message == "load 0.85 at level high: 2 step(s) to take");

  // Already at high by the forecast: held there, still Anticipated, but no new rise.
  d = decideMatrix(m, {{2, std::nullopt}, std::nullopt}, 0.66, channels, t0, 0.84);
  CHECK(d.level.index == 2);
  CHECK(d.anticipated);
  CHECK_FALSE(d.anticipatedRise);
}

TEST_CASE("anticipation: a forecast that does not come true falls back under the dwell") {
  auto m = matrix();
  m.anticipationSeconds = 45;
  std::vector<stability::PlannedChannel> channels = {channel("batch", 0.3), channel("recs", 0.5)};
  // Risen on the forecast; batch shut down at t0.
  auto d = decideMatrix(m, {}, 0.65, channels, t0, 0.83);
  REQUIRE(d.level.index == 2);
  REQUIRE(d.shutdownNow);
  channels[0].state = ChannelState::kInactive;
  MatrixMemory memory{d.level, t0};

  // The rise does not come: load and forecast settle at 0.55 and 0.58, under the calm mark
  // (elevated's bound minus the margin, 0.75). No further step although the step interval has
  // passed, and the level holds until the dwell (60 s) is over.
  d = decideMatrix(m, memory, 0.55, channels, t0 + seconds(30), 0.58);
  CHECK(d.level.index == 2);
  CHECK_FALSE(d.anticipated);  // neither the load nor the forecast earns high any more
  CHECK_FALSE(d.shutdownNow);
  CHECK(d.phase == Phase::kHolding);
  CHECK(d.message ==
        "load 0.55 (forecast 0.58) at level high is under elevated's bound 0.80: no further step "
        "while it stays there");
  REQUIRE(d.level.calmSince);
  memory.level = d.level;
  d = decideMatrix(m, memory, 0.55, channels, t0 + seconds(60), 0.58);
  CHECK(d.level.index == 2);  // 30 s of calm: not yet
  memory.level = d.level;
  // The forecast bumps over the calm mark once: the calm starts again, as it would for the load.
  d = decideMatrix(m, memory, 0.55, channels, t0 + seconds(70), 0.78);
  CHECK(d.level.index == 2);
  CHECK_FALSE(d.level.calmSince);
  CHECK_FALSE(d.shutdownNow);  // 0.78 earns elevated only
  memory.level = d.level;
  d = decideMatrix(m, memory, 0.55, channels, t0 + seconds(75), 0.58);
  memory.level = d.level;
  d = decideMatrix(m, memory, 0.55, channels, t0 + seconds(130), 0.58);
  CHECK(d.level.index == 2);  // 55 s since the calm began again
  memory.level = d.level;
  d = decideMatrix(m, memory, 0.55, channels, t0 + seconds(135), 0.58);
  CHECK(d.level.index == 0);  // 60 s: back to normal, batch comes back
  CHECK(d.phase == Phase::kRestoring);
  REQUIRE(d.restoreNow.size() == 1);
  CHECK(d.restoreNow[0].channel.name == "batch");
}
