#include "metrics.h"

#include "admission/pod_decision.h"
#include "metrics/counter.h"

namespace pi0::webhook {
WebhookMetrics::WebhookMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      decisions_(prometheus::BuildCounter()
                     .Name("pi0_webhook_decisions_total")
                     .Help("Admission decisions by endpoint, result (allowed, denied, warned) "
                           "and reason")
                     .Register(*registry_)),
      badRequests_(prometheus::BuildCounter()
                       .Name("pi0_webhook_bad_requests_total")
                       .Help("Requests that were not a valid AdmissionReview, by endpoint")
                       .Register(*registry_)),
      durations_(prometheus::BuildHistogram()
                     .Name("pi0_webhook_request_duration_seconds")
                     .Help("Time to answer an admission request, by endpoint")
                     .Register(*registry_)),
      // Around the sampling interval (1 s by default): the goal is within two of them.
      dataAge_(prometheus::BuildHistogram()
                   .Name("pi0_webhook_decision_data_age_seconds")
                   .Help("Age of the fleet data a pod decision rested on: from the agent's "
                         "sample of the node the decision names (the passing node, or the "
                         "closest to passing) to the decision")
                   .Register(*registry_)
                   .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.25, 0.5, 0.75, 1, 1.25,
                                                                    1.5, 2, 2.5, 3, 4, 5, 7.5, 10,
                                                                    15, 30, 60})),
      clusterNodes_(prometheus::BuildGauge()
                        .Name("pi0_webhook_cluster_nodes")
                        .Help("Node objects in the webhook's cache, by state: indexed (judged "
                              "by admission) or unreadable (left out)")
                        .Register(*registry_)),
      nodeUpdates_(prometheus::BuildCounter()
                       .Name("pi0_webhook_node_updates_total")
                       .Help("Node updates from the watch, by effect: changed (what admission "
                             "reads of the Node changed: the node table is rebuilt) or unchanged "
                             "(a status heartbeat, a condition)")
                       .Register(*registry_)),
      fleetNodes_(prometheus::BuildGauge()
                      .Name("pi0_webhook_fleet_nodes")
                      .Help("Nodes in the webhook's fleet view, by state: usable (fresh data "
                            "from a node that has not failed) or unusable")
                      .Register(*registry_)),
      certificateExpiry_(prometheus::BuildGauge()
                             .Name("pi0_webhook_certificate_expiry_timestamp_seconds")
                             .Help("When the served certificate expires (notAfter), in Unix "
                                   "seconds")
                             .Register(*registry_)),
      certificateReloads_(prometheus::BuildCounter()
                              .Name("pi0_webhook_certificate_reloads_total")
                              .Help("Changes of the certificate and key files, by result: "
                                    "loaded, or failed (the previous pair is still served)")
                              .Register(*registry_)),
      certificateReconciles_(prometheus::BuildCounter()
                                 .Name("pi0_webhook_certificate_reconciles_total")
                                 .Help("Self-managed certificates: reconciles of the Secret and "
                                       "the caBundle, by result (ok, error)")
                                 .Register(*registry_)),
      certificateSteps_(prometheus::BuildCounter()
                            .Name("pi0_webhook_certificate_steps_total")
                            .Help("Self-managed certificates: writes to the Secret or the "
                                  "caBundle (creation, renewal, CA rotation steps)")
                            .Register(*registry_)),
      polls_(*registry_, "pi0_webhook"),
      connectionsAccepted_(prometheus::BuildCounter()
                               .Name("pi0_webhook_connections_total")
                               .Help("TCP connections accepted by the HTTPS server")
                               .Register(*registry_)),
      connectionsOpen_(prometheus::BuildGauge()
                           .Name("pi0_webhook_connections_open")
                           .Help("Connections open now (idle keep-alive ones included)")
                           .Register(*registry_)
                           .Add({})),
      connectionsDropped_(prometheus::BuildCounter()
                              .Name("pi0_webhook_connections_dropped_total")
                              .Help("Connections closed by the server before an answer, by "
                                    "reason: timeout (the TLS handshake or a request passed its "
                                    "deadline), handshake_failed, refused (too many open)")
                              .Register(*registry_)),
      malformedRequests_(prometheus::BuildCounter()
                             .Name("pi0_webhook_malformed_requests_total")
                             .Help("HTTP requests answered 400, 413 or 431 before routing "
                                   "(malformed framing, a body or headers too large); the "
                                   "connection is closed after the answer")
                             .Register(*registry_)),
      reservations_(prometheus::BuildGauge()
                        .Name("pi0_webhook_buffer_reservations")
                        .Help("Pods this replica admitted against a channel's buffer that the "
                              "operator has not counted yet, by channel: the room they hold")
                        .Register(*registry_)),
      reservationsEnded_(prometheus::BuildCounter()
                             .Name("pi0_webhook_buffer_reservations_ended_total")
                             .Help("Buffer reservations ended, by reason: counted (the "
                                   "channel's status.buffer.observedAt passed the pod's "
                                   "admission plus the grace) or timeout (the operator never "
                                   "counted the pod in time)")
                             .Register(*registry_)),
      ledgerQueued_(prometheus::BuildGauge()
                        .Name("pi0_webhook_ledger_queued_decisions")
                        .Help("Decisions this replica holds for the truth ledger, not yet "
                              "stored by the operator leader")
                        .Register(*registry_)
                        .Add({})),
      ledgerDecisions_(prometheus::BuildCounter()
                           .Name("pi0_webhook_ledger_decisions_total")
                           .Help("Decisions for the truth ledger, by what became of them: "
                                 "logged, sent (stored by the leader), dropped (a full log made "
                                 "room for newer ones: the leader was out of reach) or rejected "
                                 "(refused as malformed)")
                           .Register(*registry_)),
      ledgerSendErrors_(prometheus::BuildCounter()
                            .Name("pi0_webhook_ledger_send_errors_total")
                            .Help("Sends of decisions to the leader that stored nothing "
                                  "(unreachable, not the leader, unauthorized); the decisions "
                                  "are kept and sent again")
                            .Register(*registry_)
                            .Add({})),
      gateThreshold_(prometheus::BuildGauge()
                         .Name("pi0_webhook_gate_threshold")
                         .Help("The gate thresholds pod reviews judge by, by gate: fit_error, "
                               "gluing_delta, psi (maxima), isolation (the margin, a minimum)")
                         .Register(*registry_)),
      gateCalibrated_(prometheus::BuildGauge()
                          .Name("pi0_webhook_gate_calibrated")
                          .Help("1 when the GatePolicy's calibrated thresholds apply (its Auto "
                                "mode), 0 when the flags' fixed thresholds do")
                          .Register(*registry_)
                          .Add({})),
      gateThresholdChanges_(prometheus::BuildCounter()
                                .Name("pi0_webhook_gate_threshold_changes_total")
                                .Help("Changes of the gate thresholds in force, from the "
                                      "GatePolicy")
                                .Register(*registry_)
                                .Add({})),
      holdoutDecisions_(prometheus::BuildCounter()
                            .Name("pi0_webhook_holdout_decisions_total")
                            .Help("Pod reviews judged with the fixed thresholds while calibrated "
                                  "ones apply: calibration's randomized holdout")
                            .Register(*registry_)
                            .Add({})),
      historyGate_(prometheus::BuildCounter()
                       .Name("pi0_webhook_history_gate_total")
                       .Help("Pod reviews the history gate acted on, by effect: warned (Warn: "
                             "the chosen node's state was like past ones that led to trouble), "
                             "steered (Enforce: another node was chosen), denied (Enforce)")
                       .Register(*registry_)) {
  // The counters exist from the start, at 0, so that a rate() sees the first event rather than
  // a series that appears at 1. Bad requests per endpoint; the pod endpoint's decisions for
  // every result each reason can have: a reason that denies in Enforce mode warns in Warn mode
  // and allows in DryRun (StaleData also warns in Enforce mode under the allow policy); Passed
  // and Excluded never carry a warning; a pod that is not a CREATE is allowed, one that cannot
  // be read allowed with a warning. The resource endpoints' few decisions appear when made.
  for (const char* endpoint : {"pods", "channels", "shutdownmatrices"})
    badRequests_.Add({{"endpoint", endpoint}});
  connectionsAccepted_.Add({});
  for (const char* state : {"logged", "sent", "dropped", "rejected"})
    ledgerDecisions_.Add({{"state", state}});
  for (const char* reason : {"timeout", "handshake_failed", "refused"})
    connectionsDropped_.Add({{"reason", reason}});
  malformedRequests_.Add({});
  for (auto effect : {admission::HistoryEffect::kWarned, admission::HistoryEffect::kSteered,
                      admission::HistoryEffect::kDenied})
    historyGate_.Add({{"effect", admission::historyEffectName(effect)}});
  for (const char* reason : {"counted", "timeout"})
    reservationsEnded_.Add({{"reason", reason}});
  auto pods = [this](std::string_view reason, std::initializer_list<const char*> results) {
    for (const char* result : results) {
      decisions_.Add({{"endpoint", "pods"}, {"result", result}, {"reason", std::string(reason)}});
    }
  };
  using admission::Reason;
  for (auto reason : {Reason::kChannelInactive, Reason::kBufferExhausted, Reason::kNoCandidateNode,
                      Reason::kStaleData, Reason::kGatesFailed}) {
    pods(admission::reasonName(reason), {"allowed", "warned", "denied"});
  }
  pods(admission::reasonName(Reason::kPassed), {"allowed"});
  pods(admission::reasonName(Reason::kExcluded), {"allowed"});
  pods(kNotAPodCreate, {"allowed"});
  pods(kUnreadable, {"warned"});
}

void WebhookMetrics::polls(const fleet::PollCounters& counters, bool pollsAgents,
                           const fleet::FeedCounters* feed) {
  polls_.sync(counters);
  polls_.syncSource(pollsAgents, feed);
}

void WebhookMetrics::ledger(const LedgerFigures& f) {
  std::lock_guard lock(mu_);
  ledgerQueued_.Set(static_cast<double>(f.queued));
  metrics::raiseTo(ledgerDecisions_.Add({{"state", "logged"}}), f.added);
  metrics::raiseTo(ledgerDecisions_.Add({{"state", "sent"}}), f.sent);
  metrics::raiseTo(ledgerDecisions_.Add({{"state", "dropped"}}), f.dropped);
  metrics::raiseTo(ledgerDecisions_.Add({{"state", "rejected"}}), f.rejected);
  metrics::raiseTo(ledgerSendErrors_, f.sendErrors);
}

void WebhookMetrics::connections(const ConnectionFigures& f) {
  std::lock_guard lock(mu_);
  metrics::raiseTo(connectionsAccepted_.Add({}), f.accepted);
  connectionsOpen_.Set(static_cast<double>(f.open));
  metrics::raiseTo(connectionsDropped_.Add({{"reason", "timeout"}}), f.timeouts);
  metrics::raiseTo(connectionsDropped_.Add({{"reason", "handshake_failed"}}), f.handshakeFailures);
  metrics::raiseTo(connectionsDropped_.Add({{"reason", "refused"}}), f.refused);
  metrics::raiseTo(malformedRequests_.Add({}), f.malformed);
}

void WebhookMetrics::reservations(const ReservationBook::Figures& f) {
  std::lock_guard lock(mu_);
  for (const auto& channel : reservationChannels_) {
    if (!f.live.contains(channel)) reservations_.Add({{"channel", channel}}).Set(0);
  }
  for (const auto& [channel, n] : f.live) {
    reservations_.Add({{"channel", channel}}).Set(static_cast<double>(n));
    reservationChannels_.insert(channel);
  }
  metrics::raiseTo(reservationsEnded_.Add({{"reason", "counted"}}), f.counted);
  metrics::raiseTo(reservationsEnded_.Add({{"reason", "timeout"}}), f.timedOut);
}

void WebhookMetrics::certificates(const CertificateFigures& f) {
  std::lock_guard lock(mu_);
  if (f.expiresAt) certificateExpiry_.Add({}).Set(*f.expiresAt);
  metrics::raiseTo(certificateReloads_.Add({{"result", "loaded"}}), f.reloads);
  metrics::raiseTo(certificateReloads_.Add({{"result", "failed"}}), f.reloadFailures);
  if (f.reconcilesOk) {
    metrics::raiseTo(certificateReconciles_.Add({{"result", "ok"}}), *f.reconcilesOk);
    metrics::raiseTo(certificateReconciles_.Add({{"result", "error"}}),
                     f.reconcileErrors.value_or(0));
    metrics::raiseTo(certificateSteps_.Add({}), f.steps.value_or(0));
  }
}

void WebhookMetrics::nodes(const NodeIndex& index, const fleet::FleetSnapshot& fleet,
                           Clock::time_point now) {
  const std::size_t indexed = index.size(), unreadable = index.unreadable();
  const std::array<std::uint64_t, 2> updates{index.changes(), index.unchanged()};
  std::size_t usable = 0;
  for (const auto& status : fleet.nodes()) {
    if (fleet.isUsable(*status, now)) ++usable;
  }
  std::lock_guard lock(mu_);
  clusterNodes_.Add({{"state", "indexed"}}).Set(static_cast<double>(indexed));
  clusterNodes_.Add({{"state", "unreadable"}}).Set(static_cast<double>(unreadable));
  static constexpr const char* kEffects[] = {"changed", "unchanged"};
  for (std::size_t i = 0; i < updates.size(); ++i) {
    metrics::raiseTo(nodeUpdates_.Add({{"effect", kEffects[i]}}), updates[i]);
  }
  fleetNodes_.Add({{"state", "usable"}}).Set(static_cast<double>(usable));
  fleetNodes_.Add({{"state", "unusable"}}).Set(static_cast<double>(fleet.size() - usable));
}

void WebhookMetrics::gateThresholds(const admission::ThresholdsInForce& inForce) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < 4; ++i) {
    const auto gate = static_cast<admission::Gate>(i);
    gateThreshold_.Add({{"gate", admission::gateName(gate)}})
        .Set(admission::thresholdOf(inForce.thresholds, gate));
  }
  gateCalibrated_.Set(inForce.calibrated ? 1 : 0);
}

void WebhookMetrics::gateThresholdsChanged() {
  gateThresholdChanges_.Increment();
}

void WebhookMetrics::holdoutDecision() {
  holdoutDecisions_.Increment();
}

void WebhookMetrics::historyGate(admission::HistoryEffect effect) {
  if (effect == admission::HistoryEffect::kNone) return;
  historyGate_.Add({{"effect", admission::historyEffectName(effect)}}).Increment();
}

void WebhookMetrics::decision(std::string_view endpoint, std::string_view result,
                              std::string_view reason) {
  std::lock_guard lock(mu_);
  decisions_
      .Add({{"endpoint", std::string(endpoint)},
            {"result", std::string(result)},
            {"reason", std::string(reason)}})
      .Increment();
}

void WebhookMetrics::badRequest(std::string_view endpoint) {
  std::lock_guard lock(mu_);
  badRequests_.Add({{"endpoint", std::string(endpoint)}}).Increment();
}

void WebhookMetrics::dataAge(double seconds) {
  dataAge_.Observe(seconds);
}

void WebhookMetrics::duration(std::string_view endpoint, double seconds) {
  std::lock_guard lock(mu_);
  durations_
      .Add({{"endpoint", std::string(endpoint)}},
           prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                                                   0.1, 0.25, 0.5, 1, 2})
      .Observe(seconds);
}

}  // namespace pi0::webhook
