#include "operator/operator_metrics.h"

#include <map>
#include <utility>

#include "admission/calibration.h"
#include "admission/pod_decision.h"
#include "metrics/counter.h"
#include "metrics/exposition.h"

namespace pi0::op {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& r, const std::string& name,
                                             const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& r, const std::string& name,
                                                 const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r);
}

// Every state a Channel can be in, in the order of OperatorMetrics::ChannelSeries.
constexpr std::array<stability::ChannelState, 3> kChannelStateOrder = {
    stability::ChannelState::kActive, stability::ChannelState::kDegraded,
    stability::ChannelState::kInactive};

}  // namespace

std::string_view toString(Controller controller) {
  switch (controller) {
    case Controller::kChannel:
      return "channel";
    case Controller::kMatrix:
      return "matrix";
  }
  return "unknown";
}

std::string_view toString(Action action) {
  switch (action) {
    case Action::kDegrade:
      return "degrade";
    case Action::kShutdown:
      return "shutdown";
    case Action::kRestore:
      return "restore";
  }
  return "unknown";
}

std::string_view toString(ActionResult result) {
  return result == ActionResult::kOk ? "ok" : "error";
}

OperatorMetrics::OperatorMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      load_(gauge(*registry_, "pi0_operator_load",
                  "Load a ShutdownMatrix sees on its channels, in [0,1].")),
      level_(gauge(*registry_, "pi0_operator_level",
                   "Index of the level a ShutdownMatrix is at (0: the lowest).")),
      levels_(gauge(*registry_, "pi0_operator_levels",
                    "Number of levels of a ShutdownMatrix; the top one (index levels - 1) is "
                    "its critical level.")),
      stability_(gauge(*registry_, "pi0_operator_stability",
                       "Stability of a ShutdownMatrix (SAO), in [0,1].")),
      stabilityThreshold_(gauge(*registry_, "pi0_operator_stability_threshold",
                                "A ShutdownMatrix's spec.stabilityThreshold: below it, channels "
                                "are shut down until SAO is back above.")),
      availability_(gauge(*registry_, "pi0_operator_availability",
                          "Share of a ShutdownMatrix's channels that are available, in [0,1].")),
      anticipatedLoad_(gauge(*registry_, "pi0_operator_anticipated_load",
                             "Load the nodes' forecasts expect within a ShutdownMatrix's "
                             "spec.anticipationSeconds past their horizon, in [0,1]; NaN while "
                             "anticipation is off or has no forecast.")),
      anticipatedRises_(counter(*registry_, "pi0_operator_anticipated_level_changes_total",
                                "Rises of a ShutdownMatrix's level made on its anticipated load, "
                                "before its load earned them (Events with reason Anticipated).")),
      rollbacks_(counter(*registry_, "pi0_operator_rollbacks_total",
                         "Degrade and shutdown steps of a ShutdownMatrix undone because they made "
                         "things worse (Events with reason StepRolledBack).")),
      channelState_(gauge(*registry_, "pi0_operator_channel_state",
                          "State of a Channel: 1 for the state it is in (Active, Degraded, "
                          "Inactive), 0 for the others.")),
      actions_(counter(*registry_, "pi0_operator_actions_total",
                       "Actions taken on workloads, by action and result.")),
      reconcileDuration_(BuildHistogram()
                             .Name("pi0_operator_reconcile_duration_seconds")
                             .Help("Time one reconcile took, by controller.")
                             .Register(*registry_)),
      reconcileErrors_(counter(*registry_, "pi0_operator_reconcile_errors_total",
                               "Reconciles that ended in an error, by controller.")),
      polls_(*registry_, "pi0_operator"),
      leader_(
          gauge(*registry_, "pi0_operator_leader", "1 while this replica is the leader.").Add({})),
      workqueueDepth_(gauge(*registry_, "pi0_operator_workqueue_depth",
                            "Keys waiting in a controller's work queue.")),
      events_(counter(*registry_, "pi0_operator_events_total",
                      "Kubernetes Events by result: created, aggregated (a repeat folded into "
                      "an existing Event), dropped (queue full or spam filter), failed (the API "
                      "refused or was unreachable).")),
      cacheLists_(counter(*registry_, "pi0_operator_cache_lists_total",
                          "Full lists of a cache's resource: the first, and one each time its "
                          "watch expired (410 Gone).")),
      cacheFailures_(counter(*registry_, "pi0_operator_cache_failures_total",
                             "Lists and watches of a cache's resource that failed.")),
      feedAnswers_(counter(*registry_, "pi0_operator_fleet_feed_answers_total",
                           "Answers of GET /fleet, by result: full, delta, not_leader, "
                           "unauthorized, forbidden, unavailable (the token could not be "
                           "reviewed), bad_request.")),
      feedSentBytes_(counter(*registry_, "pi0_operator_fleet_feed_sent_bytes_total",
                             "Bytes of the bodies of GET /fleet answers.")
                         .Add({})),
      ledgerWrites_(counter(*registry_, "pi0_operator_ledger_writes_total",
                            "Answers of POST /ledger/decisions, by result: stored, not_leader, "
                            "unauthorized, forbidden, unavailable (the token could not be "
                            "reviewed), bad_request, error (the ledger could not store).")),
      ledgerDecisions_(counter(*registry_, "pi0_operator_ledger_decisions_received_total",
                               "Decisions in stored batches, by whether they were new or "
                               "already stored (sent again after a lost answer).")),
      queries_(counter(*registry_, "pi0_operator_queries_total",
                       "Answers of the query API (kubectl pi0), by query (decisions, actions, "
                       "seen, archetypes) and result: ok, not_leader, bad_request, not_found, "
                       "no_ledger, error.")),
      ledgerRows_(gauge(*registry_, "pi0_operator_ledger_records",
                        "Rows in the truth ledger, by table: decisions, actions, outcomes.")),
      ledgerBytes_(gauge(*registry_, "pi0_operator_ledger_bytes",
                         "The truth ledger's database pages, used and free (not the WAL).")
                       .Add({})),
      ledgerPruned_(counter(*registry_, "pi0_operator_ledger_pruned_total",
                            "Records the ledger's retention removed (age or size), by table.")),
      ledgerOutcomes_(counter(*registry_, "pi0_operator_ledger_outcomes_total",
                              "Outcomes joined to the ledger's decisions, by kind: ready, "
                              "oom_killed, crash_looping, evicted, preempted, failed (of the "
                              "pod), node_trouble, node_fine (of the node over the horizon).")),
      gateJudged_(gauge(*registry_, "pi0_operator_gate_judged_decisions",
                        "Decisions of the last 24 h with a node verdict, by gate and verdict: "
                        "admitted (the gate passed) or denied (the gate failed).")),
      gateFalsification_(gauge(*registry_, "pi0_operator_gate_falsification_ratio",
                               "Of the admissions the gate passed in the last 24 h, the share "
                               "followed by node trouble, an OOM kill or an eviction.")),
      gateMiss_(gauge(*registry_, "pi0_operator_gate_miss_ratio",
                      "Of the denials the gate made in the last 24 h, the share whose node "
                      "stayed fine over the horizon (not needed).")),
      calibrationRounds_(counter(*registry_, "pi0_operator_calibration_rounds_total",
                                 "Calibration rounds of the GatePolicy, by result: calibrated, "
                                 "invalid (the spec), error (the API).")),
      thresholdChanges_(counter(*registry_, "pi0_operator_gate_threshold_changes_total",
                                "Changes of a gate's threshold in the GatePolicy's status, by "
                                "gate and kind: ThresholdTightened, ThresholdLoosened, "
                                "ThresholdReset (back to the fixed thresholds).")),
      gateThreshold_(gauge(*registry_, "pi0_operator_gate_threshold",
                           "The GatePolicy's thresholds in force, by gate: fit_error, "
                           "gluing_delta, psi (maxima), isolation (the margin, a minimum).")),
      memoryEntries_(gauge(*registry_, "pi0_operator_memory_entries",
                           "States in the fingerprint memory, by label: calm (the node stayed "
                           "fine over the horizon), before_trouble, trouble_onset.")),
      archetypeMembers_(gauge(*registry_, "pi0_operator_memory_archetype_members",
                              "The fingerprint memory's archetypes (k-means over its states), "
                              "most members first: the states nearest to each, by archetype "
                              "(1, 2, ...) and its strongest features.")),
      archetypeTrouble_(gauge(*registry_, "pi0_operator_memory_archetype_trouble_ratio",
                              "Of an archetype's states, the share followed by trouble.")) {
  for (const char* label : {"calm", "before_trouble", "trouble_onset"})
    memoryEntries_.Add({{"label", label}});
  for (const char* result : {"calibrated", "invalid", "error"})
    calibrationRounds_.Add({{"result", result}});
  for (const char* kind : {"ready", "oom_killed", "crash_looping", "evicted", "preempted", "failed",
                           "node_trouble", "node_fine"})
    ledgerOutcomes_.Add({{"kind", kind}});
  for (const char* result :
       {"stored", "not_leader", "unauthorized", "forbidden", "unavailable", "bad_request", "error"})
    ledgerWrites_.Add({{"result", result}});
  for (const char* kind : {"new", "repeated"})
    ledgerDecisions_.Add({{"kind", kind}});
  for (const char* query : {"decisions", "actions", "seen", "archetypes"})
    for (const char* result : {"ok", "not_leader", "bad_request", "no_ledger", "error"})
      queries_.Add({{"query", query}, {"result", result}});
  for (const char* table : {"decisions", "actions"})
    ledgerPruned_.Add({{"table", table}});
  for (const char* result : {"created", "aggregated", "dropped", "failed"})
    events_.Add({{"result", result}});
  for (const char* result :
       {"full", "delta", "not_leader", "unauthorized", "forbidden", "unavailable", "bad_request"})
    feedAnswers_.Add({{"result", result}});
  for (auto a : {Action::kDegrade, Action::kShutdown, Action::kRestore}) {
    for (auto r : {ActionResult::kOk, ActionResult::kError}) {
      actionSeries_[static_cast<std::size_t>(a)][static_cast<std::size_t>(r)] = &actions_.Add(
          {{"action", std::string(toString(a))}, {"result", std::string(toString(r))}});
    }
  }
  // controller-runtime's reconcile-time buckets, from 5 ms to a minute.
  const prometheus::Histogram::BucketBoundaries buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                        1,     2.5,  5,     10,   30,  60};
  for (auto c : {Controller::kChannel, Controller::kMatrix}) {
    const auto i = static_cast<std::size_t>(c);
    const std::map<std::string, std::string> labels{{"controller", std::string(toString(c))}};
    reconcileSeries_[i] = &reconcileDuration_.Add(labels, buckets);
    errorSeries_[i] = &reconcileErrors_.Add(labels);
    depthSeries_[i] = &workqueueDepth_.Add(labels);
  }
}

OperatorMetrics::MatrixSeries& OperatorMetrics::matrixSeries(const std::string& matrix) {
  auto it = matrices_.find(matrix);
  if (it == matrices_.end()) {
    const std::map<std::string, std::string> labels{{"matrix", matrix}};
    MatrixSeries series{&load_.Add(labels),
                        &level_.Add(labels),
                        &levels_.Add(labels),
                        &stability_.Add(labels),
                        &stabilityThreshold_.Add(labels),
                        &availability_.Add(labels),
                        &anticipatedLoad_.Add(labels),
                        &anticipatedRises_.Add(labels),
                        &rollbacks_.Add(labels)};
    series.anticipatedLoad->Set(std::numeric_limits<double>::quiet_NaN());
    it = matrices_.emplace(matrix, series).first;
  }
  return it->second;
}

void OperatorMetrics::setMatrix(const std::string& matrix, const MatrixFigures& figures) {
  std::lock_guard lock(mu_);
  MatrixSeries& series = matrixSeries(matrix);
  series.load->Set(figures.load);
  series.level->Set(figures.level);
  series.levels->Set(figures.levels);
  series.stability->Set(figures.stability);
  series.stabilityThreshold->Set(figures.stabilityThreshold);
  series.availability->Set(figures.availability);
  series.anticipatedLoad->Set(figures.anticipatedLoad);
}

void OperatorMetrics::countAnticipatedRise(const std::string& matrix) {
  std::lock_guard lock(mu_);
  matrixSeries(matrix).anticipatedRises->Increment();
}

void OperatorMetrics::countRollback(const std::string& matrix) {
  std::lock_guard lock(mu_);
  matrixSeries(matrix).rollbacks->Increment();
}

void OperatorMetrics::removeMatrix(const std::string& matrix) {
  std::lock_guard lock(mu_);
  auto it = matrices_.find(matrix);
  if (it == matrices_.end()) return;
  load_.Remove(it->second.load);
  level_.Remove(it->second.level);
  levels_.Remove(it->second.levels);
  stability_.Remove(it->second.stability);
  stabilityThreshold_.Remove(it->second.stabilityThreshold);
  availability_.Remove(it->second.availability);
  anticipatedLoad_.Remove(it->second.anticipatedLoad);
  anticipatedRises_.Remove(it->second.anticipatedRises);
  rollbacks_.Remove(it->second.rollbacks);
  matrices_.erase(it);
}

void OperatorMetrics::setChannelState(const stability::ChannelRef& channel,
                                      stability::ChannelState state) {
  static_assert(kChannelStateOrder.size() == kChannelStates);
  std::lock_guard lock(mu_);
  auto it = channels_.find(channel.key());
  if (it == channels_.end()) {
    // The channel's namespace is not the label `namespace`: a scrape through a ServiceMonitor
    // gives every series the operator pod's own namespace under that name.
    ChannelSeries series{};
    for (std::size_t i = 0; i < kChannelStateOrder.size(); ++i) {
      series[i] =
          &channelState_.Add({{"channel_namespace", channel.ns},
                              {"channel", channel.name},
                              {"state", stability::channelStateName(kChannelStateOrder[i])}});
    }
    it = channels_.emplace(channel.key(), series).first;
  }
  for (std::size_t i = 0; i < kChannelStateOrder.size(); ++i)
    it->second[i]->Set(kChannelStateOrder[i] == state ? 1 : 0);
}

void OperatorMetrics::removeChannel(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = channels_.find(key);
  if (it == channels_.end()) return;
  for (auto* g : it->second)
    channelState_.Remove(g);
  channels_.erase(it);
}

void OperatorMetrics::countAction(Action action, ActionResult result) {
  actionSeries_[static_cast<std::size_t>(action)][static_cast<std::size_t>(result)]->Increment();
}

void OperatorMetrics::observeReconcile(Controller controller, double seconds, bool failed) {
  const auto i = static_cast<std::size_t>(controller);
  reconcileSeries_[i]->Observe(seconds);
  if (failed) errorSeries_[i]->Increment();
}

void OperatorMetrics::setWorkqueueDepth(Controller controller, std::size_t depth) {
  depthSeries_[static_cast<std::size_t>(controller)]->Set(static_cast<double>(depth));
}

void OperatorMetrics::setLeader(bool leader) {
  leader_.Set(leader ? 1 : 0);
}

void OperatorMetrics::syncFleet(const fleet::PollCounters& counters, bool pollsAgents,
                                const fleet::FeedCounters* feed) {
  polls_.sync(counters);
  polls_.syncSource(pollsAgents, feed);
}

void OperatorMetrics::countLedgerWrite(std::string_view result, std::size_t fresh,
                                       std::size_t repeated) {
  ledgerWrites_.Add({{"result", std::string(result)}}).Increment();
  ledgerDecisions_.Add({{"kind", "new"}}).Increment(static_cast<double>(fresh));
  ledgerDecisions_.Add({{"kind", "repeated"}}).Increment(static_cast<double>(repeated));
}

void OperatorMetrics::countQuery(std::string_view query, std::string_view result) {
  queries_.Add({{"query", std::string(query)}, {"result", std::string(result)}}).Increment();
}

void OperatorMetrics::setLedgerSize(std::int64_t decisions, std::int64_t actions,
                                    std::int64_t outcomes, std::uint64_t bytes) {
  ledgerRows_.Add({{"table", "decisions"}}).Set(static_cast<double>(decisions));
  ledgerRows_.Add({{"table", "actions"}}).Set(static_cast<double>(actions));
  ledgerRows_.Add({{"table", "outcomes"}}).Set(static_cast<double>(outcomes));
  ledgerBytes_.Set(static_cast<double>(bytes));
}

void OperatorMetrics::countLedgerPruned(std::int64_t decisions, std::int64_t actions) {
  ledgerPruned_.Add({{"table", "decisions"}}).Increment(static_cast<double>(decisions));
  ledgerPruned_.Add({{"table", "actions"}}).Increment(static_cast<double>(actions));
}

void OperatorMetrics::setMemoryEntries(const std::map<std::string, std::size_t>& byLabel) {
  for (const auto& [label, n] : byLabel)
    memoryEntries_.Add({{"label", label}}).Set(static_cast<double>(n));
}

void OperatorMetrics::setArchetypes(const std::vector<ArchetypeFigures>& archetypes) {
  std::lock_guard lock(mu_);
  for (auto [members, trouble] : archetypeSeries_) {
    archetypeMembers_.Remove(members);
    archetypeTrouble_.Remove(trouble);
  }
  archetypeSeries_.clear();
  for (std::size_t i = 0; i < archetypes.size(); ++i) {
    const std::map<std::string, std::string> labels = {{"archetype", std::to_string(i + 1)},
                                                       {"features", archetypes[i].features}};
    prometheus::Gauge& members = archetypeMembers_.Add(labels);
    prometheus::Gauge& trouble = archetypeTrouble_.Add(labels);
    members.Set(static_cast<double>(archetypes[i].members));
    trouble.Set(archetypes[i].troubleRatio);
    archetypeSeries_.emplace_back(&members, &trouble);
  }
}

void OperatorMetrics::setGateRates(const std::vector<ledger::GateRate>& rates) {
  // Calibration's holdout and the rest together: how the gates did, whatever judged them.
  std::map<std::pair<std::string, std::string>, ledger::GateRate> sums;
  for (const auto& r : rates) {
    auto& s = sums[{r.resource, r.gate}];
    s.admitted += r.admitted;
    s.falsified += r.falsified;
    s.denied += r.denied;
    s.missed += r.missed;
  }
  for (const auto& [key, r] : sums) {
    const prometheus::Labels labels{{"resource", key.first}, {"gate", key.second}};
    auto with = [&](const char* name, const char* value) {
      prometheus::Labels l = labels;
      l[name] = value;
      return l;
    };
    gateJudged_.Add(with("verdict", "admitted")).Set(static_cast<double>(r.admitted));
    gateJudged_.Add(with("verdict", "denied")).Set(static_cast<double>(r.denied));
    // A ratio of nothing is not 0: the series stays absent until there is something to divide.
    if (r.admitted > 0)
      gateFalsification_.Add(labels).Set(static_cast<double>(r.falsified) /
                                         static_cast<double>(r.admitted));
    if (r.denied > 0)
      gateMiss_.Add(labels).Set(static_cast<double>(r.missed) / static_cast<double>(r.denied));
  }
}

void OperatorMetrics::countCalibrationRound(std::string_view result) {
  calibrationRounds_.Add({{"result", std::string(result)}}).Increment();
}

void OperatorMetrics::countThresholdChange(std::string_view gate, std::string_view kind) {
  thresholdChanges_.Add({{"gate", std::string(gate)}, {"kind", std::string(kind)}}).Increment();
}

void OperatorMetrics::setGateThresholds(const admission::Thresholds& t) {
  for (int i = 0; i < 4; ++i) {
    const auto gate = static_cast<admission::Gate>(i);
    gateThreshold_.Add({{"gate", admission::gateName(gate)}}).Set(admission::thresholdOf(t, gate));
  }
}

void OperatorMetrics::countLedgerOutcome(const std::string& kind, std::size_t n) {
  ledgerOutcomes_.Add({{"kind", kind}}).Increment(static_cast<double>(n));
}

void OperatorMetrics::countFeedAnswer(std::string_view result, std::size_t bytes) {
  feedAnswers_.Add({{"result", std::string(result)}}).Increment();
  feedSentBytes_.Increment(static_cast<double>(bytes));
}

void OperatorMetrics::syncEvents(const kube::EventRecorder::Counters& counters) {
  metrics::raiseTo(events_.Add({{"result", "created"}}), counters.created.load());
  metrics::raiseTo(events_.Add({{"result", "aggregated"}}), counters.aggregated.load());
  metrics::raiseTo(events_.Add({{"result", "dropped"}}), counters.dropped.load());
  metrics::raiseTo(events_.Add({{"result", "failed"}}), counters.failed.load());
}

void OperatorMetrics::syncCache(const std::string& resource,
                                const kube::Reflector::Counters& counters) {
  const std::map<std::string, std::string> labels{{"resource", resource}};
  metrics::raiseTo(cacheLists_.Add(labels), counters.lists.load());
  metrics::raiseTo(cacheFailures_.Add(labels), counters.failures.load());
}

std::string OperatorMetrics::render() const {
  return metrics::renderText(*registry_);
}

}  // namespace pi0::op
