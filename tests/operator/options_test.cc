#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "operator/options.h"

using pi0::op::BindAddress;
using pi0::op::Environment;
using pi0::op::parseBindAddress;
using pi0::op::parseOptions;

namespace {

// No service account namespace file, a fixed host name and suffix.
Environment testEnv() {
  Environment env;
  env.hostname = "host-1";
  env.namespaceFile = "";
  env.identitySuffix = "abc123";
  return env;
}

const std::string kAgents = "node-a=http://127.0.0.1:9560";

std::string errorOf(const std::vector<std::string>& args, const Environment& env = testEnv()) {
  auto o = parseOptions(args, env);
  REQUIRE_FALSE(o);
  return o.error().message;
}

}  // namespace

TEST_CASE("defaults") {
  auto o = parseOptions({"--agents", kAgents}, testEnv());
  REQUIRE(o);
  CHECK(o->kubeconfig.empty());
  CHECK_FALSE(o->leaderElect);
  CHECK(o->leaderElectionNamespace == "default");
  CHECK(o->leaderElectionId == "pi0-operator");
  CHECK(o->metricsBindAddress == BindAddress{true, "0.0.0.0", 8080});
  CHECK(o->healthProbeBindAddress == BindAddress{true, "0.0.0.0", 8081});
  REQUIRE(o->agents);
  REQUIRE(o->agents->size() == 1);
  CHECK((*o->agents)[0].node == "node-a");
  CHECK((*o->agents)[0].url == "http://127.0.0.1:9560");
  CHECK_FALSE(o->agentService);
  CHECK(o->pollIntervalSeconds == 1.0);
  CHECK(o->agentTimeoutSeconds == 2.0);
  CHECK(o->pollConcurrency == 8);
  CHECK(o->qps == 20);
  CHECK(o->burst == 30);
  CHECK(o->logLevel == pi0::log::Level::kInfo);
  CHECK(o->identity == "host-1_abc123");
  CHECK(o->ledgerPath.empty());
  CHECK(o->ledgerMaxAge == std::chrono::hours(24 * 7));
  CHECK(o->ledgerMaxMiB == 1024);
  CHECK(o->outcomeHorizon == std::chrono::minutes(15));
}

TEST_CASE("the ledger's flags") {
  auto o =
      parseOptions({"--agents", kAgents, "--ledger-path", "/var/lib/pi0/ledger.db",
                    "--ledger-max-age", "48h", "--ledger-max-mib", "64", "--outcome-horizon", "5m"},
                   testEnv());
  REQUIRE(o);
  CHECK(o->ledgerPath == "/var/lib/pi0/ledger.db");
  CHECK(o->ledgerMaxAge == std::chrono::hours(48));
  CHECK(o->ledgerMaxMiB == 64);
  CHECK(o->outcomeHorizon == std::chrono::minutes(5));
  CHECK(errorOf({"--agents", kAgents, "--ledger-writers", "system:serviceaccount:a:b"})
            .find("--ledger-writers needs --ledger-path and --fleet-bind-address") !=
        std::string::npos);
  CHECK(errorOf({"--agents", kAgents, "--ledger-max-mib", "0"}).find("--ledger-max-mib") !=
        std::string::npos);
  CHECK(errorOf({"--agents", kAgents, "--outcome-horizon", "48h"}).find("--outcome-horizon") !=
        std::string::npos);
}

TEST_CASE("every flag, in both spellings") {
  auto o = parseOptions({"--kubeconfig",
                         "/k/config",
                         "--leader-elect",
                         "--leader-election-namespace=pi0",
                         "--leader-election-id",
                         "my-lease",
                         "--metrics-bind-address=127.0.0.1:0",
                         "--health-probe-bind-address",
                         "[::1]:9000",
                         "--agent-service",
                         "pi0/pi0-agent",
                         "--poll-interval",
                         "250ms",
                         "--agent-timeout=1.5s",
                         "--poll-concurrency=64",
                         "--qps",
                         "7.5",
                         "--burst=12",
                         "--log-level",
                         "debug",
                         "--identity",
                         "me"},
                        testEnv());
  REQUIRE(o);
  CHECK(o->kubeconfig == "/k/config");
  CHECK(o->leaderElect);
  CHECK(o->leaderElectionNamespace == "pi0");
  CHECK(o->leaderElectionId == "my-lease");
  CHECK(o->metricsBindAddress == BindAddress{true, "127.0.0.1", 0});
  CHECK(o->healthProbeBindAddress == BindAddress{true, "::1", 9000});
  CHECK_FALSE(o->agents);
  REQUIRE(o->agentService);
  CHECK(o->agentService->ns == "pi0");
  CHECK(o->agentService->name == "pi0-agent");
  CHECK(o->pollIntervalSeconds == doctest::Approx(0.25));
  CHECK(o->agentTimeoutSeconds == doctest::Approx(1.5));
  CHECK(o->pollConcurrency == 64);
  CHECK(o->qps == doctest::Approx(7.5));
  CHECK(o->burst == 12);
  CHECK(o->logLevel == pi0::log::Level::kDebug);
  CHECK(o->identity == "me");
}

TEST_CASE("--leader-elect is a bool flag: it never takes the next argument") {
  struct Case {
    std::vector<std::string> args;
    bool want;
  };
  for (const auto& c : std::vector<Case>{{{"--leader-elect"}, true},
                                         {{"--leader-elect=true"}, true},
                                         {{"--leader-elect=false"}, false},
                                         {{"--leader-elect=1"}, true},
                                         {{"--leader-elect=0"}, false},
                                         {{"--leader-elect", "--leader-elect=false"}, false}}) {
    auto args = c.args;
    args.insert(args.begin(), {"--agents", kAgents});
    auto o = parseOptions(args, testEnv());
    REQUIRE(o);
    CHECK(o->leaderElect == c.want);
  }
  // "--leader-elect false" is the flag, then a stray argument.
  CHECK(errorOf({"--agents", kAgents, "--leader-elect", "false"}) == "unknown flag 'false'");
  CHECK(errorOf({"--agents", kAgents, "--leader-elect=yes"}).find("not true or false") !=
        std::string::npos);
}

TEST_CASE("bind addresses") {
  CHECK(*parseBindAddress("--x", ":8080") == BindAddress{true, "0.0.0.0", 8080});
  CHECK(*parseBindAddress("--x", "0") == BindAddress{false, "", 0});
  CHECK(*parseBindAddress("--x", ":0") == BindAddress{true, "0.0.0.0", 0});
  CHECK(*parseBindAddress("--x", "10.1.2.3:9") == BindAddress{true, "10.1.2.3", 9});
  for (const char* bad : {"8080", ":65536", ":x", "host:", ""}) {
    CAPTURE(bad);
    auto a = parseBindAddress("--metrics-bind-address", bad);
    REQUIRE_FALSE(a);
    CHECK(a.error().message.starts_with("--metrics-bind-address: "));
  }
  auto o = parseOptions({"--agents", kAgents, "--metrics-bind-address", "0"}, testEnv());
  REQUIRE(o);
  CHECK_FALSE(o->metricsBindAddress.enabled);
  CHECK(o->healthProbeBindAddress.enabled);
}

TEST_CASE("usage errors name the flag") {
  struct Case {
    std::vector<std::string> args;
    std::string want;  // a part of the message
  };
  for (const auto& c : std::vector<Case>{
           {{"--agents", kAgents, "--nope"}, "unknown flag '--nope'"},
           {{"--agents", kAgents, "extra"}, "unknown flag 'extra'"},
           {{"--agents", kAgents, "--kubeconfig"}, "--kubeconfig needs a value"},
           {{"--agents", kAgents, "--kubeconfig="}, "--kubeconfig must not be empty"},
           {{"--agents", kAgents, "--poll-interval", "fast"}, "--poll-interval: "},
           {{"--agents", kAgents, "--poll-interval", "0s"}, "--poll-interval must be greater"},
           {{"--agents", kAgents, "--agent-timeout", "2h"}, "--agent-timeout must be at most 1h"},
           {{"--agents", kAgents, "--poll-concurrency", "0"}, "--poll-concurrency: '0'"},
           {{"--agents", kAgents, "--qps", "0"}, "--qps: '0'"},
           {{"--agents", kAgents, "--qps", "1x"}, "--qps: '1x'"},
           {{"--agents", kAgents, "--burst", "0"}, "--burst: '0'"},
           {{"--agents", kAgents, "--log-level", "loud"}, "--log-level: "},
           {{"--agents", kAgents, "--leader-election-id", "Bad_Name"}, "--leader-election-id: "},
           {{"--agents", kAgents, "--leader-election-namespace", "a.b"},
            "--leader-election-namespace: "},
           {{"--agents", "node-a"}, "--agents: "},
           {{"--agent-service", "pi0"}, "--agent-service: 'pi0' is not NAMESPACE/NAME"},
           {{"--agent-service", "pi0/"}, "--agent-service: "},
           {{"--agents", kAgents, "--agent-service", "pi0/a"}, "exclude each other"},
           {{}, "--agents NODE=URL"},
       }) {
    const auto message = errorOf(c.args);
    CAPTURE(message);
    CHECK(message.find(c.want) != std::string::npos);
  }
}

TEST_CASE("--help and --version need nothing else") {
  auto o = parseOptions({"--help"}, testEnv());
  REQUIRE(o);
  CHECK(o->help);
  o = parseOptions({"--version"}, testEnv());
  REQUIRE(o);
  CHECK(o->version);
  CHECK(pi0::op::usage().find("--leader-elect") != std::string::npos);
}

TEST_CASE("defaults from the environment") {
  SUBCASE("the pod name wins over the host name") {
    auto env = testEnv();
    env.podName = "pi0-operator-7d9f-x2";
    auto o = parseOptions({"--agents", kAgents}, env);
    REQUIRE(o);
    CHECK(o->identity == "pi0-operator-7d9f-x2_abc123");
  }
  SUBCASE("a random suffix: six hex digits, different per process") {
    auto env = testEnv();
    env.identitySuffix.clear();
    auto a = parseOptions({"--agents", kAgents}, env);
    auto b = parseOptions({"--agents", kAgents}, env);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(a->identity.size() == std::string("host-1_").size() + 6);
    CHECK(a->identity.starts_with("host-1_"));
    CHECK(a->identity.substr(7).find_first_not_of("0123456789abcdef") == std::string::npos);
    // 1 in 16^6 that they are equal by chance; two more tries make that 1 in 16^18.
    bool differ = a->identity != b->identity;
    for (int i = 0; i < 2 && !differ; ++i) {
      differ = parseOptions({"--agents", kAgents}, env)->identity != a->identity;
    }
    CHECK(differ);
  }
  SUBCASE("the in-cluster namespace file names the Lease's namespace") {
    std::random_device rd;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("pi0-op-options-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    { std::ofstream(dir / "namespace") << "pi0-system\n"; }
    auto env = testEnv();
    env.namespaceFile = dir / "namespace";
    auto o = parseOptions({"--agents", kAgents}, env);
    auto explicitNs =
        parseOptions({"--agents", kAgents, "--leader-election-namespace", "other"}, env);
    std::filesystem::remove_all(dir);
    REQUIRE(o);
    CHECK(o->leaderElectionNamespace == "pi0-system");
    REQUIRE(explicitNs);
    CHECK(explicitNs->leaderElectionNamespace == "other");
  }
}
