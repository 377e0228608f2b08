#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <optional>
#include <vector>

#include "fakes/fake_clock.h"
#include "fleet/fingerprints.h"
#include "fleet/load.h"

using namespace pi0;
using namespace pi0::fleet;
using namespace std::chrono_literals;
using fleet::testing::fingerprint;

namespace {

constexpr std::int64_t kGiB = 1024LL * 1024 * 1024;

// Three nodes of different sizes. Projected peak = 1 - isolation:
//   node-a:  4 cores,  16 GiB, no GPU:  cpu 0.6, memory 0.5
//   node-b:  8 cores,  32 GiB, 2 GPUs:  cpu 0.3, memory 0.75, gpu (0.9 + 0.5)/2 = 0.7
//   node-c: 16 cores,  64 GiB, 4 GPUs:  cpu 0.2, memory 0.25, gpu (0.1+0.2+0.3+0.4)/4 = 0.25
// By hand:
//   cpu    = (4·0.6 + 8·0.3 + 16·0.2) / 28     = (2.4 + 2.4 + 3.2) / 28 = 8 / 28  = 0.285714...
//   memory = (16·0.5 + 32·0.75 + 64·0.25) / 112 = (8 + 24 + 16) / 112  = 48 / 112 = 0.428571...
//   gpu    = (2·0.7 + 4·0.25) / 6              = (1.4 + 1.0) / 6     = 0.4
//   ℓ over all three = 0.4286 (memory binds); over cpu and gpu = 0.4 (gpu binds).
const Capacity kCapA{4000, 16 * kGiB, 0};
const Capacity kCapB{8000, 32 * kGiB, 2};
const Capacity kCapC{16000, 64 * kGiB, 4};

const NodeFingerprint kFpA = fingerprint("node-a", {{"cpu", 0.4}, {"memory", 0.5}});
const NodeFingerprint kFpB =
    fingerprint("node-b", {{"cpu", 0.7},
                           {"memory", 0.25},
                           {"gpu0_sm", 0.1},
                           {"gpu1_sm", 0.5},
                           {"gpu0_memory", 0.0}});  // gpu<i>_memory takes no part
const NodeFingerprint kFpC = fingerprint("node-c", {{"cpu", 0.8},
                                                    {"memory", 0.75},
                                                    {"gpu0_sm", 0.9},
                                                    {"gpu1_sm", 0.8},
                                                    {"gpu2_sm", 0.7},
                                                    {"gpu3_sm", 0.6}});

}  // namespace

TEST_CASE("projected peak of a node per resource") {
  CHECK(*resourceView(kFpA, Resource::kCpu).projectedPeak == doctest::Approx(0.6));
  CHECK(*resourceView(kFpA, Resource::kMemory).projectedPeak == doctest::Approx(0.5));
  CHECK_FALSE(resourceView(kFpA, Resource::kGpu).projectedPeak);  // no gpu<i>_sm signal
  CHECK(*resourceView(kFpB, Resource::kGpu).projectedPeak == doctest::Approx(0.7));
  CHECK(*resourceView(kFpC, Resource::kGpu).projectedPeak == doctest::Approx(0.25));
  // One GPU without gates leaves the node's gpu peak unknown.
  const auto partial = fingerprint("node-d", {{"gpu0_sm", 0.5}, {"gpu1_sm", std::nullopt}});
  CHECK_FALSE(resourceView(partial, Resource::kGpu).projectedPeak);
  // Names that only look like GPU signals do not count.
  const auto odd = fingerprint("node-e", {{"gpu_sm", 0.5}, {"gpux_sm", 0.5}, {"gpu0_smx", 0.5}});
  CHECK_FALSE(resourceView(odd, Resource::kGpu).projectedPeak);
}

TEST_CASE("cluster load of three nodes of different capacities, computed by hand") {
  struct Case {
    const char* name;
    std::vector<NodeLoadInput> nodes;
    std::vector<Resource> resources;
    std::optional<double> load;
    Resource binding;
    std::optional<double> cpu, memory, gpu;
    int counted, missing;
  };
  const auto partialC = fingerprint(
      "node-c", {{"cpu", 0.8}, {"memory", 0.75}, {"gpu0_sm", 0.9}, {"gpu1_sm", std::nullopt}});
  const Capacity noGpuB{8000, 32 * kGiB, 0}, noGpuC{16000, 64 * kGiB, 0};
  const Case cases[] = {
      {"every node, every resource",
       {{"node-a", kCapA, &kFpA}, {"node-b", kCapB, &kFpB}, {"node-c", kCapC, &kFpC}},
       {kAllResources.begin(), kAllResources.end()},
       48.0 / 112,
       Resource::kMemory,
       8.0 / 28,
       48.0 / 112,
       0.4,
       3,
       0},
      {"cpu and gpu",
       {{"node-a", kCapA, &kFpA}, {"node-b", kCapB, &kFpB}, {"node-c", kCapC, &kFpC}},
       {Resource::kCpu, Resource::kGpu},
       0.4,
       Resource::kGpu,
       8.0 / 28,
       std::nullopt,
       0.4,
       3,
       0},
      {"cpu only",
       {{"node-a", kCapA, &kFpA}, {"node-b", kCapB, &kFpB}, {"node-c", kCapC, &kFpC}},
       {Resource::kCpu},
       8.0 / 28,
       Resource::kCpu,
       8.0 / 28,
       std::nullopt,
       std::nullopt,
       3,
       0},
      // node-b's data missing: cpu (2.4 + 3.2)/20 = 0.28, memory (8 + 16)/80 = 0.3, gpu 0.25.
      {"node-b missing",
       {{"node-a", kCapA, &kFpA}, {"node-b", kCapB, nullptr}, {"node-c", kCapC, &kFpC}},
       {kAllResources.begin(), kAllResources.end()},
       0.3,
       Resource::kMemory,
       0.28,
       0.3,
       0.25,
       2,
       1},
      // node-c's second GPU has no gates: node-c counts for cpu and memory, not gpu (0.7 from
      // node-b alone), and is missing overall.
      {"node-c's GPU window not full",
       {{"node-a", kCapA, &kFpA}, {"node-b", kCapB, &kFpB}, {"node-c", kCapC, &partialC}},
       {kAllResources.begin(), kAllResources.end()},
       0.7,
       Resource::kGpu,
       8.0 / 28,
       48.0 / 112,
       0.7,
       2,
       1},
      // No GPU anywhere: gpu takes no part in ℓ.
      {"a cluster without GPUs",
       {{"node-a", kCapA, &kFpA}, {"node-b", noGpuB, &kFpB}, {"node-c", noGpuC, &kFpC}},
       {Resource::kCpu, Resource::kGpu},
       8.0 / 28,
       Resource::kCpu,
       8.0 / 28,
       std::nullopt,
       std::nullopt,
       3,
       0},
      // GPUs exist but no GPU node has data: ℓ is unknown, though cpu is known.
      {"GPU nodes all missing",
       {{"node-a", kCapA, &kFpA}, {"node-b", kCapB, nullptr}, {"node-c", kCapC, nullptr}},
       {Resource::kCpu, Resource::kGpu},
       std::nullopt,
       Resource::kCpu,
       0.6,
       std::nullopt,
       std::nullopt,
       1,
       2},
      // A node without GPUs is irrelevant to a gpu-only load, missing or not.
      {"gpu only, the GPU-less node missing",
       {{"node-a", kCapA, nullptr}, {"node-b", kCapB, &kFpB}, {"node-c", kCapC, &kFpC}},
       {Resource::kGpu},
       0.4,
       Resource::kGpu,
       std::nullopt,
       std::nullopt,
       0.4,
       2,
       0},
      {"no resource asked for",
       {{"node-a", kCapA, &kFpA}},
       {},
       std::nullopt,
       Resource::kCpu,
       std::nullopt,
       std::nullopt,
       std::nullopt,
       0,
       0},
      {"no nodes",
       {},
       {Resource::kCpu},
       std::nullopt,
       Resource::kCpu,
       std::nullopt,
       std::nullopt,
       std::nullopt,
       0,
       0},
      // Negative capacity reads as 0: node-b takes no part.
      {"negative capacity",
       {{"node-a", kCapA, &kFpA}, {"node-b", {-8000, -1, -2}, &kFpB}},
       {Resource::kCpu},
       0.6,
       Resource::kCpu,
       0.6,
       std::nullopt,
       std::nullopt,
       1,
       0},
  };
  for (const Case& c : cases) {
    const std::string nameText = c.name;
    CAPTURE(nameText);
    const ClusterLoad got = clusterLoad(c.nodes, c.resources);
    REQUIRE(got.load.has_value() == c.load.has_value());
    if (c.load) {
      CHECK(*got.load == doctest::Approx(*c.load));
      CHECK(resourceName(got.binding) == resourceName(c.binding));
    }
    const std::pair<const ResourceLoad*, std::optional<double>> resources[] = {
        {&got.cpu, c.cpu}, {&got.memory, c.memory}, {&got.gpu, c.gpu}};
    for (const auto& [r, want] : resources) {
      REQUIRE(r->peak.has_value() == want.has_value());
      if (want) CHECK(*r->peak == doctest::Approx(*want));
    }
    CHECK(got.nodesCounted == c.counted);
    CHECK(got.nodesMissing == c.missing);
  }
}

TEST_CASE("per-resource coverage") {
  const std::vector<NodeLoadInput> nodes = {
      {"node-a", kCapA, &kFpA}, {"node-b", kCapB, nullptr}, {"node-c", kCapC, &kFpC}};
  const ClusterLoad got = clusterLoad(nodes, kAllResources);
  CHECK(got.of(Resource::kCpu).nodesCounted == 2);
  CHECK(got.of(Resource::kCpu).nodesMissing == 1);
  CHECK(got.of(Resource::kCpu).capacityCounted == 20000);
  CHECK(got.of(Resource::kGpu).nodesCounted == 1);  // node-a has no GPU: not counted either way
  CHECK(got.of(Resource::kGpu).nodesMissing == 1);
  CHECK(got.of(Resource::kGpu).capacityCounted == 4);
}

TEST_CASE("cluster load over a fleet snapshot: stale, Failed and unknown nodes are missing") {
  pi0::testing::FakeClock clock;
  FleetViewOptions options;
  options.staleAfter = 15s;
  FleetView view(options);
  view.setAgents({{"node-a", "http://a"},
                  {"node-b", "http://b"},
                  {"node-c", "http://c"},
                  {"node-x", "http://x"}});
  // node-b's data is fetched first and goes stale; node-c fails three times.
  view.recordSuccess("node-b", kFpB, clock.now());
  clock.advance(10s);
  view.recordSuccess("node-a", kFpA, clock.now());
  view.recordSuccess("node-c", kFpC, clock.now());
  view.recordSuccess("node-x", fingerprint("node-x", {{"cpu", 0.0}}), clock.now());
  CapacityMap capacity{{"node-a", kCapA}, {"node-b", kCapB}, {"node-c", kCapC}};

  ClusterLoad got = clusterLoad(*view.snapshot(), clock.now(), capacity, kAllResources);
  REQUIRE(got.load);
  CHECK(*got.load == doctest::Approx(48.0 / 112));  // every node fresh: the first table row
  CHECK(got.nodesCounted == 3);                     // node-x has no capacity entry: ignored

  clock.advance(6s);  // node-b was fetched 16 s ago
  got = clusterLoad(*view.snapshot(), clock.now(), capacity, kAllResources);
  REQUIRE(got.load);
  CHECK(*got.load == doctest::Approx(0.3));  // the "node-b missing" row
  CHECK(got.nodesMissing == 1);

  for (int i = 0; i < 3; ++i)
    view.recordFailure("node-c", "refused", clock.now());
  got = clusterLoad(*view.snapshot(), clock.now(), capacity, std::array{Resource::kCpu});
  REQUIRE(got.load);
  CHECK(*got.load == doctest::Approx(0.6));  // only node-a is usable
  CHECK(got.nodesCounted == 1);
  CHECK(got.nodesMissing == 2);

  capacity.emplace("node-z", Capacity{1000, kGiB, 0});  // a node with no agent at all
  got = clusterLoad(*view.snapshot(), clock.now(), capacity, std::array{Resource::kCpu});
  CHECK(got.nodesMissing == 3);
}

namespace {

// A flat forecast path at the signal's projected peak, with a steady trend on top when given:
// F(τ) = min(1, max(peak, peak + trend·(τ − 30))), horizon 30 s, so that F(30) = peak.
NodeFingerprint withForecast(NodeFingerprint fp, const std::string& signal, double trendPerSecond,
                             std::optional<double> secondsToTrouble = std::nullopt) {
  SignalFingerprint& s = fp.signals.at(signal);
  const double peak = *s.projectedPeak;
  s.forecast = SignalForecast{30,   peak, peak - 30 * trendPerSecond, trendPerSecond,
                              0.01, 1.0,  secondsToTrouble,           std::nullopt,
                              0};
  return fp;
}

}  // namespace

TEST_CASE("a node's forecast at τ and its anticipated peak at a lead") {
  // node-a's cpu (peak 0.6) rises 0.01/s: F(30) = 0.6, F(75) = 0.6 + 0.45 = 1.05 → 1.
  const auto a = withForecast(kFpA, "cpu", 0.01);
  CHECK(*resourceView(a, Resource::kCpu).forecastAt(30) == doctest::Approx(0.6));
  CHECK(*resourceView(a, Resource::kCpu).forecastAt(45) == doctest::Approx(0.75));
  CHECK(*resourceView(a, Resource::kCpu).forecastAt(75) == 1.0);
  // A lead of 15 s looks to the horizon plus 15 s: τ = 45.
  CHECK(*resourceView(a, Resource::kCpu).anticipatedPeak(15) == doctest::Approx(0.75));
  CHECK(*resourceView(a, Resource::kCpu).anticipatedPeak(0) == doctest::Approx(0.6));
  // No forecast for memory: forecastAt says so, anticipatedPeak falls back to the peak.
  CHECK_FALSE(resourceView(a, Resource::kMemory).forecastAt(45));
  CHECK(*resourceView(a, Resource::kMemory).anticipatedPeak(15) == doctest::Approx(0.5));
  // No gates at all: nothing.
  CHECK_FALSE(resourceView(a, Resource::kGpu).anticipatedPeak(15));

  // gpu: the mean over the node's GPUs of F(horizon + lead); node-b's GPUs 0.9 and 0.5, the
  // first rising 0.002/s: at lead 20 s, (0.9 + 0.04 + 0.5) / 2 = 0.72.
  auto b = withForecast(withForecast(kFpB, "gpu0_sm", 0.002), "gpu1_sm", 0);
  CHECK(*resourceView(b, Resource::kGpu).anticipatedPeak(20) == doctest::Approx(0.72));
  CHECK(*resourceView(b, Resource::kGpu).forecastAt(50) == doctest::Approx(0.72));
  // One GPU without a forecast: forecastAt is unknown, anticipatedPeak takes that GPU's peak.
  b.signals.at("gpu1_sm").forecast.reset();
  CHECK_FALSE(resourceView(b, Resource::kGpu).forecastAt(50));
  CHECK(*resourceView(b, Resource::kGpu).anticipatedPeak(20) == doctest::Approx(0.72));
}

TEST_CASE("the soonest time to trouble of a resource's signals") {
  auto fp = fingerprint("node-a", {{"cpu", 0.4}, {"psi_cpu", 0.9}, {"memory", 0.5}});
  CHECK_FALSE(resourceView(fp, Resource::kCpu).secondsToTrouble);  // no forecast
  fp = withForecast(fp, "cpu", 0.01, 70.0);
  CHECK(*resourceView(fp, Resource::kCpu).secondsToTrouble == 70.0);
  fp = withForecast(fp, "psi_cpu", 0.0, 12.0);  // the pressure line comes first
  CHECK(*resourceView(fp, Resource::kCpu).secondsToTrouble == 12.0);
  fp = withForecast(fp, "memory", 0.0);
  CHECK_FALSE(
      resourceView(fp, Resource::kMemory).secondsToTrouble);  // a forecast, but no trouble expected
  const auto b = withForecast(withForecast(kFpB, "gpu0_sm", 0.01, 40.0), "gpu1_sm", 0.0, 5.0);
  CHECK(*resourceView(b, Resource::kGpu).secondsToTrouble == 5.0);
}

TEST_CASE("anticipated cluster load at a lead, capacity-weighted, computed by hand") {
  // node-a's cpu (4 cores, 0.6) rises 0.01/s; node-b (8 cores, 0.3) flat; node-c (16 cores,
  // 0.2) has no forecast (an older agent): it contributes its projected peak.
  const auto a = withForecast(kFpA, "cpu", 0.01);
  const auto b = withForecast(kFpB, "cpu", 0);
  const std::array<NodeLoadInput, 3> nodes = {NodeLoadInput{"node-a", kCapA, &a},
                                              NodeLoadInput{"node-b", kCapB, &b},
                                              NodeLoadInput{"node-c", kCapC, &kFpC}};
  const std::array<Resource, 1> cpu = {Resource::kCpu};
  // Lead 20 s: node-a at F(50) = 0.8. (4·0.8 + 8·0.3 + 16·0.2) / 28 = (3.2+2.4+3.2)/28 = 8.8/28.
  const auto cl = clusterLoad(nodes, cpu, 20.0);
  REQUIRE(cl.load);
  CHECK(*cl.load == doctest::Approx(8.0 / 28));  // ℓ itself is unchanged
  REQUIRE(cl.anticipated);
  CHECK(*cl.anticipated == doctest::Approx(8.8 / 28));
  CHECK(cl.anticipatedBinding == Resource::kCpu);
  CHECK(cl.cpu.nodesForecast == 2);
  CHECK(cl.cpu.nodesCounted == 3);
  // Without a lead, no anticipated load.
  CHECK_FALSE(clusterLoad(nodes, cpu).anticipated);
  // A lead of 0 is the horizon itself: the anticipated load is ℓ.
  CHECK(*clusterLoad(nodes, cpu, 0.0).anticipated == doctest::Approx(8.0 / 28));

  // Over cpu and memory: memory (0.4286) binds ℓ; at lead 60 s node-a's cpu is at 1,
  // (4·1 + 2.4 + 3.2)/28 = 9.6/28 = 0.3429, still under memory, so memory binds both.
  const std::array<Resource, 2> both = {Resource::kCpu, Resource::kMemory};
  const auto cl2 = clusterLoad(nodes, both, 60.0);
  CHECK(*cl2.load == doctest::Approx(48.0 / 112));
  CHECK(*cl2.anticipated == doctest::Approx(48.0 / 112));
  CHECK(cl2.anticipatedBinding == Resource::kMemory);
  CHECK(*cl2.cpu.anticipated == doctest::Approx(9.6 / 28));

  // Unknown ℓ (a resource with capacity and no data) leaves the anticipated load unknown too.
  const std::array<NodeLoadInput, 1> blind = {NodeLoadInput{"node-a", kCapA, nullptr}};
  const auto unknown = clusterLoad(blind, cpu, 20.0);
  CHECK_FALSE(unknown.load);
  CHECK_FALSE(unknown.anticipated);
}
