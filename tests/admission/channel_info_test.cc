// The pod's channel, the acting matrix, and what the webhook tells decide() about the channel.
#include <doctest/doctest.h>

#include "admission/channel_info.h"

#include <chrono>
#include <cstdint>
#include <limits>

using nlohmann::json;
using namespace pi0::admission;
using pi0::stability::ChannelState;

namespace {

ObjectPtr object(const char* text) {
  return std::make_shared<const json>(json::parse(text));
}

ObjectPtr channel(const std::string& ns, const std::string& name, const json& selector) {
  json c = {{"apiVersion", "stability.pi0.io/v1alpha1"},
            {"kind", "Channel"},
            {"metadata", {{"namespace", ns}, {"name", name}, {"uid", name}}},
            {"spec", {{"targets", json::array({{{"kind", "Deployment"}, {"name", name}}})}}}};
  if (!selector.is_null()) c["spec"]["selector"] = selector;
  return std::make_shared<const json>(c);
}

const char* kMatrix = R"({
  "apiVersion": "stability.pi0.io/v1alpha1", "kind": "ShutdownMatrix",
  "metadata": {"name": "default", "creationTimestamp": "2026-11-20T10:00:00Z"},
  "spec": {
    "levels": [{"name": "normal", "upperBound": 0.6}, {"name": "elevated", "upperBound": 0.8},
               {"name": "high", "upperBound": 0.9}, {"name": "critical"}],
    "rows": [{"channel": {"namespace": "shop", "name": "batch"},
              "cells": [{"level": "elevated", "action": "Degrade"},
                        {"level": "high", "action": "Shutdown"}]}],
    "hysteresis": {"margin": 0.05, "dwellSeconds": 60}},
  "status": {"level": "critical", "levelIndex": 3, "load": 0.93}
})";

}  // namespace

TEST_CASE("a pod's channel: its namespace, a matching selector, the first by name") {
  const std::vector<ObjectPtr> channels = {
      channel("shop", "web", nullptr),  // default selector stability.pi0.io/channel=web
      channel("shop", "zeta", {{"matchLabels", {{"app", "web"}}}}),
      channel("shop", "alpha", {{"matchLabels", {{"app", "web"}}}}),
      channel("other", "web", nullptr),
  };
  auto c = channelOfPod("shop", {{"stability.pi0.io/channel", "web"}}, channels);
  REQUIRE(c);
  CHECK((*c)["metadata"]["name"] == "web");
  CHECK((*c)["metadata"]["namespace"] == "shop");
  c = channelOfPod("shop", {{"app", "web"}}, channels);
  REQUIRE(c);
  CHECK((*c)["metadata"]["name"] == "alpha");
  CHECK_FALSE(channelOfPod("shop", {{"app", "db"}}, channels));
  CHECK_FALSE(channelOfPod("empty", {{"stability.pi0.io/channel", "web"}}, channels));
}

TEST_CASE("the acting matrix is the oldest in Enforce mode, else the oldest") {
  const auto older = object(
      R"({"metadata": {"name": "b", "creationTimestamp": "2026-11-01T00:00:00Z"},
          "spec": {"mode": "DryRun"}})");
  const auto enforce = object(
      R"({"metadata": {"name": "c", "creationTimestamp": "2026-11-02T00:00:00Z"},
          "spec": {"mode": "Enforce"}})");
  const auto newer = object(
      R"({"metadata": {"name": "a", "creationTimestamp": "2026-11-03T00:00:00Z"}, "spec": {}})");
  CHECK(actingMatrix({older, enforce, newer}) == enforce);
  CHECK(actingMatrix({older}) == older);
  CHECK_FALSE(actingMatrix({}));
}

TEST_CASE("what the webhook tells decide() about an Inactive channel and its buffer") {
  auto c = json(*channel("shop", "batch", nullptr));
  c["status"] = {{"state", "Inactive"},
                 {"buffer",
                  {{"allocated", {{"cpu", "2"}, {"memory", "1Gi"}}},
                   {"used", {{"cpu", "500m"}, {"memory", "2Gi"}}}}}};
  const auto matrix = json::parse(kMatrix);
  const ChannelInfo info = channelInfo(c, &matrix);
  CHECK(info.name == "shop/batch");
  CHECK(info.state == ChannelState::kInactive);
  CHECK(info.level == "critical");
  CHECK(info.load == doctest::Approx(0.93));
  CHECK(info.elevated);
  // Shut down from level high on: back when ℓ stays under elevated's bound 0.8 − 0.05.
  REQUIRE(info.resumeBelow);
  CHECK(*info.resumeBelow == doctest::Approx(0.75));
  REQUIRE(info.bufferRemaining);
  CHECK(info.bufferRemaining->cpuMilli == 1500);
  CHECK(info.bufferRemaining->memoryBytes == 0);  // more used than allocated: nothing left

  // A channel without a row (GDO or the stability trigger): the level below the current one.
  auto other = json(*channel("shop", "web", nullptr));
  other["status"] = {{"state", "Degraded"}};
  const ChannelInfo web = channelInfo(other, &matrix);
  CHECK(web.state == ChannelState::kDegraded);
  REQUIRE(web.resumeBelow);
  CHECK(*web.resumeBelow == doctest::Approx(0.85));
  CHECK_FALSE(web.bufferRemaining);

  // No matrix, no status: Active, not elevated, nothing known.
  const ChannelInfo bare = channelInfo(*channel("shop", "new", nullptr), nullptr);
  CHECK(bare.state == ChannelState::kActive);
  CHECK_FALSE(bare.elevated);
  CHECK_FALSE(bare.resumeBelow);
  CHECK(bare.level.empty());
}

TEST_CASE("a status with absurd buffer quantities does not overflow the remainder") {
  // Found by tests/fuzz: allocated near the int64 limit and a negative used.
  json c = *channel("shop", "web", nullptr);
  c["status"] = {{"state", "Active"},
                 {"buffer",
                  {{"allocated", {{"cpu", "9223372036854775807m"}, {"memory", "4Ei"}}},
                   {"used", {{"cpu", "-1"}, {"memory", "-4Ei"}}}}}};
  const auto matrix = object(kMatrix);
  const ChannelInfo info = channelInfo(c, matrix.get());
  REQUIRE(info.bufferRemaining);
  CHECK(*info.bufferRemaining->cpuMilli == std::numeric_limits<int64_t>::max());
  CHECK(*info.bufferRemaining->memoryBytes == std::numeric_limits<int64_t>::max());
  // A used above the allocation leaves nothing, not a negative remainder.
  c["status"]["buffer"]["used"] = {{"cpu", "9223372036854775807m"}, {"memory", "4Ei"}};
  c["status"]["buffer"]["allocated"] = {{"cpu", "-1"}, {"memory", "1Gi"}};
  const ChannelInfo spent = channelInfo(c, matrix.get());
  CHECK(*spent.bufferRemaining->cpuMilli == 0);
  CHECK(*spent.bufferRemaining->memoryBytes == 0);
}

TEST_CASE("restoring: the acting matrix's status.channels entry for the channel") {
  auto matrix = json::parse(kMatrix);
  matrix["status"]["channels"] = json::parse(R"([
    {"channel": {"namespace": "other", "name": "batch"}, "state": "Inactive", "target": "Active",
     "restoring": false},
    {"channel": {"namespace": "shop", "name": "batch"}, "state": "Inactive", "target": "Active",
     "restoring": true},
    {"channel": {"namespace": "shop", "name": "web"}, "state": "Degraded", "target": "Degraded",
     "restoring": false},
    {"channel": {"namespace": "shop", "name": "cache"}, "state": "Inactive",
     "target": "Inactive"},
    {"channel": {"namespace": "shop", "name": "odd"}, "restoring": "true"},
    {"channel": "shop/broken"},
    7
  ])");
  auto info = [&](const std::string& ns, const std::string& name, const json* m) {
    auto c = json(*channel(ns, name, nullptr));
    c["status"] = {{"state", "Inactive"}};
    return channelInfo(c, m);
  };
  CHECK(info("shop", "batch", &matrix).restoring);
  CHECK_FALSE(info("other", "batch", &matrix).restoring);  // same name, other namespace
  CHECK_FALSE(info("shop", "web", &matrix).restoring);     // false in the entry
  CHECK_FALSE(info("shop", "cache", &matrix).restoring);   // the field is absent
  CHECK_FALSE(info("shop", "odd", &matrix).restoring);     // not a boolean
  CHECK_FALSE(info("shop", "new", &matrix).restoring);     // no entry for the channel
  CHECK_FALSE(info("shop", "batch", nullptr).restoring);   // no matrix
  // A matrix whose status has no channels yet (an older operator), or not a list.
  auto before = json::parse(kMatrix);
  CHECK_FALSE(info("shop", "batch", &before).restoring);  // no status.channels at all
  before["status"]["channels"] = "not a list";
  CHECK_FALSE(info("shop", "batch", &before).restoring);
}

TEST_CASE("the buffer's observedAt: when the operator counted the channel's pods") {
  auto c = json(*channel("shop", "web", nullptr));
  CHECK_FALSE(channelInfo(c, nullptr).bufferObservedAt);  // an operator that does not write it
  c["status"] = {{"state", "Active"}, {"buffer", {{"observedAt", "2026-11-22T10:00:01.250Z"}}}};
  const auto at = channelInfo(c, nullptr).bufferObservedAt;
  REQUIRE(at);
  // 2026-11-22T10:00:00Z is 1795341600 s after the epoch.
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(at->time_since_epoch()).count() ==
        1795341601250);
  c["status"]["buffer"]["observedAt"] = "yesterday";
  CHECK_FALSE(channelInfo(c, nullptr).bufferObservedAt);
  c["status"]["buffer"]["observedAt"] = 7;
  CHECK_FALSE(channelInfo(c, nullptr).bufferObservedAt);
}
