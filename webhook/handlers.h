// pi0-webhook's endpoints as functions of a request body and what the webhook knows (its
// caches and the fleet view), so that they are tested without a server:
//   /validate-pods              admission::decide for a Pod CREATE (other operations allowed)
//   /validate-channels          admission::validateChannelObject
//   /validate-shutdownmatrices  admission::validateMatrixObject (+ matrixWarnings)
// A body that is not a valid AdmissionReview is answered 400 with the parser's message.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admission/pod_decision.h"
#include "admission/review.h"
#include "common/clock.h"
#include "decision_log.h"
#include "fleet/fleet_view.h"
#include "gate_thresholds.h"
#include "metrics.h"
#include "node_index.h"
#include "reservations.h"

namespace pi0::webhook {

using ObjectPtr = std::shared_ptr<const nlohmann::json>;

// What the handlers read, from the caches: the nodes (parsed, node_index.h), a namespace by
// name (null when unknown), and the current Channels and ShutdownMatrices.
struct ClusterState {
  std::function<std::shared_ptr<const admission::NodeTable>()> nodes;
  std::function<ObjectPtr(const std::string& name)> namespaceNamed;
  std::function<std::vector<ObjectPtr>()> channels;
  std::function<std::vector<ObjectPtr>()> matrices;
  std::function<std::shared_ptr<const fleet::FleetSnapshot>()> fleet;
  // The thresholds in force (gate_thresholds.h); empty: the policy's own, always.
  std::function<std::shared_ptr<const GateChoice>()> gates;
};

// The label on a namespace that sets the mode for its pods (Enforce, Warn, DryRun).
inline constexpr char kModeLabel[] = "stability.pi0.io/admission-mode";

struct HttpAnswer {
  int status = 200;
  std::string body;  // an AdmissionReview, or a plain message for a 400
  std::string contentType = "application/json";
};

// The pod endpoint reserves room in a channel's buffer for each pod it admits while decide()
// checks that buffer (admission::checksBuffer), and gives decide() the remainder less the
// channel's live reservations (reservations.h); one review of such a channel at a time.
// Any thread may call any member; `metrics` and `reservations` outlive the Handlers.
class Handlers {
 public:
  // `decisions`, when given, takes the record of every pod decision for the truth ledger.
  Handlers(ClusterState state, admission::Policy policy, double minimumMargin,
           WebhookMetrics& metrics, ReservationBook& reservations, Clock& clock = systemClock(),
           DecisionLog* decisions = nullptr);

  HttpAnswer pods(std::string_view body);
  HttpAnswer channels(std::string_view body);
  HttpAnswer matrices(std::string_view body);

  // The reservations' figures for /metrics, ending those the operator has counted by each
  // Channel's status.buffer.observedAt in the cache.
  ReservationBook::Figures reservations();

 private:
  HttpAnswer answer(std::string_view endpoint, const admission::AdmissionRequest& request,
                    const admission::Response& response, std::string_view reason);

  ClusterState state_;
  admission::Policy policy_;
  double minimumMargin_;
  WebhookMetrics& metrics_;
  ReservationBook& reservations_;
  Clock& clock_;
  DecisionLog* decisions_;
};

}  // namespace pi0::webhook
