#include "stability/graph.h"

#include <algorithm>
#include <deque>

namespace pi0::stability {

std::optional<std::vector<std::string>> cycleThrough(const DependencyGraph& graph,
                                                     const std::string& key) {
  std::map<std::string, std::string> parent;  // reached → reached from
  std::deque<std::string> todo{key};
  while (!todo.empty()) {
    const std::string at = todo.front();
    todo.pop_front();
    auto it = graph.find(at);
    if (it == graph.end()) continue;
    for (const auto& next : it->second) {
      if (next == key) {
        std::vector<std::string> path{key};
        for (std::string k = at; k != key; k = parent.at(k))
          path.push_back(k);
        path.push_back(key);
        std::reverse(path.begin() + 1, path.end() - 1);
        return path;
      }
      if (parent.emplace(next, at).second) todo.push_back(next);
    }
  }
  return std::nullopt;
}

std::optional<std::vector<std::string>> findCycle(const DependencyGraph& graph) {
  for (const auto& [key, deps] : graph) {
    if (auto cycle = cycleThrough(graph, key)) return cycle;
  }
  return std::nullopt;
}

std::string describeCycle(const std::vector<std::string>& cycle) {
  std::string out;
  for (const auto& key : cycle) {
    if (!out.empty()) out += " -> ";
    out += key;
  }
  return out;
}

std::set<std::string> dependenciesOf(const DependencyGraph& graph, const std::string& key) {
  std::set<std::string> seen;
  std::vector<std::string> todo{key};
  while (!todo.empty()) {
    const std::string k = todo.back();
    todo.pop_back();
    auto it = graph.find(k);
    if (it == graph.end()) continue;
    for (const auto& dep : it->second) {
      if (dep != key && seen.insert(dep).second) todo.push_back(dep);
    }
  }
  return seen;
}

std::set<std::string> dependentsOf(const DependencyGraph& graph, const std::string& key) {
  std::set<std::string> out;
  for (const auto& [k, deps] : graph) {
    if (k != key && dependenciesOf(graph, k).contains(key)) out.insert(k);
  }
  return out;
}

std::set<std::string> criticalClosure(const DependencyGraph& graph,
                                      const std::set<std::string>& critical) {
  std::set<std::string> out = critical;
  for (const auto& key : critical) {
    auto deps = dependenciesOf(graph, key);
    out.insert(deps.begin(), deps.end());
  }
  return out;
}

}  // namespace pi0::stability
