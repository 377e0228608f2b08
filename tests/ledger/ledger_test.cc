// The truth ledger on a real SQLite file in a temporary directory: records and their outcomes
// read back as stored, duplicates stored once, the queries' filters, retention by age and by size,
// clear errors for a missing directory, a file that is not a database and a newer schema, and
// the file intact after kill -9 of a writer in the middle of its transactions; the fingerprint
// memory's entries bit for bit with their weights, their retention, and version 1 and 2 files
// migrated.
#include <doctest/doctest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "temp_dir.h"

using namespace pi0;
using namespace pi0::ledger;
using namespace std::chrono_literals;

namespace {

const Time kT0 = Time(std::chrono::milliseconds(1'780'000'000'000));

Decision decision(const std::string& id, Time at, const std::string& node = "node-a",
                  const std::string& channel = "shop/web") {
  Decision d;
  d.id = id;
  d.at = at;
  d.replica = "pi0-webhook-0";
  d.ns = "shop";
  d.pod = "web-7d9f-";
  d.podUid = "uid-" + id;
  d.ownerKind = "ReplicaSet";
  d.ownerName = "web-7d9f";
  d.channel = channel;
  d.mode = "Enforce";
  d.allowed = true;
  d.verdict = true;
  d.reason = "Passed";
  d.node = node;
  d.candidates = 12;
  d.gates = {{"cpu", "fit_error", 0.04, 0.1, 0, true}, {"cpu", "isolation", 0.7, 0.35, 0.05, true}};
  return d;
}

// Options and queries by assignment (GCC 12 warns of every member a designated initializer
// leaves out).
Options at(const std::filesystem::path& path, std::chrono::seconds maxAge = Options{}.maxAge,
           std::uint64_t maxBytes = Options{}.maxBytes) {
  Options o;
  o.path = path;
  o.maxAge = maxAge;
  o.maxBytes = maxBytes;
  return o;
}

template <class Set>
Query query(Set set) {
  Query q;
  set(q);
  return q;
}

// An SQL answer from a second connection to the same file, as another reader would see it.
std::string sqlText(const std::filesystem::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE(
    "decisions, actions and outcomes read back as stored; a record sent twice is stored once") {
  testing::TempDir dir;
  auto ledger = Ledger::open(at(dir.path() / "ledger.db"));
  REQUIRE(ledger);
  CHECK(sqlText(dir.path() / "ledger.db", "PRAGMA journal_mode") == "wal");

  Decision denied = decision("r0/1", kT0 + 1s, "node-b");
  denied.allowed = false;
  denied.verdict = false;
  denied.reason = "GatesFailed";
  denied.holdout = true;
  const std::vector<Decision> batch{decision("r0/0", kT0), denied};
  auto added = (*ledger)->record(batch);
  REQUIRE(added);
  CHECK(*added == 2);
  // The same batch again (a resend after a lost answer): nothing new.
  added = (*ledger)->record(batch);
  REQUIRE(added);
  CHECK(*added == 0);

  auto joined = (*ledger)->addOutcome("r0/0", {"ready", kT0 + 4s, "Ready after 3 s"});
  REQUIRE(joined);
  CHECK(*joined);
  REQUIRE((*ledger)->addOutcome("r0/0", {"oom_killed", kT0 + 60s, "container app: OOMKilled"}));
  // The first outcome of a kind stays; an unknown decision takes none.
  CHECK_FALSE(*(*ledger)->addOutcome("r0/0", {"ready", kT0 + 9s, "again"}));
  CHECK_FALSE(*(*ledger)->addOutcome("r9/9", {"ready", kT0, ""}));

  auto all = (*ledger)->decisions({});
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].decision == denied);  // newest first, its gates in the order they were read
  CHECK((*all)[0].outcomes.empty());
  CHECK((*all)[1].decision == batch[0]);
  CHECK((*all)[1].outcomes ==
        std::vector<Outcome>{{"ready", kT0 + 4s, "Ready after 3 s"},
                             {"oom_killed", kT0 + 60s, "container app: OOMKilled"}});

  const Action action{"shop/matrix/3/1",       kT0 + 2s, "shop/matrix", "shop/batch", "shutdown",
                      "Deployment shop/batch", "L2",     0.83};
  REQUIRE(*(*ledger)->record(std::vector<Action>{action, action}) == 1);
  auto actions = (*ledger)->actions(std::nullopt, 10);
  REQUIRE(actions);
  CHECK(*actions == std::vector<Action>{action});

  auto stats = (*ledger)->stats();
  REQUIRE(stats);
  CHECK(stats->decisions == 2);
  CHECK(stats->actions == 1);
  CHECK(stats->outcomes == 2);
}

TEST_CASE("queries narrow by time, node, channel and pod") {
  testing::TempDir dir;
  auto ledger = Ledger::open(at(dir.path() / "ledger.db"));
  REQUIRE(ledger);
  std::vector<Decision> batch;
  for (int i = 0; i < 20; ++i)
    batch.push_back(decision("r0/" + std::to_string(i), kT0 + std::chrono::seconds(i),
                             i % 2 ? "node-odd" : "node-even", i < 10 ? "shop/web" : "shop/batch"));
  REQUIRE(*(*ledger)->record(batch) == 20);

  auto ids = [&](const Query& q) {
    std::vector<std::string> out;
    auto rows = (*ledger)->decisions(q);
    REQUIRE(rows);
    for (const auto& r : *rows)
      out.push_back(r.decision.id);
    return out;
  };
  CHECK(ids(query([](Query& q) { q.since = kT0 + 17s; })) ==
        std::vector<std::string>{"r0/19", "r0/18", "r0/17"});
  CHECK(ids(query([](Query& q) {
          q.since = kT0 + 3s;
          q.until = kT0 + 5s;
        })) == std::vector<std::string>{"r0/4", "r0/3"});
  CHECK(ids(query([](Query& q) {
          q.node = "node-odd";
          q.channel = "shop/web";
        })) == std::vector<std::string>{"r0/9", "r0/7", "r0/5", "r0/3", "r0/1"});
  CHECK(ids(query([](Query& q) { q.podUid = "uid-r0/12"; })) == std::vector<std::string>{"r0/12"});
  CHECK(ids(query([](Query& q) {
          q.ns = "shop";
          q.pod = "web-7d9f-";
          q.limit = 2;
        })) == std::vector<std::string>{"r0/19", "r0/18"});
  CHECK(ids(query([](Query& q) { q.ns = "elsewhere"; })).empty());
}

TEST_CASE("retention: older than maxAge goes with its outcomes, then the oldest until it fits") {
  testing::TempDir dir;
  const auto file = dir.path() / "ledger.db";
  auto ledger = Ledger::open(at(file, std::chrono::hours(1), 2 << 20));
  REQUIRE(ledger);
  std::vector<Decision> old;
  for (int i = 0; i < 10; ++i)
    old.push_back(decision("old/" + std::to_string(i), kT0));
  REQUIRE(*(*ledger)->record(old) == 10);
  REQUIRE(*(*ledger)->addOutcome("old/0", {"ready", kT0 + 1s, ""}));

  // About 6 MiB of recent decisions (their pod names padded), three times the bound.
  const Time now = kT0 + std::chrono::hours(2);
  for (int b = 0; b < 30; ++b) {
    std::vector<Decision> batch;
    for (int i = 0; i < 100; ++i) {
      Decision d =
          decision("new/" + std::to_string(b * 100 + i),
                   now - std::chrono::minutes(30) + std::chrono::milliseconds(b * 100 + i));
      d.pod = std::string(2000, 'x');
      batch.push_back(std::move(d));
    }
    REQUIRE(*(*ledger)->record(batch) == 100);
  }
  auto before = (*ledger)->stats();
  REQUIRE(before);
  CHECK(before->bytes > (4u << 20));

  auto pruned = (*ledger)->prune(now);
  REQUIRE(pruned);
  CHECK(pruned->bytesBefore == before->bytes);
  CHECK(pruned->bytesAfter <= (2u << 20));
  CHECK(pruned->decisions > 10);
  auto after = (*ledger)->stats();
  REQUIRE(after);
  CHECK(after->outcomes == 0);  // the old decision's outcome went with it
  CHECK(after->decisions == 3010 - pruned->decisions);
  CHECK(after->decisions > 0);
  // What is left is the newest: none of the old, and the last one written.
  auto oldest =
      (*ledger)->decisions(query([&](Query& q) { q.until = now - std::chrono::minutes(31); }));
  REQUIRE(oldest);
  CHECK(oldest->empty());
  auto newest = (*ledger)->decisions(query([](Query& q) { q.limit = 1; }));
  REQUIRE(newest);
  REQUIRE(newest->size() == 1);
  CHECK(newest->front().decision.id == "new/2999");
  CHECK(std::filesystem::file_size(file) <= (2u << 20));
}

TEST_CASE("bad places and bad files are refused with a message that names them") {
  testing::TempDir dir;
  auto missing = Ledger::open(at(dir.path() / "nowhere" / "ledger.db"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "ledger " + (dir.path() / "nowhere" / "ledger.db").string() +
                                       ": the directory " + (dir.path() / "nowhere").string() +
                                       " does not exist");

  const auto text = dir.path() / "notes.txt";
  std::ofstream(text) << std::string(8192, 'n');
  auto notDb = Ledger::open(at(text));
  REQUIRE_FALSE(notDb);
  CHECK(notDb.error().message.starts_with("ledger " + text.string() + ": cannot read ("));
  CHECK(notDb.error().message.find("not a database") != std::string::npos);

  // A ledger written by a newer Pi0.
  const auto newer = dir.path() / "newer.db";
  REQUIRE(Ledger::open(at(newer)));
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(newer.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "UPDATE ledger_meta SET value = '4' WHERE key = 'schema_version'",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto refused = Ledger::open(at(newer));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message ==
        "ledger " + newer.string() + ": schema version 4, this program reads version 3");

  CHECK_FALSE(Ledger::open(at(dir.path() / "a.db", Options{}.maxAge, 1000)));
}

TEST_CASE("kill -9 of a writer mid-stream: the file is intact and holds every committed batch") {
  testing::TempDir dir;
  const auto file = dir.path() / "ledger.db";
  int pipeFds[2];
  REQUIRE(::pipe(pipeFds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The writer: batches of 50 decisions as fast as it can, reporting each commit's total.
    // A failure says why on stderr (the test's output) and exits with a code of its own.
    ::close(pipeFds[0]);
    auto ledger = Ledger::open(at(file));
    if (!ledger) {
      std::fprintf(stderr, "writer: %s\n", ledger.error().message.c_str());
      ::_exit(2);
    }
    for (int b = 0;; ++b) {
      std::vector<Decision> batch;
      for (int i = 0; i < 50; ++i)
        batch.push_back(decision("w/" + std::to_string(b * 50 + i), kT0 + std::chrono::seconds(b)));
      auto added = (*ledger)->record(batch);
      if (!added || *added != 50) {
        std::fprintf(
            stderr, "writer: batch %d: %s\n", b,
            added ? ("added " + std::to_string(*added)).c_str() : added.error().message.c_str());
        ::_exit(3);
      }
      const int total = (b + 1) * 50;
      if (::write(pipeFds[1], &total, sizeof total) != sizeof total) ::_exit(4);
    }
  }
  ::close(pipeFds[1]);
  int committed = 0;
  while (committed < 5000) {
    int total = 0;
    if (::read(pipeFds[0], &total, sizeof total) != sizeof total) {
      int status = 0;
      ::waitpid(child, &status, 0);
      FAIL("the writer stopped by itself after " << committed << " decisions, exit status "
                                                 << (WIFEXITED(status) ? WEXITSTATUS(status) : -1));
    }
    committed = total;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  // The total of the last commit the writer reported before it died (it may have committed more).
  int total = 0;
  while (::read(pipeFds[0], &total, sizeof total) == sizeof total)
    committed = total;
  ::close(pipeFds[0]);

  auto reopened = Ledger::open(at(file));  // runs the integrity check
  REQUIRE(reopened);
  CHECK(sqlText(file, "PRAGMA integrity_check") == "ok");
  auto stats = (*reopened)->stats();
  REQUIRE(stats);
  CHECK(stats->decisions >= committed);
  CHECK(stats->decisions % 50 == 0);  // whole batches only
  auto more = (*reopened)->record(std::vector<Decision>{decision("after", kT0 + 1h)});
  REQUIRE(more);
  CHECK(*more == 1);
}

TEST_CASE("gate rates: falsified admissions and needless denials, by gate, judged ones only") {
  testing::TempDir dir;
  auto ledger = Ledger::open(at(dir.path() / "ledger.db"));
  REQUIRE(ledger);
  // a1 admitted, node fine; a2 admitted, node in trouble; a3 admitted, pod OOM-killed, node fine;
  // d1 denied by isolation, node fine (not needed); d2 denied by isolation, node in trouble;
  // a4 admitted, not judged yet; old admitted and in trouble, before the window.
  std::vector<Decision> made;
  for (const char* id : {"a1", "a2", "a3", "a4", "d1", "d2", "old"})
    made.push_back(decision(id, kT0 + 1min, "node-a"));
  made.back().at = kT0 - 1h;
  made[1].gates[0].value = 0.09;  // a2: fit_error 0.01 inside its threshold 0.1
  for (Decision& d : made) {
    if (d.id[0] != 'd') continue;
    d.allowed = d.verdict = false;
    d.reason = "GatesFailed";
    d.gates[1].passed = false;
  }
  REQUIRE((*ledger)->record(made));
  const std::vector<std::pair<std::string, Outcome>> outcomes = {
      {"a1", {"node_fine", kT0 + 16min, ""}},
      {"a2", {"node_trouble", kT0 + 5min, "psi_cpu 0.30 >= 0.20"}},
      {"a3", {"oom_killed", kT0 + 3min, "container app: OOMKilled"}},
      {"a3", {"node_fine", kT0 + 16min, ""}},
      {"d1", {"node_fine", kT0 + 16min, ""}},
      {"d2", {"node_trouble", kT0 + 4min, ""}},
      {"old", {"node_trouble", kT0 - 50min, ""}}};
  REQUIRE((*ledger)->addOutcomes(outcomes) == 7u);
  auto rates = (*ledger)->gateRates(kT0);
  REQUIRE(rates);
  // fit_error passed in every decision: three admissions judged, two falsified; no denial by it.
  // isolation: the same admissions, and the two denials, one of them not needed. The slack of
  // the falsified admissions (a2, a3) and of the fine one (a1), apart.
  REQUIRE(rates->size() == 2);
  auto counts = [](GateRate r) {
    r.falsifiedSlack = r.fineSlack = 0;
    r.sinceChange = 0;
    r.nearAdmitted = r.nearFalsified = 0;
    return r;
  };
  CHECK(counts((*rates)[0]) == GateRate{"cpu", "fit_error", 3, 2, 0, 0});
  CHECK(counts((*rates)[1]) == GateRate{"cpu", "isolation", 3, 2, 2, 1});
  // No gate's change given: every decision counted is since its last change.
  CHECK((*rates)[0].sinceChange == 3);
  CHECK((*rates)[1].sinceChange == 5);
  CHECK((*rates)[0].nearAdmitted == 0);  // no `near` asked for
  CHECK((*rates)[0].falsifiedSlack == doctest::Approx(0.01 + 0.06));
  CHECK((*rates)[0].fineSlack == doctest::Approx(0.06));
  CHECK((*rates)[1].falsifiedSlack == doctest::Approx(0.35 + 0.35));  // 0.7 − 0.35, a minimum
  CHECK((*rates)[1].fineSlack == doctest::Approx(0.35));
  auto all = (*ledger)->gateRates(kT0 - 2h);
  REQUIRE(all);
  CHECK(counts(all->front()) == GateRate{"cpu", "fit_error", 4, 3, 0, 0});

  SUBCASE("judged again with the thresholds now in force") {
    // fit_error tightened to 0.05 at kT0 + 2min: a2 (0.09) would be denied now, and counts as a
    // denial (its node was in trouble: not a miss); a1 and a3 (0.04) stay admitted, a3
    // falsified, with slack 0.01 each. The denials passed fit_error and pass it still: neither.
    // Nothing was decided since the change.
    // isolation's margin raised to 0.70 (0.05 + 0.70 = 0.75 over 0.7: every decision fails it):
    // the three admissions count as denials with the two denials; a1 and d1 were needless (a3's
    // node stayed fine, but its pod was OOM-killed).
    auto again = (*ledger)->gateRates(
        kT0, {{"fit_error", {0.05, kT0 + 2min, 0.02}}, {"isolation", {0.70, kT0}}});
    REQUIRE(again);
    REQUIRE(again->size() == 2);
    CHECK(counts((*again)[0]) == GateRate{"cpu", "fit_error", 2, 1, 1, 0});
    // Both admissions are 0.01 inside 0.05, under the 0.02 asked for: near, one falsified.
    CHECK((*again)[0].nearAdmitted == 2);
    CHECK((*again)[0].nearFalsified == 1);
    CHECK((*again)[1].nearAdmitted == 0);  // isolation: no `near` given
    CHECK((*again)[0].falsifiedSlack == doctest::Approx(0.01));
    CHECK((*again)[0].fineSlack == doctest::Approx(0.01));
    CHECK((*again)[0].sinceChange == 0);
    CHECK(counts((*again)[1]) == GateRate{"cpu", "isolation", 0, 0, 5, 2});
    CHECK((*again)[1].sinceChange == 5);
    // Loosened to 0.60 (0.65 under 0.7): the admissions pass as they did; the denials would pass
    // now, but their pods never ran, so they count as neither.
    auto looser = (*ledger)->gateRates(kT0, {{"isolation", {0.60, kT0}}});
    REQUIRE(looser);
    REQUIRE(looser->size() == 2);
    CHECK(counts((*looser)[0]) == GateRate{"cpu", "fit_error", 3, 2, 0, 0});  // as stored
    CHECK(counts((*looser)[1]) == GateRate{"cpu", "isolation", 3, 2, 0, 0});
    CHECK((*looser)[1].falsifiedSlack == doctest::Approx(0.05 + 0.05));
    // A holdout decision stays as the fixed thresholds judged it: admitted at fit_error 0.09,
    // though 0.05 would deny it now.
    Decision h = decision("h1", kT0 + 1min, "node-a");
    h.holdout = true;
    h.gates[0].value = 0.09;
    REQUIRE((*ledger)->record(std::vector<Decision>{h}));
    REQUIRE((*ledger)->addOutcomes(std::vector<std::pair<std::string, Outcome>>{
                {"h1", {"node_trouble", kT0 + 5min, ""}}}) == 1u);
    auto withHoldout = (*ledger)->gateRates(kT0, {{"fit_error", {0.05, kT0}}});
    REQUIRE(withHoldout);
    REQUIRE(withHoldout->size() == 4);  // each gate: the others', then the holdout's
    CHECK((*withHoldout)[0].holdout == false);
    GateRate held = counts((*withHoldout)[1]);
    CHECK(held == GateRate{"cpu", "fit_error", 1, 1, 0, 0, true});
  }
}

namespace {

MemoryRecord memoryRecord(const std::string& node, Time at, std::vector<float> features,
                          const std::string& label = "calm", bool followed = false,
                          double weight = 1) {
  return MemoryRecord{node, at, label, followed, std::move(features), weight};
}

// Runs `sql` on the file from a connection of its own.
void sqlExec(const std::filesystem::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  const std::string error = message ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, error);
}

}  // namespace

TEST_CASE("memory entries read back bit for bit, the newest first chosen, oldest first given") {
  testing::TempDir dir;
  const auto file = dir.path() / "ledger.db";
  auto ledger = Ledger::open(at(file));
  REQUIRE(ledger);
  // Values whose bits a text or double round trip could change: a third, a subnormal, -0.
  const std::vector<MemoryRecord> batch{
      memoryRecord("node-a", kT0 + 2s, {1.0f, 1.0f / 3, 1e-40f, -0.0f}, "trouble_onset", true, 10),
      memoryRecord("node-a", kT0, {0.6f, 0.8f}, "calm", false, 300),
      memoryRecord("node-b", kT0 + 1s, {}, "before_trouble", true, 1.25),
  };
  auto added = (*ledger)->record(batch);
  REQUIRE(added);
  CHECK(*added == 3);
  // Sent again, and a node's entry at the same millisecond: stored once.
  added = (*ledger)->record(batch);
  REQUIRE(added);
  CHECK(*added == 0);
  added = (*ledger)->record(std::vector<MemoryRecord>{memoryRecord("node-a", kT0, {1.0f})});
  REQUIRE(added);
  CHECK(*added == 0);

  auto all = (*ledger)->memoryRecords(10);
  REQUIRE(all);
  CHECK(*all == std::vector<MemoryRecord>{batch[1], batch[2], batch[0]});
  // -0 comes back as -0 (== would not tell), the subnormal as itself.
  CHECK(std::signbit((*all)[2].features[3]));
  CHECK((*all)[2].features[2] == 1e-40f);
  // The newest two, oldest first.
  auto newest = (*ledger)->memoryRecords(2);
  REQUIRE(newest);
  CHECK(*newest == std::vector<MemoryRecord>{batch[2], batch[0]});
  // Little-endian float32 in the file: 1.0f is 00 00 80 3F.
  CHECK(sqlText(file, "SELECT hex(features) FROM memory_entries WHERE at_ms = " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             (kT0 + 2s).time_since_epoch())
                                             .count()))
            .starts_with("0000803F"));
  auto stats = (*ledger)->stats();
  REQUIRE(stats);
  CHECK(stats->memoryEntries == 3);

  // A row whose features are not whole float32s (written by something else) is an error that
  // names it.
  ledger->reset();
  sqlExec(file, "UPDATE memory_entries SET features = x'000000' WHERE node = 'node-b'");
  auto reopened = Ledger::open(at(file));
  REQUIRE(reopened);
  auto bad = (*reopened)->memoryRecords(10);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("the features are not whole float32s") != std::string::npos);
}

TEST_CASE("a version 1 ledger is migrated: its records kept, the memory table added") {
  testing::TempDir dir;
  const auto file = dir.path() / "ledger.db";
  {
    auto ledger = Ledger::open(at(file));
    REQUIRE(ledger);
    REQUIRE(*(*ledger)->record(std::vector<Decision>{decision("r0/0", kT0)}) == 1);
  }
  // What version 1 wrote: no memory_entries, version 1.
  sqlExec(file,
          "DROP TABLE memory_entries; UPDATE ledger_meta SET value = '1' WHERE key = "
          "'schema_version'");
  CHECK(sqlText(file, "SELECT count(*) FROM sqlite_master WHERE name = 'memory_entries'") == "0");

  auto ledger = Ledger::open(at(file));
  REQUIRE(ledger);
  CHECK(sqlText(file, "SELECT value FROM ledger_meta WHERE key = 'schema_version'") == "3");
  auto decisions = (*ledger)->decisions({});
  REQUIRE(decisions);
  CHECK(decisions->size() == 1);
  REQUIRE(*(*ledger)->record(std::vector<MemoryRecord>{memoryRecord("node-a", kT0, {1.0f})}) == 1);
  auto records = (*ledger)->memoryRecords(10);
  REQUIRE(records);
  CHECK(records->size() == 1);
}

TEST_CASE("a version 2 ledger is migrated: its memory entries kept, weighed by their sampling") {
  testing::TempDir dir;
  const auto file = dir.path() / "ledger.db";
  {
    auto ledger = Ledger::open(at(file));
    REQUIRE(ledger);
    REQUIRE(*(*ledger)->record(std::vector<MemoryRecord>{
                memoryRecord("node-a", kT0, {1.0f}, "calm", false, 1),
                memoryRecord("node-b", kT0, {1.0f}, "before_trouble", true, 1)}) == 2);
  }
  // What version 2 wrote: memory_entries without weights, version 2.
  sqlExec(file,
          "ALTER TABLE memory_entries DROP COLUMN weight; UPDATE ledger_meta SET value = '2' "
          "WHERE key = 'schema_version'");
  CHECK(sqlText(file,
                "SELECT count(*) FROM pragma_table_info('memory_entries') WHERE name = "
                "'weight'") == "0");

  auto ledger = Ledger::open(at(file));
  REQUIRE(ledger);
  CHECK(sqlText(file, "SELECT value FROM ledger_meta WHERE key = 'schema_version'") == "3");
  // Sampled then at the recorder's defaults: calm every 300 s, before trouble every 10 s.
  auto records = (*ledger)->memoryRecords(10);
  REQUIRE(records);
  REQUIRE(records->size() == 2);
  CHECK((*records)[0].node == "node-a");
  CHECK((*records)[0].weight == 300);
  CHECK((*records)[1].node == "node-b");
  CHECK((*records)[1].weight == 10);
  REQUIRE(*(*ledger)->record(std::vector<MemoryRecord>{
              memoryRecord("node-a", kT0 + 1s, {1.0f}, "before_trouble", true, 10)}) == 1);
  records = (*ledger)->memoryRecords(10);
  REQUIRE(records);
  REQUIRE(records->size() == 3);
  CHECK((*records)[2].label == "before_trouble");
  CHECK((*records)[2].weight == 10);
}

TEST_CASE("retention applies to memory entries: by age, then the oldest until the file fits") {
  testing::TempDir dir;
  const auto file = dir.path() / "ledger.db";
  auto ledger = Ledger::open(at(file, std::chrono::hours(1), 2 << 20));
  REQUIRE(ledger);
  const std::vector<float> features(28, 0.5f);
  std::vector<MemoryRecord> old;
  for (int i = 0; i < 10; ++i)
    old.push_back(memoryRecord("node-" + std::to_string(i), kT0, features));
  REQUIRE(*(*ledger)->record(old) == 10);
  // Recent entries, about 4.5 MiB of them (28 floats and a long node name each), twice the
  // bound.
  const Time now = kT0 + std::chrono::hours(2);
  for (int b = 0; b < 20; ++b) {
    std::vector<MemoryRecord> batch;
    for (int i = 0; i < 1000; ++i)
      batch.push_back(memoryRecord(std::string(100, 'n') + std::to_string(i),
                                   now - std::chrono::minutes(30) + std::chrono::milliseconds(b),
                                   features));
    REQUIRE(*(*ledger)->record(batch) == 1000);
  }
  auto before = (*ledger)->stats();
  REQUIRE(before);
  CHECK(before->memoryEntries == 20010);
  CHECK(before->bytes > (4u << 20));

  auto pruned = (*ledger)->prune(now);
  REQUIRE(pruned);
  CHECK(pruned->memoryEntries > 10);  // the old ten, then some of the recent
  CHECK(pruned->bytesAfter <= (2u << 20));
  auto after = (*ledger)->stats();
  REQUIRE(after);
  CHECK(after->memoryEntries == 20010 - pruned->memoryEntries);
  CHECK(after->memoryEntries > 0);
  // What is left is the newest: none of the old, and the last batch whole.
  auto left = (*ledger)->memoryRecords(100'000);
  REQUIRE(left);
  CHECK(left->size() == static_cast<std::size_t>(after->memoryEntries));
  CHECK(left->front().at > kT0);
  CHECK(left->back().at == now - std::chrono::minutes(30) + std::chrono::milliseconds(19));
}
