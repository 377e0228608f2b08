#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "fakes/fake_clock.h"
#include "fleet/fingerprints.h"
#include "fleet/fleet_view.h"

using namespace pi0;
using namespace pi0::fleet;
using namespace std::chrono_literals;
using fleet::testing::fingerprint;

TEST_CASE("a node's life in the view: data, freshness, Suspect, Failed, breaker, recovery") {
  pi0::testing::FakeClock clock;
  FleetViewOptions options;
  options.staleAfter = 15s;
  FleetView view(options);
  view.setAgents({{"node-a", "http://127.0.0.1:1"}, {"node-b", "http://127.0.0.1:2"}});

  auto snap = view.snapshot();
  REQUIRE(snap->size() == 2);
  const NodeStatus* a = snap->find("node-a");
  REQUIRE(a);
  CHECK(a->url == "http://127.0.0.1:1");
  CHECK(a->health == NodeHealth::kHealthy);
  CHECK_FALSE(a->fingerprint);
  CHECK_FALSE(snap->isUsable(*a, clock.now()));  // no data yet
  CHECK_FALSE(snap->find("node-c"));

  REQUIRE(view.beginPoll("node-a", clock.now()));
  const auto fetched = clock.now();
  auto change = view.recordSuccess("node-a", fingerprint("node-a", {{"cpu", 0.5}}), fetched);
  REQUIRE(change);
  CHECK(change->before == NodeHealth::kHealthy);
  CHECK(change->after == NodeHealth::kHealthy);
  snap = view.snapshot();
  a = snap->find("node-a");
  REQUIRE(a->fingerprint);
  CHECK(a->fingerprint->node == "node-a");
  CHECK(*a->fetchedAt == fetched);
  CHECK(snap->isFresh(*a, clock.now()));
  CHECK(snap->isUsable(*a, clock.now()));
  // Fresh for exactly staleAfter after the fetch.
  CHECK(snap->isFresh(*a, fetched + 15s));
  CHECK_FALSE(snap->isFresh(*a, fetched + 15s + 1ns));

  // Misses: 1 Healthy, 2 Suspect (data still used while fresh), 3 Failed (not used).
  const NodeHealth expected[] = {NodeHealth::kHealthy, NodeHealth::kSuspect, NodeHealth::kFailed};
  for (int miss = 1; miss <= 3; ++miss) {
    CAPTURE(miss);
    clock.advance(1s);
    REQUIRE(view.beginPoll("node-a", clock.now()));
    change = view.recordFailure("node-a", "agent node-a: timed out " + std::to_string(miss),
                                clock.now());
    REQUIRE(change);
    CHECK(change->after == expected[miss - 1]);
    snap = view.snapshot();
    a = snap->find("node-a");
    CHECK(a->consecutiveFailures == miss);
    CHECK(a->health == expected[miss - 1]);
    CHECK(a->lastError == "agent node-a: timed out " + std::to_string(miss));
    CHECK(a->fingerprint);  // the last good one is kept
    CHECK(snap->isFresh(*a, clock.now()));
    CHECK(snap->isUsable(*a, clock.now()) == (miss < 3));
  }
  CHECK(a->breaker == BreakerState::kOpen);
  CHECK_FALSE(view.beginPoll("node-a", clock.now()));

  // After the cool-down one trial goes out, and the snapshot shows the breaker half-open.
  clock.advance(30s);
  CHECK(view.beginPoll("node-a", clock.now()));
  CHECK(view.snapshot()->find("node-a")->breaker == BreakerState::kHalfOpen);
  CHECK_FALSE(view.beginPoll("node-a", clock.now()));
  change = view.recordSuccess("node-a", fingerprint("node-a", {{"cpu", 0.25}}), clock.now());
  CHECK(change->before == NodeHealth::kFailed);
  CHECK(change->after == NodeHealth::kHealthy);  // recovered on the first good poll
  snap = view.snapshot();
  a = snap->find("node-a");
  CHECK(a->consecutiveFailures == 0);
  CHECK(a->breaker == BreakerState::kClosed);
  CHECK(a->lastError.empty());
  CHECK(a->fingerprint->signal("cpu")->gates->isolation == 0.25);
  CHECK(snap->isUsable(*a, clock.now()));
}

TEST_CASE("snapshots are immutable: a held snapshot does not see later writes") {
  pi0::testing::FakeClock clock;
  FleetView view;
  view.setAgents({{"node-a", "http://127.0.0.1:1"}, {"node-b", "http://127.0.0.1:2"}});
  const auto before = view.snapshot();
  view.recordFailure("node-a", "refused", clock.now());
  const auto after = view.snapshot();
  CHECK(before->find("node-a")->consecutiveFailures == 0);
  CHECK(after->find("node-a")->consecutiveFailures == 1);
  // Statuses that did not change are shared, not copied.
  CHECK(before->nodes().at(1) == after->nodes().at(1));  // node-b
}

TEST_CASE("publishLag: writes wait for the lag, then appear together") {
  // The clock starts at its epoch, as steady_clock does on a machine that has just booted.
  pi0::testing::FakeClock clock;
  FleetViewOptions options;
  options.publishLag = std::chrono::hours(1);
  FleetView view(options, clock);
  view.setAgents({{"node-a", "http://127.0.0.1:1"}, {"node-b", "http://127.0.0.1:2"}});
  // The first publish is due at once (nothing was published before), however young the clock.
  REQUIRE(view.snapshot()->size() == 2);

  view.recordSuccess("node-a", fingerprint("node-a", {{"cpu", 0.5}}), clock.now());
  clock.advance(30min);
  view.recordSuccess("node-b", fingerprint("node-b", {{"cpu", 0.5}}), clock.now());
  // Within the lag (an hour after the first publish): the published picture still has no data.
  clock.advance(30min - 1ns);
  auto snap = view.snapshot();
  CHECK_FALSE(snap->find("node-a")->fingerprint);
  CHECK_FALSE(snap->find("node-b")->fingerprint);
  // At the lag both writes appear in one new snapshot.
  clock.advance(1ns);
  snap = view.snapshot();
  CHECK(snap->find("node-a")->fingerprint);
  CHECK(snap->find("node-b")->fingerprint);
  // The lag counts again from that publish.
  view.recordFailure("node-a", "refused", clock.now());
  clock.advance(59min);
  CHECK(view.snapshot()->find("node-a")->consecutiveFailures == 0);
  clock.advance(1min);
  CHECK(view.snapshot()->find("node-a")->consecutiveFailures == 1);

  // Without a lag every write is visible at the next read.
  FleetView exact({}, clock);
  exact.setAgents({{"node-a", "http://127.0.0.1:1"}});
  exact.recordSuccess("node-a", fingerprint("node-a", {{"cpu", 0.5}}), clock.now());
  CHECK(exact.snapshot()->find("node-a")->fingerprint);
}

TEST_CASE("setAgents adds, updates and forgets nodes") {
  pi0::testing::FakeClock clock;
  FleetView view;
  view.setAgents({{"node-a", "http://127.0.0.1:1"}, {"node-b", "http://127.0.0.1:2"}});
  view.recordSuccess("node-a", fingerprint("node-a", {{"cpu", 0.5}}), clock.now());

  // node-a moves to a new address and keeps its data; node-b goes; node-c comes; a duplicate
  // keeps the first entry.
  view.setAgents({{"node-a", "http://127.0.0.1:9"},
                  {"node-c", "http://127.0.0.1:3"},
                  {"node-c", "http://127.0.0.1:4"}});
  const auto snap = view.snapshot();
  CHECK(snap->size() == 2);
  CHECK(snap->find("node-a")->url == "http://127.0.0.1:9");
  CHECK(snap->find("node-a")->fingerprint);
  CHECK_FALSE(snap->find("node-b"));
  CHECK(snap->find("node-c")->url == "http://127.0.0.1:3");

  // A result for a node that was removed while it was polled is dropped.
  CHECK_FALSE(view.recordFailure("node-b", "refused", clock.now()));
  CHECK_FALSE(view.recordSuccess("node-b", fingerprint("node-b", {}), clock.now()));
  CHECK_FALSE(view.beginPoll("node-b", clock.now()));
  CHECK_FALSE(view.snapshot()->find("node-b"));
}

TEST_CASE("readers take snapshots while a writer records") {
  pi0::testing::FakeClock clock;
  FleetView view;
  std::vector<Agent> agents;
  for (int i = 0; i < 20; ++i)
    agents.push_back({"node-" + std::to_string(i), "http://127.0.0.1:" + std::to_string(i + 1)});
  view.setAgents(agents);

  std::atomic<bool> done{false};
  std::atomic<int> inconsistent{0};
  std::vector<std::jthread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        const auto snap = view.snapshot();
        for (const auto& status : snap->nodes()) {
          // Every status is a consistent whole: its health matches its failure count.
          if (status->health != healthAfter(status->consecutiveFailures)) ++inconsistent;
        }
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (const auto& agent : agents) {
      if ((round + agent.url.size()) % 3 == 0) {
        view.recordSuccess(agent.node, fingerprint(agent.node, {{"cpu", 0.5}}), clock.now());
      } else {
        view.recordFailure(agent.node, "refused", clock.now());
      }
    }
  }
  done = true;
  readers.clear();
  CHECK(inconsistent == 0);
  CHECK(view.snapshot()->size() == 20);
}

TEST_CASE("FleetSnapshot::find: by name, also after the snapshot was moved") {
  FleetSnapshot::Nodes nodes;
  for (const char* name : {"node-b", "node-a", "node-c"}) {
    auto status = std::make_shared<NodeStatus>();
    status->node = name;
    nodes.push_back(status);
  }
  FleetSnapshot first(std::move(nodes), std::chrono::seconds(3));
  REQUIRE(first.find("node-a") != nullptr);
  CHECK(first.find("node-a")->node == "node-a");
  CHECK(first.find("node-d") == nullptr);
  CHECK(first.find("") == nullptr);
  FleetSnapshot moved(std::move(first));
  REQUIRE(moved.find("node-c") != nullptr);
  CHECK(moved.find("node-c")->node == "node-c");
  CHECK(moved.size() == 3);
}

TEST_CASE("FleetSnapshot: nodes in name order, a node listed twice keeps its first status") {
  FleetSnapshot::Nodes nodes;
  for (const auto& [name, error] : std::vector<std::pair<std::string, std::string>>{
           {"node-c", ""}, {"node-a", "first"}, {"node-b", ""}, {"node-a", "second"}}) {
    auto status = std::make_shared<NodeStatus>();
    status->node = name;
    status->lastError = error;
    nodes.push_back(status);
  }
  FleetSnapshot snapshot(std::move(nodes), std::chrono::seconds(3));
  REQUIRE(snapshot.size() == 3);
  CHECK(snapshot.nodes()[0]->node == "node-a");
  CHECK(snapshot.nodes()[1]->node == "node-b");
  CHECK(snapshot.nodes()[2]->node == "node-c");
  CHECK(snapshot.find("node-a")->lastError == "first");
}

TEST_CASE("publish: statuses replaced in place, nodes added and removed, find right after each") {
  pi0::testing::FakeClock clock;
  FleetView view;
  view.setAgents({{"node-b", "http://127.0.0.1:2"}, {"node-d", "http://127.0.0.1:4"}});
  auto names = [](const FleetSnapshot& s) {
    std::vector<std::string> out;
    for (const auto& status : s.nodes())
      out.push_back(status->node);
    return out;
  };
  CHECK(names(*view.snapshot()) == std::vector<std::string>{"node-b", "node-d"});
  // Only statuses change: same nodes, the changed one found with its new status.
  view.recordFailure("node-d", "refused", clock.now());
  auto s = view.snapshot();
  CHECK(s->find("node-d")->lastError == "refused");
  CHECK(s->find("node-b")->lastError.empty());
  // The feed adds nodes before, between and after the known ones and changes one.
  NodeStatus a, c, e, b;
  a.node = "node-a";
  c.node = "node-c";
  e.node = "node-e";
  b.node = "node-b";
  b.lastError = "from the feed";
  view.applyStatuses({a, c, e, b}, {}, false);
  s = view.snapshot();
  CHECK(names(*s) == std::vector<std::string>{"node-a", "node-b", "node-c", "node-d", "node-e"});
  for (const auto& status : s->nodes())
    CHECK(s->find(status->node) == status.get());
  CHECK(s->find("node-b")->lastError == "from the feed");
  CHECK(s->find("node-d")->lastError == "refused");
  // Then one goes, and a status changes in the same publish.
  view.applyStatuses({}, {"node-c"}, false);
  view.recordFailure("node-e", "timed out", clock.now());
  s = view.snapshot();
  CHECK(names(*s) == std::vector<std::string>{"node-a", "node-b", "node-d", "node-e"});
  CHECK(s->find("node-c") == nullptr);
  CHECK(s->find("node-e")->lastError == "timed out");
}
