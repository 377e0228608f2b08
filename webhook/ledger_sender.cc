#include "ledger_sender.h"

#include <utility>

#include "common/log.h"

namespace pi0::webhook {

LedgerSender::LedgerSender(DecisionLog& log, fleet::LeaderLink link, LedgerSenderOptions options,
                           Clock& clock)
    : log_(log), link_(std::move(link)), options_(options), clock_(clock) {}

std::string LedgerSender::lastError() const {
  std::lock_guard lock(mu_);
  return lastError_;
}

void LedgerSender::failed(std::string message) {
  ++counters_.errors;
  std::lock_guard lock(mu_);
  if (message != lastError_)
    log::warn("ledger: decisions not sent; keeping them to send again",
              {{"error", message}, {"queued", log_.size()}});
  lastError_ = std::move(message);
}

bool LedgerSender::sendAll(std::stop_token st, std::size_t maxBatches) {
  for (std::size_t n = 0; n < maxBatches; ++n) {
    auto batch = log_.peek(options_.batch);
    if (!batch) break;
    auto answer =
        link_.post(st, kLedgerDecisionsPath, ledger::toJson(batch->decisions), "application/json");
    if (!answer) {
      failed(answer.error().message);
      return false;
    }
    if (answer->status == 200) {
      log_.acknowledge(batch->last);
      counters_.sent += batch->decisions.size();
      ++counters_.requests;
      std::lock_guard lock(mu_);
      if (!lastError_.empty()) log::info("ledger: decisions sent again");
      lastError_.clear();
      continue;
    }
    if (answer->status == 400) {
      // Resending the same batch would be refused again, and hold up every later one.
      log_.acknowledge(batch->last);
      counters_.rejected += batch->decisions.size();
      log::error("ledger: the leader refused a batch of decisions as malformed; dropped",
                 {{"decisions", batch->decisions.size()},
                  {"firstId", batch->decisions.front().id},
                  {"error", answer->summary()}});
      continue;
    }
    const std::string where = link_.url();
    link_.drop();  // a 503: another replica leads now, and the Lease says which
    failed(where + ": " + answer->summary());
    return false;
  }
  return true;
}

void LedgerSender::run(std::stop_token st) {
  while (!st.stop_requested()) {
    const Clock::time_point started = clock_.now();
    sendAll(st);
    clock_.sleepUntil(started + options_.every, st);
  }
  // The last send: a stop token that never stops, bounded by the link's timeout per request.
  if (log_.size() > 0) {
    const std::size_t queued = log_.size();
    if (sendAll(std::stop_token(), kFinalBatches) && log_.size() == 0)
      log::info("ledger: handed over the decisions held at shutdown", {{"decisions", queued}});
    else
      log::warn("ledger: decisions held at shutdown not sent; lost",
                {{"decisions", log_.size()}, {"error", lastError()}});
  }
}

}  // namespace pi0::webhook
