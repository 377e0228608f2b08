#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "fleet/agent_source.h"

using namespace pi0::fleet;

TEST_CASE("agent URLs") {
  struct Case {
    const char* url;
    const char* host;  // nullptr: an error starting with `error`
    int port;
    const char* error;
  };
  const Case cases[] = {
      {"http://127.0.0.1:9560", "127.0.0.1", 9560, nullptr},
      {"http://127.0.0.1:9560/", "127.0.0.1", 9560, nullptr},
      {"HTTP://Agent-1.pi0.svc:80", "Agent-1.pi0.svc", 80, nullptr},
      {"http://node-a", "node-a", 80, nullptr},
      {"http://[fd00::7]:9560", "fd00::7", 9560, nullptr},
      {"http://[::1]", "::1", 80, nullptr},
      {"https://10.0.0.1:9560", nullptr, 0,
       "agent URL \"https://10.0.0.1:9560\": https is not supported"},
      {"10.0.0.1:9560", nullptr, 0, "agent URL \"10.0.0.1:9560\": does not start with http://"},
      {"http://10.0.0.1:9560/fingerprint", nullptr, 0,
       "agent URL \"http://10.0.0.1:9560/fingerprint\": only http://HOST[:PORT]"},
      {"http://user@10.0.0.1", nullptr, 0, "agent URL \"http://user@10.0.0.1\": only"},
      {"http://", nullptr, 0, "agent URL \"http://\": no host"},
      {"http://:9560", nullptr, 0, "agent URL \"http://:9560\": no host"},
      {"http://10.0.0.1:", nullptr, 0, "agent URL \"http://10.0.0.1:\": empty port"},
      {"http://10.0.0.1:0", nullptr, 0, "agent URL \"http://10.0.0.1:0\": port out of range"},
      {"http://10.0.0.1:65536", nullptr, 0, "agent URL \"http://10.0.0.1:65536\": port out"},
      {"http://10.0.0.1:99999999999999999999", nullptr, 0, "agent URL \"http://10.0.0.1:9999"},
      {"http://10.0.0.1:95x0", nullptr, 0, "agent URL \"http://10.0.0.1:95x0\": invalid port"},
      {"http://fd00::7:9560", nullptr, 0,
       "agent URL \"http://fd00::7:9560\": an IPv6 address must be in [brackets]"},
      {"http://[fd00::7", nullptr, 0, "agent URL \"http://[fd00::7\": unterminated"},
      {"http://[zz]:1", nullptr, 0, "agent URL \"http://[zz]:1\": invalid IPv6"},
      {"http://[::1]x", nullptr, 0, "agent URL \"http://[::1]x\": unexpected text after ]"},
      {"http://no de", nullptr, 0, "agent URL \"http://no de\": invalid host \"no de\""},
  };
  for (const Case& c : cases) {
    const std::string urlText = c.url;
    CAPTURE(urlText);
    auto address = parseAgentUrl(c.url);
    if (c.host) {
      REQUIRE_MESSAGE(address, (address ? "" : address.error().message));
      CHECK(address->host == c.host);
      CHECK(address->port == c.port);
    } else {
      REQUIRE_FALSE(address);
      CAPTURE(address.error().message);
      CHECK(address.error().message.starts_with(c.error));
    }
  }
}

TEST_CASE("a static agent list") {
  auto agents = StaticAgents::parse(
      "node-a=http://127.0.0.1:9560, node-b = http://10.0.0.8:9560/ ,node-c=http://[::1]:1");
  REQUIRE_MESSAGE(agents, (agents ? "" : agents.error().message));
  const std::vector<Agent> want = {{"node-a", "http://127.0.0.1:9560"},
                                   {"node-b", "http://10.0.0.8:9560/"},
                                   {"node-c", "http://[::1]:1"}};
  CHECK(agents->agents() == want);
  CHECK(agents->agents() == want);  // the same every round
}

TEST_CASE("a bad static agent list names the bad entry") {
  struct Case {
    const char* spec;
    const char* error;
  };
  const Case cases[] = {
      {"", "agent list: empty"},
      {"  ", "agent list: empty"},
      {"node-a=http://a:1,", "agent list entry 2: empty"},
      {",node-a=http://a:1", "agent list entry 1: empty"},
      {"node-a=http://a:1,,node-b=http://b:1", "agent list entry 2: empty"},
      {"node-a", "agent list entry 1 \"node-a\": not NODE=URL"},
      {"node-a=http://a:1,http://b:1", "agent list entry 2 \"http://b:1\": not NODE=URL"},
      {"=http://a:1", "agent list entry 1 \"=http://a:1\": empty node name"},
      {"node-a=", "agent list entry 1 (node-a): agent URL \"\": does not start with http://"},
      {"node-a=https://a:1", "agent list entry 1 (node-a): agent URL \"https://a:1\": https"},
      {"node-a=http://a:1,node-a=http://b:1",
       "agent list entry 2: node \"node-a\" is listed twice"},
  };
  for (const Case& c : cases) {
    const std::string specText = c.spec;
    CAPTURE(specText);
    auto agents = StaticAgents::parse(c.spec);
    REQUIRE_FALSE(agents);
    CAPTURE(agents.error().message);
    CHECK(agents.error().message.starts_with(c.error));
  }
}
