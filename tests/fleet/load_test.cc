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
  CHECK(*projectedPeak(kFpA, Resource::kCpu) == doctest::Approx(0.6));
  CHECK(*projectedPeak(kFpA, Resource::kMemory) == doctest::Approx(0.5));
  CHECK_FALSE(projectedPeak(kFpA, Resource::kGpu));  // no gpu<i>_sm signal
  CHECK(*projectedPeak(kFpB, Resource::kGpu) == doctest::Approx(0.7));
  CHECK(*projectedPeak(kFpC, Resource::kGpu) == doctest::Approx(0.25));
  // One GPU without gates leaves the node's gpu peak unknown.
  const auto partial = fingerprint("node-d", {{"gpu0_sm", 0.5}, {"gpu1_sm", std::nullopt}});
  CHECK_FALSE(projectedPeak(partial, Resource::kGpu));
  // Names that only look like GPU signals do not count.
  const auto odd = fingerprint("node-e", {{"gpu_sm", 0.5}, {"gpux_sm", 0.5}, {"gpu0_smx", 0.5}});
  CHECK_FALSE(projectedPeak(odd, Resource::kGpu));
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
