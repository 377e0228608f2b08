// Rate limiting and backoff for Pi0's Kubernetes client, with client-go's semantics:
//   TokenBucket             golang.org/x/time/rate Limiter (flowcontrol.NewTokenBucketRateLimiter)
//   RateLimiter             workqueue.RateLimiter: the per-key retry policy of a WorkQueue
//   ItemExponentialBackoff  workqueue.ItemExponentialFailureRateLimiter
//   ControllerRateLimiter   workqueue.DefaultControllerRateLimiter
//   Backoff                 wait.Backoff driven by the reflector's exponential BackoffManager
// Everything that waits or reads the time goes through a Clock. All classes are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <unordered_map>

#include "common/clock.h"

namespace pi0::kube {

// A token bucket: holds up to `burst` tokens, gains `qps` tokens per second, starts full. A
// caller spends one token per event. Reservations may drive the balance below zero: the caller
// that reserves a token that is not there yet is told how long to wait for it, and later callers
// queue up behind it (x/time/rate's Reserve).
class TokenBucket {
 public:
  // The REST client's defaults: 20/30, as controller-runtime's GetConfig sets them (client-go's
  // own rest.DefaultQPS/DefaultBurst are 5/10).
  static constexpr double kRestClientQps = 20;
  static constexpr int kRestClientBurst = 30;

  // qps > 0, or +infinity for "no limit"; burst >= 1. Other values are a programming error (the
  // configuration layer validates user input first) and abort. `clock` must outlive the bucket.
  TokenBucket(double qps, int burst, Clock& clock = systemClock());

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes a token if one is available now; true when it did. Never waits; takes nothing when it
  // returns false. (x/time/rate Allow.)
  bool tryAccept();

  // Takes a token unconditionally and returns how long from now the caller must wait before
  // acting: zero when a token was available. The token is the caller's whether or not it waits.
  // (x/time/rate Reserve().Delay().)
  std::chrono::nanoseconds reserve();

  // Reserves a token and sleeps on the Clock until it is due. Returns true when the caller may
  // act, false when `st` was stopped first (at entry or while sleeping); then the reservation is
  // cancelled and the token given back, as x/time/rate's Wait does when its context ends.
  bool wait(std::stop_token st);

  double qps() const { return qps_; }
  int burst() const { return burst_; }

 private:
  struct Reservation {
    Clock::time_point timeToAct;
    std::chrono::nanoseconds delay;
  };

  // Callers hold mu_.
  double tokensAt(Clock::time_point now) const;
  Reservation reserveLocked(Clock::time_point now);
  void cancelLocked(const Reservation& r, Clock::time_point now);

  const double qps_;
  const int burst_;
  Clock& clock_;
  std::mutex mu_;
  double tokens_;                // balance at last_; negative while tokens are promised ahead
  Clock::time_point last_;       // when tokens_ was last brought up to date
  Clock::time_point lastEvent_;  // the latest time any reservation may act
};

// The policy a WorkQueue asks how long to hold back a key that failed (workqueue.RateLimiter).
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;

  // Records one more failure of `key` and returns how long to wait before retrying it.
  virtual std::chrono::nanoseconds when(const std::string& key) = 0;
  // Forgets the failures of `key` (call it when the key was processed successfully).
  virtual void forget(const std::string& key) = 0;
  // How many failures of `key` are recorded (since the last forget).
  virtual int retries(const std::string& key) const = 0;
};

// base·2ⁿ, capped at `max`; never overflows (n >= 63 or base·2ⁿ > max give max). n < 0 is
// treated as 0; base <= 0 gives base.
std::chrono::nanoseconds exponentialDelay(std::chrono::nanoseconds base,
                                          std::chrono::nanoseconds max, int n);

// Per-key exponential backoff: the n-th failure of a key (counting from 0) waits base·2ⁿ,
// capped at max (workqueue.ItemExponentialFailureRateLimiter).
class ItemExponentialBackoff final : public RateLimiter {
 public:
  static constexpr std::chrono::nanoseconds kDefaultBase = std::chrono::milliseconds(5);
  static constexpr std::chrono::nanoseconds kDefaultMax = std::chrono::seconds(1000);

  explicit ItemExponentialBackoff(std::chrono::nanoseconds base = kDefaultBase,
                                  std::chrono::nanoseconds max = kDefaultMax);

  std::chrono::nanoseconds when(const std::string& key) override;
  void forget(const std::string& key) override;
  int retries(const std::string& key) const override;

 private:
  const std::chrono::nanoseconds base_;
  const std::chrono::nanoseconds max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, int> failures_;
};

// workqueue.DefaultControllerRateLimiter: the larger of a per-key exponential backoff
// (5 ms · 2ⁿ up to 1000 s) and an overall token bucket (10 QPS, burst 100) that bounds the retry
// rate of the whole queue. As in client-go, every when() takes a bucket token, even when the
// per-key delay is the larger one.
class ControllerRateLimiter final : public RateLimiter {
 public:
  static constexpr double kDefaultQps = 10;
  static constexpr int kDefaultBurst = 100;

  explicit ControllerRateLimiter(
      Clock& clock = systemClock(),
      std::chrono::nanoseconds base = ItemExponentialBackoff::kDefaultBase,
      std::chrono::nanoseconds max = ItemExponentialBackoff::kDefaultMax, double qps = kDefaultQps,
      int burst = kDefaultBurst);

  std::chrono::nanoseconds when(const std::string& key) override;
  void forget(const std::string& key) override;  // the bucket is shared: only the key's count
  int retries(const std::string& key) const override;

 private:
  ItemExponentialBackoff perKey_;
  TokenBucket overall_;
};

struct BackoffOptions {
  std::chrono::nanoseconds initial = std::chrono::milliseconds(800);
  std::chrono::nanoseconds max = std::chrono::seconds(30);
  double factor = 2.0;
  // A nominal delay d becomes uniformly random in [d, d·(1 + jitter)), then capped at max.
  double jitter = 1.0;
  // When more than this has passed since the previous next(), the backoff starts over.
  std::chrono::nanoseconds resetAfter = std::chrono::minutes(2);
};

// The watch reflector's retry delay (client-go NewExponentialBackoffManager(800ms, 30s, 2m, 2.0,
// 1.0)): 0.8 s, 1.6 s, 3.2 s, … up to 30 s nominal, each jittered to [d, 2d) and capped at 30 s;
// back to 0.8 s once the previous failure is more than 2 minutes in the past.
class Backoff {
 public:
  // `seed` seeds the jitter's std::mt19937, so a test can fix the sequence. Options must satisfy
  // initial > 0, max >= initial, factor >= 1, jitter >= 0 (else abort: a programming error).
  explicit Backoff(Clock& clock = systemClock(), std::uint32_t seed = std::random_device{}(),
                   BackoffOptions options = {});

  // Records a failure now and returns how long to wait before the next attempt.
  std::chrono::nanoseconds next();
  // Starts over: the next delay is drawn from [initial, initial·(1 + jitter)).
  void reset();

 private:
  const BackoffOptions options_;
  Clock& clock_;
  std::mutex mu_;
  std::mt19937 random_;
  std::chrono::nanoseconds nominal_;  // the un-jittered delay the next failure gets
  std::optional<Clock::time_point> lastFailure_;
};

}  // namespace pi0::kube
