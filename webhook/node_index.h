// The cluster's Nodes as admission reads them: parsed once when they change, not for every
// request, and kept trimmed to what admission reads, so that a fleet of thousands of nodes
// costs neither a parse per review nor the memory of whole Node objects.
//
// Thread-safety: update() from the reflector's thread (it is the Store's handler); snapshot()
// and the counters from any thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "admission/pod_decision.h"
#include "kube/store.h"

namespace pi0::webhook {

class NodeIndex {
 public:
  // The nodes at one moment, in name order (the order that decides ties between nodes).
  struct Snapshot {
    std::vector<std::shared_ptr<const admission::NodeInfo>> owned;
    std::vector<const admission::NodeInfo*> nodes;  // into `owned`
  };

  // The Store handler: a Node added, changed or deleted. A Node that does not parse is left out
  // (and logged), so admission never judges by a stale reading of it.
  void update(const kube::ObjectPtr& oldObject, const kube::ObjectPtr& newObject);

  // The current nodes; rebuilt at the first read after a change (O(nodes) pointer copies).
  std::shared_ptr<const Snapshot> snapshot() const;

  std::size_t size() const;
  // Nodes left out because they do not parse.
  std::size_t unreadable() const;

  // The Store transform for Nodes: keeps metadata.name, labels and resourceVersion,
  // spec.unschedulable and spec.taints, and status.allocatable; drops the rest (images,
  // conditions, addresses, managed fields), which admission never reads.
  static void trim(kube::Json& node);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const admission::NodeInfo>> nodes_;
  std::map<std::string, std::string> unreadable_;  // name -> why
  mutable std::shared_ptr<const Snapshot> snapshot_;
  mutable std::atomic<bool> dirty_{true};
};

}  // namespace pi0::webhook
