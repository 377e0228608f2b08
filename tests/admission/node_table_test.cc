// NodeTable::narrow() against the node-at-a-time definition (matchesTerm, tolerates, the
// nodeSelector's equality) over random nodes and pods, and NodeSet's word boundaries.
#include "admission/node_table.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace pi0::admission;

namespace {

// The first label-level filter that eliminates `node` for `pod`, as pod_decision.h defines the
// candidate nodes: 0 none, 1 nodeName, 2 unschedulable, 3 nodeSelector, 4 affinity.
int firstElimination(const PodRequest& pod, const NodeInfo& node) {
  if (!pod.nodeName.empty()) {
    if (node.name != pod.nodeName) return 1;
  } else if (node.unschedulable) {
    const Taint t{std::string(kUnschedulableTaintKey), "", TaintEffect::kNoSchedule};
    bool tolerated = false;
    for (const auto& tol : pod.tolerations)
      tolerated = tolerated || tolerates(tol, t);
    if (!tolerated) return 2;
  }
  for (const auto& [key, value] : pod.nodeSelector) {
    auto it = node.labels.find(key);
    if (it == node.labels.end() || it->second != value) return 3;
  }
  if (pod.requiredAffinity) {
    bool any = false;
    for (const auto& term : *pod.requiredAffinity)
      any = any || matchesTerm(term, node);
    if (!any) return 4;
  }
  return 0;
}

struct Random {
  std::mt19937 rng;
  explicit Random(unsigned seed) : rng(seed) {}
  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  bool chance(int percent) { return below(100) < percent; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(below(static_cast<int>(v.size())))];
  }
};

const std::vector<std::string> kKeys{"zone", "pool", "gen", "gpu", "rack"};
const std::vector<std::string> kValues{"a", "b", "c", "1", "7", "12", "-3", "x1"};

NodeSelectorRequirement randomRequirement(Random& r, bool field, int nodes) {
  NodeSelectorRequirement req;
  const std::vector<SelectorOperator> ops{
      SelectorOperator::kIn,           SelectorOperator::kNotIn, SelectorOperator::kExists,
      SelectorOperator::kDoesNotExist, SelectorOperator::kGt,    SelectorOperator::kLt};
  req.key = field ? "metadata.name" : r.pick(kKeys);
  req.op = field ? (r.chance(50) ? SelectorOperator::kIn : SelectorOperator::kNotIn) : r.pick(ops);
  if (req.op == SelectorOperator::kGt || req.op == SelectorOperator::kLt) {
    req.number = r.below(15) - 4;
    req.values = {std::to_string(req.number)};
  } else if (req.op == SelectorOperator::kIn || req.op == SelectorOperator::kNotIn) {
    const int n = 1 + r.below(3);
    for (int i = 0; i < n; ++i) {
      req.values.push_back(field ? "node-" + std::to_string(r.below(nodes + 2)) : r.pick(kValues));
    }
  }
  return req;
}

PodRequest randomPod(Random& r, int nodes) {
  PodRequest pod;
  if (r.chance(10)) pod.nodeName = "node-" + std::to_string(r.below(nodes + 2));
  if (r.chance(30)) {
    Toleration t;
    t.key = r.chance(50) ? std::string(kUnschedulableTaintKey) : "";
    t.exists = true;
    pod.tolerations.push_back(t);
  }
  const int selectors = r.chance(50) ? r.below(3) : 0;
  for (int i = 0; i < selectors; ++i)
    pod.nodeSelector[r.pick(kKeys)] = r.pick(kValues);
  if (r.chance(60)) {
    std::vector<NodeSelectorTerm> terms(static_cast<std::size_t>(r.below(3)));
    for (auto& term : terms) {
      const int exprs = r.below(3), fields = r.chance(20) ? 1 : 0;
      for (int i = 0; i < exprs; ++i)
        term.matchExpressions.push_back(randomRequirement(r, false, nodes));
      for (int i = 0; i < fields; ++i)
        term.matchFields.push_back(randomRequirement(r, true, nodes));
    }
    pod.requiredAffinity = std::move(terms);
  }
  return pod;
}

std::vector<NodeInfo> randomNodes(Random& r, int n) {
  std::vector<NodeInfo> nodes;
  for (int i = 0; i < n; ++i) {
    NodeInfo node;
    node.name = "node-" + std::to_string(i);
    node.unschedulable = r.chance(10);
    for (const auto& key : kKeys) {
      if (r.chance(70)) node.labels[key] = r.pick(kValues);
    }
    nodes.push_back(std::move(node));
  }
  return nodes;
}

}  // namespace

TEST_CASE("NodeSet: sizes around word boundaries") {
  for (std::size_t size : {0, 1, 63, 64, 65, 127, 128, 130}) {
    CAPTURE(size);
    NodeSet full(size, true), empty(size, false);
    CHECK(full.count() == size);
    CHECK(empty.count() == 0);
    CHECK(full.complement().count() == 0);
    CHECK(empty.complement().count() == size);
    std::vector<std::size_t> seen;
    full.forEach([&](std::size_t i) {
      seen.push_back(i);
      return true;
    });
    REQUIRE(seen.size() == size);
    for (std::size_t i = 0; i < size; ++i)
      CHECK(seen[i] == i);
    if (size > 2) {
      NodeSet some(size, false);
      some.insert(0);
      some.insert(size - 1);
      CHECK(some.contains(size - 1));
      CHECK_FALSE(some.contains(1));
      CHECK(NodeSet(full).subtract(some).count() == size - 2);
      CHECK((NodeSet(full) &= some).count() == 2);
      CHECK((NodeSet(empty) |= some).count() == 2);
      int calls = 0;
      some.forEach([&](std::size_t) { return ++calls < 1; });  // stops when told
      CHECK(calls == 1);
    }
  }
}

TEST_CASE("narrow() eliminates exactly what the node-at-a-time definition does") {
  Random r(20261122);
  int checked = 0, withRest = 0, empty = 0;
  for (int n : {0, 1, 5, 63, 64, 65, 200}) {
    for (int round = 0; round < 6; ++round) {
      const auto nodes = randomNodes(r, n);
      const NodeTable table(nodes);
      REQUIRE(table.size() == nodes.size());
      for (int p = 0; p < 60; ++p) {
        const PodRequest pod = randomPod(r, n);
        const auto narrowed = table.narrow(pod);
        int counts[5] = {};
        for (std::size_t i = 0; i < nodes.size(); ++i) {
          const int e = firstElimination(pod, nodes[i]);
          ++counts[e];
          CHECK(narrowed.rest.contains(i) == (e == 0));
        }
        CHECK(narrowed.nodeName == counts[1]);
        CHECK(narrowed.unschedulable == counts[2]);
        CHECK(narrowed.nodeSelector == counts[3]);
        CHECK(narrowed.affinity == counts[4]);
        CHECK(narrowed.rest.count() == static_cast<std::size_t>(counts[0]));
        (counts[0] > 0 ? withRest : empty)++;
        ++checked;
      }
    }
  }
  CHECK(checked == 7 * 6 * 60);
  // Both outcomes were exercised, not only one.
  CHECK(withRest > 200);
  CHECK(empty > 200);
}
