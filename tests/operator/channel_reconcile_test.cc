// Scenarios of the Channel reconciler's pure pass (channel_reconcile.h), table by table: what a
// new leader writes from the matrix's status, what Pi0's own actions must not change (the
// reliability of a channel it shut down, the throughput of one it holds, outages while it
// scales), and which Events a pass records. No I/O: each world is built by hand as the I/O
// layer would gather it.
#include <doctest/doctest.h>

#include <functional>

#include "channel_reconcile.h"
#include "common/timestamp.h"

using nlohmann::json;
using namespace pi0;
using namespace pi0::op;
using stability::ChannelState;
using std::chrono::seconds;

namespace {

const WallTime t0 = WallTime{} + seconds(1795000000);  // 2026-11-18T11:06:40Z

stability::ChannelSpec shop(const std::string& name = "batch") {
  stability::ChannelSpec spec;
  spec.ref = {"shop", name};
  spec.generation = 3;
  return spec;
}

kube::ObjectPtr object(const std::string& name, int64_t generation) {
  return std::make_shared<const json>(
      json{{"metadata", {{"namespace", "shop"}, {"name", name}, {"generation", generation}}}});
}

// A channel whose spec parses, in `state`, with `ready` of `desired` replicas ready.
ChannelView view(ChannelState state, int64_t desired, int64_t ready,
                 const stability::ChannelSpec& spec = shop()) {
  ChannelView v;
  v.object = object(spec.ref.name, spec.generation);
  v.spec = spec;
  v.state = state;
  v.desired = desired;
  v.readyReplicas = ready;
  v.ready = ready >= desired;
  return v;
}

// `n` pods, the first `ready` of them Ready.
std::vector<stability::PodSample> pods(int n, int ready) {
  std::vector<stability::PodSample> out;
  for (int i = 0; i < n; ++i) {
    std::string uid = "p";
    uid += std::to_string(i);  // not "p" + ...: GCC 12's -Wrestrict misfires on that
    out.push_back({uid, i < ready, 0});
  }
  return out;
}

// A status as a leader before this one wrote it.
ChannelStatus written(ChannelState state, double reliability = 1.0) {
  ChannelStatus s;
  s.observedGeneration = 3;
  s.measured = true;
  s.state = state;
  s.terms = {1.0, reliability, 1.0};
  s.priority = 0.4 + 0.4 * reliability + 0.2;
  s.failureProbability = 1 - reliability;
  s.health.observedAt = t0 - seconds(60);
  return s;
}

MatrixStatus matrixAt(const std::string& level, int index) {
  MatrixStatus m;
  m.level = level;
  m.levelIndex = index;
  return m;
}

ChannelEntry entryFor(const std::string& name, std::optional<stability::Resources> buffer) {
  ChannelEntry e;
  e.channel = {"shop", name};
  e.buffer = buffer;
  return e;
}

std::vector<std::string> reasons(const ChannelPass& pass) {
  std::vector<std::string> out;
  for (const auto& e : pass.events)
    out.push_back(e.reason);
  return out;
}

constexpr int64_t kMi = int64_t{1} << 20;

// cpu in millicores, memory in MiB.
Quantities mib(int64_t cpuMilli, int64_t memoryMi) {
  return {cpuMilli, memoryMi * kMi};
}

}  // namespace

TEST_CASE("item 9: a new leader's first pass writes the level and the buffer the matrix says") {
  using enum ChannelState;
  enum Entry { kNoEntry, kOwn, kOthers, kNoBuffer };  // the matrix's status.channels entry
  struct Row {
    const char* name;
    int levelIndex;  // of the acting matrix (levels normal, high, critical); -1: none acts
    Entry entry;
    ChannelState state;
    bool bufferBefore;  // the status a leader before wrote has a buffer (baseline 200m, 128Mi)
    std::optional<std::string> wantLevel;
    std::optional<Quantities> wantBaseline;  // nullopt: no buffer
    Quantities wantUsed;
  };
  // The channel's pods request 300m and 256Mi now; its share of the buffer is 500m and 512Mi.
  const Row rows[] = {
      {"Inactive at high, first look", 1, kOwn, kInactive, false, "high", mib(300, 256), {}},
      {"Inactive at high, baseline kept", 1, kOwn, kInactive, true, "high", mib(200, 128),
       mib(100, 128)},
      {"Active at critical: no level", 2, kOwn, kActive, false, {}, mib(300, 256), {}},
      {"Degraded at the first level", 0, kOwn, kDegraded, true, "normal", {}, {}},
      {"another channel's entry", 1, kOthers, kDegraded, true, "high", {}, {}},
      {"an entry without a buffer", 1, kNoBuffer, kDegraded, false, "high", {}, {}},
      {"no entry", 1, kNoEntry, kDegraded, true, "high", {}, {}},
      {"no matrix acts", -1, kNoEntry, kDegraded, true, {}, {}, {}},
  };
  const stability::Resources allocation{500, 512 * kMi};
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const auto v = view(row.state, 2, 2);
    const std::string levels[] = {"normal", "high", "critical"};
    MatrixStatus matrix = matrixAt(levels[std::max(0, row.levelIndex)], row.levelIndex);
    if (row.entry != kNoEntry) {
      matrix.channels.push_back(
          entryFor(row.entry == kOthers ? "web" : "batch",
                   row.entry == kNoBuffer ? std::nullopt : std::optional(allocation)));
    }
    ChannelWorld w;
    w.view = &v;
    w.matrix = row.levelIndex >= 0 ? &matrix : nullptr;
    w.previous = written(row.state);
    w.previous.level = "elevated";  // what the leader before wrote, at another level
    if (row.bufferBefore)
      w.previous.buffer = ChannelBuffer{allocation, {200, 128 * kMi}, {200, 128 * kMi}, {}, t0};
    w.pods = pods(2, 2);
    w.requested = {300, 256 * kMi, 0};
    w.now = t0 + seconds(5);
    // A new leader: no restart baseline of its own (w.restartsByPod unset).
    const auto pass = planChannel(w);
    CHECK(pass.status.level == row.wantLevel);
    REQUIRE(pass.status.buffer.has_value() == row.wantBaseline.has_value());
    if (row.wantBaseline) {
      CHECK(pass.status.buffer->allocated == allocation);
      CHECK(pass.status.buffer->baseline == *row.wantBaseline);
      CHECK(pass.status.buffer->requested == Quantities{300, 256 * kMi});
      CHECK(pass.status.buffer->used == row.wantUsed);
      CHECK(pass.status.buffer->observedAt == t0 + seconds(5));
    }
    CHECK(worthWriting(w.previous, pass.status));
  }
}

TEST_CASE("a channel Pi0 shut down keeps the reliability it had; a running one learns") {
  struct Row {
    ChannelState state;
    int64_t desired, ready;
    double want;  // terms.reliability after one look 60 s after the last
  };
  // Running and all ready: r = 0.7 + (1 − e^(−60/600))·(1 − 0.7) = 0.7 + 0.09516·0.3 = 0.72855.
  const Row rows[] = {
      {ChannelState::kInactive, 0, 0, 0.7},
      {ChannelState::kActive, 2, 2, 0.72855},
      {ChannelState::kDegraded, 1, 1, 0.72855},
  };
  for (const auto& row : rows) {
    CAPTURE(stability::channelStateName(row.state));
    const auto v = view(row.state, row.desired, row.ready);
    ChannelWorld w;
    w.view = &v;
    w.previous = written(row.state, 0.7);
    w.pods = pods(static_cast<int>(row.ready), static_cast<int>(row.ready));
    w.now = t0;
    const auto pass = planChannel(w);
    CHECK(pass.status.terms.reliability == doctest::Approx(row.want).epsilon(1e-4));
    CHECK(pass.status.failureProbability == doctest::Approx(1 - row.want).epsilon(1e-4));
    // And at the next look, still: a channel held at 0 does not drift up with every look.
    if (row.state == ChannelState::kInactive) {
      w.previous = channelStatusFromJson(toJson(pass.status));
      w.now = t0 + seconds(600);
      CHECK(planChannel(w).status.terms.reliability == doctest::Approx(0.7));
    }
  }
}

TEST_CASE("throughput keeps its value from before while Pi0 holds the channel") {
  struct Row {
    const char* name;
    ChannelState state;
    int64_t desired, ready;
    bool measuredBefore;          // the previous status has terms.throughput 0.9
    std::optional<double> query;  // of max 200
    double want;
  };
  const Row rows[] = {
      {"degraded: kept", ChannelState::kDegraded, 1, 1, true, std::nullopt, 0.9},
      {"shut down: kept", ChannelState::kInactive, 0, 0, true, std::nullopt, 0.9},
      {"active: ready over desired", ChannelState::kActive, 3, 2, true, std::nullopt, 2.0 / 3},
      {"degraded, nothing before: ready over desired", ChannelState::kDegraded, 2, 1, false,
       std::nullopt, 0.5},
      {"degraded with a query: the query over its max", ChannelState::kDegraded, 1, 1, true, 50.0,
       0.25},
      {"active with a query: the query over its max", ChannelState::kActive, 3, 3, true, 300.0,
       1.0},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    auto spec = shop();
    if (row.query) spec.throughput = stability::Throughput{"sum(rate(jobs_total[1m]))", 200};
    const auto v = view(row.state, row.desired, row.ready, spec);
    ChannelWorld w;
    w.view = &v;
    if (row.measuredBefore) {
      w.previous = written(ChannelState::kActive);
      w.previous.terms.throughput = 0.9;
    }
    w.throughputValue = row.query;
    w.pods = pods(static_cast<int>(row.ready), static_cast<int>(row.ready));
    w.now = t0;
    const auto pass = planChannel(w);
    CHECK(pass.status.terms.throughput == doctest::Approx(row.want));
    // CPO with the default weights 0.4, 0.4, 0.2.
    CHECK(pass.status.priority ==
          doctest::Approx(0.4 * row.want + 0.4 * pass.status.terms.reliability +
                          0.2 * pass.status.terms.recovery));
  }
}

TEST_CASE("a channel without weights of its own takes the acting matrix's") {
  const auto own = [] {
    auto s = shop();
    s.weights = stability::Weights{0, 1, 0};
    return s;
  }();
  struct Row {
    const char* name;
    stability::ChannelSpec spec;
    double want;  // throughput 0.5, reliability 1, recovery 1
  };
  const Row rows[] = {
      {"the matrix's weights 1, 0, 0", shop(), 0.5},
      {"its own 0, 1, 0", own, 1.0},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const auto v = view(ChannelState::kActive, 2, 1, row.spec);
    const MatrixStatus matrix = matrixAt("normal", 0);
    ChannelWorld w;
    w.view = &v;
    w.matrix = &matrix;
    w.matrixWeights = {1, 0, 0};
    w.pods = pods(1, 1);
    w.now = t0;
    CHECK(planChannel(w).status.priority == doctest::Approx(row.want));
  }
}

TEST_CASE("InvalidSpec and TargetMissing: Events only when the condition turns False") {
  enum Before { kNone, kWasTrue, kWasFalse };  // the condition in the previous status
  struct Row {
    const char* name;
    bool parses;
    std::vector<std::string> problems;
    std::vector<std::string> missing;
    Before valid, found;
    std::vector<std::string> want;
  };
  const std::vector<std::string> unparsed = {"spec.targets: expected an array"};
  const std::vector<std::string> invalid = {"spec.degradedReplicas: must be at least 0"};
  const std::vector<std::string> cache = {"Deployment/cache"};
  const std::vector<std::string> none;
  const Row rows[] = {
      {"does not parse, first look", false, unparsed, none, kNone, kNone, {"InvalidSpec"}},
      {"does not parse, was valid", false, unparsed, none, kWasTrue, kWasTrue, {"InvalidSpec"}},
      {"does not parse, said so", false, unparsed, none, kWasFalse, kWasTrue, none},
      {"does not validate, was valid", true, invalid, none, kWasTrue, kWasTrue, {"InvalidSpec"}},
      {"does not validate, said so", true, invalid, none, kWasFalse, kWasTrue, none},
      {"a target missing, first look", true, none, cache, kNone, kNone, {"TargetMissing"}},
      {"a target goes missing", true, none, cache, kWasTrue, kWasTrue, {"TargetMissing"}},
      {"a target still missing", true, none, cache, kWasTrue, kWasFalse, none},
      {"both at once", true, invalid, cache, kWasTrue, kWasTrue, {"InvalidSpec", "TargetMissing"}},
      {"valid again: no Event", true, none, none, kWasFalse, kWasFalse, none},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    ChannelView v = view(ChannelState::kActive, 2, 2);
    v.object = object("batch", 5);  // the spec was edited: generation 5
    v.spec->generation = 5;
    v.missing = row.missing;
    if (!row.parses) {
      v.spec.reset();
      v.parseError = row.problems.front();
    }
    ChannelWorld w;
    w.view = &v;
    w.problems = row.problems;
    w.previous = written(ChannelState::kActive);
    w.previous.priority = 0.42;
    auto set = [&](const char* type, Before before) {
      if (before != kNone)
        setCondition(w.previous.conditions, type, before == kWasTrue, "Before", "", 3, t0);
    };
    set("Valid", row.valid);
    set("TargetsFound", row.found);
    w.pods = pods(2, 2);
    w.now = t0 + seconds(30);
    const auto pass = planChannel(w);
    CHECK(reasons(pass) == row.want);
    for (const auto& e : pass.events) {
      CHECK(e.type == kube::EventType::kWarning);
      CHECK(e.channel == "shop/batch");
    }
    if (!pass.events.empty() && row.want.front() == "InvalidSpec")
      CHECK(pass.events.front().message == row.problems.front());
    if (row.want == std::vector<std::string>{"TargetMissing"})
      CHECK(pass.events.front().message == "not found in namespace shop: Deployment/cache");

    const Condition* valid = findCondition(pass.status.conditions, "Valid");
    REQUIRE(valid);
    CHECK(valid->status == row.problems.empty());
    CHECK(valid->reason == (row.problems.empty() ? "SpecValid" : "InvalidSpec"));
    CHECK(valid->observedGeneration == 5);
    CHECK(pass.status.observedGeneration == 5);
    if (!row.parses) {
      // Only the condition and the generation change: nothing is measured, no metric, no
      // restart baseline, no requeue (the next edit of the Channel brings it back).
      ChannelStatus expected = w.previous;
      expected.observedGeneration = 5;
      setCondition(expected.conditions, "Valid", false, "InvalidSpec", row.problems.front(), 5,
                   w.now);
      CHECK(pass.status == expected);
      CHECK(pass.status.priority == 0.42);
      CHECK_FALSE(pass.state);
      CHECK_FALSE(pass.restartsByPod);
      CHECK_FALSE(pass.requeue);
    } else {
      CHECK(pass.state == ChannelState::kActive);
      CHECK(pass.requeue);
    }
    // The next pass reads back what this one wrote: no Event again.
    w.previous = channelStatusFromJson(toJson(pass.status));
    w.now += seconds(10);
    CHECK(planChannel(w).events.empty());
  }
}

TEST_CASE("a spec that never parsed: the status is its conditions and generation") {
  ChannelView v;
  v.object = object("batch", 1);
  v.parseError = "spec.selector: expected an object";
  ChannelWorld w;
  w.view = &v;
  w.problems = {v.parseError};
  w.now = t0;
  const auto pass = planChannel(w);
  CHECK(toJson(pass.status) == json{{"observedGeneration", 1},
                                    {"conditions",
                                     {{{"type", "Valid"},
                                       {"status", "False"},
                                       {"reason", "InvalidSpec"},
                                       {"message", "spec.selector: expected an object"},
                                       {"observedGeneration", 1},
                                       {"lastTransitionTime", "2026-11-18T11:06:40Z"}}}}});
  CHECK(worthWriting(channelStatusFromJson(json::object()), pass.status));
  CHECK(reasons(pass) == std::vector<std::string>{"InvalidSpec"});
}

TEST_CASE("pods Pi0 starts or stops are not the channel's outage, unless its restore stalled") {
  enum class Restore { kNone, kUnderWay, kStalled, kOtherChannel };
  struct Row {
    const char* name;
    Restore restore;
    std::optional<seconds> lastActionAgo;  // restoreTimeoutSeconds is 300
    bool outage;
  };
  const Row rows[] = {
      {"nothing of Pi0's", Restore::kNone, std::nullopt, true},
      {"a restore under way", Restore::kUnderWay, std::nullopt, false},
      {"a restore that stalled", Restore::kStalled, std::nullopt, true},
      {"a stalled restore, whatever the last step", Restore::kStalled, seconds(10), true},
      {"another channel's restore", Restore::kOtherChannel, std::nullopt, true},
      {"a step 10 s ago", Restore::kNone, seconds(10), false},
      {"a step 400 s ago", Restore::kNone, seconds(400), true},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    ChannelView v = view(ChannelState::kActive, 3, 1);
    if (row.lastActionAgo) v.lastAction = t0 - *row.lastActionAgo;
    MatrixStatus matrix = matrixAt("normal", 0);
    if (row.restore != Restore::kNone) {
      RestoreRecord r;
      r.channel = {"shop", row.restore == Restore::kOtherChannel ? "web" : "batch"};
      r.phase = RestoreRecord::Phase::kScaling;
      r.stalled = row.restore == Restore::kStalled;
      matrix.progress.restores.push_back(r);
    }
    ChannelWorld w;
    w.view = &v;
    w.matrix = &matrix;
    w.previous = written(ChannelState::kActive);
    w.pods = pods(3, 1);
    w.now = t0;
    const auto pass = planChannel(w);
    CHECK(pass.status.health.notReadySince.has_value() == row.outage);
    CHECK_FALSE(pass.ready);  // not ready either way: it is looked at again soon
    // An excused look counts the ready share as full: reliability does not fall.
    if (row.outage) {
      CHECK(pass.status.terms.reliability < 1.0);
    } else {
      CHECK(pass.status.terms.reliability == 1.0);
    }
  }
}

TEST_CASE("requeue: soon while not ready, at the channel period once ready") {
  struct Row {
    int64_t ready;
    std::vector<std::string> missing;
    std::chrono::milliseconds period;
    std::chrono::nanoseconds want;
  };
  const Row rows[] = {
      {3, {}, std::chrono::milliseconds(10000), seconds(10)},
      {2, {}, std::chrono::milliseconds(10000), seconds(2)},
      {3, {"Deployment/cache"}, std::chrono::milliseconds(10000), seconds(2)},
      {2, {}, std::chrono::milliseconds(500), std::chrono::milliseconds(500)},
  };
  for (const auto& row : rows) {
    ChannelView v = view(ChannelState::kActive, 3, row.ready);
    v.missing = row.missing;
    ChannelWorld w;
    w.view = &v;
    w.period = row.period;
    w.pods = pods(3, static_cast<int>(row.ready));
    w.now = t0;
    const auto pass = planChannel(w);
    REQUIRE(pass.requeue);
    CHECK(*pass.requeue == row.want);
  }
}

TEST_CASE("the restart baseline: carried from the leader's last look, handed back for the next") {
  const auto v = view(ChannelState::kActive, 2, 2);
  ChannelWorld w;
  w.view = &v;
  w.previous = written(ChannelState::kActive);
  w.pods = {{"a", true, 4}, {"b", true, 1}};
  w.now = t0;
  // A new leader: the restarts the pods already have are the baseline, not new ones.
  auto pass = planChannel(w);
  REQUIRE(pass.restartsByPod);
  CHECK(*pass.restartsByPod == std::map<std::string, int>{{"a", 4}, {"b", 1}});
  const double fresh = pass.status.terms.reliability;
  CHECK(fresh == doctest::Approx(1.0));
  // The same leader, one restart of b later: penalized by 5 % (restartPenalty).
  w.restartsByPod = pass.restartsByPod;
  w.pods = {{"a", true, 4}, {"b", true, 2}};
  pass = planChannel(w);
  CHECK(pass.status.terms.reliability == doctest::Approx(0.95));
}

TEST_CASE("a count after the newest pod ends its reservation: written though nothing else moved") {
  // Found by the burst of webhook_admission_with_operator_e2e_test: a pod the operator counted
  // within the webhook's grace after its admission was held twice (in `used` and in its
  // reservation), and with `used` unchanged no later status moved observedAt, so the webhook
  // held it until the reservation's timeout (30 s of denials for room that was free).
  const stability::Resources allocation{500, 512 * kMi};
  MatrixStatus matrix = matrixAt("high", 1);
  matrix.channels.push_back(entryFor("batch", allocation));
  const auto v = view(ChannelState::kActive, 2, 2);
  const WallTime newest = t0 + seconds(100);  // the newest pod's creationTimestamp
  struct Row {
    const char* name;
    WallTime now;
    std::optional<WallTime> countedAt;  // the previous status's observedAt; nullopt: no buffer
    bool matrixElevated;
    bool wantRecount;
    std::optional<std::chrono::nanoseconds> wantRequeue;  // nullopt: the period (ready)
  };
  const Row rows[] = {
      {"counted 0.5 s after the pod: a pass due when the count ends it", newest + seconds(1),
       newest + std::chrono::milliseconds(500), true, false, seconds(3)},
      {"that pass: the count is written",
       newest + kCountedAfter,
       newest + std::chrono::milliseconds(500),
       true,
       true,
       {}},
      {"later, the count written: nothing more",
       newest + seconds(9),
       newest + kCountedAfter,
       true,
       false,
       {}},
      {"no buffer before: written anyway", newest + seconds(9), std::nullopt, true, true, {}},
      {"at the first level no buffer, no count",
       newest + seconds(9),
       newest + std::chrono::milliseconds(500),
       false,
       false,
       {}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    MatrixStatus m = matrix;
    if (!row.matrixElevated) m = matrixAt("normal", 0);
    ChannelWorld w;
    w.view = &v;
    w.matrix = &m;
    w.previous = written(ChannelState::kActive);
    w.pods = pods(2, 2);
    w.requested = {300, 256 * kMi, 0};
    w.newestPod = newest;
    // The status the pass before wrote, at countedAt (with no buffer when there is none).
    w.now = row.countedAt.value_or(newest + std::chrono::milliseconds(500));
    w.previous = planChannel(w).status;
    if (!row.countedAt) w.previous.buffer.reset();
    w.now = row.now;
    const auto pass = planChannel(w);
    CHECK(pass.recount == row.wantRecount);
    REQUIRE(pass.requeue);
    CHECK(*pass.requeue == row.wantRequeue.value_or(seconds(10)));
    // The case this is for: the status is the same but for the count's time.
    if (row.countedAt && row.matrixElevated) CHECK_FALSE(worthWriting(w.previous, pass.status));
  }
}
