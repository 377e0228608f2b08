#include "kube/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace pi0::kube {
namespace {

using std::chrono::nanoseconds;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "pi0: %s\n", what);
  std::abort();
}

// Rounds a non-negative count of nanoseconds held in a double, saturating where it does not fit.
nanoseconds toNanos(double ns) {
  if (!(ns < static_cast<double>(std::numeric_limits<nanoseconds::rep>::max()))) {
    return nanoseconds::max();
  }
  return nanoseconds(std::llround(std::max(ns, 0.0)));
}

}  // namespace

// ---- TokenBucket ----------------------------------------------------------------------------

TokenBucket::TokenBucket(double qps, int burst, Clock& clock)
    : qps_(qps),
      burst_(burst),
      clock_(clock),
      tokens_(burst),
      last_(clock.now()),
      lastEvent_(last_) {
  if (!(qps > 0)) die("TokenBucket: qps must be > 0 (or +infinity)");
  if (burst < 1) die("TokenBucket: burst must be >= 1");
}

double TokenBucket::tokensAt(Clock::time_point now) const {
  // The clock is monotonic, but a reservation may have moved last_ past a caller's now.
  const Clock::time_point from = std::min(last_, now);
  const double elapsedSeconds = std::chrono::duration<double>(now - from).count();
  return std::min(tokens_ + elapsedSeconds * qps_, static_cast<double>(burst_));
}

TokenBucket::Reservation TokenBucket::reserveLocked(Clock::time_point now) {
  if (std::isinf(qps_)) return {now, nanoseconds(0)};
  const double tokens = tokensAt(now) - 1;
  const nanoseconds delay = tokens < 0 ? toNanos(-tokens * 1e9 / qps_) : nanoseconds(0);
  tokens_ = tokens;
  last_ = now;
  lastEvent_ = saturatingAdd(now, delay);
  return {lastEvent_, delay};
}

void TokenBucket::cancelLocked(const Reservation& r, Clock::time_point now) {
  // x/time/rate's CancelAt: give the token back, less the tokens reserved after this one (their
  // holders were promised a time that assumed this token was spent).
  if (std::isinf(qps_) || r.timeToAct < now) return;
  const double reservedAfter =
      std::chrono::duration<double>(lastEvent_ - r.timeToAct).count() * qps_;
  const double restore = 1 - reservedAfter;
  if (restore <= 0) return;
  tokens_ = std::min(tokensAt(now) + restore, static_cast<double>(burst_));
  last_ = now;
  if (r.timeToAct == lastEvent_) {
    // This was the latest reservation: the latest event is now the one before it.
    const Clock::time_point previous = r.timeToAct - toNanos(1e9 / qps_);
    if (previous >= now) lastEvent_ = previous;
  }
}

bool TokenBucket::tryAccept() {
  std::lock_guard lock(mu_);
  if (std::isinf(qps_)) return true;
  const Clock::time_point now = clock_.now();
  // Accept exactly when reserve() would not make the caller wait (a deficit that rounds to 0 ns).
  const double tokens = tokensAt(now) - 1;
  if (tokens < 0 && toNanos(-tokens * 1e9 / qps_) > nanoseconds(0)) return false;
  tokens_ = tokens;
  last_ = now;
  lastEvent_ = now;
  return true;
}

nanoseconds TokenBucket::reserve() {
  std::lock_guard lock(mu_);
  return reserveLocked(clock_.now()).delay;
}

bool TokenBucket::wait(std::stop_token st) {
  if (st.stop_requested()) return false;
  Reservation r;
  {
    std::lock_guard lock(mu_);
    r = reserveLocked(clock_.now());
  }
  if (r.delay <= nanoseconds(0)) return true;
  if (clock_.sleepUntil(r.timeToAct, st)) return true;
  std::lock_guard lock(mu_);
  cancelLocked(r, clock_.now());
  return false;
}

// ---- Per-key exponential backoff ------------------------------------------------------------

nanoseconds exponentialDelay(nanoseconds base, nanoseconds max, int n) {
  if (base <= nanoseconds(0)) return base;
  if (base >= max) return max;
  n = std::max(n, 0);
  // base·2ⁿ <= max exactly when base <= max >> n; checking that first keeps the shift in range.
  if (n >= std::numeric_limits<nanoseconds::rep>::digits || base.count() > (max.count() >> n)) {
    return max;
  }
  return nanoseconds(base.count() << n);
}

ItemExponentialBackoff::ItemExponentialBackoff(nanoseconds base, nanoseconds max)
    : base_(base), max_(max) {}

nanoseconds ItemExponentialBackoff::when(const std::string& key) {
  std::lock_guard lock(mu_);
  int& failures = failures_[key];
  const int n = failures;
  if (failures < std::numeric_limits<int>::max()) ++failures;
  return exponentialDelay(base_, max_, n);
}

void ItemExponentialBackoff::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int ItemExponentialBackoff::retries(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

// ---- ControllerRateLimiter ------------------------------------------------------------------

ControllerRateLimiter::ControllerRateLimiter(Clock& clock, nanoseconds base, nanoseconds max,
                                             double qps, int burst)
    : perKey_(base, max), overall_(qps, burst, clock) {}

nanoseconds ControllerRateLimiter::when(const std::string& key) {
  // Both are consulted every time, as client-go's MaxOfRateLimiter does.
  const nanoseconds perKey = perKey_.when(key);
  const nanoseconds overall = overall_.reserve();
  return std::max(perKey, overall);
}

void ControllerRateLimiter::forget(const std::string& key) {
  perKey_.forget(key);
}

int ControllerRateLimiter::retries(const std::string& key) const {
  return perKey_.retries(key);
}

// ---- Backoff --------------------------------------------------------------------------------

Backoff::Backoff(Clock& clock, std::uint32_t seed, BackoffOptions options)
    : options_(options), clock_(clock), random_(seed), nominal_(options.initial) {
  if (!(options.initial > nanoseconds(0)) || options.max < options.initial) {
    die("Backoff: need 0 < initial <= max");
  }
  if (!(options.factor >= 1) || !(options.jitter >= 0))
    die("Backoff: need factor >= 1, jitter >= 0");
}

nanoseconds Backoff::next() {
  std::lock_guard lock(mu_);
  const Clock::time_point now = clock_.now();
  // As client-go's BackoffManager: measured from the previous failure, strictly longer resets.
  if (!lastFailure_ || now - *lastFailure_ > options_.resetAfter) nominal_ = options_.initial;
  lastFailure_ = now;

  const nanoseconds nominal = nominal_;
  const double grown = static_cast<double>(nominal_.count()) * options_.factor;
  nominal_ = grown >= static_cast<double>(options_.max.count()) ? options_.max : toNanos(grown);

  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  const double jittered = static_cast<double>(nominal.count()) * (1 + unit * options_.jitter);
  return std::min(toNanos(jittered), options_.max);
}

void Backoff::reset() {
  std::lock_guard lock(mu_);
  nominal_ = options_.initial;
  lastFailure_.reset();
}

}  // namespace pi0::kube
