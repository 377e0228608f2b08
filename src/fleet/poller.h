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
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/clock.h"
#include "common/result.h"
#include "fleet/agent_source.h"
#include "fleet/feed_client.h"
#include "fleet/fleet_view.h"

namespace pi0::fleet {

struct PollerOptions {
  std::size_t concurrency = 8;  // agents polled at once (>= 1)
  // Per node, in real time, from connecting to the last byte of the answer. An agent that
  // hangs holds one of the `concurrency` slots this long, and no longer.
  std::chrono::milliseconds timeout{2000};
  std::size_t maxBodyBytes = 4 << 20;  // a fingerprint of 64 signals is about 100 KiB
  // What to ask each agent for: by default only the signals the resource view reads, the one
  // thing either program keeps (a node without GPUs: 4 of the 7 signals, 2.3 of 3.5 kB). An agent
  // that answers 400 to the query (older than it) is asked again without it.
  std::string path = "/fingerprint?detail=resources";
  // Follow each agent's samples instead of polling every agent every round: run() then polls a
  // round every quarter interval, and a round polls only the agents that are due: those whose
  // next sample should be taken by now (the last fingerprint's timestamp plus its
  // intervalSeconds, plus a little for the agent to publish it), and those last polled an
  // interval ago (at most: a dead agent is noticed as soon as with rounds). An agent sampling
  // once per interval is then read once per interval, within a quarter interval of its sample,
  // so data is never older than about 1.3 intervals when replaced, where rounds at a random phase
  // to the samples let it reach 2. A sample time that says the agent's clock is off only makes
  // it polled more often (at most every quarter interval).
  bool followSamples = false;
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
  int notDue = 0;                              // followSamples: no new sample expected yet
  std::chrono::steady_clock::duration took{};  // real time
};

// The poller's counters as Prometheus metrics: one set, for every program that polls the agents
// (pi0-operator, pi0-webhook), under the program's prefix ("pi0_operator", "pi0_webhook"):
//   PREFIX_fleet_polls_total{result}    ok, error, timeout, skipped_open (all at 0 from the start)
//   PREFIX_fleet_poll_round_seconds     how long the last round of polls over every agent took
//   PREFIX_fleet_source{source}         1 for where the view comes from now: "agents" (polled
//                                       here) or "feed" (fleet/feed_client.h); 0 for the other
//   PREFIX_fleet_feed_pages_total{kind} feed pages applied: full, delta
//   PREFIX_fleet_feed_errors_total      feed requests that brought no page
//   PREFIX_fleet_feed_bytes_total       feed bodies received
// Thread-safe.
class PollMetrics {
 public:
  PollMetrics(prometheus::Registry& registry, std::string_view prefix);

  // Brings the metrics up to `counters` (before each scrape): adds what the counters gained
  // since the last call (all of them, when they went down: a new poller).
  void sync(const PollCounters& counters);
  // The source and, with a feed (else null), its counts.
  void syncSource(bool pollsAgents, const FeedCounters* feed);

 private:
  static constexpr std::size_t kResults = 4;  // ok, error, timeout, skipped_open
  std::array<prometheus::Counter*, kResults> polls_{};
  prometheus::Gauge* roundSeconds_;
  prometheus::Gauge* fromAgents_;
  prometheus::Gauge* fromFeed_;
  prometheus::Counter* fullPages_;
  prometheus::Counter* deltaPages_;
  prometheus::Counter* feedErrors_;
  prometheus::Counter* feedBytes_;
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
  // As pollOnce, with options().followSamples: only the agents due at the poller's clock, given
  // `interval` (see PollerOptions::followSamples).
  PollRound pollDue(std::stop_token st, Clock::duration interval);

  // Polls a round every `interval` on the clock (a round that takes longer than the interval
  // is followed by the next at once) until `st` is stopped, calling `afterRound` (if any) on
  // this thread after each round, so that what depends on the view acts on fresh data at once.
  // When `due` is given, a round is polled only when it says so (the fleet feed brings the view
  // otherwise: polling.h); while it does not, it is asked again every quarter interval. Blocks.
  void run(std::stop_token st, Clock::duration interval,
           const std::function<void(const PollRound&)>& afterRound = {},
           const std::function<bool()>& due = {});

  const PollCounters& counters() const { return counters_; }

 private:
  FleetPoller(AgentSource& source, FleetView& view, Clock& clock, PollerOptions options)
      : source_(source), view_(view), clock_(clock), options_(std::move(options)) {}

  // When to poll `node` next, after a fingerprint (followSamples). Under the round's lock.
  void schedule(const std::string& node, const NodeFingerprint& fp, Clock::duration interval);
  // One round over the agents due at `interval` (followSamples; nullopt: every agent).
  PollRound pollRound(std::stop_token st, std::optional<Clock::duration> interval);

  AgentSource& source_;
  FleetView& view_;
  Clock& clock_;
  const PollerOptions options_;
  PollCounters counters_;
  // followSamples: per node, when to poll it next and the sample time of its last fingerprint.
  // The poller's thread (and its workers, under the round's lock) only.
  struct Schedule {
    Clock::time_point next;
    std::chrono::system_clock::time_point sampledAt;
  };
  std::unordered_map<std::string, Schedule> schedule_;
  std::vector<Agent> lastAgents_;  // what the view was last set to (the poller's thread)
};

}  // namespace pi0::fleet
