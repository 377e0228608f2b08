// The resources' typed specs: parsing (the examples in examples/resources/ too),
// defaults, and the validation messages, each checked against text written by hand.
#include <doctest/doctest.h>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "stability/spec.h"

using namespace pi0::stability;
using Json = nlohmann::json;

namespace {

// YAML as the apiserver would serve it in JSON: quoted scalars stay strings, plain ones that
// read as a boolean, null or number become one ("2" quoted is a string, 200 plain a number).
Json toJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node)
        out.push_back(toJson(item));
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node)
        out[kv.first.Scalar()] = toJson(kv.second);
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() != "?") return s;  // quoted
      if (s == "true" || s == "false") return s == "true";
      if (s == "null" || s == "~") return nullptr;
      const char* end = s.data() + s.size();
      int64_t i = 0;
      if (auto [p, ec] = std::from_chars(s.data(), end, i); ec == std::errc() && p == end) return i;
      double d = 0;
      const bool numeric = !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) ||
                                          s[0] == '-' || s[0] == '.');
      if (auto [p, ec] = std::from_chars(s.data(), end, d);
          numeric && ec == std::errc() && p == end) {
        return d;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

// `file` under examples/resources/, or under examples/ when it names a directory.
std::vector<Json> loadExamples(const std::string& file) {
  std::vector<Json> out;
  const std::string dir =
      file.find('/') == std::string::npos ? "/examples/resources/" : "/examples/";
  for (const auto& doc : YAML::LoadAllFromFile(std::string(PI0_SOURCE_DIR) + dir + file)) {
    out.push_back(toJson(doc));
  }
  return out;
}

// `base` with the value at `pointer` replaced, or removed when `value` is empty.
Json changed(Json base, const std::string& pointer, const std::optional<Json>& value) {
  const Json::json_pointer p(pointer);
  if (value) {
    base[p] = *value;
  } else {
    Json& parent = base[p.parent_pointer()];
    if (parent.is_array()) {
      parent.erase(std::stoul(p.back()));
    } else {
      parent.erase(p.back());
    }
  }
  return base;
}

std::string errorOf(const pi0::Result<ChannelSpec>& r) {
  return r ? "" : r.error().message;
}
std::string errorOf(const pi0::Result<MatrixSpec>& r) {
  return r ? "" : r.error().message;
}

// A Channel with every field set, each to something other than its default.
const Json kChannel = Json::parse(R"json({
  "apiVersion": "stability.pi0.io/v1alpha1",
  "kind": "Channel",
  "metadata": {"name": "api", "namespace": "shop", "generation": 7, "uid": "0b5e-api"},
  "spec": {
    "targets": [{"kind": "Deployment", "name": "api"}, {"kind": "StatefulSet", "name": "cache"}],
    "selector": {
      "matchLabels": {"tier": "web", "app": "api"},
      "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]},
                           {"key": "legacy", "operator": "DoesNotExist"}]
    },
    "critical": true,
    "dependsOn": [{"name": "db"}, {"name": "auth", "namespace": "security"}],
    "degradedReplicas": 2,
    "weights": {"throughput": 0.3, "reliability": 0.5},
    "throughput": {"prometheusQuery": "sum(rate(x[5m]))", "max": 200},
    "buffer": {"max": {"cpu": "1500m", "memory": "512Mi"}},
    "restoreTimeoutSeconds": 600
  }
})json");

// A valid matrix: four levels, a row that degrades then shuts down, one that degrades, and a
// critical row.
const Json kMatrix = Json::parse(R"({
  "apiVersion": "stability.pi0.io/v1alpha1",
  "kind": "ShutdownMatrix",
  "metadata": {"name": "default", "generation": 4, "uid": "77aa-sm"},
  "spec": {
    "levels": [{"name": "normal", "upperBound": 0.7}, {"name": "elevated", "upperBound": 0.8},
               {"name": "high", "upperBound": 0.9}, {"name": "critical"}],
    "rows": [
      {"channel": {"name": "batch", "namespace": "shop"},
       "cells": [{"level": "elevated", "action": "Degrade", "order": 0},
                 {"level": "high", "action": "Shutdown", "order": 2}]},
      {"channel": {"name": "api", "namespace": "shop"}, "critical": false,
       "cells": [{"level": "high", "action": "Degrade"}]},
      {"channel": {"name": "db", "namespace": "shop"}, "critical": true}
    ],
    "loadSignal": {"source": "Prometheus", "prometheusQuery": "pi0:load", "resources": ["cpu"]},
    "stabilityThreshold": 0.6,
    "weights": {"recovery": 0.3},
    "totalBuffer": {"cpu": 8, "memory": "16Gi"},
    "hysteresis": {"margin": 0.1, "dwellSeconds": 120},
    "stepIntervalSeconds": 15,
    "anticipationSeconds": 45,
    "mode": "DryRun",
    "restore": {"backoffSeconds": 5, "maxBackoffSeconds": 300},
    "rollback": {"settleSeconds": 30, "margin": 0.1, "cooldownSeconds": 900}
  }
})");

ChannelSpec validChannel() {
  return parseChannel(kChannel).value();
}
MatrixSpec validMatrix() {
  return parseMatrix(kMatrix).value();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Selectors and names

TEST_CASE("label selectors in the API's query syntax, in the order given") {
  struct Case {
    LabelSelector selector;
    const char* query;
  };
  const Case cases[] = {
      {{}, ""},
      {{{{"stability.pi0.io/channel", "api"}}, {}}, "stability.pi0.io/channel=api"},
      {{{{"a", "b"}, {"c", "d"}},
        {{"x", "In", {"1", "2"}},
         {"y", "NotIn", {"3"}},
         {"z", "Exists", {}},
         {"w", "DoesNotExist", {}}}},
       "a=b,c=d,x in (1,2),y notin (3),z,!w"},
      {{{}, {{"b", "Exists", {}}, {"a", "Exists", {}}}}, "b,a"},
      // Not an operator: spelled out so that the apiserver refuses it, never dropped.
      {{{}, {{"k", "Has", {"v"}}}}, "k Has (v)"},
  };
  for (const Case& c : cases) {
    CHECK(c.selector.toQuery() == c.query);
  }
}

TEST_CASE("enum names as the API writes them") {
  CHECK(std::string(actionName(Action::kDegrade)) == "Degrade");
  CHECK(std::string(actionName(Action::kShutdown)) == "Shutdown");
  CHECK(std::string(actionName(Action::kRestore)) == "Restore");
  CHECK(std::string(modeName(Mode::kEnforce)) == "Enforce");
  CHECK(std::string(modeName(Mode::kDryRun)) == "DryRun");
  CHECK(std::string(workloadKindName(WorkloadKind::kDeployment)) == "Deployment");
  CHECK(std::string(workloadKindName(WorkloadKind::kStatefulSet)) == "StatefulSet");
}

// ---------------------------------------------------------------------------------------------
// Channel

TEST_CASE("a channel with an empty, absent or null spec takes the CRD's defaults") {
  const Json meta =
      Json::parse(R"({"name": "batch", "namespace": "shop", "generation": 3, "uid": "u-1"})");
  for (const Json& spec : {Json::object(), Json(), Json("absent")}) {
    Json object = {{"kind", "Channel"}, {"metadata", meta}};
    if (spec != Json("absent")) object["spec"] = spec;
    CAPTURE(object.dump());
    auto r = parseChannel(object);
    REQUIRE_MESSAGE(r.has_value(), errorOf(r));
    const ChannelSpec& c = *r;
    CHECK(c.ref == ChannelRef{"shop", "batch"});
    CHECK(c.generation == 3);
    CHECK(c.uid == "u-1");
    CHECK(c.targets.empty());
    CHECK(c.selector.toQuery() == "stability.pi0.io/channel=batch");
    CHECK(c.selector.matchExpressions.empty());
    CHECK_FALSE(c.critical);
    CHECK(c.dependsOn.empty());
    CHECK(c.degradedReplicas == 1);
    CHECK_FALSE(c.weights.has_value());
    CHECK_FALSE(c.throughput.has_value());
    CHECK_FALSE(c.bufferMax.has_value());
    CHECK(c.restoreTimeoutSeconds == 300);
    CHECK(validateChannel(c).empty());
  }
}

TEST_CASE("a channel with every field set") {
  auto r = parseChannel(kChannel);
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  const ChannelSpec& c = *r;
  CHECK(c.ref.key() == "shop/api");
  CHECK(c.generation == 7);
  CHECK(c.uid == "0b5e-api");
  REQUIRE(c.targets.size() == 2);
  CHECK(c.targets[0] == Target{WorkloadKind::kDeployment, "api"});
  CHECK(c.targets[1] == Target{WorkloadKind::kStatefulSet, "cache"});
  // JSON objects do not keep their order: matchLabels come sorted by key.
  CHECK(c.selector.toQuery() == "app=api,tier=web,track in (stable,canary),!legacy");
  CHECK(c.selector.matches({{"app", "api"}, {"tier", "web"}, {"track", "canary"}}));
  CHECK_FALSE(c.selector.matches({{"app", "api"}, {"tier", "web"}}));  // track missing
  CHECK_FALSE(c.selector.matches({{"app", "api"}, {"tier", "web"}, {"track", "beta"}}));
  CHECK_FALSE(
      c.selector.matches({{"app", "api"}, {"tier", "web"}, {"track", "stable"}, {"legacy", ""}}));
  CHECK_FALSE(c.selector.matches({{"app", "web"}, {"tier", "web"}, {"track", "stable"}}));
  CHECK(LabelSelector{}.matches({}));
  CHECK(LabelSelector{{}, {{"a", "Exists", {}}}}.matches({{"a", "x"}}));
  CHECK_FALSE(LabelSelector{{}, {{"a", "NotIn", {"x"}}}}.matches({{"a", "x"}}));
  CHECK(LabelSelector{{}, {{"a", "NotIn", {"x"}}}}.matches({}));
  CHECK_FALSE(LabelSelector{{}, {{"a", "Near", {"x"}}}}.matches({{"a", "x"}}));
  CHECK(c.critical);
  REQUIRE(c.dependsOn.size() == 2);
  CHECK(c.dependsOn[0] == ChannelRef{"shop", "db"});  // the channel's own namespace
  CHECK(c.dependsOn[1] == ChannelRef{"security", "auth"});
  CHECK(c.degradedReplicas == 2);
  REQUIRE(c.weights.has_value());
  CHECK(*c.weights == Weights{0.3, 0.5, 0.2});  // recovery left out: its default
  REQUIRE(c.throughput.has_value());
  CHECK(c.throughput->prometheusQuery == "sum(rate(x[5m]))");
  CHECK(c.throughput->max == 200);
  REQUIRE(c.bufferMax.has_value());
  CHECK(*c.bufferMax == Resources{1500, 536870912});
  CHECK(c.restoreTimeoutSeconds == 600);
  CHECK(validateChannel(c).empty());
}

TEST_CASE("channel details: explicit empty selector, numeric quantities, partial buffer") {
  auto emptySelector = parseChannel(changed(kChannel, "/spec/selector", Json::object()));
  REQUIRE(emptySelector.has_value());
  CHECK(emptySelector->selector == LabelSelector{});  // every pod of the namespace

  auto nullSelector = parseChannel(changed(kChannel, "/spec/selector", Json()));
  REQUIRE(nullSelector.has_value());
  CHECK(nullSelector->selector.toQuery() == "stability.pi0.io/channel=api");

  Json numbers = changed(kChannel, "/spec/buffer/max", Json{{"cpu", 2}, {"memory", 1073741824}});
  auto n = parseChannel(numbers);
  REQUIRE_MESSAGE(n.has_value(), errorOf(n));
  CHECK(*n->bufferMax == Resources{2000, 1073741824});

  auto half = parseChannel(changed(kChannel, "/spec/buffer/max/cpu", 0.25));
  REQUIRE(half.has_value());
  CHECK(half->bufferMax->cpuMilli == 250);

  auto memoryOnly = parseChannel(changed(kChannel, "/spec/buffer/max/cpu", std::nullopt));
  REQUIRE(memoryOnly.has_value());
  CHECK(*memoryOnly->bufferMax == Resources{std::nullopt, 536870912});

  auto negative = parseChannel(changed(kChannel, "/spec/buffer/max/cpu", "-1"));
  REQUIRE(negative.has_value());  // parses; validation reports it
  CHECK(negative->bufferMax->cpuMilli == -1000);

  auto integralFloat = parseChannel(changed(kChannel, "/spec/degradedReplicas", 3.0));
  REQUIRE(integralFloat.has_value());
  CHECK(integralFloat->degradedReplicas == 3);
}

TEST_CASE("each channel field of the wrong shape fails, naming the channel and the field") {
  struct Case {
    const char* pointer;
    std::optional<Json> value;  // empty: the field is removed
    const char* message;
  };
  const Case cases[] = {
      {"/metadata", std::nullopt, "Channel: metadata: is required but missing"},
      {"/metadata", "api", "Channel: metadata: must be an object, not string"},
      {"/metadata/name", std::nullopt, "Channel: metadata.name: is required but missing"},
      {"/metadata/namespace", std::nullopt,
       "Channel api: metadata.namespace: is required but missing"},
      {"/metadata/generation", "3",
       "Channel shop/api: metadata.generation: must be an integer, not string"},
      {"/metadata/uid", 7, "Channel shop/api: metadata.uid: must be a string, not number"},
      {"/spec", "x", "Channel shop/api: spec: must be an object, not string"},
      {"/spec/targets", Json::object(),
       "Channel shop/api: spec.targets: must be an array, not object"},
      {"/spec/targets/1/kind", "Job",
       "Channel shop/api: spec.targets[1].kind: unknown kind \"Job\"; expected Deployment or "
       "StatefulSet"},
      {"/spec/targets/0/name", std::nullopt,
       "Channel shop/api: spec.targets[0].name: is required but missing"},
      {"/spec/targets/0/name", "", "Channel shop/api: spec.targets[0].name: must not be empty"},
      {"/spec/targets/0", Json(), "Channel shop/api: spec.targets[0]: must be an object, not null"},
      {"/spec/selector", Json::array(),
       "Channel shop/api: spec.selector: must be an object, not array"},
      {"/spec/selector/matchLabels/tier", 1,
       "Channel shop/api: spec.selector.matchLabels[\"tier\"]: must be a string, not number"},
      {"/spec/selector/matchExpressions/0/operator", "Has",
       "Channel shop/api: spec.selector.matchExpressions[0].operator: unknown operator \"Has\"; "
       "expected In, NotIn, Exists or DoesNotExist"},
      {"/spec/selector/matchExpressions/0/key", std::nullopt,
       "Channel shop/api: spec.selector.matchExpressions[0].key: is required but missing"},
      {"/spec/selector/matchExpressions/0/values", "stable",
       "Channel shop/api: spec.selector.matchExpressions[0].values: must be an array, not string"},
      {"/spec/selector/matchExpressions/0/values/1", false,
       "Channel shop/api: spec.selector.matchExpressions[0].values[1]: must be a string, not "
       "boolean"},
      {"/spec/critical", "yes", "Channel shop/api: spec.critical: must be a boolean, not string"},
      {"/spec/dependsOn/0/name", std::nullopt,
       "Channel shop/api: spec.dependsOn[0].name: is required but missing"},
      {"/spec/dependsOn/1/namespace", 5,
       "Channel shop/api: spec.dependsOn[1].namespace: must be a string, not number"},
      {"/spec/degradedReplicas", 1.5,
       "Channel shop/api: spec.degradedReplicas: must be an integer, not 1.5"},
      {"/spec/degradedReplicas", 3000000000,
       "Channel shop/api: spec.degradedReplicas: 3000000000 is out of range [-2147483648, "
       "2147483647]"},
      {"/spec/weights", 0.5, "Channel shop/api: spec.weights: must be an object, not number"},
      {"/spec/weights/reliability", "high",
       "Channel shop/api: spec.weights.reliability: must be a number, not string"},
      {"/spec/throughput/prometheusQuery", std::nullopt,
       "Channel shop/api: spec.throughput.prometheusQuery: is required but missing"},
      {"/spec/throughput/max", "200",
       "Channel shop/api: spec.throughput.max: must be a number, not string"},
      {"/spec/buffer/max", std::nullopt,
       "Channel shop/api: spec.buffer.max: is required but missing"},
      {"/spec/buffer/max/cpu", "2 cores",
       "Channel shop/api: spec.buffer.max.cpu: \"2 cores\" is not a quantity: unknown suffix "
       "\" cores\" (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)"},
      {"/spec/buffer/max/memory", true,
       "Channel shop/api: spec.buffer.max.memory: must be a quantity (a string such as \"500m\" "
       "or \"2Gi\", or a number), not boolean"},
      {"/spec/buffer/max/memory", "8Ei",
       "Channel shop/api: spec.buffer.max.memory: \"8Ei\" is out of range: beyond "
       "9223372036854775807 bytes"},
      {"/spec/restoreTimeoutSeconds", "600",
       "Channel shop/api: spec.restoreTimeoutSeconds: must be an integer, not string"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pointer);
    auto r = parseChannel(changed(kChannel, c.pointer, c.value));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == c.message);
  }
  CHECK(errorOf(parseChannel(Json::array())) == "Channel: not a JSON object");
  CHECK(errorOf(parseChannel(Json())) == "Channel: not a JSON object");
}

TEST_CASE("the first of several problems is the one reported") {
  Json twice = changed(kChannel, "/spec/critical", 1);
  twice = changed(twice, "/spec/restoreTimeoutSeconds", "x");
  CHECK(errorOf(parseChannel(twice)) ==
        "Channel shop/api: spec.critical: must be a boolean, not number");
}

TEST_CASE("the example channels parse, as written, and are valid") {
  const std::vector<Json> docs = loadExamples("20-channels.yaml");
  REQUIRE(docs.size() == 5);
  std::vector<ChannelSpec> channels;
  for (const Json& doc : docs) {
    auto r = parseChannel(doc);
    REQUIRE_MESSAGE(r.has_value(), errorOf(r));
    CAPTURE(r->ref.key());
    CHECK(validateChannel(*r).empty());
    channels.push_back(*r);
  }
  const ChannelSpec& database = channels[0];
  CHECK(database.ref == ChannelRef{"pi0-demo", "database"});
  CHECK(database.critical);
  REQUIRE(database.targets.size() == 1);
  CHECK(database.targets[0] == Target{WorkloadKind::kStatefulSet, "database"});
  CHECK(database.selector.toQuery() == "stability.pi0.io/channel=database");

  const ChannelSpec& api = channels[1];
  CHECK(api.ref.key() == "pi0-demo/api");
  CHECK_FALSE(api.critical);
  REQUIRE(api.dependsOn.size() == 1);
  CHECK(api.dependsOn[0] == ChannelRef{"pi0-demo", "database"});
  CHECK(api.degradedReplicas == 2);
  CHECK(api.weights == Weights{0.3, 0.5, 0.2});
  CHECK(api.bufferMax == Resources{2000, 2147483648});  // "2", 2Gi
  CHECK(api.restoreTimeoutSeconds == 300);

  const ChannelSpec& frontend = channels[2];
  CHECK(frontend.dependsOn == std::vector<ChannelRef>{{"pi0-demo", "api"}});
  CHECK(frontend.bufferMax == Resources{500, 536870912});  // 500m, 512Mi
  CHECK_FALSE(frontend.weights.has_value());

  const ChannelSpec& recommendations = channels[3];
  CHECK(recommendations.targets.size() == 2);
  CHECK(recommendations.selector.toQuery() == "tier=ml");
  REQUIRE(recommendations.throughput.has_value());
  CHECK(recommendations.throughput->prometheusQuery ==
        "sum(rate(http_requests_total{namespace=\"pi0-demo\",app=\"recommendations\"}[5m]))");
  CHECK(recommendations.throughput->max == 200);
  CHECK(recommendations.bufferMax == Resources{4000, 8589934592});  // "4", 8Gi
  CHECK(recommendations.restoreTimeoutSeconds == 600);

  const ChannelSpec& batch = channels[4];
  CHECK(batch.ref.name == "batch-reports");
  CHECK(batch.weights == Weights{0.2, 0.6, 0.2});
  CHECK(batch.degradedReplicas == 1);
  CHECK_FALSE(batch.bufferMax.has_value());
}

TEST_CASE("each channel validation rule, one failing case each") {
  struct Case {
    const char* name;
    std::function<void(ChannelSpec&)> change;
    std::vector<std::string> messages;
  };
  const std::vector<Case> cases = {
      {"valid", [](ChannelSpec&) {}, {}},
      {"weight above 1",
       [](ChannelSpec& c) { c.weights->reliability = 1.5; },
       {"weights.reliability is 1.5; weights must be within [0, 1]"}},
      {"negative weight",
       [](ChannelSpec& c) { c.weights->throughput = -0.1; },
       {"weights.throughput is -0.1; weights must be within [0, 1]"}},
      {"weights at the bounds",
       [](ChannelSpec& c) {
         c.weights = Weights{0, 1, 0};
       },
       {}},
      {"negative cpu buffer",
       [](ChannelSpec& c) { c.bufferMax->cpuMilli = -1000; },
       {"buffer.max.cpu is negative (-1)"}},
      {"negative memory buffer",
       [](ChannelSpec& c) { c.bufferMax->memoryBytes = -536870912; },
       {"buffer.max.memory is negative (-512Mi)"}},
      {"zero buffer",
       [](ChannelSpec& c) {
         c.bufferMax = Resources{0, 0};
       },
       {}},
      {"self-dependency",
       [](ChannelSpec& c) {
         c.dependsOn.push_back({"shop", "api"});
       },
       {"channel shop/api depends on itself"}},
      {"same name elsewhere",
       [](ChannelSpec& c) {
         c.dependsOn.push_back({"other", "api"});
       },
       {}},
      {"negative degradedReplicas",
       [](ChannelSpec& c) { c.degradedReplicas = -1; },
       {"degradedReplicas is -1; it must be 0 or more"}},
      {"zero degradedReplicas", [](ChannelSpec& c) { c.degradedReplicas = 0; }, {}},
      {"zero restoreTimeoutSeconds",
       [](ChannelSpec& c) { c.restoreTimeoutSeconds = 0; },
       {"restoreTimeoutSeconds is 0; it must be 1 or more"}},
      {"zero throughput max",
       [](ChannelSpec& c) { c.throughput->max = 0; },
       {"throughput.max is 0; it must be above 0"}},
      {"empty throughput query",
       [](ChannelSpec& c) { c.throughput->prometheusQuery = ""; },
       {"throughput.prometheusQuery is empty; give a PromQL query returning one number"}},
      {"target twice",
       [](ChannelSpec& c) {
         c.targets.push_back({WorkloadKind::kDeployment, "api"});
       },
       {"target Deployment/api is listed twice; list each workload once"}},
      {"same name, other kind",
       [](ChannelSpec& c) {
         c.targets.push_back({WorkloadKind::kStatefulSet, "api"});
       },
       {}},
      {"In without values",
       [](ChannelSpec& c) { c.selector.matchExpressions[0].values.clear(); },
       {"selector.matchExpressions[0] (key \"track\"): In needs at least one value"}},
      {"DoesNotExist with values",
       [](ChannelSpec& c) { c.selector.matchExpressions[1].values = {"x"}; },
       {"selector.matchExpressions[1] (key \"legacy\"): DoesNotExist takes no values"}},
      {"unknown operator",
       [](ChannelSpec& c) { c.selector.matchExpressions[0].op = "Has"; },
       {"selector.matchExpressions[0] (key \"track\"): unknown operator \"Has\"; expected In, "
        "NotIn, Exists or DoesNotExist"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    ChannelSpec channel = validChannel();
    c.change(channel);
    CHECK(validateChannel(channel) == c.messages);
  }
}

// ---------------------------------------------------------------------------------------------
// ShutdownMatrix

TEST_CASE("a matrix with only its levels takes the CRD's defaults") {
  auto r = parseMatrix(Json::parse(R"({"metadata": {"name": "default"},
                                       "spec": {"levels": [{"name": "normal"}]}})"));
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  const MatrixSpec& m = *r;
  CHECK(m.name == "default");
  CHECK(m.generation == 0);
  CHECK(m.uid.empty());
  REQUIRE(m.levels.size() == 1);
  CHECK(m.levels[0].name == "normal");
  CHECK_FALSE(m.levels[0].upperBound.has_value());
  CHECK(m.rows.empty());
  CHECK(m.loadSignal.source == LoadSource::kFleet);
  CHECK(m.loadSignal.prometheusQuery.empty());
  CHECK(m.loadSignal.resources == std::vector<pi0::Resource>{pi0::Resource::kCpu,
                                                             pi0::Resource::kMemory,
                                                             pi0::Resource::kGpu});
  CHECK(m.stabilityThreshold == 0.5);
  CHECK(m.weights == Weights{0.4, 0.4, 0.2});
  CHECK_FALSE(m.totalBuffer.has_value());
  CHECK(m.hysteresis.margin == 0.05);
  CHECK(m.hysteresis.dwellSeconds == 60);
  CHECK(m.stepIntervalSeconds == 30);
  CHECK(m.anticipationSeconds == 0);  // off
  CHECK(m.mode == Mode::kEnforce);
  CHECK(m.restore.backoffSeconds == 10);
  CHECK(m.restore.maxBackoffSeconds == 600);
  CHECK(m.rollback.settleSeconds == 60);
  CHECK(m.rollback.margin == 0.05);
  CHECK(m.rollback.cooldownSeconds == 600);
  CHECK(validateMatrix(m).empty());
}

TEST_CASE("a matrix with every field set") {
  auto r = parseMatrix(kMatrix);
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  const MatrixSpec& m = *r;
  CHECK(m.generation == 4);
  CHECK(m.uid == "77aa-sm");
  REQUIRE(m.levels.size() == 4);
  CHECK(m.levels[1].name == "elevated");
  CHECK(m.levels[1].upperBound == 0.8);
  CHECK_FALSE(m.levels[3].upperBound.has_value());
  REQUIRE(m.rows.size() == 3);
  CHECK(m.rows[0].channel == ChannelRef{"shop", "batch"});
  CHECK_FALSE(m.rows[0].critical);
  REQUIRE(m.rows[0].cells.size() == 2);
  CHECK(m.rows[0].cells[1].level == "high");
  CHECK(m.rows[0].cells[1].action == Action::kShutdown);
  CHECK(m.rows[0].cells[1].order == 2);
  REQUIRE(m.rows[1].cells.size() == 1);
  CHECK(m.rows[1].cells[0].action == Action::kDegrade);
  CHECK(m.rows[1].cells[0].order == 0);  // default
  CHECK(m.rows[2].critical);
  CHECK(m.rows[2].cells.empty());
  CHECK(m.loadSignal.source == LoadSource::kPrometheus);
  CHECK(m.loadSignal.prometheusQuery == "pi0:load");
  CHECK(m.loadSignal.resources == std::vector<pi0::Resource>{pi0::Resource::kCpu});
  CHECK(m.stabilityThreshold == 0.6);
  CHECK(m.weights == Weights{0.4, 0.4, 0.3});
  CHECK(m.totalBuffer == Resources{8000, 17179869184});
  CHECK(m.hysteresis.margin == 0.1);
  CHECK(m.hysteresis.dwellSeconds == 120);
  CHECK(m.stepIntervalSeconds == 15);
  CHECK(m.anticipationSeconds == 45);
  CHECK(m.mode == Mode::kDryRun);
  CHECK(m.restore.backoffSeconds == 5);
  CHECK(m.restore.maxBackoffSeconds == 300);
  CHECK(m.rollback.settleSeconds == 30);
  CHECK(m.rollback.margin == 0.1);
  CHECK(m.rollback.cooldownSeconds == 900);
  CHECK(validateMatrix(m).empty());
}

TEST_CASE("the example matrix parses, as written, and is valid") {
  const std::vector<Json> docs = loadExamples("30-shutdownmatrix.yaml");
  REQUIRE(docs.size() == 1);
  auto r = parseMatrix(docs[0]);
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  const MatrixSpec& m = *r;
  CHECK(m.name == "default");
  REQUIRE(m.levels.size() == 4);
  const char* names[] = {"normal", "elevated", "high", "critical"};
  const std::optional<double> bounds[] = {0.7, 0.8, 0.9, std::nullopt};
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(m.levels[i].name == names[i]);
    CHECK(m.levels[i].upperBound == bounds[i]);
  }
  REQUIRE(m.rows.size() == 4);
  CHECK(m.rows[0].channel == ChannelRef{"pi0-demo", "batch-reports"});
  REQUIRE(m.rows[1].cells.size() == 2);
  CHECK(m.rows[1].cells[0].level == "elevated");
  CHECK(m.rows[1].cells[0].action == Action::kDegrade);
  CHECK(m.rows[1].cells[0].order == 1);
  CHECK(m.rows[1].cells[1].action == Action::kShutdown);
  REQUIRE(m.rows[2].cells.size() == 1);
  CHECK(m.rows[2].cells[0].level == "critical");
  CHECK(m.rows[3].critical);
  CHECK(m.rows[3].cells.empty());
  CHECK(m.totalBuffer == Resources{8000, 17179869184});  // "8", 16Gi
  CHECK(m.hysteresis.dwellSeconds == 120);
  CHECK(m.mode == Mode::kEnforce);
  CHECK(validateMatrix(m).empty());
}

TEST_CASE("the anticipating example matrix parses and is valid") {
  const std::vector<Json> docs = loadExamples("anticipation/shutdownmatrix.yaml");
  REQUIRE(docs.size() == 1);
  auto r = parseMatrix(docs[0]);
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  CHECK(r->name == "anticipating");
  CHECK(r->anticipationSeconds == 45);
  CHECK(r->loadSignal.source == LoadSource::kFleet);
  CHECK(r->mode == Mode::kDryRun);
  CHECK(validateMatrix(*r).empty());
}

TEST_CASE("each matrix field of the wrong shape fails, naming the field") {
  struct Case {
    const char* pointer;
    std::optional<Json> value;
    const char* message;
  };
  const Case cases[] = {
      {"/metadata/name", std::nullopt, "ShutdownMatrix: metadata.name: is required but missing"},
      {"/spec", std::nullopt, "ShutdownMatrix default: spec.levels: is required but missing"},
      {"/spec/levels", std::nullopt,
       "ShutdownMatrix default: spec.levels: is required but missing"},
      {"/spec/levels", Json::object(),
       "ShutdownMatrix default: spec.levels: must be an array, not object"},
      {"/spec/levels/0/upperBound", "0.7",
       "ShutdownMatrix default: spec.levels[0].upperBound: must be a number, not string"},
      {"/spec/levels/1/name", std::nullopt,
       "ShutdownMatrix default: spec.levels[1].name: is required but missing"},
      {"/spec/rows", "batch", "ShutdownMatrix default: spec.rows: must be an array, not string"},
      {"/spec/rows/0/channel", std::nullopt,
       "ShutdownMatrix default: spec.rows[0].channel: is required but missing"},
      {"/spec/rows/0/channel/namespace", std::nullopt,
       "ShutdownMatrix default: spec.rows[0].channel.namespace: is required but missing"},
      {"/spec/rows/1/channel/name", "",
       "ShutdownMatrix default: spec.rows[1].channel.name: must not be empty"},
      {"/spec/rows/0/critical", "no",
       "ShutdownMatrix default: spec.rows[0].critical: must be a boolean, not string"},
      {"/spec/rows/0/cells/0/action", "Drain",
       "ShutdownMatrix default: spec.rows[0].cells[0].action: unknown action \"Drain\"; expected "
       "Degrade, Shutdown or Restore"},
      {"/spec/rows/0/cells/0/action", std::nullopt,
       "ShutdownMatrix default: spec.rows[0].cells[0].action: is required but missing"},
      {"/spec/rows/0/cells/1/level", std::nullopt,
       "ShutdownMatrix default: spec.rows[0].cells[1].level: is required but missing"},
      {"/spec/rows/0/cells/0/order", -1.5,
       "ShutdownMatrix default: spec.rows[0].cells[0].order: must be an integer, not -1.5"},
      {"/spec/loadSignal/source", "Agents",
       "ShutdownMatrix default: spec.loadSignal.source: unknown source \"Agents\"; expected Fleet "
       "or Prometheus"},
      {"/spec/loadSignal/resources/0", "disk",
       "ShutdownMatrix default: spec.loadSignal.resources[0]: unknown resource \"disk\"; expected "
       "cpu, memory or gpu"},
      {"/spec/stabilityThreshold", "0.5",
       "ShutdownMatrix default: spec.stabilityThreshold: must be a number, not string"},
      {"/spec/weights/throughput", Json::array(),
       "ShutdownMatrix default: spec.weights.throughput: must be a number, not array"},
      {"/spec/totalBuffer/cpu", "lots",
       "ShutdownMatrix default: spec.totalBuffer.cpu: \"lots\" is not a quantity: it does not "
       "start with a number"},
      {"/spec/hysteresis/dwellSeconds", "2m",
       "ShutdownMatrix default: spec.hysteresis.dwellSeconds: must be an integer, not string"},
      {"/spec/stepIntervalSeconds", 30.5,
       "ShutdownMatrix default: spec.stepIntervalSeconds: must be an integer, not 30.5"},
      {"/spec/anticipationSeconds", "45s",
       "ShutdownMatrix default: spec.anticipationSeconds: must be an integer, not string"},
      {"/spec/mode", "Audit",
       "ShutdownMatrix default: spec.mode: unknown mode \"Audit\"; expected Enforce or DryRun"},
      {"/spec/restore", "x", "ShutdownMatrix default: spec.restore: must be an object, not string"},
      {"/spec/restore/maxBackoffSeconds", -3000000000LL,
       "ShutdownMatrix default: spec.restore.maxBackoffSeconds: -3000000000 is out of range "
       "[-2147483648, 2147483647]"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pointer);
    auto r = parseMatrix(changed(kMatrix, c.pointer, c.value));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == c.message);
  }
  CHECK(errorOf(parseMatrix(Json("default"))) == "ShutdownMatrix: not a JSON object");
}

TEST_CASE("null matrix fields take their defaults") {
  Json nulls = changed(kMatrix, "/spec/restore/backoffSeconds", Json());
  nulls = changed(nulls, "/spec/hysteresis", Json());
  auto r = parseMatrix(nulls);
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  CHECK(r->restore.backoffSeconds == 10);
  CHECK(r->restore.maxBackoffSeconds == 300);
  CHECK(r->hysteresis.margin == 0.05);
  CHECK(r->hysteresis.dwellSeconds == 60);
}

TEST_CASE("each matrix validation rule, one failing case each") {
  struct Case {
    const char* name;
    std::function<void(MatrixSpec&)> change;
    std::vector<std::string> messages;
  };
  const std::vector<Case> cases = {
      {"valid", [](MatrixSpec&) {}, {}},
      {"one open level and no rows",
       [](MatrixSpec& m) {
         m.levels = {{"all", std::nullopt}};
         m.rows.clear();
       },
       {}},
      {"a row may shut down below its degrade level",
       [](MatrixSpec& m) {
         m.rows[0].cells = {{"elevated", Action::kShutdown, 0}, {"high", Action::kDegrade, 0}};
       },
       {}},
      {"levels not ascending",
       [](MatrixSpec& m) { m.levels[2].upperBound = 0.8; },
       {"levels must ascend strictly by upperBound: \"high\" (0.8) is not above \"elevated\" "
        "(0.8)"}},
      {"levels descending",
       [](MatrixSpec& m) { m.levels[1].upperBound = 0.65; },
       {"levels must ascend strictly by upperBound: \"elevated\" (0.65) is not above \"normal\" "
        "(0.7)"}},
      {"bound on the last level",
       [](MatrixSpec& m) { m.levels[3].upperBound = 1.2; },
       {"the last level \"critical\" has upperBound 1.2; the last level must have none (it holds "
        "every load above the one before)"}},
      {"open level before the last",
       [](MatrixSpec& m) { m.levels[1].upperBound.reset(); },
       {"level \"elevated\" has no upperBound; every level but the last needs one"}},
      {"bound not above 0",
       [](MatrixSpec& m) { m.levels[0].upperBound = 0; },
       {"level \"normal\" has upperBound 0; bounds must be above 0"}},
      {"level name twice",
       [](MatrixSpec& m) { m.levels[3].name = "high"; },
       {"level \"high\" is listed twice; level names must be unique"}},
      {"no levels",
       [](MatrixSpec& m) {
         m.levels.clear();
         m.rows.clear();
       },
       {"there are no levels; a ShutdownMatrix needs at least one (the last one open)"}},
      {"unknown level",
       [](MatrixSpec& m) { m.rows[0].cells[1].level = "extreme"; },
       {"row for channel shop/batch names unknown level \"extreme\" (levels: normal, elevated, "
        "high, critical)"}},
      {"cells on a critical row",
       [](MatrixSpec& m) {
         m.rows[2].cells = {{"elevated", Action::kDegrade, 0}};
       },
       {"row for channel shop/db is critical and must have no cells"}},
      {"channel in two rows",
       [](MatrixSpec& m) {
         m.rows[1].channel = {"shop", "batch"};
       },
       {"channel shop/batch is listed in two rows; give each channel one row"}},
      {"a Restore cell",
       [](MatrixSpec& m) { m.rows[1].cells[0].action = Action::kRestore; },
       {"row for channel shop/api has a Restore cell at level \"high\"; a matrix cell may only "
        "Degrade or Shutdown (restores follow from the load falling)"}},
      {"two cells at one level",
       [](MatrixSpec& m) { m.rows[0].cells[1].level = "elevated"; },
       {"row for channel shop/batch has two cells for level \"elevated\"; give each level at most "
        "one cell"}},
      {"a cell at the first level",
       [](MatrixSpec& m) { m.rows[1].cells[0].level = "normal"; },
       {"row for channel shop/api has a cell at the first level \"normal\", which is normal "
        "operation where nothing is degraded; move it to a higher level"}},
      {"negative order",
       [](MatrixSpec& m) { m.rows[0].cells[0].order = -1; },
       {"row for channel shop/batch has order -1 at level \"elevated\"; order must be 0 or more"}},
      {"Prometheus without a query",
       [](MatrixSpec& m) { m.loadSignal.prometheusQuery.clear(); },
       {"loadSignal.source is Prometheus but loadSignal.prometheusQuery is empty; give a PromQL "
        "query returning the load as a ratio"}},
      {"Fleet needs no query",
       [](MatrixSpec& m) {
         m.loadSignal.source = LoadSource::kFleet;
         m.loadSignal.prometheusQuery.clear();
       },
       {}},
      {"no resources",
       [](MatrixSpec& m) { m.loadSignal.resources.clear(); },
       {"loadSignal.resources is empty; list at least one of cpu, memory, gpu"}},
      {"stabilityThreshold above 1",
       [](MatrixSpec& m) { m.stabilityThreshold = 1.5; },
       {"stabilityThreshold is 1.5; it must be within [0, 1]"}},
      {"stabilityThreshold 0 turns it off", [](MatrixSpec& m) { m.stabilityThreshold = 0; }, {}},
      {"weight below 0",
       [](MatrixSpec& m) { m.weights.recovery = -0.2; },
       {"weights.recovery is -0.2; weights must be within [0, 1]"}},
      {"negative total buffer",
       [](MatrixSpec& m) { m.totalBuffer->cpuMilli = -500; },
       {"totalBuffer.cpu is negative (-500m)"}},
      {"margin of 1",
       [](MatrixSpec& m) { m.hysteresis.margin = 1; },
       {"hysteresis.margin is 1; it must be at least 0 and below 1"}},
      {"negative margin",
       [](MatrixSpec& m) { m.hysteresis.margin = -0.05; },
       {"hysteresis.margin is -0.05; it must be at least 0 and below 1"}},
      {"negative dwell",
       [](MatrixSpec& m) { m.hysteresis.dwellSeconds = -1; },
       {"hysteresis.dwellSeconds is -1; it must be 0 or more"}},
      {"rollback off", [](MatrixSpec& m) { m.rollback.settleSeconds = 0; }, {}},
      {"negative settle",
       [](MatrixSpec& m) { m.rollback.settleSeconds = -1; },
       {"rollback.settleSeconds is -1; it must be 0 or more"}},
      {"rollback margin of 1",
       [](MatrixSpec& m) { m.rollback.margin = 1; },
       {"rollback.margin is 1; it must be at least 0 and below 1"}},
      {"negative cool-down",
       [](MatrixSpec& m) { m.rollback.cooldownSeconds = -5; },
       {"rollback.cooldownSeconds is -5; it must be 0 or more"}},
      {"zero step interval",
       [](MatrixSpec& m) { m.stepIntervalSeconds = 0; },
       {"stepIntervalSeconds is 0; it must be 1 or more"}},
      {"anticipation at its bounds", [](MatrixSpec& m) { m.anticipationSeconds = 3600; }, {}},
      {"negative anticipation",
       [](MatrixSpec& m) { m.anticipationSeconds = -1; },
       {"anticipationSeconds is -1; it must be from 0 (off) to 3600"}},
      {"anticipation past an hour",
       [](MatrixSpec& m) { m.anticipationSeconds = 3601; },
       {"anticipationSeconds is 3601; it must be from 0 (off) to 3600"}},
      {"zero backoff",
       [](MatrixSpec& m) {
         m.restore.backoffSeconds = 0;
         m.restore.maxBackoffSeconds = 0;
       },
       {"restore.backoffSeconds is 0; it must be 1 or more",
        "restore.maxBackoffSeconds is 0; it must be 1 or more"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    MatrixSpec matrix = validMatrix();
    c.change(matrix);
    CHECK(validateMatrix(matrix) == c.messages);
  }
}

TEST_CASE("a Restore cell parses, and validation says why it does not belong") {
  auto r = parseMatrix(changed(kMatrix, "/spec/rows/1/cells/0/action", "Restore"));
  REQUIRE_MESSAGE(r.has_value(), errorOf(r));
  CHECK(r->rows[1].cells[0].action == Action::kRestore);
  CHECK(validateMatrix(*r).size() == 1);
}
