// The reconcilers of pi0-operator (DESIGN.md "Shutdown and recovery"): one for Channels, which
// measures each channel and writes its status, and one for ShutdownMatrices, which measures the
// load, moves the level with hysteresis, publishes the plan and takes its steps.
//
// - Everything is read from caches (Caches: reflectors over Channels, ShutdownMatrices,
//   Deployments, StatefulSets, HorizontalPodAutoscalers, Pods and Nodes), and the state that
//   matters across a crash or a change of leader is in the cluster: the undo records on the
//   workloads (workload_state.h), the channel's health in its status, the matrix's level, calm
//   time, last action and running restores in its status. A new leader goes on from there.
// - A matrix is reconciled after every round of fleet polls (fleetPolled(): the load changes
//   without any watch event), when a Channel changes, and at least every `matrixPeriod`; a
//   channel every `channelPeriod` and whenever its workloads or pods change.
// - Statuses are written only when something other than the numbers' last digits changed, so a
//   quiet cluster sees no writes.
// - Of several matrices, the oldest in Enforce mode acts; the others publish their plans only
//   (condition Enforcing False). DryRun matrices never act.
//
// Thread-safety: the reconcile functions may run on the controllers' workers at once (a key on
// one worker at a time); the shared state is guarded.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "common/result.h"
#include "fleet/fleet_view.h"
#include "fleet/load.h"
#include "kube/client.h"
#include "kube/controller.h"
#include "kube/events.h"
#include "kube/reflector.h"
#include "kube/store.h"
#include "metrics/prometheus_query.h"
#include "operator/operator_metrics.h"
#include "operator/workload_scaler.h"
#include "stability/health.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::op {

// Trims a Pod to what the operator reads (names, labels, node, requests, phase, Ready, restart
// counts), so that 10,000 cached pods stay small.
void trimPod(kube::Json& pod);

// The node capacities (status.allocatable: cpu, memory, nvidia.com/gpu) of Node objects.
fleet::CapacityMap capacitiesOf(const std::vector<kube::ObjectPtr>& nodes);

// The caches every reconciler reads. Thread-safety: run() on one thread; the stores from any.
class Caches {
 public:
  explicit Caches(kube::Client& client);

  // Lists and watches every resource until `stop` fires.
  void run(std::stop_token stop);
  bool synced() const;
  // The resources whose first list is not in yet ("channels.stability.pi0.io"), for /readyz.
  std::vector<std::string> unsynced() const;
  bool waitForSync(std::stop_token stop, std::chrono::milliseconds timeout) const;

  kube::Store channels;
  kube::Store matrices;
  kube::Store deployments;
  kube::Store statefulSets;
  kube::Store autoscalers;
  kube::Store pods;
  kube::Store nodes;

 private:
  std::vector<std::unique_ptr<kube::Reflector>> reflectors_;
  std::vector<std::pair<std::string, const kube::Store*>> named_;
};

struct ReconcilerOptions {
  std::chrono::milliseconds matrixPeriod{1000};
  std::chrono::milliseconds channelPeriod{10000};
};

class Reconcilers {
 public:
  // Every argument must outlive the object; `prometheus` may be null (no --prometheus-url).
  Reconcilers(kube::Client& client, Caches& caches, const fleet::FleetView& fleet,
              kube::EventRecorder& events, OperatorMetrics& metrics,
              const PrometheusClient* prometheus, ReconcilerOptions options = {});

  // Waits for the caches, then runs both controllers until `stop` (the leader's work). Once.
  void run(std::stop_token stop);

  // The fleet view has new data: every matrix measures again now (rather than at its next
  // period). Any thread; a no-op while this replica does not lead (the keys wait, deduplicated).
  void fleetPolled();

  Result<kube::ReconcileResult> reconcileChannel(const std::string& key);
  Result<kube::ReconcileResult> reconcileMatrix(const std::string& name);

 private:
  struct ChannelView;
  struct Directive {  // what the acting matrix tells a channel's status
    std::string level;
    bool elevated = false;  // the level is above the first (admission checks buffers)
    std::optional<stability::Resources> buffer;
    std::optional<stability::Weights> weights;
    friend bool operator==(const Directive&, const Directive&) = default;
  };

  std::vector<ChannelView> channelViews() const;
  ChannelView viewOf(const kube::ObjectPtr& object) const;
  std::vector<stability::PodSample> podsOf(const stability::ChannelSpec& spec) const;
  // What the channel's pods request (cpu milli, memory bytes); finished and deleting pods not
  // counted.
  std::pair<int64_t, int64_t> requestedBy(const stability::ChannelSpec& spec) const;
  stability::Resources freeAllocatable() const;
  bool takeStep(const ChannelView& view, const stability::PlanStep& step, bool restore);
  void recordOnWorkloads(const ChannelView& view, const std::vector<TargetOutcome>& outcomes,
                         const std::string& reason, const std::string& why);
  std::string agentsProblems(const fleet::FleetSnapshot& snapshot,
                             const fleet::CapacityMap& capacity);
  void publish(std::map<std::string, Directive> directives);
  bool writeStatus(const kube::ResourceType& type, const kube::Json& object,
                   const kube::Json& status);

  kube::Client& client_;
  Caches& caches_;
  const fleet::FleetView& fleet_;
  kube::EventRecorder& events_;
  OperatorMetrics& metrics_;
  const PrometheusClient* prometheus_;
  ReconcilerOptions options_;
  WorkloadScaler scaler_;
  kube::Controller channelController_;
  kube::Controller matrixController_;

  std::mutex mu_;
  std::map<std::string, Directive> directives_;                 // by channel key; guarded by mu_
  std::map<std::string, std::map<std::string, int>> restarts_;  // by channel key; guarded by mu_
  // The status this leader last wrote per matrix (the cache may lag behind its own writes).
  std::map<std::string, kube::Json> matrixStatus_;  // by matrix uid; matrix worker only
  std::set<std::string> failingNodes_;              // matrix worker only
};

}  // namespace pi0::op
