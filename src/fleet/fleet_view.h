// FleetView: what the operator and each webhook replica know about every node's agent: its last
// good fingerprint, when it was fetched, how many polls it has missed in a row, its health
// (Healthy, Suspect, Failed), its circuit breaker and the last error. One writer (FleetPoller)
// records poll results; any number of readers (the webhook's request threads, the operator's
// reconcilers) take snapshot()s: immutable, shared, cheap to take and never torn.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "fleet/agent_source.h"
#include "fleet/breaker.h"
#include "fleet/fingerprint.h"

namespace pi0::fleet {

// The fleet view's knowledge of one node, as of one snapshot.
struct NodeStatus {
  std::string node;
  std::string url;
  std::shared_ptr<const NodeFingerprint> fingerprint;  // the last good one; null until then
  std::optional<Clock::time_point> fetchedAt;          // when `fingerprint` was fetched
  int consecutiveFailures = 0;                         // polls missed in a row
  NodeHealth health = NodeHealth::kHealthy;            // from consecutiveFailures
  BreakerState breaker = BreakerState::kClosed;
  std::string lastError;  // the last failed poll's message; empty after a good poll
};

constexpr Clock::duration kDefaultPollInterval = std::chrono::seconds(5);

// An immutable picture of the fleet. Any thread may read it; it never changes.
class FleetSnapshot {
 public:
  // Every node's status, in node name order.
  using Nodes = std::vector<std::shared_ptr<const NodeStatus>>;

  // `nodes` in any order (sorted here); a node listed twice keeps its first status.
  FleetSnapshot(Nodes nodes, Clock::duration staleAfter);
  FleetSnapshot(FleetSnapshot&&) = default;
  FleetSnapshot& operator=(FleetSnapshot&&) = default;
  FleetSnapshot(const FleetSnapshot&) = delete;
  FleetSnapshot& operator=(const FleetSnapshot&) = delete;

  const Nodes& nodes() const { return nodes_; }
  std::size_t size() const { return nodes_.size(); }
  // The node's status, or nullptr when the view has no agent for it. A hash lookup: the webhook
  // asks once per candidate node of every review.
  const NodeStatus* find(std::string_view node) const;

  Clock::duration staleAfter() const { return staleAfter_; }
  // The node's fingerprint was fetched within staleAfter before `now`.
  bool isFresh(const NodeStatus& status, Clock::time_point now) const;
  // The node's data may be used for decisions at `now`: it has a fingerprint, fresh, and the
  // node is not Failed (DESIGN.md: "a failed node passes no gate"). A Suspect node's data is
  // still used while fresh.
  bool isUsable(const NodeStatus& status, Clock::time_point now) const;

 private:
  friend class FleetView;
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };
  // Node name -> position in nodes_. Built when the set of nodes changes, and shared by every
  // later snapshot of the same set: a publish that only replaces statuses copies the pointers
  // and nothing else.
  using Index = std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>>;

  // `nodes`, sorted, over `index` (their positions).
  FleetSnapshot(Nodes nodes, std::shared_ptr<const Index> index, Clock::duration staleAfter)
      : nodes_(std::move(nodes)), index_(std::move(index)), staleAfter_(staleAfter) {}
  std::optional<std::size_t> position(std::string_view node) const;

  Nodes nodes_;
  std::shared_ptr<const Index> index_;
  Clock::duration staleAfter_;
};

struct FleetViewOptions {
  // A fingerprint is fresh for this long after it was fetched: 3 poll intervals by default.
  Clock::duration staleAfter = 3 * kDefaultPollInterval;
  BreakerOptions breaker;
  HealthPolicy health;
  // How long a write may wait before snapshot() shows it. Writes are published lazily, by the
  // next snapshot() that finds them: 0 publishes every write at the next read (exact, what
  // tests and the operator want); a server that reads for every request (pi0-webhook) waits up
  // to this long, so that a round of polls over thousands of nodes costs a few rebuilds of the
  // snapshot instead of one per node.
  Clock::duration publishLag = Clock::duration::zero();
  // Applied to every fingerprint before it is stored, to drop what the reader never uses (the
  // webhook keeps only the signals admission reads); none: stored whole.
  std::function<void(NodeFingerprint&)> trim;
};

// Thread-safe: every member may be called from any thread. Writers are serialized by a mutex;
// a write marks its node changed, and the next snapshot() due (see publishLag) publishes every
// change at once, sharing the unchanged nodes' statuses with the previous snapshot (one vector
// of O(nodes) pointers; the name index is rebuilt only when the set of nodes changed).
class FleetView {
 public:
  // `clock` times publishLag and must outlive the view.
  explicit FleetView(FleetViewOptions options = {}, Clock& clock = systemClock());

  FleetView(const FleetView&) = delete;
  FleetView& operator=(const FleetView&) = delete;

  // The current picture; never null. Holding it keeps it alive; it does not see later writes.
  // Publishes pending writes first when they are due (publishLag).
  std::shared_ptr<const FleetSnapshot> snapshot() const;

  // Makes the set of nodes exactly `agents`' nodes: adds new ones (Healthy, no data), updates a
  // changed URL (keeping the node's data and breaker), forgets nodes not listed. When a node
  // appears twice, the first entry wins.
  void setAgents(const std::vector<Agent>& agents);

  // Asks the node's circuit breaker whether to poll it now (see CircuitBreaker::allow). False
  // for an unknown node. A true answer must be followed by recordSuccess(), recordFailure() or
  // abandonPoll() for the node.
  bool beginPoll(std::string_view node, Clock::time_point now);

  // The node's health before and after a recorded poll; nullopt for a node the view does not
  // have (it was removed while the poll was out), whose result is then ignored.
  struct HealthChange {
    NodeHealth before;
    NodeHealth after;
  };

  // A poll of the node returned `fingerprint` at `now`: the node is Healthy, its breaker
  // closed, its error cleared.
  std::optional<HealthChange> recordSuccess(std::string_view node, NodeFingerprint fingerprint,
                                            Clock::time_point now);
  // A poll of the node failed at `now` with `message`: one more consecutive failure; the node
  // keeps its last good fingerprint (which goes stale on its own).
  std::optional<HealthChange> recordFailure(std::string_view node, std::string message,
                                            Clock::time_point now);
  // A poll that beginPoll() allowed ended without a verdict (the poller was stopped).
  void abandonPoll(std::string_view node);

  // Statuses as another view published them (the fleet feed, feed.h): each replaces its node's
  // status whole (the node is added when new); `removed` nodes go; with
  // `exact`, so does every node not among `statuses`. The fingerprints are kept as given (the
  // feed's carry only what resourceView reads): the trim does not apply.
  void applyStatuses(std::vector<NodeStatus> statuses, const std::vector<std::string>& removed,
                     bool exact);

  const FleetViewOptions& options() const { return options_; }

 private:
  struct Entry {
    NodeStatus status;
    CircuitBreaker breaker;
  };

  // Marks the entry's status changed (published by the next snapshot() due). Caller holds mu_.
  void changedLocked(const Entry& entry);
  // Publishes every change into a new snapshot. Caller holds mu_.
  void publishLocked() const;

  const FleetViewOptions options_;
  Clock& clock_;
  mutable std::mutex mu_;  // guards entries_, changed_, allChanged_, publishedAt_, snapshot_ writes
  std::map<std::string, Entry, std::less<>> entries_;
  mutable std::set<std::string, std::less<>> changed_;  // nodes written since the last publish
  mutable bool allChanged_ = false;                     // the set of nodes changed
  mutable std::atomic<bool> pending_{false};            // changed_ or allChanged_ is not empty
  // When snapshot_ was last published; nullopt until then, so the first publish is due at once.
  mutable std::optional<Clock::time_point> publishedAt_;
  mutable std::mutex snapshotMu_;  // guards snapshot_ (held only to copy the pointer)
  mutable std::shared_ptr<const FleetSnapshot> snapshot_;
};

}  // namespace pi0::fleet
