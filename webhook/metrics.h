// Every metric pi0-webhook exports, declared in one place (README.md, "Metrics", lists them):
// decisions, request durations and bad requests of the endpoints (counted by the Handlers as
// they answer), and, set before each scrape from what the webhook's parts count, its view of
// the cluster and the fleet, the certificates, the fleet polls (fleet::PollMetrics, as the
// operator's), the server's connections and the buffer reservations.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "admission/gate_policy.h"
#include "common/clock.h"
#include "fleet/fleet_view.h"
#include "fleet/poller.h"
#include "node_index.h"
#include "reservations.h"

namespace pi0::webhook {

// The pod endpoint's reasons besides admission::Reason's.
inline constexpr char kNotAPodCreate[] = "NotAPodCreate";
inline constexpr char kUnreadable[] = "Unreadable";

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

// The decision log and its sender's figures for /metrics (decision_log.h, ledger_sender.h).
struct LedgerFigures {
  std::uint64_t queued = 0;    // in the log, not yet stored by the ledger
  std::uint64_t added = 0;     // decisions logged
  std::uint64_t sent = 0;      // stored by the ledger
  std::uint64_t dropped = 0;   // made room for newer ones in a full log, never sent
  std::uint64_t rejected = 0;  // refused by the ledger as malformed
  std::uint64_t sendErrors = 0;
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
  // The age of the fleet data a pod decision rested on (pi0_webhook_decision_data_age_seconds):
  // from the agent's sample of the node the decision names to the decision.
  void dataAge(double seconds);
  // What the webhook judges by, set before each scrape: Node objects indexed and left out
  // (unreadable), Node updates by effect, and the fleet view's nodes with usable data and
  // without.
  void nodes(const NodeIndex& index, const fleet::FleetSnapshot& fleet, Clock::time_point now);
  // Set before each scrape (each counter raised to its figure: metrics::raiseTo).
  void certificates(const CertificateFigures& figures);
  // The poller's counts, set before each scrape likewise (fleet::PollMetrics).
  // And where the view comes from (fleet::PollMetrics::syncSource).
  void polls(const fleet::PollCounters& counters, bool pollsAgents,
             const fleet::FeedCounters* feed);
  // The server's connections, set before each scrape likewise.
  void connections(const ConnectionFigures& figures);
  // The buffer reservations (Handlers::reservations()), set before each scrape likewise: live
  // ones per channel (a channel seen before and holding none now reads 0), ended ones by how.
  void reservations(const ReservationBook::Figures& figures);
  // The decisions on their way to the truth ledger, set before each scrape likewise.
  void ledger(const LedgerFigures& figures);
  // The gate thresholds in force (webhook/gate_thresholds.h), each change of them, and each
  // review judged with the fixed thresholds as calibration's holdout.
  void gateThresholds(const admission::ThresholdsInForce& inForce);
  void gateThresholdsChanged();
  void holdoutDecision();
  // A review the history gate acted on (admission::HistoryEffect other than kNone).
  void historyGate(admission::HistoryEffect effect);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Counter>& badRequests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Histogram& dataAge_;
  prometheus::Family<prometheus::Gauge>& clusterNodes_;
  prometheus::Family<prometheus::Counter>& nodeUpdates_;
  prometheus::Family<prometheus::Gauge>& fleetNodes_;
  prometheus::Family<prometheus::Gauge>& certificateExpiry_;
  prometheus::Family<prometheus::Counter>& certificateReloads_;
  prometheus::Family<prometheus::Counter>& certificateReconciles_;
  prometheus::Family<prometheus::Counter>& certificateSteps_;
  fleet::PollMetrics polls_;
  prometheus::Family<prometheus::Counter>& connectionsAccepted_;
  prometheus::Gauge& connectionsOpen_;
  prometheus::Family<prometheus::Counter>& connectionsDropped_;
  prometheus::Family<prometheus::Counter>& malformedRequests_;
  prometheus::Family<prometheus::Gauge>& reservations_;
  prometheus::Family<prometheus::Counter>& reservationsEnded_;
  prometheus::Gauge& ledgerQueued_;
  prometheus::Family<prometheus::Counter>& ledgerDecisions_;
  prometheus::Counter& ledgerSendErrors_;
  prometheus::Family<prometheus::Gauge>& gateThreshold_;
  prometheus::Gauge& gateCalibrated_;
  prometheus::Counter& gateThresholdChanges_;
  prometheus::Counter& holdoutDecisions_;
  prometheus::Family<prometheus::Counter>& historyGate_;
  std::set<std::string> reservationChannels_;  // channels with a gauge
  std::mutex mu_;
};

}  // namespace pi0::webhook
