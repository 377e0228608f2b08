// Validation of Channels and ShutdownMatrices for the webhook: tables of objects with the exact
// sentences expected, written by hand.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/resource_validation.h"

using namespace pi0::admission;
using Json = nlohmann::json;
using Problems = std::vector<std::string>;

namespace {

// Problems as one text, so that a failing check prints both sides.
std::string joined(const Problems& problems) {
  std::string out;
  for (const auto& p : problems)
    out += p + "\n";
  return out;
}

// A Channel in namespace `ns` depending on `deps` ("name" in its own namespace, or "ns/name").
Json channel(const std::string& ns, const std::string& name, const std::vector<std::string>& deps,
             Json spec = Json::object()) {
  Json dependsOn = Json::array();
  for (const auto& d : deps) {
    const auto slash = d.find('/');
    if (slash == std::string::npos) {
      dependsOn.push_back({{"name", d}});
    } else {
      dependsOn.push_back({{"namespace", d.substr(0, slash)}, {"name", d.substr(slash + 1)}});
    }
  }
  if (!dependsOn.empty()) spec["dependsOn"] = dependsOn;
  spec["targets"] = Json::array({{{"kind", "Deployment"}, {"name", name}}});
  return {{"apiVersion", "stability.pi0.io/v1alpha1"},
          {"kind", "Channel"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec", spec}};
}

// The example matrix of examples/resources/ with its first level's bound as given.
Json matrix(double firstBound = 0.9) {
  return Json::parse(R"({
    "apiVersion": "stability.pi0.io/v1alpha1",
    "kind": "ShutdownMatrix",
    "metadata": {"name": "default"},
    "spec": {
      "levels": [{"name": "normal", "upperBound": )" +
                     std::to_string(firstBound) + R"(},
                 {"name": "elevated", "upperBound": 0.95},
                 {"name": "high", "upperBound": 0.98},
                 {"name": "critical"}],
      "rows": [
        {"channel": {"name": "a", "namespace": "shop"},
         "cells": [{"level": "elevated", "action": "Degrade"},
                   {"level": "high", "action": "Shutdown"}]},
        {"channel": {"name": "b", "namespace": "shop"},
         "cells": [{"level": "critical", "action": "Degrade", "order": 1}]},
        {"channel": {"name": "db", "namespace": "shop"}, "critical": true}
      ],
      "hysteresis": {"margin": 0.05, "dwellSeconds": 120}
    }
  })");
}

const std::vector<Json> kChannels{channel("shop", "a", {"db"}), channel("shop", "b", {"a"}),
                                  channel("shop", "db", {})};

constexpr GateMargin kGate{0.8, 0.05};

}  // namespace

TEST_CASE("channels: valid and invalid, with the exact sentences") {
  struct Case {
    const char* name;
    Json object;
    std::vector<Json> others;
    Problems want;
  };
  const std::vector<Json> chain{channel("shop", "b", {"c"}), channel("shop", "c", {"a"})};
  const std::vector<Case> cases{
      {"no dependencies", channel("shop", "a", {}), {}, {}},
      {"a dependency that exists", channel("shop", "a", {"db"}), kChannels, {}},
      {"a dependency not created yet", channel("shop", "a", {"later"}), {}, {}},
      {"a diamond is no cycle",
       channel("shop", "top", {"l", "r"}),
       {channel("shop", "l", {"base"}), channel("shop", "r", {"base"}),
        channel("shop", "base", {})},
       {}},
      {"self-dependency", channel("shop", "a", {"a"}), {}, {"channel shop/a depends on itself"}},
      {"self-dependency spelled with the namespace",
       channel("shop", "a", {"shop/a"}),
       {},
       {"channel shop/a depends on itself"}},
      {"a channel of the same name in another namespace is another channel",
       channel("shop", "a", {"stock/a"}),
       {channel("stock", "a", {})},
       {}},
      {"cycle through two channels",
       channel("shop", "a", {"b"}),
       {channel("shop", "b", {"a"})},
       {"dependsOn would close a dependency cycle: shop/a -> shop/b -> shop/a; a channel cannot "
        "depend, directly or through others, on a channel that depends on it"}},
      {"cycle through three channels",
       channel("shop", "a", {"b"}),
       chain,
       {"dependsOn would close a dependency cycle: shop/a -> shop/b -> shop/c -> shop/a; a "
        "channel cannot depend, directly or through others, on a channel that depends on it"}},
      {"cycle across namespaces",
       channel("shop", "a", {"stock/b"}),
       {channel("stock", "b", {"shop/a"})},
       {"dependsOn would close a dependency cycle: shop/a -> stock/b -> shop/a; a channel cannot "
        "depend, directly or through others, on a channel that depends on it"}},
      {"the shortest cycle is named",
       channel("shop", "a", {"b", "c"}),
       {channel("shop", "b", {"c"}), channel("shop", "c", {"a"})},
       {"dependsOn would close a dependency cycle: shop/a -> shop/c -> shop/a; a channel cannot "
        "depend, directly or through others, on a channel that depends on it"}},
      {"self-dependency and a cycle: both said",
       channel("shop", "a", {"a", "b"}),
       {channel("shop", "b", {"a"})},
       {"channel shop/a depends on itself",
        "dependsOn would close a dependency cycle: shop/a -> shop/b -> shop/a; a channel cannot "
        "depend, directly or through others, on a channel that depends on it"}},
      {"an UPDATE that breaks a cycle: the old version in the cache is ignored",
       channel("shop", "a", {}),
       {channel("shop", "a", {"b"}), channel("shop", "b", {"a"})},
       {}},
      {"a cycle among others not through this channel does not refuse it",
       channel("shop", "a", {"x"}),
       {channel("shop", "x", {"y"}), channel("shop", "y", {"x"})},
       {}},
      {"others that do not parse are ignored",
       channel("shop", "a", {"b"}),
       {Json{{"metadata", {{"name", "b"}}}}, Json("garbage")},
       {}},
      {"weights above 1",
       channel("shop", "a", {}, {{"weights", {{"throughput", 1.5}, {"recovery", 0.2}}}}),
       {},
       {"weights.throughput is 1.5; weights must be within [0, 1]"}},
      {"a negative weight",
       channel("shop", "a", {}, {{"weights", {{"reliability", -0.1}}}}),
       {},
       {"weights.reliability is -0.1; weights must be within [0, 1]"}},
      {"weights at the edges",
       channel("shop", "a", {}, {{"weights", {{"throughput", 0}, {"reliability", 1}}}}),
       {},
       {}},
      {"a negative buffer",
       channel("shop", "a", {}, {{"buffer", {{"max", {{"cpu", "-500m"}, {"memory", "1Gi"}}}}}}),
       {},
       {"buffer.max.cpu is negative (-500m)"}},
      {"a negative memory buffer",
       channel("shop", "a", {}, {{"buffer", {{"max", {{"memory", "-1Gi"}}}}}}),
       {},
       {"buffer.max.memory is negative (-1Gi)"}},
      {"a field of the wrong type: the parse's one message",
       channel("shop", "a", {}, {{"degradedReplicas", "two"}}),
       {},
       {"Channel shop/a: spec.degradedReplicas: must be an integer, not string"}},
      {"not an object", Json::array(), {}, {"Channel: not a JSON object"}},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    CHECK(joined(validateChannelObject(c.object, c.others)) == joined(c.want));
  }
}

TEST_CASE("matrices: levels, rows, cycles, with the exact sentences") {
  struct Case {
    const char* name;
    Json object;
    std::vector<Json> channels;
    Problems want;
  };
  auto with = [](auto edit) {
    Json m = matrix();
    edit(m["spec"]);
    return m;
  };
  const std::vector<Case> cases{
      {"valid", matrix(), kChannels, {}},
      {"valid with no channels yet (rows are warnings)", matrix(), {}, {}},
      {"levels not ascending",
       with([](Json& s) { s["levels"][2]["upperBound"] = 0.93; }),
       kChannels,
       {R"(levels must ascend strictly by upperBound: "high" (0.93) is not above "elevated" (0.95))"}},
      {"two levels with the same bound",
       with([](Json& s) { s["levels"][1]["upperBound"] = 0.9; }),
       kChannels,
       {R"(levels must ascend strictly by upperBound: "elevated" (0.9) is not above "normal" (0.9))"}},
      {"a level listed twice",
       with([](Json& s) { s["levels"][2]["name"] = "elevated"; }),
       kChannels,
       {R"(level "elevated" is listed twice; level names must be unique)",
        R"(row for channel shop/a names unknown level "high" (levels: normal, elevated, critical))"}},
      {"a row naming an unknown level",
       with([](Json& s) { s["rows"][1]["cells"][0]["level"] = "extreme"; }),
       kChannels,
       {R"(row for channel shop/b names unknown level "extreme" (levels: normal, elevated, high, critical))"}},
      {"a critical row with cells",
       with([](Json& s) {
         s["rows"][2]["cells"] = Json::array({{{"level", "critical"}, {"action", "Shutdown"}}});
       }),
       kChannels,
       {"row for channel shop/db is critical and must have no cells"}},
      {"a cycle through two channels",
       matrix(),
       {channel("shop", "a", {"b"}), channel("shop", "b", {"a"}), channel("shop", "db", {})},
       {"channels depend on each other in a cycle: shop/a -> shop/b -> shop/a"}},
      {"a cycle through three channels",
       matrix(),
       {channel("shop", "a", {"db"}), channel("shop", "b", {"a"}), channel("shop", "db", {"b"})},
       {"channels depend on each other in a cycle: shop/a -> shop/db -> shop/b -> shop/a"}},
      {"a field of the wrong type: the parse's one message",
       with([](Json& s) { s["levels"] = "normal"; }),
       kChannels,
       {"ShutdownMatrix default: spec.levels: must be an array, not string"}},
      {"levels missing",
       with([](Json& s) { s.erase("levels"); }),
       kChannels,
       {"ShutdownMatrix default: spec.levels: is required but missing"}},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    CHECK(joined(validateMatrixObject(c.object, c.channels, kGate)) == joined(c.want));
  }
}

TEST_CASE("the gate margin: the first level must end at least a margin above admission's ceiling") {
  // ceiling 0.8 (θ_iso 0.2), minimum margin 0.05, hysteresis.margin 0.05: upperBound ≥ 0.85.
  const std::string refused =
      R"(the first level "normal" ends at upperBound 0.84, but pod admission admits up to a )"
      "projected load of 0.8 (1 - θ_iso); above 0.84 the operator degrades and shuts down "
      "channels, so it would act against pods that admission lets in: raise the upperBound of "
      R"("normal" to at least 0.85 (0.8 plus a margin of 0.05), or have the admission gate stop )"
      "at 0.79 or lower (θ_iso ≥ 0.21)";
  CHECK(validateMatrixObject(matrix(0.9), kChannels, kGate).empty());
  CHECK(validateMatrixObject(matrix(0.85), kChannels, kGate).empty());  // exactly the margin
  CHECK(validateMatrixObject(matrix(0.84), kChannels, kGate) == Problems{refused});

  // The example matrix (normal ≤ 0.7) needs θ_iso ≥ 0.35.
  CHECK(validateMatrixObject(matrix(0.7), kChannels, GateMargin{0.65}).empty());
  CHECK(validateMatrixObject(matrix(0.7), kChannels, GateMargin{0.66}) ==
        Problems{R"(the first level "normal" ends at upperBound 0.7, but pod admission admits up )"
                 "to a projected load of 0.66 (1 - θ_iso); above 0.7 the operator degrades and "
                 "shuts down channels, so it would act against pods that admission lets in: raise "
                 R"(the upperBound of "normal" to at least 0.71 (0.66 plus a margin of 0.05), or )"
                 "have the admission gate stop at 0.65 or lower (θ_iso ≥ 0.35)"});

  // A larger hysteresis margin widens it: recovery waits for ℓ ≤ 0.85 − 0.1 = 0.75 < 0.8.
  Json m = matrix(0.85);
  m["spec"]["hysteresis"]["margin"] = 0.1;
  CHECK(validateMatrixObject(m, kChannels, kGate) ==
        Problems{R"(the first level "normal" ends at upperBound 0.85, but pod admission admits up )"
                 "to a projected load of 0.8 (1 - θ_iso); above 0.85 the operator degrades and "
                 "shuts down channels, so it would act against pods that admission lets in: raise "
                 R"(the upperBound of "normal" to at least 0.9 (0.8 plus a margin of 0.1, this )"
                 "matrix's hysteresis.margin), or have the admission gate stop at 0.75 or lower "
                 "(θ_iso ≥ 0.25)"});
  m["spec"]["levels"][0]["upperBound"] = 0.9;
  CHECK(validateMatrixObject(m, kChannels, kGate).empty());

  // The first level counts even when no cell sits at the second: GDO acts there.
  m = matrix(0.84);
  m["spec"]["rows"][0]["cells"] = Json::array({{{"level", "high"}, {"action", "Shutdown"}}});
  CHECK(validateMatrixObject(m, kChannels, kGate) == Problems{refused});

  // A bound so low that no gate could leave the margin: only "raise" is offered.
  CHECK(validateMatrixObject(matrix(0.04), kChannels, kGate) ==
        Problems{R"(the first level "normal" ends at upperBound 0.04, but pod admission admits up )"
                 "to a projected load of 0.8 (1 - θ_iso); above 0.04 the operator degrades and "
                 "shuts down channels, so it would act against pods that admission lets in: raise "
                 R"(the upperBound of "normal" to at least 0.85 (0.8 plus a margin of 0.05))"});

  // One open level: nothing is ever degraded by load, so no margin is needed.
  const Json open = Json::parse(R"({"metadata": {"name": "calm"},
                                    "spec": {"levels": [{"name": "normal"}]}})");
  CHECK(validateMatrixObject(open, {}, GateMargin{1.0}).empty());
}

TEST_CASE("matrix warnings: rows naming channels that do not exist yet") {
  CHECK(matrixWarnings(matrix(), kChannels).empty());
  CHECK(matrixWarnings(matrix(), {channel("shop", "a", {})}) ==
        Problems{"row names channel shop/b, which does not exist (yet); the operator does not act "
                 "on this matrix until it does",
                 "row names channel shop/db, which does not exist (yet); the operator does not "
                 "act on this matrix until it does"});
  CHECK(matrixWarnings(Json("garbage"), kChannels).empty());
}

TEST_CASE("matrix warnings: anticipation with a Prometheus load signal has no forecast to use") {
  Json m = matrix();
  m["spec"]["anticipationSeconds"] = 45;
  CHECK(matrixWarnings(m, kChannels).empty());  // Fleet (the default): anticipation applies
  m["spec"]["loadSignal"] = {{"source", "Prometheus"}, {"prometheusQuery", "pi0:load"}};
  CHECK(matrixWarnings(m, kChannels) ==
        Problems{"anticipationSeconds 45 has no effect: the load signal is a Prometheus query, "
                 "which has no forecast (anticipation needs loadSignal.source Fleet)"});
  m["spec"]["anticipationSeconds"] = 0;  // off: nothing to say
  CHECK(matrixWarnings(m, kChannels).empty());
  // Out of range is refused, not warned about.
  m["spec"]["anticipationSeconds"] = 3601;
  CHECK(validateMatrixObject(m, kChannels, kGate) ==
        Problems{"anticipationSeconds is 3601; it must be from 0 (off) to 3600"});
}
