#include "fleet/fleet_view.h"

#include <set>
#include <utility>

namespace pi0::fleet {

FleetSnapshot::FleetSnapshot(Nodes nodes, Clock::duration staleAfter)
    : nodes_(std::move(nodes)), staleAfter_(staleAfter) {
  byName_.reserve(nodes_.size());
  for (const auto& [name, status] : nodes_)
    byName_.emplace(name, status.get());
}

const NodeStatus* FleetSnapshot::find(std::string_view node) const {
  auto it = byName_.find(node);
  return it == byName_.end() ? nullptr : it->second;
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
    if (it == entries_.end())
      it = entries_.emplace(status.node, Entry{{}, CircuitBreaker(options_.breaker)}).first;
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
  FleetSnapshot::Nodes nodes;
  if (allChanged_) {
    // The set of nodes changed: every listed node, sharing the unchanged statuses.
    for (const auto& [name, entry] : entries_) {
      const auto old = previous->nodes().find(name);
      if (old != previous->nodes().end() && !changed_.contains(name) &&
          old->second->url == entry.status.url) {
        nodes.emplace(name, old->second);
      } else {
        nodes.emplace(name, std::make_shared<const NodeStatus>(entry.status));
      }
    }
  } else {
    // Copy-on-write: the other nodes' statuses are shared with the previous snapshot.
    nodes = previous->nodes();
    for (const auto& name : changed_) {
      auto it = entries_.find(name);
      if (it != entries_.end()) nodes[name] = std::make_shared<const NodeStatus>(it->second.status);
    }
  }
  changed_.clear();
  allChanged_ = false;
  pending_ = false;
  publishedAt_ = clock_.now();
  auto next = std::make_shared<const FleetSnapshot>(std::move(nodes), options_.staleAfter);
  std::lock_guard lock(snapshotMu_);
  snapshot_ = std::move(next);
}

}  // namespace pi0::fleet
