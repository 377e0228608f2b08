#include "fleet/poller.h"

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/log.h"
#include "metrics/counter.h"

namespace pi0::fleet {
namespace {

// Real time, not the poller's Clock, bounds and measures the HTTP requests: the sockets, the
// kernel's and cpp-httplib's timeouts and the watchdog's condition variable all run on real
// time, and a fake clock cannot make a socket time out. The Clock paces the rounds and stamps
// what the view records (fetchedAt, the breakers).
using SteadyClock = std::chrono::steady_clock;

// How often a request past its deadline is stopped again: httplib's stop() cannot interrupt a
// connect in progress, so the first stop may come too early to take.
constexpr auto kRestopEvery = std::chrono::milliseconds(10);

// Stops the HTTP requests that have run past their deadline, and every request in flight when
// the round is cancelled. cpp-httplib's timeouts bound each read, not the whole answer (an
// agent trickling a byte a second would never time out); this bounds the whole answer.
// One slot per worker thread; each worker arms its slot around one request.
class Watchdog {
 public:
  enum class Fired { kNo, kTimeout, kCancelled };

  Watchdog(std::size_t slots, std::stop_token round)
      : slots_(slots),
        round_(round),
        onCancel_(round_, [this] { wake(); }),
        thread_([this](std::stop_token own) { loop(own); }) {}

  ~Watchdog() {
    thread_.request_stop();
    wake();
  }

  // `client` must stay alive until disarm(slot).
  void arm(std::size_t slot, httplib::Client* client, SteadyClock::time_point deadline) {
    std::lock_guard lock(mu_);
    slots_[slot] = Armed{client, deadline, Fired::kNo};
    // Deadlines only grow (now + the timeout): while another slot is armed, the watchdog wakes
    // for an earlier one and sees this one then. Waking it for every request cost two context
    // switches per poll.
    if (armed_++ == 0) {
      changed_ = true;
      cv_.notify_all();
    }
  }

  // Why the slot's request was stopped, if it was. After this the watchdog no longer touches
  // the client.
  Fired disarm(std::size_t slot) {
    std::lock_guard lock(mu_);
    const Fired fired = slots_[slot] ? slots_[slot]->fired : Fired::kNo;
    if (slots_[slot]) --armed_;
    slots_[slot].reset();
    return fired;
  }

 private:
  // A request out on a slot: its client, when it is due, and whether it was stopped.
  struct Armed {
    httplib::Client* client;
    SteadyClock::time_point deadline;
    Fired fired;
  };

  void wake() {
    std::lock_guard lock(mu_);
    changed_ = true;
    cv_.notify_all();
  }

  void loop(std::stop_token own) {
    std::unique_lock lock(mu_);
    while (!own.stop_requested()) {
      const auto now = SteadyClock::now();
      const bool cancel = round_.stop_requested();
      auto next = now + std::chrono::hours(1);
      for (std::optional<Armed>& slot : slots_) {
        if (!slot) continue;
        if (cancel || now >= slot->deadline) {
          if (slot->fired == Fired::kNo) slot->fired = cancel ? Fired::kCancelled : Fired::kTimeout;
          // Under mu_, so the worker cannot destroy the client meanwhile (disarm waits).
          slot->client->stop();
          next = std::min(next, now + kRestopEvery);
        } else {
          next = std::min(next, slot->deadline);
        }
      }
      cv_.wait_until(lock, own, next, [&] { return changed_; });
      changed_ = false;
    }
  }

  std::mutex mu_;
  std::condition_variable_any cv_;
  bool changed_ = false;
  std::vector<std::optional<Armed>> slots_;  // nullopt: no request out on that slot
  std::size_t armed_ = 0;                    // slots that are not nullopt
  std::stop_token round_;
  std::stop_callback<std::function<void()>> onCancel_;
  std::jthread thread_;  // last: started once everything it uses is built
};

enum class Outcome { kOk, kError, kTimeout, kCancelled };

struct Fetched {
  Outcome outcome = Outcome::kError;
  NodeFingerprint fingerprint;
  std::string message;
};

std::string seconds(std::chrono::milliseconds d) {
  char buf[32];
  const double s = std::chrono::duration<double>(d).count();
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, s);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// The first bytes of an answer, printable, for an error message.
std::string excerpt(std::string_view body) {
  constexpr std::size_t kMax = 80;
  std::string out;
  for (char c : body.substr(0, kMax))
    out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  if (body.size() > kMax) out += "...";
  return out;
}

std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::Read:
      return "connection lost while reading the answer";
    case httplib::Error::Write:
      return "connection lost while sending the request";
    case httplib::Error::Canceled:
      return "request canceled";
    default:
      return "request failed (" + httplib::to_string(error) + ")";
  }
}

Fetched fetch(const Agent& agent, const PollerOptions& options, Watchdog& watchdog,
              std::size_t slot) {
  const std::string prefix = "agent " + agent.node + " (" + agent.url + "): ";
  auto failed = [&](Outcome outcome, std::string message) {
    return Fetched{outcome, {}, prefix + std::move(message)};
  };
  auto address = parseAgentUrl(agent.url);
  if (!address)
    return Fetched{Outcome::kError, {}, "agent " + agent.node + ": " + address.error().message};

  httplib::Client client(address->host, address->port);
  // Each bounds one step; the watchdog bounds their sum.
  client.set_connection_timeout(options.timeout);
  client.set_read_timeout(options.timeout);
  client.set_write_timeout(options.timeout);
  client.set_keep_alive(false);

  std::string body;
  bool tooLarge = false;
  const auto start = SteadyClock::now();
  watchdog.arm(slot, &client, start + options.timeout);
  auto get = [&](const std::string& path) {
    body.clear();
    return client.Get(
        path, httplib::Headers{{"Accept", "application/json"}},
        [](const httplib::Response&) { return true; },
        [&](const char* data, std::size_t length) {
          if (body.size() + length > options.maxBodyBytes) {
            tooLarge = true;
            return false;
          }
          body.append(data, length);
          return true;
        });
  };
  auto result = get(options.path);
  // An agent older than the query's detail refuses it: ask for its default body (within the
  // same deadline), which the view trims as it always did.
  if (const auto query = options.path.find('?');
      result && result->status == 400 && query != std::string::npos)
    result = get(options.path.substr(0, query));
  const Watchdog::Fired fired = watchdog.disarm(slot);
  const auto elapsed = SteadyClock::now() - start;

  if (fired == Watchdog::Fired::kCancelled) return Fetched{Outcome::kCancelled, {}, {}};
  if (fired == Watchdog::Fired::kTimeout ||
      (!result &&
       (result.error() == httplib::Error::ConnectionTimeout || elapsed >= options.timeout)))
    return failed(Outcome::kTimeout, "timed out after " + seconds(options.timeout) + " s");
  if (tooLarge)
    return failed(Outcome::kError,
                  "answer larger than " + std::to_string(options.maxBodyBytes) + " bytes");
  if (!result) return failed(Outcome::kError, describe(result.error()));
  if (result->status != 200)
    return failed(Outcome::kError, "HTTP " + std::to_string(result->status) + ": " + excerpt(body));
  auto fingerprint = parseFingerprint(body);
  if (!fingerprint)
    return failed(Outcome::kError, "invalid fingerprint: " + fingerprint.error().message);
  if (fingerprint->node != agent.node)
    return failed(Outcome::kError, "serves the fingerprint of node \"" + fingerprint->node + "\"");
  return Fetched{Outcome::kOk, std::move(*fingerprint), {}};
}

void logChange(const Agent& agent, const FleetView::HealthChange& change,
               const std::string& message) {
  if (change.before == change.after) return;
  nlohmann::json fields{{"node", agent.node},
                        {"url", agent.url},
                        {"from", nodeHealthName(change.before)},
                        {"to", nodeHealthName(change.after)}};
  if (change.after == NodeHealth::kHealthy) {
    log::info("agent recovered", fields);
  } else {
    fields["error"] = message;
    log::warn(change.after == NodeHealth::kFailed ? "agent failed" : "agent suspect", fields);
  }
}

}  // namespace

Result<std::unique_ptr<FleetPoller>> FleetPoller::create(AgentSource& source, FleetView& view,
                                                         Clock& clock, PollerOptions options) {
  if (options.concurrency < 1) return fail("fleet poller: concurrency must be at least 1");
  if (options.timeout <= std::chrono::milliseconds::zero())
    return fail("fleet poller: timeout must be positive");
  if (options.maxBodyBytes == 0) return fail("fleet poller: maxBodyBytes must be positive");
  if (!options.path.starts_with('/')) return fail("fleet poller: path must start with '/'");
  return std::unique_ptr<FleetPoller>(new FleetPoller(source, view, clock, std::move(options)));
}

void FleetPoller::schedule(const std::string& node, const NodeFingerprint& fp,
                           Clock::duration interval) {
  using std::chrono::duration_cast;
  Schedule& entry = schedule_[node];
  const Clock::duration tick = interval / 4;
  const auto agentInterval = std::max<Clock::duration>(
      duration_cast<Clock::duration>(std::chrono::duration<double>(fp.intervalSeconds)),
      std::chrono::milliseconds(1));
  const Clock::duration margin =
      std::min<Clock::duration>(std::chrono::milliseconds(50), agentInterval / 10);
  Clock::duration wait;
  if (fp.timestamp == entry.sampledAt) {
    wait = tick;  // no new sample since the last poll: look again soon
  } else {
    // Until just after the agent's next sample, by the agent's own account.
    const auto nextSample =
        fp.timestamp + duration_cast<std::chrono::system_clock::duration>(agentInterval);
    wait = duration_cast<Clock::duration>(nextSample - std::chrono::system_clock::now()) + margin;
    // An agent sampling faster than the interval is still read once per interval, just after
    // a sample; so is one whose clock is behind ours.
    if (wait < interval - agentInterval) {
      const auto behind = (interval - agentInterval) - wait;
      wait += ((behind + agentInterval - Clock::duration(1)) / agentInterval) * agentInterval;
    }
    wait = std::clamp(wait, Clock::duration::zero(), interval + margin);
  }
  entry.sampledAt = fp.timestamp;
  entry.next = clock_.now() + wait;
}

PollRound FleetPoller::pollOnce(std::stop_token st) {
  return pollRound(st, std::nullopt);
}

PollRound FleetPoller::pollDue(std::stop_token st, Clock::duration interval) {
  return pollRound(st, interval);
}

PollRound FleetPoller::pollRound(std::stop_token st, std::optional<Clock::duration> interval) {
  const auto started = SteadyClock::now();
  PollRound round;
  std::vector<Agent> agents = source_.agents();
  // Round after round the same agents: setting them again would republish every node.
  if (agents != lastAgents_) {
    view_.setAgents(agents);
    lastAgents_ = agents;
  }

  std::vector<const Agent*> due;
  const Clock::time_point now = clock_.now();
  if (interval && schedule_.size() > agents.size() / 2 + 16) {
    // Forget the nodes that left (now and then: the set is rebuilt only when it may have grown).
    std::unordered_set<std::string_view> listed;
    for (const Agent& a : agents)
      listed.insert(a.node);
    std::erase_if(schedule_, [&](const auto& entry) { return !listed.contains(entry.first); });
  }
  for (const Agent& agent : agents) {
    if (interval) {
      auto it = schedule_.find(agent.node);
      if (it != schedule_.end() && now < it->second.next) {
        ++round.notDue;
        continue;
      }
    }
    if (view_.beginPoll(agent.node, now)) {
      due.push_back(&agent);
    } else if (view_.snapshot()->find(agent.node)) {
      // Known to the view but refused by its breaker (a duplicate node name is neither).
      ++round.skippedOpen;
      counters_.skippedOpen.fetch_add(1, std::memory_order_relaxed);
    }
  }

  std::mutex roundMu;  // guards `round` against the workers
  const std::size_t workers = std::min(options_.concurrency, due.size());
  if (workers > 0) {
    Watchdog watchdog(workers, st);
    std::atomic<std::size_t> next{0};
    std::vector<std::jthread> threads;
    threads.reserve(workers);
    for (std::size_t slot = 0; slot < workers; ++slot) {
      threads.emplace_back([&, slot] {
        for (std::size_t i = next.fetch_add(1); i < due.size(); i = next.fetch_add(1)) {
          const Agent& agent = *due[i];
          if (st.stop_requested()) {
            view_.abandonPoll(agent.node);
            continue;
          }
          Fetched fetched = fetch(agent, options_, watchdog, slot);
          std::optional<FleetView::HealthChange> change;
          std::lock_guard lock(roundMu);
          switch (fetched.outcome) {
            case Outcome::kOk:
              ++round.ok;
              counters_.ok.fetch_add(1, std::memory_order_relaxed);
              if (interval) schedule(agent.node, fetched.fingerprint, *interval);
              change =
                  view_.recordSuccess(agent.node, std::move(fetched.fingerprint), clock_.now());
              break;
            case Outcome::kError:
            case Outcome::kTimeout:
              ++(fetched.outcome == Outcome::kError ? round.error : round.timeout);
              (fetched.outcome == Outcome::kError ? counters_.error : counters_.timeout)
                  .fetch_add(1, std::memory_order_relaxed);
              log::debug("agent poll failed", {{"node", agent.node}, {"error", fetched.message}});
              if (interval) schedule_[agent.node].next = clock_.now() + *interval;
              change = view_.recordFailure(agent.node, fetched.message, clock_.now());
              break;
            case Outcome::kCancelled:
              view_.abandonPoll(agent.node);
              break;
          }
          if (change) logChange(agent, *change, fetched.message);
        }
      });
    }
    threads.clear();  // joins
  }

  round.took = SteadyClock::now() - started;
  counters_.rounds.fetch_add(1, std::memory_order_relaxed);
  counters_.lastRoundSeconds.store(std::chrono::duration<double>(round.took).count(),
                                   std::memory_order_relaxed);
  return round;
}

void FleetPoller::run(std::stop_token st, Clock::duration interval,
                      const std::function<void(const PollRound&)>& afterRound,
                      const std::function<bool()>& due) {
  while (!st.stop_requested()) {
    const Clock::time_point start = clock_.now();
    if (due && !due()) {
      lastAgents_.clear();  // another writer (the feed) may change the view's nodes meanwhile
      // Not due: look again soon, so that a round starts within a quarter interval of its
      // becoming due (a feed gone silent).
      if (!clock_.sleepUntil(saturatingAdd(start, interval / 4), st)) return;
      continue;
    }
    const PollRound round = options_.followSamples ? pollDue(st, interval) : pollOnce(st);
    if (afterRound && !st.stop_requested()) afterRound(round);
    const Clock::duration every = options_.followSamples ? interval / 4 : interval;
    if (!clock_.sleepUntil(saturatingAdd(start, every), st)) return;
  }
}

PollMetrics::PollMetrics(prometheus::Registry& registry, std::string_view prefix) {
  const std::string name(prefix);
  auto& polls = prometheus::BuildCounter()
                    .Name(name + "_fleet_polls_total")
                    .Help(
                        "Polls of the agents' fingerprints, by result: ok, error, timeout, "
                        "skipped_open (the node's circuit breaker is open)")
                    .Register(registry);
  std::size_t i = 0;
  for (const char* result : {"ok", "error", "timeout", "skipped_open"})
    polls_[i++] = &polls.Add({{"result", result}});
  roundSeconds_ = &prometheus::BuildGauge()
                       .Name(name + "_fleet_poll_round_seconds")
                       .Help("How long the last round of polls over every agent took")
                       .Register(registry)
                       .Add({});
  auto& source = prometheus::BuildGauge()
                     .Name(name + "_fleet_source")
                     .Help(
                         "Where the fleet view comes from now (1): agents (polled by this "
                         "replica) or feed (the leader's fleet feed)")
                     .Register(registry);
  fromAgents_ = &source.Add({{"source", "agents"}});
  fromFeed_ = &source.Add({{"source", "feed"}});
  auto& pages = prometheus::BuildCounter()
                    .Name(name + "_fleet_feed_pages_total")
                    .Help("Fleet feed pages applied, by kind: full (every node) or delta")
                    .Register(registry);
  fullPages_ = &pages.Add({{"kind", "full"}});
  deltaPages_ = &pages.Add({{"kind", "delta"}});
  feedErrors_ = &prometheus::BuildCounter()
                     .Name(name + "_fleet_feed_errors_total")
                     .Help(
                         "Fleet feed requests that brought no page (unreachable, refused, "
                         "malformed, no leader)")
                     .Register(registry)
                     .Add({});
  feedBytes_ = &prometheus::BuildCounter()
                    .Name(name + "_fleet_feed_bytes_total")
                    .Help("Bytes of fleet feed bodies received")
                    .Register(registry)
                    .Add({});
}

void PollMetrics::syncSource(bool pollsAgents, const FeedCounters* feed) {
  fromAgents_->Set(pollsAgents ? 1 : 0);
  fromFeed_->Set(pollsAgents ? 0 : 1);
  if (!feed) return;
  const std::uint64_t pages = feed->pages.load(), full = feed->fullPages.load();
  std::lock_guard lock(mu_);
  metrics::raiseTo(*fullPages_, full);
  metrics::raiseTo(*deltaPages_, pages - std::min(pages, full));
  metrics::raiseTo(*feedErrors_, feed->errors.load());
  metrics::raiseTo(*feedBytes_, feed->bytes.load());
}

void PollMetrics::sync(const PollCounters& counters) {
  const std::array<std::uint64_t, kResults> now{counters.ok.load(), counters.error.load(),
                                                counters.timeout.load(),
                                                counters.skippedOpen.load()};
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < kResults; ++i) {
    const auto added = now[i] >= synced_[i] ? now[i] - synced_[i] : now[i];
    if (added > 0) polls_[i]->Increment(static_cast<double>(added));
    synced_[i] = now[i];
  }
  roundSeconds_->Set(counters.lastRoundSeconds.load());
}

}  // namespace pi0::fleet
