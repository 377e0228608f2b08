// Per-node failure handling of the fleet view: a circuit breaker (seed 002) that stops polling
// an agent that keeps failing and tries it again after a cool-down, and the node health of
// seed 001 P3 (Healthy, Suspect after 2 missed polls, Failed after 3). Both are pure: time is
// an argument (callers pass their Clock's now()), nothing here sleeps, locks or does I/O.
#pragma once

#include <optional>
#include <string_view>

#include "common/clock.h"

namespace pi0::fleet {

enum class BreakerState {
  kClosed,    // requests go out
  kOpen,      // requests are refused until the cool-down has passed
  kHalfOpen,  // one trial request is allowed; its result closes or reopens the breaker
};

std::string_view breakerStateName(BreakerState state);  // "closed", "open", "half_open"

struct BreakerOptions {
  int failureThreshold = 3;                             // consecutive failures that open it (>= 1)
  Clock::duration coolDown = std::chrono::seconds(30);  // open -> half-open
};

// closed --N consecutive failures--> open --coolDown--> half-open --success--> closed
//                                      ^                     |
//                                      +------failure--------+
// Not thread-safe: the owner (FleetView) serializes calls.
class CircuitBreaker {
 public:
  explicit CircuitBreaker(BreakerOptions options = {});

  // Whether a request may go out at `now`. Closed: always. Open: no until coolDown has passed
  // since it opened; then it turns half-open and allows one trial. Half-open: no while that
  // trial is out. A true answer obliges the caller to report the request's end with
  // onSuccess(), onFailure() or onAbandoned().
  bool allow(Clock::time_point now);

  void onSuccess();
  void onFailure(Clock::time_point now);
  // The request that allow() let out ended with no verdict (the poller was stopped): a
  // half-open breaker may let out another trial.
  void onAbandoned();

  BreakerState state() const { return state_; }
  int consecutiveFailures() const { return consecutiveFailures_; }
  // When an open breaker lets out its next trial; nullopt unless open.
  std::optional<Clock::time_point> retryAt() const;

 private:
  BreakerOptions options_;
  BreakerState state_ = BreakerState::kClosed;
  int consecutiveFailures_ = 0;
  std::optional<Clock::time_point> openedAt_;  // set while open: when it (re)opened
  bool trialOut_ = false;
};

enum class NodeHealth {
  kHealthy,  // its last poll succeeded, or it has missed fewer than suspectAfter in a row
  kSuspect,  // missed suspectAfter polls in a row
  kFailed,   // missed failedAfter polls in a row; a failed node passes no gate
};

std::string_view nodeHealthName(NodeHealth health);  // "Healthy", "Suspect", "Failed"

struct HealthPolicy {
  int suspectAfter = 2;  // seed 001 P3
  int failedAfter = 3;   // >= suspectAfter
};

// The health of a node whose agent has missed `consecutiveMisses` polls in a row: a node is
// Healthy again on its first good poll (consecutiveMisses = 0).
NodeHealth healthAfter(int consecutiveMisses, const HealthPolicy& policy = {});

}  // namespace pi0::fleet
