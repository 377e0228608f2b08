// One pass of the ShutdownMatrix reconciler as a pure function: from the matrix, its previous
// status, the channels as the caches show them, the load reading and the clock, to the status
// it should have and the steps to take. No I/O, no clock of its own: reconciler.cc gathers the
// world, writes the status, takes the steps, and folds their results in (settleMatrix).
//
// A pass, in order:
//  1. Conditions: Valid, Enforcing, LoadMeasured, Anticipating, AgentsHealthy.
//  2. The level (decideMatrix, with the hysteresis its previous status remembers).
//  3. Rollback checks: each degrade or shutdown step taken spec.rollback.settleSeconds ago is
//     compared with what it was for (Evaluation); one that made things measurably worse is
//     undone through its undo record (a rollback restore) and its channel is held for
//     spec.rollback.cooldownSeconds (Cooldown), during which no step touches it.
//  4. Restores: announced ones are scaled up once the announcement is kAnnounceLead old (so
//     pi0-webhook, which reads status.channels[].restoring, admits the pods they create);
//     scaling ones are verified ready, declared stalled after the channel's
//     restoreTimeoutSeconds, and retried with backoff to the channel's target at the current
//     level; a restore whose channel no longer needs one is dropped.
//  5. New restores the plan allows are announced (not scaled) in this pass's status.
//  6. The shutdown step due now, if any (one per step interval), with its Evaluation.
//  7. SAO, availability, BAO's buffer shares (a partition of B: spec.totalBuffer, else the free
//     allocatable plus what the channels' buffers already hold) and status.channels.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "channel_view.h"
#include "kube/events.h"
#include "matrix_decision.h"
#include "matrix_status.h"
#include "stability/spec.h"

namespace pi0::op {

// What the I/O layer measured of the load (fleet or Prometheus) and of the agents.
struct LoadReading {
  std::optional<double> load;
  std::optional<double> anticipated;
  std::map<std::string, double> byResource;
  bool measured = false;
  std::string measuredReason;    // LoadMeasured's reason
  std::string measuredMessage;   // and message
  std::string forecastCoverage;  // "3 of 3 nodes counted for cpu publish a forecast"
  std::string agentTrouble;      // empty when every agent answers
};

struct MatrixWorld {
  const kube::Json* object = nullptr;  // the ShutdownMatrix
  // Empty when the spec parsed and is valid; else why not (the pass only reports them).
  std::vector<std::string> problems;
  const stability::MatrixSpec* spec = nullptr;  // set when problems is empty
  MatrixStatus previous;
  const std::vector<ChannelView>* channels = nullptr;  // every Channel, sorted by key
  std::string acting;  // the matrix that acts (admission::actingMatrix), "" when none
  LoadReading reading;
  stability::Resources freeAllocatable;  // allocatable minus requests, over the nodes
  WallTime now;
  SteadyTime steadyNow;
};

enum class StepKind { kScaleDown, kRaise, kRestore };

// A change to a channel's workloads, to take after the status is written.
struct StepAction {
  StepKind kind = StepKind::kScaleDown;
  std::string channel;                                     // key
  stability::Action action = stability::Action::kDegrade;  // for metrics and Events
  int32_t replicas = 0;  // kScaleDown: to this; kRaise: up to this
  std::string reason;
  bool rollback = false;
  // What success records: a scale-down's rollback check; a restore's record (by channel).
  std::optional<Evaluation> evaluation;
  bool restoreRecord = false;
};

struct EventOut {
  std::string channel;  // the Channel's key, or "" for the matrix
  kube::EventType type = kube::EventType::kNormal;
  std::string reason;
  std::string message;
};

struct MatrixPass {
  MatrixStatus status;  // before the steps' results (settleMatrix)
  std::vector<StepAction> actions;
  std::vector<EventOut> events;
  bool enforcing = false;
  bool anticipatedRise = false;
  int rollbacks = 0;                // steps rolled back in this pass
  int stalledNow = 0;               // restores declared stalled in this pass
  std::chrono::seconds requeue{0};  // 0: the matrix period
};

MatrixPass planMatrix(const MatrixWorld& world);

// What taking a step came to.
enum class StepResult {
  kFailed,     // an API error stopped it
  kTaken,      // it changed something
  kUnchanged,  // nothing to change, or what is left waits (an autoscaler's bounds settling)
};

// Folds the steps' results into the status: a step taken counts (lastActionTime,
// completedSteps, its Evaluation, its restore record moving to Scaling); one that failed or
// changed nothing leaves the status as it was before it (a restore stays announced and is
// tried again).
void settleMatrix(MatrixPass& pass, const std::vector<StepResult>& results, WallTime now);

}  // namespace pi0::op
