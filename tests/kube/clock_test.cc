#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <stop_token>
#include <thread>

#include "common/clock.h"
#include "fakes/fake_clock.h"

using namespace std::chrono_literals;
using pi0::Clock;
using pi0::testing::FakeClock;

TEST_CASE("system clock: a deadline in the past returns at once, a stop ends a long sleep") {
  Clock& clock = pi0::systemClock();
  CHECK(clock.sleepUntil(clock.now() - 1s, {}));
  const Clock::time_point start = clock.now();
  CHECK(clock.sleepUntil(start + 2ms, {}));
  CHECK(clock.now() >= start + 2ms);

  std::stop_source stop;
  auto slept = std::async(std::launch::async,
                          [&] { return clock.sleepUntil(clock.now() + 1h, stop.get_token()); });
  stop.request_stop();
  CHECK_FALSE(slept.get());

  std::stop_source already;
  already.request_stop();
  CHECK_FALSE(clock.sleepUntil(clock.now() + 1h, already.get_token()));
}

TEST_CASE("fake clock: time moves only with advance(), sleepers wake at their deadline") {
  FakeClock clock;
  const Clock::time_point t0 = clock.now();
  CHECK(clock.now() == t0);
  CHECK(clock.sleepUntil(t0, {}));  // not in the future: no wait

  auto slept = std::async(std::launch::async, [&] { return clock.sleepUntil(t0 + 10s, {}); });
  REQUIRE(clock.awaitSleeper(t0 + 10s));
  clock.advance(9s);
  // Still asleep: the sleeper is registered until its deadline.
  REQUIRE(clock.awaitSleeper(t0 + 10s));
  CHECK(slept.wait_for(0s) == std::future_status::timeout);
  clock.advance(1s);
  CHECK(slept.get());
  CHECK(clock.awaitSleepers(0));
  CHECK(clock.now() == t0 + 10s);
}

TEST_CASE("fake clock: a stop token ends a sleep without moving time") {
  FakeClock clock;
  std::stop_source stop;
  auto slept = std::async(std::launch::async,
                          [&] { return clock.sleepUntil(clock.now() + 1h, stop.get_token()); });
  REQUIRE(clock.awaitSleepers(1));
  stop.request_stop();
  CHECK_FALSE(slept.get());
  CHECK(clock.sleepers() == 0);
}
