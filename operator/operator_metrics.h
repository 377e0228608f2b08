// Every metric pi0-operator exports, declared in one place (names follow Prometheus and
// controller-runtime conventions):
//   pi0_operator_load{matrix}                      load the matrix sees, in [0,1]
//   pi0_operator_anticipated_load{matrix}          load the nodes' forecasts expect within the
//                                                  matrix's spec.anticipationSeconds past their
//                                                  horizon (NaN while anticipation is off or
//                                                  has no forecast)
//   pi0_operator_anticipated_level_changes_total{matrix}
//                                                  rises of the level that the anticipated load
//                                                  made before the load did (Event Anticipated)
//   pi0_operator_rollbacks_total{matrix}         degrade and shutdown steps undone because
//                                                  they made things worse (Event StepRolledBack)
//   pi0_operator_level{matrix}                     index of the level the matrix is at
//   pi0_operator_levels{matrix}                    how many levels the matrix has (the top
//                                                  one, index levels - 1, is its critical one)
//   pi0_operator_stability{matrix}                 the matrix's SAO
//   pi0_operator_stability_threshold{matrix}       the matrix's spec.stabilityThreshold
//   pi0_operator_availability{matrix}              share of the matrix's channels available
//   pi0_operator_channel_state{channel_namespace,channel,state}
//                                                  1 for the Channel's state (Active, Degraded,
//                                                  Inactive), 0 for the others
//   pi0_operator_actions_total{action,result}      degrade|shutdown|restore, ok|error
//   pi0_operator_reconcile_duration_seconds{controller}   channel|matrix
//   pi0_operator_reconcile_errors_total{controller}
//   pi0_operator_workqueue_depth{controller}
//   pi0_operator_fleet_polls_total{result}         ok|error|timeout|skipped_open
//   pi0_operator_fleet_poll_round_seconds          how long the last round of polls took
//                                                  (both fleet::PollMetrics, as the webhook's)
//   pi0_operator_fleet_source{source}, pi0_operator_fleet_feed_pages_total{kind},
//   pi0_operator_fleet_feed_errors_total, pi0_operator_fleet_feed_bytes_total
//                                                  the standby's reading of the leader's feed
//                                                  (fleet::PollMetrics)
//   pi0_operator_fleet_feed_answers_total{result}  answers of GET /fleet: full, delta,
//                                                  not_leader, unauthorized, forbidden,
//                                                  unavailable (TokenReview), bad_request
//   pi0_operator_fleet_feed_sent_bytes_total       bodies of those answers
//   pi0_operator_leader                            1 while this replica leads
//   pi0_operator_events_total{result}              Events: created, aggregated (a repeat folded
//                                                  into an existing Event), dropped (queue full
//                                                  or spam filter), failed (the API refused)
//   pi0_operator_cache_lists_total{resource}       full lists of a cache (the first, and each
//                                                  after its watch expired: 410 Gone)
//   pi0_operator_cache_failures_total{resource}    lists and watches of a cache that failed
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "fleet/poller.h"
#include "kube/events.h"
#include "kube/reflector.h"
#include "ledger/ledger.h"
#include "stability/planner.h"
#include "stability/spec.h"

namespace pi0::admission {
struct Thresholds;
}

namespace pi0::op {

enum class Controller { kChannel, kMatrix };
// A step's action: the matrix's own (a cell's action), labelled in lower case.
using stability::Action;
enum class ActionResult { kOk, kError };

std::string_view toString(Controller controller);
std::string_view toString(Action action);
std::string_view toString(ActionResult result);

// What the gauges of one ShutdownMatrix show.
struct MatrixFigures {
  double load = 0;       // NaN while it cannot be measured
  int level = 0;         // index into the matrix's levels, 0 the lowest
  int levels = 1;        // how many levels the matrix has
  double stability = 1;  // SAO
  double stabilityThreshold = 0.5;
  double availability = 1;
  double anticipatedLoad = std::numeric_limits<double>::quiet_NaN();  // NaN: off or unknown
};

class OperatorMetrics {
 public:
  OperatorMetrics();

  std::shared_ptr<prometheus::Registry> sharedRegistry() { return registry_; }

  // The state of one ShutdownMatrix (by name); removeMatrix drops its series when the matrix
  // is deleted.
  void setMatrix(const std::string& matrix, const MatrixFigures& figures);
  void removeMatrix(const std::string& matrix);
  // The level of `matrix` rose on its anticipated load (before its load earned it). Creates the
  // matrix's series if setMatrix has not.
  void countAnticipatedRise(const std::string& matrix);
  // A step of `matrix` was rolled back (it made things worse).
  void countRollback(const std::string& matrix);

  // The state of one Channel: its series of `state` is 1 and those of the other states 0.
  // removeChannel (by "namespace/name") drops them when the Channel is deleted.
  void setChannelState(const stability::ChannelRef& channel, stability::ChannelState state);
  void removeChannel(const std::string& key);

  void countAction(Action action, ActionResult result);
  // One reconcile of `controller` that took `seconds`; `failed` also counts an error.
  void observeReconcile(Controller controller, double seconds, bool failed);
  void setWorkqueueDepth(Controller controller, std::size_t depth);
  void setLeader(bool leader);
  // Brings the poll metrics up to the poller's counters (fleet::PollMetrics::sync).
  // And where the view comes from (fleet::PollMetrics::syncSource).
  void syncFleet(const fleet::PollCounters& counters, bool pollsAgents,
                 const fleet::FeedCounters* feed);
  // One answer of GET /fleet: `result` one of the labels above; `bytes` its body.
  void countFeedAnswer(std::string_view result, std::size_t bytes);
  // One answer of POST /ledger/decisions: `result` stored, not_leader, unauthorized, forbidden,
  // unavailable, bad_request or error (the ledger failed); of a stored batch, how many decisions
  // were new and how many already stored (sent again).
  void countLedgerWrite(std::string_view result, std::size_t fresh = 0, std::size_t repeated = 0);
  // The fingerprint memory (operator/memory_recorder.h): its entries by label ("calm",
  // "before_trouble", "trouble_onset"), and its archetypes, most members first: each one's
  // members, the share of them followed by trouble and its strongest features ("cpu_level
  // psi_cpu_level cpu_peak"). The archetypes' series of the previous call go.
  struct ArchetypeFigures {
    std::size_t members = 0;
    double troubleRatio = 0;
    std::string features;
  };
  void setMemoryEntries(const std::map<std::string, std::size_t>& byLabel);
  void setArchetypes(const std::vector<ArchetypeFigures>& archetypes);
  // One answer of the query API (operator/query_server.h): `query` decisions, actions, seen or
  // archetypes; `result` ok, not_leader, bad_request, not_found, no_ledger or error.
  void countQuery(std::string_view query, std::string_view result);
  // The ledger's rows and file size (Ledger::stats), and what retention removed.
  void setLedgerSize(std::int64_t decisions, std::int64_t actions, std::int64_t outcomes,
                     std::uint64_t bytes);
  void countLedgerPruned(std::int64_t decisions, std::int64_t actions);
  // How each gate's judged decisions turned out over the last day (ledger::GateRate).
  void setGateRates(const std::vector<ledger::GateRate>& rates);
  // Calibration (operator/gate_policy_reconcile.h): a round's result (calibrated, invalid,
  // error), a threshold's change (`kind`: ThresholdTightened, ThresholdLoosened, ThresholdReset)
  // and the thresholds the GatePolicy's status holds.
  void countCalibrationRound(std::string_view result);
  void countThresholdChange(std::string_view gate, std::string_view kind);
  void setGateThresholds(const admission::Thresholds& thresholds);
  // Outcomes joined to decisions (operator/outcomes.h), by kind.
  void countLedgerOutcome(const std::string& kind, std::size_t n);
  // Brings the Event and cache metrics up to the recorder's and a cache's own counts.
  void syncEvents(const kube::EventRecorder::Counters& counters);
  void syncCache(const std::string& resource, const kube::Reflector::Counters& counters);

  // The Prometheus text exposition of every metric.
  std::string render() const;

 private:
  struct MatrixSeries {
    prometheus::Gauge* load;
    prometheus::Gauge* level;
    prometheus::Gauge* levels;
    prometheus::Gauge* stability;
    prometheus::Gauge* stabilityThreshold;
    prometheus::Gauge* availability;
    prometheus::Gauge* anticipatedLoad;
    prometheus::Counter* anticipatedRises;
    prometheus::Counter* rollbacks;
  };
  static constexpr std::size_t kChannelStates = 3;  // Active, Degraded, Inactive
  using ChannelSeries = std::array<prometheus::Gauge*, kChannelStates>;
  static constexpr std::size_t kControllers = 2;
  static constexpr std::size_t kActions = 3;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& load_;
  prometheus::Family<prometheus::Gauge>& level_;
  prometheus::Family<prometheus::Gauge>& levels_;
  prometheus::Family<prometheus::Gauge>& stability_;
  prometheus::Family<prometheus::Gauge>& stabilityThreshold_;
  prometheus::Family<prometheus::Gauge>& availability_;
  prometheus::Family<prometheus::Gauge>& anticipatedLoad_;
  prometheus::Family<prometheus::Counter>& anticipatedRises_;
  prometheus::Family<prometheus::Counter>& rollbacks_;
  prometheus::Family<prometheus::Gauge>& channelState_;
  prometheus::Family<prometheus::Counter>& actions_;
  prometheus::Family<prometheus::Histogram>& reconcileDuration_;
  prometheus::Family<prometheus::Counter>& reconcileErrors_;
  fleet::PollMetrics polls_;
  prometheus::Gauge& leader_;
  prometheus::Family<prometheus::Gauge>& workqueueDepth_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& cacheLists_;
  prometheus::Family<prometheus::Counter>& cacheFailures_;
  prometheus::Family<prometheus::Counter>& feedAnswers_;
  prometheus::Counter& feedSentBytes_;
  prometheus::Family<prometheus::Counter>& ledgerWrites_;
  prometheus::Family<prometheus::Counter>& ledgerDecisions_;
  prometheus::Family<prometheus::Counter>& queries_;
  prometheus::Family<prometheus::Gauge>& ledgerRows_;
  prometheus::Gauge& ledgerBytes_;
  prometheus::Family<prometheus::Counter>& ledgerPruned_;
  prometheus::Family<prometheus::Counter>& ledgerOutcomes_;
  prometheus::Family<prometheus::Gauge>& gateJudged_;
  prometheus::Family<prometheus::Gauge>& gateFalsification_;
  prometheus::Family<prometheus::Gauge>& gateMiss_;
  prometheus::Family<prometheus::Counter>& calibrationRounds_;
  prometheus::Family<prometheus::Counter>& thresholdChanges_;
  prometheus::Family<prometheus::Gauge>& gateThreshold_;
  prometheus::Family<prometheus::Gauge>& memoryEntries_;
  prometheus::Family<prometheus::Gauge>& archetypeMembers_;
  prometheus::Family<prometheus::Gauge>& archetypeTrouble_;

  // Every series with a fixed label set exists from the start, at 0.
  std::array<std::array<prometheus::Counter*, 2>, kActions> actionSeries_{};
  std::array<prometheus::Histogram*, kControllers> reconcileSeries_{};
  std::array<prometheus::Counter*, kControllers> errorSeries_{};
  std::array<prometheus::Gauge*, kControllers> depthSeries_{};

  MatrixSeries& matrixSeries(const std::string& matrix);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, MatrixSeries, std::less<>> matrices_;   // guarded by mu_
  std::map<std::string, ChannelSeries, std::less<>> channels_;  // by key; guarded by mu_
  // Each archetype's members and trouble ratio series; guarded by mu_.
  std::vector<std::pair<prometheus::Gauge*, prometheus::Gauge*>> archetypeSeries_;
};

}  // namespace pi0::op
