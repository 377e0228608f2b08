#include "admission/node_table.h"

#include <algorithm>
#include <string_view>

namespace pi0::admission {
namespace {

bool toleratesUnschedulable(const PodRequest& pod) {
  const Taint unschedulable{std::string(kUnschedulableTaintKey), "", TaintEffect::kNoSchedule};
  return std::any_of(pod.tolerations.begin(), pod.tolerations.end(),
                     [&](const Toleration& t) { return tolerates(t, unschedulable); });
}

}  // namespace

// --- NodeSet -----------------------------------------------------------------------------------

NodeSet::NodeSet(std::size_t size, bool full) : size_(size), words_((size + 63) / 64, 0) {
  if (!full) return;
  std::fill(words_.begin(), words_.end(), ~std::uint64_t{0});
  if (size % 64 != 0) words_.back() = (std::uint64_t{1} << (size % 64)) - 1;
}

std::size_t NodeSet::count() const {
  std::size_t n = 0;
  for (std::uint64_t w : words_)
    n += static_cast<std::size_t>(std::popcount(w));
  return n;
}

NodeSet& NodeSet::operator&=(const NodeSet& other) {
  for (std::size_t i = 0; i < words_.size(); ++i)
    words_[i] &= other.words_[i];
  return *this;
}

NodeSet& NodeSet::operator|=(const NodeSet& other) {
  for (std::size_t i = 0; i < words_.size(); ++i)
    words_[i] |= other.words_[i];
  return *this;
}

NodeSet& NodeSet::subtract(const NodeSet& other) {
  for (std::size_t i = 0; i < words_.size(); ++i)
    words_[i] &= ~other.words_[i];
  return *this;
}

NodeSet NodeSet::complement() const {
  NodeSet out(size_, true);
  return out.subtract(*this);
}

// --- NodeTable ---------------------------------------------------------------------------------

NodeTable::NodeTable(std::vector<std::shared_ptr<const NodeInfo>> nodes)
    : nodes_(std::move(nodes)) {
  index();
}

NodeTable::NodeTable(const std::vector<NodeInfo>& nodes) {
  nodes_.reserve(nodes.size());
  for (const auto& n : nodes)
    nodes_.push_back(std::make_shared<const NodeInfo>(n));
  index();
}

void NodeTable::index() {
  const std::size_t n = nodes_.size();
  names_.has = NodeSet(n, true);
  unschedulable_ = NodeSet(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const NodeInfo& node = *nodes_[i];
    const auto at = static_cast<std::uint32_t>(i);
    names_.byValue[node.name].push_back(at);
    if (node.unschedulable) unschedulable_.insert(i);
    for (const auto& [key, value] : node.labels) {
      Postings& p = labels_[key];
      if (p.has.size() == 0) p.has = NodeSet(n, false);
      p.has.insert(i);
      p.byValue[value].push_back(at);
    }
  }
}

NodeSet NodeTable::withValue(const Postings* postings, const std::string& value) const {
  NodeSet out(nodes_.size(), false);
  if (postings == nullptr) return out;
  if (auto it = postings->byValue.find(value); it != postings->byValue.end()) {
    for (std::uint32_t i : it->second)
      out.insert(i);
  }
  return out;
}

// The nodes whose label (or name) satisfies `r`, as matchesRequirement() judges one node.
NodeSet NodeTable::matching(const NodeSelectorRequirement& r, const Postings* postings) const {
  const std::size_t n = nodes_.size();
  switch (r.op) {
    case SelectorOperator::kIn:
    case SelectorOperator::kNotIn: {
      NodeSet any(n, false);
      for (const auto& v : r.values)
        any |= withValue(postings, v);
      return r.op == SelectorOperator::kIn ? any : any.complement();
    }
    case SelectorOperator::kExists:
      return postings ? postings->has : NodeSet(n, false);
    case SelectorOperator::kDoesNotExist:
      return postings ? postings->has.complement() : NodeSet(n, true);
    case SelectorOperator::kGt:
    case SelectorOperator::kLt: {
      NodeSet out(n, false);
      if (postings == nullptr) return out;
      for (const auto& [value, at] : postings->byValue) {
        const auto v = labelInteger(value);
        if (!v || !(r.op == SelectorOperator::kGt ? *v > r.number : *v < r.number)) continue;
        for (std::uint32_t i : at)
          out.insert(i);
      }
      return out;
    }
  }
  return NodeSet(n, false);
}

NodeSet NodeTable::matching(const NodeSelectorTerm& term) const {
  // Kubernetes: a term with no requirements matches no objects.
  if (term.matchExpressions.empty() && term.matchFields.empty()) {
    return NodeSet(nodes_.size(), false);
  }
  NodeSet out(nodes_.size(), true);
  for (const auto& r : term.matchExpressions) {
    auto it = labels_.find(r.key);
    out &= matching(r, it == labels_.end() ? nullptr : &it->second);
  }
  for (const auto& r : term.matchFields)
    out &= matching(r, &names_);
  return out;
}

NodeTable::Narrowed NodeTable::narrow(const PodRequest& pod) const {
  const std::size_t n = nodes_.size();
  Narrowed out;
  out.rest = NodeSet(n, true);
  if (!pod.nodeName.empty()) {
    out.rest = withValue(&names_, pod.nodeName);
    out.nodeName = static_cast<int>(n - out.rest.count());
  } else if (!toleratesUnschedulable(pod)) {
    out.unschedulable = static_cast<int>(unschedulable_.count());
    out.rest.subtract(unschedulable_);
  }
  auto narrowBy = [&](const NodeSet& set, int* eliminated) {
    const std::size_t before = out.rest.count();
    out.rest &= set;
    *eliminated = static_cast<int>(before - out.rest.count());
  };
  if (!pod.nodeSelector.empty()) {
    NodeSet selected(n, true);
    for (const auto& [key, value] : pod.nodeSelector) {
      auto it = labels_.find(key);
      selected &= withValue(it == labels_.end() ? nullptr : &it->second, value);
    }
    narrowBy(selected, &out.nodeSelector);
  }
  if (pod.requiredAffinity) {
    NodeSet any(n, false);
    for (const auto& term : *pod.requiredAffinity)
      any |= matching(term);
    narrowBy(any, &out.affinity);
  }
  return out;
}

}  // namespace pi0::admission
