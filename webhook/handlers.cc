#include "handlers.h"

#include <chrono>
#include <limits>
#include <map>

#include "admission/channel_info.h"
#include "admission/resource_validation.h"
#include "common/log.h"
#include "kube/json.h"

namespace pi0::webhook {
namespace {

using nlohmann::json;

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

// a − b, saturating (a remainder less what is held may go below 0: decide() reads that as 0).
std::int64_t subtractSat(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return std::numeric_limits<std::int64_t>::min();
  return r;
}

}  // namespace

Handlers::Handlers(ClusterState state, admission::Policy policy, double minimumMargin,
                   WebhookMetrics& metrics, ReservationBook& reservations, Clock& clock,
                   DecisionLog* decisions)
    : state_(std::move(state)),
      policy_(std::move(policy)),
      minimumMargin_(minimumMargin),
      metrics_(metrics),
      reservations_(reservations),
      clock_(clock),
      decisions_(decisions) {}

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
    const auto labels = kube::labelsOf(*n);
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
  // Calibrated thresholds, when the GatePolicy's apply; the flags' for the holdout's share.
  const admission::Policy* policy = &policy_;
  bool holdout = false;
  std::shared_ptr<const GateChoice> gates;
  if (state_.gates && (gates = state_.gates()) && gates->inForce.calibrated) {
    holdout = GateThresholds::holdout(gates->inForce.holdoutShare);
    if (holdout)
      metrics_.holdoutDecision();
    else
      policy = &gates->policy;
  }
  const auto d =
      admission::decide(*pod, *nodes, *fleet, channel, *policy, namespaceMode, clock_.now());
  // Whatever the mode, an admitted pod will exist and take from the buffer: it holds its room.
  if (turn && d.allowed && d.reason != admission::Reason::kExcluded)
    turn->reserve(pod->displayName(), request->uid, pod->cpuMilli, pod->memoryBytes);
  turn.reset();
  if (decisions_) decisions_->add(*pod, d, channel ? channel->name : "", WallClock::now(), holdout);
  metrics_.historyGate(d.history);
  if (!d.node.empty()) {
    const fleet::NodeStatus* status = fleet->find(d.node);
    if (status && status->fingerprint) {
      metrics_.dataAge(std::chrono::duration<double>(std::chrono::system_clock::now() -
                                                     status->fingerprint->timestamp)
                           .count());
    }
  }
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
