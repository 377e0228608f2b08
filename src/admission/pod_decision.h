// Pod admission (DESIGN.md "Admission (the webhook)"): whether pi0-webhook admits a Pod, as a
// pure function of the pod, the cluster's nodes, the fleet view, the pod's channel and the
// policy. No I/O, no clock (the time that judges freshness is an argument), never throws; any
// thread may call any function here at once. The HTTPS server, the AdmissionReview wrapper,
// metrics and logs build on this and hold no decision logic of their own.
//
// decide() in order (the first rule that answers wins):
//  1. Excluded: the pod's namespace is in Policy::excludedNamespaces, or the pod carries the
//     label Policy::optOutLabel with the value "skip": allowed, reason Excluded, nothing else
//     checked, no warning, no audit annotation (whatever the mode).
//  2. ChannelInactive: the pod has a channel (ChannelInfo given) whose state is Inactive and
//     that is not restoring (ChannelInfo::restoring: the operator announces a restore before it
//     scales the workloads up, so the pods the restore creates find the channel still Inactive
//     and must not be refused). The message says at which level and load it was shut down
//     and, when resumeBelow is known, under what load it comes back: "channel shop/batch is
//     shut down at level critical (load 0.93); it comes back when the load stays below 0.75".
//  3. BufferExhausted: the channel is at an elevated level (ChannelInfo::elevated), is not
//     restoring (a restore brings back what the channel had; it is not growth), its remaining
//     buffer is known, and the pod's cpu or memory request is larger than what remains of that
//     resource (a resource the buffer does not bound is not checked; a negative remainder
//     counts as 0). The message names each resource, the request, the remainder and the
//     excess. The remainder is ChannelInfo::bufferRemaining as the caller gives it (the webhook
//     subtracts what it has reserved for pods admitted but not yet counted by the operator);
//     when ChannelInfo::reserved holds pods, the message ends with "; 5 pods admitted but not
//     yet counted by the operator hold cpu 500m, memory 0". A restoring channel's pods go on to
//     the node checks below like any other pod.
//  4. NoCandidateNode: no node can host the pod (see "Candidate nodes"). The message counts the
//     nodes each constraint eliminated, naming the first untolerated taint, e.g. "no candidate
//     node among 5 nodes: 1 unschedulable, 2 not matching the nodeSelector, 2 with an
//     untolerated taint (dedicated=gpu:NoSchedule)".
//  5. Passed: some candidate with data passes every gate for the pod (see "Gates"); `node` is
//     the first such candidate in the order of `nodes` (the scan stops there). When that node's
//     forecast expects trouble soon on a resource the pod uses (ResourceView::secondsToTrouble
//     below Policy::troubleWarningSeconds: cpu from "cpu" and "psi_cpu", memory from "memory" and
//     "psi_memory", gpu from the "gpuN_sm" signals), the pod is admitted with the warning
//     "pi0: node worker-3 expects cpu trouble in 12 s" (several resources in one warning,
//     soonest first; "now" when the forecast is at its trouble line already).
//  6. GatesFailed: no candidate passes, and some candidate with data failed its gates or some
//     candidate's agent is Failed (fleet::NodeHealth::kFailed: a failed node passes no gate,
//     whatever Policy::stale says; failed is not stale). `node` is the closest candidate: among
//     those with data, fewest failing gates, then smallest total excess, then first in `nodes`;
//     only when none has data, the first whose agent failed. `failures` are the closest node's
//     failing gates (empty for a failed agent). The message names them with values and
//     thresholds: "no node passes the gates for cpu 500m, memory 1Gi: closest node-b: cpu
//     fit_error 0.18 > 0.10, memory isolation 0.21 < 0.27 (request 0.22 + margin 0.05)", adding
//     "; 1 candidate node's agent failed (worker-2: connection refused)" ("2 candidate nodes'
//     agents failed (first worker-2: ...)") when agents failed too; or, with no data anywhere,
//     "no node passes the gates for cpu 500m, memory 1Gi: worker-2 agent failed: connection
//     refused; 1 more candidate node's agent failed" (the failed poll's error, when there is
//     one). When some candidates had no data, it adds "; 2 candidate nodes had no fresh data".
//     Numbers are printed with two decimals, more when two decimals would print a failing value
//     equal to its threshold.
//  7. StaleData: candidates exist but none has data and no candidate's agent is Failed (data
//     missing, older than staleAfter, or without gate metrics). Policy::stale decides: kAllow
//     admits with the warning "admitted without gate checks: no fresh fleet data for 3
//     candidate nodes"; kDeny refuses with that explanation.
//
// Candidate nodes (the scheduler's filters that do not depend on other pods), each node
// counted under the first of these that eliminates it:
//  - spec.nodeName set: only the node of that name; unschedulable and taints are then not
//    checked (the kubelet, not the scheduler, runs such a pod and does not check them).
//  - unschedulable (spec.unschedulable) unless the pod tolerates the taint the scheduler uses
//    for it, node.kubernetes.io/unschedulable:NoSchedule (as DaemonSet pods do).
//  - nodeSelector: every key present in the node's labels with the same value.
//  - required node affinity: the terms are ORed, a term's matchExpressions and matchFields are
//    ANDed; a term with neither matches no node. In: the label is present with one of the
//    values; NotIn: absent or none of the values; Exists / DoesNotExist; Gt / Lt: the label is
//    present and, read as an integer, greater / less than the single value (a label that is
//    not an integer does not match). matchFields support only metadata.name (the node name).
//  - taints: every taint of effect NoSchedule or NoExecute is tolerated (PreferNoSchedule
//    never eliminates). A toleration tolerates a taint when its effect is empty or equal, its
//    key is empty or equal, and its operator is Exists, or Equal (the default) with an equal
//    value; so an empty key with Exists tolerates every taint.
//  - allocatable: a request larger than the node's allocatable cpu, memory or GPUs (what the
//    scheduler's resource fit would refuse even on an empty node).
//
// Data: a candidate whose agent is Failed is a failing candidate (rule 6), never one without
// data. Another candidate has data when the fleet snapshot has a status for it that is usable
// at `now` (FleetSnapshot::isUsable: a fingerprint fetched within staleAfter; a Suspect node's
// fresh data counts) and the fingerprint has gate metrics for every signal the pod's resources need
// ("cpu", "memory", and for a GPU pod at least one "gpuN_sm"; the window must be full). A PSI
// signal the fingerprint does not have (a kernel without PSI) skips the PSI gate rather than taking
// the node's data away.
//
// Gates (DESIGN.md "Gate metrics"): a candidate with data passes when, on every resource the
// pod uses, fit_error ≤ θ_fit, gluing_delta ≤ θ_glue, PSI ≤ θ_psi (where there is PSI) and
// isolation ≥ request/allocatable + θ_iso. cpu and memory are always used (a pod with no
// requests uses them with request 0: only the margin θ_iso is asked for); the GPU only when
// nvidia.com/gpu is requested. A resource's gate metrics and PSI are its fleet::ResourceView's
// (fleet/resource_view.h), the same view the cluster load reads:
//  - cpu: the "cpu" signal's gate metrics; PSI is the highest value the kernel's average of
//    "psi_cpu" reaches within Policy::psiLeadSeconds as the signal's stall rate carries it,
//    never below its current value (the current value where it has no forecast, and with a
//    lead of 0; fleet::ResourceView::pressureWithin). A failure the forecast made says so:
//    "cpu psi 0.27 > 0.25 (expected within 10 s, 0.12 now)".
//  - memory: the "memory" signal; PSI "psi_memory".
//  - gpu: the node's GPUs form one pool, as its CPUs do: each gate metric of the pool is the
//    MEAN over the node's "gpuN_sm" signals (as the cluster load takes the mean projected peak),
//    request/allocatable is the requested GPUs over the node's allocatable nvidia.com/gpu, and
//    there is no PSI gate. So a pod asking for g GPUs passes the isolation gate when the
//    projected free GPU capacity Σ isolation_i covers g plus the margin θ_iso per GPU. (A
//    gate per device cannot work: a whole device asked for is a request of 1/1, and isolation
//    ≥ 1 + θ_iso is never true.)
//
// Modes: the namespace's mode (the caller reads the namespace label) or else Policy::mode.
// Enforce answers the verdict. Warn admits what the verdict denies, with the deny message as
// a warning. DryRun admits everything, with no warning at all (not even StaleData's); the
// verdict goes into auditAnnotations. Decision::reason is always the verdict's reason.
//
// Warnings are at most kMaxWarningChars characters (UTF-8 code points); a longer one is cut
// and ends with "...".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/review.h"
#include "common/clock.h"
#include "common/result.h"
#include "fleet/fleet_view.h"
#include "fleet/load.h"
#include "kube/resource_list.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::admission {

inline constexpr std::string_view kUnschedulableTaintKey = "node.kubernetes.io/unschedulable";

// --- The pod -----------------------------------------------------------------------------------

enum class SelectorOperator { kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
const char* selectorOperatorName(SelectorOperator op);  // "In", "NotIn", ...

struct NodeSelectorRequirement {
  std::string key;  // a label key; in matchFields always "metadata.name"
  SelectorOperator op = SelectorOperator::kIn;
  std::vector<std::string> values;
  std::int64_t number = 0;  // Gt and Lt: the single value, parsed
  friend bool operator==(const NodeSelectorRequirement&, const NodeSelectorRequirement&) = default;
};

// One of requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.
struct NodeSelectorTerm {
  std::vector<NodeSelectorRequirement> matchExpressions;  // on node labels
  std::vector<NodeSelectorRequirement> matchFields;       // on metadata.name
  friend bool operator==(const NodeSelectorTerm&, const NodeSelectorTerm&) = default;
};

enum class TaintEffect { kNoSchedule, kPreferNoSchedule, kNoExecute };
const char* taintEffectName(TaintEffect effect);  // "NoSchedule", ...

struct Toleration {
  std::string key;                    // empty: every key (with Exists)
  bool exists = false;                // operator Exists; false: Equal (the default)
  std::string value;                  // compared under Equal
  std::optional<TaintEffect> effect;  // nullopt: every effect
  friend bool operator==(const Toleration&, const Toleration&) = default;
};

// What admission needs of a Pod. Requests are the pod's effective requests, as the scheduler
// computes them (kube::podRequests(), the formula the operator counts buffers with).
struct PodRequest {
  std::string ns;  // metadata.namespace; empty in a CREATE's object: the caller sets it
  std::string name;
  std::string generateName;
  // metadata.uid: the apiserver sets it before admission runs; what the truth ledger joins a
  // decision's outcomes on. Empty when absent.
  std::string uid;
  // The controlling owner (the ownerReferences entry with controller: true): "ReplicaSet",
  // "web-7d9f"; empty for a bare pod.
  std::string ownerKind;
  std::string ownerName;
  std::map<std::string, std::string> labels;
  std::string nodeName;  // spec.nodeName; usually empty on CREATE
  std::map<std::string, std::string> nodeSelector;
  // Absent: no required node affinity. Present: the node must match one term (an empty list
  // matches no node; the apiserver refuses one before admission anyway).
  std::optional<std::vector<NodeSelectorTerm>> requiredAffinity;
  std::vector<Toleration> tolerations;
  std::int64_t cpuMilli = 0;
  std::int64_t memoryBytes = 0;
  std::int64_t gpus = 0;  // nvidia.com/gpu, whole devices

  // "ns/name", or "ns/generateName*" for a pod whose name the apiserver has yet to generate.
  std::string displayName() const;
  friend bool operator==(const PodRequest&, const PodRequest&) = default;
};

// From a Pod object as the apiserver sends it in an AdmissionReview. Absent and null fields
// take their defaults. Never throws; a defect is an Error naming the field, e.g.
// "spec.containers[1].resources.requests.cpu: \"5x\" is not a quantity: ...",
// "spec.tolerations[0].operator: unknown operator \"Maybe\"", "spec: missing". Quantities may
// be strings or JSON numbers; negative requests and fractional GPUs are errors.
Result<PodRequest> parsePod(const nlohmann::json& pod);

// The fields of a Pod that parsePod() reads (metadata's namespace, name, generateName, uid,
// labels and ownerReferences;
// spec's nodeName, nodeSelector, required node affinity, tolerations, overhead, and the
// containers' and init containers' requests and restartPolicy), and the same inside an
// AdmissionReview (reviewFields()): parsePod() answers the same for a pod narrowed to them.
const json::Selection& podFields();
const json::Selection& podReviewFields();

// --- The nodes ---------------------------------------------------------------------------------

struct Taint {
  std::string key;
  std::string value;
  TaintEffect effect = TaintEffect::kNoSchedule;
  friend bool operator==(const Taint&, const Taint&) = default;
};

struct NodeInfo {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<Taint> taints;
  bool unschedulable = false;
  std::int64_t cpuMilli = 0;     // status.allocatable.cpu; 0 when absent
  std::int64_t memoryBytes = 0;  // status.allocatable.memory
  std::int64_t gpus = 0;         // status.allocatable["nvidia.com/gpu"]
  friend bool operator==(const NodeInfo&, const NodeInfo&) = default;
};

// From a Node object. Never throws; a defect (no metadata.name, a taint with an unknown effect,
// an allocatable quantity that does not parse) is an Error naming the field.
Result<NodeInfo> parseNode(const nlohmann::json& node);

// --- The channel and the policy ----------------------------------------------------------------

// The pod's channel as the operator last reported it (the caller finds the channel whose
// selector matches the pod, and reads its status and its matrix's). Absent: no channel.
struct ChannelInfo {
  std::string name;  // "ns/name", as messages show it
  stability::ChannelState state = stability::ChannelState::kActive;
  std::string level;                  // the matrix's current level
  double load = 0;                    // the cluster load ℓ at that level
  std::optional<double> resumeBelow;  // the load under which the channel comes back
  std::optional<stability::Resources> bufferRemaining;  // what the channel may still take
  bool elevated = false;  // the level is above the first (the buffer is checked)
  // The operator has announced a restore of the channel or is carrying one out (it says so
  // before it scales the channel's workloads up): its pods are neither ChannelInactive nor
  // checked against the buffer.
  bool restoring = false;
  // When the operator counted the channel's pods into the buffer's `used`
  // (status.buffer.observedAt). decide() does not read it; the webhook's reservations end by it:
  // a pod admitted at t is in every count observed at t + kReservationGrace
  // (buffer_count.h) or later.
  std::optional<std::chrono::system_clock::time_point> bufferObservedAt;
  // What the caller already took off bufferRemaining for pods it admitted and the operator has
  // not counted yet (the webhook's reservations). decide() subtracts nothing itself; it names
  // this in BufferExhausted's message when `pods` > 0.
  struct Reserved {
    std::int64_t cpuMilli = 0;
    std::int64_t memoryBytes = 0;
    std::int64_t pods = 0;
  };
  Reserved reserved;
};

// Whether decide() checks a pod of the channel against its buffer (rule 3): the level is
// elevated, the remainder known, the channel neither restoring nor Inactive.
bool checksBuffer(const ChannelInfo& channel);

// The gate thresholds (DESIGN.md "Gate metrics"); Helm values in the webhook.
struct Thresholds {
  double fitError = 0.10;     // θ_fit: fit_error at most this
  double gluingDelta = 0.15;  // θ_glue: gluing_delta at most this
  double psi = 0.25;          // θ_psi: PSI some avg10 / 100 at most this
  // θ_iso: isolation at least request/allocatable + this. 0.35 keeps admission from filling a
  // node past a projected peak of 0.65, so that it stops at least 0.05 below a first level of
  // 0.7 (the example matrix's) and never fights the shutdown sequence; resource_validation.h
  // refuses a matrix whose first level would leave less (GateMargin).
  double isolation = 0.35;
};

enum class Mode { kEnforce, kWarn, kDryRun };
const char* modeName(Mode mode);  // "Enforce", "Warn", "DryRun"
// "Enforce", "Warn", "DryRun" (as the namespace label and the Helm value spell them).
std::optional<Mode> parseMode(std::string_view text);

// What happens when no candidate node has fresh data.
enum class StalePolicy { kAllow, kDeny };

// The history gate: what the operator leader's fingerprint memory says of a node's state
// (fleet::HistoryVerdict, carried by the fleet feed; none when the webhook polls the agents
// itself). kOff ignores it; kWarn admits as the gates say and warns when the chosen node's state
// is troubled ("pi0: node node-a's state is like past ones that led to trouble (7 of 9, best
// match 0.98)"); kEnforce treats a troubled node as failing a gate: another candidate that
// passes is chosen, and when none does, the pod is denied (GatesFailed) with the verdict in the
// message ("... closest node-a: the history gate: node node-a's state is 0.98 similar to
// node-b's before_trouble state at 2026-12-07T04:10:00Z; 7 of 9 similar states were followed by
// trouble"). Its readings are the node's four gates
// (passed), so calibration, which counts the gates that failed, does not count it.
enum class HistoryGate { kOff, kWarn, kEnforce };

// What the history gate did to one decision: nothing; warned (kWarn: the chosen node's state is
// troubled); steered (kEnforce: a candidate that passed the gates was passed over for its
// history, and another was chosen); denied (kEnforce: every candidate that passed the gates was
// troubled).
enum class HistoryEffect { kNone, kWarned, kSteered, kDenied };
const char* historyEffectName(HistoryEffect effect);  // "none", "warned", "steered", "denied"

struct Policy {
  std::vector<std::string> excludedNamespaces{"kube-system"};
  std::string optOutLabel = "stability.pi0.io/admission";  // the value "skip" opts out
  Mode mode = Mode::kEnforce;
  StalePolicy stale = StalePolicy::kAllow;
  Thresholds thresholds;
  // A Passed pod's node expecting trouble within this many seconds earns a warning; 0 is off.
  double troubleWarningSeconds = 60;
  // The psi gate reads the highest PSI the kernel's average reaches within this many seconds as
  // the node's stall rate carries it, never below PSI now (fleet::ResourceView::pressureWithin);
  // 0 reads PSI now. 10 s is one time constant of the kernel's avg10: a stall rate that will
  // carry the average over the threshold has carried it 63 % of the way by then.
  double psiLeadSeconds = 10;
  HistoryGate history = HistoryGate::kWarn;
};

// --- The decision ------------------------------------------------------------------------------

enum class Reason {
  kPassed,
  kExcluded,
  kChannelInactive,
  kBufferExhausted,
  kNoCandidateNode,
  kStaleData,
  kGatesFailed,
};
// "Passed", "Excluded", "ChannelInactive", "BufferExhausted", "NoCandidateNode", "StaleData",
// "GatesFailed": the machine code for metrics labels, logs and audit annotations.
const char* reasonName(Reason reason);

enum class Gate { kFitError, kGluingDelta, kPsi, kIsolation };
const char* gateName(Gate gate);  // "fit_error", "gluing_delta", "psi", "isolation"

// One failing gate of one node.
struct GateFailure {
  std::string node;
  fleet::Resource resource = fleet::Resource::kCpu;
  Gate gate = Gate::kFitError;
  double value = 0;
  double threshold = 0;     // fit, glue, psi: the maximum; isolation: the minimum
  double requestShare = 0;  // isolation only: request/allocatable (threshold = this + θ_iso)
  // psi only, when the forecast made `value` higher than PSI now: PSI now, and the lead whose
  // forecast `value` is (Policy::psiLeadSeconds).
  std::optional<double> now;
  double leadSeconds = 0;
  // How far past the threshold (> 0).
  double excess() const;
};

// One gate of one node as decide() judged it: what the ledger records of a decision.
struct GateReading {
  fleet::Resource resource = fleet::Resource::kCpu;
  Gate gate = Gate::kFitError;
  double value = 0;
  double threshold = 0;     // fit, glue, psi: the maximum; isolation: the minimum
  double requestShare = 0;  // isolation only: request/allocatable (threshold = this + θ_iso)
  bool passed = true;
  friend bool operator==(const GateReading&, const GateReading&) = default;
};

struct Decision {
  bool allowed = true;  // the answer to send, after the mode
  bool verdict = true;  // what Enforce would answer (the gates' verdict)
  Reason reason = Reason::kPassed;
  Mode mode = Mode::kEnforce;  // the mode applied
  // For a person: why the verdict is a denial (the AdmissionResponse status message under
  // Enforce), or what Excluded/StaleData allowed and why; empty for a plain pass.
  std::string message;
  std::vector<std::string> warnings;  // each at most kMaxWarningChars characters
  // Keys without a prefix (the apiserver prefixes the webhook's name): "mode", "decision"
  // ("allow" or "deny": the verdict), "reason", and "message" for a denial. Filled in DryRun
  // for every decision past the exclusions, and in any mode for a denying verdict.
  std::map<std::string, std::string> auditAnnotations;
  std::string node;  // Passed: the passing node; GatesFailed: the closest; else empty
  std::vector<GateFailure> failures;  // GatesFailed: the closest node's failing gates
  // Passed: every gate of `node`; GatesFailed: of the closest node whose gates were read (none
  // when only failed agents were left). In resource order, then fit_error, gluing_delta, psi
  // (where the node reports pressure), isolation.
  std::vector<GateReading> gates;
  // Nodes that passed the eliminations and were looked at: the scan stops at the first that
  // passes, so for a Passed pod this counts up to the node chosen.
  int candidates = 0;
  HistoryEffect history = HistoryEffect::kNone;  // whatever the mode
};

class NodeTable;  // node_table.h: the nodes, indexed by label

// The decision for `pod` (see the top of this file). `nodes` are the cluster's nodes (their
// order decides ties); `fleet` the fleet view's snapshot, judged at `now`; `channel` the pod's
// channel, if it has one; `namespaceMode` the mode the pod's namespace sets by label, if any.
Decision decide(const PodRequest& pod, const NodeTable& nodes, const fleet::FleetSnapshot& fleet,
                const std::optional<ChannelInfo>& channel, const Policy& policy,
                std::optional<Mode> namespaceMode, Clock::time_point now);
// The same over nodes held by value (tables; builds a NodeTable of them).
Decision decide(const PodRequest& pod, const std::vector<NodeInfo>& nodes,
                const fleet::FleetSnapshot& fleet, const std::optional<ChannelInfo>& channel,
                const Policy& policy, std::optional<Mode> namespaceMode, Clock::time_point now);

// Whether `toleration` tolerates `taint` (Kubernetes' semantics, above).
bool tolerates(const Toleration& toleration, const Taint& taint);
// Whether the node satisfies one required-affinity term: the definition, node at a time, that
// NodeTable::narrow() computes for all nodes at once (its tests compare the two).
bool matchesTerm(const NodeSelectorTerm& term, const NodeInfo& node);
// A label value as Gt and Lt read it: a whole decimal integer, else nullopt.
std::optional<std::int64_t> labelInteger(std::string_view text);

}  // namespace pi0::admission
