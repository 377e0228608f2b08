#include "fleet/fleet_view.h"

#include <algorithm>
#include <set>
#include <utility>

namespace pi0::fleet {

FleetSnapshot::FleetSnapshot(Nodes nodes, Clock::duration staleAfter)
    : nodes_(std::move(nodes)), staleAfter_(staleAfter) {
  const auto byName = [](const auto& a, const auto& b) { return a->node < b->node; };
  if (!std::is_sorted(nodes_.begin(), nodes_.end(), byName))
    std::stable_sort(nodes_.begin(), nodes_.end(), byName);
  const auto same = [](const auto& a, const auto& b) { return a->node == b->node; };
  nodes_.erase(std::unique(nodes_.begin(), nodes_.end(), same), nodes_.end());
  auto index = std::make_shared<Index>();
  index->reserve(nodes_.size());
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    index->emplace(nodes_[i]->node, i);
  index_ = std::move(index);
}

std::optional<std::size_t> FleetSnapshot::position(std::string_view node) const {
  auto it = index_->find(node);
  if (it == index_->end()) return std::nullopt;
  return it->second;
}

const NodeStatus* FleetSnapshot::find(std::string_view node) const {
  const auto at = position(node);
  return at ? nodes_[*at].get() : nullptr;
}

bool FleetSnapshot::isFresh(const NodeStatus& status, Clock::time_point now) const {
  // A fetch "in the future" (clocks of different objects) counts as fresh, not as an error.
  return status.fingerprint && status.fetchedAt && now - *status.fetchedAt <= staleAfter_;
}

bool FleetSnapshot::isUsable(const NodeStatus& status, Clock::time_point now) const {
  return status.health != NodeHealth::kFailed && isFresh(status, now);
}

FleetView::FleetView(FleetViewOptions options, Clock& clock)
    : options_(options),
      clock_(clock),
      snapshot_(std::make_shared<const FleetSnapshot>(FleetSnapshot::Nodes{}, options.staleAfter)) {
}

std::shared_ptr<const FleetSnapshot> FleetView::snapshot() const {
  if (pending_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mu_);
    // Nothing published yet: due at once. (The clock's epoch is no "long ago": steady_clock
    // counts from boot, so a machine up for less than publishLag would hold the first picture
    // back.)
    if (pending_ && (!publishedAt_ || clock_.now() - *publishedAt_ >= options_.publishLag))
      publishLocked();
  }
  std::lock_guard lock(snapshotMu_);
  return snapshot_;
}

void FleetView::setAgents(const std::vector<Agent>& agents) {
  std::lock_guard lock(mu_);
  std::set<std::string, std::less<>> listed;
  for (const auto& agent : agents) {
    if (!listed.insert(agent.node).second) continue;
    auto it = entries_.find(agent.node);
    if (it == entries_.end()) {
      Entry entry{NodeStatus{}, CircuitBreaker(options_.breaker)};
      entry.status.node = agent.node;
      entry.status.url = agent.url;
      entries_.emplace(agent.node, std::move(entry));
    } else {
      it->second.status.url = agent.url;
    }
  }
  std::erase_if(entries_, [&](const auto& kv) { return !listed.contains(kv.first); });
  allChanged_ = true;
  pending_ = true;
}

bool FleetView::beginPoll(std::string_view node, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(node);
  if (it == entries_.end()) return false;
  Entry& entry = it->second;
  const BreakerState before = entry.breaker.state();
  const bool allowed = entry.breaker.allow(now);
  if (entry.breaker.state() != before) {
    entry.status.breaker = entry.breaker.state();
    changedLocked(entry);
  }
  return allowed;
}

std::optional<FleetView::HealthChange> FleetView::recordSuccess(std::string_view node,
                                                                NodeFingerprint fingerprint,
                                                                Clock::time_point now) {
  if (options_.trim) options_.trim(fingerprint);
  auto shared = std::make_shared<const NodeFingerprint>(std::move(fingerprint));
  std::lock_guard lock(mu_);
  auto it = entries_.find(node);
  if (it == entries_.end()) return std::nullopt;
  Entry& entry = it->second;
  const NodeHealth before = entry.status.health;
  entry.breaker.onSuccess();
  entry.status.fingerprint = std::move(shared);
  entry.status.fetchedAt = now;
  entry.status.consecutiveFailures = 0;
  entry.status.health = healthAfter(0, options_.health);
  entry.status.breaker = entry.breaker.state();
  entry.status.lastError.clear();
  changedLocked(entry);
  return HealthChange{before, entry.status.health};
}

std::optional<FleetView::HealthChange> FleetView::recordFailure(std::string_view node,
                                                                std::string message,
                                                                Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(node);
  if (it == entries_.end()) return std::nullopt;
  Entry& entry = it->second;
  const NodeHealth before = entry.status.health;
  entry.breaker.onFailure(now);
  entry.status.consecutiveFailures += 1;
  entry.status.health = healthAfter(entry.status.consecutiveFailures, options_.health);
  entry.status.breaker = entry.breaker.state();
  entry.status.lastError = std::move(message);
  changedLocked(entry);
  return HealthChange{before, entry.status.health};
}

void FleetView::abandonPoll(std::string_view node) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(node);
  if (it != entries_.end()) it->second.breaker.onAbandoned();
}

void FleetView::applyStatuses(std::vector<NodeStatus> statuses,
                              const std::vector<std::string>& removed, bool exact) {
  std::lock_guard lock(mu_);
  std::set<std::string, std::less<>> listed;
  for (NodeStatus& status : statuses) {
    if (exact) listed.insert(status.node);
    auto it = entries_.find(status.node);
    if (it == entries_.end()) {
      it = entries_.emplace(status.node, Entry{{}, CircuitBreaker(options_.breaker)}).first;
      allChanged_ = true;
    }
    it->second.status = std::move(status);
    changedLocked(it->second);
  }
  for (const std::string& node : removed) {
    if (entries_.erase(node) > 0) allChanged_ = true;
  }
  if (exact) {
    if (std::erase_if(entries_, [&](const auto& kv) { return !listed.contains(kv.first); }) > 0)
      allChanged_ = true;
  }
  if (allChanged_) pending_ = true;
}

void FleetView::changedLocked(const Entry& entry) {
  changed_.insert(entry.status.node);
  pending_ = true;
}

void FleetView::publishLocked() const {
  std::shared_ptr<const FleetSnapshot> previous;
  {
    std::lock_guard lock(snapshotMu_);
    previous = snapshot_;
  }
  std::shared_ptr<const FleetSnapshot> next;
  if (!allChanged_) {
    // The same nodes: the previous snapshot's pointers with the changed statuses replaced, over
    // its index.
    FleetSnapshot::Nodes nodes = previous->nodes();
    bool same = nodes.size() == entries_.size();
    for (auto name = changed_.begin(); same && name != changed_.end(); ++name) {
      const auto at = previous->position(*name);
      const auto it = entries_.find(*name);
      same = at && it != entries_.end();
      if (same) nodes[*at] = std::make_shared<const NodeStatus>(it->second.status);
    }
    if (same)
      next = std::shared_ptr<const FleetSnapshot>(
          new FleetSnapshot(std::move(nodes), previous->index_, options_.staleAfter));
  }
  if (!next) {
    // The set of nodes changed: every listed node (in name order, as entries_ keeps them),
    // sharing the unchanged statuses.
    FleetSnapshot::Nodes nodes;
    nodes.reserve(entries_.size());
    for (const auto& [name, entry] : entries_) {
      const auto at = previous->position(name);
      if (at && !changed_.contains(name) && previous->nodes()[*at]->url == entry.status.url) {
        nodes.push_back(previous->nodes()[*at]);
      } else {
        nodes.push_back(std::make_shared<const NodeStatus>(entry.status));
      }
    }
    next = std::make_shared<const FleetSnapshot>(std::move(nodes), options_.staleAfter);
  }
  changed_.clear();
  allChanged_ = false;
  pending_ = false;
  publishedAt_ = clock_.now();
  std::lock_guard lock(snapshotMu_);
  snapshot_ = std::move(next);
}

}  // namespace pi0::fleet
