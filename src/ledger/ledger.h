// Ledger: the truth ledger (DESIGN.md "The learning loop", seed 001 P1): every admission decision
// of every pi0-webhook replica and every action of the operator, and the outcomes joined to them,
// and the fingerprint memory's entries (MemoryRecord), in SQLite (Debian's libsqlite3), the
// embedded default in pi0-operator's leader.
//
// The file is opened in WAL mode with synchronous=NORMAL: a transaction that commit() returned
// from survives kill -9 of the process (the log is in the kernel's page cache); a power loss can
// lose the last transactions, never the file's integrity. Each record call is one transaction.
//
// The schema is plain SQL that a server database takes as it is (tables, an integer sequence as
// the key, timestamps as integer milliseconds since the Unix epoch, a decision's gates as rows of
// their own, no SQLite-only types); only the PRAGMAs and `seq INTEGER PRIMARY KEY` (a rowid alias:
// an identity column elsewhere) are SQLite's. Records carry their own id (the deciding replica's),
// so that a record sent twice is stored once: ON CONFLICT DO NOTHING.
//
// Retention: prune() deletes what is older than maxAge, then the oldest decisions, actions and
// memory entries until the file fits in maxBytes, and gives the pages back (incremental vacuum).
//
// Thread-safety: every member may be called from any thread. Writes go through one connection
// under a mutex; reads (queries, the gates' ratios, the figures) through a second, read-only
// one under its own, so that a long read never holds up a batch being stored (WAL lets readers
// and the writer run at once).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "ledger/records.h"

struct sqlite3;

namespace pi0::ledger {

// Which decisions to read; every field narrows, none set reads all (up to `limit`, newest first).
struct Query {
  std::optional<Time> since;  // at or after
  std::optional<Time> until;  // before
  std::string node;
  std::string channel;
  std::string ns;
  std::string pod;  // with ns: the pod's name or its generateName
  std::string podUid;
  std::string ownerName;  // with ns: the controller that made the pod (a ReplicaSet, a Job, ...)
  std::size_t limit = 100;
};

struct Options {
  std::filesystem::path path;  // the database file; its directory must exist
  std::chrono::seconds maxAge = std::chrono::hours(24 * 7);
  std::uint64_t maxBytes = 256ull << 20;
  std::chrono::milliseconds busyTimeout{5000};  // waits for another connection's lock
};

struct Pruned {
  std::int64_t decisions = 0;  // removed, with their outcomes
  std::int64_t actions = 0;
  std::uint64_t bytesBefore = 0;
  std::uint64_t bytesAfter = 0;
  std::int64_t memoryEntries = 0;
};

// How one gate's decisions turned out, over the decisions given a node verdict (node_trouble or
// node_fine) in a window: what calibration reads (DESIGN.md "The learning loop").
//  - admitted: decisions that Enforce would admit (verdict), whose node passed this gate;
//    falsified: of those, followed by node_trouble, or the pod OOM-killed or evicted.
//  - denied: decisions that Enforce would deny, in which this gate failed; missed: of those, the
//    node stayed fine over the horizon (a denial that was not needed).
//  - falsifiedSlack, fineSlack: how far inside the threshold the admitted decisions' values were
//    (threshold − value; value − threshold for isolation, a minimum), summed over the falsified
//    admissions and over the others.
//  - sinceChange: the decisions counted in admitted or denied that were made at or after the
//    gate's last change (GateNow::changed; all of them when none is given).
//  - nearAdmitted, nearFalsified: the admitted and falsified decisions whose slack was under
//    GateNow::near, those just inside the threshold (none when no `near` is given).
// Judged again (GateNow): a decision counts with the threshold now in force instead of the one
// it was made with. An admission whose value would fail it now counts as denied (missed when
// its node stayed fine); a denial whose value would pass it now counts as neither, because the
// pod never ran. The holdout's decisions are never judged again: they stay what the fixed
// thresholds decided, to be set beside the others.
struct GateRate {
  std::string resource;
  std::string gate;
  std::int64_t admitted = 0;
  std::int64_t falsified = 0;
  std::int64_t denied = 0;
  std::int64_t missed = 0;
  bool holdout =
      false;  // these decisions were judged with the fixed thresholds (Decision::holdout)
  double falsifiedSlack = 0;
  double fineSlack = 0;
  std::int64_t sinceChange = 0;
  std::int64_t nearAdmitted = 0;
  std::int64_t nearFalsified = 0;
  friend bool operator==(const GateRate&, const GateRate&) = default;
};

// A gate's threshold in force now and when it last changed: what gateRates judges again with.
// The threshold is as Thresholds holds it (isolation's margin over the request share). An
// admission whose slack is under `near` counts as near the threshold (GateRate::nearAdmitted).
struct GateNow {
  double threshold = 0;
  Time changed{};
  double near = 0;
};

struct Stats {
  std::int64_t decisions = 0;
  std::int64_t actions = 0;
  std::int64_t outcomes = 0;
  std::uint64_t bytes = 0;  // the database's pages in use and free (not the WAL)
  std::int64_t memoryEntries = 0;
};

// One entry of the fingerprint memory (memory::Entry, src/memory/fingerprint_memory.h) as the
// ledger keeps it, in plain types so that the ledger does not link the memory (the operator's
// MemoryRecorder converts). Stored as a row of memory_entries: the features as a BLOB of
// little-endian IEEE-754 float32, 4 bytes each, in the vector's order.
struct MemoryRecord {
  std::string node;
  Time at;            // when the state was seen (stored to the millisecond)
  std::string label;  // memory::labelName: "calm", "before_trouble", "trouble_onset"
  bool followedByTrouble = false;
  std::vector<float> features;
  double weight = 1;  // memory::Entry::weight: the time the state stands for

  friend bool operator==(const MemoryRecord&, const MemoryRecord&) = default;
};

class Ledger {
 public:
  // Opens or creates the database at options.path, sets WAL mode and creates the schema.
  // Errors name the file and say what is wrong: the directory missing or not writable, a file
  // that is not a database, a schema newer than this program's, a failed integrity check.
  static Result<std::unique_ptr<Ledger>> open(Options options);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Stores the decisions in one transaction; returns how many were new (an id already stored is
  // skipped). On an error nothing of the batch is stored.
  Result<std::size_t> record(std::span<const Decision> decisions);
  Result<std::size_t> record(std::span<const Action> actions);
  // Stores memory entries in one transaction; returns how many were new. A node's entry is keyed
  // by (node, at to the millisecond): one already stored is skipped (a batch sent twice is
  // stored once).
  Result<std::size_t> record(std::span<const MemoryRecord> entries);
  // Joins `outcome` to the decision `decisionId`; false when the decision is not (or no longer)
  // in the ledger, or already has an outcome of that kind.
  Result<bool> addOutcome(const std::string& decisionId, const Outcome& outcome);

  // Joins each outcome to the newest decision about the pod of uid `podUid` made at most
  // `horizon` before the outcome (or up to a minute after it: the two nodes' clocks may differ),
  // in one transaction. Says how many were joined by kind (an outcome of a kind the decision has
  // already is not counted), and which found no decision: one that has not arrived yet (a
  // webhook replica sends its decisions a second later, or after a leader change), or a pod no
  // Pi0 webhook decided on.
  struct PodOutcome {
    std::string podUid;
    Outcome outcome;
  };
  struct PodJoins {
    std::map<std::string, std::size_t> joined;  // by kind
    std::vector<std::size_t> unmatched;         // indexes into the outcomes given
  };
  Result<PodJoins> addPodOutcomes(std::span<const PodOutcome> outcomes,
                                  std::chrono::milliseconds horizon);

  // Decisions made in [from, to) that name a node and have neither a `node_trouble` nor a
  // `node_fine` outcome yet, oldest first, at most `limit`: those whose node's horizon has
  // passed, for the node verdict. Only id, at and node are read.
  Result<std::vector<Decision>> awaitingNodeVerdict(Time from, Time to, std::size_t limit);
  // Adds outcomes by decision id in one transaction; returns how many were new.
  Result<std::size_t> addOutcomes(std::span<const std::pair<std::string, Outcome>> outcomes);

  Result<std::vector<StoredDecision>> decisions(const Query& query);
  // Per resource, gate and holdout (in that order: the holdout's row after the others), over
  // the decisions made at or after `since`: as they were judged, or, for the gates named in
  // `now` (by gate name), judged again with the threshold now in force (see GateRate).
  Result<std::vector<GateRate>> gateRates(Time since,
                                          const std::map<std::string, GateNow>& now = {});
  // Newest first, at most `limit`.
  Result<std::vector<Action>> actions(std::optional<Time> since, std::size_t limit);
  // The newest `limit` memory entries, returned oldest first (by time, then order of storing):
  // what refills the memory at start (FingerprintMemory::add keeps the newest when full). Fails
  // on a row whose features are not whole float32s.
  Result<std::vector<MemoryRecord>> memoryRecords(std::size_t limit);

  // Applies the retention (see above) as of `now`.
  Result<Pruned> prune(Time now);
  Result<Stats> stats();

  const Options& options() const { return options_; }

 private:
  Ledger(Options options, sqlite3* db, sqlite3* reader)
      : options_(std::move(options)), db_(db), reader_(reader) {}

  const Options options_;
  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_: every write
  std::mutex readMu_;
  sqlite3* reader_;  // guarded by readMu_: read-only
};

}  // namespace pi0::ledger
