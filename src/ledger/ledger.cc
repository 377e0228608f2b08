#include "ledger/ledger.h"

#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <utility>
#include <variant>

namespace pi0::ledger {
namespace {

// Version 2 added memory_entries, version 3 their weight. An older file is migrated at open:
// version 1's memory table is created with the rest of the schema (IF NOT EXISTS), version 2's
// gets the column (its entries weigh what the recorder's sampling then gave them), and the
// version is raised; a
// program that reads an older version then refuses the file, since it would not read or write
// what is new.
constexpr int kSchemaVersion = 3;

// The schema (version 3). Plain SQL apart from `seq INTEGER PRIMARY KEY` (SQLite's rowid; a
// server database: a bigint identity column); the memory's features are a BLOB (BYTEA, VARBINARY
// elsewhere).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS ledger_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
  seq        INTEGER PRIMARY KEY,
  id         TEXT NOT NULL UNIQUE,
  at_ms      INTEGER NOT NULL,
  replica    TEXT NOT NULL,
  namespace  TEXT NOT NULL,
  pod        TEXT NOT NULL,
  pod_uid    TEXT NOT NULL,
  owner_kind TEXT NOT NULL,
  owner_name TEXT NOT NULL,
  channel    TEXT NOT NULL,
  mode       TEXT NOT NULL,
  allowed    INTEGER NOT NULL,
  verdict    INTEGER NOT NULL,
  reason     TEXT NOT NULL,
  node       TEXT NOT NULL,
  candidates INTEGER NOT NULL,
  holdout    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at_ms);
CREATE INDEX IF NOT EXISTS decisions_node ON decisions (node, at_ms);
CREATE INDEX IF NOT EXISTS decisions_channel ON decisions (channel, at_ms);
CREATE INDEX IF NOT EXISTS decisions_pod ON decisions (namespace, pod);
CREATE INDEX IF NOT EXISTS decisions_pod_uid ON decisions (pod_uid);
CREATE INDEX IF NOT EXISTS decisions_owner ON decisions (namespace, owner_name);
CREATE TABLE IF NOT EXISTS decision_gates (
  decision_seq  INTEGER NOT NULL REFERENCES decisions (seq) ON DELETE CASCADE,
  ordinal       INTEGER NOT NULL,
  resource      TEXT NOT NULL,
  gate          TEXT NOT NULL,
  value         REAL NOT NULL,
  threshold     REAL NOT NULL,
  request_share REAL NOT NULL,
  passed        INTEGER NOT NULL,
  PRIMARY KEY (decision_seq, ordinal)
);
CREATE INDEX IF NOT EXISTS decision_gates_gate ON decision_gates (resource, gate);
CREATE TABLE IF NOT EXISTS outcomes (
  decision_seq INTEGER NOT NULL REFERENCES decisions (seq) ON DELETE CASCADE,
  kind         TEXT NOT NULL,
  at_ms        INTEGER NOT NULL,
  detail       TEXT NOT NULL,
  PRIMARY KEY (decision_seq, kind)
);
CREATE TABLE IF NOT EXISTS actions (
  seq     INTEGER PRIMARY KEY,
  id      TEXT NOT NULL UNIQUE,
  at_ms   INTEGER NOT NULL,
  matrix  TEXT NOT NULL,
  channel TEXT NOT NULL,
  action  TEXT NOT NULL,
  target  TEXT NOT NULL,
  level   TEXT NOT NULL,
  load    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_at ON actions (at_ms);
CREATE TABLE IF NOT EXISTS memory_entries (
  seq      INTEGER PRIMARY KEY,
  node     TEXT NOT NULL,
  at_ms    INTEGER NOT NULL,
  label    TEXT NOT NULL,
  followed INTEGER NOT NULL,
  features BLOB NOT NULL,
  weight   REAL NOT NULL DEFAULT 1,
  UNIQUE (node, at_ms)
);
CREATE INDEX IF NOT EXISTS memory_entries_at ON memory_entries (at_ms);
)sql";

std::int64_t millis(Time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Time fromMillis(std::int64_t ms) {
  return Time(std::chrono::duration_cast<Time::duration>(std::chrono::milliseconds(ms)));
}

std::string sqliteError(sqlite3* db) {
  return db ? std::string(sqlite3_errmsg(db)) : std::string("out of memory");
}

// A prepared statement, finalized at scope exit. bind() numbers parameters from 1.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      error_ = sqliteError(db);
      stmt_ = nullptr;
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  const std::string& error() const { return error_; }

  void bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void bind(int i, bool v) { sqlite3_bind_int(stmt_, i, v ? 1 : 0); }
  void bind(int i, const std::vector<unsigned char>& v) {
    // A zero-length blob is bound as one, not as NULL (which a null pointer would give).
    static const unsigned char kEmpty = 0;
    sqlite3_bind_blob(stmt_, i, v.empty() ? &kEmpty : v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
  }
  // Binds the values to ?1, ?2, ... in order.
  template <class... Values>
  void bindAll(const Values&... values) {
    int i = 0;
    (bind(++i, values), ...);
  }

  // SQLITE_ROW, SQLITE_DONE or an error code (then error() says what).
  int step() {
    const int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) error_ = sqliteError(db_);
    return rc;
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::vector<unsigned char> blob(int col) const {
    const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(stmt_, col));
    return p ? std::vector<unsigned char>(
                   p, p + static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::vector<unsigned char>();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string error_;
};

// Runs `sql` (statements without results); an error message, or "" when it went through.
std::string exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return {};
  std::string out = message ? message : sqliteError(db);
  sqlite3_free(message);
  return out;
}

// One transaction: commit() or, at scope exit without it, rollback.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db), error_(exec(db, "BEGIN IMMEDIATE")) {}
  ~Transaction() {
    if (open_ && error_.empty()) exec(db_, "ROLLBACK");
  }
  const std::string& error() const { return error_; }
  std::string commit() {
    open_ = false;
    return exec(db_, "COMMIT");
  }

 private:
  sqlite3* db_;
  std::string error_;
  bool open_ = true;
};

// A single integer from `sql`, or an error.
Result<std::int64_t> scalar(sqlite3* db, const char* sql) {
  Statement s(db, sql);
  if (!s.ok()) return fail(s.error());
  if (s.step() != SQLITE_ROW) return fail(s.error().empty() ? "no row" : s.error());
  return s.integer(0);
}

// A memory entry's features as stored: little-endian float32, whatever the host's order, so
// that a file moved to another machine reads the same.
std::vector<unsigned char> encodeFeatures(const std::vector<float>& features) {
  std::vector<unsigned char> out(features.size() * 4);
  for (std::size_t i = 0; i < features.size(); ++i) {
    const auto bits = std::bit_cast<std::uint32_t>(features[i]);
    for (std::size_t b = 0; b < 4; ++b)
      out[4 * i + b] = static_cast<unsigned char>(bits >> (8 * b));
  }
  return out;
}

// nullopt when the bytes are not whole float32s.
std::optional<std::vector<float>> decodeFeatures(const std::vector<unsigned char>& bytes) {
  if (bytes.size() % 4 != 0) return std::nullopt;
  std::vector<float> out(bytes.size() / 4);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint32_t bits = 0;
    for (std::size_t b = 0; b < 4; ++b)
      bits |= static_cast<std::uint32_t>(bytes[4 * i + b]) << (8 * b);
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Ledger>> Ledger::open(Options options) {
  const std::string where = "ledger " + options.path.string() + ": ";
  if (options.path.empty()) return fail("ledger: no database file given");
  if (options.maxAge <= std::chrono::seconds::zero())
    return fail(where + "the retention age must be positive");
  if (options.maxBytes < (1u << 20)) return fail(where + "the size bound must be at least 1 MiB");
  const auto dir =
      options.path.has_parent_path() ? options.path.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return fail(where + "the directory " + dir.string() + " does not exist");

  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(options.path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> db(raw, &sqlite3_close_v2);
  if (rc != SQLITE_OK) return fail(where + "cannot open: " + sqliteError(raw));
  sqlite3_busy_timeout(raw, static_cast<int>(options.busyTimeout.count()));
  sqlite3_extended_result_codes(raw, 1);

  // A file that is not a database fails at its first read, here.
  {
    Statement s(raw, "PRAGMA quick_check");
    if (!s.ok()) return fail(where + "cannot read (" + s.error() + ")");
    if (s.step() != SQLITE_ROW) return fail(where + "cannot read (" + s.error() + ")");
    if (const std::string result = s.text(0); result != "ok")
      return fail(where + "the integrity check failed: " + result +
                  " (move the file aside to start a new ledger)");
  }
  // auto_vacuum must be set before the first table exists (a no-op on an existing file).
  for (const char* pragma : {"PRAGMA auto_vacuum = INCREMENTAL", "PRAGMA journal_mode = WAL",
                             "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON"}) {
    if (auto error = exec(raw, pragma); !error.empty()) return fail(where + pragma + ": " + error);
  }
  {
    Statement s(raw, "PRAGMA journal_mode");
    if (!s.ok() || s.step() != SQLITE_ROW || s.text(0) != "wal")
      return fail(where + "cannot use write-ahead logging (a file system without shared memory?)");
  }
  {
    Transaction tx(raw);
    if (!tx.error().empty()) return fail(where + "cannot write: " + tx.error());
    if (auto error = exec(raw, kSchema); !error.empty())
      return fail(where + "cannot create the schema: " + error);
    Statement version(raw, "SELECT value FROM ledger_meta WHERE key = 'schema_version'");
    if (!version.ok()) return fail(where + version.error());
    if (version.step() == SQLITE_ROW) {
      const std::string found = version.text(0);
      version.reset();
      if (found == "1" || found == "2") {
        // Version 1 lacks only memory_entries, which the schema above has just created; version
        // 2 lacks their weight.
        // Version 2's entries were sampled at the recorder's defaults of the time, calm ones
        // every 5 minutes and most others every 10 s: they weigh that many seconds.
        if (found == "2") {
          if (auto error = exec(raw,
                                "ALTER TABLE memory_entries ADD COLUMN weight REAL NOT NULL "
                                "DEFAULT 1; UPDATE memory_entries SET weight = CASE label WHEN "
                                "'calm' THEN 300 ELSE 10 END");
              !error.empty())
            return fail(where + "cannot migrate schema version 2: " + error);
        }
        Statement migrate(raw, "UPDATE ledger_meta SET value = ?1 WHERE key = 'schema_version'");
        migrate.bind(1, std::to_string(kSchemaVersion));
        if (!migrate.ok() || migrate.step() != SQLITE_DONE)
          return fail(where + "cannot migrate schema version " + found + ": " + migrate.error());
      } else if (found != std::to_string(kSchemaVersion))
        return fail(where + "schema version " + found + ", this program reads version " +
                    std::to_string(kSchemaVersion));
    } else {
      Statement insert(raw, "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', ?1)");
      insert.bind(1, std::to_string(kSchemaVersion));
      if (insert.step() != SQLITE_DONE) return fail(where + insert.error());
    }
    if (auto error = tx.commit(); !error.empty()) return fail(where + "cannot write: " + error);
  }
  sqlite3* rawReader = nullptr;
  const int readRc = sqlite3_open_v2(options.path.c_str(), &rawReader,
                                     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> reader(rawReader, &sqlite3_close_v2);
  if (readRc != SQLITE_OK) return fail(where + "cannot open to read: " + sqliteError(rawReader));
  sqlite3_busy_timeout(rawReader, static_cast<int>(options.busyTimeout.count()));
  sqlite3_extended_result_codes(rawReader, 1);
  return std::unique_ptr<Ledger>(new Ledger(std::move(options), db.release(), reader.release()));
}

Ledger::~Ledger() {
  sqlite3_close_v2(reader_);
  sqlite3_close_v2(db_);
}

Result<std::size_t> Ledger::record(std::span<const Decision> decisions) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  if (!tx.error().empty()) return fail("ledger: " + tx.error());
  Statement s(db_, R"sql(
INSERT INTO decisions (id, at_ms, replica, namespace, pod, pod_uid, owner_kind, owner_name,
                       channel, mode, allowed, verdict, reason, node, candidates, holdout)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
ON CONFLICT (id) DO NOTHING)sql");
  Statement g(db_, R"sql(
INSERT INTO decision_gates (decision_seq, ordinal, resource, gate, value, threshold,
                            request_share, passed)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8))sql");
  if (!s.ok() || !g.ok()) return fail("ledger: " + (s.ok() ? g.error() : s.error()));
  std::size_t added = 0;
  for (const Decision& d : decisions) {
    s.bindAll(d.id, millis(d.at), d.replica, d.ns, d.pod, d.podUid, d.ownerKind, d.ownerName,
              d.channel, d.mode, d.allowed, d.verdict, d.reason, d.node, d.candidates, d.holdout);
    if (s.step() != SQLITE_DONE) return fail("ledger: decision " + d.id + ": " + s.error());
    s.reset();
    if (sqlite3_changes(db_) == 0) continue;  // stored before, with its gates
    ++added;
    const std::int64_t seq = sqlite3_last_insert_rowid(db_);
    for (std::size_t i = 0; i < d.gates.size(); ++i) {
      const GateRecord& gate = d.gates[i];
      g.bindAll(seq, static_cast<std::int64_t>(i), gate.resource, gate.gate, gate.value,
                gate.threshold, gate.requestShare, gate.passed);
      if (g.step() != SQLITE_DONE) return fail("ledger: decision " + d.id + ": " + g.error());
      g.reset();
    }
  }
  if (auto error = tx.commit(); !error.empty()) return fail("ledger: " + error);
  return added;
}

Result<std::size_t> Ledger::record(std::span<const Action> actions) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  if (!tx.error().empty()) return fail("ledger: " + tx.error());
  Statement s(db_, R"sql(
INSERT INTO actions (id, at_ms, matrix, channel, action, target, level, load)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (id) DO NOTHING)sql");
  if (!s.ok()) return fail("ledger: " + s.error());
  std::size_t added = 0;
  for (const Action& a : actions) {
    s.bindAll(a.id, millis(a.at), a.matrix, a.channel, a.action, a.target, a.level, a.load);
    if (s.step() != SQLITE_DONE) return fail("ledger: action " + a.id + ": " + s.error());
    added += static_cast<std::size_t>(sqlite3_changes(db_));
    s.reset();
  }
  if (auto error = tx.commit(); !error.empty()) return fail("ledger: " + error);
  return added;
}

Result<std::size_t> Ledger::record(std::span<const MemoryRecord> entries) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  if (!tx.error().empty()) return fail("ledger: " + tx.error());
  Statement s(db_, R"sql(
INSERT INTO memory_entries (node, at_ms, label, followed, features, weight)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (node, at_ms) DO NOTHING)sql");
  if (!s.ok()) return fail("ledger: " + s.error());
  std::size_t added = 0;
  for (const MemoryRecord& m : entries) {
    s.bindAll(m.node, millis(m.at), m.label, m.followedByTrouble, encodeFeatures(m.features),
              m.weight);
    if (s.step() != SQLITE_DONE)
      return fail("ledger: memory entry of " + m.node + ": " + s.error());
    added += static_cast<std::size_t>(sqlite3_changes(db_));
    s.reset();
  }
  if (auto error = tx.commit(); !error.empty()) return fail("ledger: " + error);
  return added;
}

Result<bool> Ledger::addOutcome(const std::string& decisionId, const Outcome& outcome) {
  const std::pair<std::string, Outcome> one[] = {{decisionId, outcome}};
  auto added = addOutcomes(one);
  if (!added) return fail(added.error().message);
  return *added > 0;
}

Result<Ledger::PodJoins> Ledger::addPodOutcomes(std::span<const PodOutcome> outcomes,
                                                std::chrono::milliseconds horizon) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  if (!tx.error().empty()) return fail("ledger: " + tx.error());
  // The clocks of the webhook's and the operator's nodes may differ: a decision up to a minute
  // "after" the outcome is still the one it follows.
  Statement find(db_, R"sql(
SELECT seq FROM decisions
WHERE pod_uid = ?1 AND ?1 != '' AND at_ms <= ?2 + 60000 AND at_ms >= ?2 - ?3
ORDER BY at_ms DESC, seq DESC LIMIT 1)sql");
  Statement insert(db_, R"sql(
INSERT INTO outcomes (decision_seq, kind, at_ms, detail) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (decision_seq, kind) DO NOTHING)sql");
  if (!find.ok() || !insert.ok())
    return fail("ledger: " + (find.ok() ? insert.error() : find.error()));
  PodJoins joins;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const PodOutcome& o = outcomes[i];
    find.bindAll(o.podUid, millis(o.outcome.at), static_cast<std::int64_t>(horizon.count()));
    const int rc = find.step();
    if (rc == SQLITE_DONE) {
      joins.unmatched.push_back(i);
    } else if (rc == SQLITE_ROW) {
      insert.bindAll(find.integer(0), o.outcome.kind, millis(o.outcome.at), o.outcome.detail);
      if (insert.step() != SQLITE_DONE)
        return fail("ledger: outcome of pod " + o.podUid + ": " + insert.error());
      if (sqlite3_changes(db_) > 0) ++joins.joined[o.outcome.kind];
      insert.reset();
    } else {
      return fail("ledger: outcome of pod " + o.podUid + ": " + find.error());
    }
    find.reset();
  }
  if (auto error = tx.commit(); !error.empty()) return fail("ledger: " + error);
  return joins;
}

Result<std::vector<Decision>> Ledger::awaitingNodeVerdict(Time from, Time to, std::size_t limit) {
  std::lock_guard lock(readMu_);
  Statement s(reader_, R"sql(
SELECT id, at_ms, node FROM decisions d
WHERE at_ms >= ?1 AND at_ms < ?2 AND node != ''
  AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_seq = d.seq
                  AND o.kind IN ('node_trouble', 'node_fine'))
ORDER BY at_ms, seq
LIMIT ?3)sql");
  if (!s.ok()) return fail("ledger: " + s.error());
  s.bindAll(millis(from), millis(to), static_cast<std::int64_t>(limit));
  std::vector<Decision> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    Decision d;
    d.id = s.text(0);
    d.at = Time(std::chrono::milliseconds(s.integer(1)));
    d.node = s.text(2);
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return fail("ledger: " + s.error());
  return out;
}

Result<std::size_t> Ledger::addOutcomes(std::span<const std::pair<std::string, Outcome>> outcomes) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  if (!tx.error().empty()) return fail("ledger: " + tx.error());
  Statement s(db_, R"sql(
INSERT INTO outcomes (decision_seq, kind, at_ms, detail)
SELECT seq, ?2, ?3, ?4 FROM decisions WHERE id = ?1
ON CONFLICT (decision_seq, kind) DO NOTHING)sql");
  if (!s.ok()) return fail("ledger: " + s.error());
  std::size_t added = 0;
  for (const auto& [id, o] : outcomes) {
    s.bindAll(id, o.kind, millis(o.at), o.detail);
    if (s.step() != SQLITE_DONE) return fail("ledger: outcome of " + id + ": " + s.error());
    added += static_cast<std::size_t>(sqlite3_changes(db_));
    s.reset();
  }
  if (auto error = tx.commit(); !error.empty()) return fail("ledger: " + error);
  return added;
}

Result<std::vector<GateRate>> Ledger::gateRates(Time since,
                                                const std::map<std::string, GateNow>& now) {
  std::lock_guard lock(readMu_);
  // The gates judged again, as rows (gate, threshold, changed_ms, near) bound from ?2 on.
  std::string current;
  for (std::size_t i = 0, p = 2; i < now.size(); ++i, p += 4) {
    current += i == 0 ? "VALUES " : ", ";
    current += "(?" + std::to_string(p) + ", ?" + std::to_string(p + 1) + ", ?" +
               std::to_string(p + 2) + ", ?" + std::to_string(p + 3) + ")";
  }
  if (current.empty()) current = "SELECT NULL, NULL, NULL, NULL WHERE 0";
  // `passed` is the gate's verdict now: as stored (always for the holdout's decisions: they
  // stay what the fixed thresholds decided), or with the current threshold (a maximum
  // passes at or under it; isolation's minimum, the request share plus the margin, at or over).
  // A denial counts where the gate fails now and either the decision was a denial or the gate
  // passed it then (judged again); with the stored verdicts that is "denied, and this gate
  // failed".
  const std::string sql = R"sql(
WITH verdicts AS (
  SELECT decision_seq,
         MAX(kind IN ('node_trouble', 'oom_killed', 'evicted')) AS bad,
         MAX(kind = 'node_fine') AS fine,
         MAX(kind IN ('node_trouble', 'node_fine')) AS judged
  FROM outcomes GROUP BY decision_seq
),
current (gate, threshold, changed_ms, near) AS ()sql" +
                          current +
                          R"sql(),
judged AS (
  SELECT g.resource, g.gate, d.holdout, d.verdict, d.at_ms, v.bad, v.fine, g.value,
         g.passed AS passed_then, c.threshold IS NOT NULL AND NOT d.holdout AS again,
         IIF(c.threshold IS NULL OR d.holdout, g.threshold,
             IIF(g.gate = 'isolation', g.request_share + c.threshold, c.threshold)) AS t,
         COALESCE(c.changed_ms, ?1) AS changed_ms, COALESCE(c.near, 0) AS near
  FROM verdicts v
  JOIN decisions d ON d.seq = v.decision_seq
  JOIN decision_gates g ON g.decision_seq = v.decision_seq
  LEFT JOIN current c ON c.gate = g.gate
  WHERE v.judged AND d.at_ms >= ?1
),
gates AS (
  SELECT *,
         CASE WHEN NOT again THEN passed_then
              WHEN gate = 'isolation' THEN NOT (value < t)
              ELSE NOT (value > t) END AS passed,
         IIF(gate = 'isolation', value - t, t - value) AS slack
  FROM judged
)
SELECT resource, gate, holdout,
       SUM(verdict = 1 AND passed),
       SUM(verdict = 1 AND passed AND bad),
       SUM(NOT passed AND (verdict = 0 OR passed_then)),
       SUM(NOT passed AND (verdict = 0 OR passed_then) AND fine AND NOT bad),
       TOTAL(CASE WHEN verdict = 1 AND passed AND bad THEN slack END),
       TOTAL(CASE WHEN verdict = 1 AND passed AND NOT bad THEN slack END),
       SUM(at_ms >= changed_ms AND (verdict = 1 AND passed OR NOT passed AND
                                    (verdict = 0 OR passed_then))),
       SUM(verdict = 1 AND passed AND slack < near),
       SUM(verdict = 1 AND passed AND bad AND slack < near)
FROM gates
GROUP BY resource, gate, holdout
ORDER BY resource, gate, holdout)sql";
  Statement s(reader_, sql.c_str());
  if (!s.ok()) return fail("ledger: " + s.error());
  s.bind(1, millis(since));
  int p = 2;
  for (const auto& [gate, g] : now) {
    s.bind(p++, gate);
    s.bind(p++, g.threshold);
    s.bind(p++, millis(g.changed));
    s.bind(p++, g.near);
  }
  std::vector<GateRate> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    out.push_back({s.text(0), s.text(1), s.integer(3), s.integer(4), s.integer(5), s.integer(6),
                   s.integer(2) != 0, s.real(7), s.real(8), s.integer(9), s.integer(10),
                   s.integer(11)});
  if (rc != SQLITE_DONE) return fail("ledger: " + s.error());
  return out;
}

Result<std::vector<StoredDecision>> Ledger::decisions(const Query& query) {
  std::lock_guard lock(readMu_);
  // Only the filters given, so that SQLite picks the index that serves them (a filter written
  // as "?1 IS NULL OR at_ms >= ?1" would have every query scan the table).
  std::string where;
  std::vector<std::variant<std::int64_t, std::string>> values;
  auto filter = [&](const char* condition, std::variant<std::int64_t, std::string> value) {
    where += (where.empty() ? " WHERE " : " AND ") + std::string(condition) + " ?" +
             std::to_string(values.size() + 1);
    values.push_back(std::move(value));
  };
  if (query.since) filter("at_ms >=", millis(*query.since));
  if (query.until) filter("at_ms <", millis(*query.until));
  if (!query.node.empty()) filter("node =", query.node);
  if (!query.channel.empty()) filter("channel =", query.channel);
  if (!query.ns.empty()) filter("namespace =", query.ns);
  if (!query.pod.empty()) filter("pod =", query.pod);
  if (!query.podUid.empty()) filter("pod_uid =", query.podUid);
  if (!query.ownerName.empty()) filter("owner_name =", query.ownerName);
  const std::string sql = R"sql(
SELECT seq, id, at_ms, replica, namespace, pod, pod_uid, owner_kind, owner_name, channel, mode,
       allowed, verdict, reason, node, candidates, holdout
FROM decisions)sql" + where +
                          " ORDER BY at_ms DESC, seq DESC LIMIT ?" +
                          std::to_string(values.size() + 1);
  Statement s(reader_, sql.c_str());
  if (!s.ok()) return fail("ledger: " + s.error());
  for (std::size_t i = 0; i < values.size(); ++i)
    std::visit([&](const auto& v) { s.bind(static_cast<int>(i + 1), v); }, values[i]);
  s.bind(static_cast<int>(values.size() + 1), static_cast<std::int64_t>(query.limit));
  std::vector<StoredDecision> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    StoredDecision row;
    row.seq = s.integer(0);
    Decision& d = row.decision;
    d.id = s.text(1);
    d.at = fromMillis(s.integer(2));
    d.replica = s.text(3);
    d.ns = s.text(4);
    d.pod = s.text(5);
    d.podUid = s.text(6);
    d.ownerKind = s.text(7);
    d.ownerName = s.text(8);
    d.channel = s.text(9);
    d.mode = s.text(10);
    d.allowed = s.integer(11) != 0;
    d.verdict = s.integer(12) != 0;
    d.reason = s.text(13);
    d.node = s.text(14);
    d.candidates = s.integer(15);
    d.holdout = s.integer(16) != 0;
    out.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return fail("ledger: " + s.error());

  Statement o(reader_,
              "SELECT kind, at_ms, detail FROM outcomes WHERE decision_seq = ?1 ORDER BY at_ms");
  Statement g(reader_, R"sql(
SELECT resource, gate, value, threshold, request_share, passed FROM decision_gates
WHERE decision_seq = ?1 ORDER BY ordinal)sql");
  if (!o.ok() || !g.ok()) return fail("ledger: " + (o.ok() ? g.error() : o.error()));
  for (StoredDecision& row : out) {
    g.bind(1, row.seq);
    while ((rc = g.step()) == SQLITE_ROW)
      row.decision.gates.push_back(
          GateRecord{g.text(0), g.text(1), g.real(2), g.real(3), g.real(4), g.integer(5) != 0});
    if (rc != SQLITE_DONE) return fail("ledger: " + g.error());
    g.reset();
    o.bind(1, row.seq);
    while ((rc = o.step()) == SQLITE_ROW)
      row.outcomes.push_back(Outcome{o.text(0), fromMillis(o.integer(1)), o.text(2)});
    if (rc != SQLITE_DONE) return fail("ledger: " + o.error());
    o.reset();
  }
  return out;
}

Result<std::vector<Action>> Ledger::actions(std::optional<Time> since, std::size_t limit) {
  std::lock_guard lock(readMu_);
  Statement s(reader_, R"sql(
SELECT id, at_ms, matrix, channel, action, target, level, load FROM actions
WHERE (?1 IS NULL OR at_ms >= ?1) ORDER BY at_ms DESC, seq DESC LIMIT ?2)sql");
  if (!s.ok()) return fail("ledger: " + s.error());
  if (since) s.bind(1, millis(*since));
  s.bind(2, static_cast<std::int64_t>(limit));
  std::vector<Action> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    out.push_back(Action{s.text(0), fromMillis(s.integer(1)), s.text(2), s.text(3), s.text(4),
                         s.text(5), s.text(6), s.real(7)});
  if (rc != SQLITE_DONE) return fail("ledger: " + s.error());
  return out;
}

Result<std::vector<MemoryRecord>> Ledger::memoryRecords(std::size_t limit) {
  std::lock_guard lock(readMu_);
  Statement s(reader_, R"sql(
SELECT seq, node, at_ms, label, followed, features, weight FROM memory_entries
ORDER BY at_ms DESC, seq DESC LIMIT ?1)sql");
  if (!s.ok()) return fail("ledger: " + s.error());
  s.bind(1, static_cast<std::int64_t>(limit));
  std::vector<MemoryRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    auto features = decodeFeatures(s.blob(5));
    if (!features)
      return fail("ledger: memory entry " + std::to_string(s.integer(0)) +
                  ": the features are not whole float32s");
    out.push_back(MemoryRecord{s.text(1), fromMillis(s.integer(2)), s.text(3), s.integer(4) != 0,
                               std::move(*features), s.real(6)});
  }
  if (rc != SQLITE_DONE) return fail("ledger: " + s.error());
  std::reverse(out.begin(), out.end());
  return out;
}

namespace {

// The database's pages, used and free, as `db` sees them.
Result<std::uint64_t> bytesOf(sqlite3* db) {
  auto pages = scalar(db, "PRAGMA page_count");
  auto size = scalar(db, "PRAGMA page_size");
  if (!pages || !size) return fail("ledger: " + (pages ? size.error() : pages.error()).message);
  return static_cast<std::uint64_t>(*pages) * static_cast<std::uint64_t>(*size);
}

}  // namespace

Result<Pruned> Ledger::prune(Time now) {
  std::lock_guard lock(mu_);
  Pruned pruned;
  auto before = bytesOf(db_);
  if (!before) return std::unexpected(before.error());
  pruned.bytesBefore = *before;

  auto run = [&](const char* sql, std::int64_t arg) -> Result<std::int64_t> {
    Statement s(db_, sql);
    if (!s.ok()) return fail("ledger: " + s.error());
    s.bind(1, arg);
    if (s.step() != SQLITE_DONE) return fail("ledger: " + s.error());
    return sqlite3_changes(db_);
  };
  auto reclaim = [&]() -> Result<std::uint64_t> {
    if (auto error = exec(db_, "PRAGMA incremental_vacuum"); !error.empty())
      return fail("ledger: " + error);
    // Moves the log into the file and empties it, so that the pages freed count.
    if (auto error = exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)"); !error.empty())
      return fail("ledger: " + error);
    return bytesOf(db_);
  };

  const std::int64_t cutoff = millis(now - options_.maxAge);
  auto d = run("DELETE FROM decisions WHERE at_ms < ?1", cutoff);
  if (!d) return std::unexpected(d.error());
  auto a = run("DELETE FROM actions WHERE at_ms < ?1", cutoff);
  if (!a) return std::unexpected(a.error());
  auto m = run("DELETE FROM memory_entries WHERE at_ms < ?1", cutoff);
  if (!m) return std::unexpected(m.error());
  pruned.decisions += *d;
  pruned.actions += *a;
  pruned.memoryEntries += *m;
  auto bytes = reclaim();
  if (!bytes) return std::unexpected(bytes.error());

  // Over the size bound: the oldest tenth of what is left, again, until it fits (or is empty).
  while (*bytes > options_.maxBytes) {
    auto decisions = scalar(db_, "SELECT count(*) FROM decisions");
    auto actions = scalar(db_, "SELECT count(*) FROM actions");
    auto memories = scalar(db_, "SELECT count(*) FROM memory_entries");
    if (!decisions || !actions || !memories) return fail("ledger: cannot count the records");
    if (*decisions + *actions + *memories == 0) break;
    d =
        run("DELETE FROM decisions WHERE seq IN (SELECT seq FROM decisions ORDER BY at_ms, seq "
            "LIMIT ?1)",
            std::max<std::int64_t>(1, *decisions / 10));
    if (!d) return std::unexpected(d.error());
    a =
        run("DELETE FROM actions WHERE seq IN (SELECT seq FROM actions ORDER BY at_ms, seq "
            "LIMIT ?1)",
            *actions > 0 ? std::max<std::int64_t>(1, *actions / 10) : 0);
    if (!a) return std::unexpected(a.error());
    m =
        run("DELETE FROM memory_entries WHERE seq IN (SELECT seq FROM memory_entries ORDER BY "
            "at_ms, seq LIMIT ?1)",
            *memories > 0 ? std::max<std::int64_t>(1, *memories / 10) : 0);
    if (!m) return std::unexpected(m.error());
    pruned.decisions += *d;
    pruned.actions += *a;
    pruned.memoryEntries += *m;
    bytes = reclaim();
    if (!bytes) return std::unexpected(bytes.error());
  }
  pruned.bytesAfter = *bytes;
  return pruned;
}

Result<Stats> Ledger::stats() {
  std::lock_guard lock(readMu_);
  Stats out;
  auto d = scalar(reader_, "SELECT count(*) FROM decisions");
  auto a = scalar(reader_, "SELECT count(*) FROM actions");
  auto o = scalar(reader_, "SELECT count(*) FROM outcomes");
  auto m = scalar(reader_, "SELECT count(*) FROM memory_entries");
  auto bytes = bytesOf(reader_);
  if (!d || !a || !o || !m || !bytes) return fail("ledger: cannot count the records");
  out.decisions = *d;
  out.actions = *a;
  out.outcomes = *o;
  out.memoryEntries = *m;
  out.bytes = *bytes;
  return out;
}

}  // namespace pi0::ledger
