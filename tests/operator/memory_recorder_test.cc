// MemoryRecorder (operator/memory_recorder.h) driven by load shapes through the real pieces: a
// node's readings go second by second into the agent's Collector (the real windows, gates and
// forecast, a FakeSampler as the source), its /fingerprint body is read back as the operator
// polls it, and a FleetView whose trim hook hands the untrimmed fingerprint to the recorder
// stores it trimmed, as the leader wires them; round() then runs on the view's snapshot once a
// second. PSI readings are the kernel's avg10, an exponential average (10 s) of the share of time
// stalled, which the shapes set. The properties are judged against the shapes (when the stall
// share was set, when the average crossed the line), not against the recorder's own numbers:
//   - a step up that leads into pressure over the line: one onset, the states of the lookback
//     before it labelled before_trouble, none of the states in trouble stored;
//   - a calm node: a calm sample becomes calm only once the horizon has passed;
//   - a slow memory leak: the calm samples taken within the horizon before the onset become
//     before_trouble, the older ones calm, none stored twice;
//   - spikes into saturation: one onset each, the second's before_trouble states all after the
//     first spike; a spike under the line: nothing;
//   - the same step a second time: seen() calls it troubled before the onset, and not in the
//     calm before the step; the first time, with nothing in memory, it did not (a lead time);
//   - the entries through the ledger and back answer seen() the same; retention prunes them.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/collector.h"
#include "bench/memory/load_run.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_sampler.h"
#include "fleet/fingerprints.h"
#include "fleet/resource_view.h"
#include "ledger/ledger.h"
#include "memory_recorder.h"
#include "temp_dir.h"

using namespace pi0;
using namespace pi0::op;
using namespace std::chrono_literals;
using memory::Label;
using namespace pi0::op::scenario;
using Run = LoadRun;

namespace {

std::vector<memory::Entry> withLabel(const std::vector<memory::Entry>& entries, Label label) {
  std::vector<memory::Entry> out;
  for (const auto& e : entries) {
    if (e.label == label) out.push_back(e);
  }
  return out;
}

// No node's state is stored twice.
bool distinctTimes(const std::vector<memory::Entry>& entries) {
  std::set<std::pair<std::string, ledger::Time>> seen;
  for (const auto& e : entries) {
    if (!seen.insert({e.node, e.time}).second) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a step up into CPU pressure: one onset, the states before it labelled, none in it") {
  Run run;
  constexpr int kStep = 1200, kEnd = 1500;
  run.play([](int t) { return stepLoad(t, kStep); }, 0, kEnd);

  // Ground truth: the first second the average the agent read was at or over the line.
  const auto crossed =
      firstSecond(run.seconds(), 0, kEnd, [](const Second& s) { return s.psiCpu >= 0.2; });
  REQUIRE(crossed);
  CHECK(*crossed > kStep + 30);  // the stall share builds up: a while after the step
  CHECK(*crossed < kStep + 90);

  const auto onsets = withLabel(run.entries(), Label::kTroubleOnset);
  REQUIRE(onsets.size() == 1);  // one episode, however many rounds it lasted
  CHECK(onsets[0].time == run.wallAt(*crossed));
  CHECK(onsets[0].followedByTrouble);
  CHECK(onsets[0].node == kNode);
  CHECK(onsets[0].features == run.seconds()[static_cast<std::size_t>(*crossed)].features);

  // Before trouble: the lookback's vectors (one per 10 s over the 2 minutes before the onset),
  // and the calm samples of the 15 minutes before it; all followed by trouble, none in trouble.
  const auto before = withLabel(run.entries(), Label::kBeforeTrouble);
  const auto onset = onsets[0].time;
  int inLookback = 0;
  for (const auto& e : before) {
    CHECK(e.followedByTrouble);
    CHECK(e.time < onset);
    CHECK(onset - e.time < run.recorder().options().horizon);
    inLookback += onset - e.time <= run.recorder().options().lookback;
  }
  CHECK(inLookback >= 12);  // 120 s / 10 s (a calm sample may add one)
  CHECK(inLookback <= 13);
  // Every lookback vector 10 s or more apart from the next.
  for (std::size_t i = 1; i < before.size(); ++i)
    CHECK(before[i].time - before[i - 1].time >= 10s);
  // Nothing from the seconds in trouble, after the onset, is labelled.
  for (const auto& e : run.entries()) {
    if (e.label != Label::kCalm) CHECK(e.time <= onset);
  }
  CHECK(distinctTimes(run.entries()));
  // Each weighs the time its sampling stands for: the lookback's one per 10 s, the calm
  // samples one per 5 minutes, whatever followed them.
  const double sampleEvery = 10, calmEvery = 300;
  for (const auto& e : run.entries()) {
    if (e.label == Label::kCalm) {
      CHECK(e.weight == calmEvery);
    } else if (e.label == Label::kTroubleOnset) {
      CHECK(e.weight == sampleEvery);
    } else {
      CHECK((e.weight == sampleEvery || e.weight == calmEvery));
      // Within the lookback, the lookback's sampling: outside it, a calm sample.
      CHECK((onset - e.time <= run.recorder().options().lookback) == (e.weight == sampleEvery));
    }
  }
  const auto counts = run.recorder().entriesByLabel();
  CHECK(counts.at(Label::kTroubleOnset) == 1);
  CHECK(counts.at(Label::kBeforeTrouble) == before.size());
  CHECK(counts.at(Label::kCalm) == withLabel(run.entries(), Label::kCalm).size());
}

TEST_CASE("a short outcome horizon: only the states within it are before_trouble") {
  // The compressed day's operators judge outcomes over 15 s. A state stored before_trouble
  // must have been followed by trouble within that horizon, as the ledger judges it: the same
  // step as above, and no before_trouble state more than 15 s before the onset.
  const MemoryRecorderOptions options = MemoryRecorderOptions::forHorizon(15s);
  CHECK(options.horizon == 15s);
  CHECK(options.lookback == 15s);
  CHECK(options.calmEvery == 5s);
  // The production horizon gives the defaults.
  const MemoryRecorderOptions defaults = MemoryRecorderOptions::forHorizon(15min);
  CHECK(defaults.lookback == MemoryRecorderOptions{}.lookback);
  CHECK(defaults.sampleEvery == MemoryRecorderOptions{}.sampleEvery);
  CHECK(defaults.calmEvery == MemoryRecorderOptions{}.calmEvery);
  // Options that say more than the horizon are held to it.
  MemoryRecorderOptions longer;
  longer.horizon = 15s;
  CHECK(MemoryRecorder(longer).options().lookback == 15s);

  Run run(options);
  constexpr int kStep = 1200, kEnd = 1500;
  run.play([](int t) { return stepLoad(t, kStep); }, 0, kEnd);
  const auto onsets = withLabel(run.entries(), Label::kTroubleOnset);
  REQUIRE(onsets.size() == 1);
  const auto before = withLabel(run.entries(), Label::kBeforeTrouble);
  CHECK(before.size() >= 10);  // one every 1.25 s over 15 s, as the poll gives them
  for (const auto& e : before) {
    CHECK(e.time < onsets[0].time);
    CHECK(onsets[0].time - e.time <= 15s);
  }
  // The calm before the step is stored calm, once its horizon has passed.
  CHECK(std::any_of(run.entries().begin(), run.entries().end(), [&](const memory::Entry& e) {
    return e.label == Label::kCalm && e.time < run.wallAt(kStep);
  }));
  CHECK(distinctTimes(run.entries()));
}

TEST_CASE("a calm node: a calm sample is stored calm only once the horizon has passed") {
  MemoryRecorderOptions options;
  Run run(options);
  const Shape calm = [](int) { return Load{}; };
  // The window fills in 64 s: the first vector, and the first calm sample, come at t = 63.
  run.play(calm, 0, 64);
  REQUIRE(run.seconds().back().seen);
  const ledger::Time first = run.seconds().back().seen->at;
  CHECK(first == run.wallAt(63));
  const int horizon =
      static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(options.horizon).count());
  run.play(calm, 64, 63 + horizon);
  CHECK(run.entries().empty());  // a second short of the horizon
  run.play(calm, 63 + horizon, 64 + horizon);
  REQUIRE(run.entries().size() == 1);
  CHECK(run.entries()[0].label == Label::kCalm);
  CHECK_FALSE(run.entries()[0].followedByTrouble);
  CHECK(run.entries()[0].time == first);
  // The next ones every 5 minutes, each after its own horizon.
  run.play(calm, 64 + horizon, 64 + horizon + 601);
  const auto calmEntries = withLabel(run.entries(), Label::kCalm);
  REQUIRE(calmEntries.size() == 3);
  CHECK(calmEntries[1].time == first + 5min);
  CHECK(calmEntries[2].time == first + 10min);
}

TEST_CASE(
    "a slow memory leak: the calm samples within the horizon before it become "
    "before_trouble") {
  Run run;
  // Calm for 30 minutes, then memory grows from 0.45 by 0.018 a minute; over 0.85 its tasks
  // start to stall, more the fuller it is (to 0.5 of the time at 0.95): the average crosses
  // the line about 25 minutes into the leak.
  constexpr int kLeak = 1800;
  const Shape leak = [](int t) { return leakLoad(t, kLeak); };
  run.play(leak, 0, kLeak + 2000);
  const auto crossed = firstSecond(run.seconds(), 0, kLeak + 2000,
                                   [](const Second& s) { return s.psiMemory >= 0.2; });
  REQUIRE(crossed);
  CHECK(*crossed > kLeak + 900);  // a slow one: more than the horizon after it began
  const auto onsets = withLabel(run.entries(), Label::kTroubleOnset);
  REQUIRE(onsets.size() == 1);
  CHECK(onsets[0].time == run.wallAt(*crossed));

  // The calm samples were taken at 63 s and every 5 minutes after, until the onset.
  const auto horizon = run.recorder().options().horizon;
  int calm = 0, before = 0;
  for (int t = 63; t < *crossed; t += 300) {
    const ledger::Time at = run.wallAt(t);
    auto it = std::find_if(run.entries().begin(), run.entries().end(),
                           [&](const memory::Entry& e) { return e.time == at; });
    REQUIRE_MESSAGE(it != run.entries().end(), "the calm sample of second ", t, " is stored");
    if (onsets[0].time - at < horizon) {
      CHECK(it->label == Label::kBeforeTrouble);  // trouble followed within the horizon
      CHECK(it->followedByTrouble);
      ++before;
    } else {
      CHECK(it->label == Label::kCalm);
      CHECK_FALSE(it->followedByTrouble);
      ++calm;
    }
  }
  CHECK(before >= 2);  // 15 minutes / 5, less one when the onset falls just after a sample
  CHECK(calm >= 5);
  // The leak's samples taken more than the horizon before the onset were calm (the memory says
  // what followed within the horizon, and for them nothing did): some were.
  CHECK(std::any_of(run.entries().begin(), run.entries().end(), [&](const memory::Entry& e) {
    return e.label == Label::kCalm && e.time >= run.wallAt(kLeak);
  }));
  CHECK(distinctTimes(run.entries()));
}

TEST_CASE(
    "spikes: into saturation one onset each, the second's states after the first; under "
    "the line nothing") {
  Run run;
  // CPU at 1 for 3 s at 1000 and again at 1040; at 0.9 for 3 s at 2000.
  const Shape spikes = [](int t) {
    Load l;
    if ((t >= 1000 && t < 1003) || (t >= 1040 && t < 1043)) l.cpu = 1.2;  // read as 1
    if (t >= 2000 && t < 2003) l.cpu = 0.9;
    return l;
  };
  run.play(spikes, 0, 2400);
  const auto onsets = withLabel(run.entries(), Label::kTroubleOnset);
  REQUIRE(onsets.size() == 2);
  CHECK(onsets[0].time == run.wallAt(1000));
  CHECK(onsets[1].time == run.wallAt(1040));
  for (const auto& e : withLabel(run.entries(), Label::kBeforeTrouble)) {
    if (e.time > onsets[0].time) {
      // Before the second spike: only states after the first one had ended (at 1003).
      CHECK(e.time >= run.wallAt(1003));
      CHECK(e.time < onsets[1].time);
    }
  }
  // The lookback of the second spike held the first: its states in trouble are not stored.
  for (const auto& e : run.entries())
    CHECK_FALSE((e.time > run.wallAt(1000) && e.time < run.wallAt(1003)));
  CHECK(distinctTimes(run.entries()));
  // The spike to 0.9 troubled nothing: no entry but calm ones after it.
  for (const auto& e : run.entries()) {
    if (e.time > run.wallAt(1100)) CHECK(e.label == Label::kCalm);
  }
}

TEST_CASE(
    "the same step a second time is called troubled before its onset; then through the "
    "ledger") {
  Run run;
  // An hour of calm, the step, two hours of calm, the same step again.
  constexpr int kFirst = 3600, kSecond = kFirst + 150 + 7200, kEnd = kSecond + 300;
  run.play([](int t) { return t < kFirst + 300 ? stepLoad(t, kFirst) : stepLoad(t, kSecond); }, 0,
           kEnd);
  const auto& secs = run.seconds();
  auto crossing = [&](int from) {
    return firstSecond(secs, from, kEnd, [](const Second& s) { return s.psiCpu >= 0.2; });
  };
  const auto onset1 = crossing(kFirst), onset2 = crossing(kSecond);
  REQUIRE(onset1);
  REQUIRE(onset2);
  REQUIRE(withLabel(run.entries(), Label::kTroubleOnset).size() == 2);

  // The first time the memory had seen no trouble: nothing called troubled before the onset.
  const auto flag1 = firstSecond(secs, 0, *onset1, troubled);
  CHECK_FALSE(flag1.has_value());
  const int lead1 = flag1 ? *onset1 - *flag1 : 0;
  // The second time: troubled after the step and before the onset...
  const auto flag2 = firstSecond(secs, kSecond, *onset2, troubled);
  REQUIRE(flag2.has_value());
  const int lead2 = *onset2 - *flag2;
  MESSAGE("lead time: first step ", lead1, " s, second step ", lead2, " s (onsets at +",
          *onset1 - kFirst, " s and +", *onset2 - kSecond, " s after the steps)");
  CHECK(lead2 > 0);
  CHECK(lead2 > lead1);
  CHECK(lead2 >= 20);
  // The verdict the polled fingerprint carries to the webhook's history gate (judged again
  // every 10 s) says so within 10 s of seen(), and not in the calm before the step.
  const auto carried = firstSecond(
      secs, kSecond, *onset2, [](const Second& s) { return s.history && s.history->troubled; });
  REQUIRE(carried.has_value());
  CHECK(*carried - *flag2 <= 10);
  CHECK(secs[static_cast<std::size_t>(*carried)].history->troubleMatches >= 3);
  CHECK_FALSE(firstSecond(secs, kSecond - 1800, kSecond, [](const Second& s) {
                return s.history && s.history->troubled;
              }).has_value());
  // ... from matches that were followed by trouble, the first step's states.
  const auto& flagged = secs[static_cast<std::size_t>(*flag2)].seen->seen;
  CHECK(flagged.matches >= 3);
  REQUIRE(flagged.best);
  CHECK(flagged.best->followedByTrouble);
  CHECK(flagged.best->time > run.wallAt(kFirst));
  CHECK(flagged.best->time <= run.wallAt(*onset1));
  // ... and not in the calm of the half hour before the step, which it has also seen, mostly
  // followed by nothing. (Right after the first step it did at times: the onset labelled up to
  // 13 states of the 2 minutes before it before_trouble, the calm states before the step among
  // them, against one calm sample every 5 minutes; here it took the calm samples of about 80
  // minutes to outweigh them.)
  CHECK_FALSE(firstSecond(secs, kSecond - 1800, kSecond, troubled).has_value());

  // Through the ledger: recorded, the file reopened, read back and loaded into a new recorder,
  // the memory answers seen() the same at every second of the second step.
  pi0::testing::TempDir dir;
  ledger::Options options;
  options.path = dir.path() / "ledger.db";
  options.maxAge = std::chrono::hours(24);
  {
    auto ledger = ledger::Ledger::open(options);
    REQUIRE(ledger);
    auto stored = (*ledger)->record(toRecords(run.entries()));
    REQUIRE(stored);
    CHECK(*stored == run.entries().size());
  }
  auto ledger = ledger::Ledger::open(options);
  REQUIRE(ledger);
  auto records = (*ledger)->memoryRecords(100'000);
  REQUIRE(records);
  REQUIRE(records->size() == run.entries().size());
  MemoryRecorder reloaded;
  CHECK(reloaded.load(entriesOf(*records)) == run.entries().size());
  CHECK(reloaded.entriesByLabel() == run.recorder().entriesByLabel());
  for (int t = kSecond - 60; t < kEnd; ++t) {
    const auto& features = secs[static_cast<std::size_t>(t)].features;
    REQUIRE(features.size() == memory::kFeatureDimensions);
    const auto a = run.recorder().memory().seen(features);
    const auto b = reloaded.memory().seen(features);
    CHECK(a.matches == b.matches);
    CHECK(a.troubleMatches == b.troubleMatches);
    CHECK(a.troubled == b.troubled);
    REQUIRE(a.best.has_value() == b.best.has_value());
    if (a.best) {
      CHECK(a.best->similarity == b.best->similarity);
      CHECK(a.best->time == b.best->time);
      CHECK(a.best->label == b.best->label);
    }
  }

  // Retention: a day after the second step, the first step's entries and the calm before it
  // are older than maxAge (24 h after... the run's start plus a day): pruned, the newer kept.
  const ledger::Time now = run.wallAt(kFirst + 1800) + std::chrono::hours(24);
  auto pruned = (*ledger)->prune(now);
  REQUIRE(pruned);
  const auto cutoff = now - options.maxAge;
  const auto older = std::count_if(run.entries().begin(), run.entries().end(),
                                   [&](const memory::Entry& e) { return e.time < cutoff; });
  CHECK(older > 0);
  CHECK(pruned->memoryEntries == older);
  auto left = (*ledger)->memoryRecords(100'000);
  REQUIRE(left);
  CHECK(left->size() == run.entries().size() - static_cast<std::size_t>(older));
  for (const auto& r : *left)
    CHECK(r.at >= cutoff);
  auto stats = (*ledger)->stats();
  REQUIRE(stats);
  CHECK(stats->memoryEntries == static_cast<std::int64_t>(left->size()));
}

TEST_CASE("records and entries convert both ways; an unknown label is left out") {
  memory::Entry e{kNode, kT0, Label::kBeforeTrouble, true, {0.6f, 0.8f}, 10};
  const ledger::MemoryRecord r = toRecord(e);
  CHECK(r.label == "before_trouble");
  CHECK(r.followedByTrouble);
  CHECK(r.features == e.features);
  CHECK(r.weight == 10);
  const auto back = fromRecord(r);
  REQUIRE(back);
  CHECK(back->node == kNode);
  CHECK(back->time == kT0);
  CHECK(back->label == Label::kBeforeTrouble);
  CHECK(back->weight == 10);
  ledger::MemoryRecord unknown = r;
  unknown.label = "weird";
  CHECK_FALSE(fromRecord(unknown));
  const std::vector<ledger::MemoryRecord> records{r, unknown, r};
  CHECK(entriesOf(records).size() == 2);
}

TEST_CASE("observe from many polling threads while rounds run; stale data drops calm samples") {
  MemoryRecorderOptions options;
  options.calmEvery = 1s;
  options.horizon = 60s;
  MemoryRecorder recorder(options);
  const auto steady0 = Clock::time_point{} + std::chrono::hours(1);
  constexpr int kNodes = 200, kRounds = 120;
  std::vector<std::shared_ptr<const fleet::NodeStatus>> statuses;
  for (int i = 0; i < kNodes; ++i) {
    auto s = std::make_shared<fleet::NodeStatus>();
    s->node = "node-" + std::to_string(i);
    s->fingerprint = std::make_shared<const fleet::NodeFingerprint>(
        fleet::testing::fingerprint(s->node, {{"cpu", 0.5}, {"memory", 0.6}}));
    s->fetchedAt = steady0;
    statuses.push_back(std::move(s));
  }
  for (int r = 0; r < kRounds; ++r) {
    const ledger::Time wall = kT0 + std::chrono::seconds(r);
    std::vector<std::thread> pollers;
    for (int p = 0; p < 4; ++p) {
      pollers.emplace_back([&, p] {
        for (int i = p; i < kNodes; i += 4)
          recorder.observe(*statuses[static_cast<std::size_t>(i)]->fingerprint, wall);
      });
    }
    // The round runs while the pollers observe (the previous second's data for some nodes).
    fleet::FleetSnapshot snapshot(statuses, std::chrono::seconds(15));
    recorder.round(snapshot, steady0 + std::chrono::seconds(r % 10), wall);
    for (auto& t : pollers)
      t.join();
  }
  // Each node: a calm sample about every second from its first vector on, calm after 60 s.
  const auto counts = recorder.entriesByLabel();
  // (A round that ran before a node's poll of its second finds the same vector as the round
  // before, and skips that second.)
  CHECK(counts.at(Label::kCalm) >= static_cast<std::size_t>(kNodes * 40));
  CHECK(distinctTimes(recorder.memory().entries()));
  CHECK(counts.at(Label::kBeforeTrouble) == 0);
  CHECK(counts.at(Label::kTroubleOnset) == 0);
  REQUIRE(recorder.seen("node-7"));
  CHECK(recorder.seen("node-7")->at == kT0 + std::chrono::seconds(kRounds - 1));
  CHECK(recorder.seen("node-7")->seen.matches >= 3);  // the same state, many times
  CHECK_FALSE(recorder.seen("node-7")->seen.troubled);
  CHECK_FALSE(recorder.seen("node-unknown"));
  CHECK(recorder.nearest("node-7", 2).size() == 2);

  // The data goes stale (its fetch 20 s old, past staleAfter): the pending calm samples are
  // dropped, nothing more is stored for lack of seeing the node calm.
  const auto before = recorder.memory().size();
  fleet::FleetSnapshot snapshot(statuses, std::chrono::seconds(15));
  recorder.round(snapshot, steady0 + 20s, kT0 + std::chrono::seconds(kRounds));
  CHECK(recorder.memory().size() == before);
  // Usable again much later: the samples that were pending then never become calm.
  const auto added = recorder.round(snapshot, steady0, kT0 + std::chrono::seconds(kRounds) + 10min);
  CHECK(added.empty());
}
