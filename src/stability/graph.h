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

// The shortest cycle through `key` as the path that closes it ("key", ..., "key"), or nullopt
// when `key` is on none. Breadth first from key's dependencies, so a message names the fewest
// channels; ties go to the dependency listed first.
std::optional<std::vector<std::string>> cycleThrough(const DependencyGraph& graph,
                                                     const std::string& key);

// A dependency cycle, or nullopt when there is none: the shortest through the first key (in
// order) that is on one.
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
