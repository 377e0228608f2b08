#include "fleet/agent_source.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "kube/names.h"

namespace pi0::fleet {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(), [](char p, char c) {
           return std::tolower(static_cast<unsigned char>(c)) == p;
         });
}

bool isHostNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
}

bool isIpv6Char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

}  // namespace

namespace {

// SCHEME://HOST[:PORT][/] (SCHEME being "http" or "https") into its host and port.
Result<AgentAddress> parseBaseUrl(std::string_view url, std::string_view scheme, int defaultPort,
                                  const std::string& quoted) {
  const std::string prefix = std::string(scheme) + "://";
  if (!startsWithNoCase(url, prefix)) return fail(quoted + ": does not start with " + prefix);
  std::string_view rest = url.substr(prefix.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    return fail(quoted + ": only " + prefix + "HOST[:PORT] is allowed (no path, query or user)");

  AgentAddress address;
  address.port = defaultPort;
  std::string_view portText;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail(quoted + ": unterminated [IPv6 address]");
    const std::string_view host = rest.substr(1, close - 1);
    if (host.empty() || host.find(':') == std::string_view::npos ||
        !std::all_of(host.begin(), host.end(), isIpv6Char))
      return fail(quoted + ": invalid IPv6 address");
    address.host = host;
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return fail(quoted + ": unexpected text after ]");
      portText = after.substr(1);
      if (portText.empty()) return fail(quoted + ": empty port");
    }
  } else {
    if (std::count(rest.begin(), rest.end(), ':') > 1)
      return fail(quoted + ": an IPv6 address must be in [brackets]");
    const auto colon = rest.find(':');
    const std::string_view host = rest.substr(0, colon);
    if (host.empty()) return fail(quoted + ": no host");
    if (!std::all_of(host.begin(), host.end(), isHostNameChar))
      return fail(quoted + ": invalid host \"" + std::string(host) + "\"");
    address.host = host;
    if (colon != std::string_view::npos) {
      portText = rest.substr(colon + 1);
      if (portText.empty()) return fail(quoted + ": empty port");
    }
  }
  if (!portText.empty()) {
    int port = 0;
    for (char c : portText) {
      if (c < '0' || c > '9' || port > 65535) return fail(quoted + ": invalid port");
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return fail(quoted + ": port out of range 1-65535");
    address.port = port;
  }
  return address;
}

}  // namespace

Result<AgentAddress> parseAgentUrl(std::string_view url) {
  const std::string quoted = "agent URL \"" + std::string(url) + "\"";
  if (startsWithNoCase(url, "https://"))
    return fail(quoted + ": https is not supported (agents serve plain HTTP)");
  return parseBaseUrl(url, "http", 80, quoted);
}

Result<AgentAddress> parseFeedUrl(std::string_view url) {
  return parseBaseUrl(url, "https", 443, "fleet feed URL \"" + std::string(url) + "\"");
}

Result<StaticAgents> StaticAgents::parse(std::string_view spec) {
  std::vector<Agent> agents;
  std::set<std::string, std::less<>> seen;
  if (trim(spec).empty()) return fail("agent list: empty");
  std::size_t index = 0;
  while (true) {
    const auto comma = spec.find(',');
    const std::string_view entry = trim(spec.substr(0, comma));
    const std::string where = "agent list entry " + std::to_string(index + 1);
    if (entry.empty()) return fail(where + ": empty");
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos)
      return fail(where + " \"" + std::string(entry) + "\": not NODE=URL");
    const std::string_view node = trim(entry.substr(0, eq));
    const std::string_view url = trim(entry.substr(eq + 1));
    if (node.empty()) return fail(where + " \"" + std::string(entry) + "\": empty node name");
    if (auto address = parseAgentUrl(url); !address)
      return fail(where + " (" + std::string(node) + "): " + address.error().message);
    if (!seen.emplace(node).second)
      return fail(where + ": node \"" + std::string(node) + "\" is listed twice");
    agents.push_back({std::string(node), std::string(url)});
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
    ++index;
  }
  return StaticAgents(std::move(agents));
}

Result<ServiceRef> parseServiceRef(std::string_view text) {
  const auto slash = text.find('/');
  ServiceRef ref;
  if (slash != std::string_view::npos) {
    ref = ServiceRef{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
  }
  if (slash == std::string_view::npos || !kube::isDnsLabel(ref.ns) || !kube::isDnsLabel(ref.name)) {
    std::string message = "'";  // appended, not "'" + ...: GCC 12 warns -Wrestrict on that
    message.append(text).append("' is not NAMESPACE/NAME (e.g. pi0/pi0-agent)");
    return fail(message);
  }
  return ref;
}

}  // namespace pi0::fleet
