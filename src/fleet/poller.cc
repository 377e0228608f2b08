#include "fleet/poller.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <charconv>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/log.h"
#include "metrics/counter.h"

namespace pi0::fleet {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// Real time, not the poller's Clock, bounds and measures the HTTP requests: the sockets and the
// deadlines' timers run on real time, and a fake clock cannot make a socket time out. The Clock
// paces the rounds and stamps what the view records (fetchedAt, the breakers).
using SteadyClock = std::chrono::steady_clock;

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

// Reads the fingerprints of `agents`, at most `concurrency` at once, on the calling thread:
// Boost.Asio's event loop (epoll) drives every connection, and Beast parses the answers. One
// thread waits on all the sockets at once, so a read costs its system calls and its parsing,
// not a thread's wake-up and a watchdog's. Each read has one deadline, `timeout` from its
// start, over everything it does (connecting, sending, the whole answer: an agent trickling a
// byte a second is cut off there). `done` is called on this thread as each read ends.
class Reader {
 public:
  using Done = std::function<void(const Agent&, Fetched)>;

  Reader(const PollerOptions& options, std::span<const Agent* const> agents, std::stop_token st,
         Done done)
      : options_(options), agents_(agents), st_(std::move(st)), done_(std::move(done)) {
    const std::size_t n = std::min(options.concurrency, agents.size());
    slots_.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      slots_.push_back(std::make_unique<Slot>(*this));
  }

  // Returns when every read has ended. Stopping the token ends the reads in flight as
  // kCancelled, and those not begun too.
  void run() {
    std::stop_callback onStop(st_, [this] {
      asio::post(io_, [this] {
        cancelled_ = true;
        for (auto& slot : slots_)
          slot->abort();
      });
    });
    for (auto& slot : slots_)
      slot->next();
    io_.run();
  }

 private:
  // One read at a time, then the next agent's.
  class Slot {
   public:
    explicit Slot(Reader& reader)
        : r_(reader), socket_(reader.io_), resolver_(reader.io_), timer_(reader.io_) {}

    // Begins the read of the next agent not yet read, if any. An agent that is not read (a bad
    // address, a stopped round) is reported at once, and the next one taken.
    void next() {
      while (r_.nextAgent_ < r_.agents_.size()) {
        const Agent* agent = r_.agents_[r_.nextAgent_++];
        if (r_.cancelled_ || r_.st_.stop_requested()) {
          r_.done_(*agent, Fetched{Outcome::kCancelled, {}, {}});
          continue;
        }
        auto address = parseAgentUrl(agent->url);
        if (!address) {
          r_.done_(*agent, Fetched{Outcome::kError,
                                   {},
                                   "agent " + agent->node + ": " + address.error().message});
          continue;
        }
        agent_ = agent;
        address_ = std::move(*address);
        host_ = address_.host.find(':') == std::string::npos
                    ? address_.host + ":" + std::to_string(address_.port)
                    : "[" + address_.host + "]:" + std::to_string(address_.port);
        timedOut_ = false;
        timer_.expires_after(r_.options_.timeout);
        timer_.async_wait([this, generation = ++generation_](boost::system::error_code ec) {
          if (ec || generation != generation_) return;
          timedOut_ = true;
          abort();
        });
        request(r_.options_.path);
        return;
      }
    }

    // Ends what is in flight: its handler sees the error (and timedOut_ or the reader's
    // cancelled_ says why).
    void abort() {
      boost::system::error_code ignored;
      resolver_.cancel();
      socket_.close(ignored);
    }

   private:
    enum class Step { kConnect, kSend, kRead };

    // GET `path` on a new connection (the agent closes each after one answer).
    void request(const std::string& path) {
      path_ = path;
      boost::system::error_code ec;
      const auto ip = asio::ip::make_address(address_.host, ec);
      if (!ec) {
        socket_.async_connect(tcp::endpoint(ip, static_cast<unsigned short>(address_.port)),
                              [this](boost::system::error_code e) { connected(e); });
        return;
      }
      resolver_.async_resolve(
          address_.host, std::to_string(address_.port),
          [this](boost::system::error_code e, const tcp::resolver::results_type& found) {
            if (e) return failed(e, Step::kConnect);
            asio::async_connect(
                socket_, found,
                [this](boost::system::error_code e2, const tcp::endpoint&) { connected(e2); });
          });
    }

    void connected(boost::system::error_code ec) {
      if (ec) return failed(ec, Step::kConnect);
      request_ = {http::verb::get, path_, 11};
      request_.set(http::field::host, host_);
      request_.set(http::field::accept, "application/json");
      request_.set(http::field::connection, "close");
      http::async_write(socket_, request_, [this](boost::system::error_code e, std::size_t) {
        if (e) return failed(e, Step::kSend);
        buffer_.clear();
        parser_.emplace();
        parser_->body_limit(r_.options_.maxBodyBytes);
        http::async_read(socket_, buffer_, *parser_,
                         [this](boost::system::error_code e2, std::size_t) { answered(e2); });
      });
    }

    void answered(boost::system::error_code ec) {
      if (ec == http::error::body_limit && !timedOut_ && !r_.cancelled_)
        return end(Outcome::kError,
                   "answer larger than " + std::to_string(r_.options_.maxBodyBytes) + " bytes");
      if (ec) return failed(ec, Step::kRead);
      boost::system::error_code ignored;
      socket_.close(ignored);
      const auto& response = parser_->get();
      // An agent older than the query's detail refuses it: ask for its default body (within the
      // same deadline), which the view trims as it always did.
      if (const auto query = path_.find('?');
          response.result_int() == 400 && query != std::string::npos)
        return request(path_.substr(0, query));
      if (response.result_int() != 200)
        return end(Outcome::kError, "HTTP " + std::to_string(response.result_int()) + ": " +
                                        excerpt(response.body()));
      auto fingerprint = parseFingerprint(response.body());
      if (!fingerprint)
        return end(Outcome::kError, "invalid fingerprint: " + fingerprint.error().message);
      if (fingerprint->node != agent_->node)
        return end(Outcome::kError, "serves the fingerprint of node \"" + fingerprint->node + "\"");
      end(Outcome::kOk, {}, std::move(*fingerprint));
    }

    void failed(boost::system::error_code ec, Step step) {
      if (r_.cancelled_) return end(Outcome::kCancelled, {});
      if (timedOut_)
        return end(Outcome::kTimeout, "timed out after " + seconds(r_.options_.timeout) + " s");
      if (step == Step::kConnect) return end(Outcome::kError, "cannot connect");
      if (step == Step::kSend)
        return end(Outcome::kError, "connection lost while sending the request");
      if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message)
        return end(Outcome::kError, "not an HTTP answer (" + ec.message() + ")");
      end(Outcome::kError, "connection lost while reading the answer");
    }

    // Reports the read and begins the next.
    void end(Outcome outcome, std::string message, NodeFingerprint fingerprint = {}) {
      ++generation_;
      timer_.cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);
      parser_.reset();
      const Agent* agent = std::exchange(agent_, nullptr);
      if (!message.empty())
        message = "agent " + agent->node + " (" + agent->url + "): " + std::move(message);
      r_.done_(*agent, Fetched{outcome, std::move(fingerprint), std::move(message)});
      next();
    }

    Reader& r_;
    tcp::socket socket_;
    tcp::resolver resolver_;
    asio::steady_timer timer_;
    const Agent* agent_ = nullptr;
    AgentAddress address_;
    std::string host_;  // the Host header
    std::string path_;  // what is asked for now
    bool timedOut_ = false;
    std::uint64_t generation_ = 0;  // one per read: a deadline that fired too late is ignored
    http::request<http::empty_body> request_;
    beast::flat_buffer buffer_;
    std::optional<http::response_parser<http::string_body>> parser_;
  };

  const PollerOptions& options_;
  std::span<const Agent* const> agents_;
  std::stop_token st_;
  Done done_;
  asio::io_context io_{1};
  std::vector<std::unique_ptr<Slot>> slots_;  // after io_: their sockets close first
  std::size_t nextAgent_ = 0;
  bool cancelled_ = false;  // the event loop's thread only
};

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

  Reader reader(options_, due, st, [&](const Agent& agent, Fetched fetched) {
    std::optional<FleetView::HealthChange> change;
    switch (fetched.outcome) {
      case Outcome::kOk:
        ++round.ok;
        counters_.ok.fetch_add(1, std::memory_order_relaxed);
        if (interval) schedule(agent.node, fetched.fingerprint, *interval);
        change = view_.recordSuccess(agent.node, std::move(fetched.fingerprint), clock_.now());
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
  });
  reader.run();

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
