#include "common/clock.h"

#include <condition_variable>
#include <mutex>

namespace pi0 {
namespace {

class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }

  bool sleepUntil(time_point t, std::stop_token st) override {
    // A private mutex and condition variable: nothing ever notifies it, so the only ways out are
    // the deadline and the stop token (condition_variable_any registers a stop callback).
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    while (now() < t) {
      if (st.stop_requested()) return false;
      cv.wait_until(lock, st, t, [] { return false; });
    }
    return true;
  }
};

}  // namespace

Clock& systemClock() {
  static SystemClock clock;
  return clock;
}

}  // namespace pi0
