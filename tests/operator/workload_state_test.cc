// The annotations that make every change of the operator restorable from the cluster alone.
#include <doctest/doctest.h>

#include "common/timestamp.h"
#include "workload_state.h"

using nlohmann::json;
using namespace pi0::op;

namespace {
json deployment(int replicas) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", "web"}, {"namespace", "shop"}}},
          {"spec", {{"replicas", replicas}}}};
}
json hpa(int min, int max) {
  return {{"apiVersion", "autoscaling/v1"},
          {"kind", "HorizontalPodAutoscaler"},
          {"metadata", {{"name", "web"}}},
          {"spec", {{"minReplicas", min}, {"maxReplicas", max}}}};
}
}  // namespace

TEST_CASE("degrade, shut down and restore keep the original count in one place") {
  json d = deployment(5);
  CHECK_FALSE(originalReplicas(d));
  REQUIRE(scaleDown(d, 2, "shop/web"));
  CHECK(d["spec"]["replicas"] == 2);
  CHECK(originalReplicas(d) == 5);
  CHECK(d["metadata"]["annotations"][kManagedBy] == "shop/web");
  CHECK_FALSE(scaleDown(d, 2, "shop/web"));  // idempotent: nothing more to do
  // Shutting down after a degrade keeps the first record: the original is 5, not 2.
  REQUIRE(scaleDown(d, 0, "shop/web"));
  CHECK(d["spec"]["replicas"] == 0);
  CHECK(originalReplicas(d) == 5);
  REQUIRE(restoreReplicas(d));
  CHECK(d["spec"]["replicas"] == 5);
  CHECK_FALSE(originalReplicas(d));
  CHECK_FALSE(d["metadata"]["annotations"].contains(kManagedBy));
  CHECK_FALSE(restoreReplicas(d));  // idempotent
}

TEST_CASE("a workload already below the degraded count is marked but never scaled up") {
  json d = deployment(1);
  REQUIRE(scaleDown(d, 3, "shop/web"));
  CHECK(d["spec"]["replicas"] == 1);
  CHECK(originalReplicas(d) == 1);
  REQUIRE(restoreReplicas(d));
  CHECK(d["spec"]["replicas"] == 1);
}

TEST_CASE("an absent replica count counts as 1, as the apiserver defaults it") {
  json d = deployment(0);
  d["spec"].erase("replicas");
  REQUIRE(scaleDown(d, 0, "shop/web"));
  CHECK(originalReplicas(d) == 1);
}

TEST_CASE("a malformed record is not trusted") {
  for (const char* bad : {"-1", "three", "", "2x"}) {
    CAPTURE(bad);
    json d = deployment(4);
    d["metadata"]["annotations"][kOriginalReplicas] = bad;
    CHECK_FALSE(originalReplicas(d));
  }
  json d = deployment(4);
  d["metadata"]["annotations"] = "not an object";
  CHECK_FALSE(originalReplicas(d));
}

TEST_CASE("autoscaler bounds are capped and restored") {
  json h = hpa(3, 10);
  REQUIRE(limitAutoscaler(h, 2, "shop/web"));
  CHECK(h["spec"]["maxReplicas"] == 2);
  CHECK(h["spec"]["minReplicas"] == 2);
  CHECK_FALSE(limitAutoscaler(h, 2, "shop/web"));
  REQUIRE(limitAutoscaler(h, 0, "shop/web"));  // autoscaling/v1 needs at least 1
  CHECK(h["spec"]["maxReplicas"] == 1);
  CHECK(h["spec"]["minReplicas"] == 1);
  REQUIRE(restoreAutoscaler(h, "2026-11-22T10:00:00Z"));
  CHECK(h["spec"]["minReplicas"] == 3);
  CHECK(h["spec"]["maxReplicas"] == 10);
  // Only the stamp of the restore is left, for the workload's count to wait on.
  CHECK(h["metadata"]["annotations"] == json{{kLastActionTime, "2026-11-22T10:00:00Z"}});
  CHECK_FALSE(restoreAutoscaler(h, "2026-11-22T10:00:01Z"));
  REQUIRE(clearAutoscalerStamp(h));
  CHECK(h["metadata"]["annotations"].empty());
  CHECK_FALSE(clearAutoscalerStamp(h));
}

TEST_CASE("the workload's count waits until the autoscaler's new bounds are settled") {
  const auto at = [](const char* text) { return *pi0::parseRfc3339(text); };
  json h = hpa(2, 6);
  CHECK(autoscalerSettled(h, at("2026-11-22T10:00:00Z")));  // never stamped
  REQUIRE(limitAutoscaler(h, 1, "shop/web"));
  markAction(h, "2026-11-22T10:00:00Z");
  // A stamp with its record is the cap's: clearing it would lose when the step was taken.
  CHECK_FALSE(clearAutoscalerStamp(h));
  REQUIRE(restoreAutoscaler(h, "2026-11-22T10:05:00Z"));
  CHECK_FALSE(autoscalerSettled(h, at("2026-11-22T10:05:00Z")));
  CHECK_FALSE(autoscalerSettled(h, at("2026-11-22T10:05:01.999Z")));
  CHECK(autoscalerSettled(h, at("2026-11-22T10:05:02Z")));
  CHECK(kAutoscalerSettle == std::chrono::seconds(2));
}

TEST_CASE("the time of the last change travels with the object and goes with the restore") {
  json d = deployment(4);
  CHECK_FALSE(lastActionTime(d));
  REQUIRE(scaleDown(d, 1, "shop/web"));
  markAction(d, "2026-11-22T10:00:00.250Z");
  REQUIRE(lastActionTime(d));
  CHECK(lastActionTime(d)->time_since_epoch() == std::chrono::milliseconds(1795341600250));
  d["metadata"]["annotations"][kLastActionTime] = "yesterday";
  CHECK_FALSE(lastActionTime(d));
  markAction(d, "2026-11-22T10:00:00Z");
  REQUIRE(restoreReplicas(d));
  CHECK_FALSE(d["metadata"]["annotations"].contains(kLastActionTime));

  json h = hpa(2, 6);
  REQUIRE(limitAutoscaler(h, 1, "shop/web"));
  markAction(h, "2026-11-22T10:00:00Z");
  REQUIRE(restoreAutoscaler(h, "2026-11-22T10:01:00Z"));
  CHECK(lastActionTime(h) == pi0::parseRfc3339("2026-11-22T10:01:00Z"));
  REQUIRE(clearAutoscalerStamp(h));
  CHECK_FALSE(h["metadata"]["annotations"].contains(kLastActionTime));
}

TEST_CASE("from a shutdown part of the way back, keeping the record") {
  json d = deployment(4);
  REQUIRE(scaleDown(d, 0, "shop/web"));
  json untouched = deployment(3);
  CHECK_FALSE(raiseReplicas(untouched, 1));  // never touched: nothing to raise
  REQUIRE(raiseReplicas(d, 2));
  CHECK(d["spec"]["replicas"] == 2);
  CHECK(originalReplicas(d) == 4);
  CHECK_FALSE(raiseReplicas(d, 2));  // idempotent
  REQUIRE(raiseReplicas(d, 9));      // never above the original
  CHECK(d["spec"]["replicas"] == 4);
}

TEST_CASE("the original count is recorded alone, before anything else changes") {
  json d = deployment(3);
  REQUIRE(recordOriginal(d, "shop/web"));
  CHECK(d["spec"]["replicas"] == 3);  // the count itself is untouched
  CHECK(originalReplicas(d) == 3);
  CHECK(d["metadata"]["annotations"][kManagedBy] == "shop/web");
  // Whatever happens to the count afterwards (an autoscaler scaling it to 1), the record stays
  // and the scale that follows keeps it.
  d["spec"]["replicas"] = 1;
  CHECK_FALSE(recordOriginal(d, "shop/web"));
  CHECK(originalReplicas(d) == 3);
  CHECK_FALSE(scaleDown(d, 1, "shop/web"));
  CHECK(originalReplicas(d) == 3);
  REQUIRE(restoreReplicas(d));
  CHECK(d["spec"]["replicas"] == 3);
}

TEST_CASE("from a shutdown part of the way back, the autoscaler's cap is raised with the count") {
  json h = hpa(2, 6);
  CHECK_FALSE(raiseAutoscaler(h, 2));  // never capped: nothing to raise
  REQUIRE(limitAutoscaler(h, 0, "shop/web"));
  REQUIRE(raiseAutoscaler(h, 2));
  CHECK(h["spec"]["maxReplicas"] == 2);
  CHECK(h["spec"]["minReplicas"] == 1);  // the cap's floor, under the new maximum
  CHECK(h["metadata"]["annotations"][kOriginalMaxReplicas] == "6");
  CHECK_FALSE(raiseAutoscaler(h, 2));  // idempotent
  REQUIRE(raiseAutoscaler(h, 9));      // never above the original maximum
  CHECK(h["spec"]["maxReplicas"] == 6);
  REQUIRE(restoreAutoscaler(h, "2026-11-22T10:00:00Z"));
  CHECK(h["spec"]["minReplicas"] == 2);
  CHECK(h["spec"]["maxReplicas"] == 6);
}

TEST_CASE("a restore is pending while the workload or its autoscaler carries a record") {
  json d = deployment(3);
  json h = hpa(2, 6);
  CHECK_FALSE(restorePending(d, nullptr));
  CHECK_FALSE(restorePending(d, &h));

  REQUIRE(recordOriginal(d, "shop/web"));
  CHECK(restorePending(d, nullptr));  // recorded, even at the original count
  CHECK(restorePending(d, &h));

  // The workload restored but not its autoscaler (a crash between the two writes): still
  // pending, until the autoscaler's bounds are back too.
  REQUIRE(limitAutoscaler(h, 1, "shop/web"));
  REQUIRE(restoreReplicas(d));
  CHECK_FALSE(restorePending(d, nullptr));
  CHECK(restorePending(d, &h));
  REQUIRE(restoreAutoscaler(h, "2026-11-22T10:00:00Z"));
  CHECK_FALSE(restorePending(d, &h));

  // A malformed record is no record: restoring it is impossible, so it is not pending.
  d["metadata"]["annotations"][kOriginalReplicas] = "three";
  h["metadata"]["annotations"][kOriginalMaxReplicas] = "six";
  CHECK_FALSE(restorePending(d, &h));
}
