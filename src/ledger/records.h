// The truth ledger's records (DESIGN.md "The learning loop", seed 001 P1): an admission decision,
// an operator action, an outcome joined to a decision; and the JSON a batch of decisions travels
// in from a pi0-webhook replica to the operator leader that keeps the ledger (ledger.h). Apart
// from the store, so that the webhook builds and sends records without linking SQLite.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pi0::ledger {

using Time = std::chrono::system_clock::time_point;

// One gate of the node a decision names, as the decision judged it.
struct GateRecord {
  std::string resource;  // "cpu", "memory", "gpu"
  std::string gate;      // "fit_error", "gluing_delta", "psi", "isolation"
  double value = 0;
  double threshold = 0;     // fit, glue, psi: the maximum; isolation: the minimum
  double requestShare = 0;  // isolation: request/allocatable (threshold = this + the margin)
  bool passed = true;

  friend bool operator==(const GateRecord&, const GateRecord&) = default;
};

// One admission decision, as the replica that made it saw it.
struct Decision {
  std::string id;  // unique per decision, made by the replica ("<replica>/<epoch>/<sequence>")
  Time at;
  std::string replica;    // the pi0-webhook pod
  std::string ns;         // the pod's namespace
  std::string pod;        // its name, or its generateName when the apiserver names it
  std::string podUid;     // metadata.uid as admission saw it: what outcomes join on
  std::string ownerKind;  // "ReplicaSet", "StatefulSet", ... ("" for a bare pod)
  std::string ownerName;
  std::string channel;            // "ns/name" ("" for none)
  std::string mode;               // "Enforce", "Warn", "DryRun"
  bool allowed = true;            // the answer sent
  bool verdict = true;            // what Enforce would have answered
  std::string reason;             // "Passed", "GatesFailed", ... (admission::reasonName)
  std::string node;               // the chosen node, or the closest to passing ("" for none)
  std::int64_t candidates = 0;    // nodes considered
  std::vector<GateRecord> gates;  // every gate of `node` as judged (admission::GateReading)
  bool holdout = false;           // judged with the fixed thresholds (calibration's holdout)

  friend bool operator==(const Decision&, const Decision&) = default;
};

// One action of the operator.
struct Action {
  std::string id;  // unique per action ("<matrix>/<generation>/<step>")
  Time at;
  std::string matrix;  // "ns/name" of the ShutdownMatrix
  std::string channel;
  std::string action;  // "degrade", "shutdown", "restore", "rollback"
  std::string target;  // what the step does ("scale Deployment shop/web to 0 replicas", ...)
  std::string level;   // the matrix's level at the time
  double load = 0;     // the cluster load ℓ at the time; −1 when it was not measured

  friend bool operator==(const Action&, const Action&) = default;
};

// What followed a decision within the horizon: "ready", "oom_killed", "evicted",
// "crash_looping", "preempted", "node_trouble", "node_fine" (a denial's best node stayed out of
// trouble), ... One of each kind per decision; the first stays.
struct Outcome {
  std::string kind;
  Time at;
  std::string detail;  // for a person: "container app: OOMKilled", "psi_memory 0.31 > 0.20"

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

// A decision as the ledger keeps it, with what followed it.
struct StoredDecision {
  std::int64_t seq = 0;  // the ledger's own order
  Decision decision;
  std::vector<Outcome> outcomes;  // in time order
};

// A batch of decisions as JSON:
//   {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "DecisionBatch", "decisions": [
//     {"id": ..., "at": "2026-12-06T18:05:43.123Z", "replica": ..., "namespace": ..., "pod": ...,
//      "podUid": ..., "owner": {"kind": ..., "name": ...}, "channel": ..., "mode": ...,
//      "allowed": true, "verdict": true, "reason": ..., "node": ..., "candidates": 12,
//      "gates": [{"resource": "cpu", "gate": "fit_error", "value": 0.04, "threshold": 0.1,
//                 "requestShare": 0, "passed": true}, ...],
//      "holdout": false}, ...]}
// Times to the millisecond; every number reads back as the same double.
std::string toJson(std::span<const Decision> decisions);

// What the ledger answers a query with (pi0-operator's GET /query/decisions and
// /query/actions, read by `kubectl pi0`):
//   {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "DecisionList", "decisions": [
//     {<a decision as in a batch>, "seq": 17,
//      "outcomes": [{"kind": "ready", "at": "...", "detail": "..."}, ...]}, ...]}
//   {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "ActionList", "actions": [
//     {"id": ..., "at": ..., "matrix": "ns/name", "channel": ..., "action": "shutdown",
//      "target": ..., "level": ..., "load": 0.93}, ...]}
std::string decisionListJson(std::span<const StoredDecision> decisions);
std::string actionListJson(std::span<const Action> actions);

// The decisions of a batch. Every field is required and typed as above; an error names the first
// defect ("decisions[2].at: not an RFC 3339 time"). Never throws.
Result<std::vector<Decision>> parseDecisions(std::string_view body);

}  // namespace pi0::ledger
