// Clock: the time source of everything in Pi0 that waits (rate limiters, backoffs, delayed
// queues). Components take a Clock& so that tests can hand them tests/fakes/fake_clock.h,
// whose time moves only when the test says so: no real sleeps, no timing thresholds.
#pragma once

#include <chrono>
#include <stop_token>

namespace pi0 {

class Clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  // The current monotonic time. Thread-safe.
  virtual time_point now() const = 0;

  // Blocks the calling thread until now() >= t or until `st` is stopped, whichever comes first.
  // Returns true when t was reached, false when `st` ended the sleep. Returns at once when t is
  // not in the future (true) or `st` is already stopped (false). Thread-safe: any number of
  // threads may sleep at once, each with its own deadline and token.
  virtual bool sleepUntil(time_point t, std::stop_token st) = 0;
};

// std::chrono::steady_clock as a Clock. The object lives until the program exits.
Clock& systemClock();

// t + d, saturated at time_point::max() instead of overflowing (d >= 0).
inline Clock::time_point saturatingAdd(Clock::time_point t, Clock::duration d) {
  if (d > Clock::time_point::max() - t) return Clock::time_point::max();
  return t + d;
}

}  // namespace pi0
