// The dependency graph (stability/graph.h): cycles, closure, dependents.
#include <doctest/doctest.h>

#include <chrono>

#include "stability/graph.h"

using namespace pi0::stability;
using std::chrono::seconds;

TEST_CASE("dependency graph: cycles, closure, dependents") {
  const DependencyGraph g = {{"web", {"api"}}, {"api", {"db"}}, {"db", {}}, {"batch", {}}};
  CHECK_FALSE(findCycle(g));
  CHECK(criticalClosure(g, {"api"}) == std::set<std::string>{"api", "db"});
  CHECK(dependentsOf(g, "db") == std::set<std::string>{"api", "web"});
  CHECK(dependenciesOf(g, "web") == std::set<std::string>{"api", "db"});
  const DependencyGraph cyclic = {{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}};
  auto cycle = findCycle(cyclic);
  REQUIRE(cycle);
  CHECK(describeCycle(*cycle) == "a -> b -> c -> a");
  CHECK(describeCycle(*findCycle({{"self", {"self"}}})) == "self -> self");
  // The shortest cycle through a key, and none through a key that only leads into one.
  const DependencyGraph two = {
      {"a", {"b", "d"}}, {"b", {"c"}}, {"c", {"a"}}, {"d", {"a"}}, {"e", {"a"}}};
  CHECK(describeCycle(*cycleThrough(two, "a")) == "a -> d -> a");
  CHECK(describeCycle(*cycleThrough(two, "c")) == "c -> a -> b -> c");
  CHECK_FALSE(cycleThrough(two, "e"));
  CHECK(describeCycle(*findCycle(two)) == "a -> d -> a");
}
