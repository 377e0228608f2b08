// The cluster's Nodes as admission reads them: parsed once when they change, not for every
// request, kept trimmed to what admission reads, and indexed by label (admission::NodeTable),
// so that a fleet of thousands of nodes costs neither a parse nor a label lookup per node per
// review, nor the memory of whole Node objects. A Node update that changes nothing admission
// reads (a condition, a heartbeat, an image list) leaves the table as it is.
//
// Thread-safety: update() from the reflector's thread (it is the Store's handler); snapshot()
// and the counters from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "admission/node_table.h"
#include "admission/pod_decision.h"
#include "kube/store.h"

namespace pi0::webhook {

class NodeIndex {
 public:
  // The Store handler: a Node added, changed or deleted. A Node that does not parse is left out
  // (and logged), so admission never judges by a stale reading of it.
  void update(const kube::ObjectPtr& oldObject, const kube::ObjectPtr& newObject);

  // The current nodes, in name order (the order that decides ties between nodes); built again
  // at the first read after a change (O(nodes x labels): a few milliseconds for 5,000 nodes).
  std::shared_ptr<const admission::NodeTable> snapshot() const;

  std::size_t size() const;
  // Nodes left out because they do not parse.
  std::size_t unreadable() const;
  // Updates that changed what admission reads of a Node (added, changed, deleted), and those
  // that did not.
  std::uint64_t changes() const;
  std::uint64_t unchanged() const;

  // The Store transform for Nodes: keeps metadata.name, labels and resourceVersion,
  // spec.unschedulable and spec.taints, and status.allocatable; drops the rest (images,
  // conditions, addresses, managed fields), which admission never reads.
  static void trim(kube::Json& node);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const admission::NodeInfo>> nodes_;
  std::map<std::string, std::string> unreadable_;  // name -> why
  std::uint64_t changes_ = 0, unchanged_ = 0;
  mutable std::shared_ptr<const admission::NodeTable> snapshot_;
  mutable bool dirty_ = true;
};

}  // namespace pi0::webhook
