// The reconcilers of pi0-operator (DESIGN.md "Shutdown and recovery"): one for Channels, which
// measures each channel and writes its status, and one for ShutdownMatrices, which measures the
// load, moves the level with hysteresis, publishes the plan and takes its steps.
//
// - Everything is read from caches (Caches: reflectors over Channels, ShutdownMatrices,
//   Deployments, StatefulSets, HorizontalPodAutoscalers, Pods and Nodes), and the state that
//   matters across a crash or a change of leader is in the cluster: the undo records on the
//   workloads (workload_state.h), the channel's health in its status, the matrix's level, calm
//   time, last action, restores, rollback checks and cool-downs in its status. A new leader
//   goes on from there. A Channel's level and buffer come from the acting matrix's status
//   (status.channels), never from this replica's memory, so a new leader's first Channel
//   reconciles write what the matrix says.
// - A matrix is reconciled after every round of fleet polls (fleetPolled(): the load changes
//   without any watch event), when a Channel changes, and at least every `matrixPeriod`; a
//   channel every `channelPeriod`, whenever its workloads or pods change and whenever a matrix
//   changes.
// - Statuses are written only when something other than the numbers' last digits changed, so a
//   quiet cluster sees no writes.
// - Of several matrices, the oldest in Enforce mode acts; the others publish their plans only
//   (condition Enforcing False). DryRun matrices never act.
//
// Thread-safety: the reconcile functions may run on the controllers' workers at once (a key on
// one worker at a time); the shared state is guarded.
#pragma once

#include <chrono>
#include <functional>
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
#include "kube/object_writer.h"
#include "kube/reflector.h"
#include "kube/store.h"
#include "ledger/records.h"
#include "metrics/prometheus_query.h"
#include "operator/channel_view.h"
#include "operator/matrix_reconcile.h"
#include "operator/matrix_status.h"
#include "operator/operator_metrics.h"
#include "operator/workload_scaler.h"
#include "stability/health.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::op {

// Trims a Pod to what the operator reads (names, labels, node, requests, phase, Ready, restart
// counts), so that 10,000 cached pods stay small.
void trimPod(kube::Json& pod);

// Trims a Node to what the operator reads: its reference for Events (apiVersion, kind, name,
// uid, resourceVersion) and status.allocatable. A Node is mostly what the operator never reads
// (images, conditions, nodeInfo, labels), and thousands of them were most of its memory.
void trimNode(kube::Json& node);

// The node capacities (status.allocatable: cpu, memory, nvidia.com/gpu, read by
// kube::nodeAllocatable) of Node objects; a node whose allocatable does not parse counts nothing.
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
  // Each cache's resource ("pods") and its reflector's counts, for the metrics.
  void forEachCounters(
      const std::function<void(const std::string&, const kube::Reflector::Counters&)>& fn) const;
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
  // Wall-clock time, for statuses and their comparisons (tests set a fake one).
  std::function<std::chrono::system_clock::time_point()> wallClock = [] {
    return std::chrono::system_clock::now();
  };
  // Where the steps a matrix took go (the truth ledger), with the load and level at the time;
  // unset: nowhere.
  std::function<void(const std::vector<ledger::Action>&)> recordActions;
};

// The reconcilers' I/O layer: each reconcile gathers what its pure decision needs from the
// caches and the fleet view (matrix_reconcile.h, channel_reconcile.h), writes the status, takes
// the steps, records the Events and metrics, and returns an error when a write or a step
// failed, so that the work queue retries it with backoff (and Pi0OperatorReconcileErrors sees
// it).
class Reconcilers {
 public:
  // Every argument must outlive the object; `prometheus` may be null (no --prometheus-url).
  Reconcilers(kube::ObjectWriter& writer, Caches& caches, const fleet::FleetView& fleet,
              kube::EventSink& events, OperatorMetrics& metrics, const PrometheusClient* prometheus,
              ReconcilerOptions options = {});

  // Waits for the caches, then runs both controllers until `stop` (the leader's work). Once.
  void run(std::stop_token stop);

  // The fleet view has new data: every matrix measures again now (rather than at its next
  // period). Any thread; a no-op while this replica does not lead (the keys wait, deduplicated).
  void fleetPolled();

  Result<kube::ReconcileResult> reconcileChannel(const std::string& key);
  Result<kube::ReconcileResult> reconcileMatrix(const std::string& name);

 private:
  std::vector<ChannelView> channelViews() const;
  ViewSources sources() const;
  LoadReading measure(const stability::MatrixSpec& spec);
  // Takes one step: kFailed with a Warning Event and the error counted; kTaken with the Events
  // of what it changed (the Channel's only when a replica count moved); kUnchanged quietly.
  StepResult takeStep(const ChannelView& view, const StepAction& step);
  void recordOnWorkloads(const ChannelView& view, const std::vector<TargetOutcome>& outcomes,
                         const std::string& reason, const std::string& why, bool raise);
  std::string agentsProblems(const fleet::FleetSnapshot& snapshot,
                             const fleet::CapacityMap& capacity);
  stability::Resources freeAllocatable() const;
  // Writes `status` as the object's status subresource (only on the object with this uid).
  Result<void> writeStatus(const kube::ResourceType& type, const kube::Json& object,
                           const kube::Json& status);

  kube::ObjectWriter& writer_;
  Caches& caches_;
  const fleet::FleetView& fleet_;
  kube::EventSink& events_;
  OperatorMetrics& metrics_;
  const PrometheusClient* prometheus_;
  ReconcilerOptions options_;
  WorkloadScaler scaler_;
  kube::Controller channelController_;
  kube::Controller matrixController_;

  std::mutex mu_;
  // The health baselines (restart counts per pod) this leader saw last, by channel key: a new
  // leader starts from the pods' counts as they are (ChannelHealth::restartsKnown).
  std::map<std::string, std::map<std::string, int>> restarts_;  // guarded by mu_
  // The status this leader last wrote per matrix (the cache may lag behind its own writes).
  std::map<std::string, MatrixStatus> matrixStatus_;  // by matrix uid; matrix worker only
  std::set<std::string> failingNodes_;                // matrix worker only
};

}  // namespace pi0::op
