// The dependency graph of channels (spec.dependsOn), by channel key "ns/name".
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace pi0::stability {

// key → the keys it depends on. A key that appears only as a dependency has no entry.
using DependencyGraph = std::map<std::string, std::vector<std::string>>;

// A dependency cycle as the path that closes it ("a", "b", "a"), or nullopt when there is none.
// Deterministic: the first cycle found walking the keys in order.
std::optional<std::vector<std::string>> findCycle(const DependencyGraph& graph);

// "a -> b -> a": a cycle for a message.
std::string describeCycle(const std::vector<std::string>& cycle);

// The critical keys and everything they depend on, transitively: what is never touched.
std::set<std::string> criticalClosure(const DependencyGraph& graph,
                                      const std::set<std::string>& critical);

// The keys that depend on `key`, directly or transitively.
std::set<std::string> dependentsOf(const DependencyGraph& graph, const std::string& key);

// The keys `key` depends on, directly or transitively.
std::set<std::string> dependenciesOf(const DependencyGraph& graph, const std::string& key);

}  // namespace pi0::stability
