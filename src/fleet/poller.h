// FleetPoller: keeps a FleetView current by polling every agent's GET /fingerprint, round after
// round, with bounded concurrency, a per-node timeout and the view's per-node circuit breakers.
// A node whose agent answers with anything but 200 and a valid fingerprint of that node, or
// does not answer within the timeout, has missed the poll.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/clock.h"
#include "common/result.h"
#include "fleet/agent_source.h"
#include "fleet/fleet_view.h"

namespace pi0::fleet {

struct PollerOptions {
  std::size_t concurrency = 8;  // agents polled at once (>= 1)
  // Per node, in real time, from connecting to the last byte of the answer. An agent that
  // hangs holds one of the `concurrency` slots this long, and no longer.
  std::chrono::milliseconds timeout{2000};
  std::size_t maxBodyBytes = 4 << 20;  // a fingerprint of 64 signals is about 100 KiB
  std::string path = "/fingerprint";
};

// The poller's counters (exported by PollMetrics, below). Written by the poller's thread, read
// from any thread.
struct PollCounters {
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> error{0};        // refused, non-200, not a valid fingerprint
  std::atomic<std::uint64_t> timeout{0};      // no complete answer within the timeout
  std::atomic<std::uint64_t> skippedOpen{0};  // not polled: the node's breaker is open
  std::atomic<std::uint64_t> rounds{0};
  std::atomic<double> lastRoundSeconds{0};
};

// What one round did.
struct PollRound {
  int ok = 0;
  int error = 0;
  int timeout = 0;
  int skippedOpen = 0;
  std::chrono::steady_clock::duration took{};  // real time
};

// The poller's counters as Prometheus metrics: one set, for every program that polls the agents
// (pi0-operator, pi0-webhook), under the program's prefix ("pi0_operator", "pi0_webhook"):
//   PREFIX_fleet_polls_total{result}    ok, error, timeout, skipped_open (all at 0 from the start)
//   PREFIX_fleet_poll_round_seconds     how long the last round of polls over every agent took
// Thread-safe.
class PollMetrics {
 public:
  PollMetrics(prometheus::Registry& registry, std::string_view prefix);

  // Brings the metrics up to `counters` (before each scrape): adds what the counters gained
  // since the last call (all of them, when they went down: a new poller).
  void sync(const PollCounters& counters);

 private:
  static constexpr std::size_t kResults = 4;  // ok, error, timeout, skipped_open
  std::array<prometheus::Counter*, kResults> polls_{};
  prometheus::Gauge* roundSeconds_;
  std::mutex mu_;
  std::array<std::uint64_t, kResults> synced_{};  // guarded by mu_
};

class FleetPoller {
 public:
  // Checks the options (concurrency >= 1, timeout > 0, maxBodyBytes > 0, path starting with
  // '/'). `source`, `view` and `clock` must outlive the poller.
  static Result<std::unique_ptr<FleetPoller>> create(AgentSource& source, FleetView& view,
                                                     Clock& clock, PollerOptions options = {});

  // One round: refreshes the view's node set from the source, then polls every node whose
  // breaker allows it, at most `concurrency` at once, and records each result in the view as
  // it comes. Returns when every poll has ended, about one timeout after the slowest agent was
  // started at worst. Stopping `st` cancels the polls in flight; they are recorded as neither
  // success nor failure. Not reentrant: one round at a time (the poller's own thread).
  PollRound pollOnce(std::stop_token st = {});

  // Polls a round every `interval` on the clock (a round that takes longer than the interval
  // is followed by the next at once) until `st` is stopped, calling `afterRound` (if any) on
  // this thread after each round, so that what depends on the view acts on fresh data at once.
  // Blocks.
  void run(std::stop_token st, Clock::duration interval,
           const std::function<void(const PollRound&)>& afterRound = {});

  const PollCounters& counters() const { return counters_; }

 private:
  FleetPoller(AgentSource& source, FleetView& view, Clock& clock, PollerOptions options)
      : source_(source), view_(view), clock_(clock), options_(std::move(options)) {}

  AgentSource& source_;
  FleetView& view_;
  Clock& clock_;
  const PollerOptions options_;
  PollCounters counters_;
};

}  // namespace pi0::fleet
