#include "admission/pod_decision.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "admission/node_table.h"
#include "common/format.h"
#include "common/json_reader.h"
#include "common/timestamp.h"
#include "kube/quantity.h"
#include "kube/resource_list.h"

namespace pi0::admission {

namespace {

using Json = nlohmann::json;

// --- Reading JSON: every access checks the type first, so nothing here can throw. ---------------

using json::Node;
using json::quote;
using json::Reader;

// The pod and node readers' wording: "spec.nodeSelector: not an object", "metadata: missing".
Reader terseReader() {
  return Reader(": ", Reader::Wording::kNot);
}

// An item of a list, which must be there: a null item is not `type` either.
bool listItem(Reader& r, const Node& node, const char* type) {
  if (!node.present()) r.problem(node, std::string("not ") + type);
  return node.present();
}

// A map of strings (labels, nodeSelector); empty when absent.
std::map<std::string, std::string> stringMap(Reader& r, const Node& node) {
  std::map<std::string, std::string> out;
  if (!r.object(node)) return out;
  for (const auto& [key, value] : node.value->items()) {
    if (!r.expect(node.raw(key), value.is_string(), "a string")) return out;
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

std::optional<SelectorOperator> selectorOperator(const std::string& text) {
  static const std::pair<const char*, SelectorOperator> kOps[] = {
      {"In", SelectorOperator::kIn},         {"NotIn", SelectorOperator::kNotIn},
      {"Exists", SelectorOperator::kExists}, {"DoesNotExist", SelectorOperator::kDoesNotExist},
      {"Gt", SelectorOperator::kGt},         {"Lt", SelectorOperator::kLt}};
  for (const auto& [name, op] : kOps) {
    if (text == name) return op;
  }
  return std::nullopt;
}

// One requirement of a node selector term; `field` for matchFields (metadata.name only).
NodeSelectorRequirement requirement(Reader& r, const Node& node, bool field) {
  NodeSelectorRequirement out;
  if (!listItem(r, node, "an object") || !r.object(node)) return out;
  const Node key = node.child("key");
  out.key = r.string(key);
  if (r.ok() && out.key.empty()) r.problem(key, "missing");
  if (r.ok() && field && out.key != "metadata.name")
    r.problem(key, "unsupported field " + quote(out.key) + " (only metadata.name)");
  const Node op = node.child("operator");
  const std::string opText = r.string(op);
  if (!r.ok()) return out;
  const auto parsed = selectorOperator(opText);
  if (!parsed) {
    r.problem(op, "unknown operator " + quote(opText));
    return out;
  }
  out.op = *parsed;
  const Node values = node.child("values");
  for (const Node& v : r.items(values)) {
    if (!listItem(r, v, "a string")) break;
    out.values.push_back(r.string(v));
  }
  if (r.ok() && (out.op == SelectorOperator::kGt || out.op == SelectorOperator::kLt)) {
    std::optional<std::int64_t> n;
    if (out.values.size() == 1) n = labelInteger(out.values[0]);
    if (!n) r.problem(values, opText + " needs exactly one integer value");
    out.number = n.value_or(0);
  }
  return out;
}

std::vector<NodeSelectorTerm> nodeSelectorTerms(Reader& r, const Node& required) {
  std::vector<NodeSelectorTerm> out;
  if (!r.object(required)) return out;
  for (const Node& t : r.items(required.child("nodeSelectorTerms"))) {
    if (!listItem(r, t, "an object") || !r.object(t)) return out;
    NodeSelectorTerm term;
    for (const bool field : {false, true}) {
      for (const Node& q : r.items(t.child(field ? "matchFields" : "matchExpressions"))) {
        NodeSelectorRequirement req = requirement(r, q, field);
        if (!r.ok()) return out;
        (field ? term.matchFields : term.matchExpressions).push_back(std::move(req));
      }
    }
    out.push_back(std::move(term));
  }
  return out;
}

// A taint's or toleration's effect; nullopt when empty (or unknown: a problem).
std::optional<TaintEffect> taintEffect(Reader& r, const Node& node) {
  const std::string text = r.string(node);
  if (text.empty()) return std::nullopt;
  if (text == "NoSchedule") return TaintEffect::kNoSchedule;
  if (text == "PreferNoSchedule") return TaintEffect::kPreferNoSchedule;
  if (text == "NoExecute") return TaintEffect::kNoExecute;
  r.problem(node, "unknown effect " + quote(text));
  return std::nullopt;
}

Toleration toleration(Reader& r, const Node& t) {
  Toleration out;
  if (!listItem(r, t, "an object") || !r.object(t)) return out;
  out.key = r.string(t.child("key"));
  const std::string op = r.string(t.child("operator"));
  out.value = r.string(t.child("value"));
  r.string(t.child("effect"));  // its type is checked with the others, its value below
  if (!r.ok()) return out;
  if (op == "Exists") {
    out.exists = true;
  } else if (!op.empty() && op != "Equal") {
    r.problem(t.child("operator"), "unknown operator " + quote(op));
    return out;
  }
  out.effect = taintEffect(r, t.child("effect"));
  return out;
}

Taint taint(Reader& r, const Node& t) {
  Taint out;
  if (!listItem(r, t, "an object") || !r.object(t)) return out;
  out.key = r.string(t.child("key"));
  out.value = r.string(t.child("value"));
  const Node effect = t.child("effect");
  r.string(effect);  // its type is checked with the others, its value below
  if (!r.ok()) return out;
  const auto e = taintEffect(r, effect);
  if (r.ok() && !e) r.problem(effect, "missing");
  out.effect = e.value_or(TaintEffect::kNoSchedule);
  return out;
}

// --- Matching ----------------------------------------------------------------------------------

bool contains(const std::vector<std::string>& values, const std::string& v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

bool matchesRequirement(const NodeSelectorRequirement& r, const std::string* value) {
  switch (r.op) {
    case SelectorOperator::kIn:
      return value && contains(r.values, *value);
    case SelectorOperator::kNotIn:
      return !value || !contains(r.values, *value);
    case SelectorOperator::kExists:
      return value != nullptr;
    case SelectorOperator::kDoesNotExist:
      return value == nullptr;
    case SelectorOperator::kGt:
    case SelectorOperator::kLt: {
      if (!value) return false;
      auto n = labelInteger(*value);
      if (!n) return false;
      return r.op == SelectorOperator::kGt ? *n > r.number : *n < r.number;
    }
  }
  return false;
}

// The reasons a node is not a candidate, in the order they are checked.
enum class Elimination {
  kNodeName,
  kUnschedulable,
  kNodeSelector,
  kAffinity,
  kTaint,
  kCpu,
  kMemory,
  kGpu,
  kCount
};

const char* eliminationText(Elimination e) {
  switch (e) {
    case Elimination::kNodeName:
      return "other than the pod's spec.nodeName";
    case Elimination::kUnschedulable:
      return "unschedulable";
    case Elimination::kNodeSelector:
      return "not matching the nodeSelector";
    case Elimination::kAffinity:
      return "not matching the required node affinity";
    case Elimination::kTaint:
      return "with an untolerated taint";
    case Elimination::kCpu:
      return "with too little allocatable cpu";
    case Elimination::kMemory:
      return "with too little allocatable memory";
    case Elimination::kGpu:
      return "with too little allocatable nvidia.com/gpu";
    case Elimination::kCount:
      break;
  }
  return "?";
}

// The first taint of `node` that eliminates it for `pod`, or nullptr.
const Taint* untoleratedTaint(const PodRequest& pod, const NodeInfo& node) {
  for (const Taint& taint : node.taints) {
    if (taint.effect == TaintEffect::kPreferNoSchedule) continue;
    const bool tolerated = std::any_of(pod.tolerations.begin(), pod.tolerations.end(),
                                       [&](const Toleration& t) { return tolerates(t, taint); });
    if (!tolerated) return &taint;
  }
  return nullptr;
}

// The filters NodeTable::narrow() leaves to the node at hand: taints, then allocatable.
std::optional<Elimination> eliminate(const PodRequest& pod, const NodeInfo& node,
                                     const Taint** taint) {
  if (pod.nodeName.empty()) {
    if (const Taint* t = untoleratedTaint(pod, node)) {
      *taint = t;
      return Elimination::kTaint;
    }
  }
  if (pod.cpuMilli > node.cpuMilli) return Elimination::kCpu;
  if (pod.memoryBytes > node.memoryBytes) return Elimination::kMemory;
  if (pod.gpus > node.gpus) return Elimination::kGpu;
  return std::nullopt;
}

// --- Gates -------------------------------------------------------------------------------------

std::int64_t requestOf(const PodRequest& pod, fleet::Resource r) {
  switch (r) {
    case fleet::Resource::kCpu:
      return pod.cpuMilli;
    case fleet::Resource::kMemory:
      return pod.memoryBytes;
    case fleet::Resource::kGpu:
      return pod.gpus;
  }
  return 0;
}

std::int64_t allocatableOf(const NodeInfo& node, fleet::Resource r) {
  switch (r) {
    case fleet::Resource::kCpu:
      return node.cpuMilli;
    case fleet::Resource::kMemory:
      return node.memoryBytes;
    case fleet::Resource::kGpu:
      return node.gpus;
  }
  return 0;
}

std::vector<fleet::Resource> resourcesUsed(const PodRequest& pod) {
  std::vector<fleet::Resource> out{fleet::Resource::kCpu, fleet::Resource::kMemory};
  if (pod.gpus > 0) out.push_back(fleet::Resource::kGpu);
  return out;
}

// Calls visit(resource, gate, value, threshold, requestShare, passed, now) for every gate of the
// node that the pod meets (a resource's psi gate only where the node reports pressure: its value
// the PSI expected within `psiLead` seconds, `now` PSI now; `now` is `value` for the others);
// false, and no call, when the node has no data for the pod.
// Inlined into both callers: the scan over candidates calls it once per node.
template <class Visit>
[[gnu::always_inline]] inline bool visitGates(const PodRequest& pod, const NodeInfo& node,
                                              const fleet::NodeFingerprint& fp,
                                              const std::vector<fleet::Resource>& used,
                                              const Thresholds& th, double psiLead, Visit&& visit) {
  // No data for one resource the pod uses: no data for the pod.
  fleet::ResourceView views[3];
  for (std::size_t i = 0; i < used.size(); ++i) {
    views[i] = fleet::resourceView(fp, used[i]);
    if (!views[i].gates) return false;
  }
  for (std::size_t i = 0; i < used.size(); ++i) {
    const fleet::Resource r = used[i];
    const fleet::SignalGates& gates = *views[i].gates;
    visit(r, Gate::kFitError, gates.fitError, th.fitError, 0.0, !(gates.fitError > th.fitError),
          gates.fitError);
    visit(r, Gate::kGluingDelta, gates.gluingDelta, th.gluingDelta, 0.0,
          !(gates.gluingDelta > th.gluingDelta), gates.gluingDelta);
    if (const std::optional<double> psi = views[i].pressureWithin(psiLead))
      visit(r, Gate::kPsi, *psi, th.psi, 0.0, !(*psi > th.psi), *views[i].pressure);
    const std::int64_t alloc = allocatableOf(node, r);
    // A request larger than allocatable was eliminated before; alloc 0 here means request 0.
    const double share =
        alloc > 0 ? static_cast<double>(requestOf(pod, r)) / static_cast<double>(alloc) : 0.0;
    visit(r, Gate::kIsolation, gates.isolation, share + th.isolation, share,
          !(gates.isolation < share + th.isolation), gates.isolation);
  }
  return true;
}

// The node's failing gates into `failures` (cleared first; the node's name is left for the
// caller to fill in, so that the scan over candidates allocates nothing); false when the node
// has no data for the pod.
bool evaluate(const PodRequest& pod, const NodeInfo& node, const fleet::NodeFingerprint& fp,
              const std::vector<fleet::Resource>& used, const Thresholds& th, double psiLead,
              std::vector<GateFailure>& failures) {
  failures.clear();
  return visitGates(pod, node, fp, used, th, psiLead,
                    [&](fleet::Resource r, Gate gate, double value, double threshold, double share,
                        bool passed, double now) {
                      if (passed) return;
                      failures.push_back(GateFailure{{}, r, gate, value, threshold, share});
                      // The forecast made it fail (or fail by more): say so, with PSI now.
                      if (value > now) {
                        failures.back().now = now;
                        failures.back().leadSeconds = psiLead;
                      }
                    });
}

// Every gate of the node as judged (see Decision::gates).
std::vector<GateReading> readings(const PodRequest& pod, const NodeInfo& node,
                                  const fleet::NodeFingerprint& fp,
                                  const std::vector<fleet::Resource>& used, const Thresholds& th,
                                  double psiLead) {
  std::vector<GateReading> out;
  visitGates(pod, node, fp, used, th, psiLead,
             [&](fleet::Resource r, Gate gate, double value, double threshold, double share,
                 bool passed, double) {
               out.push_back({r, gate, value, threshold, share, passed});
             });
  return out;
}

// --- Messages ----------------------------------------------------------------------------------

// Two decimals, or more when two would print a failing value and its threshold alike.
int decimalsFor(double a, double b) {
  int d = 2;
  while (d < 6 && fixed(a, d) == fixed(b, d))
    ++d;
  return d;
}

const char* resourceLabel(fleet::Resource r) {
  switch (r) {
    case fleet::Resource::kCpu:
      return "cpu";
    case fleet::Resource::kMemory:
      return "memory";
    case fleet::Resource::kGpu:
      return "gpu";
  }
  return "?";
}

std::string describe(const GateFailure& f) {
  const int d = decimalsFor(f.value, f.threshold);
  std::string s = std::string(resourceLabel(f.resource)) + " " + gateName(f.gate) + " " +
                  fixed(f.value, d) + (f.gate == Gate::kIsolation ? " < " : " > ") +
                  fixed(f.threshold, d);
  if (f.gate == Gate::kIsolation) {
    s += " (request " + fixed(f.requestShare, d) + " + margin " +
         fixed(f.threshold - f.requestShare, d) + ")";
  }
  if (f.now) {
    s += " (expected within " + std::to_string(static_cast<long long>(std::lround(f.leadSeconds))) +
         " s, " + fixed(*f.now, d) + " now)";
  }
  return s;
}

std::string describeRequests(const PodRequest& pod) {
  std::string s = "cpu " + kube::formatCpuMilli(pod.cpuMilli) + ", memory " +
                  kube::formatBytes(pod.memoryBytes);
  if (pod.gpus > 0) s += ", nvidia.com/gpu " + std::to_string(pod.gpus);
  return s;
}

std::string nodes(int n) {
  return std::to_string(n) + (n == 1 ? " node" : " nodes");
}

std::string candidateNodes(int n) {
  return std::to_string(n) + (n == 1 ? " candidate node" : " candidate nodes");
}

std::string taintText(const Taint& t) {
  return t.key + (t.value.empty() ? "" : "=" + t.value) + ":" + taintEffectName(t.effect);
}

// "worker-2: connection refused", or "worker-2" when the last poll left no error.
std::string agentError(const std::string& node, const fleet::NodeStatus& status) {
  return status.lastError.empty() ? node : node + ": " + status.lastError;
}

// The verdict before the mode is applied.
struct Verdict {
  bool allowed = true;
  Reason reason = Reason::kPassed;
  std::string message;
  std::vector<std::string> warnings;
  std::string node;
  std::vector<GateFailure> failures;
  std::vector<GateReading> gates;  // of `node`, where its gates were read
  int candidates = 0;
};

std::optional<Verdict> channelVerdict(const PodRequest& pod, const ChannelInfo& c) {
  // A restore brings back what the channel had: neither shut down nor growth.
  if (c.restoring) return std::nullopt;
  if (c.state == stability::ChannelState::kInactive) {
    std::string m = "channel " + c.name + " is shut down";
    if (!c.level.empty()) m += " at level " + c.level + " (load " + fixed(c.load, 2) + ")";
    m += "; it comes back when ";
    m += c.resumeBelow ? "the load stays below " + fixed(*c.resumeBelow, 2)
                       : std::string("the operator restores it");
    return Verdict{false, Reason::kChannelInactive, std::move(m), {}, {}, {}, {}, 0};
  }
  if (!checksBuffer(c)) return std::nullopt;
  std::vector<std::string> over;
  if (c.bufferRemaining->cpuMilli) {
    const std::int64_t left = std::max<std::int64_t>(0, *c.bufferRemaining->cpuMilli);
    if (pod.cpuMilli > left) {
      over.push_back("cpu " + kube::formatCpuMilli(pod.cpuMilli) + " > " +
                     kube::formatCpuMilli(left) + " remaining (by " +
                     kube::formatCpuMilli(pod.cpuMilli - left) + ")");
    }
  }
  if (c.bufferRemaining->memoryBytes) {
    const std::int64_t left = std::max<std::int64_t>(0, *c.bufferRemaining->memoryBytes);
    if (pod.memoryBytes > left) {
      over.push_back("memory " + kube::formatBytes(pod.memoryBytes) + " > " +
                     kube::formatBytes(left) + " remaining (by " +
                     kube::formatBytes(pod.memoryBytes - left) + ")");
    }
  }
  if (over.empty()) return std::nullopt;
  std::string m = "channel " + c.name + "'s buffer is exhausted at level " + c.level + " (load " +
                  fixed(c.load, 2) + "): ";
  for (std::size_t i = 0; i < over.size(); ++i)
    m += (i ? ", " : "") + over[i];
  // Without this, a denial would contradict the Channel's status, which shows room left.
  if (c.reserved.pods > 0) {
    const bool one = c.reserved.pods == 1;
    m += "; " + std::to_string(c.reserved.pods) + (one ? " pod" : " pods") +
         " admitted but not yet counted by the operator " + (one ? "holds" : "hold") + " cpu " +
         kube::formatCpuMilli(c.reserved.cpuMilli) + ", memory " +
         kube::formatBytes(c.reserved.memoryBytes);
  }
  return Verdict{false, Reason::kBufferExhausted, std::move(m), {}, {}, {}, {}, 0};
}

double totalExcess(const std::vector<GateFailure>& failures) {
  double sum = 0;
  for (const auto& f : failures)
    sum += f.excess();
  return sum;
}

// "pi0: node worker-3 expects cpu trouble in 12 s, memory trouble in 40 s" for the resources the
// pod uses whose trouble the node's forecast expects within `withinSeconds`; nullopt when none.
std::optional<std::string> troubleWarning(const std::string& node,
                                          const fleet::NodeFingerprint& fingerprint,
                                          const std::vector<fleet::Resource>& used,
                                          double withinSeconds) {
  if (!(withinSeconds > 0)) return std::nullopt;
  std::vector<std::pair<double, fleet::Resource>> soon;
  for (fleet::Resource r : used) {
    const std::optional<double> seconds = fleet::resourceView(fingerprint, r).secondsToTrouble;
    if (seconds && *seconds < withinSeconds) soon.emplace_back(*seconds, r);
  }
  if (soon.empty()) return std::nullopt;
  std::stable_sort(soon.begin(), soon.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string w = "pi0: node " + node + " expects ";
  for (std::size_t i = 0; i < soon.size(); ++i) {
    const auto& [seconds, r] = soon[i];
    w += (i ? ", " : "") + std::string(fleet::resourceName(r)) + " trouble ";
    // Whole seconds, rounded up: "in 0 s" would read as "now".
    w += seconds <= 0 ? std::string("now")
                      : "in " + std::to_string(static_cast<long long>(std::ceil(seconds))) + " s";
  }
  return w;
}

// The history gate's words for a node whose state the memory calls troubled.
std::string historyText(const std::string& node, const fleet::HistoryVerdict& h) {
  std::string s = "node " + node + "'s state is " + fixed(h.similarity) + " similar to ";
  s += (h.matchNode == node ? std::string("its own") : h.matchNode + "'s") + " " + h.matchLabel +
       " state at " + rfc3339(h.matchAt, 0) + "; " + std::to_string(h.troubleMatches) + " of " +
       std::to_string(h.matches) + " similar states were followed by trouble";
  return s;
}

// The same, short enough for a warning (kMaxWarningChars).
std::string historyWarning(const std::string& node, const fleet::HistoryVerdict& h) {
  return "pi0: node " + node + "'s state is like past ones that led to trouble (" +
         std::to_string(h.troubleMatches) + " of " + std::to_string(h.matches) + ", best match " +
         fixed(h.similarity) + ")";
}

bool historyTroubled(const fleet::NodeFingerprint& fingerprint) {
  return fingerprint.history && fingerprint.history->troubled;
}

Verdict nodeVerdict(const PodRequest& pod, const NodeTable& table,
                    const fleet::FleetSnapshot& fleet, const Policy& policy, Clock::time_point now,
                    HistoryEffect& history) {
  const std::vector<fleet::Resource> used = resourcesUsed(pod);
  const NodeTable::Narrowed narrowed = table.narrow(pod);
  int eliminated[static_cast<int>(Elimination::kCount)] = {};
  eliminated[static_cast<int>(Elimination::kNodeName)] = narrowed.nodeName;
  eliminated[static_cast<int>(Elimination::kUnschedulable)] = narrowed.unschedulable;
  eliminated[static_cast<int>(Elimination::kNodeSelector)] = narrowed.nodeSelector;
  eliminated[static_cast<int>(Elimination::kAffinity)] = narrowed.affinity;
  const Taint* firstTaint = nullptr;
  int candidates = 0, withoutData = 0, agentFailed = 0;
  const NodeInfo* firstFailed = nullptr;  // the first candidate whose agent is Failed
  const fleet::NodeStatus* firstFailedStatus = nullptr;
  const NodeInfo* closest = nullptr;
  const fleet::NodeFingerprint* closestFingerprint = nullptr;
  std::vector<GateFailure> closestFailures, failures;
  const NodeInfo* passed = nullptr;
  const fleet::NodeFingerprint* passedFingerprint = nullptr;
  // HistoryGate::kEnforce: the first candidate that passed the gates but whose state the memory
  // calls troubled.
  const NodeInfo* historyBlocked = nullptr;
  const fleet::NodeFingerprint* historyFingerprint = nullptr;

  narrowed.rest.forEach([&](std::size_t i) {
    const NodeInfo& node = table[i];
    const Taint* taint = nullptr;
    if (auto e = eliminate(pod, node, &taint)) {
      ++eliminated[static_cast<int>(*e)];
      if (taint && !firstTaint) firstTaint = taint;
      return true;
    }
    ++candidates;
    const fleet::NodeStatus* status = fleet.find(node.name);
    // Failed is not stale (DESIGN.md): the agent stopped answering, so the node passes no gate,
    // whatever the stale policy and however fresh its last fingerprint.
    if (status && status->health == fleet::NodeHealth::kFailed) {
      if (agentFailed++ == 0) {
        firstFailed = &node;
        firstFailedStatus = status;
      }
      return true;
    }
    if (!status || !fleet.isUsable(*status, now)) {
      ++withoutData;
      return true;
    }
    if (!evaluate(pod, node, *status->fingerprint, used, policy.thresholds, policy.psiLeadSeconds,
                  failures)) {
      ++withoutData;
      return true;
    }
    if (failures.empty()) {
      if (policy.history == HistoryGate::kEnforce && historyTroubled(*status->fingerprint)) {
        if (!historyBlocked) {
          historyBlocked = &node;
          historyFingerprint = status->fingerprint.get();
        }
        return true;
      }
      passed = &node;
      passedFingerprint = status->fingerprint.get();
      return false;
    }
    const bool better = !closest || failures.size() < closestFailures.size() ||
                        (failures.size() == closestFailures.size() &&
                         totalExcess(failures) < totalExcess(closestFailures));
    if (better) {
      closest = &node;
      closestFingerprint = status->fingerprint.get();
      closestFailures.swap(failures);
    }
    return true;
  });
  if (passed) {
    Verdict v{
        true,
        Reason::kPassed,
        {},
        {},
        passed->name,
        {},
        readings(pod, *passed, *passedFingerprint, used, policy.thresholds, policy.psiLeadSeconds),
        candidates};
    if (auto w =
            troubleWarning(passed->name, *passedFingerprint, used, policy.troubleWarningSeconds)) {
      v.warnings.push_back(std::move(*w));
    }
    if (policy.history == HistoryGate::kWarn && historyTroubled(*passedFingerprint)) {
      v.warnings.push_back(historyWarning(passed->name, *passedFingerprint->history));
      history = HistoryEffect::kWarned;
    }
    if (historyBlocked) history = HistoryEffect::kSteered;
    return v;
  }
  // Nodes that passed every gate but the history gate: the first is the closest of all.
  if (historyBlocked) {
    history = HistoryEffect::kDenied;
    std::string m = "no node passes the gates for " + describeRequests(pod) + ": closest " +
                    historyBlocked->name + ": the history gate: " +
                    historyText(historyBlocked->name, *historyFingerprint->history);
    return Verdict{false,
                   Reason::kGatesFailed,
                   std::move(m),
                   {},
                   historyBlocked->name,
                   {},
                   readings(pod, *historyBlocked, *historyFingerprint, used, policy.thresholds,
                            policy.psiLeadSeconds),
                   candidates};
  }
  for (auto& f : closestFailures)
    f.node = closest->name;

  if (candidates == 0) {
    std::string m;
    if (table.size() == 0) {
      m = "no candidate node: the cluster has no nodes";
    } else {
      m = "no candidate node among " + nodes(static_cast<int>(table.size())) + ":";
      bool first = true;
      for (int i = 0; i < static_cast<int>(Elimination::kCount); ++i) {
        if (eliminated[i] == 0) continue;
        const auto e = static_cast<Elimination>(i);
        m += (first ? " " : ", ") + std::to_string(eliminated[i]) + " " + eliminationText(e);
        if (e == Elimination::kTaint && firstTaint) m += " (" + taintText(*firstTaint) + ")";
        first = false;
      }
    }
    return Verdict{false, Reason::kNoCandidateNode, std::move(m), {}, {}, {}, {}, 0};
  }

  if (!closest && agentFailed == 0) {
    const std::string why = "no fresh fleet data for " + candidateNodes(withoutData);
    if (policy.stale == StalePolicy::kAllow) {
      return Verdict{true,
                     Reason::kStaleData,
                     "admitted without gate checks: " + why,
                     {"admitted without gate checks: " + why},
                     {},
                     {},
                     {},
                     candidates};
    }
    return Verdict{false, Reason::kStaleData, why + "; the policy denies without data", {}, {}, {},
                   {},    candidates};
  }

  // A node whose gates were measured is closer than one whose agent failed: its failures say
  // more about what the pod would meet.
  std::string m = "no node passes the gates for " + describeRequests(pod) + ": ";
  if (closest) {
    m += "closest " + closest->name + ": ";
    for (std::size_t i = 0; i < closestFailures.size(); ++i)
      m += (i ? ", " : "") + describe(closestFailures[i]);
    if (agentFailed > 0) {
      m += "; " + candidateNodes(agentFailed) + (agentFailed == 1 ? "'s agent" : "' agents") +
           " failed (" + (agentFailed == 1 ? "" : "first ") +
           agentError(firstFailed->name, *firstFailedStatus) + ")";
    }
  } else {
    closest = firstFailed;
    m += firstFailed->name + " agent failed";
    if (!firstFailedStatus->lastError.empty()) m += ": " + firstFailedStatus->lastError;
    if (agentFailed > 1) {
      m += "; " + std::to_string(agentFailed - 1) + " more " +
           (agentFailed == 2 ? "candidate node's agent" : "candidate nodes' agents") + " failed";
    }
  }
  if (withoutData > 0) {
    m += "; " + candidateNodes(withoutData) + (withoutData == 1 ? " has" : " had") +
         " no fresh data";
  }
  // The closest node's gates, where they were read (not for a node whose agent failed).
  std::vector<GateReading> gates;
  if (closestFingerprint)
    gates = readings(pod, *closest, *closestFingerprint, used, policy.thresholds,
                     policy.psiLeadSeconds);
  return Verdict{false,         Reason::kGatesFailed,       std::move(m),     {},
                 closest->name, std::move(closestFailures), std::move(gates), candidates};
}

bool excluded(const PodRequest& pod, const Policy& policy, std::string* why) {
  if (contains(policy.excludedNamespaces, pod.ns)) {
    *why = "namespace " + pod.ns + " is excluded from admission";
    return true;
  }
  if (!policy.optOutLabel.empty()) {
    auto it = pod.labels.find(policy.optOutLabel);
    if (it != pod.labels.end() && it->second == "skip") {
      *why = "the pod opts out with the label " + policy.optOutLabel + "=skip";
      return true;
    }
  }
  return false;
}

}  // namespace

// --- Public ------------------------------------------------------------------------------------

const char* selectorOperatorName(SelectorOperator op) {
  switch (op) {
    case SelectorOperator::kIn:
      return "In";
    case SelectorOperator::kNotIn:
      return "NotIn";
    case SelectorOperator::kExists:
      return "Exists";
    case SelectorOperator::kDoesNotExist:
      return "DoesNotExist";
    case SelectorOperator::kGt:
      return "Gt";
    case SelectorOperator::kLt:
      return "Lt";
  }
  return "?";
}

const char* taintEffectName(TaintEffect effect) {
  switch (effect) {
    case TaintEffect::kNoSchedule:
      return "NoSchedule";
    case TaintEffect::kPreferNoSchedule:
      return "PreferNoSchedule";
    case TaintEffect::kNoExecute:
      return "NoExecute";
  }
  return "?";
}

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::kEnforce:
      return "Enforce";
    case Mode::kWarn:
      return "Warn";
    case Mode::kDryRun:
      return "DryRun";
  }
  return "?";
}

std::optional<Mode> parseMode(std::string_view text) {
  if (text == "Enforce") return Mode::kEnforce;
  if (text == "Warn") return Mode::kWarn;
  if (text == "DryRun") return Mode::kDryRun;
  return std::nullopt;
}

const char* historyEffectName(HistoryEffect effect) {
  switch (effect) {
    case HistoryEffect::kNone:
      return "none";
    case HistoryEffect::kWarned:
      return "warned";
    case HistoryEffect::kSteered:
      return "steered";
    case HistoryEffect::kDenied:
      return "denied";
  }
  return "none";
}

const char* reasonName(Reason reason) {
  switch (reason) {
    case Reason::kPassed:
      return "Passed";
    case Reason::kExcluded:
      return "Excluded";
    case Reason::kChannelInactive:
      return "ChannelInactive";
    case Reason::kBufferExhausted:
      return "BufferExhausted";
    case Reason::kNoCandidateNode:
      return "NoCandidateNode";
    case Reason::kStaleData:
      return "StaleData";
    case Reason::kGatesFailed:
      return "GatesFailed";
  }
  return "?";
}

const char* gateName(Gate gate) {
  switch (gate) {
    case Gate::kFitError:
      return "fit_error";
    case Gate::kGluingDelta:
      return "gluing_delta";
    case Gate::kPsi:
      return "psi";
    case Gate::kIsolation:
      return "isolation";
  }
  return "?";
}

bool checksBuffer(const ChannelInfo& c) {
  return c.elevated && c.bufferRemaining && !c.restoring &&
         c.state != stability::ChannelState::kInactive;
}

double GateFailure::excess() const {
  return gate == Gate::kIsolation ? threshold - value : value - threshold;
}

std::string PodRequest::displayName() const {
  return ns + "/" + (name.empty() ? generateName + "*" : name);
}

Result<PodRequest> parsePod(const nlohmann::json& pod) {
  if (!pod.is_object()) return fail("pod: not a JSON object");
  Reader r = terseReader();
  PodRequest out;
  const Node root = Node::root(pod);
  const Node meta = root.child("metadata");
  if (!meta.present()) return fail("metadata: missing");
  if (!r.object(meta)) return fail(r.error());
  out.ns = r.string(meta.child("namespace"));
  out.name = r.string(meta.child("name"));
  out.generateName = r.string(meta.child("generateName"));
  out.uid = r.string(meta.child("uid"));
  out.labels = stringMap(r, meta.child("labels"));
  for (const Node& owner : r.items(meta.child("ownerReferences"))) {
    if (!r.object(owner) || !r.boolean(owner.child("controller"), false)) continue;
    out.ownerKind = r.string(owner.child("kind"));
    out.ownerName = r.string(owner.child("name"));
    break;
  }

  const Node spec = root.child("spec");
  if (!spec.present()) r.problem(spec, "missing");
  if (!r.ok() || !r.object(spec)) return fail(r.error());
  out.nodeName = r.string(spec.child("nodeName"));
  out.nodeSelector = stringMap(r, spec.child("nodeSelector"));
  const Node affinity = spec.child("affinity");
  if (r.object(affinity)) {
    const Node na = affinity.child("nodeAffinity");
    if (r.object(na)) {
      const Node required = na.child("requiredDuringSchedulingIgnoredDuringExecution");
      if (required.present()) out.requiredAffinity = nodeSelectorTerms(r, required);
    }
  }
  for (const Node& t : r.items(spec.child("tolerations"))) {
    Toleration toler = toleration(r, t);
    if (!r.ok()) break;
    out.tolerations.push_back(std::move(toler));
  }
  if (!r.ok()) return fail(r.error());

  auto requests = kube::podRequests(*spec.value);
  if (!requests) return std::unexpected(requests.error());
  out.cpuMilli = requests->cpuMilli;
  out.memoryBytes = requests->memoryBytes;
  out.gpus = requests->gpus;
  return out;
}

const json::Selection& podFields() {
  static const json::Selection fields = [] {
    using S = json::Selection;
    auto only = [](std::initializer_list<const char*> names) {
      S s;
      for (const char* n : names)
        s.members.push_back({n, {}});
      return s;
    };
    S container{{{"resources", S{{{"requests", {}}}}}, {"restartPolicy", {}}}};
    S required{{{"requiredDuringSchedulingIgnoredDuringExecution", {}}}};
    S spec = only({"nodeName", "nodeSelector", "tolerations", "overhead"});
    spec.members.push_back({"affinity", S{{{"nodeAffinity", required}}}});
    spec.members.push_back({"containers", container});
    spec.members.push_back({"initContainers", container});
    S pod;
    S meta = only({"namespace", "name", "generateName", "uid", "labels"});
    meta.members.push_back({"ownerReferences", only({"kind", "name", "controller"})});
    pod.members.push_back({"metadata", std::move(meta)});
    pod.members.push_back({"spec", std::move(spec)});
    return pod;
  }();
  return fields;
}

const json::Selection& podReviewFields() {
  static const json::Selection fields = reviewFields(podFields());
  return fields;
}

Result<NodeInfo> parseNode(const nlohmann::json& node) {
  if (!node.is_object()) return fail("node: not a JSON object");
  Reader r = terseReader();
  NodeInfo out;
  const Node meta = Node::root(node).child("metadata");
  if (!meta.present() || !meta.value->is_object()) return fail("metadata: missing");
  const Node name = meta.child("name");
  out.name = r.string(name);
  if (r.ok() && out.name.empty()) r.problem(name, "missing");
  out.labels = stringMap(r, meta.child("labels"));

  const Node spec = Node::root(node).child("spec");
  if (r.ok() && r.object(spec)) {
    out.unschedulable = r.boolean(spec.child("unschedulable"), false);
    for (const Node& t : r.items(spec.child("taints"))) {
      Taint parsed = taint(r, t);
      if (!r.ok()) break;
      out.taints.push_back(std::move(parsed));
    }
  }
  if (!r.ok()) return fail(r.error());

  auto alloc = kube::nodeAllocatable(node);
  if (!alloc) return std::unexpected(alloc.error());
  out.cpuMilli = alloc->cpuMilli;
  out.memoryBytes = alloc->memoryBytes;
  out.gpus = alloc->gpus;
  return out;
}

std::optional<std::int64_t> labelInteger(std::string_view text) {
  std::int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return v;
}

bool tolerates(const Toleration& toleration, const Taint& taint) {
  if (toleration.effect && *toleration.effect != taint.effect) return false;
  if (!toleration.key.empty() && toleration.key != taint.key) return false;
  return toleration.exists || toleration.value == taint.value;
}

bool matchesTerm(const NodeSelectorTerm& term, const NodeInfo& node) {
  // Kubernetes: a term with no requirements matches no objects.
  if (term.matchExpressions.empty() && term.matchFields.empty()) return false;
  for (const auto& r : term.matchExpressions) {
    auto it = node.labels.find(r.key);
    if (!matchesRequirement(r, it == node.labels.end() ? nullptr : &it->second)) return false;
  }
  for (const auto& r : term.matchFields) {
    if (!matchesRequirement(r, &node.name)) return false;
  }
  return true;
}

Decision decide(const PodRequest& pod, const std::vector<NodeInfo>& nodes,
                const fleet::FleetSnapshot& fleet, const std::optional<ChannelInfo>& channel,
                const Policy& policy, std::optional<Mode> namespaceMode, Clock::time_point now) {
  return decide(pod, NodeTable(nodes), fleet, channel, policy, namespaceMode, now);
}

Decision decide(const PodRequest& pod, const NodeTable& nodes, const fleet::FleetSnapshot& fleet,
                const std::optional<ChannelInfo>& channel, const Policy& policy,
                std::optional<Mode> namespaceMode, Clock::time_point now) {
  Decision d;
  d.mode = namespaceMode.value_or(policy.mode);
  std::string why;
  if (excluded(pod, policy, &why)) {
    d.reason = Reason::kExcluded;
    d.message = std::move(why);
    return d;
  }

  std::optional<Verdict> v;
  if (channel) v = channelVerdict(pod, *channel);
  if (!v) v = nodeVerdict(pod, nodes, fleet, policy, now, d.history);

  d.verdict = v->allowed;
  d.reason = v->reason;
  d.message = std::move(v->message);
  d.node = std::move(v->node);
  d.failures = std::move(v->failures);
  d.gates = std::move(v->gates);
  d.candidates = v->candidates;
  d.allowed = v->allowed || d.mode != Mode::kEnforce;

  if (d.mode != Mode::kDryRun) {
    for (const auto& w : v->warnings)
      d.warnings.push_back(cutWarning(w));
    if (!v->allowed && d.mode == Mode::kWarn) {
      d.warnings.push_back(
          cutWarning("pi0 would deny (" + std::string(reasonName(d.reason)) + "): " + d.message));
    }
  }
  if (d.mode == Mode::kDryRun || !v->allowed) {
    d.auditAnnotations["mode"] = modeName(d.mode);
    d.auditAnnotations["decision"] = v->allowed ? "allow" : "deny";
    d.auditAnnotations["reason"] = reasonName(d.reason);
    if (!v->allowed) d.auditAnnotations["message"] = d.message;
  }
  return d;
}

}  // namespace pi0::admission
