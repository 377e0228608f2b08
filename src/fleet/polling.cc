#include "fleet/polling.h"

#include <cmath>

#include "fleet/endpoint_slices.h"

namespace pi0::fleet {
namespace {

Result<std::vector<Agent>> parseAgents(const std::string& text) {
  auto agents = StaticAgents::parse(text);
  if (!agents) return fail(agents.error().message);
  return agents->agents();
}

Result<ServiceRef> parseService(const std::string& text) {
  return parseServiceRef(text);
}

}  // namespace

void addPollingFlags(FlagTable& table, PollingOptions& options) {
  table.add("--agents NODE=URL,...", flags::nonEmpty(flags::custom(options.agents, parseAgents)),
            "a fixed list of agents to poll, e.g. node-a=http://10.0.0.7:9560");
  table.add("--agent-service NS/NAME",
            flags::nonEmpty(flags::custom(options.agentService, parseService)),
            "find the agents from this Service's EndpointSlices (exactly one of --agents and "
            "--agent-service)");
  // At most an hour: far from where converting to clock ticks could overflow, and longer than
  // any sensible poll.
  table.add("--poll-interval DURATION", flags::duration(options.pollIntervalSeconds),
            "how often to poll every agent; data older than 3 intervals is stale; at most 1h");
  table.add("--agent-timeout DURATION", flags::duration(options.agentTimeoutSeconds),
            "how long one agent may take to answer; at most 1h");
}

Result<void> checkPollingOptions(const PollingOptions& options) {
  if (options.agents && options.agentService) {
    return fail("--agents and --agent-service exclude each other: give one");
  }
  if (!options.agents && !options.agentService) {
    return fail("where are the agents? give --agents NODE=URL,... or --agent-service NS/NAME");
  }
  return {};
}

FleetPolling::~FleetPolling() {
  stopDiscovery();
}

void FleetPolling::stopDiscovery() {
  if (discovery_.joinable()) {
    discovery_.request_stop();
    discovery_.join();
  }
}

Result<std::unique_ptr<FleetPolling>> startPolling(Runner& runner, kube::Client& client,
                                                   const PollingOptions& options,
                                                   FleetViewOptions view) {
  std::unique_ptr<FleetPolling> polling(new FleetPolling());
  polling->interval_ = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.pollIntervalSeconds));
  view.staleAfter = 3 * polling->interval_;
  polling->view_ = std::make_unique<FleetView>(std::move(view));

  PollerOptions pollerOptions;
  pollerOptions.timeout = std::chrono::milliseconds(
      std::max<long long>(1, std::llround(options.agentTimeoutSeconds * 1000)));
  auto agents = startAgentSource(client, options.agents, options.agentService);
  polling->source_ = std::move(agents.source);
  polling->discovery_ = std::move(agents.discovery);
  auto poller =
      FleetPoller::create(*polling->source_, *polling->view_, systemClock(), pollerOptions);
  if (!poller) return fail("invalid poller options: " + poller.error().message);
  polling->poller_ = std::move(*poller);

  FleetPolling* p = polling.get();
  runner.atStop([p] { p->stopDiscovery(); });
  runner.add([p](std::stop_token stop) {
    p->poller_->run(stop, p->interval_, [p](const PollRound& round) {
      p->polledOnce_ = true;
      if (p->afterRound_) p->afterRound_(round);
    });
  });
  return polling;
}

}  // namespace pi0::fleet
