// What followed a decision (the truth ledger's outcomes, README "The learning loop"), as the
// operator leader observes it:
//  - of the pod a decision admitted, from its status in the operator's Pod cache (podOutcomes):
//    ready, oom_killed, crash_looping, evicted, preempted, failed;
//  - of the node a decision names, from the fleet view (nodeTrouble, TroubleHistory): trouble as
//    DESIGN.md defines it, a resource's PSI `some avg10` at or over its line (the agent's
//    --pressure-line, 0.2 by default), or a utilization at saturation. After the decision's
//    horizon, the decision gets `node_trouble` (the first episode that overlapped the horizon)
//    or `node_fine`: for an admission, whether it was falsified; for a denial, whether it was
//    needed.
// OutcomeTracker joins both to the ledger. The node's trouble history is kept in memory: a
// decision made before this replica observed the fleet gets no node verdict (a leader change
// leaves the decisions of the moments before it without one, rather than judging them blind).
// A node-level OOM kill is not in the agents' fingerprints yet, so node trouble is pressure and
// saturation only; a pod's own OOM kill is oom_killed.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "fleet/fleet_view.h"
#include "kube/json.h"
#include "kube/store.h"
#include "ledger/ledger.h"

namespace pi0::op {

class OperatorMetrics;

// The outcomes a Pod's status shows now, each at `now`: ready (the Ready condition True),
// oom_killed (a container's state or last state terminated with reason OOMKilled, detail "container
// NAME: OOMKilled"), crash_looping (a container waiting in CrashLoopBackOff), preempted (the
// DisruptionTarget condition with reason PreemptionByScheduler or PreemptionByKubeScheduler),
// evicted (DisruptionTarget with another reason, or status.reason Evicted; detail the reason and
// message), failed (phase Failed otherwise; detail the reason). Reads what trimPod keeps.
std::vector<ledger::Outcome> podOutcomes(const kube::Json& pod, ledger::Time now);

// The node's trouble now, described ("psi_memory 0.31 >= 0.20", "cpu 1.00 at saturation"), or
// nullopt when it has none.
inline constexpr double kDefaultPressureLine = 0.2;
std::optional<std::string> nodeTrouble(const fleet::NodeFingerprint& fingerprint);

// Each node's trouble episodes over time, from what the fleet view shows. Not thread-safe.
class TroubleHistory {
 public:
  // Records every node with usable data at `now` (its data fresh): an episode opens when trouble
  // starts and closes when it ends. `wallNow` stamps them.
  void observe(const fleet::FleetSnapshot& fleet, Clock::time_point now, ledger::Time wallNow);
  // The first trouble of `node` that overlapped [from, to), with the time it was seen (not
  // before `from`); nullopt when none.
  struct Seen {
    ledger::Time at;
    std::string detail;
  };
  std::optional<Seen> troubleWithin(const std::string& node, ledger::Time from,
                                    ledger::Time to) const;
  // Since when the history covers the fleet; nullopt before the first observe().
  std::optional<ledger::Time> observedSince() const { return since_; }
  // Forgets episodes that ended before `before`.
  void forget(ledger::Time before);

 private:
  struct Episode {
    ledger::Time start;
    std::optional<ledger::Time> end;  // nullopt: ongoing
    std::string detail;
  };
  std::map<std::string, std::vector<Episode>, std::less<>> episodes_;
  std::optional<ledger::Time> since_;
};

// Joins outcomes to the ledger's decisions. podChanged() and nodesObserved() may be called from
// any thread (the Pod cache's handler, the poll rounds); flush() (run()'s loop) writes.
class OutcomeTracker {
 public:
  OutcomeTracker(ledger::Ledger& ledger, std::chrono::milliseconds horizon,
                 OperatorMetrics* metrics = nullptr);

  // A Pod changed (the cache's handler): the outcomes it shows that `before` did not are queued,
  // and joined at the next flush, or at a later one while their decision has not arrived
  // (kDecisionGrace).
  void podChanged(const kube::ObjectPtr& before, const kube::ObjectPtr& now, ledger::Time at);
  void nodesObserved(const fleet::FleetSnapshot& fleet, Clock::time_point now,
                     ledger::Time wallNow);
  // Writes the queued pod outcomes, and the node verdict of every decision whose horizon has
  // passed by `now` (and that the history covers). Errors are logged and retried next time.
  void flush(ledger::Time now);
  // flush() every `every` until `stop`.
  void run(std::stop_token stop, std::chrono::milliseconds every);

  std::size_t queued() const;

  // How long a pod outcome waits for its decision to arrive from a webhook replica (which sends
  // once a second, and holds its decisions through a leader change).
  static constexpr std::chrono::seconds kDecisionGrace{60};

 private:
  ledger::Ledger& ledger_;
  const std::chrono::milliseconds horizon_;
  OperatorMetrics* metrics_;
  mutable std::mutex mu_;  // guards what follows
  std::vector<ledger::Ledger::PodOutcome> queue_;
  TroubleHistory history_;
};

}  // namespace pi0::op
