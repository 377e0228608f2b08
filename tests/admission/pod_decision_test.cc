#include "admission/pod_decision.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace pi0;
using namespace pi0::admission;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

constexpr std::int64_t kGiB = 1024LL * 1024 * 1024;
const Clock::time_point kNow = Clock::time_point{} + 1000s;

// A full-window signal with the given gate metrics.
fleet::SignalFingerprint sig(double isolation, double fit = 0.0, double glue = 0.0) {
  fleet::SignalFingerprint s;
  s.samples = 64;
  s.gates = fleet::SignalGates{};
  s.gates->isolation = isolation;
  s.gates->fitError = fit;
  s.gates->gluingDelta = glue;
  s.projectedPeak = 1 - isolation;
  return s;
}

// A PSI signal: only `current` is read.
fleet::SignalFingerprint psi(double current) {
  fleet::SignalFingerprint s = sig(1 - current);
  s.current = current;
  return s;
}

using Signals = std::map<std::string, fleet::SignalFingerprint>;

// A healthy node, quiet everywhere: cpu and memory isolation 0.8, PSI 0.
Signals quiet() {
  return {{"cpu", sig(0.8)}, {"memory", sig(0.8)}, {"psi_cpu", psi(0)}, {"psi_memory", psi(0)}};
}

struct FleetEntry {
  Signals signals;
  Clock::time_point fetchedAt = kNow - 1s;
  fleet::NodeHealth health = fleet::NodeHealth::kHealthy;
  std::string lastError = "";
  std::optional<fleet::HistoryVerdict> history = std::nullopt;  // the leader's memory's verdict
};

fleet::FleetSnapshot snapshot(const std::map<std::string, FleetEntry>& entries) {
  fleet::FleetSnapshot::Nodes nodes;
  for (const auto& [name, e] : entries) {
    auto fp = std::make_shared<fleet::NodeFingerprint>();
    fp->node = name;
    fp->ready = true;
    fp->windowFill = 1;
    for (const auto& [s, v] : e.signals)
      fp->signals.emplace(s, v);
    fp->history = e.history;
    auto status = std::make_shared<fleet::NodeStatus>();
    status->node = name;
    status->fingerprint = fp;
    status->fetchedAt = e.fetchedAt;
    status->health = e.health;
    status->lastError = e.lastError;
    nodes.push_back(status);
  }
  return fleet::FleetSnapshot(std::move(nodes), 15s);
}

NodeInfo node(const std::string& name, std::int64_t cores = 4, std::int64_t memGiB = 16,
              std::int64_t gpus = 0) {
  NodeInfo n;
  n.name = name;
  n.cpuMilli = cores * 1000;
  n.memoryBytes = memGiB * kGiB;
  n.gpus = gpus;
  return n;
}

// A pod in namespace "shop" with one container requesting `cpu` and `memory` (empty: none).
Json podJson(const std::string& cpu = "", const std::string& memory = "") {
  Json requests = Json::object();
  if (!cpu.empty()) requests["cpu"] = cpu;
  if (!memory.empty()) requests["memory"] = memory;
  return Json{{"metadata", {{"namespace", "shop"}, {"generateName", "web-"}}},
              {"spec",
               {{"containers",
                 Json::array({{{"name", "app"}, {"resources", {{"requests", requests}}}}})}}}};
}

PodRequest podOf(const Json& j) {
  auto p = parsePod(j);
  REQUIRE_MESSAGE(p.has_value(), (p ? std::string() : p.error().message));
  return *p;
}

PodRequest pod(const std::string& cpu = "", const std::string& memory = "") {
  return podOf(podJson(cpu, memory));
}

// The tables' numbers were worked out with θ_iso = 0.05 (the default is 0.35, see Thresholds).
Policy testPolicy() {
  Policy p;
  p.thresholds.isolation = 0.05;
  return p;
}

Decision run(const PodRequest& p, const std::vector<NodeInfo>& nodes,
             const fleet::FleetSnapshot& fleet, const Policy& policy = testPolicy(),
             std::optional<ChannelInfo> channel = std::nullopt,
             std::optional<Mode> nsMode = std::nullopt) {
  return decide(p, nodes, fleet, channel, policy, nsMode, kNow);
}

}  // namespace

// --- Parsing -----------------------------------------------------------------------------------

TEST_CASE("parsePod sums containers, takes the init peak, adds sidecars and overhead") {
  struct Case {
    const char* name;
    Json spec;
    std::int64_t cpu, memory, gpus;
  };
  auto c = [](const char* cpu, const char* mem, const char* gpu = nullptr) {
    Json r = Json::object();
    if (cpu) r["cpu"] = cpu;
    if (mem) r["memory"] = mem;
    if (gpu) r["nvidia.com/gpu"] = gpu;
    return Json{{"name", "c"}, {"resources", {{"requests", r}}}};
  };
  auto sidecar = [&](const char* cpu, const char* mem) {
    Json s = c(cpu, mem);
    s["restartPolicy"] = "Always";
    return s;
  };
  const Case cases[] = {
      {"no requests", {{"containers", {Json{{"name", "c"}}}}}, 0, 0, 0},
      {"sum", {{"containers", {c("500m", "1Gi"), c("250m", "512Mi", "2")}}}, 750, 1536LL << 20, 2},
      {"init larger on cpu only",
       {{"containers", {c("500m", "1Gi")}}, {"initContainers", {c("2", "64Mi")}}},
       2000,
       kGiB,
       0},
      {"sidecar runs beside the containers and later inits",
       {{"containers", {c("500m", "1Gi")}},
        {"initContainers", {sidecar("100m", "128Mi"), c("1", "64Mi")}}},
       1100,
       kGiB + (128LL << 20),
       0},
      {"overhead",
       {{"containers", {c("500m", "1Gi")}}, {"overhead", {{"cpu", "250m"}, {"memory", "1Gi"}}}},
       750,
       2 * kGiB,
       0},
      {"numbers as quantities",
       {{"containers", {Json{{"resources", {{"requests", {{"cpu", 2}}}}}}}}},
       2000,
       0,
       0},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    const PodRequest p = podOf(Json{{"metadata", {{"name", "p"}}}, {"spec", tc.spec}});
    CHECK(p.cpuMilli == tc.cpu);
    CHECK(p.memoryBytes == tc.memory);
    CHECK(p.gpus == tc.gpus);
  }
}

TEST_CASE("parsePod reads metadata, selector, affinity and tolerations") {
  const Json j = Json::parse(R"({
    "metadata": {"namespace": "shop", "name": "web-1", "labels": {"app": "web"},
                 "uid": "0b5e4a9c-7f7e-4c53-9d1c-3a1f6a2e8b10",
                 "ownerReferences": [
                   {"apiVersion": "v1", "kind": "ConfigMap", "name": "helper", "uid": "u1"},
                   {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f",
                    "uid": "u2", "controller": true}]},
    "spec": {
      "nodeSelector": {"disk": "ssd"},
      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
          {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]},
          {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}},
      "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                       "effect": "NoSchedule"}, {"operator": "Exists"}],
      "containers": [{"name": "a"}]}})");
  const PodRequest p = podOf(j);
  CHECK(p.displayName() == "shop/web-1");
  CHECK(p.uid == "0b5e4a9c-7f7e-4c53-9d1c-3a1f6a2e8b10");
  CHECK(p.ownerKind == "ReplicaSet");  // the controlling owner, not the first
  CHECK(p.ownerName == "web-7d9f");
  CHECK(p.labels.at("app") == "web");
  CHECK(p.nodeSelector.at("disk") == "ssd");
  REQUIRE(p.requiredAffinity.has_value());
  REQUIRE(p.requiredAffinity->size() == 2);
  CHECK((*p.requiredAffinity)[0].matchExpressions[0].op == SelectorOperator::kGt);
  CHECK((*p.requiredAffinity)[0].matchExpressions[0].number == 8);
  CHECK((*p.requiredAffinity)[1].matchFields[0].values[0] == "n1");
  REQUIRE(p.tolerations.size() == 2);
  CHECK(p.tolerations[0].effect == TaintEffect::kNoSchedule);
  CHECK_FALSE(p.tolerations[0].exists);
  CHECK(p.tolerations[1].exists);
  CHECK_FALSE(p.tolerations[1].effect.has_value());
  CHECK(podOf(podJson()).displayName() == "shop/web-*");
  CHECK(podOf(podJson()).ownerKind.empty());  // a pod without a controller
}

TEST_CASE("malformed pods give an error naming the field, never a throw") {
  struct Case {
    const char* json;
    const char* error;  // a substring of the message
  };
  const Case cases[] = {
      {R"([])", "pod: not a JSON object"},
      {R"({"spec": {}})", "metadata: missing"},
      {R"({"metadata": 3, "spec": {}})", "metadata: not an object"},
      {R"({"metadata": {}})", "spec: missing"},
      {R"({"metadata": {"labels": {"a": 1}}, "spec": {}})", "metadata.labels.a: not a string"},
      {R"({"metadata": {"ownerReferences": {}}, "spec": {}})",
       "metadata.ownerReferences: not an array"},
      {R"({"metadata": {"ownerReferences": [{"controller": "yes"}]}, "spec": {}})",
       "metadata.ownerReferences[0].controller: not a boolean"},
      {R"({"metadata": {}, "spec": {"containers": {}}})", "spec.containers: not an array"},
      {R"({"metadata": {}, "spec": {"containers": [{"resources": {"requests": {"cpu": "5x"}}}]}})",
       "spec.containers[0].resources.requests.cpu: \"5x\" is not a quantity"},
      {R"({"metadata": {}, "spec": {"containers": [{}, {"resources": {"requests": {"memory": true}}}]}})",
       "spec.containers[1].resources.requests.memory: not a quantity"},
      {R"({"metadata": {}, "spec": {"containers": [{"resources": {"requests": {"cpu": "-1"}}}]}})",
       "is negative"},
      {R"({"metadata": {}, "spec": {"containers": [{"resources": {"requests": {"nvidia.com/gpu": "500m"}}}]}})",
       "is not a whole number of GPUs"},
      {R"({"metadata": {}, "spec": {"initContainers": [{"resources": []}]}})",
       "spec.initContainers[0].resources: not an object"},
      {R"({"metadata": {}, "spec": {"tolerations": [{"operator": "Maybe"}]}})",
       "spec.tolerations[0].operator: unknown operator \"Maybe\""},
      {R"({"metadata": {}, "spec": {"tolerations": [{"effect": "Sometimes"}]}})",
       "spec.tolerations[0].effect: unknown effect"},
      {R"({"metadata": {}, "spec": {"nodeSelector": []}})", "spec.nodeSelector: not an object"},
      {R"({"metadata": {}, "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]}}}}})",
       "nodeSelectorTerms[0].matchExpressions[0].operator: unknown operator \"Near\""},
      {R"({"metadata": {}, "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}]}}}}})",
       "Gt needs exactly one integer value"},
      {R"({"metadata": {}, "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "spec.x", "operator": "In", "values": ["x"]}]}]}}}}})",
       "unsupported field \"spec.x\""},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.json);
    Result<PodRequest> r;
    CHECK_NOTHROW(r = parsePod(Json::parse(tc.json)));
    REQUIRE_FALSE(r.has_value());
    CHECK_MESSAGE(r.error().message.find(tc.error) != std::string::npos, r.error().message);
  }
}

TEST_CASE("parseNode reads labels, taints, unschedulable and allocatable") {
  const Json j = Json::parse(R"({
    "metadata": {"name": "n1", "labels": {"zone": "a"}},
    "spec": {"unschedulable": true,
             "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
    "status": {"allocatable": {"cpu": "3900m", "memory": "15Gi", "nvidia.com/gpu": "2",
                               "pods": "110"}}})");
  auto n = parseNode(j);
  REQUIRE(n.has_value());
  CHECK(n->name == "n1");
  CHECK(n->labels.at("zone") == "a");
  CHECK(n->unschedulable);
  REQUIRE(n->taints.size() == 1);
  CHECK(n->taints[0].effect == TaintEffect::kNoSchedule);
  CHECK(n->cpuMilli == 3900);
  CHECK(n->memoryBytes == 15 * kGiB);
  CHECK(n->gpus == 2);

  CHECK(parseNode(Json::parse(R"({"metadata": {}})")).error().message == "metadata.name: missing");
  CHECK(
      parseNode(
          Json::parse(
              R"({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "X"}]}})"))
          .error()
          .message.find("spec.taints[0].effect: unknown effect") == 0);
  CHECK(parseNode(Json::parse(
                      R"({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "lots"}}})"))
            .error()
            .message.find("status.allocatable.cpu:") == 0);
}

// --- Candidate nodes ---------------------------------------------------------------------------

TEST_CASE("tolerations follow Kubernetes' semantics") {
  const Taint gpu{"dedicated", "gpu", TaintEffect::kNoSchedule};
  struct Case {
    const char* name;
    Toleration t;
    bool tolerated;
  };
  const Case cases[] = {
      {"Equal, same key value effect", {"dedicated", false, "gpu", TaintEffect::kNoSchedule}, true},
      {"Equal, other value", {"dedicated", false, "cpu", TaintEffect::kNoSchedule}, false},
      {"Equal, other key", {"team", false, "gpu", TaintEffect::kNoSchedule}, false},
      {"Equal, other effect", {"dedicated", false, "gpu", TaintEffect::kNoExecute}, false},
      {"Equal, any effect", {"dedicated", false, "gpu", std::nullopt}, true},
      {"Exists on the key", {"dedicated", true, "", TaintEffect::kNoSchedule}, true},
      {"Exists, empty key: everything", {"", true, "", std::nullopt}, true},
      {"Exists, empty key, other effect", {"", true, "", TaintEffect::kNoExecute}, false},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    CHECK(tolerates(tc.t, gpu) == tc.tolerated);
  }
}

TEST_CASE("node affinity operators") {
  NodeInfo n = node("n1");
  n.labels = {{"zone", "a"}, {"cores", "16"}, {"tier", "gold"}, {"odd", "x"}};
  auto expr = [](const char* key, SelectorOperator op, std::vector<std::string> values,
                 std::int64_t number = 0) {
    NodeSelectorTerm t;
    t.matchExpressions.push_back({key, op, std::move(values), number});
    return t;
  };
  struct Case {
    const char* name;
    NodeSelectorTerm term;
    bool matches;
  };
  NodeSelectorTerm both = expr("zone", SelectorOperator::kIn, {"a"});
  both.matchExpressions.push_back({"tier", SelectorOperator::kIn, {"silver"}, 0});
  NodeSelectorTerm byName;
  byName.matchFields.push_back({"metadata.name", SelectorOperator::kIn, {"n1"}, 0});
  NodeSelectorTerm notByName;
  notByName.matchFields.push_back({"metadata.name", SelectorOperator::kNotIn, {"n1"}, 0});
  const Case cases[] = {
      {"In, value listed", expr("zone", SelectorOperator::kIn, {"b", "a"}), true},
      {"In, value not listed", expr("zone", SelectorOperator::kIn, {"b"}), false},
      {"In, label absent", expr("rack", SelectorOperator::kIn, {"a"}), false},
      {"NotIn, value listed", expr("zone", SelectorOperator::kNotIn, {"a"}), false},
      {"NotIn, label absent", expr("rack", SelectorOperator::kNotIn, {"a"}), true},
      {"Exists", expr("zone", SelectorOperator::kExists, {}), true},
      {"Exists, absent", expr("rack", SelectorOperator::kExists, {}), false},
      {"DoesNotExist", expr("rack", SelectorOperator::kDoesNotExist, {}), true},
      {"DoesNotExist, present", expr("zone", SelectorOperator::kDoesNotExist, {}), false},
      {"Gt 8 on 16", expr("cores", SelectorOperator::kGt, {"8"}, 8), true},
      {"Gt 16 on 16", expr("cores", SelectorOperator::kGt, {"16"}, 16), false},
      {"Lt 32 on 16", expr("cores", SelectorOperator::kLt, {"32"}, 32), true},
      {"Lt 16 on 16", expr("cores", SelectorOperator::kLt, {"16"}, 16), false},
      {"Gt on a non-integer label", expr("odd", SelectorOperator::kGt, {"1"}, 1), false},
      {"Gt on an absent label", expr("rack", SelectorOperator::kGt, {"1"}, 1), false},
      {"expressions are ANDed", both, false},
      {"matchFields metadata.name In", byName, true},
      {"matchFields metadata.name NotIn", notByName, false},
      {"empty term matches nothing", NodeSelectorTerm{}, false},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    CHECK(matchesTerm(tc.term, n) == tc.matches);
  }
}

TEST_CASE("candidate selection: each constraint eliminates, the others leave the node") {
  NodeInfo plain = node("plain");
  NodeInfo ssd = node("ssd");
  ssd.labels = {{"disk", "ssd"}};
  NodeInfo cordoned = node("cordoned");
  cordoned.unschedulable = true;
  NodeInfo tainted = node("tainted");
  tainted.taints = {{"dedicated", "gpu", TaintEffect::kNoSchedule}};
  NodeInfo preferNo = node("prefer");
  preferNo.taints = {{"spot", "", TaintEffect::kPreferNoSchedule}};
  NodeInfo executes = node("executes");
  executes.taints = {{"gone", "", TaintEffect::kNoExecute}};
  const auto fleet = snapshot({{"plain", {quiet()}},
                               {"ssd", {quiet()}},
                               {"cordoned", {quiet()}},
                               {"tainted", {quiet()}},
                               {"prefer", {quiet()}},
                               {"executes", {quiet()}}});

  Json selector = podJson();
  selector["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  Json affinityOr = podJson();
  affinityOr["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"] = Json::parse(
                R"([{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
                    {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}])");
  Json tolerant = podJson();
  tolerant["spec"]["tolerations"] = Json::parse(R"([{"operator": "Exists"}])");
  Json onNode = podJson();
  onNode["spec"]["nodeName"] = "tainted";

  struct Case {
    const char* name;
    Json pod;
    NodeInfo node;
    bool candidate;
    const char* message;  // for a node that is not a candidate
  };
  const Case cases[] = {
      {"plain node", podJson(), plain, true, ""},
      {"nodeSelector matches", selector, ssd, true, ""},
      {"nodeSelector does not match", selector, plain, false,
       "no candidate node among 1 node: 1 not matching the nodeSelector"},
      {"affinity: second term matches", affinityOr, ssd, true, ""},
      {"affinity: no term matches", affinityOr, plain, false,
       "no candidate node among 1 node: 1 not matching the required node affinity"},
      {"unschedulable", podJson(), cordoned, false,
       "no candidate node among 1 node: 1 unschedulable"},
      {"unschedulable, tolerated", tolerant, cordoned, true, ""},
      {"NoSchedule taint", podJson(), tainted, false,
       "no candidate node among 1 node: 1 with an untolerated taint (dedicated=gpu:NoSchedule)"},
      {"NoSchedule taint tolerated", tolerant, tainted, true, ""},
      {"PreferNoSchedule never eliminates", podJson(), preferNo, true, ""},
      {"NoExecute taint", podJson(), executes, false,
       "no candidate node among 1 node: 1 with an untolerated taint (gone:NoExecute)"},
      {"nodeName: taints are not checked", onNode, tainted, true, ""},
      {"nodeName: other nodes are not candidates", onNode, plain, false,
       "no candidate node among 1 node: 1 other than the pod's spec.nodeName"},
      {"request above allocatable", podJson("5"), plain, false,
       "no candidate node among 1 node: 1 with too little allocatable cpu"},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    const Decision d = run(podOf(tc.pod), {tc.node}, fleet);
    if (tc.candidate) {
      CHECK(d.allowed);
      CHECK(d.reason == Reason::kPassed);
      CHECK(d.node == tc.node.name);
    } else {
      CHECK_FALSE(d.allowed);
      CHECK(d.reason == Reason::kNoCandidateNode);
      CHECK(d.message == tc.message);
    }
  }
}

TEST_CASE("no candidate: the message counts each reason over all nodes") {
  NodeInfo a = node("a"), b = node("b"), c = node("c"), d = node("d");
  b.unschedulable = true;
  c.taints = {{"dedicated", "gpu", TaintEffect::kNoSchedule}};
  d.taints = {{"dedicated", "gpu", TaintEffect::kNoSchedule}};
  Json j = podJson();
  j["spec"]["nodeSelector"] = {{"pool", "x"}};
  a.labels = {{"pool", "y"}};
  c.labels = d.labels = {{"pool", "x"}};
  const Decision dec = run(podOf(j), {a, b, c, d}, snapshot({}));
  CHECK(dec.reason == Reason::kNoCandidateNode);
  CHECK(dec.message ==
        "no candidate node among 4 nodes: 1 unschedulable, 1 not matching the nodeSelector, 2 "
        "with an untolerated taint (dedicated=gpu:NoSchedule)");
  CHECK(run(pod(), {}, snapshot({})).message == "no candidate node: the cluster has no nodes");
}

// --- Gates -------------------------------------------------------------------------------------

TEST_CASE("each gate failing alone") {
  // A 4-core, 16 GiB node; the pod asks for 1 core and 4 GiB: request share 0.25 on both, so
  // isolation must be at least 0.25 + 0.05 = 0.30.
  struct Case {
    const char* name;
    Signals signals;
    bool passes;
    const char* failure;  // the message's tail
  };
  auto with = [](const char* name, fleet::SignalFingerprint s) {
    Signals sg = quiet();
    sg[name] = s;
    return sg;
  };
  const Case cases[] = {
      {"all quiet", quiet(), true, ""},
      {"cpu fit_error at the threshold passes", with("cpu", sig(0.8, 0.10)), true, ""},
      {"cpu fit_error", with("cpu", sig(0.8, 0.18)), false, "cpu fit_error 0.18 > 0.10"},
      {"memory fit_error", with("memory", sig(0.8, 0.11)), false, "memory fit_error 0.11 > 0.10"},
      {"cpu gluing_delta", with("cpu", sig(0.8, 0, 0.2)), false, "cpu gluing_delta 0.20 > 0.15"},
      {"memory gluing_delta just over", with("memory", sig(0.8, 0, 0.1503)), false,
       "memory gluing_delta 0.1503 > 0.1500"},
      {"cpu psi", with("psi_cpu", psi(0.31)), false, "cpu psi 0.31 > 0.25"},
      {"memory psi", with("psi_memory", psi(0.4)), false, "memory psi 0.40 > 0.25"},
      {"cpu isolation", with("cpu", sig(0.29)), false,
       "cpu isolation 0.29 < 0.30 (request 0.25 + margin 0.05)"},
      {"cpu isolation at the threshold passes", with("cpu", sig(0.30)), true, ""},
      {"memory isolation", with("memory", sig(0.21)), false,
       "memory isolation 0.21 < 0.30 (request 0.25 + margin 0.05)"},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    const Decision d = run(pod("1", "4Gi"), {node("n1")}, snapshot({{"n1", {tc.signals}}}));
    CHECK(d.allowed == tc.passes);
    // Every gate of the node is read (2 resources x fit, glue, psi, isolation); those that
    // failed are the failures.
    REQUIRE(d.gates.size() == 8);
    CHECK(d.candidates == 1);
    std::vector<GateReading> failed;
    for (const GateReading& g : d.gates)
      if (!g.passed) failed.push_back(g);
    if (tc.passes) {
      CHECK(d.reason == Reason::kPassed);
      CHECK(d.failures.empty());
      CHECK(failed.empty());
    } else {
      CHECK(d.reason == Reason::kGatesFailed);
      CHECK(d.node == "n1");
      REQUIRE(d.failures.size() == 1);
      REQUIRE(failed.size() == 1);
      CHECK(failed[0].resource == d.failures[0].resource);
      CHECK(failed[0].gate == d.failures[0].gate);
      CHECK(failed[0].value == d.failures[0].value);
      CHECK(failed[0].threshold == d.failures[0].threshold);
      CHECK(d.message ==
            std::string("no node passes the gates for cpu 1, memory 4Gi: closest n1: ") +
                tc.failure);
    }
  }
}

TEST_CASE("a decision reads the gates of the node it names: the chosen one, or the closest") {
  // Two nodes; the pod asks for 1 core and 4 GiB of 4 cores and 16 GiB (request share 0.25).
  Signals busy = quiet(), calm = quiet();
  busy["cpu"] = sig(0.2, 0.12);  // fails fit_error and isolation
  calm["memory"] = sig(0.6, 0.03, 0.05);
  const auto fleet = snapshot({{"busy", {busy}}, {"calm", {calm}}});
  const Decision d = run(pod("1", "4Gi"), {node("busy"), node("calm")}, fleet);
  CHECK(d.reason == Reason::kPassed);
  CHECK(d.node == "calm");
  CHECK(d.candidates == 2);
  using R = fleet::Resource;
  const std::vector<GateReading> calmGates{
      {R::kCpu, Gate::kFitError, 0.0, 0.10, 0, true},
      {R::kCpu, Gate::kGluingDelta, 0.0, 0.15, 0, true},
      {R::kCpu, Gate::kPsi, 0.0, 0.25, 0, true},
      {R::kCpu, Gate::kIsolation, 0.8, 0.30, 0.25, true},
      {R::kMemory, Gate::kFitError, 0.03, 0.10, 0, true},
      {R::kMemory, Gate::kGluingDelta, 0.05, 0.15, 0, true},
      {R::kMemory, Gate::kPsi, 0.0, 0.25, 0, true},
      {R::kMemory, Gate::kIsolation, 0.6, 0.30, 0.25, true},
  };
  REQUIRE(d.gates.size() == calmGates.size());
  for (std::size_t i = 0; i < calmGates.size(); ++i) {
    CAPTURE(i);
    CHECK(d.gates[i].resource == calmGates[i].resource);
    CHECK(d.gates[i].gate == calmGates[i].gate);
    CHECK(d.gates[i].value == doctest::Approx(calmGates[i].value));
    CHECK(d.gates[i].threshold == doctest::Approx(calmGates[i].threshold));
    CHECK(d.gates[i].requestShare == doctest::Approx(calmGates[i].requestShare));
    CHECK(d.gates[i].passed == calmGates[i].passed);
  }

  // Only the busy node: denied, and the gates are the busy node's, two of them failed.
  const Decision denied = run(pod("1", "4Gi"), {node("busy")}, fleet);
  CHECK(denied.reason == Reason::kGatesFailed);
  CHECK(denied.node == "busy");
  REQUIRE(denied.gates.size() == 8);
  CHECK_FALSE(denied.gates[0].passed);  // cpu fit_error 0.12 > 0.10
  CHECK(denied.gates[0].value == doctest::Approx(0.12));
  CHECK_FALSE(denied.gates[3].passed);  // cpu isolation 0.2 < 0.30
  CHECK(std::count_if(denied.gates.begin(), denied.gates.end(),
                      [](const GateReading& g) { return !g.passed; }) == 2);

  // No candidate: nothing read.
  const Decision none = run(pod("1", "4Gi"), {}, fleet);
  CHECK(none.gates.empty());
  CHECK(none.candidates == 0);
}

TEST_CASE("the psi gate reads the pressure the node's forecast expects within the lead") {
  // A noisy neighbour building up: PSI 0.12 now, the kernel's 10 s average moving toward a stall
  // rate of 0.35. Within 10 s (the default lead) it expects 0.35 − 0.23·e^(−1) = 0.27.
  Signals s = quiet();
  s["psi_cpu"] = psi(0.12);
  s["psi_cpu"].forecast = fleet::SignalForecast{30, 0.12, 0.12, 0.0, 0.0, 0.2, 6.1, 0.35, 0.12};
  const auto fleet = snapshot({{"n1", {s}}});
  const Decision d = run(pod("1", "4Gi"), {node("n1")}, fleet);
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == Reason::kGatesFailed);
  CHECK(d.message ==
        "no node passes the gates for cpu 1, memory 4Gi: closest n1: cpu psi 0.27 > 0.25 "
        "(expected within 10 s, 0.12 now)");
  REQUIRE(d.failures.size() == 1);
  CHECK(d.failures[0].value == doctest::Approx(0.35 - 0.23 * std::exp(-1.0)));
  CHECK(d.failures[0].now == doctest::Approx(0.12));
  // The ledger records the value the gate compared.
  const auto read = std::find_if(d.gates.begin(), d.gates.end(), [](const GateReading& g) {
    return g.resource == fleet::Resource::kCpu && g.gate == Gate::kPsi;
  });
  REQUIRE(read != d.gates.end());
  CHECK_FALSE(read->passed);
  CHECK(read->value == doctest::Approx(d.failures[0].value));

  // A shorter lead expects less (0.21 within 5 s); 0 reads PSI now.
  Policy p = testPolicy();
  p.psiLeadSeconds = 5;
  CHECK(run(pod("1", "4Gi"), {node("n1")}, fleet, p).allowed);
  p.psiLeadSeconds = 0;
  CHECK(run(pod("1", "4Gi"), {node("n1")}, fleet, p).allowed);

  // A calm node at a tight threshold: PSI 0.12 holding (its stall rate 0.12), the forecast's
  // level 0.16 with its noise margin. The gate reads the kernel's average, not the margin.
  p.psiLeadSeconds = 10;
  p.thresholds.psi = 0.14;
  s["psi_cpu"].forecast = fleet::SignalForecast{30, 0.16, 0.16, 0.0, 0.03, 0.2, {}, 0.12, 0.12};
  CHECK(run(pod("1", "4Gi"), {node("n1")}, snapshot({{"n1", {s}}}), p).allowed);

  // Over the threshold now, the message is the plain one: the forecast added nothing.
  s["psi_cpu"] = psi(0.31);
  CHECK(run(pod("1", "4Gi"), {node("n1")}, snapshot({{"n1", {s}}})).message ==
        "no node passes the gates for cpu 1, memory 4Gi: closest n1: cpu psi 0.31 > 0.25");
}

TEST_CASE("a node without PSI skips the PSI gate") {
  Signals s = {{"cpu", sig(0.8)}, {"memory", sig(0.8)}};
  const Decision d = run(pod("1"), {node("n1")}, snapshot({{"n1", {s}}}));
  CHECK(d.allowed);
  CHECK(d.reason == Reason::kPassed);
}

TEST_CASE("a request that fits one node only: isolation against request/allocatable") {
  // small: 4 cores, isolation 0.5; big: 16 cores, isolation 0.3. The pod asks for 3 cores:
  //   small: 3/4 + 0.05 = 0.80 > 0.5 fails;  big: 3/16 + 0.05 = 0.2375 ≤ 0.3 passes.
  Signals small = quiet(), big = quiet();
  small["cpu"] = sig(0.5);
  big["cpu"] = sig(0.3);
  const auto fleet = snapshot({{"small", {small}}, {"big", {big}}});
  const Decision both = run(pod("3"), {node("small", 4), node("big", 16)}, fleet);
  CHECK(both.allowed);
  CHECK(both.node == "big");

  const Decision smallOnly = run(pod("3"), {node("small", 4)}, fleet);
  CHECK_FALSE(smallOnly.allowed);
  CHECK(smallOnly.message ==
        "no node passes the gates for cpu 3, memory 0: closest small: cpu isolation 0.50 < "
        "0.80 (request 0.75 + margin 0.05)");
  REQUIRE(smallOnly.failures.size() == 1);
  CHECK(smallOnly.failures[0].threshold == doctest::Approx(0.80));
  CHECK(smallOnly.failures[0].requestShare == doctest::Approx(0.75));

  // 2 cores: small needs 0.55 (fails at 0.5), big 0.175 (passes at 0.3).
  CHECK(run(pod("2"), {node("small", 4), node("big", 16)}, fleet).node == "big");
  // 1 core: small needs 0.30 and passes; it comes first.
  CHECK(run(pod("1"), {node("small", 4), node("big", 16)}, fleet).node == "small");
}

TEST_CASE("the closest node: fewest failing gates, then smallest excess") {
  Signals twoFails = quiet(), bigExcess = quiet(), smallExcess = quiet();
  twoFails["cpu"] = sig(0.8, 0.11, 0.16);  // two gates, excess 0.02
  bigExcess["cpu"] = sig(0.8, 0.5);        // one gate, excess 0.40
  smallExcess["memory"] = sig(0.8, 0.12);  // one gate, excess 0.02
  const auto fleet =
      snapshot({{"two", {twoFails}}, {"big", {bigExcess}}, {"small", {smallExcess}}});
  const Decision d = run(pod("100m"), {node("two"), node("big"), node("small")}, fleet);
  CHECK_FALSE(d.allowed);
  CHECK(d.node == "small");
  CHECK(d.message ==
        "no node passes the gates for cpu 100m, memory 0: closest small: memory fit_error 0.12 > "
        "0.10");
}

TEST_CASE("GPU pods: the node's GPUs as one pool") {
  // gpus: isolations 0.9 and 0.5 → pool isolation 0.7; fit errors 0.02 and 0.1 → 0.06.
  Signals two = quiet();
  two["gpu0_sm"] = sig(0.9, 0.02);
  two["gpu1_sm"] = sig(0.5, 0.10);
  two["gpu0_memory"] = sig(0.0, 0.9);  // not an sm signal: takes no part
  struct Case {
    const char* name;
    const char* gpus;
    bool passes;
    const char* failure;
  };
  const Case cases[] = {
      // 1 of 2: 0.5 + 0.05 = 0.55 ≤ 0.7.
      {"one GPU", "1", true, ""},
      // 2 of 2: 1.0 + 0.05 = 1.05 > 0.7.
      {"both GPUs", "2", false, "gpu isolation 0.70 < 1.05 (request 1.00 + margin 0.05)"},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    Json j = podJson("100m");
    j["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = tc.gpus;
    const Decision d = run(podOf(j), {node("g", 8, 32, 2)}, snapshot({{"g", {two}}}));
    CHECK(d.allowed == tc.passes);
    if (!tc.passes) {
      CHECK(d.message.find(std::string("nvidia.com/gpu ") + tc.gpus +
                           ": closest g: " + tc.failure) != std::string::npos);
    }
  }

  Json j = podJson("100m");
  j["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1";
  // A node without GPUs is not a candidate for a GPU pod.
  const Decision none = run(podOf(j), {node("cpu-only")}, snapshot({{"cpu-only", {quiet()}}}));
  CHECK(none.reason == Reason::kNoCandidateNode);
  CHECK(none.message ==
        "no candidate node among 1 node: 1 with too little allocatable nvidia.com/gpu");
  // A GPU node whose agent has no GPU signals has no data for the pod.
  const Decision blind = run(podOf(j), {node("g", 8, 32, 2)}, snapshot({{"g", {quiet()}}}));
  CHECK(blind.reason == Reason::kStaleData);
  // Unpredictable GPUs fail fit_error on the pool's mean.
  Signals noisy = quiet();
  noisy["gpu0_sm"] = sig(0.9, 0.3);
  noisy["gpu1_sm"] = sig(0.9, 0.1);
  const Decision d = run(podOf(j), {node("g", 8, 32, 2)}, snapshot({{"g", {noisy}}}));
  CHECK_FALSE(d.allowed);
  CHECK(d.message.find("gpu fit_error 0.20 > 0.10") != std::string::npos);
  // A pod without GPUs ignores busy GPUs.
  Signals busy = quiet();
  busy["gpu0_sm"] = sig(0.0, 0.5, 0.5);
  CHECK(run(pod("100m"), {node("g", 8, 32, 1)}, snapshot({{"g", {busy}}})).allowed);
}

// --- Freshness ---------------------------------------------------------------------------------

TEST_CASE("stale or missing data under both policies") {
  Signals notFull = quiet();
  notFull["cpu"].gates.reset();
  struct Case {
    const char* name;
    std::map<std::string, FleetEntry> fleet;
  };
  const Case cases[] = {
      {"no agent", {}},
      {"stale", {{"n1", {quiet(), kNow - 16s}}}},
      {"stale and suspect, not failed",
       {{"n1", {quiet(), kNow - 16s, fleet::NodeHealth::kSuspect, "timeout"}}}},
      {"window not full", {{"n1", {notFull}}}},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    const auto fleet = snapshot(tc.fleet);
    const Decision allow = run(pod("1"), {node("n1")}, fleet);
    CHECK(allow.allowed);
    CHECK(allow.reason == Reason::kStaleData);
    REQUIRE(allow.warnings.size() == 1);
    CHECK(allow.warnings[0] ==
          "admitted without gate checks: no fresh fleet data for 1 candidate node");

    Policy deny = testPolicy();
    deny.stale = StalePolicy::kDeny;
    const Decision denied = run(pod("1"), {node("n1")}, fleet, deny);
    CHECK_FALSE(denied.allowed);
    CHECK(denied.reason == Reason::kStaleData);
    CHECK(denied.message ==
          "no fresh fleet data for 1 candidate node; the policy denies without data");
    CHECK(denied.warnings.empty());
  }

  // A suspect node's fresh data is still used.
  CHECK(run(pod("1"), {node("n1")},
            snapshot({{"n1", {quiet(), kNow - 1s, fleet::NodeHealth::kSuspect}}}))
            .reason == Reason::kPassed);

  // With some data, failing gates deny even under kAllow, and the message counts the others.
  Signals busy = quiet();
  busy["cpu"] = sig(0.1);
  const Decision d = run(pod("1"), {node("n1"), node("n2"), node("n3")},
                         snapshot({{"n1", {busy}}, {"n2", {quiet(), kNow - 60s}}}));
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == Reason::kGatesFailed);
  CHECK(d.message ==
        "no node passes the gates for cpu 1, memory 0: closest n1: cpu isolation 0.10 < 0.30 "
        "(request 0.25 + margin 0.05); 2 candidate nodes had no fresh data");
}

TEST_CASE("a failed agent fails its node's gates; stale is not failed") {
  const fleet::NodeHealth kFailed = fleet::NodeHealth::kFailed;
  Policy deny = testPolicy();
  deny.stale = StalePolicy::kDeny;
  Signals busy = quiet();
  busy["cpu"] = sig(0.1);
  struct Case {
    const char* name;
    std::vector<NodeInfo> nodes;
    std::map<std::string, FleetEntry> fleet;
    Reason reason;
    const char* node;
    const char* message;  // empty for a pass
  };
  const Case cases[] = {
      // Under either stale policy: a failed agent is not missing data, it is a failing node.
      {"only a failed candidate",
       {node("n1")},
       {{"n1", {quiet(), kNow - 1s, kFailed, "connection refused"}}},
       Reason::kGatesFailed,
       "n1",
       "no node passes the gates for cpu 1, memory 0: n1 agent failed: connection refused"},
      // Its last fingerprint is fresh (1 s old): freshness does not save a Failed node.
      {"failed with fresh data, no error recorded",
       {node("n1")},
       {{"n1", {quiet(), kNow - 1s, kFailed}}},
       Reason::kGatesFailed,
       "n1",
       "no node passes the gates for cpu 1, memory 0: n1 agent failed"},
      {"two failed and a stale candidate",
       {node("n1"), node("n2"), node("n3")},
       {{"n1", {quiet(), kNow - 60s, kFailed, "connection refused"}},
        {"n2", {quiet(), kNow - 60s, kFailed, "timeout"}},
        {"n3", {quiet(), kNow - 60s}}},
       Reason::kGatesFailed,
       "n1",
       "no node passes the gates for cpu 1, memory 0: n1 agent failed: connection refused; 1 more "
       "candidate node's agent failed; 1 candidate node has no fresh data"},
      // The scan goes past the failed node to the one that passes.
      {"a failed and a passing candidate",
       {node("n1"), node("n2")},
       {{"n1", {quiet(), kNow - 1s, kFailed, "connection refused"}}, {"n2", {quiet()}}},
       Reason::kPassed,
       "n2",
       ""},
      // A node whose gates were measured is closer than one whose agent failed, wherever it is
      // in the order: its failures are what the message shows.
      {"a failed candidate and one failing its gates",
       {node("n1"), node("n2")},
       {{"n1", {quiet(), kNow - 1s, kFailed, "connection refused"}}, {"n2", {busy}}},
       Reason::kGatesFailed,
       "n2",
       "no node passes the gates for cpu 1, memory 0: closest n2: cpu isolation 0.10 < 0.30 "
       "(request 0.25 + margin 0.05); 1 candidate node's agent failed (n1: connection refused)"},
      // Merely stale (no fresh fingerprint, not Failed): the stale policy, as before.
      {"stale, not failed",
       {node("n1")},
       {{"n1", {quiet(), kNow - 16s, fleet::NodeHealth::kSuspect, "timeout"}}},
       Reason::kStaleData,
       "",
       "admitted without gate checks: no fresh fleet data for 1 candidate node"},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    const auto fleet = snapshot(tc.fleet);
    const Decision d = run(pod("1"), tc.nodes, fleet);  // StalePolicy::kAllow
    CHECK(d.reason == tc.reason);
    CHECK(d.node == tc.node);
    CHECK(d.message == tc.message);
    const bool passes = tc.reason == Reason::kPassed || tc.reason == Reason::kStaleData;
    CHECK(d.allowed == passes);
    if (tc.reason == Reason::kGatesFailed) {
      CHECK(d.auditAnnotations.at("reason") == "GatesFailed");
      // The deny policy for stale data changes nothing for a failed agent.
      const Decision strict = run(pod("1"), tc.nodes, fleet, deny);
      CHECK(strict.reason == Reason::kGatesFailed);
      CHECK(strict.message == tc.message);
    }
  }

  // A node that failed before its first good poll has no fingerprint at all: failed still.
  fleet::FleetSnapshot::Nodes never;
  auto status = std::make_shared<fleet::NodeStatus>();
  status->node = "n1";
  status->health = kFailed;
  status->lastError = "no route to host";
  never.push_back(status);
  const Decision d = run(pod("1"), {node("n1")}, fleet::FleetSnapshot(std::move(never), 15s));
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == Reason::kGatesFailed);
  CHECK(d.failures.empty());
  CHECK(d.message ==
        "no node passes the gates for cpu 1, memory 0: n1 agent failed: no route to host");
}

// --- Channels ----------------------------------------------------------------------------------

TEST_CASE("an Inactive channel denies, saying when it comes back") {
  ChannelInfo c;
  c.name = "shop/batch";
  c.state = stability::ChannelState::kInactive;
  c.level = "critical";
  c.load = 0.93;
  c.resumeBelow = 0.75;
  c.elevated = true;
  const auto fleet = snapshot({{"n1", {quiet()}}});
  const Decision d = run(pod("1"), {node("n1")}, fleet, testPolicy(), c);
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == Reason::kChannelInactive);
  CHECK(d.message ==
        "channel shop/batch is shut down at level critical (load 0.93); it comes back when the "
        "load stays below 0.75");
  CHECK(d.auditAnnotations.at("reason") == "ChannelInactive");

  c.resumeBelow.reset();
  CHECK(run(pod("1"), {node("n1")}, fleet, testPolicy(), c).message ==
        "channel shop/batch is shut down at level critical (load 0.93); it comes back when the "
        "operator restores it");
  c.level.clear();  // no matrix: neither level nor load is known
  CHECK(run(pod("1"), {node("n1")}, fleet, testPolicy(), c).message ==
        "channel shop/batch is shut down; it comes back when the operator restores it");

  c.state = stability::ChannelState::kDegraded;
  CHECK(run(pod("1"), {node("n1")}, fleet, testPolicy(), c).allowed);
}

TEST_CASE("buffer exhaustion at elevated levels") {
  ChannelInfo c;
  c.name = "shop/web";
  c.state = stability::ChannelState::kActive;
  c.level = "high";
  c.load = 0.82;
  c.elevated = true;
  c.bufferRemaining = stability::Resources{200, 2 * kGiB};
  const auto fleet = snapshot({{"n1", {quiet()}}});
  struct Case {
    const char* name;
    const char* cpu;
    const char* memory;
    bool elevated;
    bool allowed;
    const char* message;
  };
  const Case cases[] = {
      {"within the buffer", "200m", "2Gi", true, true, ""},
      {"cpu over", "500m", "1Gi", true, false,
       "channel shop/web's buffer is exhausted at level high (load 0.82): cpu 500m > 200m "
       "remaining (by 300m)"},
      {"both over", "1", "3Gi", true, false,
       "channel shop/web's buffer is exhausted at level high (load 0.82): cpu 1 > 200m remaining "
       "(by 800m), memory 3Gi > 2Gi remaining (by 1Gi)"},
      {"not elevated: no buffer check", "1", "3Gi", false, true, ""},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    c.elevated = tc.elevated;
    const Decision d = run(pod(tc.cpu, tc.memory), {node("n1")}, fleet, testPolicy(), c);
    CHECK(d.allowed == tc.allowed);
    if (!tc.allowed) {
      CHECK(d.reason == Reason::kBufferExhausted);
      CHECK(d.message == tc.message);
    }
  }
  // What the caller reserved for pods it admitted and the operator has not counted yet is named
  // (the caller took it off bufferRemaining already: decide() does not subtract it again).
  c.elevated = true;
  c.bufferRemaining = stability::Resources{0, kGiB};
  c.reserved = {300, 64LL << 20, 3};
  CHECK(run(pod("100m", "1Gi"), {node("n1")}, fleet, testPolicy(), c).message ==
        "channel shop/web's buffer is exhausted at level high (load 0.82): cpu 100m > 0 remaining "
        "(by 100m); 3 pods admitted but not yet counted by the operator hold cpu 300m, memory "
        "64Mi");
  c.reserved = {100, 0, 1};
  CHECK(run(pod("100m"), {node("n1")}, fleet, testPolicy(), c).message ==
        "channel shop/web's buffer is exhausted at level high (load 0.82): cpu 100m > 0 remaining "
        "(by 100m); 1 pod admitted but not yet counted by the operator holds cpu 100m, memory 0");
  c.reserved = {};

  // A buffer that bounds only memory does not limit cpu; a negative remainder counts as 0.
  c.elevated = true;
  c.bufferRemaining = stability::Resources{std::nullopt, -kGiB};
  CHECK(run(pod("3", ""), {node("n1")}, fleet, testPolicy(), c).allowed);
  const Decision d = run(pod("", "1Mi"), {node("n1")}, fleet, testPolicy(), c);
  CHECK(d.message.find("memory 1Mi > 0 remaining (by 1Mi)") != std::string::npos);
}

TEST_CASE("a restoring channel: not denied as Inactive, no buffer check") {
  const auto fleet = snapshot({{"n1", {quiet()}}});
  ChannelInfo c;
  c.name = "shop/batch";
  c.state = stability::ChannelState::kInactive;
  c.level = "high";
  c.load = 0.82;
  c.elevated = true;
  c.bufferRemaining = stability::Resources{200, kGiB};
  struct Case {
    const char* name;
    stability::ChannelState state;
    bool restoring;
    const char* cpu;
    Reason reason;
  };
  const Case cases[] = {
      // The operator has announced the restore: the channel's pods come back through admission
      // while the channel is still Inactive, and bring back what it had (not growth).
      {"Inactive, restoring, over the buffer", stability::ChannelState::kInactive, true, "1",
       Reason::kPassed},
      {"Inactive, not restoring", stability::ChannelState::kInactive, false, "100m",
       Reason::kChannelInactive},
      {"Degraded, restoring, over the buffer", stability::ChannelState::kDegraded, true, "1",
       Reason::kPassed},
      {"Degraded, not restoring, over the buffer", stability::ChannelState::kDegraded, false, "1",
       Reason::kBufferExhausted},
      {"Active, not restoring, within the buffer", stability::ChannelState::kActive, false, "100m",
       Reason::kPassed},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    c.state = tc.state;
    c.restoring = tc.restoring;
    const Decision d = run(pod(tc.cpu), {node("n1")}, fleet, testPolicy(), c);
    CHECK(d.reason == tc.reason);
    CHECK(d.allowed == (tc.reason == Reason::kPassed));
  }
  // Restoring skips the channel's checks, not the gates: a node that fails them still denies.
  Signals busy = quiet();
  busy["cpu"] = sig(0.1);
  c.state = stability::ChannelState::kInactive;
  c.restoring = true;
  const Decision d = run(pod("1"), {node("n1")}, snapshot({{"n1", {busy}}}), testPolicy(), c);
  CHECK(d.reason == Reason::kGatesFailed);
}

TEST_CASE("checksBuffer: elevated, a known remainder, not restoring, not shut down") {
  ChannelInfo c;
  c.elevated = true;
  c.bufferRemaining = stability::Resources{100, std::nullopt};
  CHECK(checksBuffer(c));
  c.state = stability::ChannelState::kDegraded;
  CHECK(checksBuffer(c));
  ChannelInfo notElevated = c;
  notElevated.elevated = false;
  CHECK_FALSE(checksBuffer(notElevated));
  ChannelInfo unknown = c;
  unknown.bufferRemaining.reset();
  CHECK_FALSE(checksBuffer(unknown));
  ChannelInfo restoring = c;
  restoring.restoring = true;
  CHECK_FALSE(checksBuffer(restoring));
  ChannelInfo inactive = c;
  inactive.state = stability::ChannelState::kInactive;
  CHECK_FALSE(checksBuffer(inactive));
}

// --- Exclusions and modes ----------------------------------------------------------------------

TEST_CASE("exclusions: namespaces and the opt-out label") {
  // Nothing could pass: no nodes at all.
  Json system = podJson("1");
  system["metadata"]["namespace"] = "kube-system";
  Json optOut = podJson("1");
  optOut["metadata"]["labels"] = {{"stability.pi0.io/admission", "skip"}};
  Json otherValue = podJson("1");
  otherValue["metadata"]["labels"] = {{"stability.pi0.io/admission", "yes"}};
  Policy custom = testPolicy();
  custom.excludedNamespaces = {"pi0-system"};
  Json release = podJson("1");
  release["metadata"]["namespace"] = "pi0-system";
  struct Case {
    const char* name;
    Json pod;
    Policy policy = testPolicy();
    bool excluded;
  };
  const Case cases[] = {
      {"kube-system by default", system, {}, true},
      {"opt-out label", optOut, {}, true},
      {"another label value", otherValue, {}, false},
      {"custom list", release, custom, true},
      {"custom list replaces the default", system, custom, false},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    for (Mode m : {Mode::kEnforce, Mode::kDryRun}) {
      Policy p = tc.policy;
      p.mode = m;
      const Decision d = run(podOf(tc.pod), {}, snapshot({}), p);
      CHECK(d.allowed == (tc.excluded || m == Mode::kDryRun));
      CHECK((d.reason == Reason::kExcluded) == tc.excluded);
      if (tc.excluded) CHECK(d.auditAnnotations.empty());
    }
  }
}

TEST_CASE("modes: Enforce, Warn, DryRun and the namespace override") {
  Signals busy = quiet();
  busy["cpu"] = sig(0.1);
  const auto fleet = snapshot({{"n1", {busy}}, {"ok", {quiet()}}});
  const std::string denial =
      "no node passes the gates for cpu 1, memory 0: closest n1: cpu isolation 0.10 < 0.30 "
      "(request 0.25 + margin 0.05)";
  struct Case {
    const char* name;
    Mode policyMode;
    std::optional<Mode> nsMode;
    Mode applied;
  };
  const Case cases[] = {
      {"Enforce", Mode::kEnforce, std::nullopt, Mode::kEnforce},
      {"Warn", Mode::kWarn, std::nullopt, Mode::kWarn},
      {"DryRun", Mode::kDryRun, std::nullopt, Mode::kDryRun},
      {"namespace Warn over Enforce", Mode::kEnforce, Mode::kWarn, Mode::kWarn},
      {"namespace Enforce over DryRun", Mode::kDryRun, Mode::kEnforce, Mode::kEnforce},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    Policy p = testPolicy();
    p.mode = tc.policyMode;
    const Decision d = run(pod("1"), {node("n1")}, fleet, p, std::nullopt, tc.nsMode);
    CHECK(d.mode == tc.applied);
    CHECK_FALSE(d.verdict);
    CHECK(d.reason == Reason::kGatesFailed);
    CHECK(d.message == denial);
    CHECK(d.allowed == (tc.applied != Mode::kEnforce));
    if (tc.applied == Mode::kWarn) {
      REQUIRE(d.warnings.size() == 1);
      CHECK(d.warnings[0].size() == kMaxWarningChars);
      CHECK(d.warnings[0].substr(0, 40) == "pi0 would deny (GatesFailed): no node pa");
      CHECK(d.warnings[0].substr(kMaxWarningChars - 3) == "...");
    } else {
      CHECK(d.warnings.empty());
    }
    CHECK(d.auditAnnotations.at("mode") == modeName(tc.applied));
    CHECK(d.auditAnnotations.at("decision") == "deny");
    CHECK(d.auditAnnotations.at("reason") == "GatesFailed");
    CHECK(d.auditAnnotations.at("message") == denial);

    // A passing pod: nothing to say, except in DryRun's audit annotation.
    const Decision ok = run(pod("1"), {node("ok")}, fleet, p, std::nullopt, tc.nsMode);
    CHECK(ok.allowed);
    CHECK(ok.verdict);
    CHECK(ok.warnings.empty());
    CHECK(ok.auditAnnotations.empty() == (tc.applied != Mode::kDryRun));
  }

  // DryRun says nothing even for stale data; Warn passes the stale warning on.
  Policy dry = testPolicy();
  dry.mode = Mode::kDryRun;
  const Decision stale = run(pod("1"), {node("n1")}, snapshot({}), dry);
  CHECK(stale.allowed);
  CHECK(stale.warnings.empty());
  CHECK(stale.auditAnnotations.at("reason") == "StaleData");
  CHECK(stale.auditAnnotations.at("decision") == "allow");
  CHECK(parseMode("Warn") == Mode::kWarn);
  CHECK_FALSE(parseMode("warn").has_value());
}

TEST_CASE("any field of any type: parsePod and decide never throw") {
  const Json full = Json::parse(R"({
    "metadata": {"namespace": "shop", "name": "web-1", "labels": {"app": "web"}},
    "spec": {
      "nodeName": "n1",
      "nodeSelector": {"disk": "ssd"},
      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "c", "operator": "Gt", "values": ["8"]}],
                               "matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": ["n1"]}]}]}}},
      "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}],
      "overhead": {"cpu": "10m"},
      "initContainers": [{"restartPolicy": "Always",
                          "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
      "containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi",
                                                 "nvidia.com/gpu": "1"}}}]}})");
  const Json replacements[] = {nullptr,
                               true,
                               -1,
                               1.5,
                               "x",
                               "",
                               Json::array(),
                               Json::array({1, "a"}),
                               Json::object(),
                               Json{{"a", nullptr}}};
  const Json flat = full.flatten();
  std::vector<std::string> pointers;
  for (const auto& [pointer, _] : flat.items()) {
    // Every leaf and every object or array above it.
    for (std::string p = pointer; !p.empty(); p = p.substr(0, p.rfind('/')))
      pointers.push_back(p);
  }
  const auto fleet = snapshot({{"n1", {quiet()}}});
  NodeInfo n1 = node("n1", 8, 32, 2);
  n1.labels = {{"disk", "ssd"}, {"c", "9"}};
  n1.taints = {{"k", "v", TaintEffect::kNoSchedule}};
  int parsed = 0;
  for (const auto& pointer : pointers) {
    for (const Json& r : replacements) {
      CAPTURE(pointer);
      Json j = full;
      j[Json::json_pointer(pointer)] = r;
      Result<PodRequest> p = fail("");
      CHECK_NOTHROW(p = parsePod(j));
      if (p) {
        ++parsed;
        CHECK_NOTHROW(run(*p, {n1}, fleet));
      } else {
        CHECK_FALSE(p.error().message.empty());
      }
    }
  }
  CHECK(parsed > 0);
  const Decision d = run(podOf(full), {n1}, fleet);
  CHECK(d.reason == Reason::kStaleData);  // the GPU node's agent has no GPU signals
}

namespace {

// `s` with a forecast that expects trouble in `seconds` (nullopt: none expected).
fleet::SignalFingerprint troubleIn(fleet::SignalFingerprint s, std::optional<double> seconds) {
  s.forecast = fleet::SignalForecast{30,  *s.projectedPeak, *s.projectedPeak, 0.0, 0.01,
                                     1.0, seconds,          std::nullopt,     0};
  return s;
}

}  // namespace

TEST_CASE("an admitted pod's node expecting trouble soon earns a warning naming it and when") {
  Signals soon = quiet();
  soon["memory"] = troubleIn(soon["memory"], 42.4);    // a leak: memory full in 42.4 s
  soon["psi_cpu"] = troubleIn(soon["psi_cpu"], 12.0);  // cpu pressure at its line in 12 s
  soon["cpu"] = troubleIn(soon["cpu"], 300.0);         // far off: not worth a word
  const auto fleet = snapshot({{"worker-3", {soon}}});
  const std::vector<NodeInfo> nodes = {node("worker-3")};

  auto d = run(pod("500m", "1Gi"), nodes, fleet);
  CHECK(d.reason == Reason::kPassed);
  CHECK(d.allowed);
  REQUIRE(d.warnings.size() == 1);
  // Soonest first; seconds rounded up.
  CHECK(d.warnings[0] == "pi0: node worker-3 expects cpu trouble in 12 s, memory trouble in 43 s");
  CHECK(d.warnings[0].size() <= kMaxWarningChars);

  // The threshold: 30 s leaves only cpu; 0 turns the warning off.
  Policy p = testPolicy();
  p.troubleWarningSeconds = 30;
  d = run(pod("500m", "1Gi"), nodes, fleet, p);
  REQUIRE(d.warnings.size() == 1);
  CHECK(d.warnings[0] == "pi0: node worker-3 expects cpu trouble in 12 s");
  p.troubleWarningSeconds = 0;
  CHECK(run(pod("500m", "1Gi"), nodes, fleet, p).warnings.empty());

  // At the line already: "now".
  Signals now = quiet();
  now["psi_memory"] = troubleIn(now["psi_memory"], 0.0);
  d = run(pod(), nodes, snapshot({{"worker-3", {now}}}));
  REQUIRE(d.warnings.size() == 1);
  CHECK(d.warnings[0] == "pi0: node worker-3 expects memory trouble now");

  // The node the pod is admitted to is the one named: the first passing node, worker-1, expects
  // nothing (no forecast, or one without trouble), so worker-3's trouble is not mentioned.
  Signals calm = quiet();
  calm["cpu"] = troubleIn(calm["cpu"], std::nullopt);
  d = run(pod("500m", "1Gi"), {node("worker-1"), node("worker-3")},
          snapshot({{"worker-1", {calm}}, {"worker-3", {soon}}}));
  CHECK(d.node == "worker-1");
  CHECK(d.warnings.empty());

  // DryRun says nothing, as for every warning; Warn admits with it.
  d = run(pod("500m", "1Gi"), nodes, fleet, testPolicy(), std::nullopt, Mode::kDryRun);
  CHECK(d.warnings.empty());
  d = run(pod("500m", "1Gi"), nodes, fleet, testPolicy(), std::nullopt, Mode::kWarn);
  CHECK(d.warnings.size() == 1);

  // A GPU pod hears of its GPUs' trouble; a pod without GPUs does not.
  Signals gpu = quiet();
  gpu["gpu0_sm"] = troubleIn(sig(0.8), 20.0);
  gpu["gpu1_sm"] = troubleIn(sig(0.8), std::nullopt);
  const auto gpuFleet = snapshot({{"gpu-1", {gpu}}});
  Json gpuPod = podJson("500m", "1Gi");
  gpuPod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1";
  d = run(podOf(gpuPod), {node("gpu-1", 4, 16, 2)}, gpuFleet);
  CHECK(d.reason == Reason::kPassed);
  REQUIRE(d.warnings.size() == 1);
  CHECK(d.warnings[0] == "pi0: node gpu-1 expects gpu trouble in 20 s");
  CHECK(run(pod("500m", "1Gi"), {node("gpu-1", 4, 16, 2)}, gpuFleet).warnings.empty());
}

TEST_CASE("the history gate: Warn warns of the chosen node, Enforce steers away or denies") {
  fleet::HistoryVerdict troubled;
  troubled.troubled = true;
  troubled.matches = 9;
  troubled.troubleMatches = 7;
  troubled.matchNode = "worker-9";
  troubled.matchAt = std::chrono::system_clock::time_point(std::chrono::seconds(1'780'000'000));
  troubled.matchLabel = "before_trouble";
  troubled.similarity = 0.981;
  fleet::HistoryVerdict calm = troubled;
  calm.troubled = false;
  calm.troubleMatches = 1;
  const std::vector<NodeInfo> nodes = {node("worker-1"), node("worker-2")};
  const std::string said =
      "node worker-1's state is 0.98 similar to worker-9's before_trouble state at "
      "2026-05-28T20:26:40Z; 7 of 9 similar states were followed by trouble";
  Policy p = testPolicy();

  // Warn (the default): admitted on worker-1 as the gates say, with the verdict as a warning.
  CHECK(p.history == HistoryGate::kWarn);
  auto fleet =
      snapshot({{"worker-1", {quiet(), kNow - 1s, fleet::NodeHealth::kHealthy, "", troubled}},
                {"worker-2", {quiet()}}});
  auto d = run(pod("500m", "1Gi"), nodes, fleet, p);
  CHECK(d.allowed);
  CHECK(d.node == "worker-1");
  REQUIRE(d.warnings.size() == 1);
  CHECK(d.warnings[0] ==
        "pi0: node worker-1's state is like past ones that led to trouble (7 of 9, best match "
        "0.98)");
  CHECK(d.history == HistoryEffect::kWarned);
  // A verdict that is not troubled, or none at all: nothing to say.
  auto quietFleet =
      snapshot({{"worker-1", {quiet(), kNow - 1s, fleet::NodeHealth::kHealthy, "", calm}}});
  CHECK(run(pod("500m", "1Gi"), nodes, quietFleet, p).warnings.empty());
  CHECK(run(pod("500m", "1Gi"), nodes, quietFleet, p).history == HistoryEffect::kNone);

  // Enforce: worker-1 fails the history gate, worker-2 passes and is chosen.
  p.history = HistoryGate::kEnforce;
  d = run(pod("500m", "1Gi"), nodes, fleet, p);
  CHECK(d.allowed);
  CHECK(d.node == "worker-2");
  CHECK(d.warnings.empty());
  CHECK(d.history == HistoryEffect::kSteered);
  // Both troubled: denied, GatesFailed, naming the history gate; the readings are the node's
  // gates, all passed (calibration counts only the gates that failed).
  auto both =
      snapshot({{"worker-1", {quiet(), kNow - 1s, fleet::NodeHealth::kHealthy, "", troubled}},
                {"worker-2", {quiet(), kNow - 1s, fleet::NodeHealth::kHealthy, "", troubled}}});
  d = run(pod("500m", "1Gi"), nodes, both, p);
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == Reason::kGatesFailed);
  CHECK(d.node == "worker-1");
  CHECK(d.message ==
        "no node passes the gates for cpu 500m, memory 1Gi: closest worker-1: the "
        "history gate: " +
            said);
  CHECK(d.failures.empty());
  CHECK(d.history == HistoryEffect::kDenied);
  CHECK(std::string(historyEffectName(d.history)) == "denied");
  CHECK_FALSE(d.gates.empty());
  for (const GateReading& g : d.gates)
    CHECK(g.passed);
  // Enforce under Warn mode: admitted, the denial as the warning.
  d = run(pod("500m", "1Gi"), nodes, both, p, std::nullopt, Mode::kWarn);
  CHECK(d.allowed);
  CHECK_FALSE(d.verdict);
  // A node failing a gate is not closer than one the history gate stopped.
  Signals hot = quiet();
  hot["cpu"] = sig(0.8, 0.5);  // fit_error 0.5
  auto mixed =
      snapshot({{"worker-1", {hot}},
                {"worker-2", {quiet(), kNow - 1s, fleet::NodeHealth::kHealthy, "", troubled}}});
  d = run(pod("500m", "1Gi"), nodes, mixed, p);
  CHECK_FALSE(d.allowed);
  CHECK(d.node == "worker-2");

  // Off: the verdict is not read.
  p.history = HistoryGate::kOff;
  d = run(pod("500m", "1Gi"), nodes, both, p);
  CHECK(d.allowed);
  CHECK(d.warnings.empty());
  CHECK(d.history == HistoryEffect::kNone);
}
