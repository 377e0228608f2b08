#include "fleet/breaker.h"

#include <algorithm>

namespace pi0::fleet {

std::string_view breakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(BreakerOptions options) : options_(options) {
  options_.failureThreshold = std::max(options_.failureThreshold, 1);
  options_.coolDown = std::max(options_.coolDown, Clock::duration::zero());
}

bool CircuitBreaker::allow(Clock::time_point now) {
  switch (state_) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      if (now < retryAt().value_or(now)) return false;
      state_ = BreakerState::kHalfOpen;
      openedAt_.reset();
      trialOut_ = true;
      return true;
    case BreakerState::kHalfOpen:
      if (trialOut_) return false;
      trialOut_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::onSuccess() {
  state_ = BreakerState::kClosed;
  openedAt_.reset();
  consecutiveFailures_ = 0;
  trialOut_ = false;
}

void CircuitBreaker::onFailure(Clock::time_point now) {
  ++consecutiveFailures_;
  trialOut_ = false;
  // A failed trial reopens at once; a closed breaker opens at the threshold. The cool-down
  // counts from the last failure, so a node that keeps failing is tried once per coolDown.
  if (state_ == BreakerState::kHalfOpen ||
      (state_ == BreakerState::kClosed && consecutiveFailures_ >= options_.failureThreshold)) {
    state_ = BreakerState::kOpen;
    openedAt_ = now;
  }
}

void CircuitBreaker::onAbandoned() {
  trialOut_ = false;
}

std::optional<Clock::time_point> CircuitBreaker::retryAt() const {
  if (state_ != BreakerState::kOpen || !openedAt_) return std::nullopt;
  return saturatingAdd(*openedAt_, options_.coolDown);
}

std::string_view nodeHealthName(NodeHealth health) {
  switch (health) {
    case NodeHealth::kHealthy:
      return "Healthy";
    case NodeHealth::kSuspect:
      return "Suspect";
    case NodeHealth::kFailed:
      return "Failed";
  }
  return "Unknown";
}

NodeHealth healthAfter(int consecutiveMisses, const HealthPolicy& policy) {
  if (consecutiveMisses >= policy.failedAfter) return NodeHealth::kFailed;
  if (consecutiveMisses >= policy.suspectAfter) return NodeHealth::kSuspect;
  return NodeHealth::kHealthy;
}

}  // namespace pi0::fleet
