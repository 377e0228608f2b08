#include "handlers.h"

#include <chrono>
#include <limits>

#include "admission/channel_info.h"
#include "admission/resource_validation.h"
#include "common/log.h"
#include "kube/json.h"

namespace pi0::webhook {
namespace {

using nlohmann::json;

std::map<std::string, std::string> labelsOf(const json& object) {
  std::map<std::string, std::string> out;
  const json labels = kube::field<json>(object, "/metadata/labels"_json_pointer, json::object());
  if (!labels.is_object()) return out;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it->is_string()) out[it.key()] = it->get<std::string>();
  }
  return out;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::vector<json> values(const std::vector<ObjectPtr>& objects) {
  std::vector<json> out;
  out.reserve(objects.size());
  for (const auto& o : objects)
    out.push_back(*o);
  return out;
}

HttpAnswer badRequest(const std::string& message) {
  return {400, message + "\n", "text/plain"};
}

// Advances a counter by what a cumulative figure grew since it was last seen.
void grow(prometheus::Counter& c, std::uint64_t now, std::uint64_t before) {
  if (now > before) c.Increment(static_cast<double>(now - before));
}

// a − b, saturating (a remainder less what is held may go below 0: decide() reads that as 0).
std::int64_t subtractSat(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return std::numeric_limits<std::int64_t>::min();
  return r;
}

// The pod endpoint's reasons besides admission::Reason's.
constexpr char kNotAPodCreate[] = "NotAPodCreate";
constexpr char kUnreadable[] = "Unreadable";

}  // namespace

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
      polls_(prometheus::BuildCounter()
                 .Name("pi0_webhook_fleet_polls_total")
                 .Help("Polls of the agents' fingerprints, by result: ok, error, timeout, "
                       "skipped_open (the node's circuit breaker is open)")
                 .Register(*registry_)),
      pollRoundSeconds_(prometheus::BuildGauge()
                            .Name("pi0_webhook_fleet_poll_round_seconds")
                            .Help("How long the last round of polls over every agent took")
                            .Register(*registry_)
                            .Add({})),
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
  for (const char* reason : {"timeout", "handshake_failed", "refused"})
    connectionsDropped_.Add({{"reason", reason}});
  malformedRequests_.Add({});
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

void WebhookMetrics::polls(const fleet::PollCounters& counters) {
  const std::array<std::uint64_t, 4> now{counters.ok.load(), counters.error.load(),
                                         counters.timeout.load(), counters.skippedOpen.load()};
  static constexpr const char* kResults[] = {"ok", "error", "timeout", "skipped_open"};
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < now.size(); ++i) {
    auto& c = polls_.Add({{"result", kResults[i]}});
    if (now[i] > lastPolls_[i]) c.Increment(static_cast<double>(now[i] - lastPolls_[i]));
    lastPolls_[i] = now[i];
  }
  pollRoundSeconds_.Set(counters.lastRoundSeconds.load());
}

void WebhookMetrics::connections(const ConnectionFigures& f) {
  std::lock_guard lock(mu_);
  grow(connectionsAccepted_.Add({}), f.accepted, lastConnections_.accepted);
  connectionsOpen_.Set(static_cast<double>(f.open));
  grow(connectionsDropped_.Add({{"reason", "timeout"}}), f.timeouts, lastConnections_.timeouts);
  grow(connectionsDropped_.Add({{"reason", "handshake_failed"}}), f.handshakeFailures,
       lastConnections_.handshakeFailures);
  grow(connectionsDropped_.Add({{"reason", "refused"}}), f.refused, lastConnections_.refused);
  grow(malformedRequests_.Add({}), f.malformed, lastConnections_.malformed);
  lastConnections_ = f;
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
  grow(reservationsEnded_.Add({{"reason", "counted"}}), f.counted, lastReservationsEnded_[0]);
  grow(reservationsEnded_.Add({{"reason", "timeout"}}), f.timedOut, lastReservationsEnded_[1]);
  lastReservationsEnded_ = {f.counted, f.timedOut};
}

void WebhookMetrics::certificates(const CertificateFigures& f) {
  std::lock_guard lock(mu_);
  if (f.expiresAt) certificateExpiry_.Add({}).Set(*f.expiresAt);
  grow(certificateReloads_.Add({{"result", "loaded"}}), f.reloads, lastCertificates_.reloads);
  grow(certificateReloads_.Add({{"result", "failed"}}), f.reloadFailures,
       lastCertificates_.reloadFailures);
  if (f.reconcilesOk) {
    grow(certificateReconciles_.Add({{"result", "ok"}}), *f.reconcilesOk,
         lastCertificates_.reconcilesOk.value_or(0));
    grow(certificateReconciles_.Add({{"result", "error"}}), f.reconcileErrors.value_or(0),
         lastCertificates_.reconcileErrors.value_or(0));
    grow(certificateSteps_.Add({}), f.steps.value_or(0), lastCertificates_.steps.value_or(0));
  }
  lastCertificates_ = f;
}

void WebhookMetrics::nodes(const NodeIndex& index, const fleet::FleetSnapshot& fleet,
                           Clock::time_point now) {
  const std::size_t indexed = index.size(), unreadable = index.unreadable();
  const std::array<std::uint64_t, 2> updates{index.changes(), index.unchanged()};
  std::size_t usable = 0;
  for (const auto& [name, status] : fleet.nodes()) {
    if (fleet.isUsable(*status, now)) ++usable;
  }
  std::lock_guard lock(mu_);
  clusterNodes_.Add({{"state", "indexed"}}).Set(static_cast<double>(indexed));
  clusterNodes_.Add({{"state", "unreadable"}}).Set(static_cast<double>(unreadable));
  static constexpr const char* kEffects[] = {"changed", "unchanged"};
  for (std::size_t i = 0; i < updates.size(); ++i) {
    auto& c = nodeUpdates_.Add({{"effect", kEffects[i]}});
    if (updates[i] > lastNodeUpdates_[i])
      c.Increment(static_cast<double>(updates[i] - lastNodeUpdates_[i]));
    lastNodeUpdates_[i] = updates[i];
  }
  fleetNodes_.Add({{"state", "usable"}}).Set(static_cast<double>(usable));
  fleetNodes_.Add({{"state", "unusable"}}).Set(static_cast<double>(fleet.size() - usable));
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

void WebhookMetrics::duration(std::string_view endpoint, double seconds) {
  std::lock_guard lock(mu_);
  durations_
      .Add({{"endpoint", std::string(endpoint)}},
           prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                                                   0.1, 0.25, 0.5, 1, 2})
      .Observe(seconds);
}

Handlers::Handlers(ClusterState state, admission::Policy policy, double minimumMargin,
                   WebhookMetrics& metrics, ReservationBook& reservations, Clock& clock)
    : state_(std::move(state)),
      policy_(std::move(policy)),
      minimumMargin_(minimumMargin),
      metrics_(metrics),
      reservations_(reservations),
      clock_(clock) {}

HttpAnswer Handlers::answer(std::string_view endpoint, const admission::AdmissionRequest& request,
                            const admission::Response& response, std::string_view reason) {
  const char* result = !response.allowed            ? "denied"
                       : !response.warnings.empty() ? "warned"
                                                    : "allowed";
  metrics_.decision(endpoint, result, reason);
  return {200, admission::responseBody(request, response)};
}

HttpAnswer Handlers::pods(std::string_view body) {
  const auto started = std::chrono::steady_clock::now();
  auto request = admission::parseReview(body, admission::podReviewFields());
  if (!request) {
    metrics_.badRequest("pods");
    return badRequest(request.error().message);
  }
  admission::Response response;
  if (request->operation != admission::Operation::kCreate || request->kind.kind != "Pod" ||
      !request->subResource.empty()) {
    return answer("pods", *request, response, kNotAPodCreate);
  }
  auto pod = admission::parsePod(request->object);
  if (!pod) {
    // The apiserver validated the pod already; a pod this webhook cannot read is not its to
    // refuse. Allow, and say so.
    response.warnings.push_back("pi0: cannot read the pod: " + pod.error().message);
    return answer("pods", *request, response, kUnreadable);
  }
  if (pod->ns.empty()) pod->ns = request->ns;

  std::optional<admission::Mode> namespaceMode;
  if (const auto n = state_.namespaceNamed(pod->ns)) {
    const auto labels = labelsOf(*n);
    if (auto it = labels.find(kModeLabel); it != labels.end())
      namespaceMode = admission::parseMode(it->second);
  }
  std::optional<admission::ChannelInfo> channel;
  if (auto c = admission::channelOfPod(pod->ns, pod->labels, state_.channels())) {
    const auto matrix = admission::actingMatrix(state_.matrices());
    channel = admission::channelInfo(*c, matrix.get());
  }
  // A channel whose buffer is checked: this review takes the channel's turn (the one before it
  // may have just reserved the room this pod would be checked against) and is judged by what
  // the status leaves less what this replica holds for pods the operator has not counted yet.
  std::optional<ReservationBook::Turn> turn;
  if (channel && admission::checksBuffer(*channel) && reservations_.enabled()) {
    turn.emplace(reservations_.turn(channel->name));
    const Held held = turn->held(channel->bufferObservedAt);
    if (held.pods > 0) {
      auto& left = *channel->bufferRemaining;
      if (left.cpuMilli) left.cpuMilli = subtractSat(*left.cpuMilli, held.cpuMilli);
      if (left.memoryBytes) left.memoryBytes = subtractSat(*left.memoryBytes, held.memoryBytes);
      channel->reserved = {held.cpuMilli, held.memoryBytes, static_cast<std::int64_t>(held.pods)};
    }
  }
  const auto nodes = state_.nodes();
  const auto fleet = state_.fleet();
  const auto d =
      admission::decide(*pod, *nodes, *fleet, channel, policy_, namespaceMode, clock_.now());
  // Whatever the mode, an admitted pod will exist and take from the buffer: it holds its room.
  if (turn && d.allowed && d.reason != admission::Reason::kExcluded)
    turn->reserve(pod->displayName(), request->uid, pod->cpuMilli, pod->memoryBytes);
  turn.reset();
  response.allowed = d.allowed;
  response.message = d.message;
  response.warnings = d.warnings;
  response.auditAnnotations = d.auditAnnotations;
  if (!d.verdict) {
    log::info("pod denied", {{"namespace", pod->ns},
                             {"pod", pod->displayName()},
                             {"mode", admission::modeName(d.mode)},
                             {"reason", admission::reasonName(d.reason)},
                             {"node", d.node},
                             {"message", d.message}});
  }
  auto out = answer("pods", *request, response, admission::reasonName(d.reason));
  metrics_.duration(
      "pods", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return out;
}

ReservationBook::Figures Handlers::reservations() {
  std::map<std::string, std::optional<WallClock::time_point>> observedAt;
  for (const auto& c : state_.channels()) {
    if (!c) continue;
    const auto info = admission::channelInfo(*c, nullptr);
    observedAt[info.name] = info.bufferObservedAt;
  }
  return reservations_.figures([&](const std::string& channel) {
    auto it = observedAt.find(channel);
    return it == observedAt.end() ? std::nullopt : it->second;
  });
}

HttpAnswer Handlers::channels(std::string_view body) {
  auto request = admission::parseReview(body);
  if (!request) {
    metrics_.badRequest("channels");
    return badRequest(request.error().message);
  }
  admission::Response response;
  if (request->operation != admission::Operation::kCreate &&
      request->operation != admission::Operation::kUpdate) {
    return answer("channels", *request, response, "NotACreateOrUpdate");
  }
  std::vector<json> others;
  for (const auto& c : state_.channels()) {
    if (kube::stringField(*c, "/metadata/namespace"_json_pointer) == request->ns &&
        kube::stringField(*c, "/metadata/name"_json_pointer) == request->name) {
      continue;  // its own old copy
    }
    others.push_back(*c);
  }
  const auto problems = admission::validateChannelObject(request->object, others);
  if (!problems.empty()) {
    response.allowed = false;
    response.code = 422;
    response.message = joined(problems);
  }
  return answer("channels", *request, response, problems.empty() ? "Valid" : "Invalid");
}

HttpAnswer Handlers::matrices(std::string_view body) {
  auto request = admission::parseReview(body);
  if (!request) {
    metrics_.badRequest("shutdownmatrices");
    return badRequest(request.error().message);
  }
  admission::Response response;
  if (request->operation != admission::Operation::kCreate &&
      request->operation != admission::Operation::kUpdate) {
    return answer("shutdownmatrices", *request, response, "NotACreateOrUpdate");
  }
  const auto channels = values(state_.channels());
  admission::GateMargin margin;
  margin.admissionCeiling = 1.0 - policy_.thresholds.isolation;
  margin.minimumMargin = minimumMargin_;
  const auto problems = admission::validateMatrixObject(request->object, channels, margin);
  if (!problems.empty()) {
    response.allowed = false;
    response.code = 422;
    response.message = joined(problems);
  } else {
    response.warnings = admission::matrixWarnings(request->object, channels);
  }
  return answer("shutdownmatrices", *request, response, problems.empty() ? "Valid" : "Invalid");
}

}  // namespace pi0::webhook
