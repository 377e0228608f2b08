#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <vector>

#include "fakes/fake_clock.h"
#include "fleet/breaker.h"

using namespace pi0;
using namespace pi0::fleet;
using namespace std::chrono_literals;

namespace {

enum class Step { kAllow, kSuccess, kFailure, kAbandon, kAdvance };

struct Row {
  Step step;
  Clock::duration advance = {};  // for kAdvance
  std::optional<bool> allowed;   // for kAllow: what allow() must answer
  BreakerState state;            // after the step
  int failures;                  // consecutive failures after the step
};

void runTable(CircuitBreaker& breaker, testing::FakeClock& clock, const std::vector<Row>& rows) {
  int line = 0;
  for (const Row& row : rows) {
    ++line;
    CAPTURE(line);
    switch (row.step) {
      case Step::kAllow:
        REQUIRE(row.allowed);
        CHECK(breaker.allow(clock.now()) == *row.allowed);
        break;
      case Step::kSuccess:
        breaker.onSuccess();
        break;
      case Step::kFailure:
        breaker.onFailure(clock.now());
        break;
      case Step::kAbandon:
        breaker.onAbandoned();
        break;
      case Step::kAdvance:
        clock.advance(row.advance);
        break;
    }
    CHECK(breakerStateName(breaker.state()) == breakerStateName(row.state));
    CHECK(breaker.consecutiveFailures() == row.failures);
  }
}

constexpr auto kClosed = BreakerState::kClosed;
constexpr auto kOpen = BreakerState::kOpen;
constexpr auto kHalfOpen = BreakerState::kHalfOpen;

}  // namespace

TEST_CASE("the breaker with defaults: opens after 3 failures, half-opens after 30 s") {
  testing::FakeClock clock;
  CircuitBreaker breaker;
  runTable(breaker, clock,
           {
               {Step::kAllow, {}, true, kClosed, 0},
               {Step::kFailure, {}, {}, kClosed, 1},
               {Step::kFailure, {}, {}, kClosed, 2},
               {Step::kSuccess, {}, {}, kClosed, 0},  // a success resets the count
               {Step::kFailure, {}, {}, kClosed, 1},
               {Step::kFailure, {}, {}, kClosed, 2},
               {Step::kAllow, {}, true, kClosed, 2},
               {Step::kFailure, {}, {}, kOpen, 3},  // the third in a row opens it
               {Step::kAllow, {}, false, kOpen, 3},
               {Step::kAdvance, 29s, {}, kOpen, 3},
               {Step::kAllow, {}, false, kOpen, 3},
               {Step::kAdvance, 1s, {}, kOpen, 3},       // the state changes only on allow()
               {Step::kAllow, {}, true, kHalfOpen, 3},   // the one trial
               {Step::kAllow, {}, false, kHalfOpen, 3},  // while the trial is out
               {Step::kFailure, {}, {}, kOpen, 4},       // the trial failed: open again
               {Step::kAdvance, 29s, {}, kOpen, 4},
               {Step::kAllow, {}, false, kOpen, 4},  // the cool-down counts from the reopening
               {Step::kAdvance, 1s, {}, kOpen, 4},
               {Step::kAllow, {}, true, kHalfOpen, 4},
               {Step::kSuccess, {}, {}, kClosed, 0},  // the trial succeeded: closed
               {Step::kAllow, {}, true, kClosed, 0},
               {Step::kAllow, {}, true, kClosed, 0},  // closed: every request goes
           });
}

TEST_CASE("an abandoned trial lets another one out") {
  testing::FakeClock clock;
  CircuitBreaker breaker(BreakerOptions{1, 10s});
  runTable(breaker, clock,
           {
               {Step::kFailure, {}, {}, kOpen, 1},  // threshold 1
               {Step::kAdvance, 10s, {}, kOpen, 1},
               {Step::kAllow, {}, true, kHalfOpen, 1},
               {Step::kAllow, {}, false, kHalfOpen, 1},
               {Step::kAbandon, {}, {}, kHalfOpen, 1},
               {Step::kAllow, {}, true, kHalfOpen, 1},
               {Step::kSuccess, {}, {}, kClosed, 0},
           });
}

TEST_CASE("retryAt says when an open breaker lets out its trial") {
  testing::FakeClock clock;
  CircuitBreaker breaker;
  CHECK_FALSE(breaker.retryAt());
  for (int i = 0; i < 3; ++i)
    breaker.onFailure(clock.now());
  REQUIRE(breaker.retryAt());
  CHECK(*breaker.retryAt() == clock.now() + 30s);
}

TEST_CASE("a breaker opened at the clock's epoch waits the whole cool-down") {
  // steady_clock reads its epoch on a machine that has just booted: an opening at that instant
  // is an opening like any other, not "never opened".
  testing::FakeClock clock;
  REQUIRE(clock.now() == Clock::time_point{});
  CircuitBreaker breaker(BreakerOptions{1, 30s});
  CHECK(breaker.allow(clock.now()));
  breaker.onFailure(clock.now());
  REQUIRE(breaker.state() == BreakerState::kOpen);
  CHECK(breaker.retryAt() == Clock::time_point{} + 30s);
  CHECK_FALSE(breaker.allow(clock.now()));
  clock.advance(30s - 1ns);
  CHECK_FALSE(breaker.allow(clock.now()));
  clock.advance(1ns);
  CHECK(breaker.allow(clock.now()));
  CHECK(breaker.state() == BreakerState::kHalfOpen);
  CHECK_FALSE(breaker.retryAt());  // only an open breaker has one
}

TEST_CASE("nonsense options are made sane: threshold at least 1, cool-down at least 0") {
  testing::FakeClock clock;
  CircuitBreaker breaker(BreakerOptions{0, -5s});
  breaker.onFailure(clock.now());
  CHECK(breaker.state() == BreakerState::kOpen);
  CHECK(breaker.allow(clock.now()));  // cool-down 0: the trial goes at once
  CHECK(breaker.state() == BreakerState::kHalfOpen);
}

TEST_CASE("node health after missed polls (seed 001 P3)") {
  struct Case {
    int misses;
    NodeHealth health;
    NodeHealth strict;  // with suspectAfter 1, failedAfter 2
  };
  const Case cases[] = {
      {0, NodeHealth::kHealthy, NodeHealth::kHealthy},
      {1, NodeHealth::kHealthy, NodeHealth::kSuspect},
      {2, NodeHealth::kSuspect, NodeHealth::kFailed},
      {3, NodeHealth::kFailed, NodeHealth::kFailed},
      {10, NodeHealth::kFailed, NodeHealth::kFailed},
  };
  for (const Case& c : cases) {
    CAPTURE(c.misses);
    CHECK(nodeHealthName(healthAfter(c.misses)) == nodeHealthName(c.health));
    CHECK(nodeHealthName(healthAfter(c.misses, {1, 2})) == nodeHealthName(c.strict));
  }
}
