// The reservation book (webhook/reservations.h): what it holds, when a reservation ends (counted
// by the operator after the grace, or timed out), and one review of a channel at a time.
#include "reservations.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_clock.h"

using namespace pi0;
using namespace pi0::webhook;
using namespace std::chrono_literals;

namespace {

// A fake steady clock and a wall clock that moves with it from 2026-11-22T10:00:00Z.
struct Clocks {
  testing::FakeClock steady;
  WallClock::time_point wallStart = WallClock::time_point{} + std::chrono::seconds(1795341600);
  WallClock::time_point wall() const {
    return wallStart +
           std::chrono::duration_cast<WallClock::duration>(steady.now() - Clock::time_point{});
  }
};

const auto kNoCount = std::nullopt;

std::optional<WallClock::time_point> none(const std::string&) {
  return std::nullopt;
}

}  // namespace

TEST_CASE("held sums the live reservations of one channel only") {
  Clocks c;
  ReservationBook book({}, c.steady, [&] { return c.wall(); });
  CHECK(book.enabled());
  CHECK(book.turn("shop/web").held(kNoCount) == Held{});
  {
    auto t = book.turn("shop/web");
    t.reserve("shop/web-1", "u1", 100, 64 << 20);
    t.reserve("shop/web-2", "u2", 250, 0);
    // The same review asked again (an apiserver retry under the same uid) reserves once.
    t.reserve("shop/web-2", "u2", 250, 0);
  }
  CHECK(book.turn("shop/web").held(kNoCount) == Held{350, 64 << 20, 2});
  CHECK(book.turn("shop/batch").held(kNoCount) == Held{});
  const auto f = book.figures(none);
  REQUIRE(f.live.size() == 1);
  CHECK(f.live.at("shop/web") == 2);
}

TEST_CASE("a reservation ends once the operator's count is at least grace after admission") {
  Clocks c;
  ReservationBook book({}, c.steady, [&] { return c.wall(); });
  const WallClock::time_point admitted = c.wall();
  book.turn("shop/web").reserve("shop/web-1", "u1", 100, 0);
  c.steady.advance(5s);
  auto held = [&](std::optional<WallClock::time_point> observedAt) {
    return book.turn("shop/web").held(observedAt).pods;
  };
  // A count from before the pod was admitted, or within the operator's cache lag: not counted.
  CHECK(held(admitted - 10s) == 1);
  CHECK(held(admitted + 1999ms) == 1);
  CHECK(book.figures(none).counted == 0);
  // The count observed 2 s after admission has the pod in `used`: the reservation ends.
  CHECK(held(admitted + 2s) == 0);
  const auto f = book.figures(none);
  CHECK(f.counted == 1);
  CHECK(f.timedOut == 0);
  CHECK(f.live.empty());
}

TEST_CASE("a reservation the operator never counts ends at the timeout") {
  Clocks c;
  ReservationBook book({2s, 30s}, c.steady, [&] { return c.wall(); });
  book.turn("shop/web").reserve("shop/web-1", "u1", 100, 0);
  c.steady.advance(10s);
  book.turn("shop/web").reserve("shop/web-2", "u2", 100, 0);
  c.steady.advance(19999ms);  // 29.999 s after the first
  CHECK(book.turn("shop/web").held(kNoCount).pods == 2);
  c.steady.advance(1ms);  // 30 s after the first, 20 s after the second
  CHECK(book.turn("shop/web").held(kNoCount) == Held{100, 0, 1});
  // figures() ends timed-out reservations too, without a review of the channel.
  c.steady.advance(10s);
  const auto f = book.figures(none);
  CHECK(f.live.empty());
  CHECK(f.timedOut == 2);
  CHECK(f.counted == 0);
}

TEST_CASE("figures end what the operator has counted, by each channel's observedAt") {
  Clocks c;
  ReservationBook book({}, c.steady, [&] { return c.wall(); });
  const WallClock::time_point admitted = c.wall();
  book.turn("shop/web").reserve("shop/web-1", "u1", 100, 0);
  book.turn("shop/batch").reserve("shop/batch-1", "u2", 100, 0);
  c.steady.advance(3s);
  const auto f = book.figures([&](const std::string& channel) {
    return channel == "shop/web" ? std::optional(admitted + 3s) : std::nullopt;
  });
  CHECK(f.counted == 1);
  REQUIRE(f.live.size() == 1);
  CHECK(f.live.at("shop/batch") == 1);
}

TEST_CASE("a zero timeout turns reservations off") {
  Clocks c;
  ReservationBook book({2s, 0s}, c.steady, [&] { return c.wall(); });
  CHECK_FALSE(book.enabled());
}

TEST_CASE("one review of a channel at a time: check and reserve never overshoot") {
  // 8 threads race to take 1m each out of a 100m remainder, each under its channel's turn: what
  // is reserved is exactly 100m. Without the turn, two threads would read the same held sum and
  // both reserve the last millicore.
  Clocks c;
  ReservationBook book({}, c.steady, [&] { return c.wall(); });
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 50; ++j) {
        auto t = book.turn("shop/web");
        if (t.held(kNoCount).cpuMilli + 1 > 100) continue;
        std::this_thread::yield();  // widen the window a missing lock would leave open
        t.reserve("shop/web", std::to_string(i) + "-" + std::to_string(j), 1, 0);
        ++admitted;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(admitted == 100);
  CHECK(book.turn("shop/web").held(kNoCount) == Held{100, 0, 100});

  // Another channel's turn does not wait for this one's (taken on the same thread: a shared
  // lock would deadlock here).
  auto web = book.turn("shop/web");
  auto batch = book.turn("shop/batch");
  CHECK(batch.held(kNoCount).pods == 0);
}
