#include "decision_log.h"

#include <algorithm>
#include <utility>

namespace pi0::webhook {

DecisionLog::DecisionLog(std::string replica, std::size_t capacity, ledger::Time start)
    : replica_(std::move(replica)),
      prefix_(replica_ + "/" +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch())
                      .count()) +
              "/"),
      capacity_(std::max<std::size_t>(capacity, 1)) {}

ledger::Decision DecisionLog::record(const admission::PodRequest& pod, const admission::Decision& d,
                                     const std::string& channel, ledger::Time at, bool holdout) {
  ledger::Decision r;
  r.at = at;
  r.ns = pod.ns;
  r.pod = pod.name.empty() ? pod.generateName : pod.name;
  r.podUid = pod.uid;
  r.ownerKind = pod.ownerKind;
  r.ownerName = pod.ownerName;
  r.channel = channel;
  r.mode = admission::modeName(d.mode);
  r.allowed = d.allowed;
  r.verdict = d.verdict;
  r.reason = admission::reasonName(d.reason);
  r.node = d.node;
  r.candidates = d.candidates;
  r.holdout = holdout;
  r.gates.reserve(d.gates.size());
  for (const admission::GateReading& g : d.gates)
    r.gates.push_back({std::string(resourceName(g.resource)), admission::gateName(g.gate), g.value,
                       g.threshold, g.requestShare, g.passed});
  return r;
}

void DecisionLog::add(const admission::PodRequest& pod, const admission::Decision& d,
                      const std::string& channel, ledger::Time at, bool holdout) {
  ledger::Decision r = record(pod, d, channel, at, holdout);
  std::lock_guard lock(mu_);
  const std::uint64_t seq = next_++;
  r.id = prefix_ + std::to_string(seq);
  r.replica = replica_;
  if (queue_.size() >= capacity_) {
    queue_.pop_front();
    ++dropped_;
  }
  queue_.emplace_back(seq, std::move(r));
}

std::optional<DecisionLog::Batch> DecisionLog::peek(std::size_t max) const {
  std::lock_guard lock(mu_);
  if (queue_.empty() || max == 0) return std::nullopt;
  Batch batch;
  const std::size_t n = std::min(max, queue_.size());
  batch.decisions.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    batch.decisions.push_back(queue_[i].second);
  batch.last = queue_[n - 1].first;
  return batch;
}

void DecisionLog::acknowledge(std::uint64_t last) {
  std::lock_guard lock(mu_);
  while (!queue_.empty() && queue_.front().first <= last)
    queue_.pop_front();
}

std::size_t DecisionLog::size() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::uint64_t DecisionLog::added() const {
  std::lock_guard lock(mu_);
  return next_ - 1;
}

std::uint64_t DecisionLog::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace pi0::webhook
