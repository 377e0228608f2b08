// The cluster's nodes as decide() reads them, with an index of their labels and names, so that a
// pod's spec.nodeName, unschedulable nodes, nodeSelector and required node affinity narrow the
// nodes by set operations (a word per 64 nodes) instead of label lookups on every node: with
// thousands of nodes, those lookups were most of a review's cost.
//
// A table is immutable once built (O(nodes x labels)); a new one is built when nodes change. Any
// thread may read one at once.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "admission/pod_decision.h"

namespace pi0::admission {

// A set of nodes, by their position in a NodeTable.
class NodeSet {
 public:
  NodeSet() = default;
  NodeSet(std::size_t size, bool full);

  std::size_t size() const { return size_; }  // of the universe, not the set
  bool contains(std::size_t i) const { return (words_[i / 64] >> (i % 64)) & 1U; }
  std::size_t count() const;
  void insert(std::size_t i) { words_[i / 64] |= std::uint64_t{1} << (i % 64); }
  NodeSet& operator&=(const NodeSet& other);
  NodeSet& operator|=(const NodeSet& other);
  NodeSet& subtract(const NodeSet& other);  // this \ other
  NodeSet complement() const;

  // Calls f(position) for the positions in the set, ascending, while f returns true.
  template <class F>
  void forEach(F&& f) const {
    for (std::size_t w = 0; w < words_.size(); ++w) {
      for (std::uint64_t bits = words_[w]; bits != 0; bits &= bits - 1) {
        if (!f(w * 64 + static_cast<std::size_t>(std::countr_zero(bits)))) return;
      }
    }
  }

 private:
  std::size_t size_ = 0;
  std::vector<std::uint64_t> words_;
};

class NodeTable {
 public:
  NodeTable() = default;
  // `nodes` in the order that decides ties between them (the webhook: name order).
  explicit NodeTable(std::vector<std::shared_ptr<const NodeInfo>> nodes);
  // Nodes held by value (tables in tests).
  explicit NodeTable(const std::vector<NodeInfo>& nodes);

  std::size_t size() const { return nodes_.size(); }
  const NodeInfo& operator[](std::size_t i) const { return *nodes_[i]; }

  // What the label-level filters make of `pod`'s candidates, each node counted under the first
  // filter that eliminates it (pod_decision.h, "Candidate nodes"): spec.nodeName, then
  // unschedulable (not checked for a pod with a nodeName), nodeSelector, required affinity.
  // `rest` are the nodes none eliminates; taints and allocatable are for the caller to check.
  struct Narrowed {
    NodeSet rest;
    int nodeName = 0, unschedulable = 0, nodeSelector = 0, affinity = 0;
  };
  Narrowed narrow(const PodRequest& pod) const;

 private:
  // One label key (or the node name): which nodes have it, and the nodes of each value.
  struct Postings {
    NodeSet has;
    std::unordered_map<std::string, std::vector<std::uint32_t>> byValue;
  };

  void index();
  NodeSet matching(const NodeSelectorRequirement& r, const Postings* postings) const;
  NodeSet matching(const NodeSelectorTerm& term) const;
  NodeSet withValue(const Postings* postings, const std::string& value) const;

  std::vector<std::shared_ptr<const NodeInfo>> nodes_;
  std::unordered_map<std::string, Postings> labels_;
  Postings names_;
  NodeSet unschedulable_;
};

}  // namespace pi0::admission
