#include "fleet/polling.h"

#include <cmath>

#include "fleet/endpoint_slices.h"
#include "kube/client.h"
#include "kube/resource.h"

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

// The feed's publisher: the holder of `lease`, at the URL its annotation names.
FeedLocator leaseLocator(kube::Client& client, ServiceRef lease) {
  return [&client, lease](std::stop_token st) -> Result<std::string> {
    const std::string name = "Lease " + lease.ns + "/" + lease.name;
    auto got =
        client.get(kube::resources::kLeases, lease.ns, lease.name, kube::Subresource::kNone, st);
    if (!got) return fail("cannot read the " + name + ": " + got.error().describe());
    const kube::Json& l = *got;
    const auto text = [&l](const char* pointer) {
      const kube::Json::json_pointer at(pointer);
      return l.contains(at) && l.at(at).is_string() ? l.at(at).get<std::string>() : std::string();
    };
    const std::string holder = text("/spec/holderIdentity");
    if (holder.empty()) return fail("no replica holds the " + name + " (no leader now)");
    // kFleetUrlAnnotation, its '/' escaped for a JSON pointer.
    const std::string url = text("/metadata/annotations/stability.pi0.io~1fleet-url");
    if (url.empty())
      return fail("the leader " + holder + " does not serve the fleet (the " + name + " has no " +
                  std::string(kFleetUrlAnnotation) + " annotation)");
    return url;
  };
}

// The link's options from the --fleet-* flags.
LeaderLinkOptions linkOptions(const PollingOptions& options, std::chrono::milliseconds timeout) {
  LeaderLinkOptions link;
  link.caFile = options.fleetCaFile;
  link.serverName = options.fleetServerName;
  link.tokenFile = options.fleetTokenFile;
  link.timeout = timeout;
  return link;
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
  table.add("--poll-concurrency N",
            flags::whole(options.pollConcurrency, 1, 1024, "a whole number in 1..1024"),
            "agents read at once: a read waits mostly on the network and the agent, so the "
            "agents read per second are about N / the time one read takes");
  table.add("--fleet-lease NS/NAME",
            flags::nonEmpty(flags::custom(options.fleetLease, parseService)),
            "read the fleet from the feed of this Lease's holder (the operator leader) instead "
            "of polling every agent; poll them only as a fallback");
  table.add("--fleet-ca-file FILE", flags::nonEmpty(flags::text(options.fleetCaFile)),
            "the CA (PEM) the feed's certificate must chain to; required with --fleet-lease");
  table.add("--fleet-server-name NAME", flags::nonEmpty(flags::text(options.fleetServerName)),
            "the DNS name the feed's certificate must carry");
  table.add("--fleet-token-file FILE", flags::nonEmpty(flags::text(options.fleetTokenFile)),
            "a service-account token sent to the feed (re-read every minute), e.g. a projected "
            "token of audience pi0-fleet");
  table
      .add("--fleet-fallback-after DURATION",
           flags::duration(options.fleetFallbackAfterSeconds, {.allowZero = true}),
           "poll the agents directly after the feed has been silent this long, until it "
           "answers again; at most 1h")
      .defaultText(
          "one poll interval: the first round of polls comes well before the view's "
          "data goes stale (at 3)");
}

Result<void> checkPollingOptions(const PollingOptions& options) {
  if (options.agents && options.agentService) {
    return fail("--agents and --agent-service exclude each other: give one");
  }
  if (!options.agents && !options.agentService) {
    return fail("where are the agents? give --agents NODE=URL,... or --agent-service NS/NAME");
  }
  if (options.fleetLease && options.fleetCaFile.empty()) {
    return fail("--fleet-lease needs --fleet-ca-file (the CA of the feed's certificate)");
  }
  return {};
}

std::optional<LeaderLink> linkToPublisher(kube::Client& client, const PollingOptions& options,
                                          std::chrono::milliseconds timeout) {
  if (!options.fleetLease) return std::nullopt;
  return LeaderLink(leaseLocator(client, *options.fleetLease), linkOptions(options, timeout),
                    systemClock());
}

bool FleetPolling::pollsAgents() const {
  return !feed_ || (publishes_ && publishes_()) || feed_->fallback();
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
  pollerOptions.followSamples = true;
  pollerOptions.concurrency = options.pollConcurrency;
  pollerOptions.timeout = std::chrono::milliseconds(
      std::max<long long>(1, std::llround(options.agentTimeoutSeconds * 1000)));
  auto agents = startAgentSource(client, options.agents, options.agentService);
  polling->source_ = std::move(agents.source);
  polling->discovery_ = std::move(agents.discovery);
  auto poller =
      FleetPoller::create(*polling->source_, *polling->view_, systemClock(), pollerOptions);
  if (!poller) return fail("invalid poller options: " + poller.error().message);
  polling->poller_ = std::move(*poller);

  if (options.fleetLease) {
    FeedClientOptions feed;
    static_cast<LeaderLinkOptions&>(feed) = linkOptions(options, pollerOptions.timeout);
    feed.every = polling->interval_ / 8;
    feed.fallbackAfter = options.fleetFallbackAfterSeconds > 0
                             ? std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options.fleetFallbackAfterSeconds))
                             : polling->interval_;
    auto created =
        FeedClient::create(*polling->view_, leaseLocator(client, *options.fleetLease), feed);
    if (!created) return fail("invalid fleet feed options: " + created.error().message);
    polling->feed_ = std::move(*created);
  }

  FleetPolling* p = polling.get();
  runner.atStop([p] { p->stopDiscovery(); });
  runner.add([p](std::stop_token stop) {
    p->poller_->run(
        stop, p->interval_,
        [p, last = std::optional<Clock::time_point>()](const PollRound& round) mutable {
          p->polledOnce_ = true;
          // Rounds come every quarter interval (followSamples), each with the agents that had
          // a new sample: what depends on the view hears of them once per interval.
          const Clock::time_point now = systemClock().now();
          if (last && now - *last < p->interval_) return;
          last = now;
          if (p->afterRound_) p->afterRound_(round);
        },
        [p] { return p->pollsAgents(); });
  });
  if (p->feed_) {
    runner.add([p](std::stop_token stop) {
      p->feed_->run(stop, [p] { return !(p->publishes_ && p->publishes_()); });
    });
  }
  return polling;
}

}  // namespace pi0::fleet
