// LedgerSender: takes this replica's decisions from its DecisionLog to the truth ledger, which
// the operator leader keeps: POST /ledger/decisions on the leader's fleet address, over the
// same authenticated link as the fleet feed (fleet/leader_link.h). A batch is acknowledged in
// the log only when the leader answers that it has stored it (200), so a failed send, a leader
// change or an operator crash loses nothing: the records are sent again (the ledger stores a
// record once by its id). What a crash of this replica can lose is what the log held, at most
// one send period's decisions while the leader answers, and at most the log's capacity when it
// has not answered for long (DecisionLog counts those as dropped).
//
// Answers: 200 acknowledges; 503 (this replica does not lead), 401, 403 and errors keep the
// records and try again after `every` (a 503 locates the leader again first); 400 (the ledger
// refused the batch as malformed: a bug, resending it cannot help) drops the batch, counts it as
// rejected and logs the reason.
//
// Thread-safety: run() on one thread; lastError() and counters() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "decision_log.h"
#include "fleet/leader_link.h"

namespace pi0::webhook {

inline constexpr char kLedgerDecisionsPath[] = "/ledger/decisions";

struct LedgerSenderOptions {
  Clock::duration every = std::chrono::seconds(1);  // between sends
  std::size_t batch = 1000;                         // decisions per request at most
};

struct LedgerSenderCounters {
  std::atomic<std::uint64_t> sent{0};      // decisions the ledger acknowledged
  std::atomic<std::uint64_t> requests{0};  // answered 200
  std::atomic<std::uint64_t> errors{0};    // not stored (yet): unreachable, 503, 401, 403
  std::atomic<std::uint64_t> rejected{0};  // decisions refused as malformed (400), not resent
};

class LedgerSender {
 public:
  // `log` and `clock` must outlive the sender.
  LedgerSender(DecisionLog& log, fleet::LeaderLink link, LedgerSenderOptions options,
               Clock& clock = systemClock());

  // Sends what the log holds, every `every`, until `st` stops; then once more, at most
  // kFinalBatches batches each within the link's timeout, so that a replica that stops (a
  // rolling restart) hands over what it holds.
  void run(std::stop_token st);
  static constexpr std::size_t kFinalBatches = 10;
  // Sends the log's records in batches until it is empty, `maxBatches` were sent or a send
  // fails. False on a failure.
  bool sendAll(std::stop_token st, std::size_t maxBatches = SIZE_MAX);

  std::string lastError() const;
  const LedgerSenderCounters& counters() const { return counters_; }

 private:
  void failed(std::string message);

  DecisionLog& log_;
  fleet::LeaderLink link_;
  const LedgerSenderOptions options_;
  Clock& clock_;
  LedgerSenderCounters counters_;
  mutable std::mutex mu_;  // guards lastError_
  std::string lastError_;
};

}  // namespace pi0::webhook
