// libFuzzer target: what pi0-webhook does with a request body (webhook/handlers.cc, less its
// metrics and logs), over a fixed cluster. The input goes to admission::parseReview; when it
// parses, by the object's kind:
//  - Pod: parsePod (object and oldObject), then as the pods endpoint does: the pod's channel
//    (channelOfPod, actingMatrix, channelInfo) and decide() against fixed Nodes and a fixed
//    fleet snapshot, under three policies (Enforce/Warn/DryRun, stale Allow/Deny) and the mode
//    its namespace sets. The cluster is made so that every rule of decide() answers for some pod:
//    excluded namespaces, an Inactive channel, a channel at an elevated level with little buffer
//    left, nodes cordoned, tainted, GPU-bearing, overloaded, with stale data, failed, unknown to
//    the fleet view;
//  - Node: parseNode, then decide() for fixed pods with that node among the fixed ones;
//  - Channel: validateChannelObject against the fixed channels, and the channel as a pod's
//    channel (channelOfPod, channelInfo under each matrix);
//  - ShutdownMatrix: validateMatrixObject, matrixWarnings, and the matrix as the acting one
//    (actingMatrix, channelInfo for each channel, and decide() for a pod of each);
// and always responseBody() for the answer, plus one denying answer made of the request's texts.
// PI0_FUZZ_VERBOSE=1 prints what each input came to.
//
// Besides crashes, leaks and undefined behaviour it aborts when a result breaks what the
// headers promise: responseBody() is valid JSON echoing apiVersion and uid, its warnings are
// non-empty, free of control characters and at most kMaxWarningChars code points; a Decision's
// allowed/verdict/mode/warnings/auditAnnotations agree with pod_decision.h.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/channel_info.h"
#include "admission/pod_decision.h"
#include "admission/resource_validation.h"
#include "admission/review.h"
#include "common/clock.h"
#include "fleet/fingerprint.h"
#include "fleet/fleet_view.h"

namespace {

using namespace pi0;
using namespace pi0::admission;
using namespace std::chrono_literals;
using Json = nlohmann::json;

// A broken promise: print what and where, and abort (libFuzzer saves the input as a crash).
[[noreturn]] void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "admission_fuzz: %s\n  %s\n", what, detail.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, detail)                           \
  do {                                                     \
    if (!(cond)) broken("check failed: " #cond, (detail)); \
  } while (false)

const Clock::time_point kNow = Clock::time_point{} + 100000s;

// PI0_FUZZ_VERBOSE=1: say what each input came to (to check which rules a seed reaches:
// admission_fuzz tests/fuzz/corpus/pod-create-05.json).
bool verbose() {
  static const bool on = [] {
    const char* v = std::getenv("PI0_FUZZ_VERBOSE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  return on;
}

// --- The fixed cluster --------------------------------------------------------------------------

// A full-window signal with the given gate metrics.
fleet::SignalFingerprint signal(double isolation, double fit, double glue) {
  fleet::SignalFingerprint s;
  s.samples = 64;
  s.current = 1 - isolation;
  s.mean = 1 - isolation;
  s.gates = fleet::SignalGates{};
  s.gates->lambdaInt = 1 - isolation;
  s.gates->isolation = isolation;
  s.gates->fitError = fit;
  s.gates->gluingDelta = glue;
  s.projectedPeak = 1 - isolation;
  return s;
}

// A PSI signal (only its current value is read).
fleet::SignalFingerprint pressure(double current) {
  fleet::SignalFingerprint s = signal(1 - current, 0, 0);
  s.current = current;
  return s;
}

// A signal whose window is not full yet: no gates.
fleet::SignalFingerprint filling() {
  fleet::SignalFingerprint s;
  s.samples = 20;
  s.current = 0.3;
  s.mean = 0.3;
  return s;
}

using Signals = std::map<std::string, fleet::SignalFingerprint>;

Signals quiet() {
  return {{"cpu", signal(0.8, 0.02, 0.03)},
          {"memory", signal(0.75, 0.01, 0.02)},
          {"psi_cpu", pressure(0.01)},
          {"psi_memory", pressure(0)}};
}

struct FleetNode {
  std::string name;
  Signals signals;
  Clock::duration age = 1s;  // how long before kNow the fingerprint was fetched
  fleet::NodeHealth health = fleet::NodeHealth::kHealthy;
};

fleet::FleetSnapshot makeFleet() {
  Signals heavy = {{"cpu", signal(0.12, 0.31, 0.22)},
                   {"memory", signal(0.3, 0.12, 0.05)},
                   {"psi_cpu", pressure(0.42)},
                   {"psi_memory", pressure(0.3)}};
  Signals gpu = quiet();
  gpu["gpu0_sm"] = signal(0.6, 0.05, 0.04);
  gpu["gpu1_sm"] = signal(0.9, 0.02, 0.01);
  gpu["gpu2_sm"] = signal(0.2, 0.2, 0.3);
  gpu["gpu3_sm"] = signal(0.7, 0.03, 0.02);
  gpu["gpu0_memory"] = signal(0.5, 0.01, 0.01);
  Signals noPsi = {{"cpu", signal(0.55, 0.05, 0.05)}, {"memory", signal(0.6, 0.04, 0.04)}};
  Signals fillingUp = quiet();
  fillingUp["memory"] = filling();
  const std::vector<FleetNode> entries = {
      {"node-a", quiet()},
      {"node-b", heavy},
      {"node-gpu", gpu},
      {"node-stale", quiet(), 10min},
      {"node-failed", quiet(), 2s, fleet::NodeHealth::kFailed},
      {"node-suspect", noPsi, 3s, fleet::NodeHealth::kSuspect},
      {"node-filling", fillingUp},
      {"node-cordoned", quiet()},
      {"node-maintenance", quiet()},
  };
  fleet::FleetSnapshot::Nodes nodes;
  for (const auto& e : entries) {
    auto fp = std::make_shared<fleet::NodeFingerprint>();
    fp->node = e.name;
    fp->windowFill = 1;
    fp->ready = true;
    for (const auto& [name, s] : e.signals) {
      fp->signals.emplace(name, s);
      if (!s.gates) {
        fp->ready = false;
        fp->windowFill = 20.0 / 64;
      }
    }
    auto status = std::make_shared<fleet::NodeStatus>();
    status->node = e.name;
    status->url = "http://" + e.name + ":9560";
    status->fingerprint = fp;
    status->fetchedAt = kNow - e.age;
    status->health = e.health;
    nodes.push_back(status);
  }
  // A node the view knows but has never reached.
  auto never = std::make_shared<fleet::NodeStatus>();
  never->node = "node-unreached";
  never->consecutiveFailures = 7;
  never->health = fleet::NodeHealth::kFailed;
  never->lastError = "connection refused";
  nodes.push_back(never);
  return fleet::FleetSnapshot(std::move(nodes), 15s);
}

// Node objects as the apiserver holds them (tests/fuzz/capture_corpus.sh makes the same).
const char* const kNodes = R"([
  {"metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a",
     "kubernetes.io/os": "linux", "disk": "ssd", "cores": "8", "zone": "zone-a"}},
   "spec": {},
   "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}},
  {"metadata": {"name": "node-b", "labels": {"kubernetes.io/hostname": "node-b",
     "disk": "hdd", "cores": "4", "zone": "zone-b"}},
   "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}},
  {"metadata": {"name": "node-gpu", "labels": {"kubernetes.io/hostname": "node-gpu",
     "pool": "gpu", "cores": "16", "zone": "zone-a"}},
   "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
   "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"}}},
  {"metadata": {"name": "node-stale", "labels": {"kubernetes.io/hostname": "node-stale",
     "zone": "zone-c", "cores": "4"}},
   "status": {"allocatable": {"cpu": "4", "memory": "16Gi"}}},
  {"metadata": {"name": "node-failed", "labels": {"kubernetes.io/hostname": "node-failed",
     "zone": "zone-c", "cores": "4"}},
   "status": {"allocatable": {"cpu": "4000m", "memory": "17179869184"}}},
  {"metadata": {"name": "node-suspect", "labels": {"kubernetes.io/hostname": "node-suspect",
     "zone": "zone-d", "cores": "2"}},
   "status": {"allocatable": {"cpu": 2, "memory": "4G"}}},
  {"metadata": {"name": "node-filling", "labels": {"kubernetes.io/hostname": "node-filling",
     "zone": "zone-d"}},
   "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}},
  {"metadata": {"name": "node-cordoned", "labels": {"kubernetes.io/hostname": "node-cordoned",
     "zone": "zone-a"}},
   "spec": {"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable",
     "effect": "NoSchedule", "timeAdded": "2024-01-01T00:00:00Z"}]},
   "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}},
  {"metadata": {"name": "node-maintenance", "labels": {
     "kubernetes.io/hostname": "node-maintenance", "zone": "zone-b"}},
   "spec": {"taints": [{"key": "example.com/maintenance", "value": "true", "effect": "NoExecute"},
     {"key": "example.com/slow", "effect": "PreferNoSchedule"}]},
   "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}},
  {"metadata": {"name": "node-unreached", "labels": {"kubernetes.io/hostname": "node-unreached",
     "zone": "zone-e"}},
   "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}},
  {"metadata": {"name": "node-new", "labels": {"kubernetes.io/hostname": "node-new",
     "zone": "zone-e"}},
   "status": {}}
])";

// Channels with the status the operator writes. A channel without spec.selector selects the
// pods labelled stability.pi0.io/channel=<name>.
const char* const kChannels = R"([
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "batch", "namespace": "shop"},
   "spec": {"targets": [{"kind": "Deployment", "name": "batch"}]},
   "status": {"state": "Inactive"}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "web", "namespace": "shop"},
   "spec": {"targets": [{"kind": "Deployment", "name": "web"}], "dependsOn": [{"name": "api"}],
            "buffer": {"max": {"cpu": "1", "memory": "1Gi"}}},
   "status": {"state": "Active", "buffer": {"allocated": {"cpu": "1", "memory": "1Gi"},
                                           "used": {"cpu": "600m", "memory": "512Mi"}}}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "api", "namespace": "shop"},
   "spec": {"targets": [{"kind": "Deployment", "name": "api"}], "dependsOn": [{"name": "db"}],
            "selector": {"matchLabels": {"tier": "api"}}, "degradedReplicas": 1},
   "status": {"state": "Degraded", "buffer": {"allocated": {"cpu": "500m"},
                                             "used": {"cpu": 700}}}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "db", "namespace": "shop"},
   "spec": {"critical": true, "targets": [{"kind": "StatefulSet", "name": "db"}]},
   "status": {"state": "Active"}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "a", "namespace": "shop"},
   "spec": {"targets": [{"kind": "Deployment", "name": "a"}], "dependsOn": [{"name": "b"}]}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "b", "namespace": "shop"},
   "spec": {"targets": [{"kind": "Deployment", "name": "b"}]}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "batch-reports", "namespace": "pi0-demo"},
   "spec": {"targets": [{"kind": "Deployment", "name": "batch-reports"}]},
   "status": {"state": "Inactive"}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
   "metadata": {"name": "recommendations", "namespace": "pi0-demo"},
   "spec": {"targets": [{"kind": "Deployment", "name": "recommendations"}],
            "selector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                               "values": ["ml", "cache"]}]},
            "buffer": {"max": {"cpu": "4", "memory": "8Gi"}}},
   "status": {"state": "Degraded", "buffer": {"allocated": {"memory": "8Gi"},
                                             "used": {"memory": "7Gi"}}}}
])";

// The acting matrix (Enforce, at level high) and an older DryRun one.
const char* const kMatrices = R"([
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "ShutdownMatrix",
   "metadata": {"name": "default", "creationTimestamp": "2024-05-01T10:00:00Z"},
   "spec": {"levels": [{"name": "normal", "upperBound": 0.7}, {"name": "elevated", "upperBound": 0.8},
                       {"name": "high", "upperBound": 0.9}, {"name": "critical"}],
            "rows": [{"channel": {"name": "batch-reports", "namespace": "pi0-demo"},
                      "cells": [{"level": "elevated", "action": "Degrade", "order": 0},
                                {"level": "high", "action": "Shutdown", "order": 0}]},
                     {"channel": {"name": "batch", "namespace": "shop"},
                      "cells": [{"level": "elevated", "action": "Shutdown", "order": 1}]},
                     {"channel": {"name": "db", "namespace": "shop"}, "critical": true}],
            "hysteresis": {"margin": 0.05, "dwellSeconds": 60}, "mode": "Enforce"},
   "status": {"level": "high", "levelIndex": 2, "load": 0.93}},
  {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "ShutdownMatrix",
   "metadata": {"name": "audit", "creationTimestamp": "2024-01-01T10:00:00Z"},
   "spec": {"levels": [{"name": "normal", "upperBound": 0.75}, {"name": "critical"}],
            "mode": "DryRun"},
   "status": {"level": "normal", "levelIndex": 0, "load": 0.4}}
])";

// Fixed pods for the Node inputs: one plain, one GPU pod with affinity and tolerations.
const char* const kPods = R"([
  {"metadata": {"namespace": "shop", "generateName": "web-", "labels": {"app": "web"}},
   "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m",
                                                                     "memory": "1Gi"}}}]}},
  {"metadata": {"namespace": "ml", "name": "trainer"},
   "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
              "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "cores", "operator": "Gt", "values": ["6"]},
                {"key": "zone", "operator": "NotIn", "values": ["zone-c"]}]}]}}},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                             "effect": "NoSchedule"},
                            {"key": "example.com/maintenance", "operator": "Exists"}],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "2",
                              "memory": "8Gi", "nvidia.com/gpu": "2"}}}]}}
])";

struct Cluster {
  std::vector<NodeInfo> nodes;
  fleet::FleetSnapshot fleet = makeFleet();
  std::vector<ObjectPtr> channels;
  std::vector<Json> channelValues;
  std::vector<ObjectPtr> matrices;
  std::vector<PodRequest> pods;
  std::vector<Policy> policies;
  // Namespaces that set a mode by label (the value as the label holds it).
  std::map<std::string, std::string> namespaceModes = {
      {"warned", "Warn"}, {"audit", "DryRun"}, {"enforced", "Enforce"}, {"odd", "Sometimes"}};
};

Cluster makeCluster() {
  Cluster c;
  for (const Json& n : Json::parse(kNodes)) {
    auto node = parseNode(n);
    if (!node) broken("a fixed Node does not parse", node.error().message);
    c.nodes.push_back(std::move(*node));
  }
  for (const Json& ch : Json::parse(kChannels)) {
    c.channels.push_back(std::make_shared<const Json>(ch));
    c.channelValues.push_back(ch);
  }
  for (const Json& m : Json::parse(kMatrices))
    c.matrices.push_back(std::make_shared<const Json>(m));
  for (const Json& p : Json::parse(kPods)) {
    auto pod = parsePod(p);
    if (!pod) broken("a fixed Pod does not parse", pod.error().message);
    c.pods.push_back(std::move(*pod));
  }
  Policy enforce;  // the defaults: Enforce, stale Allow, θ_iso 0.35, kube-system excluded
  Policy warn;
  warn.mode = Mode::kWarn;
  warn.stale = StalePolicy::kDeny;
  warn.thresholds.isolation = 0.05;
  warn.excludedNamespaces = {"kube-system", "monitoring"};
  Policy dryRun;
  dryRun.mode = Mode::kDryRun;
  dryRun.thresholds = {0.2, 0.3, 0.5, 0.1};
  dryRun.optOutLabel = "example.com/no-admission";
  c.policies = {enforce, warn, dryRun};
  return c;
}

const Cluster& cluster() {
  static const Cluster c = makeCluster();
  return c;
}

// --- Checks -------------------------------------------------------------------------------------

std::size_t codePoints(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char ch : s)
    n += (ch & 0xC0) != 0x80;
  return n;
}

bool validUtf8(const std::string& s) {
  try {
    (void)Json(s).dump();
    return true;
  } catch (const Json::exception&) {
    return false;
  }
}

void checkWarning(const std::string& w, const char* where) {
  FUZZ_CHECK(!w.empty(), std::string(where) + ": an empty warning");
  FUZZ_CHECK(codePoints(w) <= kMaxWarningChars, std::string(where) + ": too long: " + w);
  for (unsigned char ch : w)
    FUZZ_CHECK(ch >= 0x20 && ch != 0x7F, std::string(where) + ": a control character: " + w);
}

void checkDecision(const Decision& d, Mode mode) {
  FUZZ_CHECK(d.mode == mode, modeName(d.mode));
  FUZZ_CHECK(d.allowed == (d.verdict || d.mode != Mode::kEnforce), d.message);
  const bool passing = d.reason == Reason::kPassed || d.reason == Reason::kExcluded;
  if (passing) FUZZ_CHECK(d.verdict, d.message);
  if (!d.verdict) FUZZ_CHECK(!d.message.empty(), reasonName(d.reason));
  for (const auto& w : d.warnings)
    checkWarning(w, "Decision::warnings");
  if (d.reason == Reason::kExcluded) {
    FUZZ_CHECK(d.warnings.empty() && d.auditAnnotations.empty(), d.message);
    return;
  }
  if (d.mode == Mode::kDryRun) FUZZ_CHECK(d.warnings.empty(), d.message);
  if (d.mode == Mode::kDryRun || !d.verdict) {
    FUZZ_CHECK(d.auditAnnotations.count("decision") == 1, d.message);
    FUZZ_CHECK(d.auditAnnotations.at("decision") == (d.verdict ? "allow" : "deny"), d.message);
    FUZZ_CHECK(d.auditAnnotations.at("reason") == reasonName(d.reason), d.message);
  }
  // GatesFailed names a node and its failing gates, or, when every candidate's agent failed, the
  // first such node (a failed agent passes no gate, and has no gates to name).
  if (d.reason == Reason::kGatesFailed) {
    FUZZ_CHECK(!d.node.empty(), d.message);
    FUZZ_CHECK(!d.failures.empty() || d.message.find(" agent failed") != std::string::npos,
               d.message);
  }
  for (const auto& f : d.failures)
    FUZZ_CHECK(f.node == d.node, f.node);
}

// responseBody() must be valid JSON that echoes the request and keeps warnings short.
void checkResponse(const AdmissionRequest& request, const Response& response) {
  const std::string body = responseBody(request, response);
  Json review;
  try {
    review = Json::parse(body);
  } catch (const Json::exception& e) {
    broken("responseBody() is not valid JSON", std::string(e.what()) + ": " + body);
  }
  FUZZ_CHECK(review.is_object() && review.value("kind", "") == "AdmissionReview", body);
  FUZZ_CHECK(review.value("apiVersion", "") == request.apiVersion, body);
  FUZZ_CHECK(review.contains("response") && review["response"].is_object(), body);
  const Json& r = review["response"];
  if (validUtf8(request.uid)) FUZZ_CHECK(r.value("uid", "") == request.uid, body);
  FUZZ_CHECK(r.contains("allowed") && r["allowed"].is_boolean(), body);
  FUZZ_CHECK(r["allowed"].get<bool>() == response.allowed, body);
  FUZZ_CHECK(r.contains("status") == !response.allowed, body);
  if (r.contains("warnings")) {
    FUZZ_CHECK(r["warnings"].is_array(), body);
    for (const Json& w : r["warnings"]) {
      FUZZ_CHECK(w.is_string(), body);
      checkWarning(w.get<std::string>(), "responseBody warnings");
    }
  }
}

// --- The endpoints ------------------------------------------------------------------------------

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::map<std::string, std::string> stringMapAt(const Json& object, const char* pointer) {
  std::map<std::string, std::string> out;
  const Json::json_pointer at(pointer);
  if (!object.is_object() || !object.contains(at)) return out;
  const Json& m = object.at(at);
  if (!m.is_object()) return out;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it->is_string()) out[it.key()] = it->get<std::string>();
  }
  return out;
}

std::string stringAt(const Json& object, const char* pointer) {
  const Json::json_pointer at(pointer);
  if (!object.is_object() || !object.contains(at) || !object.at(at).is_string()) return {};
  return object.at(at).get<std::string>();
}

// Decides `pod` under every policy; the Enforce policy's decision becomes the answer.
void decideAll(const PodRequest& pod, const std::vector<NodeInfo>& nodes,
               const std::optional<ChannelInfo>& channel, Response* response) {
  const Cluster& c = cluster();
  std::optional<Mode> namespaceMode;
  if (auto it = c.namespaceModes.find(pod.ns); it != c.namespaceModes.end())
    namespaceMode = parseMode(it->second);
  for (std::size_t i = 0; i < c.policies.size(); ++i) {
    const Policy& policy = c.policies[i];
    const Decision d = decide(pod, nodes, c.fleet, channel, policy, namespaceMode, kNow);
    checkDecision(d, namespaceMode.value_or(policy.mode));
    if (verbose()) {
      std::fprintf(stderr, "admission_fuzz: %s under %s: %s %s%s%s\n", pod.displayName().c_str(),
                   modeName(d.mode), reasonName(d.reason), d.allowed ? "allowed" : "denied",
                   d.message.empty() ? "" : ": ", d.message.c_str());
    }
    if (i == 0 && response != nullptr) {
      response->allowed = d.allowed;
      response->message = d.message;
      response->warnings = d.warnings;
      response->auditAnnotations = d.auditAnnotations;
    }
  }
}

void pods(const AdmissionRequest& request, Response* response) {
  const Cluster& c = cluster();
  if (!request.oldObject.is_null()) (void)parsePod(request.oldObject);
  auto pod = parsePod(request.object);
  if (!pod) {
    if (verbose()) std::fprintf(stderr, "admission_fuzz: pod: %s\n", pod.error().message.c_str());
    response->warnings.push_back("pi0: cannot read the pod: " + pod.error().message);
    return;
  }
  if (pod->ns.empty()) pod->ns = request.ns;
  (void)pod->displayName();
  std::optional<ChannelInfo> channel;
  if (auto ch = channelOfPod(pod->ns, pod->labels, c.channels)) {
    const auto matrix = actingMatrix(c.matrices);
    channel = channelInfo(*ch, matrix.get());
  }
  decideAll(*pod, c.nodes, channel, response);
}

void nodes(const AdmissionRequest& request) {
  const Cluster& c = cluster();
  auto node = parseNode(request.object);
  if (!node) return;
  // First, so that it is the node a pod passes on when it can; and once more among the others.
  std::vector<NodeInfo> nodes = {*node};
  nodes.insert(nodes.end(), c.nodes.begin(), c.nodes.end());
  for (const PodRequest& pod : c.pods) {
    for (const auto& term : pod.requiredAffinity.value_or(std::vector<NodeSelectorTerm>{}))
      (void)matchesTerm(term, *node);
    for (const auto& t : pod.tolerations) {
      for (const auto& taint : node->taints)
        (void)tolerates(t, taint);
    }
    decideAll(pod, nodes, std::nullopt, nullptr);
  }
}

void channels(const AdmissionRequest& request, Response* response) {
  const Cluster& c = cluster();
  if (request.object.is_object()) {
    // The object as the pod's channel, under each matrix and none.
    const auto channel = std::make_shared<const Json>(request.object);
    const std::string ns = stringAt(request.object, "/metadata/namespace");
    std::vector<ObjectPtr> candidates = c.channels;
    candidates.push_back(channel);
    const auto labels = stringMapAt(request.object, "/spec/selector/matchLabels");
    (void)channelOfPod(ns, labels, candidates);
    std::optional<ChannelInfo> info = channelInfo(*channel, nullptr);
    for (const auto& m : c.matrices)
      info = channelInfo(*channel, m.get());
    PodRequest pod = c.pods[0];
    pod.ns = ns;
    decideAll(pod, c.nodes, info, nullptr);
  }
  if (request.operation != Operation::kCreate && request.operation != Operation::kUpdate) return;
  std::vector<Json> others;
  for (const auto& ch : c.channels) {
    if (stringAt(*ch, "/metadata/namespace") == request.ns &&
        stringAt(*ch, "/metadata/name") == request.name) {
      continue;  // its own old copy
    }
    others.push_back(*ch);
  }
  const auto problems = validateChannelObject(request.object, others);
  if (verbose()) std::fprintf(stderr, "admission_fuzz: channel: %s\n", joined(problems).c_str());
  if (!problems.empty()) {
    response->allowed = false;
    response->code = 422;
    response->message = joined(problems);
  }
}

void matrices(const AdmissionRequest& request, Response* response) {
  const Cluster& c = cluster();
  if (request.object.is_object()) {
    // The object as the acting matrix: each channel's info under it, and a pod of each.
    std::vector<ObjectPtr> all = c.matrices;
    all.push_back(std::make_shared<const Json>(request.object));
    (void)actingMatrix(all);
    PodRequest pod = c.pods[0];
    for (const auto& ch : c.channels) {
      const ChannelInfo info = channelInfo(*ch, &request.object);
      pod.ns = stringAt(*ch, "/metadata/namespace");
      decideAll(pod, c.nodes, info, nullptr);
    }
  }
  if (request.operation != Operation::kCreate && request.operation != Operation::kUpdate) return;
  for (const Policy& policy : c.policies) {
    GateMargin margin;
    margin.admissionCeiling = 1.0 - policy.thresholds.isolation;
    const auto problems = validateMatrixObject(request.object, c.channelValues, margin);
    if (verbose()) {
      std::fprintf(stderr, "admission_fuzz: matrix (admission ceiling %.2f): %s\n",
                   margin.admissionCeiling, joined(problems).c_str());
    }
    if (&policy != &c.policies.front()) continue;
    if (!problems.empty()) {
      response->allowed = false;
      response->code = 422;
      response->message = joined(problems);
    } else {
      response->warnings = matrixWarnings(request.object, c.channelValues);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)cluster();
  auto request = parseReview(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!request) {
    if (verbose()) std::fprintf(stderr, "admission_fuzz: %s\n", request.error().message.c_str());
    FUZZ_CHECK(!request.error().message.empty(), "an empty parse error");
    return 0;
  }
  FUZZ_CHECK(!request->uid.empty(), "parseReview accepted an empty uid");
  FUZZ_CHECK(request->apiVersion == kAdmissionV1 || request->apiVersion == kAdmissionV1beta1,
             request->apiVersion);
  const bool writes =
      request->operation == Operation::kCreate || request->operation == Operation::kUpdate;
  if (writes) FUZZ_CHECK(request->object.is_object(), request->object.dump());
  if (request->operation == Operation::kUpdate)
    FUZZ_CHECK(request->oldObject.is_object(), request->oldObject.dump());
  (void)operationName(request->operation);

  Response response;
  const std::string& kind = request->kind.kind;
  if (kind == "Pod") {
    pods(*request, &response);
  } else if (kind == "Node") {
    nodes(*request);
  } else if (kind == "Channel") {
    channels(*request, &response);
  } else if (kind == "ShutdownMatrix") {
    matrices(*request, &response);
  }
  checkResponse(*request, response);

  // A denial made of the request's own texts, with a code from its uid.
  Response odd;
  odd.allowed = false;
  odd.code = static_cast<std::int32_t>(request->uid.size() * 37 % 700) - 100;
  odd.message = request->name + "/" + request->subResource;
  odd.warnings = {request->name, request->userInfo.username, request->ns, ""};
  for (const auto& g : request->userInfo.groups)
    odd.warnings.push_back(g + " " + request->userInfo.uid + " " + request->name);
  odd.auditAnnotations[request->userInfo.uid] = request->resource.resource;
  checkResponse(*request, odd);
  return 0;
}
