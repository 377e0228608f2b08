// The fleet polling that pi0-operator and pi0-webhook share: the flags that say where the agents
// are and how often to poll them, and startPolling, which wires the agents' source (a fixed
// list, or the agent Service's EndpointSlices), a FleetView and a FleetPoller, and runs the
// polls on the program's Runner. The poll metrics are PollMetrics (poller.h).
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
};

// Declares --agents, --agent-service, --poll-interval and --agent-timeout, bound to `options`.
void addPollingFlags(FlagTable& table, PollingOptions& options);
// After parsing: exactly one of --agents and --agent-service was given.
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
  // A round of polls has ended.
  bool polledOnce() const { return polledOnce_; }
  // Called on the polling thread after every round, so that what depends on the view acts on
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
  std::atomic<bool> polledOnce_{false};
  std::function<void(const PollRound&)> afterRound_;
};

// Starts finding the agents at once (the EndpointSlices' watch runs from now until shutdown)
// and adds the polls to `runner`: a round every --poll-interval, each agent given
// --agent-timeout. `view` says what the view keeps; its staleAfter becomes 3 poll intervals. At
// shutdown the polls stop, then the discovery. The result must outlive runner.run(). Errors:
// invalid poller options.
Result<std::unique_ptr<FleetPolling>> startPolling(Runner& runner, kube::Client& client,
                                                   const PollingOptions& options,
                                                   FleetViewOptions view = {});

}  // namespace pi0::fleet
