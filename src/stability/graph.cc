#include "stability/graph.h"

#include <algorithm>
#include <functional>

namespace pi0::stability {

std::optional<std::vector<std::string>> findCycle(const DependencyGraph& graph) {
  enum class Mark { kNone, kOnPath, kDone };
  std::map<std::string, Mark> marks;
  std::vector<std::string> path;
  std::optional<std::vector<std::string>> cycle;
  std::function<bool(const std::string&)> visit = [&](const std::string& key) {
    auto& mark = marks[key];
    if (mark == Mark::kDone) return false;
    if (mark == Mark::kOnPath) {
      auto start = std::find(path.begin(), path.end(), key);
      cycle = std::vector<std::string>(start, path.end());
      cycle->push_back(key);
      return true;
    }
    mark = Mark::kOnPath;
    path.push_back(key);
    if (auto it = graph.find(key); it != graph.end()) {
      for (const auto& next : it->second) {
        if (visit(next)) return true;
      }
    }
    path.pop_back();
    marks[key] = Mark::kDone;
    return false;
  };
  for (const auto& [key, deps] : graph) {
    if (visit(key)) return cycle;
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
