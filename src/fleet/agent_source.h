// Where the fleet view finds its agents: StaticAgents is a fixed list for tests and small setups
// ("node-a=http://10.0.0.7:9560,node-b=http://10.0.0.8:9560"); in a cluster the agent Service's
// EndpointSlices list them (endpoint_slices.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pi0::fleet {

// One agent to poll: the node it runs on and its base URL ("http://10.0.0.7:9560").
struct Agent {
  std::string node;
  std::string url;

  bool operator==(const Agent&) const = default;
};

class AgentSource {
 public:
  virtual ~AgentSource() = default;
  // The agents to poll now, one per node. Called by the poller's thread once per round.
  virtual std::vector<Agent> agents() = 0;
  // Whether agents() tells the truth yet (a discovery has its first list in).
  virtual bool synced() const { return true; }
};

// An agent's base URL, taken apart: agents serve plain HTTP.
struct AgentAddress {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  int port = 80;
};

// Accepts "http://HOST[:PORT][/]" with HOST a DNS name, an IPv4 address or a bracketed IPv6
// address ("http://[fd00::7]:9560"). Anything else (another scheme, a path, a bad port) is an
// Error naming the URL.
Result<AgentAddress> parseAgentUrl(std::string_view url);

// The fleet feed's base URL (feed.h), "https://HOST[:PORT][/]" (port 443 by default), with the
// same rules for HOST.
Result<AgentAddress> parseFeedUrl(std::string_view url);

class StaticAgents final : public AgentSource {
 public:
  // "node=URL,node=URL,...": spaces around entries are ignored; an empty entry, a missing '=',
  // an empty node name, an invalid URL or a node listed twice is an Error naming the entry.
  static Result<StaticAgents> parse(std::string_view spec);

  explicit StaticAgents(std::vector<Agent> agents) : agents_(std::move(agents)) {}

  std::vector<Agent> agents() override { return agents_; }

 private:
  std::vector<Agent> agents_;
};

// The agent Service whose EndpointSlices list the agents (--agent-service NAMESPACE/NAME).
struct ServiceRef {
  std::string ns;
  std::string name;

  bool operator==(const ServiceRef&) const = default;
};

// "NAMESPACE/NAME", both DNS-1123 labels; anything else is an Error naming the text.
Result<ServiceRef> parseServiceRef(std::string_view text);

}  // namespace pi0::fleet
