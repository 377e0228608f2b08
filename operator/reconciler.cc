#include "reconciler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "admission/channel_info.h"
#include "channel_reconcile.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "kube/json.h"
#include "kube/quantity.h"
#include "kube/resource.h"
#include "kube/resource_list.h"
#include "workload_state.h"

namespace pi0::op {

using kube::field;
using kube::Json;
using kube::labelsOf;
using kube::ObjectPtr;
using kube::stringField;
using stability::ChannelState;

namespace {

// A pod's effective requests (kube/resource_list.h); a spec that does not parse requests
// nothing (the apiserver validated it, so that is a pod from a newer API).
kube::ResourceList requestsOf(const Json& spec) {
  return kube::podRequests(spec).value_or(kube::ResourceList{});
}

std::string joined(const std::vector<std::string>& parts, const char* separator = "; ") {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : separator) + p;
  return out;
}

// Why the matrix cannot be planned: its parse error, else the spec's problems, else the plan's
// over the channels whose spec parses (a dependency cycle, ...). Empty when it can.
std::vector<std::string> matrixProblems(const Result<stability::MatrixSpec>& parsed,
                                        const std::vector<ChannelView>& views) {
  if (!parsed) return {parsed.error().message};
  auto problems = stability::validateMatrix(*parsed);
  if (!problems.empty()) return problems;
  std::vector<stability::PlannedChannel> planned;
  for (const auto& v : views) {
    if (!v.spec) continue;
    stability::PlannedChannel p;
    p.ref = v.spec->ref;
    p.dependsOn = v.spec->dependsOn;
    planned.push_back(p);
  }
  return stability::planProblems(stability::PlanInput{&*parsed, planned, 0, 0});
}

// The ledger's records of the steps a pass took (those that changed something), with the
// matrix's load and level as the pass saw them. Ids are "<matrix uid>/<time ms>/<step>".
std::vector<ledger::Action> takenActions(const std::string& name, const std::string& uid,
                                         const MatrixWorld& world, const MatrixPass& pass,
                                         const std::vector<StepResult>& results) {
  std::vector<ledger::Action> out;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(world.now.time_since_epoch()).count();
  for (std::size_t i = 0; i < pass.actions.size() && i < results.size(); ++i) {
    if (results[i] != StepResult::kTaken) continue;
    const StepAction& a = pass.actions[i];
    ledger::Action r;
    r.id = uid + "/" + std::to_string(ms) + "/" + std::to_string(i);
    r.at = world.now;
    r.matrix = name;
    r.channel = a.channel;
    r.action = a.rollback ? "rollback" : stability::actionName(a.action);
    std::transform(r.action.begin(), r.action.end(), r.action.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.target = a.reason;
    r.level = pass.status.level;
    r.load = world.reading.load.value_or(-1);
    out.push_back(std::move(r));
  }
  return out;
}

// A matrix pass's Events (on the matrix, or on the channel an Event names) and its counts.
void recordPass(const MatrixPass& pass, const std::string& name, const kube::ObjectReference& ref,
                const std::map<std::string, const ChannelView*>& byKey, kube::EventSink& events,
                OperatorMetrics& metrics) {
  for (const auto& e : pass.events) {
    if (e.channel.empty()) {
      events.record(ref, e.type, e.reason, e.message);
    } else if (auto it = byKey.find(e.channel); it != byKey.end()) {
      events.record(kube::ObjectReference::of(*it->second->object), e.type, e.reason, e.message);
    }
  }
  if (pass.anticipatedRise) metrics.countAnticipatedRise(name);
  for (int i = 0; i < pass.rollbacks; ++i)
    metrics.countRollback(name);
  for (int i = 0; i < pass.stalledNow; ++i)
    metrics.countAction(op::Action::kRestore, ActionResult::kError);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void trimPod(Json& pod) {
  // Every map node costs about 100 bytes: keep only what podSample(), the selectors and the
  // buffer's accounting read, and fold the pod's effective requests (init containers, sidecars
  // and overhead included, as the scheduler and pi0-webhook count them) into one container.
  Json out = Json::object();
  Json& m = out["metadata"] = Json::object();
  if (auto meta = pod.find("metadata"); meta != pod.end() && meta->is_object()) {
    for (const char* key :
         {"name", "namespace", "uid", "labels", "creationTimestamp", "deletionTimestamp"}) {
      if (auto it = meta->find(key); it != meta->end() && !it->is_null()) m[key] = std::move(*it);
    }
  }
  if (auto node = pod.find("spec"); node != pod.end() && node->is_object()) {
    Json spec = Json::object();
    if (auto n = node->find("nodeName"); n != node->end() && n->is_string())
      spec["nodeName"] = std::move(*n);
    const auto r = requestsOf(*node);
    Json requests = Json::object();
    if (r.cpuMilli > 0) requests["cpu"] = kube::formatCpuMilli(r.cpuMilli);
    if (r.memoryBytes > 0) requests["memory"] = kube::formatBytes(r.memoryBytes);
    if (!requests.empty())
      spec["containers"] = Json::array({{{"resources", {{"requests", std::move(requests)}}}}});
    if (!spec.empty()) out["spec"] = std::move(spec);
  }
  if (auto s = pod.find("status"); s != pod.end() && s->is_object()) {
    Json status = Json::object();
    if (auto p = s->find("phase"); p != s->end() && p->is_string()) status["phase"] = std::move(*p);
    // Ready, and for the ledger's outcomes (operator/outcomes.h) a DisruptionTarget.
    Json conditions = Json::array();
    for (auto& c : field<Json>(*s, "/conditions"_json_pointer, Json::array())) {
      if (!c.is_object() || c.value("status", "") != "True") continue;
      const std::string type = c.value("type", "");
      if (type == "Ready") conditions.push_back({{"type", "Ready"}, {"status", "True"}});
      if (type == "DisruptionTarget")
        conditions.push_back({{"type", type},
                              {"status", "True"},
                              {"reason", c.value("reason", "")},
                              {"message", c.value("message", "").substr(0, 200)}});
    }
    if (!conditions.empty()) status["conditions"] = std::move(conditions);
    // The restarts, summed into one entry; then, for the outcomes, each container that was
    // OOMKilled or is crash-looping, with only that.
    int64_t restarts = 0;
    Json containers = Json::array();
    for (auto& c : field<Json>(*s, "/containerStatuses"_json_pointer, Json::array())) {
      restarts += field<int64_t>(c, "/restartCount"_json_pointer, 0);
      Json kept = Json::object();
      for (const char* state : {"state", "lastState"}) {
        if (field<std::string>(c,
                               Json::json_pointer("/" + std::string(state) + "/terminated/reason"),
                               "") == "OOMKilled")
          kept[state] = {{"terminated", {{"reason", "OOMKilled"}}}};
      }
      if (field<std::string>(c, "/state/waiting/reason"_json_pointer, "") == "CrashLoopBackOff")
        kept["state"] = {{"waiting", {{"reason", "CrashLoopBackOff"}}}};
      if (!kept.empty()) {
        kept["name"] = field<std::string>(c, "/name"_json_pointer, "");
        containers.push_back(std::move(kept));
      }
    }
    if (restarts > 0) containers.insert(containers.begin(), Json{{"restartCount", restarts}});
    if (!containers.empty()) status["containerStatuses"] = std::move(containers);
    for (const char* key : {"reason", "message"}) {
      if (auto r = s->find(key);
          r != s->end() && r->is_string() && status.value("phase", "") == "Failed")
        status[key] = r->get<std::string>().substr(0, 200);
    }
    if (!status.empty()) out["status"] = std::move(status);
  }
  pod = std::move(out);
}

void trimNode(Json& node) {
  Json out = Json::object();
  for (const char* key : {"apiVersion", "kind"}) {
    if (auto it = node.find(key); it != node.end() && it->is_string()) out[key] = std::move(*it);
  }
  Json& m = out["metadata"] = Json::object();
  if (auto meta = node.find("metadata"); meta != node.end() && meta->is_object()) {
    for (const char* key : {"name", "uid", "resourceVersion"}) {
      if (auto it = meta->find(key); it != meta->end() && !it->is_null()) m[key] = std::move(*it);
    }
  }
  if (auto s = node.find("status"); s != node.end() && s->is_object()) {
    if (auto a = s->find("allocatable"); a != s->end() && !a->is_null())
      out["status"] = Json{{"allocatable", std::move(*a)}};
  }
  node = std::move(out);
}

fleet::CapacityMap capacitiesOf(const std::vector<ObjectPtr>& nodes) {
  fleet::CapacityMap out;
  for (const auto& node : nodes) {
    // A node whose allocatable does not parse (never one the apiserver serves) counts nothing.
    const kube::ResourceList alloc = kube::nodeAllocatable(*node).value_or(kube::ResourceList{});
    out[stringField(*node, "/metadata/name"_json_pointer)] =
        fleet::Capacity{alloc.cpuMilli, alloc.memoryBytes, alloc.gpus};
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
      nodes(trimNode) {
  auto add = [&](const kube::ResourceType& type, kube::Store& store) {
    kube::ReflectorOptions options;
    // Pods and Nodes are many: list them in pages, each trimmed as it arrives (trimPod,
    // trimNode), not in one answer parsed whole.
    options.listFromWatchCache = &store != &pods && &store != &nodes;
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

void Caches::forEachCounters(
    const std::function<void(const std::string&, const kube::Reflector::Counters&)>& fn) const {
  for (const auto& r : reflectors_)
    fn(r->type().qualifiedName(), r->counters());
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

// ---------------------------------------------------------------------------------------------

Reconcilers::Reconcilers(kube::ObjectWriter& writer, Caches& caches, const fleet::FleetView& fleet,
                         kube::EventSink& events, OperatorMetrics& metrics,
                         const PrometheusClient* prometheus, ReconcilerOptions options)
    : writer_(writer),
      caches_(caches),
      fleet_(fleet),
      events_(events),
      metrics_(metrics),
      prometheus_(prometheus),
      options_(std::move(options)),
      scaler_(writer, caches.autoscalers, options_.wallClock),
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
  // A Channel's level and buffer are in the acting matrix's status.
  channelController_.watchSecondary(caches_.matrices,
                                    [this](const Json&) { return caches_.channels.keys(); });
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

ViewSources Reconcilers::sources() const {
  return {caches_.deployments, caches_.statefulSets, caches_.autoscalers, caches_.pods};
}

std::vector<ChannelView> Reconcilers::channelViews() const {
  return viewsOf(caches_.channels.list(), sources());
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
    const auto r = requestsOf(field<Json>(*pod, "/spec"_json_pointer, Json::object()));
    cpu -= r.cpuMilli;
    memory -= r.memoryBytes;
  }
  return {std::max<int64_t>(0, cpu), std::max<int64_t>(0, memory)};
}

Result<void> Reconcilers::writeStatus(const kube::ResourceType& type, const Json& object,
                                      const Json& status) {
  const std::string ns = stringField(object, "/metadata/namespace"_json_pointer);
  const std::string name = stringField(object, "/metadata/name"_json_pointer);
  const std::string uid = stringField(object, "/metadata/uid"_json_pointer);
  auto written = writer_.modify(
      type, ns, name,
      [&](Json& fresh) {
        // A new object under the same name is not the one this status is about.
        if (stringField(fresh, "/metadata/uid"_json_pointer) != uid) return false;
        fresh["status"] = status;
        return true;
      },
      kube::Subresource::kStatus);
  if (written || written.error().reason == kube::Reason::kNotFound) return {};
  return fail("cannot write the status of " + type.kind + " " +
              (ns.empty() ? name : ns + "/" + name) + ": " + written.error().describe());
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
  const ChannelView view = viewOf(object, sources());
  ChannelWorld world;
  world.view = &view;
  world.previous =
      channelStatusFromJson(field<Json>(*object, "/status"_json_pointer, Json::object()));
  world.period = options_.channelPeriod;
  world.now = options_.wallClock();
  std::optional<MatrixStatus> matrix;
  if (!view.spec) {
    world.problems.push_back(view.parseError);
  } else {
    const auto& spec = *view.spec;
    world.problems = stability::validateChannel(spec);
    // What the acting matrix says of this channel: its status, in the cluster.
    if (auto acting = admission::actingMatrix(caches_.matrices.list())) {
      matrix = matrixStatusFromJson(field<Json>(*acting, "/status"_json_pointer, Json::object()));
      world.matrix = &*matrix;
      if (auto parsed = stability::parseMatrix(*acting)) world.matrixWeights = parsed->weights;
    }
    for (const auto& pod : caches_.pods.list()) {
      if (stringField(*pod, "/metadata/namespace"_json_pointer) != spec.ref.ns) continue;
      if (!spec.selector.matches(labelsOf(*pod))) continue;
      auto sample = stability::podSample(*pod);
      if (!sample) continue;  // finished or being deleted
      world.pods.push_back(*sample);
      const auto r = requestsOf(field<Json>(*pod, "/spec"_json_pointer, Json::object()));
      world.requested.cpuMilli += r.cpuMilli;
      world.requested.memoryBytes += r.memoryBytes;
      const auto created =
          parseRfc3339(stringField(*pod, "/metadata/creationTimestamp"_json_pointer));
      if (created && (!world.newestPod || *created > *world.newestPod)) world.newestPod = *created;
    }
    if (spec.throughput && !spec.throughput->prometheusQuery.empty()) {
      if (prometheus_ == nullptr) {
        world.throughputError =
            "spec.throughput.prometheusQuery is set, but pi0-operator runs without "
            "--prometheus-url: throughput counts ready replicas instead";
      } else if (auto value = prometheus_->query(spec.throughput->prometheusQuery)) {
        world.throughputValue = *value;
      } else {
        world.throughputError = value.error().message;
      }
    }
    std::lock_guard lock(mu_);
    if (auto it = restarts_.find(key); it != restarts_.end()) world.restartsByPod = it->second;
  }

  ChannelPass pass = planChannel(world);
  if (pass.state) metrics_.setChannelState(view.spec->ref, *pass.state);
  if (pass.restartsByPod) {
    std::lock_guard lock(mu_);
    restarts_[key] = std::move(*pass.restartsByPod);
  }
  const auto ref = kube::ObjectReference::of(*object);
  for (const auto& e : pass.events)
    events_.record(ref, e.type, e.reason, e.message);
  if (pass.recount || worthWriting(world.previous, pass.status)) {
    if (auto w = writeStatus(kube::resources::kChannels, *object, toJson(pass.status)); !w)
      return std::unexpected(w.error());
  }
  return kube::ReconcileResult{pass.requeue};
}

// ---------------------------------------------------------------------------------------------

void Reconcilers::recordOnWorkloads(const ChannelView& view,
                                    const std::vector<TargetOutcome>& outcomes,
                                    const std::string& reason, const std::string& why, bool raise) {
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
            : raise ? "Pi0 raised the cap to " + std::to_string(std::max(1, o.replicasAfter)) +
                          " replicas for channel " + view.spec->ref.key() + ": " + why
                    : "Pi0 restored the bounds for channel " + view.spec->ref.key() + ": " + why);
      }
    }
  }
}

StepResult Reconcilers::takeStep(const ChannelView& view, const StepAction& step) {
  const auto spec = view.existing();
  const auto channelRef = kube::ObjectReference::of(*view.object);
  kube::ApiResult<std::vector<TargetOutcome>> outcomes = std::vector<TargetOutcome>{};
  switch (step.kind) {
    case StepKind::kScaleDown:
      outcomes = scaler_.scaleDown(spec, step.replicas);
      break;
    case StepKind::kRaise:
      outcomes = scaler_.raise(spec, step.replicas);
      break;
    case StepKind::kRestore:
      outcomes = scaler_.restore(spec);
      break;
  }
  const bool up = step.kind != StepKind::kScaleDown;
  const auto kind = step.action;
  if (!outcomes) {
    metrics_.countAction(kind, ActionResult::kError);
    events_.record(channelRef, kube::EventType::kWarning, "ScaleFailed",
                   std::string("cannot ") + (up ? "restore" : "scale down") + " channel " +
                       spec.ref.key() + ": " + outcomes.error().describe());
    log::warn("step failed", {{"channel", spec.ref.key()},
                              {"action", stability::actionName(step.action)},
                              {"error", outcomes.error().describe()}});
    return StepResult::kFailed;
  }
  bool changed = false;
  bool moved = false;
  std::string changes;
  for (const auto& o : *outcomes) {
    changed |= o.changed;
    moved |= o.replicasBefore != o.replicasAfter;
    changes += (changes.empty() ? "" : ", ") + targetName(o.target) + " " +
               std::to_string(o.replicasBefore) + " -> " + std::to_string(o.replicasAfter);
    if (o.waiting) changes += " (waits for HorizontalPodAutoscaler/" + o.autoscaler + ")";
  }
  if (!changed) return StepResult::kUnchanged;
  metrics_.countAction(kind, ActionResult::kOk);
  if (!view.missing.empty())
    changes += (changes.empty() ? "" : ", ") + joined(view.missing, ", ") + " not found";
  // The Channel's Event tells of replica counts that moved. A write of only an autoscaler's
  // bounds (the first half of a raise or restore) or of Pi0's annotations has the autoscaler's
  // Event, or none.
  if (moved) {
    const char* channelReason = step.rollback                                 ? "RollingBack"
                                : up                                          ? "Restoring"
                                : step.action == stability::Action::kShutdown ? "ShutDown"
                                                                              : "Degraded";
    events_.record(channelRef, kube::EventType::kNormal, channelReason,
                   changes + " (" + step.reason + ")");
  }
  recordOnWorkloads(view, *outcomes, up ? "ScaledUp" : "ScaledDown", step.reason,
                    step.kind == StepKind::kRaise);
  log::info("step taken", {{"channel", spec.ref.key()},
                           {"action", stability::actionName(step.action)},
                           {"changes", changes},
                           {"reason", step.reason}});
  return StepResult::kTaken;
}

std::string Reconcilers::agentsProblems(const fleet::FleetSnapshot& snapshot,
                                        const fleet::CapacityMap& capacity) {
  std::vector<std::string> problems;
  std::set<std::string> failing;
  for (const auto& status : snapshot.nodes()) {
    if (status->health == fleet::NodeHealth::kHealthy) continue;
    const std::string& node = status->node;
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

LoadReading Reconcilers::measure(const stability::MatrixSpec& spec) {
  LoadReading r;
  if (spec.loadSignal.source == stability::LoadSource::kPrometheus) {
    r.measuredReason = "QueryFailed";
    if (prometheus_ == nullptr) {
      r.measuredMessage =
          "spec.loadSignal names a Prometheus query, but pi0-operator runs without "
          "--prometheus-url";
    } else if (auto v = prometheus_->query(spec.loadSignal.prometheusQuery)) {
      r.load = std::clamp(*v, 0.0, 1.0);
      r.measured = true;
      r.measuredReason = "QueryAnswered";
      r.measuredMessage = "the load is the Prometheus query's value";
    } else {
      r.measuredMessage = v.error().message;
    }
  }
  const auto snapshot = fleet_.snapshot();
  const auto capacity = capacitiesOf(caches_.nodes.list());
  if (spec.loadSignal.source == stability::LoadSource::kFleet) {
    const auto& resources = spec.loadSignal.resources;
    const std::optional<double> lead =
        spec.anticipationSeconds > 0
            ? std::optional<double>(static_cast<double>(spec.anticipationSeconds))
            : std::nullopt;
    const auto cl = fleet::clusterLoad(*snapshot, systemClock().now(), capacity, resources, lead);
    r.load = cl.load;
    r.anticipated = cl.anticipated;
    if (lead) {
      const auto binding = cl.anticipated ? cl.anticipatedBinding : cl.binding;
      const auto& of = cl.of(binding);
      r.forecastCoverage = std::to_string(of.nodesForecast) + " of " +
                           std::to_string(of.nodesCounted) + " nodes counted for " +
                           std::string(fleet::resourceName(binding)) + " publish a forecast";
    }
    for (auto k : resources) {
      if (auto peak = cl.of(k).peak) r.byResource[std::string(fleet::resourceName(k))] = *peak;
    }
    const std::string coverage = std::to_string(cl.nodesCounted) + " of " +
                                 std::to_string(cl.nodesCounted + cl.nodesMissing) +
                                 " nodes reporting";
    r.measured = r.load.has_value();
    r.measuredReason = r.measured ? "Measured" : "NoData";
    r.measuredMessage =
        r.measured ? "measured over " + coverage
                   : "no fresh agent data (" + coverage + "): the matrix holds and takes no action";
  }
  r.agentTrouble = agentsProblems(*snapshot, capacity);
  return r;
}

Result<kube::ReconcileResult> Reconcilers::reconcileMatrix(const std::string& name) {
  auto object = caches_.matrices.get(name);
  if (!object) {
    metrics_.removeMatrix(name);
    return kube::ReconcileResult{};
  }
  const std::string uid = stringField(*object, "/metadata/uid"_json_pointer);
  MatrixWorld world;
  world.object = object.get();
  world.now = options_.wallClock();
  world.steadyNow = std::chrono::steady_clock::now();
  world.previous =
      matrixStatus_.contains(uid)
          ? matrixStatus_.at(uid)
          : matrixStatusFromJson(field<Json>(*object, "/status"_json_pointer, Json::object()));
  const MatrixStatus stored = world.previous;

  // The spec, and the channels it plans over.
  auto parsed = stability::parseMatrix(*object);
  const auto views = channelViews();
  world.problems = matrixProblems(parsed, views);
  world.channels = &views;
  if (world.problems.empty()) {
    world.spec = &*parsed;
    const auto acting = admission::actingMatrix(caches_.matrices.list());
    world.acting = acting ? stringField(*acting, "/metadata/name"_json_pointer) : std::string();
    world.reading = measure(*parsed);
    if (!parsed->totalBuffer) world.freeAllocatable = freeAllocatable();
  }

  MatrixPass pass = planMatrix(world);
  const auto ref = kube::ObjectReference::of(*object);
  std::map<std::string, const ChannelView*> byKey;
  for (const auto& v : views)
    byKey[v.key()] = &v;
  recordPass(pass, name, ref, byKey, events_, metrics_);

  // The status first: a restore is announced in the cluster before any workload is scaled up
  // (and a failed write takes no step at all).
  auto write = [&](const MatrixStatus& next, const MatrixStatus& before) -> Result<void> {
    if (!worthWriting(before, next)) return {};
    if (auto w = writeStatus(kube::resources::kShutdownMatrices, *object, toJson(next)); !w)
      return w;
    matrixStatus_[uid] = next;
    return {};
  };
  if (auto w = write(pass.status, stored); !w) return std::unexpected(w.error());

  std::vector<StepResult> results;
  std::vector<std::string> failures;
  for (const auto& a : pass.actions) {
    auto it = byKey.find(a.channel);
    const StepResult r = it == byKey.end() ? StepResult::kFailed : takeStep(*it->second, a);
    results.push_back(r);
    if (r == StepResult::kFailed)
      failures.push_back(std::string(stability::actionName(a.action)) + " of " + a.channel);
  }
  if (!pass.actions.empty()) {
    const MatrixStatus announced = pass.status;
    settleMatrix(pass, results, options_.wallClock());
    if (options_.recordActions)
      options_.recordActions(takenActions(name, uid, world, pass, results));
    if (auto w = write(pass.status, announced); !w) return std::unexpected(w.error());
  }
  if (world.spec) {
    metrics_.setMatrix(
        name, MatrixFigures{world.reading.load.value_or(std::nan("")), pass.status.levelIndex,
                            static_cast<int>(world.spec->levels.size()), pass.status.stability,
                            world.spec->stabilityThreshold, pass.status.availability,
                            world.reading.anticipated.value_or(std::nan(""))});
  }
  if (!failures.empty()) return fail("steps failed: " + joined(failures));
  if (pass.requeue.count() > 0) return kube::ReconcileResult{pass.requeue};
  return kube::ReconcileResult{options_.matrixPeriod};
}

}  // namespace pi0::op
