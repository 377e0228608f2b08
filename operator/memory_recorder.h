// MemoryRecorder: the fingerprint memory (src/memory/fingerprint_memory.h, seed 001 P4) fed from
// the operator leader's fleet polling: every node's states as feature vectors, labelled with what
// followed them, so that the state a node is in now can be asked "seen before, and followed by
// trouble?".
//
// Two entry points, because the fleet view keeps fingerprints trimmed (FleetViewOptions::trim,
// fleet::trimToResourceView drops the spectra and signals the features read):
//  - observe(): called from the trim hook with the untrimmed fingerprint, before the trim. It
//    takes the features (memory::featuresOf) and keeps, per node, the latest vector and the
//    recent ones: at most one every `sampleEvery`, over `lookback`. Nothing is labelled here.
//  - round(): called once per poll round by the leader with the (trimmed) snapshot. It reads each
//    node's trouble as the truth ledger does (nodeTrouble, operator/outcomes.h) and turns the
//    kept vectors into labelled entries, which it adds to its FingerprintMemory and returns (for
//    the ledger: toRecords(), Ledger::record).
// The features see what the poll asked the agent for: at ?detail=resources (fleet::Poller's
// default) only cpu, memory, psi_cpu, psi_memory and gpu<i>_sm, so that disk, network, psi_io,
// the GPU memory and slowShare are zeros; ?detail=summary fills all but slowShare (spectra).
//
// What becomes an entry, and why:
//  - Trouble onset: a node whose usable data shows trouble at a round, after its previous usable
//    round showed none. Its latest vector becomes a kTroubleOnset entry (followedByTrouble), and
//    its recent vectors taken before it, within `lookback`, kBeforeTrouble entries (followed):
//    the states that led into it. A node's first usable round tells nothing of an onset (it may
//    have been in trouble for long): no entry then.
//  - Calm samples: at a round that finds a node not in trouble, its latest vector is put aside
//    as pending when it was taken at least `calmEvery` after the last one put aside. Once
//    `horizon` (the outcome horizon of the ledger's node verdicts) has passed since the vector
//    was taken, every round since having found the node usable and without an onset, it is
//    stored kCalm (not followed). When trouble begins within the horizon, it is stored
//    kBeforeTrouble (followed) at the onset, with the lookback's vectors: the memory's labels
//    say what followed a state within the horizon, and that one was followed.
//    A round that finds the node's data not usable (stale, Failed) drops its pending samples:
//    calm must be seen over the whole horizon, and an agent that stops answering is often a
//    node in trouble.
//  - Each entry weighs the interval it was sampled at (memory::Entry::weight, in seconds):
//    sampleEvery for the onset and the lookback's vectors, calmEvery for the calm samples and
//    the before-trouble ones taken before the lookback. The lookback is sampled thirty times as
//    densely as calm: counted one each, its states would outweigh the calm that looks the same.
//  - No vector is stored twice, and none taken while the node was in trouble is stored as
//    before trouble: each node keeps a watermark (the last round that saw it in trouble, and
//    the last vector stored), and only vectors taken after it are candidates.
//  - The times (lookback, sampleEvery, calmEvery) are for the default horizon of 15 minutes;
//    MemoryRecorderOptions::forHorizon scales them to a shorter one, and the lookback is never
//    longer than the horizon, so that before_trouble means what the ledger means by it.
//  - Why sampled, not every poll: at one poll a second the lookback would hold 120 near-equal
//    vectors per node, the memory filling with copies of the same state. One every 10 s over 2
//    minutes keeps at most 13 vectors of 28 floats per node (about 1.5 KB, 7.5 MB at 5,000
//    nodes); calm samples every 5 minutes add at most 4 pending per node.
//
// Times: `at` and `wallNow` are the operator's wall clock (system_clock), injected: nothing here
// reads a clock or sleeps. observe()'s `at` must come from the same clock as round()'s `wallNow`
// (the time the poll answered, not the agent's timestamp, whose clock may differ), since the
// horizon and the watermarks compare the two. `now` is the steady time the snapshot's freshness
// is judged at (FleetSnapshot::isUsable).
//
// Nodes are matched by name: observe() files a vector under the fingerprint's `node`, round()
// reads the snapshot's NodeStatus::node (the agent's node, the same name). Nodes no longer in the
// snapshot are forgotten at the next round (their stored entries stay in the memory).
//
// Thread-safety: observe() may be called from any number of threads at once (the polling
// threads) and concurrently with everything else: it computes the features outside the lock and
// holds it only to update the node's vectors. round() is for one thread at a time (the leader's
// loop); it holds the lock over the round (per node a lookup, nodeTrouble and a few comparisons;
// observe() waits meanwhile). seen(), nearest(), entriesByLabel(), archetypes() and load() may
// be called from any thread; the memory (memory()) has its own lock (see FingerprintMemory).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "fleet/fleet_view.h"
#include "ledger/ledger.h"
#include "memory/fingerprint_memory.h"

namespace pi0::op {

struct MemoryRecorderOptions {
  // How far back before an onset the recent vectors become kBeforeTrouble entries. Never more
  // than the horizon (the recorder holds it to it): a state stored before_trouble was followed
  // by trouble within the horizon, as the ledger judges an outcome.
  std::chrono::milliseconds lookback = std::chrono::minutes(2);
  // At most one recent vector per node this often (a vector newer than the last kept by less is
  // only the node's latest).
  std::chrono::milliseconds sampleEvery = std::chrono::seconds(10);
  // A calm node's latest vector is put aside this often.
  std::chrono::milliseconds calmEvery = std::chrono::minutes(5);
  // A pending calm vector is calm once this has passed without trouble: the outcome horizon
  // (the node verdicts' horizon, options.h).
  std::chrono::milliseconds horizon = std::chrono::minutes(15);
  // The memory's capacity (FingerprintMemory: the calm entries go first when full).
  std::size_t capacity = memory::FingerprintMemory::kDefaultCapacity;

  // The options for an outcome horizon (the operator's --outcome-horizon): the defaults at the
  // default 15 minutes; under it, time scales with it, so that a shorter horizon (the
  // compressed day of bench/calibration judges 15 s) labels what its ledger would: lookback
  // min(2 min, horizon), a vector every lookback / 12, calm samples every min(5 min, horizon
  // / 3).
  static MemoryRecorderOptions forHorizon(std::chrono::milliseconds horizon);
};

// seen() for one node: the memory's answer for the node's latest vector, and when that vector
// was taken.
struct NodeSeen {
  memory::SeenBefore seen;
  ledger::Time at;
};

class MemoryRecorder {
 public:
  explicit MemoryRecorder(MemoryRecorderOptions options = {});
  MemoryRecorder(const MemoryRecorder&) = delete;
  MemoryRecorder& operator=(const MemoryRecorder&) = delete;

  // The untrimmed fingerprint of `full.node` as polled at `at`. A fingerprint without features
  // (not ready) is skipped, as is one older than the node's latest vector (an answer that came
  // late). Thread-safe, cheap (the features of one fingerprint, then a short lock).
  void observe(const fleet::NodeFingerprint& full, ledger::Time at);

  // One poll round: for each node of `fleet` whose data is usable at `now`, its trouble onset,
  // its before-trouble and calm entries (see the file comment), stamped with the times their
  // vectors were taken. Returns the entries it added to the memory, by node then time. One
  // thread at a time.
  std::vector<memory::Entry> round(const fleet::FleetSnapshot& fleet, Clock::time_point now,
                                   ledger::Time wallNow);

  // The memory's answer for the node's latest vector; nullopt when the node has none (not
  // observed, or not ready yet).
  std::optional<NodeSeen> seen(std::string_view node,
                               const memory::SeenOptions& options = {}) const;
  // The memory's verdict on the node's latest vector as the fleet feed carries it to the
  // webhook's history gate (fleet::HistoryVerdict; nullopt when the node has no vector).
  // Computed again only once the latest vector is `sampleEvery` newer than the one last judged:
  // one query (a quarter of a millisecond at 100,000 states, pi0-memory-bench) per node per
  // 10 s: by that figure 0.025 of a core at 1,000 nodes, 0.125 at 5,000 (not measured in the
  // operator). Called from the trim hook (the polling threads).
  std::optional<fleet::HistoryVerdict> verdict(std::string_view node,
                                               const memory::SeenOptions& options = {});
  // The k entries most similar to the node's latest vector; empty when it has none.
  std::vector<memory::Match> nearest(std::string_view node, std::size_t k) const;

  // Adds entries stored before (the ledger's, at start: entriesOf(Ledger::memoryRecords)), in
  // the order given; returns how many were added (an entry of another length, from a program
  // with another feature layout, is skipped).
  std::size_t load(std::vector<memory::Entry> entries);

  const memory::FingerprintMemory& memory() const { return memory_; }
  // The memory's entries by label (every label, 0 included).
  std::map<memory::Label, std::size_t> entriesByLabel() const { return memory_.countByLabel(); }
  // FingerprintMemory::archetypes.
  std::vector<memory::Archetype> archetypes(int k, int iterations = 20,
                                            std::uint64_t seed = 1) const {
    return memory_.archetypes(k, iterations, seed);
  }
  const MemoryRecorderOptions& options() const { return options_; }

 private:
  struct Vector {
    ledger::Time at;
    std::vector<float> features;
  };
  struct NodeState {
    std::optional<Vector> latest;  // the newest observed
    std::deque<Vector> recent;     // oldest first, one per sampleEvery, within lookback
    // What the last usable round saw; nullopt before the first.
    std::optional<bool> troubled;
    std::optional<ledger::Time> lastCalmSample;  // the time of the last vector put aside
    std::vector<Vector> pending;                 // calm samples within their horizon
    // Vectors taken at or before this are stored already or were taken in trouble.
    ledger::Time watermark{};
    // The last verdict (verdict()) and the time of the vector it judged.
    std::optional<fleet::HistoryVerdict> verdict;
    std::optional<ledger::Time> verdictOf;
  };

  // Adds the entry to the memory and to `out` (when the memory takes it), weighing the interval
  // its sampling took one state per (memory::Entry::weight, in seconds).
  void store(std::vector<memory::Entry>& out, const std::string& node, const Vector& v,
             memory::Label label, std::chrono::milliseconds sampledEvery);
  void onset(std::vector<memory::Entry>& out, const std::string& node, NodeState& n);

  const MemoryRecorderOptions options_;
  memory::FingerprintMemory memory_;
  mutable std::mutex mu_;  // guards nodes_
  std::map<std::string, NodeState, std::less<>> nodes_;
};

// The ledger's form of an entry (Ledger::record), and back. fromRecord gives nullopt for a label
// this program does not know.
ledger::MemoryRecord toRecord(const memory::Entry& entry);
std::vector<ledger::MemoryRecord> toRecords(std::span<const memory::Entry> entries);
std::optional<memory::Entry> fromRecord(const ledger::MemoryRecord& record);
// The entries of the records whose label is known, in their order (what load() takes).
std::vector<memory::Entry> entriesOf(std::span<const ledger::MemoryRecord> records);

}  // namespace pi0::op
