#include "reconciler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "admission/channel_info.h"
#include "channel_status.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "kube/json.h"
#include "kube/resource.h"
#include "matrix_decision.h"
#include "stability/levels.h"
#include "stability/operators.h"
#include "workload_state.h"

namespace pi0::op {

using kube::field;
using kube::Json;
using kube::ObjectPtr;
using kube::stringField;
using stability::ChannelState;
using WallTime = std::chrono::system_clock::time_point;

struct Reconcilers::ChannelView {
  ObjectPtr object;
  std::optional<stability::ChannelSpec> spec;  // nullopt when the object does not parse
  std::string parseError;
  std::vector<ObjectPtr> workloads;  // the targets that exist, in spec order
  std::vector<std::string> missing;  // "Deployment/web"
  ChannelState state = ChannelState::kActive;
  bool ready = true;

  std::string key() const { return spec ? spec->ref.key() : kube::objectKey(*object); }
  // The spec with only the targets that exist: a step acts on those and says what it skipped.
  stability::ChannelSpec existing() const {
    stability::ChannelSpec s = *spec;
    std::erase_if(s.targets, [&](const stability::Target& t) {
      const std::string name = std::string(stability::workloadKindName(t.kind)) + "/" + t.name;
      return std::find(missing.begin(), missing.end(), name) != missing.end();
    });
    return s;
  }
};

namespace {

constexpr double kStatusTolerance = 0.01;

double round4(double x) {
  return std::round(x * 1e4) / 1e4;
}

int64_t replicasOf(const Json& w) {
  return field<int64_t>(w, "/spec/replicas"_json_pointer, 1);
}

std::string fixed(double x, int digits = 2) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, x);
  return text;
}

std::map<std::string, std::string> labelsOf(const Json& object) {
  std::map<std::string, std::string> labels;
  const auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return labels;
  const auto l = meta->find("labels");
  if (l == meta->end() || !l->is_object()) return labels;
  for (const auto& [k, v] : l->items()) {
    if (v.is_string()) labels[k] = v.get<std::string>();
  }
  return labels;
}

// Requests summed over the containers of a pod's spec.
std::pair<int64_t, int64_t> requestsOf(const Json& spec) {
  int64_t cpu = 0, memory = 0;
  for (const auto& c : field<Json>(spec, "/containers"_json_pointer, Json::array())) {
    if (auto r = stability::parseCpuMilli(stringField(c, "/resources/requests/cpu"_json_pointer));
        r && !stringField(c, "/resources/requests/cpu"_json_pointer).empty()) {
      cpu += *r;
    }
    if (auto r = stability::parseBytes(stringField(c, "/resources/requests/memory"_json_pointer));
        r && !stringField(c, "/resources/requests/memory"_json_pointer).empty()) {
      memory += *r;
    }
  }
  return {cpu, memory};
}

// Numbers equal within `tolerance` when either is not an integer; objects and arrays compared
// member by member.
bool sameWithin(const Json& a, const Json& b, double tolerance) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float())
      return std::abs(a.get<double>() - b.get<double>()) <= tolerance;
    return a == b;
  }
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      auto it = b.find(k);
      if (it == b.end() || !sameWithin(v, *it, tolerance)) return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!sameWithin(a[i], b[i], tolerance)) return false;
    }
    return true;
  }
  return a == b;
}

// What decides whether a status is written: everything but the texts and numbers that move
// with every look (the load in messages and reasons, observation times).
Json comparable(Json status) {
  if (!status.is_object()) return status;
  if (auto h = status.find("health"); h != status.end() && h->is_object()) h->erase("observedAt");
  if (auto p = status.find("progress"); p != status.end() && p->is_object()) p->erase("message");
  if (auto plan = status.find("plan"); plan != status.end() && plan->is_array()) {
    for (auto& step : *plan) {
      if (step.is_object()) step.erase("reason");
    }
  }
  return status;
}

bool worthWriting(const Json& previous, const Json& next) {
  return !sameWithin(comparable(previous), comparable(next), kStatusTolerance);
}

std::string conditionStatus(const Json& status, const std::string& type) {
  for (const auto& c : field<Json>(status, "/conditions"_json_pointer, Json::array())) {
    if (c.is_object() && c.value("type", "") == type) return c.value("status", "");
  }
  return "";
}

std::string joined(const std::vector<std::string>& parts, const char* separator = "; ") {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : separator) + p;
  return out;
}

std::string targetName(const stability::Target& t) {
  return std::string(stability::workloadKindName(t.kind)) + "/" + t.name;
}

std::optional<WallTime> timeField(const Json& object, const Json::json_pointer& pointer) {
  const std::string text = stringField(object, pointer);
  if (text.empty()) return std::nullopt;
  return parseRfc3339(text);
}

SteadyTime toSteady(WallTime t, WallTime wallNow, SteadyTime steadyNow) {
  return t >= wallNow
             ? steadyNow
             : steadyNow -
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(wallNow - t);
}

WallTime toWall(SteadyTime t, WallTime wallNow, SteadyTime steadyNow) {
  return wallNow - std::chrono::duration_cast<WallTime::duration>(steadyNow - t);
}

op::Action metricAction(stability::Action a) {
  switch (a) {
    case stability::Action::kDegrade:
      return op::Action::kDegrade;
    case stability::Action::kShutdown:
      return op::Action::kShutdown;
    case stability::Action::kRestore:
      return op::Action::kRestore;
  }
  return op::Action::kRestore;
}

Json channelRefJson(const stability::ChannelRef& ref) {
  return {{"namespace", ref.ns}, {"name", ref.name}};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void trimPod(Json& pod) {
  // Every map node costs about 100 bytes: keep only what podSample(), the selectors and the
  // buffer's free capacity read, and fold the containers into one sum.
  Json out = Json::object();
  Json& m = out["metadata"] = Json::object();
  if (auto meta = pod.find("metadata"); meta != pod.end() && meta->is_object()) {
    for (const char* key : {"name", "namespace", "uid", "labels", "deletionTimestamp"}) {
      if (auto it = meta->find(key); it != meta->end() && !it->is_null()) m[key] = std::move(*it);
    }
  }
  if (auto node = pod.find("spec"); node != pod.end() && node->is_object()) {
    Json spec = Json::object();
    if (auto n = node->find("nodeName"); n != node->end() && n->is_string())
      spec["nodeName"] = std::move(*n);
    const auto [cpu, memory] = requestsOf(*node);
    Json requests = Json::object();
    if (cpu > 0) requests["cpu"] = stability::formatCpuMilli(cpu);
    if (memory > 0) requests["memory"] = stability::formatBytes(memory);
    if (!requests.empty())
      spec["containers"] = Json::array({{{"resources", {{"requests", std::move(requests)}}}}});
    if (!spec.empty()) out["spec"] = std::move(spec);
  }
  if (auto s = pod.find("status"); s != pod.end() && s->is_object()) {
    Json status = Json::object();
    if (auto p = s->find("phase"); p != s->end() && p->is_string()) status["phase"] = std::move(*p);
    for (auto& c : field<Json>(*s, "/conditions"_json_pointer, Json::array())) {
      if (c.is_object() && c.value("type", "") == "Ready" && c.value("status", "") == "True")
        status["conditions"] = Json::array({{{"type", "Ready"}, {"status", "True"}}});
    }
    int64_t restarts = 0;
    for (auto& c : field<Json>(*s, "/containerStatuses"_json_pointer, Json::array()))
      restarts += field<int64_t>(c, "/restartCount"_json_pointer, 0);
    if (restarts > 0) status["containerStatuses"] = Json::array({{{"restartCount", restarts}}});
    if (!status.empty()) out["status"] = std::move(status);
  }
  pod = std::move(out);
}

fleet::CapacityMap capacitiesOf(const std::vector<ObjectPtr>& nodes) {
  fleet::CapacityMap out;
  for (const auto& node : nodes) {
    fleet::Capacity c;
    const Json alloc = field<Json>(*node, "/status/allocatable"_json_pointer, Json::object());
    auto text = [&](const char* key) {
      auto it = alloc.find(key);
      return it != alloc.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (auto v = stability::parseCpuMilli(text("cpu")); v && !text("cpu").empty()) c.cpuMilli = *v;
    if (auto v = stability::parseBytes(text("memory")); v && !text("memory").empty())
      c.memoryBytes = *v;
    if (auto v = stability::parseCpuMilli(text("nvidia.com/gpu"));
        v && !text("nvidia.com/gpu").empty()) {
      c.gpus = *v / 1000;
    }
    out[stringField(*node, "/metadata/name"_json_pointer)] = c;
  }
  return out;
}

Caches::Caches(kube::Client& client)
    : channels(kube::Store::dropManagedFields),
      matrices(kube::Store::dropManagedFields),
      deployments(kube::Store::dropManagedFields),
      statefulSets(kube::Store::dropManagedFields),
      autoscalers(kube::Store::dropManagedFields),
      pods(trimPod),
      nodes(kube::Store::dropManagedFields) {
  auto add = [&](const kube::ResourceType& type, kube::Store& store) {
    kube::ReflectorOptions options;
    // Pods are many: list them in pages, each trimmed as it arrives (see trimPod).
    options.listFromWatchCache = &store != &pods;
    reflectors_.push_back(std::make_unique<kube::Reflector>(client, type, "", store, options));
    named_.emplace_back(type.qualifiedName(), &store);
  };
  add(kube::resources::kChannels, channels);
  add(kube::resources::kShutdownMatrices, matrices);
  add(kube::resources::kDeployments, deployments);
  add(kube::resources::kStatefulSets, statefulSets);
  add(kube::resources::kHorizontalPodAutoscalers, autoscalers);
  add(kube::resources::kPods, pods);
  add(kube::resources::kNodes, nodes);
}

void Caches::run(std::stop_token stop) {
  std::vector<std::jthread> threads;
  for (auto& r : reflectors_) {
    threads.emplace_back([&r, stop] { r->run(stop); });
  }
}

bool Caches::synced() const {
  return std::all_of(named_.begin(), named_.end(),
                     [](const auto& n) { return n.second->synced(); });
}

std::vector<std::string> Caches::unsynced() const {
  std::vector<std::string> out;
  for (const auto& [name, store] : named_) {
    if (!store->synced()) out.push_back(name);
  }
  return out;
}

bool Caches::waitForSync(std::stop_token stop, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto* s :
       {&channels, &matrices, &deployments, &statefulSets, &autoscalers, &pods, &nodes}) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!s->waitForSync(stop, std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

Reconcilers::Reconcilers(kube::Client& client, Caches& caches, const fleet::FleetView& fleet,
                         kube::EventRecorder& events, OperatorMetrics& metrics,
                         const PrometheusClient* prometheus, ReconcilerOptions options)
    : client_(client),
      caches_(caches),
      fleet_(fleet),
      events_(events),
      metrics_(metrics),
      prometheus_(prometheus),
      options_(options),
      scaler_(client),
      channelController_(
          {"channel", 2, std::chrono::minutes(5)},
          [this](const std::string& key, std::stop_token) {
            const auto start = std::chrono::steady_clock::now();
            auto r = reconcileChannel(key);
            metrics_.observeReconcile(
                Controller::kChannel,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                !r);
            metrics_.setWorkqueueDepth(Controller::kChannel, channelController_.queue().len());
            return r;
          }),
      matrixController_({"matrix", 1, std::chrono::minutes(5)}, [this](const std::string& key,
                                                                       std::stop_token) {
        const auto start = std::chrono::steady_clock::now();
        auto r = reconcileMatrix(key);
        metrics_.observeReconcile(
            Controller::kMatrix,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), !r);
        metrics_.setWorkqueueDepth(Controller::kMatrix, matrixController_.queue().len());
        return r;
      }) {
  // The handlers go in before the caches start (Store::addHandler's rule); the controllers
  // only run while this replica leads.
  channelController_.watchPrimary(caches_.channels);
  auto byWorkload = [this](const Json& workload) {
    std::vector<std::string> keys;
    const std::string ns = stringField(workload, "/metadata/namespace"_json_pointer);
    const std::string name = stringField(workload, "/metadata/name"_json_pointer);
    const std::string kind = stringField(workload, "/kind"_json_pointer);
    for (const auto& c : caches_.channels.list()) {
      if (stringField(*c, "/metadata/namespace"_json_pointer) != ns) continue;
      for (const auto& t : field<Json>(*c, "/spec/targets"_json_pointer, Json::array())) {
        if (t.is_object() && t.value("name", "") == name &&
            (kind.empty() || t.value("kind", "Deployment") == kind)) {
          keys.push_back(kube::objectKey(*c));
          break;
        }
      }
    }
    return keys;
  };
  channelController_.watchSecondary(caches_.deployments, byWorkload);
  channelController_.watchSecondary(caches_.statefulSets, byWorkload);
  channelController_.watchSecondary(caches_.pods, [this](const Json& pod) {
    std::vector<std::string> keys;
    const std::string ns = stringField(pod, "/metadata/namespace"_json_pointer);
    const auto labels = labelsOf(pod);
    for (const auto& c : caches_.channels.list()) {
      if (stringField(*c, "/metadata/namespace"_json_pointer) != ns) continue;
      auto spec = stability::parseChannel(*c);
      if (spec && spec->selector.matches(labels)) keys.push_back(spec->ref.key());
    }
    return keys;
  });
  matrixController_.watchPrimary(caches_.matrices);
  matrixController_.watchSecondary(caches_.channels,
                                   [this](const Json&) { return caches_.matrices.keys(); });
}

void Reconcilers::run(std::stop_token stop) {
  while (!caches_.waitForSync(stop, std::chrono::seconds(30))) {
    if (stop.stop_requested()) return;
    log::warn("waiting for the caches to sync before reconciling");
  }
  // Every object once, as the informers' initial list would have queued them.
  for (const auto& key : caches_.channels.keys())
    channelController_.queue().add(key);
  for (const auto& key : caches_.matrices.keys())
    matrixController_.queue().add(key);
  std::jthread channels([this, stop] { channelController_.start(stop); });
  matrixController_.start(stop);
}

void Reconcilers::fleetPolled() {
  for (const auto& key : caches_.matrices.keys())
    matrixController_.queue().add(key);
}

// ---------------------------------------------------------------------------------------------

Reconcilers::ChannelView Reconcilers::viewOf(const ObjectPtr& object) const {
  ChannelView v;
  v.object = object;
  auto spec = stability::parseChannel(*object);
  if (!spec) {
    v.parseError = spec.error().message;
    return v;
  }
  v.spec = std::move(*spec);
  std::vector<Json> workloads;
  for (const auto& t : v.spec->targets) {
    const auto& store = t.kind == stability::WorkloadKind::kStatefulSet ? caches_.statefulSets
                                                                        : caches_.deployments;
    auto w = store.get(v.spec->ref.ns + "/" + t.name);
    if (!w) {
      v.missing.push_back(targetName(t));
      v.ready = false;
      continue;
    }
    v.workloads.push_back(w);
    workloads.push_back(*w);
    const bool current = field<int64_t>(*w, "/status/observedGeneration"_json_pointer, 0) >=
                         field<int64_t>(*w, "/metadata/generation"_json_pointer, 0);
    if (!current || field<int64_t>(*w, "/status/readyReplicas"_json_pointer, 0) < replicasOf(*w)) {
      v.ready = false;
    }
  }
  v.state = stateFromWorkloads(workloads);
  return v;
}

std::vector<Reconcilers::ChannelView> Reconcilers::channelViews() const {
  std::vector<ChannelView> views;
  for (const auto& object : caches_.channels.list())
    views.push_back(viewOf(object));
  std::sort(views.begin(), views.end(),
            [](const ChannelView& a, const ChannelView& b) { return a.key() < b.key(); });
  return views;
}

std::vector<stability::PodSample> Reconcilers::podsOf(const stability::ChannelSpec& spec) const {
  std::vector<stability::PodSample> pods;
  for (const auto& pod : caches_.pods.list()) {
    if (stringField(*pod, "/metadata/namespace"_json_pointer) != spec.ref.ns) continue;
    if (!spec.selector.matches(labelsOf(*pod))) continue;
    if (auto sample = stability::podSample(*pod)) pods.push_back(*sample);
  }
  return pods;
}

std::pair<int64_t, int64_t> Reconcilers::requestedBy(const stability::ChannelSpec& spec) const {
  int64_t cpu = 0, memory = 0;
  for (const auto& pod : caches_.pods.list()) {
    if (stringField(*pod, "/metadata/namespace"_json_pointer) != spec.ref.ns) continue;
    if (!spec.selector.matches(labelsOf(*pod))) continue;
    if (!stability::podSample(*pod)) continue;  // finished or being deleted
    const auto [c, m] = requestsOf(field<Json>(*pod, "/spec"_json_pointer, Json::object()));
    cpu += c;
    memory += m;
  }
  return {cpu, memory};
}

stability::Resources Reconcilers::freeAllocatable() const {
  int64_t cpu = 0, memory = 0;
  for (const auto& [name, c] : capacitiesOf(caches_.nodes.list())) {
    cpu += c.cpuMilli;
    memory += c.memoryBytes;
  }
  for (const auto& pod : caches_.pods.list()) {
    if (stringField(*pod, "/spec/nodeName"_json_pointer).empty()) continue;
    const std::string phase = stringField(*pod, "/status/phase"_json_pointer);
    if (phase == "Succeeded" || phase == "Failed") continue;
    const auto [c, m] = requestsOf(field<Json>(*pod, "/spec"_json_pointer, Json::object()));
    cpu -= c;
    memory -= m;
  }
  return {std::max<int64_t>(0, cpu), std::max<int64_t>(0, memory)};
}

bool Reconcilers::writeStatus(const kube::ResourceType& type, const Json& object,
                              const Json& status) {
  const std::string ns = stringField(object, "/metadata/namespace"_json_pointer);
  const std::string name = stringField(object, "/metadata/name"_json_pointer);
  const std::string uid = stringField(object, "/metadata/uid"_json_pointer);
  auto written = client_.modify(
      type, ns, name,
      [&](Json& fresh) {
        // A new object under the same name is not the one this status is about.
        if (stringField(fresh, "/metadata/uid"_json_pointer) != uid) return false;
        fresh["status"] = status;
        return true;
      },
      kube::Subresource::kStatus);
  if (!written) {
    if (written.error().reason == kube::Reason::kNotFound) return false;
    log::warn("cannot write status", {{"kind", type.kind},
                                      {"name", ns.empty() ? name : ns + "/" + name},
                                      {"error", written.error().describe()}});
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

Result<kube::ReconcileResult> Reconcilers::reconcileChannel(const std::string& key) {
  auto object = caches_.channels.get(key);
  if (!object) {
    metrics_.removeChannel(key);
    std::lock_guard lock(mu_);
    restarts_.erase(key);
    return kube::ReconcileResult{};
  }
  const WallTime now = std::chrono::system_clock::now();
  const std::string nowText = rfc3339(now, 0);
  const Json previous = field<Json>(*object, "/status"_json_pointer, Json::object());
  const int64_t generation = field<int64_t>(*object, "/metadata/generation"_json_pointer, 0);
  const auto ref = kube::ObjectReference::of(*object);

  const ChannelView view = viewOf(object);
  std::vector<std::string> problems;
  if (!view.spec) {
    problems.push_back(view.parseError);
  } else {
    problems = stability::validateChannel(*view.spec);
  }
  if (!view.spec) {
    Json status = previous;
    Json conditions = status.value("conditions", Json::array());
    setCondition(conditions, "Valid", false, "InvalidSpec", joined(problems), generation, nowText);
    status["conditions"] = conditions;
    status["observedGeneration"] = generation;
    if (conditionStatus(previous, "Valid") != "False")
      events_.record(ref, kube::EventType::kWarning, "InvalidSpec", joined(problems));
    if (worthWriting(previous, status)) writeStatus(kube::resources::kChannels, *object, status);
    return kube::ReconcileResult{};
  }
  const auto& spec = *view.spec;

  Directive directive;
  {
    std::lock_guard lock(mu_);
    if (auto it = directives_.find(key); it != directives_.end()) directive = it->second;
  }
  ChannelInputs in;
  in.spec = &spec;
  in.weights = spec.weights.value_or(directive.weights.value_or(stability::Weights{}));
  for (const auto& w : view.workloads)
    in.workloads.push_back(*w);
  in.missingTargets = view.missing;
  in.pods = podsOf(spec);
  if (spec.throughput && !spec.throughput->prometheusQuery.empty()) {
    if (prometheus_ == nullptr) {
      in.throughputError =
          "spec.throughput.prometheusQuery is set, but pi0-operator runs without "
          "--prometheus-url: throughput counts ready replicas instead";
    } else if (auto value = prometheus_->query(spec.throughput->prometheusQuery)) {
      in.throughputValue = *value;
    } else {
      in.throughputError = value.error().message;
    }
  }
  in.health = healthFromStatus(previous);
  {
    std::lock_guard lock(mu_);
    if (auto it = restarts_.find(key); it != restarts_.end()) {
      in.health.restartsByPod = it->second;
      in.health.restartsKnown = true;
    }
  }
  in.level = directive.level;
  in.previousStatus = previous;
  in.now = now;
  ChannelOutcome out = channelStatus(in);
  metrics_.setChannelState(spec.ref, out.state);
  {
    std::lock_guard lock(mu_);
    restarts_[key] = out.health.restartsByPod;
  }

  Json status = out.status;
  if (directive.buffer && (directive.buffer->cpuMilli || directive.buffer->memoryBytes)) {
    Json allocated = Json::object();
    if (directive.buffer->cpuMilli)
      allocated["cpu"] = stability::formatCpuMilli(*directive.buffer->cpuMilli);
    if (directive.buffer->memoryBytes)
      allocated["memory"] = stability::formatBytes(*directive.buffer->memoryBytes);
    status["buffer"]["allocated"] = allocated;
  } else if (status.contains("buffer") && status["buffer"].is_object()) {
    status["buffer"].erase("allocated");
  }
  // buffer.used: what the channel's pods took since the level rose above the first, measured
  // against what they requested then (buffer.baseline, kept while the level stays up).
  if (directive.elevated && status.contains("buffer") && status["buffer"].contains("allocated")) {
    const auto [cpu, memory] = requestedBy(spec);
    const auto baseCpu =
        stability::parseCpuMilli(stringField(previous, "/buffer/baseline/cpu"_json_pointer));
    const auto baseMemory =
        stability::parseBytes(stringField(previous, "/buffer/baseline/memory"_json_pointer));
    const bool haveBaseline = previous.contains("buffer") && previous["buffer"].is_object() &&
                              previous["buffer"].contains("baseline") && baseCpu && baseMemory;
    const int64_t fromCpu = haveBaseline ? *baseCpu : cpu;
    const int64_t fromMemory = haveBaseline ? *baseMemory : memory;
    status["buffer"]["baseline"] = {{"cpu", stability::formatCpuMilli(fromCpu)},
                                    {"memory", stability::formatBytes(fromMemory)}};
    status["buffer"]["used"] = {
        {"cpu", stability::formatCpuMilli(std::max<int64_t>(0, cpu - fromCpu))},
        {"memory", stability::formatBytes(std::max<int64_t>(0, memory - fromMemory))}};
  } else if (status.contains("buffer") && status["buffer"].is_object()) {
    status["buffer"].erase("baseline");
    status["buffer"].erase("used");
  }
  if (status.contains("buffer") && status["buffer"].is_object() && status["buffer"].empty())
    status.erase("buffer");
  Json conditions = status.value("conditions", Json::array());
  setCondition(conditions, "Valid", problems.empty(),
               problems.empty() ? "SpecValid" : "InvalidSpec",
               problems.empty() ? "the spec is valid" : joined(problems), generation, nowText);
  status["conditions"] = conditions;

  if (!problems.empty() && conditionStatus(previous, "Valid") != "False")
    events_.record(ref, kube::EventType::kWarning, "InvalidSpec", joined(problems));
  if (!view.missing.empty() && conditionStatus(previous, "TargetsFound") != "False") {
    events_.record(ref, kube::EventType::kWarning, "TargetMissing",
                   "not found in namespace " + spec.ref.ns + ": " + joined(view.missing, ", "));
  }
  if (worthWriting(previous, status)) writeStatus(kube::resources::kChannels, *object, status);
  // Not ready: look again soon, to time the recovery; else at the channel period.
  return kube::ReconcileResult{out.ready ? options_.channelPeriod
                                         : std::min<std::chrono::nanoseconds>(
                                               options_.channelPeriod, std::chrono::seconds(2))};
}

// ---------------------------------------------------------------------------------------------

void Reconcilers::recordOnWorkloads(const ChannelView& view,
                                    const std::vector<TargetOutcome>& outcomes,
                                    const std::string& reason, const std::string& why) {
  const std::string& ns = view.spec->ref.ns;
  for (const auto& o : outcomes) {
    const auto& store = o.target.kind == stability::WorkloadKind::kStatefulSet
                            ? caches_.statefulSets
                            : caches_.deployments;
    if (auto w = store.get(ns + "/" + o.target.name); w && o.replicasBefore != o.replicasAfter) {
      events_.record(kube::ObjectReference::of(*w), kube::EventType::kNormal, reason,
                     "Pi0 scaled " + targetName(o.target) + " from " +
                         std::to_string(o.replicasBefore) + " to " +
                         std::to_string(o.replicasAfter) + " replicas for channel " +
                         view.spec->ref.key() + ": " + why);
    }
    if (o.autoscalerChanged) {
      if (auto h = caches_.autoscalers.get(ns + "/" + o.autoscaler)) {
        events_.record(
            kube::ObjectReference::of(*h), kube::EventType::kNormal, reason,
            reason == "ScaledDown"
                ? "Pi0 capped the bounds at " + std::to_string(std::max(1, o.replicasAfter)) +
                      " replicas for channel " + view.spec->ref.key() + ": " + why
                : "Pi0 restored the bounds for channel " + view.spec->ref.key() + ": " + why);
      }
    }
  }
}

bool Reconcilers::takeStep(const ChannelView& view, const stability::PlanStep& step, bool restore) {
  const auto spec = view.existing();
  const auto channelRef = kube::ObjectReference::of(*view.object);
  kube::ApiResult<std::vector<TargetOutcome>> outcomes = std::vector<TargetOutcome>{};
  if (!restore) {
    outcomes = scaler_.scaleDown(
        spec, step.action == stability::Action::kShutdown ? 0 : spec.degradedReplicas);
  } else if (step.target == ChannelState::kDegraded) {
    outcomes = scaler_.raise(spec, spec.degradedReplicas);
  } else {
    outcomes = scaler_.restore(spec);
  }
  const auto kind = metricAction(step.action);
  if (!outcomes) {
    metrics_.countAction(kind, ActionResult::kError);
    events_.record(channelRef, kube::EventType::kWarning, "ScaleFailed",
                   std::string("cannot ") + (restore ? "restore" : "scale down") + " channel " +
                       spec.ref.key() + ": " + outcomes.error().describe());
    log::warn("step failed", {{"channel", spec.ref.key()},
                              {"action", stability::actionName(step.action)},
                              {"error", outcomes.error().describe()}});
    return false;
  }
  metrics_.countAction(kind, ActionResult::kOk);
  std::string changes;
  for (const auto& o : *outcomes) {
    changes += (changes.empty() ? "" : ", ") + targetName(o.target) + " " +
               std::to_string(o.replicasBefore) + " -> " + std::to_string(o.replicasAfter);
  }
  if (!view.missing.empty())
    changes += (changes.empty() ? "" : ", ") + joined(view.missing, ", ") + " not found";
  const char* channelReason = restore                                       ? "Restoring"
                              : step.action == stability::Action::kShutdown ? "ShutDown"
                                                                            : "Degraded";
  events_.record(channelRef, kube::EventType::kNormal, channelReason,
                 changes + " (" + step.reason + ")");
  recordOnWorkloads(view, *outcomes, restore ? "ScaledUp" : "ScaledDown", step.reason);
  log::info("step taken", {{"channel", spec.ref.key()},
                           {"action", stability::actionName(step.action)},
                           {"changes", changes},
                           {"reason", step.reason}});
  return true;
}

std::string Reconcilers::agentsProblems(const fleet::FleetSnapshot& snapshot,
                                        const fleet::CapacityMap& capacity) {
  std::vector<std::string> problems;
  std::set<std::string> failing;
  for (const auto& [node, status] : snapshot.nodes()) {
    if (status->health == fleet::NodeHealth::kHealthy) continue;
    problems.push_back(node + " " + std::string(fleet::nodeHealthName(status->health)) + ": " +
                       (status->lastError.empty() ? "no answer yet" : status->lastError));
    if (status->health == fleet::NodeHealth::kFailed) failing.insert(node);
  }
  for (const auto& [node, c] : capacity) {
    if (snapshot.find(node) == nullptr) problems.push_back(node + ": no agent");
  }
  for (const auto& node : failing) {
    if (failingNodes_.contains(node)) continue;
    if (auto n = caches_.nodes.get(node)) {
      const auto* status = snapshot.find(node);
      events_.record(kube::ObjectReference::of(*n), kube::EventType::kWarning, "AgentUnreachable",
                     "pi0-agent at " + status->url + " failed " +
                         std::to_string(status->consecutiveFailures) +
                         " polls in a row; the node passes no gate: " + status->lastError);
    }
  }
  for (const auto& node : failingNodes_) {
    if (failing.contains(node)) continue;
    if (auto n = caches_.nodes.get(node)) {
      events_.record(kube::ObjectReference::of(*n), kube::EventType::kNormal, "AgentRecovered",
                     "pi0-agent answers again");
    }
  }
  failingNodes_ = std::move(failing);
  return joined(problems);
}

void Reconcilers::publish(std::map<std::string, Directive> directives) {
  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, d] : directives) {
      auto it = directives_.find(key);
      if (it == directives_.end() || !(it->second == d)) changed.push_back(key);
    }
    for (const auto& [key, d] : directives_) {
      if (!directives.contains(key)) changed.push_back(key);
    }
    directives_ = std::move(directives);
  }
  for (const auto& key : changed)
    channelController_.queue().add(key);
}

Result<kube::ReconcileResult> Reconcilers::reconcileMatrix(const std::string& name) {
  const kube::ReconcileResult again{options_.matrixPeriod};
  auto object = caches_.matrices.get(name);
  if (!object) {
    metrics_.removeMatrix(name);
    return kube::ReconcileResult{};
  }
  const WallTime wallNow = std::chrono::system_clock::now();
  const SteadyTime steadyNow = std::chrono::steady_clock::now();
  const std::string nowText = rfc3339(wallNow, 0);
  const std::string uid = stringField(*object, "/metadata/uid"_json_pointer);
  const int64_t generation = field<int64_t>(*object, "/metadata/generation"_json_pointer, 0);
  const auto ref = kube::ObjectReference::of(*object);
  const Json previous = matrixStatus_.contains(uid)
                            ? matrixStatus_.at(uid)
                            : field<Json>(*object, "/status"_json_pointer, Json::object());
  Json status = previous;
  Json conditions = status.value("conditions", Json::array());
  status["observedGeneration"] = generation;
  auto finish = [&](Json& s) {
    s["conditions"] = conditions;
    if (worthWriting(previous, s) && writeStatus(kube::resources::kShutdownMatrices, *object, s))
      matrixStatus_[uid] = s;
  };

  // The spec, and the channels it plans over.
  auto parsed = stability::parseMatrix(*object);
  std::vector<std::string> problems;
  if (!parsed) {
    problems.push_back(parsed.error().message);
  } else {
    problems = stability::validateMatrix(*parsed);
  }
  const auto views = channelViews();
  std::vector<stability::PlannedChannel> planned;
  std::map<std::string, const ChannelView*> viewByKey;
  for (const auto& v : views) {
    if (!v.spec) continue;  // its own condition says why; the matrix plans without it
    stability::PlannedChannel c;
    c.ref = v.spec->ref;
    c.state = v.state;
    c.critical = v.spec->critical;
    c.dependsOn = v.spec->dependsOn;
    c.cpo = field<double>(*v.object, "/status/priority"_json_pointer, 0.0);
    c.reliability = field<double>(*v.object, "/status/terms/reliability"_json_pointer, 1.0);
    c.ready = v.ready;
    c.absent = v.workloads.empty();
    planned.push_back(c);
    viewByKey[c.ref.key()] = &v;
  }
  if (parsed && problems.empty()) {
    auto more = stability::planProblems(stability::PlanInput{&*parsed, planned, 0, 0});
    problems.insert(problems.end(), more.begin(), more.end());
  }
  if (!problems.empty()) {
    const std::string message = joined(problems);
    if (conditionStatus(previous, "Valid") != "False")
      events_.record(ref, kube::EventType::kWarning, "InvalidSpec", message);
    setCondition(conditions, "Valid", false, "InvalidSpec", message, generation, nowText);
    status["progress"]["phase"] = phaseName(Phase::kHolding);
    status["progress"]["message"] = "the spec is invalid: no action until it is fixed";
    status.erase("plan");
    finish(status);
    return kube::ReconcileResult{std::chrono::seconds(30)};
  }
  const auto& spec = *parsed;
  setCondition(conditions, "Valid", true, "SpecValid", "the spec is valid", generation, nowText);

  // Which matrix acts: the oldest in Enforce mode; the oldest of all publishes to the
  // channels when none enforces (the webhook reads the same one).
  const auto acting = admission::actingMatrix(caches_.matrices.list());
  const std::string primary =
      acting ? stringField(*acting, "/metadata/name"_json_pointer) : std::string();
  const bool enforcing = spec.mode == stability::Mode::kEnforce && primary == spec.name;
  if (spec.mode == stability::Mode::kDryRun) {
    setCondition(conditions, "Enforcing", false, "DryRun",
                 "mode DryRun: the plan is published and nothing is changed", generation, nowText);
  } else if (!enforcing) {
    setCondition(conditions, "Enforcing", false, "AnotherMatrixEnforces",
                 "ShutdownMatrix " + primary + " is older and acts; this one only plans",
                 generation, nowText);
  } else {
    setCondition(conditions, "Enforcing", true, "Enforcing", "this matrix acts on its plan",
                 generation, nowText);
  }

  // The load, and with spec.anticipationSeconds the anticipated load (Fleet only).
  std::optional<double> load;
  std::optional<double> anticipated;
  std::string forecastCoverage;
  Json loadByResource = Json::object();
  if (spec.loadSignal.source == stability::LoadSource::kPrometheus) {
    if (prometheus_ == nullptr) {
      setCondition(conditions, "LoadMeasured", false, "QueryFailed",
                   "spec.loadSignal names a Prometheus query, but pi0-operator runs without "
                   "--prometheus-url",
                   generation, nowText);
    } else if (auto v = prometheus_->query(spec.loadSignal.prometheusQuery)) {
      load = std::clamp(*v, 0.0, 1.0);
      setCondition(conditions, "LoadMeasured", true, "QueryAnswered",
                   "the load is the Prometheus query's value", generation, nowText);
    } else {
      setCondition(conditions, "LoadMeasured", false, "QueryFailed", v.error().message, generation,
                   nowText);
    }
  }
  const auto snapshot = fleet_.snapshot();
  const auto capacity = capacitiesOf(caches_.nodes.list());
  if (spec.loadSignal.source == stability::LoadSource::kFleet) {
    std::vector<fleet::Resource> resources;
    for (auto r : spec.loadSignal.resources) {
      resources.push_back(r == stability::ResourceKind::kCpu      ? fleet::Resource::kCpu
                          : r == stability::ResourceKind::kMemory ? fleet::Resource::kMemory
                                                                  : fleet::Resource::kGpu);
    }
    const std::optional<double> lead =
        spec.anticipationSeconds > 0
            ? std::optional<double>(static_cast<double>(spec.anticipationSeconds))
            : std::nullopt;
    const auto cl = fleet::clusterLoad(*snapshot, systemClock().now(), capacity, resources, lead);
    load = cl.load;
    anticipated = cl.anticipated;
    if (lead) {
      const auto& binding = cl.of(cl.anticipated ? cl.anticipatedBinding : cl.binding);
      forecastCoverage =
          std::to_string(binding.nodesForecast) + " of " + std::to_string(binding.nodesCounted) +
          " nodes counted for " +
          std::string(fleet::resourceName(cl.anticipated ? cl.anticipatedBinding : cl.binding)) +
          " publish a forecast";
    }
    for (auto r : resources) {
      if (auto peak = cl.of(r).peak)
        loadByResource[std::string(fleet::resourceName(r))] = round4(*peak);
    }
    const std::string coverage = std::to_string(cl.nodesCounted) + " of " +
                                 std::to_string(cl.nodesCounted + cl.nodesMissing) +
                                 " nodes reporting";
    if (load) {
      setCondition(conditions, "LoadMeasured", true, "Measured", "measured over " + coverage,
                   generation, nowText);
    } else {
      setCondition(conditions, "LoadMeasured", false, "NoData",
                   "no fresh agent data (" + coverage + "): the matrix holds and takes no action",
                   generation, nowText);
    }
  }
  if (spec.anticipationSeconds == 0) {
    setCondition(conditions, "Anticipating", false, "Off",
                 "spec.anticipationSeconds is 0: the level follows the load alone", generation,
                 nowText);
  } else if (spec.loadSignal.source == stability::LoadSource::kPrometheus) {
    setCondition(conditions, "Anticipating", false, "NoForecast",
                 "spec.loadSignal is a Prometheus query, which has no forecast: "
                 "spec.anticipationSeconds has no effect",
                 generation, nowText);
  } else if (!anticipated) {
    setCondition(conditions, "Anticipating", false, "NoData",
                 "no anticipated load without a measured load", generation, nowText);
  } else {
    setCondition(conditions, "Anticipating", true, "Forecast",
                 "the level follows the larger of the load and the load forecast " +
                     std::to_string(spec.anticipationSeconds) + " s past the nodes' horizon (" +
                     forecastCoverage + ")",
                 generation, nowText);
  }
  const std::string agentTrouble = agentsProblems(*snapshot, capacity);
  if (agentTrouble.empty()) {
    setCondition(conditions, "AgentsHealthy", true, "AgentsAnswer", "every node's agent answers",
                 generation, nowText);
  } else {
    setCondition(conditions, "AgentsHealthy", false, "AgentsFailing", agentTrouble, generation,
                 nowText);
  }

  // What the status remembers, as steady-clock times.
  MatrixMemory memory;
  {
    const std::string levelName = stringField(previous, "/level"_json_pointer);
    for (std::size_t i = 0; i < spec.levels.size(); ++i) {
      if (spec.levels[i].name == levelName) memory.level.index = static_cast<int>(i);
    }
    if (auto t = timeField(previous, "/progress/calmSince"_json_pointer))
      memory.level.calmSince = toSteady(*t, wallNow, steadyNow);
    std::optional<WallTime> last = timeField(previous, "/progress/lastActionTime"_json_pointer);
    for (const auto& v : views) {
      for (const auto& w : v.workloads) {
        if (auto t = lastActionTime(*w); t && (!last || *t > *last)) last = t;
      }
    }
    if (last) memory.lastActionAt = toSteady(*last, wallNow, steadyNow);
  }
  const int previousLevel = memory.level.index;
  MatrixDecision d = decideMatrix(spec, memory, load, planned, steadyNow, anticipated);
  if (!enforcing) {
    d.shutdownNow.reset();
    d.restoreNow.clear();
  }
  if (log::enabled(log::Level::kDebug)) {
    std::string states;
    for (const auto& c : planned) {
      states += (states.empty() ? "" : " ") + c.ref.name + "=" +
                stability::channelStateName(c.state) + (c.ready ? "/ready" : "/not-ready");
      for (const auto& w : viewByKey.at(c.ref.key())->workloads) {
        states +=
            "[rv" + stringField(*w, "/metadata/resourceVersion"_json_pointer) + " g" +
            std::to_string(field<int64_t>(*w, "/metadata/generation"_json_pointer, -1)) + " o" +
            std::to_string(field<int64_t>(*w, "/status/observedGeneration"_json_pointer, -1)) +
            " r" + std::to_string(replicasOf(*w)) + " ready" +
            std::to_string(field<int64_t>(*w, "/status/readyReplicas"_json_pointer, -1)) + "]";
      }
    }
    log::debug("matrix decision",
               {{"matrix", spec.name},
                {"load", load ? fixed(*load) : "unknown"},
                {"phase", phaseName(d.phase)},
                {"channels", states},
                {"shutdownNow", d.shutdownNow ? d.shutdownNow->channel.key() : ""},
                {"restoreNow", static_cast<int>(d.restoreNow.size())}});
  }
  if (d.level.index != previousLevel && load) {
    const std::string change = "level " +
                               spec.levels[static_cast<std::size_t>(previousLevel)].name + " -> " +
                               spec.levels[static_cast<std::size_t>(d.level.index)].name;
    if (d.anticipatedRise) {
      events_.record(ref, kube::EventType::kNormal, "Anticipated",
                     change + " early: " + d.anticipation);
      metrics_.countAnticipatedRise(name);
    } else {
      events_.record(ref, kube::EventType::kNormal, "LevelChanged",
                     change + " at load " + fixed(*load));
    }
  }

  // Restores under way: verified, stalled, retried.
  int actions = 0;
  Json restores = Json::array();
  bool stalled = false;
  std::vector<std::string> stalledNames;
  for (auto r : field<Json>(previous, "/progress/restores"_json_pointer, Json::array())) {
    const std::string key = stringField(r, "/channel/namespace"_json_pointer) + "/" +
                            stringField(r, "/channel/name"_json_pointer);
    auto it = viewByKey.find(key);
    if (it == viewByKey.end() || !enforcing) continue;  // gone, or no longer ours to follow
    const ChannelView& v = *it->second;
    const auto started = timeField(r, "/startedAt"_json_pointer).value_or(wallNow);
    const auto channelRef = kube::ObjectReference::of(*v.object);
    if (v.ready) {
      events_.record(channelRef, kube::EventType::kNormal, "Restored",
                     "every target has its replicas ready again, " +
                         std::to_string(static_cast<int>(
                             std::chrono::duration<double>(wallNow - started).count())) +
                         " s after the restore began");
      continue;
    }
    const bool isStalled = r.value("stalled", false);
    const int attempts = static_cast<int>(field<int64_t>(r, "/attempts"_json_pointer, 1));
    if (!isStalled && wallNow - started > std::chrono::seconds(v.spec->restoreTimeoutSeconds)) {
      const int64_t backoff = std::min<int64_t>(spec.restore.maxBackoffSeconds,
                                                static_cast<int64_t>(spec.restore.backoffSeconds)
                                                    << std::min(attempts - 1, 20));
      r["stalled"] = true;
      r["retryAt"] = rfc3339(wallNow + std::chrono::seconds(backoff), 0);
      metrics_.countAction(op::Action::kRestore, ActionResult::kError);
      events_.record(channelRef, kube::EventType::kWarning, "RestoreStalled",
                     "replicas not ready " + std::to_string(v.spec->restoreTimeoutSeconds) +
                         " s after the restore began (attempt " + std::to_string(attempts) +
                         "); retrying in " + std::to_string(backoff) + " s");
    } else if (isStalled && timeField(r, "/retryAt"_json_pointer).value_or(wallNow) <= wallNow) {
      stability::PlanStep retry{v.spec->ref, stability::Action::kRestore, ChannelState::kActive,
                                "retry " + std::to_string(attempts + 1) + " of a stalled restore"};
      if (takeStep(v, retry, true)) {
        r["attempts"] = attempts + 1;
        r["startedAt"] = nowText;
        r["stalled"] = false;
        r.erase("retryAt");
        events_.record(channelRef, kube::EventType::kNormal, "RestoreRetried", retry.reason);
        ++actions;
      }
    }
    if (r.value("stalled", false)) {
      stalled = true;
      stalledNames.push_back(key);
    }
    restores.push_back(r);
  }

  // This step.
  if (d.shutdownNow) {
    if (auto it = viewByKey.find(d.shutdownNow->channel.key()); it != viewByKey.end()) {
      if (takeStep(*it->second, *d.shutdownNow, false)) ++actions;
    }
  }
  for (const auto& step : d.restoreNow) {
    auto it = viewByKey.find(step.channel.key());
    if (it == viewByKey.end()) continue;
    const bool tracked = std::any_of(restores.begin(), restores.end(), [&](const Json& r) {
      return stringField(r, "/channel/namespace"_json_pointer) == step.channel.ns &&
             stringField(r, "/channel/name"_json_pointer) == step.channel.name;
    });
    if (takeStep(*it->second, step, true)) {
      ++actions;
      if (!tracked) {
        restores.push_back({{"channel", channelRefJson(step.channel)},
                            {"startedAt", nowText},
                            {"attempts", 1},
                            {"stalled", false}});
      }
    }
  }

  // Facts for SAO, availability and BAO.
  std::vector<stability::ChannelFacts> facts;
  std::set<std::string> listed;
  for (const auto& row : spec.rows)
    listed.insert(row.channel.key());
  for (const auto& c : planned) {
    const auto& v = *viewByKey.at(c.ref.key());
    stability::ChannelFacts f;
    f.key = c.ref.key();
    f.critical = c.critical;
    f.active = c.state != ChannelState::kInactive;
    f.listed = listed.contains(f.key);
    f.cpo = c.cpo;
    f.reliability = c.reliability;
    int64_t desired = 0, ready = 0;
    for (const auto& w : v.workloads) {
      desired += replicasOf(*w);
      ready += field<int64_t>(*w, "/status/readyReplicas"_json_pointer, 0);
    }
    f.readyShare = desired > 0
                       ? std::min(1.0, static_cast<double>(ready) / static_cast<double>(desired))
                       : (f.active ? 1.0 : 0.0);
    f.bufferMax = v.spec->bufferMax;
    facts.push_back(f);
  }
  const double sao = stability::sao(facts);
  const double availability = stability::availability(facts);

  // The status.
  const auto& level = spec.levels[static_cast<std::size_t>(d.level.index)];
  status["level"] = level.name;
  status["levelIndex"] = d.level.index;
  if (load) {
    status["load"] = round4(*load);
  } else {
    status.erase("load");
  }
  status["loadByResource"] = loadByResource;
  if (anticipated && load) {
    status["anticipatedLoad"] = round4(std::max(*anticipated, *load));
  } else {
    status.erase("anticipatedLoad");
  }
  status["levelCause"] = d.anticipated ? "Anticipated" : "Load";
  status["stability"] = round4(sao);
  status["availability"] = round4(availability);
  status["systemState"] = stability::systemStateName(stability::systemState(availability));
  Json plan = Json::array();
  for (std::size_t i = 0; i < d.plan.size(); ++i) {
    const auto& step = d.plan[i];
    Json targets = Json::array();
    if (auto it = viewByKey.find(step.channel.key()); it != viewByKey.end()) {
      for (const auto& t : it->second->spec->targets)
        targets.push_back(targetName(t));
    }
    plan.push_back({{"step", static_cast<int>(i) + 1},
                    {"action", stability::actionName(step.action)},
                    {"channel", channelRefJson(step.channel)},
                    {"reason", step.reason},
                    {"targets", targets}});
  }
  status["plan"] = plan;
  Json progress = status.value("progress", Json::object());
  if (!progress.is_object()) progress = Json::object();
  Phase phase = d.phase;
  if (!restores.empty() && phase == Phase::kIdle) phase = Phase::kRestoring;
  const bool wasIdle = stringField(progress, "/phase"_json_pointer) == phaseName(Phase::kIdle) ||
                       !progress.contains("phase");
  progress["phase"] = phaseName(phase);
  if (d.level.calmSince) {
    progress["calmSince"] = rfc3339(toWall(*d.level.calmSince, wallNow, steadyNow), 0);
  } else {
    progress.erase("calmSince");
  }
  if (actions > 0) progress["lastActionTime"] = rfc3339(wallNow, 3);
  // Steps of the current sequence: a sequence begins with the first action after Idle.
  const int64_t completed =
      (wasIdle && actions > 0 ? 0 : field<int64_t>(progress, "/completedSteps"_json_pointer, 0)) +
      actions;
  progress["completedSteps"] = completed;
  std::string message = d.message;
  if (!d.waiting.empty()) message += "; " + joined(d.waiting);
  if (!enforcing && spec.mode == stability::Mode::kEnforce) message += " (another matrix enforces)";
  progress["message"] = message;
  if (restores.empty()) {
    progress.erase("restores");
  } else {
    progress["restores"] = restores;
  }
  status["progress"] = progress;
  if (stalled) {
    setCondition(conditions, "Stalled", true, "RestoreStalled",
                 "restores not ready within their timeout: " + joined(stalledNames, ", "),
                 generation, nowText);
  } else {
    setCondition(conditions, "Stalled", false, "NotStalled", "no restore is stalled", generation,
                 nowText);
  }
  finish(status);
  metrics_.setMatrix(
      name, MatrixFigures{load.value_or(std::nan("")), d.level.index,
                          static_cast<int>(spec.levels.size()), sao, spec.stabilityThreshold,
                          availability, anticipated.value_or(std::nan(""))});

  // What the channels' statuses say about the level and their buffers.
  if (primary == spec.name) {
    const stability::Resources total = spec.totalBuffer ? *spec.totalBuffer : freeAllocatable();
    const auto buffers = stability::bao(facts, total);
    std::map<std::string, Directive> directives;
    for (std::size_t i = 0; i < facts.size(); ++i) {
      Directive dir;
      dir.level = level.name;
      dir.elevated = d.level.index > 0;
      dir.buffer = buffers[i];
      // Whole MiB: a status that reads "1536Mi", not a byte count that moves with every pod.
      if (dir.buffer->memoryBytes) *dir.buffer->memoryBytes &= ~((int64_t{1} << 20) - 1);
      dir.weights = spec.weights;
      directives[facts[i].key] = dir;
    }
    publish(std::move(directives));
  }
  return again;
}

}  // namespace pi0::op
