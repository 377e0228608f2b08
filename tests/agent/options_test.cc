#include <doctest/doctest.h>

#include "agent/options.h"

using pi0::agent::parseListenAddress;
using pi0::agent::parseOptions;

TEST_CASE("defaults") {
  auto o = parseOptions({});
  REQUIRE(o);
  CHECK(o->listen.host == "0.0.0.0");
  CHECK(o->listen.port == 9560);
  CHECK(o->intervalSeconds == 1.0);
  CHECK(o->window == 64);
  CHECK(o->horizon == 30);
  CHECK(o->pressureLine == doctest::Approx(0.2));
  CHECK(o->hostRoot == "/");
  CHECK(o->stateDir.empty());
  CHECK(o->syntheticFile.empty());
  CHECK(o->gpuProbeIntervalSeconds == 300.0);
  CHECK_FALSE(o->nodeName.empty());  // $NODE_NAME or the host name
}

TEST_CASE("every flag, in both spellings") {
  auto o = parseOptions({"--listen",
                         "127.0.0.1:0",
                         "--interval=250ms",
                         "--window",
                         "32",
                         "--horizon=12",
                         "--pressure-line",
                         "35",
                         "--host-root",
                         "/host",
                         "--node-name=n1",
                         "--state-dir",
                         "/var/lib/pi0",
                         "--state-interval",
                         "2s",
                         "--source",
                         "synthetic:p.yaml",
                         "--nvml-library",
                         "none",
                         "--gpu-probe-interval",
                         "0",
                         "--log-level",
                         "debug"});
  REQUIRE(o);
  CHECK(o->listen.host == "127.0.0.1");
  CHECK(o->listen.port == 0);
  CHECK(o->intervalSeconds == doctest::Approx(0.25));
  CHECK(o->window == 32);
  CHECK(o->horizon == 12);
  CHECK(o->pressureLine == doctest::Approx(0.35));
  CHECK(o->hostRoot == "/host");
  CHECK(o->nodeName == "n1");
  CHECK(o->stateDir == "/var/lib/pi0");
  CHECK(o->stateIntervalSeconds == 2.0);
  CHECK(o->syntheticFile == "p.yaml");
  CHECK(o->nvmlLibrary == "none");
  CHECK(o->gpuProbeIntervalSeconds == 0.0);
  CHECK(o->logLevel == pi0::log::Level::kDebug);
}

TEST_CASE("bad flags say what is wrong") {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const Case cases[] = {
      {{"--interval", "0s"}, "--interval must be greater than 0"},
      {{"--interval", "fast"}, "invalid duration 'fast'"},
      {{"--window", "63"}, "--window: '63'"},
      {{"--window", "4"}, "--window: '4'"},
      {{"--horizon", "0"}, "--horizon: '0' is not a number of samples in 1..4096"},
      {{"--pressure-line", "0.2"}, "--pressure-line: '0.2' is not a whole percent in 1..100"},
      {{"--pressure-line", "101"}, "--pressure-line: '101'"},
      {{"--listen", "9560"}, "not HOST:PORT"},
      {{"--listen", "0.0.0.0:99999"}, "invalid port"},
      {{"--source", "kafka"}, "neither 'proc' nor 'synthetic:FILE'"},
      {{"--log-level", "loud"}, "unknown log level 'loud'"},
      {{"--window"}, "--window needs a value"},
      {{"--gpu-probe-interval", "30s"}, "at least 1m"},
      {{"--gpu-probe-interval", "1e300s"}, "at most 168h"},
      {{"--interval", "2h"}, "--interval must be at most 1h"},
      {{"--state-interval", "1e20"}, "--state-interval must be at most 1h"},
      {{"--frobnicate"}, "unknown flag '--frobnicate'"},
  };
  for (const auto& c : cases) {
    auto o = parseOptions(c.args);
    REQUIRE_FALSE(o);
    INFO(o.error().message);
    CHECK(o.error().message.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("listen addresses") {
  auto v6 = parseListenAddress("[::1]:9000");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 9000);
  auto any = parseListenAddress(":9000");
  REQUIRE(any);
  CHECK(any->host == "0.0.0.0");
}
