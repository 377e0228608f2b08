#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_clock.h"
#include "kube/rate_limit.h"
#include "kube/work_queue.h"

using namespace std::chrono_literals;
using pi0::Clock;
using pi0::kube::WorkQueue;
using pi0::testing::FakeClock;
using std::chrono::nanoseconds;

namespace {

// get() on another thread. Real time serves only as a guard: a get() still blocked after
// `guard` fails the test and is stopped, so a bug fails the test instead of hanging it.
class AsyncGet {
 public:
  explicit AsyncGet(WorkQueue& queue)
      : result_(std::async(std::launch::async,
                           [&queue, st = stop_.get_token()] { return queue.get(st); })) {}
  ~AsyncGet() { stop_.request_stop(); }

  bool ready() const { return result_.wait_for(0s) == std::future_status::ready; }
  void stop() { stop_.request_stop(); }
  std::optional<std::string> get(std::chrono::seconds guard = 30s) {
    if (result_.wait_for(guard) != std::future_status::ready) {
      FAIL_CHECK("get() still blocked after the guard");
      stop_.request_stop();
    }
    return result_.get();
  }

 private:
  std::stop_source stop_;
  std::future<std::optional<std::string>> result_;
};

// The next key, or nullopt once the queue is shut down and drained.
std::optional<std::string> next(WorkQueue& queue) {
  return AsyncGet(queue).get();
}

}  // namespace

TEST_CASE("work queue: duplicates collapse and keys come out in the order first added") {
  FakeClock clock;
  WorkQueue queue(clock);
  for (const char* key : {"a", "b", "a", "c", "b", "a"})
    queue.add(key);
  CHECK(queue.len() == 3);
  CHECK(queue.depth() == 3);
  CHECK(queue.counters().addsTotal.load() == 3);
  CHECK(next(queue) == "a");
  CHECK(next(queue) == "b");
  CHECK(next(queue) == "c");
  CHECK(queue.len() == 0);
  CHECK(queue.counters().retriesTotal.load() == 0);
}

TEST_CASE("work queue: a key added while processing waits for done(), then comes out once") {
  FakeClock clock;
  WorkQueue queue(clock);
  queue.add("a");
  REQUIRE(next(queue) == "a");

  queue.add("a");
  queue.add("a");
  CHECK(queue.len() == 0);  // not handed to anyone while its worker holds it
  CHECK(queue.counters().addsTotal.load() == 2);

  queue.add("b");
  CHECK(next(queue) == "b");
  queue.done("b");

  AsyncGet second(queue);  // an idle worker must not get "a" yet
  std::this_thread::sleep_for(5ms);
  CHECK_FALSE(second.ready());
  queue.done("a");
  CHECK(second.get() == "a");
  CHECK(queue.len() == 0);
  queue.done("a");
  CHECK(queue.len() == 0);  // processed once: no further copy

  queue.done("a");  // not being processed: ignored
  queue.done("never-got");
  CHECK(queue.len() == 0);
}

TEST_CASE("work queue: concurrent adders and workers never share a key and lose no add") {
  constexpr int kKeys = 32;
  constexpr int kAdders = 8;
  constexpr int kAddsPerAdder = 4000;
  constexpr int kWorkers = 4;

  FakeClock clock;
  WorkQueue queue(clock);
  std::array<std::atomic<bool>, kKeys> busy{};
  // An adder bumps version[k] before it adds k; a worker records the version it sees when it
  // starts on k. Once every add has returned, each key's last processing must see the last
  // version: an add that was collapsed or deferred must still lead to a pass after it.
  std::array<std::atomic<std::uint64_t>, kKeys> version{};
  std::array<std::atomic<std::uint64_t>, kKeys> seen{};
  std::atomic<int> overlaps{0};
  std::atomic<std::uint64_t> processed{0};
  std::mutex progressMu;
  std::condition_variable progress;

  std::vector<std::jthread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto key = queue.get()) {
        const int k = std::stoi(key->substr(1));
        if (busy[k].exchange(true)) overlaps.fetch_add(1);
        seen[k].store(version[k].load());
        std::this_thread::yield();
        busy[k].store(false);
        processed.fetch_add(1);
        queue.done(*key);
        { std::lock_guard lock(progressMu); }
        progress.notify_all();
      }
    });
  }
  {
    std::vector<std::jthread> adders;
    for (int a = 0; a < kAdders; ++a) {
      adders.emplace_back([&, a] {
        for (int i = 0; i < kAddsPerAdder; ++i) {
          const int k = (i * 7 + a) % kKeys;
          version[k].fetch_add(1);
          std::string key = "k";  // appended: GCC 12 warns (-Wrestrict, falsely) on "k" + ...
          key += std::to_string(k);
          queue.add(key);
        }
      });
    }
  }  // adders joined

  const auto allSeen = [&] {
    for (int k = 0; k < kKeys; ++k) {
      if (seen[k].load() != version[k].load()) return false;
    }
    return true;
  };
  {
    std::unique_lock lock(progressMu);
    // Real time only as a hang guard: a lost wakeup leaves a key queued with every worker asleep.
    CHECK(progress.wait_for(lock, 60s, allSeen));
  }
  queue.shutDown();
  workers.clear();  // joins

  CHECK(overlaps.load() == 0);
  CHECK(processed.load() >= static_cast<std::uint64_t>(kKeys));
  CHECK(processed.load() <= static_cast<std::uint64_t>(kAdders) * kAddsPerAdder);
  CHECK(queue.counters().addsTotal.load() <= static_cast<std::uint64_t>(kAdders) * kAddsPerAdder);
  CHECK(queue.len() == 0);
}

TEST_CASE("work queue: addAfter() fires at its time and not before") {
  FakeClock clock;
  WorkQueue queue(clock);
  const Clock::time_point t0 = clock.now();
  queue.addAfter("a", 100ms);
  CHECK(queue.counters().retriesTotal.load() == 1);
  REQUIRE(clock.awaitSleeper(t0 + 100ms));
  CHECK(queue.len() == 0);
  clock.advance(99ms);
  REQUIRE(clock.awaitSleeper(t0 + 100ms));  // the timer thread is still asleep
  CHECK(queue.len() == 0);
  clock.advance(1ms);
  CHECK(next(queue) == "a");  // blocks until the timer thread has moved it
  CHECK(queue.counters().addsTotal.load() == 1);
  queue.done("a");
  CHECK(clock.awaitSleepers(0));
}

TEST_CASE("work queue: addAfter() of a waiting key keeps the earliest time") {
  FakeClock clock;
  WorkQueue queue(clock);
  const Clock::time_point t0 = clock.now();
  queue.addAfter("a", 200ms);
  REQUIRE(clock.awaitSleeper(t0 + 200ms));
  queue.addAfter("a", 50ms);  // earlier: wakes the timer thread, which sleeps until 50 ms
  REQUIRE(clock.awaitSleeper(t0 + 50ms));
  queue.addAfter("a", 100ms);  // later: ignored
  clock.advance(50ms);
  CHECK(next(queue) == "a");
  queue.done("a");
  // Nothing else waits: the timer thread idles instead of sleeping until 100 or 200 ms.
  CHECK(clock.awaitSleepers(0));
  clock.advance(1s);
  CHECK(queue.len() == 0);
  CHECK(queue.counters().retriesTotal.load() == 3);
  CHECK(queue.counters().addsTotal.load() == 1);
}

TEST_CASE("work queue: delayed keys come out in the order of their times") {
  FakeClock clock;
  WorkQueue queue(clock);
  const Clock::time_point t0 = clock.now();
  queue.addAfter("late", 30ms);
  queue.addAfter("early", 10ms);
  queue.addAfter("now", 0ms);  // no delay: queued at once
  CHECK(queue.len() == 1);
  queue.addAfter("past", -1s);
  CHECK(queue.len() == 2);
  REQUIRE(clock.awaitSleeper(t0 + 10ms));
  clock.advance(30ms);
  CHECK(next(queue) == "now");
  CHECK(next(queue) == "past");
  CHECK(next(queue) == "early");
  CHECK(next(queue) == "late");
}

TEST_CASE("work queue: addRateLimited() delays double per failure, forget() starts over") {
  FakeClock clock;
  WorkQueue queue(clock);  // ControllerRateLimiter: 5 ms·2ⁿ; the bucket's burst is not reached
  for (nanoseconds delay : {5ms, 10ms, 20ms, 40ms, 80ms}) {
    CAPTURE(delay.count());
    const Clock::time_point start = clock.now();
    queue.addRateLimited("a");
    REQUIRE(clock.awaitSleeper(start + delay));
    clock.advance(delay - 1ns);
    REQUIRE(clock.awaitSleeper(start + delay));
    CHECK(queue.len() == 0);
    clock.advance(1ns);
    CHECK(next(queue) == "a");
    queue.done("a");
  }
  CHECK(queue.numRequeues("a") == 5);
  CHECK(queue.numRequeues("b") == 0);
  queue.forget("a");
  CHECK(queue.numRequeues("a") == 0);
  const Clock::time_point start = clock.now();
  queue.addRateLimited("a");
  CHECK(clock.awaitSleeper(start + 5ms));
  CHECK(queue.counters().retriesTotal.load() == 6);
}

TEST_CASE("work queue: a custom limiter decides addRateLimited()'s delay") {
  FakeClock clock;
  WorkQueue queue(clock, std::make_unique<pi0::kube::ItemExponentialBackoff>(1s, 3s));
  const Clock::time_point t0 = clock.now();
  queue.addRateLimited("a");
  CHECK(clock.awaitSleeper(t0 + 1s));
  queue.addRateLimited("a");  // 2 s: later than the waiting 1 s, so ignored
  clock.advance(1s);
  CHECK(next(queue) == "a");
  CHECK(queue.numRequeues("a") == 2);
}

TEST_CASE("work queue: shutDown() wakes every blocked get()") {
  FakeClock clock;
  WorkQueue queue(clock);
  std::vector<std::unique_ptr<AsyncGet>> getters;
  for (int i = 0; i < 3; ++i)
    getters.push_back(std::make_unique<AsyncGet>(queue));
  std::this_thread::sleep_for(2ms);  // most likely blocked by now; the result holds either way
  CHECK_FALSE(queue.shuttingDown());
  queue.shutDown();
  CHECK(queue.shuttingDown());
  for (auto& getter : getters)
    CHECK(getter->get() == std::nullopt);
  queue.shutDown();  // idempotent
}

TEST_CASE("work queue: after shutDown() queued keys drain and new adds are ignored") {
  FakeClock clock;
  WorkQueue queue(clock);
  const Clock::time_point t0 = clock.now();
  queue.add("a");
  queue.add("b");
  queue.addAfter("delayed", 1s);
  REQUIRE(clock.awaitSleeper(t0 + 1s));
  REQUIRE(next(queue) == "a");
  queue.add("a");  // dirty while processing

  queue.shutDown();
  CHECK(clock.awaitSleepers(0));  // the timer thread stopped
  queue.add("c");
  queue.addAfter("d", 1ms);
  queue.addRateLimited("e");
  CHECK(queue.counters().retriesTotal.load() == 1);
  CHECK(queue.numRequeues("e") == 0);
  CHECK(queue.len() == 1);

  CHECK(next(queue) == "b");
  queue.done("b");
  queue.done("a");  // re-queued: the change that arrived during processing is not lost
  CHECK(next(queue) == "a");
  queue.done("a");
  clock.advance(1s);  // the delayed key was dropped
  CHECK(next(queue) == std::nullopt);
  CHECK(next(queue) == std::nullopt);
}

TEST_CASE("work queue: a stopped get() returns nullopt and leaves the queue working") {
  FakeClock clock;
  WorkQueue queue(clock);
  AsyncGet getter(queue);
  getter.stop();
  CHECK(getter.get() == std::nullopt);
  CHECK_FALSE(queue.shuttingDown());
  queue.add("x");
  CHECK(next(queue) == "x");
}

TEST_CASE("work queue: destroying it while the timer thread sleeps does not hang") {
  FakeClock clock;
  const Clock::time_point t0 = clock.now();
  {
    WorkQueue queue(clock);
    queue.addAfter("a", 1h);
    REQUIRE(clock.awaitSleeper(t0 + 1h));
  }
  CHECK(clock.sleepers() == 0);
}

TEST_CASE("work queue: the system clock's delays work too") {
  WorkQueue queue;
  queue.addAfter("soon", 1ms);
  CHECK(next(queue) == "soon");
}
