// The fleet feed (fleet/feed.h): a record carries what resourceView reads; the publisher's
// pages (full, delta, removals, a new epoch); a consumer's view fed by them.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/files.h"
#include "fakes/fake_clock.h"
#include "fleet/feed.h"
#include "fleet/fingerprints.h"
#include "fleet/resource_view.h"

using namespace pi0;
using namespace pi0::fleet;
using namespace std::chrono_literals;

namespace {

NodeFingerprint recorded() {
  auto text = readFile(std::filesystem::path(PI0_FIXTURES) / "fleet" / "fingerprint-node-a.json");
  REQUIRE(text);
  auto fp = parseFingerprint(*text);
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  return *fp;
}

bool near(std::optional<double> a, std::optional<double> b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return std::fabs(*a - *b) <= 1e-5 * std::max(1.0, std::fabs(*b));
}

// Every figure a consumer reads of the node, through resourceView, matches to 6 digits.
void checkSameView(const NodeFingerprint& got, const NodeFingerprint& want) {
  for (Resource r : {Resource::kCpu, Resource::kMemory, Resource::kGpu}) {
    CAPTURE(static_cast<int>(r));
    const ResourceView g = resourceView(got, r), w = resourceView(want, r);
    CHECK(g.gates.has_value() == w.gates.has_value());
    if (g.gates && w.gates) {
      CHECK(near(g.gates->fitError, w.gates->fitError));
      CHECK(near(g.gates->gluingDelta, w.gates->gluingDelta));
      CHECK(near(g.gates->isolation, w.gates->isolation));
      CHECK(near(g.gates->lambdaInt, w.gates->lambdaInt));
      CHECK(near(g.gates->lambda1, w.gates->lambda1));
    }
    CHECK(near(g.projectedPeak, w.projectedPeak));
    CHECK(near(g.pressure, w.pressure));
    CHECK(near(g.secondsToTrouble, w.secondsToTrouble));
    for (double t : {0.0, 5.0, 30.0, 90.0})
      CHECK(near(g.forecastAt(t), w.forecastAt(t)));
    CHECK(near(g.anticipatedPeak(20), w.anticipatedPeak(20)));
  }
}

FeedPage parsed(const std::string& body) {
  auto page = parseFeedPage(body);
  REQUIRE_MESSAGE(page, (page ? "" : page.error().message));
  return *page;
}

std::vector<std::string> names(const FeedPage& page) {
  std::vector<std::string> out;
  for (const auto& n : page.nodes)
    out.push_back(n.status.node);
  return out;
}

}  // namespace

TEST_CASE("a record carries what resourceView reads of the real agent's fingerprint, and no more") {
  const NodeFingerprint fp = recorded();
  NodeStatus status;
  status.node = fp.node;
  status.url = "http://10.0.0.7:9560";
  status.fingerprint = std::make_shared<const NodeFingerprint>(fp);
  pi0::testing::FakeClock clock;
  status.fetchedAt = clock.now() - 400ms;
  const auto wallNow = std::chrono::system_clock::time_point(1765000000000ms);

  FeedPage page;
  page.epoch = "e1";
  page.version = 7;
  page.full = true;
  page.sentAt = wallNow;
  const std::string record = feedRecord(status, clock.now(), wallNow);
  const std::string body =
      "{\"apiVersion\":\"stability.pi0.io/v1alpha1\",\"kind\":\"FleetFeed\","
      "\"epoch\":\"e1\",\"version\":7,\"full\":true,\"sentAt\":1765000000000,"
      "\"nodes\":[" +
      record + "],\"removed\":[]}";
  const FeedPage got = parsed(body);
  REQUIRE(got.nodes.size() == 1);
  const FeedPage::Node& n = got.nodes[0];
  CHECK(n.status.node == "node-a");
  CHECK(n.status.url == "http://10.0.0.7:9560");
  REQUIRE(n.age);
  CHECK(*n.age == 400ms);
  REQUIRE(n.status.fingerprint);
  const NodeFingerprint& back = *n.status.fingerprint;
  CHECK(back.timestamp == std::chrono::time_point_cast<std::chrono::milliseconds>(fp.timestamp));
  CHECK(back.ready == fp.ready);
  for (const auto& [name, s] : fp.signals)
    CHECK(back.signals.contains(name) == readByResourceView(name));
  checkSameView(back, fp);
  // The record is a fraction of the agent's own body (summary, no spectra).
  const std::size_t agentBody = toJson(fp, FingerprintDetail::kSummary).size();
  MESSAGE("record " << record.size() << " bytes, the agent's /fingerprint " << agentBody);
  CHECK(record.size() * 2 < agentBody);

  // toJson(page) writes what parseFeedPage reads.
  page.nodes.push_back({n.status, n.age});
  const FeedPage again = parsed(toJson(page));
  REQUIRE(again.nodes.size() == 1);
  checkSameView(*again.nodes[0].status.fingerprint, fp);
}

TEST_CASE("the publisher answers a full page, then what changed, removals and a new epoch") {
  pi0::testing::FakeClock clock;
  FleetView view({}, clock);
  view.setAgents({{"a", "http://10.0.0.1:9560"},
                  {"b", "http://10.0.0.2:9560"},
                  {"c", "http://10.0.0.3:9560"}});
  for (const char* node : {"a", "b", "c"})
    view.recordSuccess(node, fleet::testing::fingerprint(node, {{"cpu", 0.5}, {"memory", 0.6}}),
                       clock.now());
  FeedPublisherOptions options;
  options.refreshEvery = 0s;
  FeedPublisher publisher(view, clock, options);

  auto first = publisher.answer("");
  REQUIRE(first.status == 200);
  CHECK(first.full);
  FeedPage page = parsed(first.body);
  CHECK(page.full);
  CHECK(page.epoch == publisher.epoch());
  CHECK(names(page) == std::vector<std::string>{"a", "b", "c"});
  const std::uint64_t v1 = page.version;

  // Nothing changed: an empty delta of the same version.
  const std::string since = "epoch=" + publisher.epoch() + "&since=";
  page = parsed(publisher.answer(since + std::to_string(v1)).body);
  CHECK_FALSE(page.full);
  CHECK(page.version == v1);
  CHECK(page.nodes.empty());

  // b is polled again, c fails: both in the delta, a is not.
  clock.advance(1s);
  view.recordSuccess("b", fleet::testing::fingerprint("b", {{"cpu", 0.1}}), clock.now());
  view.recordFailure("c", "agent c: timed out", clock.now());
  page = parsed(publisher.answer(since + std::to_string(v1)).body);
  CHECK_FALSE(page.full);
  CHECK(page.version > v1);
  REQUIRE(names(page) == std::vector<std::string>{"b", "c"});
  CHECK(page.nodes[1].status.lastError == "agent c: timed out");
  CHECK(page.nodes[1].status.consecutiveFailures == 1);
  const std::uint64_t v2 = page.version;

  // c leaves the fleet: a removal.
  view.setAgents({{"a", "http://10.0.0.1:9560"}, {"b", "http://10.0.0.2:9560"}});
  page = parsed(publisher.answer(since + std::to_string(v2)).body);
  CHECK(page.nodes.empty());
  CHECK(page.removed == std::vector<std::string>{"c"});
  // From v1, both the change of b and the removal of c.
  page = parsed(publisher.answer(since + std::to_string(v1)).body);
  CHECK(names(page) == std::vector<std::string>{"b"});
  CHECK(page.removed == std::vector<std::string>{"c"});

  // Another epoch, or a version from the future, gets everything.
  CHECK(publisher.answer("epoch=other&since=" + std::to_string(v2)).full);
  CHECK(publisher.answer(since + std::to_string(page.version + 5)).full);

  // A malformed query says what is wrong.
  auto bad = publisher.answer("since=x");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("since") != std::string::npos);
  CHECK(publisher.answer("node=a").status == 400);
}

TEST_CASE("a consumer's view follows the pages: ages on its own clock, removals, full pages") {
  pi0::testing::FakeClock publisherClock, consumerClock;
  consumerClock.advance(1000h);  // the two clocks share nothing
  FleetView source({}, publisherClock);
  source.setAgents({{"a", "http://10.0.0.1:9560"}, {"b", "http://10.0.0.2:9560"}});
  source.recordSuccess("a", fleet::testing::fingerprint("a", {{"cpu", 0.5}}), publisherClock.now());
  publisherClock.advance(2s);  // a's data is 2 s old when sent; b has none
  FeedPublisherOptions options;
  options.refreshEvery = 0s;
  FeedPublisher publisher(source, publisherClock, options);

  FleetViewOptions consumerOptions;
  consumerOptions.staleAfter = 3s;
  FleetView consumer(consumerOptions, consumerClock);
  consumer.setAgents({{"old", "http://10.0.0.9:9560"}});  // not in the feed: a full page drops it
  FeedPage page = parsed(publisher.answer("").body);
  applyFeedPage(consumer, page, consumerClock.now());
  auto snap = consumer.snapshot();
  CHECK(snap->size() == 2);
  CHECK_FALSE(snap->find("old"));
  const NodeStatus* a = snap->find("a");
  REQUIRE(a);
  REQUIRE(a->fetchedAt);
  // Sent within the same millisecond it was answered: the age is the publisher's 2 s.
  CHECK(consumerClock.now() - *a->fetchedAt >= 2s);
  CHECK(consumerClock.now() - *a->fetchedAt < 2s + 50ms);
  CHECK(snap->isUsable(*a, consumerClock.now()));
  // Stale by the consumer's own bound once the feed brings nothing newer.
  CHECK_FALSE(snap->isUsable(*a, consumerClock.now() + 1100ms));
  const NodeStatus* b = snap->find("b");
  REQUIRE(b);
  CHECK_FALSE(b->fingerprint);
  CHECK_FALSE(snap->isUsable(*b, consumerClock.now()));

  // A delta: b gets data, a goes.
  publisherClock.advance(1s);
  source.recordSuccess("b", fleet::testing::fingerprint("b", {{"cpu", 0.2}}), publisherClock.now());
  source.setAgents({{"b", "http://10.0.0.2:9560"}});
  page = parsed(
      publisher.answer("epoch=" + page.epoch + "&since=" + std::to_string(page.version)).body);
  CHECK_FALSE(page.full);
  applyFeedPage(consumer, page, consumerClock.now());
  snap = consumer.snapshot();
  CHECK(snap->size() == 1);
  REQUIRE(snap->find("b"));
  CHECK(snap->isUsable(*snap->find("b"), consumerClock.now()));
}

TEST_CASE("the leader's memory verdict travels with the record, and only when there is one") {
  NodeFingerprint fp = recorded();
  NodeStatus status;
  status.node = fp.node;
  pi0::testing::FakeClock clock;
  status.fetchedAt = clock.now();
  const auto wallNow = std::chrono::system_clock::time_point(1765000000000ms);
  auto pageOf = [&](const NodeFingerprint& f) {
    status.fingerprint = std::make_shared<const NodeFingerprint>(f);
    return parsed(
        "{\"apiVersion\":\"stability.pi0.io/v1alpha1\",\"kind\":\"FleetFeed\",\"epoch\":\"e\","
        "\"version\":1,\"full\":true,\"sentAt\":1765000000000,\"nodes\":[" +
        feedRecord(status, clock.now(), wallNow) + "],\"removed\":[]}");
  };
  CHECK(feedRecord(status, clock.now(), wallNow).find("history") == std::string::npos);
  CHECK_FALSE(pageOf(fp).nodes[0].status.fingerprint->history);

  HistoryVerdict v;
  v.troubled = true;
  v.matches = 9;
  v.troubleMatches = 7;
  v.matchNode = "node-b";
  v.matchAt = std::chrono::system_clock::time_point(1764990000123ms);
  v.matchLabel = "before_trouble";
  v.similarity = 0.981234;
  fp.history = v;
  const FeedPage page = pageOf(fp);
  const auto& back = page.nodes[0].status.fingerprint->history;
  REQUIRE(back);
  CHECK(back->troubled);
  CHECK(back->matches == 9);
  CHECK(back->troubleMatches == 7);
  CHECK(back->matchNode == "node-b");
  CHECK(back->matchAt == v.matchAt);
  CHECK(back->matchLabel == "before_trouble");
  CHECK(near(back->similarity, v.similarity));
  // And through toJson(page), as the publisher writes it.
  FeedPage again;
  again.epoch = "e";
  again.version = 1;
  again.full = true;
  again.sentAt = wallNow;
  again.nodes.push_back(page.nodes[0]);
  CHECK(parsed(toJson(again)).nodes[0].status.fingerprint->history->matchNode == "node-b");

  const std::string head =
      "{\"apiVersion\":\"stability.pi0.io/v1alpha1\",\"kind\":\"FleetFeed\","
      "\"epoch\":\"e\",\"version\":1,\"full\":true,\"sentAt\":1000,\"nodes\":[";
  const std::string bad =
      "{\"node\":\"n1\",\"url\":\"\",\"health\":\"Healthy\",\"failures\":0,\"error\":\"\","
      "\"fetchedAt\":900,\"sampledAt\":800,\"interval\":1,\"ready\":true,\"fill\":1,"
      "\"signals\":{},\"history\":[1,9,7,2.5,\"n2\",5,\"calm\"]}";
  auto refused = parseFeedPage(head + bad + "],\"removed\":[]}");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "nodes[0] (n1).history[3]: 2.5 is out of range");
}

TEST_CASE("a malformed page is refused with the node and the field") {
  const std::string head =
      "{\"apiVersion\":\"stability.pi0.io/v1alpha1\",\"kind\":\"FleetFeed\","
      "\"epoch\":\"e\",\"version\":1,\"full\":true,\"sentAt\":1000,\"nodes\":[";
  const std::string good =
      "{\"node\":\"n1\",\"url\":\"\",\"health\":\"Healthy\",\"failures\":0,\"error\":\"\","
      "\"fetchedAt\":900,\"sampledAt\":800,\"interval\":1,\"ready\":true,\"fill\":1,"
      "\"signals\":{\"cpu\":[0.5,[0.1,0.2,0.3,0.4,0.5],[30,0.5,0.5,0,0.01,1,null,null]]}}";
  CHECK(parseFeedPage(head + good + "],\"removed\":[]}"));

  struct Case {
    std::string record;
    std::string error;
  };
  const Case cases[] = {
      {"{\"node\":\"n1\"}", "nodes[0] (n1): missing url"},
      {std::string(good).replace(good.find("Healthy"), 7, "Fine"),
       "nodes[0] (n1).health: \"Fine\" is not Healthy, Suspect or Failed"},
      {std::string(good).replace(good.find("0.5,[0.1"), 3, "1.5"),
       "nodes[0] (n1).signals.cpu[0]: 1.5 is out of range"},
      {std::string(good).replace(good.find("0.4,0.5]"), 8, "0.4]"),
       "nodes[0] (n1).signals.cpu[1]: not an array of 5"},
      {std::string(good).replace(good.find("[30,"), 4, "[0,"),
       "nodes[0] (n1).signals.cpu[2][0]: must be greater than 0"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.record);
    auto page = parseFeedPage(head + c.record + "],\"removed\":[]}");
    REQUIRE_FALSE(page);
    CHECK(page.error().message == c.error);
  }
  CHECK(parseFeedPage("[]").error().message == "feed: an array where an object belongs");
  CHECK(parseFeedPage("{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}").error().message ==
        "feed: v1 Pod, not stability.pi0.io/v1alpha1 FleetFeed");
}
