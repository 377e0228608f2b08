// pi0-webhook's endpoints as functions of a request body and what the webhook knows (its
// caches and the fleet view), so that they are tested without a server:
//   /validate-pods              admission::decide for a Pod CREATE (other operations allowed)
//   /validate-channels          admission::validateChannelObject
//   /validate-shutdownmatrices  admission::validateMatrixObject (+ matrixWarnings)
// A body that is not a valid AdmissionReview is answered 400 with the parser's message.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "admission/pod_decision.h"
#include "admission/review.h"
#include "common/clock.h"
#include "fleet/fleet_view.h"
#include "fleet/poller.h"
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
};

// The label on a namespace that sets the mode for its pods (Enforce, Warn, DryRun).
inline constexpr char kModeLabel[] = "stability.pi0.io/admission-mode";

struct HttpAnswer {
  int status = 200;
  std::string body;  // an AdmissionReview, or a plain message for a 400
  std::string contentType = "application/json";
};

// The certificates' figures for /metrics.
struct CertificateFigures {
  std::optional<double> expiresAt;  // the served certificate's notAfter, in Unix seconds
  std::uint64_t reloads = 0, reloadFailures = 0;  // of the files by the HTTPS server
  // Self-managed mode only.
  std::optional<std::uint64_t> reconcilesOk, reconcileErrors, steps;
};

// The HTTPS server's connection figures for /metrics (net::HttpsServer::Counters).
struct ConnectionFigures {
  std::uint64_t accepted = 0;
  std::int64_t open = 0;
  std::uint64_t refused = 0, timeouts = 0, handshakeFailures = 0, malformed = 0;
};

// Decisions by result (allowed, denied, warned) and reason, request durations, bad requests.
// Bad requests per endpoint and the pod endpoint's possible decisions exist from the start, at 0.
class WebhookMetrics {
 public:
  WebhookMetrics();
  std::shared_ptr<prometheus::Registry> registry() { return registry_; }
  void decision(std::string_view endpoint, std::string_view result, std::string_view reason);
  void badRequest(std::string_view endpoint);
  void duration(std::string_view endpoint, double seconds);
  // What the webhook judges by, set before each scrape: Node objects indexed and left out
  // (unreadable), Node updates by effect, and the fleet view's nodes with usable data and
  // without.
  void nodes(const NodeIndex& index, const fleet::FleetSnapshot& fleet, Clock::time_point now);
  // Set before each scrape (counters advance by what the figures grew since the last call).
  void certificates(const CertificateFigures& figures);
  // The poller's counts, set before each scrape likewise.
  void polls(const fleet::PollCounters& counters);
  // The server's connections, set before each scrape likewise.
  void connections(const ConnectionFigures& figures);
  // The buffer reservations (Handlers::reservations()), set before each scrape likewise: live
  // ones per channel (a channel seen before and holding none now reads 0), ended ones by how.
  void reservations(const ReservationBook::Figures& figures);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Counter>& badRequests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Gauge>& clusterNodes_;
  prometheus::Family<prometheus::Counter>& nodeUpdates_;
  std::array<std::uint64_t, 2> lastNodeUpdates_{};
  prometheus::Family<prometheus::Gauge>& fleetNodes_;
  prometheus::Family<prometheus::Gauge>& certificateExpiry_;
  prometheus::Family<prometheus::Counter>& certificateReloads_;
  prometheus::Family<prometheus::Counter>& certificateReconciles_;
  prometheus::Family<prometheus::Counter>& certificateSteps_;
  CertificateFigures lastCertificates_;
  prometheus::Family<prometheus::Counter>& polls_;
  prometheus::Gauge& pollRoundSeconds_;
  std::array<std::uint64_t, 4> lastPolls_{};
  prometheus::Family<prometheus::Counter>& connectionsAccepted_;
  prometheus::Gauge& connectionsOpen_;
  prometheus::Family<prometheus::Counter>& connectionsDropped_;
  prometheus::Family<prometheus::Counter>& malformedRequests_;
  ConnectionFigures lastConnections_;
  prometheus::Family<prometheus::Gauge>& reservations_;
  prometheus::Family<prometheus::Counter>& reservationsEnded_;
  std::set<std::string> reservationChannels_;  // channels with a gauge
  std::array<std::uint64_t, 2> lastReservationsEnded_{};
  std::mutex mu_;
};

// The pod endpoint reserves room in a channel's buffer for each pod it admits while decide()
// checks that buffer (admission::checksBuffer), and gives decide() the remainder less the
// channel's live reservations (reservations.h); one review of such a channel at a time.
// Any thread may call any member; `metrics` and `reservations` outlive the Handlers.
class Handlers {
 public:
  Handlers(ClusterState state, admission::Policy policy, double minimumMargin,
           WebhookMetrics& metrics, ReservationBook& reservations, Clock& clock = systemClock());

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
};

}  // namespace pi0::webhook
