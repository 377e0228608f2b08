// FleetPoller against local HTTP servers standing in for pi0-agents. Each stand-in is a
// cpp-httplib server on 127.0.0.1, port 0, whose /fingerprint answers as the test says: a good
// fingerprint (the real agent's, recorded in fixtures/fleet), garbage, an error status, or
// nothing at all for longer than the poller's timeout. Time: the FakeClock drives the
// breaker's cool-down and freshness; the timeouts are real (sockets), so assertions about
// real time are only generous guards.
#include <doctest/doctest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "fakes/fake_clock.h"
#include "fleet/poller.h"

using namespace pi0;
using namespace pi0::fleet;
using namespace std::chrono_literals;

namespace {

constexpr auto kTimeout = 300ms;

std::string fingerprintOf(const std::string& node) {
  auto text = readFile(std::filesystem::path(PI0_FIXTURES) / "fleet" / "fingerprint-node-a.json");
  REQUIRE(text);
  auto doc = nlohmann::json::parse(*text);
  doc["node"] = node;
  return doc.dump();
}

// Counts requests in flight over a group of stand-ins, and the most there ever were at once.
struct Concurrency {
  std::atomic<int> now{0};
  std::atomic<int> max{0};

  void enter() {
    const int n = ++now;
    int seen = max.load();
    while (n > seen && !max.compare_exchange_weak(seen, n)) {
    }
  }
  void leave() { --now; }
};

// A stand-in for one pi0-agent.
class StandInAgent {
 public:
  enum class Mode {
    kGood,       // 200 and a valid fingerprint of its node
    kGarbage,    // 200 and an HTML page
    kHang,       // accepts the connection and says nothing until released
    kTrickle,    // 200, then one byte every 50 ms: never idle long enough for a read timeout
    kStatus503,  // 503 "window 40% full"
    kWrongNode,  // a valid fingerprint of another node
    kHuge,       // 200 and 5 MiB
    kOlder,      // as an agent older than ?detail=resources: 400 for it, else kGood
  };

  StandInAgent(std::string node, Mode mode, Concurrency* concurrency = nullptr,
               std::chrono::milliseconds delay = 0ms)
      : node_(std::move(node)),
        mode_(mode),
        concurrency_(concurrency),
        delay_(delay),
        good_(fingerprintOf(node_)) {
    server_.Get("/fingerprint", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu_);
        details_.push_back(req.get_param_value("detail"));
      }
      serve(req, res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost, and the destructor would hang.
    while (!server_.is_running())
      std::this_thread::sleep_for(1ms);
  }

  ~StandInAgent() {
    release();
    server_.stop();
    thread_.join();
  }

  const std::string& node() const { return node_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Agent agent() const { return {node_, url()}; }
  int requests() const { return requests_; }
  // The detail each request asked for ("" for none), in order.
  std::vector<std::string> details() {
    std::lock_guard lock(mu_);
    return details_;
  }
  void setMode(Mode mode) { mode_ = mode; }

  // Lets hanging requests end (they end by themselves after 10 s).
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  // Blocks until the stand-in has received `n` requests; false after a 10 s guard.
  bool awaitRequests(int n) {
    for (auto until = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(1ms)) {
      if (requests_ >= n) return true;
    }
    return false;
  }

 private:
  void serve(const httplib::Request& req, httplib::Response& res) {
    ++requests_;
    if (concurrency_) concurrency_->enter();
    if (delay_ > 0ms) std::this_thread::sleep_for(delay_);
    switch (mode_.load()) {
      case Mode::kGood:
        res.set_content(good_, "application/json");
        break;
      case Mode::kGarbage:
        res.set_content("<html><body>It works!</body></html>", "text/html");
        break;
      case Mode::kHang: {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, 10s, [&] { return released_; });
        res.set_content(good_, "application/json");
        break;
      }
      case Mode::kTrickle:
        res.set_chunked_content_provider("application/json",
                                         [this](std::size_t offset, httplib::DataSink& sink) {
                                           std::unique_lock lock(mu_);
                                           if (released_ || offset >= good_.size()) {
                                             sink.done();
                                             return true;
                                           }
                                           cv_.wait_for(lock, 50ms, [&] { return released_; });
                                           return sink.write(good_.data() + offset, 1);
                                         });
        break;
      case Mode::kStatus503:
        res.status = 503;
        res.set_content("window 40% full\n", "text/plain");
        break;
      case Mode::kWrongNode:
        res.set_content(fingerprintOf("node-elsewhere"), "application/json");
        break;
      case Mode::kHuge:
        res.set_content(std::string(5 << 20, ' '), "application/json");
        break;
      case Mode::kOlder:
        if (req.has_param("detail")) {
          res.status = 400;
          res.set_content("detail: only 'spectra' is known\n", "text/plain");
        } else {
          res.set_content(good_, "application/json");
        }
        break;
    }
    if (concurrency_) concurrency_->leave();
  }

  const std::string node_;
  std::atomic<Mode> mode_;
  Concurrency* concurrency_;
  const std::chrono::milliseconds delay_;
  const std::string good_;
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::vector<std::string> details_;  // guarded by mu_
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

PollerOptions fastOptions(std::size_t concurrency = 8) {
  PollerOptions options;
  options.concurrency = concurrency;
  options.timeout = kTimeout;
  return options;
}

}  // namespace

TEST_CASE("good, garbage and hanging agents over rounds: health, breaker, recovery") {
  testing::FakeClock clock;
  StandInAgent good("node-good", StandInAgent::Mode::kGood);
  StandInAgent garbage("node-garbage", StandInAgent::Mode::kGarbage);
  StandInAgent hang("node-hang", StandInAgent::Mode::kHang);
  StaticAgents source({good.agent(), garbage.agent(), hang.agent()});
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions());
  REQUIRE(poller);

  // Rounds 1-3: the hanging agent costs one timeout per round, not more; the bad nodes go
  // Healthy (1 miss) -> Suspect (2) -> Failed (3), the good one stays Healthy.
  const NodeHealth expected[] = {NodeHealth::kHealthy, NodeHealth::kSuspect, NodeHealth::kFailed};
  for (int round = 1; round <= 3; ++round) {
    CAPTURE(round);
    const PollRound r = (*poller)->pollOnce();
    CHECK(r.ok == 1);
    CHECK(r.error == 1);
    CHECK(r.timeout == 1);
    CHECK(r.skippedOpen == 0);
    CHECK(r.took >= kTimeout);      // it waited for the hanging agent...
    CHECK(r.took < 10 * kTimeout);  // ...and not much longer (a generous guard)

    const auto snap = view.snapshot();
    const NodeStatus* g = snap->find("node-good");
    REQUIRE(g);
    CHECK(g->health == NodeHealth::kHealthy);
    REQUIRE(g->fingerprint);
    CHECK(g->fingerprint->node == "node-good");
    CHECK(snap->isUsable(*g, clock.now()));
    for (const char* name : {"node-garbage", "node-hang"}) {
      const NodeStatus* s = snap->find(name);
      REQUIRE(s);
      CHECK(s->consecutiveFailures == round);
      CHECK(s->health == expected[round - 1]);
      CHECK_FALSE(s->fingerprint);
      CHECK_FALSE(snap->isUsable(*s, clock.now()));
      CHECK(s->breaker == (round < 3 ? BreakerState::kClosed : BreakerState::kOpen));
    }
    CHECK(snap->find("node-garbage")->lastError ==
          "agent node-garbage (" + garbage.url() +
              "): invalid fingerprint: not JSON: \"<html><body>It works!</body></html>\"");
    CHECK(snap->find("node-hang")->lastError ==
          "agent node-hang (" + hang.url() + "): timed out after 0.3 s");
    clock.advance(5s);
  }

  // Round 4: both breakers are open; those agents are not even asked.
  const int hangRequests = hang.requests();
  const int garbageRequests = garbage.requests();
  PollRound r = (*poller)->pollOnce();
  CHECK(r.ok == 1);
  CHECK(r.skippedOpen == 2);
  CHECK(r.error + r.timeout == 0);
  CHECK(r.took < 10 * kTimeout);
  CHECK(hang.requests() == hangRequests);
  CHECK(garbage.requests() == garbageRequests);

  // After the 30 s cool-down (counted from the third failure, 5 s ago), each gets one trial.
  // The garbage agent is fixed meanwhile and recovers; the hanging one is seen half-open while
  // its trial is out, then open again.
  garbage.setMode(StandInAgent::Mode::kGood);
  clock.advance(25s);
  PollRound trial;
  std::jthread round5([&] { trial = (*poller)->pollOnce(); });
  REQUIRE(hang.awaitRequests(hangRequests + 1));
  CHECK(view.snapshot()->find("node-hang")->breaker == BreakerState::kHalfOpen);
  round5.join();
  CHECK(trial.ok == 2);
  CHECK(trial.timeout == 1);
  auto snap = view.snapshot();
  CHECK(snap->find("node-garbage")->health == NodeHealth::kHealthy);
  CHECK(snap->find("node-garbage")->breaker == BreakerState::kClosed);
  CHECK(snap->find("node-garbage")->lastError.empty());
  CHECK(snap->isUsable(*snap->find("node-garbage"), clock.now()));
  CHECK(snap->find("node-hang")->health == NodeHealth::kFailed);
  CHECK(snap->find("node-hang")->consecutiveFailures == 4);
  CHECK(snap->find("node-hang")->breaker == BreakerState::kOpen);

  const PollCounters& counters = (*poller)->counters();
  CHECK(counters.ok == 1 + 1 + 1 + 1 + 2);
  CHECK(counters.error == 3);
  CHECK(counters.timeout == 4);
  CHECK(counters.skippedOpen == 2);
  CHECK(counters.rounds == 5);
  CHECK(counters.lastRoundSeconds > 0);
}

TEST_CASE("agents are asked for what admission reads; an older agent, for its summary") {
  testing::FakeClock clock;
  StandInAgent current("node-current", StandInAgent::Mode::kGood);
  StandInAgent older("node-older", StandInAgent::Mode::kOlder);
  StaticAgents source({current.agent(), older.agent()});
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions());
  REQUIRE(poller);
  const PollRound r = (*poller)->pollOnce();
  CHECK(r.ok == 2);
  CHECK(r.error == 0);
  CHECK(current.details() == std::vector<std::string>{"resources"});
  CHECK(older.details() == std::vector<std::string>{"resources", ""});
  const auto snap = view.snapshot();
  REQUIRE(snap->find("node-older"));
  CHECK(snap->find("node-older")->health == NodeHealth::kHealthy);
  REQUIRE(snap->find("node-older")->fingerprint);
  // Any other refusal is a failure, and not asked again without the detail.
  older.setMode(StandInAgent::Mode::kStatus503);
  CHECK((*poller)->pollOnce().error == 1);
  CHECK(older.details().size() == 3);
}

TEST_CASE("every kind of bad answer is a failure with a message") {
  struct Case {
    StandInAgent::Mode mode;
    bool timeout;
    std::string error;  // after "agent NODE (URL): "
    std::chrono::milliseconds limit = kTimeout;
  };
  const Case cases[] = {
      {StandInAgent::Mode::kStatus503, false, "HTTP 503: window 40% full "},
      {StandInAgent::Mode::kWrongNode, false, "serves the fingerprint of node \"node-elsewhere\""},
      // The size is the failure here, not the time: a loaded machine may take more than 0.3 s to
      // move 4 MiB through loopback.
      {StandInAgent::Mode::kHuge, false, "answer larger than 4194304 bytes", 10s},
      // Bytes keep coming, so no single read times out: the whole answer must.
      {StandInAgent::Mode::kTrickle, true, "timed out after 0.3 s"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.error);
    testing::FakeClock clock;
    StandInAgent agent("node-a", c.mode);
    StaticAgents source({agent.agent()});
    FleetView view;
    PollerOptions options = fastOptions();
    options.timeout = c.limit;
    auto poller = FleetPoller::create(source, view, clock, options);
    REQUIRE(poller);
    const PollRound r = (*poller)->pollOnce();
    CHECK(r.took < 10 * c.limit);
    CHECK(r.timeout == (c.timeout ? 1 : 0));
    CHECK(r.error == (c.timeout ? 0 : 1));
    const NodeStatus* s = view.snapshot()->find("node-a");
    REQUIRE(s);
    CHECK(s->consecutiveFailures == 1);
    CHECK(s->lastError == "agent node-a (" + agent.url() + "): " + c.error);
  }
}

TEST_CASE("an agent that is not listening: cannot connect") {
  testing::FakeClock clock;
  std::string url;
  {
    StandInAgent gone("node-gone", StandInAgent::Mode::kGood);
    url = gone.url();
  }  // its port is closed now
  StaticAgents source({{"node-gone", url}});
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions());
  REQUIRE(poller);
  const PollRound r = (*poller)->pollOnce();
  CHECK(r.error == 1);
  CHECK(view.snapshot()->find("node-gone")->lastError ==
        "agent node-gone (" + url + "): cannot connect");
}

TEST_CASE("something other than an agent on its port: not an HTTP answer") {
  // A raw socket that answers a request with a line that is not HTTP (another service's banner).
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  std::jthread banner([listener] {
    const int peer = ::accept(listener, nullptr, nullptr);
    if (peer < 0) return;
    char request[1024];
    [[maybe_unused]] const auto got = ::read(peer, request, sizeof request);
    const std::string line = "SSH-2.0-OpenSSH_9.2p1\r\n";
    [[maybe_unused]] const auto sent = ::write(peer, line.data(), line.size());
    ::close(peer);
  });
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  testing::FakeClock clock;
  StaticAgents source({{"node-ssh", url}});
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions());
  REQUIRE(poller);
  const PollRound r = (*poller)->pollOnce();
  banner.join();
  ::close(listener);
  CHECK(r.error == 1);
  const std::string error = view.snapshot()->find("node-ssh")->lastError;
  CHECK(error.starts_with("agent node-ssh (" + url + "): not an HTTP answer ("));
}

TEST_CASE("at most `concurrency` agents are polled at once") {
  testing::FakeClock clock;
  Concurrency concurrency;
  std::vector<std::unique_ptr<StandInAgent>> agents;
  std::vector<Agent> list;
  for (int i = 0; i < 12; ++i) {
    agents.push_back(std::make_unique<StandInAgent>(
        "node-" + std::to_string(i), StandInAgent::Mode::kGood, &concurrency, 100ms));
    list.push_back(agents.back()->agent());
  }
  StaticAgents source(list);
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions(3));
  REQUIRE(poller);
  const PollRound r = (*poller)->pollOnce();
  CHECK(r.ok == 12);
  CHECK(concurrency.max <= 3);
  CHECK(concurrency.max == 3);  // and the three slots were used together
  for (const auto& agent : agents)
    CHECK(agent->requests() == 1);
}

TEST_CASE("hanging agents hold their slots no longer than the timeout") {
  testing::FakeClock clock;
  std::vector<std::unique_ptr<StandInAgent>> agents;
  std::vector<Agent> list;
  for (int i = 0; i < 8; ++i) {
    agents.push_back(std::make_unique<StandInAgent>(
        "node-" + std::to_string(i),
        i % 2 == 0 ? StandInAgent::Mode::kHang : StandInAgent::Mode::kGood));
    list.push_back(agents.back()->agent());
  }
  StaticAgents source(list);
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions(2));
  REQUIRE(poller);
  // Two slots, four hanging agents: at worst two timeouts in a row per slot.
  const PollRound r = (*poller)->pollOnce();
  CHECK(r.ok == 4);
  CHECK(r.timeout == 4);
  CHECK(r.took < 10 * kTimeout);
}

TEST_CASE("stopping a round cancels the polls in flight without counting them") {
  testing::FakeClock clock;
  StandInAgent hang("node-hang", StandInAgent::Mode::kHang);
  StaticAgents source({hang.agent()});
  FleetView view;
  PollerOptions options = fastOptions();
  options.timeout = 10s;  // so that only the stop can end the round in time
  auto poller = FleetPoller::create(source, view, clock, options);
  REQUIRE(poller);
  std::stop_source stop;
  PollRound r;
  std::jthread round([&] { r = (*poller)->pollOnce(stop.get_token()); });
  REQUIRE(hang.awaitRequests(1));
  stop.request_stop();
  round.join();
  CHECK(r.took < 5s);  // a guard: far less than the 10 s timeout
  CHECK(r.error + r.timeout + r.ok == 0);
  CHECK(view.snapshot()->find("node-hang")->consecutiveFailures == 0);
  CHECK(view.beginPoll("node-hang", clock.now()));  // nothing was left half-done
}

TEST_CASE("run() polls once per interval on the clock until stopped, calling back after each") {
  testing::FakeClock clock;
  StandInAgent good("node-good", StandInAgent::Mode::kGood);
  StaticAgents source({good.agent()});
  FleetView view;
  auto poller = FleetPoller::create(source, view, clock, fastOptions());
  REQUIRE(poller);
  const auto start = clock.now();
  std::atomic<int> rounds{0};
  std::atomic<int> okInLastRound{0};
  std::jthread runner([&](std::stop_token st) {
    (*poller)->run(st, 5s, [&](const PollRound& round) {
      okInLastRound = round.ok;
      ++rounds;  // after the round: its result is in the view already
    });
  });
  REQUIRE(clock.awaitSleeper(start + 5s));
  CHECK(good.requests() == 1);
  CHECK(rounds == 1);
  CHECK(okInLastRound == 1);
  CHECK(*view.snapshot()->find("node-good")->fetchedAt == start);
  clock.advance(5s);
  REQUIRE(clock.awaitSleeper(start + 10s));
  CHECK(good.requests() == 2);
  CHECK(rounds == 2);
  CHECK(*view.snapshot()->find("node-good")->fetchedAt == start + 5s);
  runner.request_stop();
  runner.join();
  CHECK((*poller)->counters().rounds == 2);
}

TEST_CASE("options are checked") {
  testing::FakeClock clock;
  StaticAgents source({});
  FleetView view;
  PollerOptions options;
  options.concurrency = 0;
  CHECK_FALSE(FleetPoller::create(source, view, clock, options));
  options = {};
  options.timeout = 0ms;
  CHECK_FALSE(FleetPoller::create(source, view, clock, options));
  options = {};
  options.path = "fingerprint";
  CHECK_FALSE(FleetPoller::create(source, view, clock, options));
  CHECK(FleetPoller::create(source, view, clock, {}));
}
