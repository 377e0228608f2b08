// FakeClock: a Clock whose time moves only when a test calls advance(). Sleepers wake when the
// time they wait for is reached or their stop token is stopped, never on their own, so tests of
// delays are exact and take no real time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <set>
#include <stop_token>

#include "common/clock.h"

namespace pi0::testing {

class FakeClock final : public Clock {
 public:
  // Starts at the clock's epoch, where a machine that has just booted finds steady_clock, so
  // that code taking time_point{} for "never" (which then reads as "just now") is caught out.
  explicit FakeClock(time_point start = time_point{}) : now_(start) {}

  time_point now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }

  bool sleepUntil(time_point t, std::stop_token st) override {
    std::unique_lock lock(mu_);
    if (now_ >= t) return true;
    auto entry = sleepers_.insert(t);
    sleepersChanged_.notify_all();
    timeMoved_.wait(lock, st, [&] { return now_ >= t; });
    sleepers_.erase(entry);
    sleepersChanged_.notify_all();
    return now_ >= t;
  }

  // Moves time forward by d (>= 0) and wakes the sleepers whose deadline has come.
  void advance(duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
    timeMoved_.notify_all();
  }

  // How many threads are inside sleepUntil() now.
  std::size_t sleepers() const {
    std::lock_guard lock(mu_);
    return sleepers_.size();
  }

  // Blocks until some thread sleeps until exactly `deadline`; true when one does. `guard` is
  // real time and only turns a bug that would hang the test into a failure.
  bool awaitSleeper(time_point deadline, std::chrono::seconds guard = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return sleepersChanged_.wait_for(lock, guard, [&] { return sleepers_.contains(deadline); });
  }

  // Blocks until exactly n threads sleep; true when they do. `guard` as in awaitSleeper().
  bool awaitSleepers(std::size_t n, std::chrono::seconds guard = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return sleepersChanged_.wait_for(lock, guard, [&] { return sleepers_.size() == n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable_any timeMoved_;
  std::condition_variable sleepersChanged_;
  time_point now_;
  std::multiset<time_point> sleepers_;
};

}  // namespace pi0::testing
