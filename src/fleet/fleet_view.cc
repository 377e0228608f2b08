#include "fleet/fleet_view.h"

#include <set>
#include <utility>

namespace pi0::fleet {

const NodeStatus* FleetSnapshot::find(std::string_view node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : it->second.get();
}

bool FleetSnapshot::isFresh(const NodeStatus& status, Clock::time_point now) const {
  // A fetch "in the future" (clocks of different objects) counts as fresh, not as an error.
  return status.fingerprint && status.fetchedAt && now - *status.fetchedAt <= staleAfter_;
}

bool FleetSnapshot::isUsable(const NodeStatus& status, Clock::time_point now) const {
  return status.health != NodeHealth::kFailed && isFresh(status, now);
}

FleetView::FleetView(FleetViewOptions options)
    : options_(options),
      snapshot_(std::make_shared<const FleetSnapshot>(FleetSnapshot::Nodes{}, options.staleAfter)) {
}

std::shared_ptr<const FleetSnapshot> FleetView::snapshot() const {
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
  publishAllLocked();
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
    publishLocked(entry);
  }
  return allowed;
}

std::optional<FleetView::HealthChange> FleetView::recordSuccess(std::string_view node,
                                                                NodeFingerprint fingerprint,
                                                                Clock::time_point now) {
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
  publishLocked(entry);
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
  publishLocked(entry);
  return HealthChange{before, entry.status.health};
}

void FleetView::abandonPoll(std::string_view node) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(node);
  if (it != entries_.end()) it->second.breaker.onAbandoned();
}

void FleetView::publishLocked(const Entry& entry) {
  // Copy-on-write: the other nodes' statuses are shared with the previous snapshot.
  FleetSnapshot::Nodes nodes = snapshot()->nodes();
  nodes[entry.status.node] = std::make_shared<const NodeStatus>(entry.status);
  auto next = std::make_shared<const FleetSnapshot>(std::move(nodes), options_.staleAfter);
  std::lock_guard lock(snapshotMu_);
  snapshot_ = std::move(next);
}

void FleetView::publishAllLocked() {
  FleetSnapshot::Nodes nodes;
  const auto previous = snapshot();
  for (const auto& [name, entry] : entries_) {
    // Unchanged statuses keep their shared copy, so readers holding one see the same object.
    const NodeStatus* old = previous->find(name);
    if (old && old->url == entry.status.url) {
      nodes.emplace(name, previous->nodes().find(name)->second);
    } else {
      nodes.emplace(name, std::make_shared<const NodeStatus>(entry.status));
    }
  }
  auto next = std::make_shared<const FleetSnapshot>(std::move(nodes), options_.staleAfter);
  std::lock_guard lock(snapshotMu_);
  snapshot_ = std::move(next);
}

}  // namespace pi0::fleet
