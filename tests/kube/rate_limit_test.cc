#include <doctest/doctest.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <future>
#include <limits>
#include <stop_token>
#include <string>
#include <vector>

#include "fakes/fake_clock.h"
#include "kube/rate_limit.h"

using namespace std::chrono_literals;
using pi0::Clock;
using pi0::kube::Backoff;
using pi0::kube::ControllerRateLimiter;
using pi0::kube::exponentialDelay;
using pi0::kube::ItemExponentialBackoff;
using pi0::kube::TokenBucket;
using pi0::testing::FakeClock;
using std::chrono::nanoseconds;

TEST_CASE("token bucket: the burst is spent at once, then one token per 1/qps") {
  // 4 QPS: a token every 250 ms; the bucket holds 3.
  FakeClock clock;
  TokenBucket bucket(4, 3, clock);
  struct Step {
    nanoseconds advance;
    bool accepted;
  };
  const std::vector<Step> steps = {
      {0ms, true},    {0ms, true},  {0ms, true},  {0ms, false},  // the burst, then empty
      {249ms, false},                                            // 0.996 tokens
      {1ms, true},    {0ms, false},                              // 250 ms: one token
      {500ms, true},  {0ms, true},  {0ms, false},                // 500 ms: two tokens
      {10s, true},    {0ms, true},  {0ms, true},  {0ms, false},  // refill stops at the burst
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    CAPTURE(i);
    clock.advance(steps[i].advance);
    CHECK(bucket.tryAccept() == steps[i].accepted);
  }
}

TEST_CASE("token bucket: REST client defaults are 30 at once, then 20 per second") {
  FakeClock clock;
  TokenBucket bucket(TokenBucket::kRestClientQps, TokenBucket::kRestClientBurst, clock);
  for (int i = 0; i < 30; ++i)
    CHECK(bucket.tryAccept());
  CHECK_FALSE(bucket.tryAccept());
  CHECK(bucket.reserve() == 50ms);
  CHECK(bucket.reserve() == 100ms);
}

TEST_CASE("token bucket: reserve() takes the token and says how long to wait for it") {
  FakeClock clock;
  TokenBucket bucket(4, 2, clock);
  CHECK(bucket.reserve() == 0ms);
  CHECK(bucket.reserve() == 0ms);
  CHECK(bucket.reserve() == 250ms);  // balance -1
  CHECK(bucket.reserve() == 500ms);  // -2: queued behind the previous reservation
  CHECK(bucket.reserve() == 750ms);  // -3
  clock.advance(250ms);              // -2
  CHECK(bucket.reserve() == 750ms);  // -3 again, 250 ms later
  CHECK_FALSE(bucket.tryAccept());   // a failed tryAccept takes nothing...
  clock.advance(1s);                 // ...so 4 new tokens bring the balance to 1
  CHECK(bucket.tryAccept());
  CHECK_FALSE(bucket.tryAccept());
}

TEST_CASE("token bucket: wait() sleeps on the clock until the token is due") {
  FakeClock clock;
  TokenBucket bucket(4, 1, clock);
  const Clock::time_point t0 = clock.now();
  CHECK(bucket.wait({}));  // the burst token: no sleep
  CHECK(clock.sleepers() == 0);

  auto waited = std::async(std::launch::async, [&] { return bucket.wait({}); });
  REQUIRE(clock.awaitSleeper(t0 + 250ms));
  clock.advance(249ms);
  REQUIRE(clock.awaitSleeper(t0 + 250ms));  // not yet
  clock.advance(1ms);
  CHECK(waited.get());
}

TEST_CASE("token bucket: a stopped wait() gives its token back") {
  FakeClock clock;
  TokenBucket bucket(4, 1, clock);
  REQUIRE(bucket.tryAccept());
  const Clock::time_point t0 = clock.now();

  std::stop_source stop;
  auto waited = std::async(std::launch::async, [&] { return bucket.wait(stop.get_token()); });
  REQUIRE(clock.awaitSleeper(t0 + 250ms));
  stop.request_stop();
  CHECK_FALSE(waited.get());
  CHECK_FALSE(bucket.tryAccept());
  clock.advance(250ms);
  CHECK(bucket.tryAccept());  // the token the stopped wait() had reserved is back

  // Stopped before it starts: takes nothing.
  clock.advance(250ms);
  std::stop_source stopped;
  stopped.request_stop();
  CHECK_FALSE(bucket.wait(stopped.get_token()));
  CHECK(bucket.tryAccept());
}

TEST_CASE("token bucket: a stopped wait() keeps the tokens promised to later reservations") {
  FakeClock clock;
  TokenBucket bucket(4, 1, clock);
  REQUIRE(bucket.tryAccept());
  const Clock::time_point t0 = clock.now();

  std::stop_source stop;
  auto waited = std::async(std::launch::async, [&] { return bucket.wait(stop.get_token()); });
  REQUIRE(clock.awaitSleeper(t0 + 250ms));
  CHECK(bucket.reserve() == 500ms);  // behind the waiter
  stop.request_stop();
  CHECK_FALSE(waited.get());
  // Restoring the waiter's token would break the 500 ms promise; the next one still waits
  // behind both.
  CHECK(bucket.reserve() == 750ms);
}

TEST_CASE("token bucket: infinite qps never limits") {
  FakeClock clock;
  TokenBucket bucket(std::numeric_limits<double>::infinity(), 1, clock);
  for (int i = 0; i < 1000; ++i)
    REQUIRE(bucket.tryAccept());
  CHECK(bucket.reserve() == 0ns);
  CHECK(bucket.wait({}));
  CHECK(clock.sleepers() == 0);
}

TEST_CASE("exponential delay: base·2ⁿ capped, no overflow") {
  struct Row {
    nanoseconds base;
    nanoseconds max;
    int n;
    nanoseconds expected;
  };
  constexpr nanoseconds kMaxNs = nanoseconds::max();
  const std::vector<Row> rows = {
      {5ms, 1000s, 0, 5ms},
      {5ms, 1000s, 1, 10ms},
      {5ms, 1000s, 2, 20ms},
      {5ms, 1000s, 3, 40ms},
      {5ms, 1000s, 10, 5120ms},
      {5ms, 1000s, 17, 655360ms},  // 655.36 s, the last below the cap
      {5ms, 1000s, 18, 1000s},     // 1310.72 s, capped
      {5ms, 1000s, 62, 1000s},
      {5ms, 1000s, 63, 1000s},
      {5ms, 1000s, 64, 1000s},
      {5ms, 1000s, 100, 1000s},
      {5ms, 1000s, INT_MAX, 1000s},
      {5ms, 1000s, -1, 5ms},
      {1ns, kMaxNs, 62, nanoseconds(std::int64_t{1} << 62)},
      {1ns, kMaxNs, 63, kMaxNs},
      {3ns, kMaxNs, 61, nanoseconds(std::int64_t{3} << 61)},
      {3ns, kMaxNs, 62, kMaxNs},  // 3·2⁶² does not fit in 64 bits
      {0ns, 1000s, 5, 0ns},
      {2000s, 1000s, 0, 1000s},
  };
  for (const Row& row : rows) {
    CAPTURE(row.base.count());
    CAPTURE(row.n);
    CHECK(exponentialDelay(row.base, row.max, row.n) == row.expected);
  }
}

TEST_CASE("item exponential backoff: 5 ms·2ⁿ per key, capped at 1000 s, reset by forget") {
  ItemExponentialBackoff backoff;
  CHECK(backoff.retries("a") == 0);
  const std::vector<nanoseconds> first = {5ms, 10ms, 20ms, 40ms, 80ms, 160ms};
  for (nanoseconds expected : first)
    CHECK(backoff.when("a") == expected);
  CHECK(backoff.retries("a") == 6);
  CHECK(backoff.when("b") == 5ms);  // keys are independent
  CHECK(backoff.retries("b") == 1);

  nanoseconds previous = 160ms;
  for (int n = 6; n <= 100; ++n) {
    const nanoseconds delay = backoff.when("a");
    CAPTURE(n);
    REQUIRE(delay >= previous);
    REQUIRE(delay <= 1000s);
    previous = delay;
  }
  CHECK(previous == 1000s);  // n = 100
  CHECK(backoff.retries("a") == 101);

  backoff.forget("a");
  CHECK(backoff.retries("a") == 0);
  CHECK(backoff.when("a") == 5ms);
  CHECK(backoff.retries("b") == 1);
}

TEST_CASE("controller rate limiter: the larger of per-key backoff and the 10 QPS bucket") {
  FakeClock clock;
  ControllerRateLimiter limiter(clock);
  // 100 first failures of distinct keys: the bucket's burst covers them, the key's 5 ms rules.
  for (int i = 0; i < 100; ++i) {
    CAPTURE(i);
    std::string key = "k";  // appended: GCC 12 warns (-Wrestrict, falsely) on "k" + ...
    key += std::to_string(i);
    REQUIRE(limiter.when(key) == 5ms);
  }
  struct Step {
    nanoseconds advance;
    std::string key;
    nanoseconds expected;
  };
  const std::vector<Step> steps = {
      // The bucket is empty: each failure waits 100 ms longer than the previous one.
      {0ms, "k100", 100ms},  {0ms, "k101", 200ms}, {0ms, "hot", 300ms},  // per key 5 ms
      {0ms, "hot", 400ms},                                               // 10 ms
      {0ms, "hot", 500ms},                                               // 20 ms
      {0ms, "hot", 600ms},                                               // 40 ms
      {0ms, "hot", 700ms},                                               // 80 ms
      {0ms, "hot", 800ms},                                               // 160 ms
      {0ms, "hot", 900ms},                                               // 320 ms
      {0ms, "hot", 1000ms},                                              // 640 ms
      {0ms, "hot", 1280ms},   // bucket 1100 ms: the key's backoff overtakes it
      {0ms, "hot", 2560ms},   // bucket 1200 ms
      {100s, "hot", 5120ms},  // bucket full again; per key 5 ms·2¹⁰
      {0ms, "k100", 10ms},    // its second failure
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    CAPTURE(i);
    clock.advance(steps[i].advance);
    CHECK(limiter.when(steps[i].key) == steps[i].expected);
  }
  CHECK(limiter.retries("hot") == 11);
  CHECK(limiter.retries("k100") == 2);
  limiter.forget("hot");
  CHECK(limiter.retries("hot") == 0);
  CHECK(limiter.when("hot") == 5ms);
  CHECK(limiter.retries("k100") == 2);
}

namespace {

// The nominal delays of the reflector's backoff: 0.8 s doubling, capped at 30 s.
const std::vector<nanoseconds> kNominal = {800ms,   1600ms, 3200ms, 6400ms, 12800ms,
                                           25600ms, 30s,    30s,    30s,    30s};

nanoseconds jitterCap(nanoseconds d) {
  return std::min<nanoseconds>(2 * d, 30s);
}

}  // namespace

TEST_CASE("backoff: jittered doubling from 0.8 s to 30 s, reset after 2 quiet minutes") {
  nanoseconds firstMin = nanoseconds::max();
  nanoseconds firstMax = nanoseconds::min();
  for (std::uint32_t seed = 0; seed < 500; ++seed) {
    CAPTURE(seed);
    FakeClock clock;
    Backoff backoff(clock, seed);
    for (std::size_t i = 0; i < kNominal.size(); ++i) {
      CAPTURE(i);
      const nanoseconds delay = backoff.next();
      REQUIRE(delay >= kNominal[i]);
      REQUIRE(delay <= jitterCap(kNominal[i]));
      if (i == 0) {
        firstMin = std::min(firstMin, delay);
        firstMax = std::max(firstMax, delay);
      }
      clock.advance(delay + 60s);  // the retry ran a minute and failed again: no reset
    }
    clock.advance(2min + 1ns);
    const nanoseconds afterQuiet = backoff.next();
    CHECK(afterQuiet >= 800ms);
    CHECK(afterQuiet <= 1600ms);
  }
  // The jitter spreads the first delay over [0.8 s, 1.6 s] rather than always returning 0.8 s.
  CHECK(firstMin < 900ms);
  CHECK(firstMax > 1500ms);
}

TEST_CASE("backoff: exactly 2 minutes does not reset; reset() does") {
  FakeClock clock;
  Backoff backoff(clock, 7);
  CHECK(backoff.next() <= 1600ms);
  clock.advance(2min);
  const nanoseconds second = backoff.next();
  CHECK(second >= 1600ms);
  CHECK(second <= 3200ms);
  backoff.reset();
  const nanoseconds afterReset = backoff.next();
  CHECK(afterReset >= 800ms);
  CHECK(afterReset <= 1600ms);
}

TEST_CASE("backoff: the same seed gives the same delays") {
  FakeClock clock;
  Backoff a(clock, 42);
  Backoff b(clock, 42);
  Backoff c(clock, 43);
  std::vector<nanoseconds> fromA, fromB, fromC;
  for (int i = 0; i < 8; ++i) {
    fromA.push_back(a.next());
    fromB.push_back(b.next());
    fromC.push_back(c.next());
  }
  CHECK(fromA == fromB);
  CHECK(fromA != fromC);
}
