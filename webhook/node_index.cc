#include "node_index.h"

#include "common/log.h"
#include "kube/json.h"

namespace pi0::webhook {

void NodeIndex::update(const kube::ObjectPtr& oldObject, const kube::ObjectPtr& newObject) {
  std::lock_guard lock(mu_);
  if (!newObject) {
    const std::string name = kube::stringField(*oldObject, "/metadata/name"_json_pointer);
    unreadable_.erase(name);
    if (nodes_.erase(name) > 0) {
      ++changes_;
      dirty_ = true;
    }
    return;
  }
  const std::string name = kube::stringField(*newObject, "/metadata/name"_json_pointer);
  auto node = admission::parseNode(*newObject);
  if (!node) {
    // Logged when it starts or its reason changes, not at every status update of the Node.
    auto it = unreadable_.find(name);
    if (it == unreadable_.end() || it->second != node.error().message) {
      log::warn("a Node that cannot be read is left out of admission",
                {{"node", name}, {"error", node.error().message}});
      unreadable_[name] = node.error().message;
    }
    if (nodes_.erase(name) > 0) {
      ++changes_;
      dirty_ = true;
    }
    return;
  }
  unreadable_.erase(name);
  auto& held = nodes_[name];
  if (held && *held == *node) {
    ++unchanged_;
    return;
  }
  held = std::make_shared<const admission::NodeInfo>(std::move(*node));
  ++changes_;
  dirty_ = true;
}

std::shared_ptr<const admission::NodeTable> NodeIndex::snapshot() const {
  std::lock_guard lock(mu_);
  if (dirty_ || !snapshot_) {
    std::vector<std::shared_ptr<const admission::NodeInfo>> nodes;
    nodes.reserve(nodes_.size());
    for (const auto& [name, info] : nodes_)
      nodes.push_back(info);
    snapshot_ = std::make_shared<const admission::NodeTable>(std::move(nodes));
    dirty_ = false;
  }
  return snapshot_;
}

std::size_t NodeIndex::size() const {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

std::size_t NodeIndex::unreadable() const {
  std::lock_guard lock(mu_);
  return unreadable_.size();
}

std::uint64_t NodeIndex::changes() const {
  std::lock_guard lock(mu_);
  return changes_;
}

std::uint64_t NodeIndex::unchanged() const {
  std::lock_guard lock(mu_);
  return unchanged_;
}

void NodeIndex::trim(kube::Json& node) {
  if (!node.is_object()) return;
  kube::Json out = kube::Json::object();
  for (const char* key : {"apiVersion", "kind"}) {
    if (auto it = node.find(key); it != node.end()) out[key] = std::move(*it);
  }
  if (auto meta = node.find("metadata"); meta != node.end() && meta->is_object()) {
    kube::Json& m = out["metadata"] = kube::Json::object();
    for (const char* key : {"name", "labels", "resourceVersion", "uid"}) {
      if (auto it = meta->find(key); it != meta->end()) m[key] = std::move(*it);
    }
  }
  if (auto spec = node.find("spec"); spec != node.end() && spec->is_object()) {
    kube::Json& s = out["spec"] = kube::Json::object();
    for (const char* key : {"unschedulable", "taints"}) {
      if (auto it = spec->find(key); it != spec->end()) s[key] = std::move(*it);
    }
  }
  if (auto status = node.find("status"); status != node.end() && status->is_object()) {
    if (auto it = status->find("allocatable"); it != status->end()) {
      out["status"] = kube::Json{{"allocatable", std::move(*it)}};
    }
  }
  node = std::move(out);
}

}  // namespace pi0::webhook
