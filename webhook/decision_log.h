// DecisionLog: this replica's admission decisions on their way to the truth ledger (issue 18),
// which the operator leader keeps. The review path adds a record (a lock and a move, nothing
// that waits); a sender takes the oldest in batches and acknowledges them once the ledger has
// stored them, so that a failed send loses nothing and is sent again (the ledger stores a record
// once by its id). Bounded: when full, because the ledger has been out of reach for long, the
// oldest records make room and are counted as dropped.
//
// Ids are "<replica>/<start>/<sequence>", with <start> the log's creation in milliseconds since
// the epoch, so that a restarted replica never reuses one.
//
// Thread-safety: every member from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admission/pod_decision.h"
#include "ledger/records.h"

namespace pi0::webhook {

class DecisionLog {
 public:
  DecisionLog(std::string replica, std::size_t capacity,
              ledger::Time start = std::chrono::system_clock::now());

  // The record of the decision `d` on `pod` (of `channel`, "" for none), made at `at`; judged
  // with the fixed thresholds as calibration's holdout when `holdout`.
  void add(const admission::PodRequest& pod, const admission::Decision& d,
           const std::string& channel, ledger::Time at, bool holdout = false);

  // The oldest records not yet acknowledged, at most `max`, with the sequence number of the last
  // one (to acknowledge them by); nullopt when there are none. They stay in the log.
  struct Batch {
    std::vector<ledger::Decision> decisions;
    std::uint64_t last = 0;
  };
  std::optional<Batch> peek(std::size_t max) const;
  // The records up to and including sequence `last` are stored: drop them.
  void acknowledge(std::uint64_t last);

  std::size_t size() const;
  std::uint64_t added() const;
  std::uint64_t dropped() const;  // made room for newer ones, never sent

  // The record itself (what add() keeps), for tests and the sender's logs.
  static ledger::Decision record(const admission::PodRequest& pod, const admission::Decision& d,
                                 const std::string& channel, ledger::Time at, bool holdout = false);

 private:
  const std::string replica_;
  const std::string prefix_;  // "<replica>/<start>/"
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<std::pair<std::uint64_t, ledger::Decision>> queue_;  // guarded by mu_
  std::uint64_t next_ = 1;                                        // guarded by mu_
  std::uint64_t dropped_ = 0;                                     // guarded by mu_
};

}  // namespace pi0::webhook
