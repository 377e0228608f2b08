// Where pi0-operator and pi0-webhook get the fleet view: the flags that say where the agents
// are, how often to read them and where the fleet feed is, and startPolling, which wires the
// agents' source (a fixed list, or the agent Service's EndpointSlices), a FleetView, a
// FleetPoller and, with --fleet-lease, a FeedClient, and runs them on the program's Runner.
//
// With the feed, the agents are polled only by the replica that publishes (the operator leader,
// see publishesWhen) and, as a fallback, by a consumer whose feed has been silent for
// --fleet-fallback-after (feed_client.h). The poll metrics are PollMetrics (poller.h).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/flags.h"
#include "common/result.h"
#include "common/runner.h"
#include "fleet/agent_source.h"
#include "fleet/feed_client.h"
#include "fleet/fleet_view.h"
#include "fleet/poller.h"

namespace pi0::kube {
class Client;
}

namespace pi0::fleet {

struct PollingOptions {
  // Exactly one of the two after checkPollingOptions.
  std::optional<std::vector<Agent>> agents;  // --agents NODE=URL,...
  std::optional<ServiceRef> agentService;    // --agent-service NS/NAME
  double pollIntervalSeconds = 1.0;          // --poll-interval
  double agentTimeoutSeconds = 2.0;          // --agent-timeout
  std::size_t pollConcurrency = 8;           // --poll-concurrency
  // The fleet feed: the publisher is the holder of this Lease, at its stability.pi0.io/fleet-url
  // annotation. None: poll the agents directly, always.
  std::optional<ServiceRef> fleetLease;       // --fleet-lease NS/NAME
  std::string fleetCaFile;                    // --fleet-ca-file
  std::string fleetServerName = "pi0-fleet";  // --fleet-server-name
  std::string fleetTokenFile;                 // --fleet-token-file
  double fleetFallbackAfterSeconds = 0;       // --fleet-fallback-after; 0: one poll interval
};

// The Lease annotation where the publisher of the fleet feed says where it serves it.
inline constexpr std::string_view kFleetUrlAnnotation = "stability.pi0.io/fleet-url";

// Declares --agents, --agent-service, --poll-interval, --agent-timeout, --poll-concurrency and
// the --fleet-* flags of the feed's consumer, bound to `options`.
void addPollingFlags(FlagTable& table, PollingOptions& options);
// After parsing: exactly one of --agents and --agent-service was given; --fleet-lease comes with
// --fleet-ca-file.
Result<void> checkPollingOptions(const PollingOptions& options);

// The fleet view, kept current. Made by startPolling; every member may be called from any
// thread.
class FleetPolling {
 public:
  FleetView& view() { return *view_; }
  const PollCounters& counters() const { return poller_->counters(); }
  Clock::duration interval() const { return interval_; }
  // The agents are known: the EndpointSlices are listed (at once for --agents).
  bool agentsListed() const { return source_->synced(); }
  // The view has data: a round of polls has ended, or a feed page came.
  bool hasData() const { return polledOnce_ || (feed_ && feed_->receivedOnce()); }
  // The feed's client; null without --fleet-lease.
  const FeedClient* feed() const { return feed_.get(); }
  // Whether this replica polls the agents now (else the view comes from the feed).
  bool pollsAgents() const;
  // This replica publishes the feed while `publishes` says so (the operator: while it leads):
  // it then polls the agents and reads no feed. Set before runner.run().
  void publishesWhen(std::function<bool()> publishes) { publishes_ = std::move(publishes); }
  // Called on the polling thread after a round, at most once per poll interval (rounds follow
  // the agents' samples, a quarter interval apart), so that what depends on the view acts on
  // fresh data at once. Set before runner.run().
  void onRound(std::function<void(const PollRound&)> afterRound) {
    afterRound_ = std::move(afterRound);
  }

  ~FleetPolling();

 private:
  friend Result<std::unique_ptr<FleetPolling>> startPolling(Runner&, kube::Client&,
                                                            const PollingOptions&,
                                                            FleetViewOptions);
  FleetPolling() = default;
  void stopDiscovery();

  Clock::duration interval_{};
  std::unique_ptr<AgentSource> source_;
  std::jthread discovery_;  // lists and watches the EndpointSlices (--agent-service)
  std::unique_ptr<FleetView> view_;
  std::unique_ptr<FleetPoller> poller_;
  std::unique_ptr<FeedClient> feed_;
  std::atomic<bool> polledOnce_{false};
  std::function<void(const PollRound&)> afterRound_;
  std::function<bool()> publishes_;
};

// A link to the feed's publisher besides the feed's own (pi0-webhook's decisions travel it to
// the truth ledger): the same Lease, CA, server name and token, with `timeout` per request.
// nullopt without --fleet-lease. `client` must outlive the link.
std::optional<LeaderLink> linkToPublisher(kube::Client& client, const PollingOptions& options,
                                          std::chrono::milliseconds timeout);

// Starts finding the agents at once (the EndpointSlices' watch runs from now until shutdown)
// and adds the polls to `runner`: a round every --poll-interval, each agent given
// --agent-timeout; with --fleet-lease, also the feed's client, a page every quarter interval,
// and the polls only while this replica publishes or the feed has fallen back. `view` says what the
// view keeps; its staleAfter becomes 3 poll intervals. At shutdown the polls stop, then the
// discovery. The result must outlive runner.run(). Errors: invalid poller options.
Result<std::unique_ptr<FleetPolling>> startPolling(Runner& runner, kube::Client& client,
                                                   const PollingOptions& options,
                                                   FleetViewOptions view = {});

}  // namespace pi0::fleet
