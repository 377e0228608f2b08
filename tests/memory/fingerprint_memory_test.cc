// The fingerprint memory (src/memory/fingerprint_memory.h): the feature vector's layout on
// fingerprints built by hand and on one recorded from the real agent, cosine similarities of
// vectors at known angles, the nearest entries, eviction when full, the seen-before thresholds
// and k-means on planted clusters. Expected values are computed by hand in the comments.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "fleet/fingerprint.h"
#include "memory/fingerprint_memory.h"

using namespace pi0;
using namespace pi0::memory;

namespace {

const Time kT0 = Time(std::chrono::seconds(1'780'000'000));

Time at(int seconds) {
  return kT0 + std::chrono::seconds(seconds);
}

Entry entry(const std::string& node, std::vector<float> features, bool trouble = false,
            Time time = kT0, Label label = Label::kCalm) {
  Entry e;
  e.node = node;
  e.time = time;
  e.label = label;
  e.followedByTrouble = trouble;
  e.features = std::move(features);
  return e;
}

void addOrFail(FingerprintMemory& m, Entry e) {
  auto added = m.add(std::move(e));
  REQUIRE_MESSAGE(added, (added ? "" : added.error().message));
}

std::vector<std::string> nodesOf(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  for (const Entry& e : entries)
    out.push_back(e.node);
  return out;
}

float at(const std::vector<float>& f, Feature feature) {
  return f[featureIndex(feature)];
}

fleet::SignalFingerprint signal(double current) {
  fleet::SignalFingerprint s;
  s.samples = 64;
  s.current = current;
  s.gates = fleet::SignalGates{};
  return s;
}

double squaredLength(const std::vector<float>& f) {
  double sum = 0;
  for (float x : f)
    sum += static_cast<double>(x) * x;
  return sum;
}

}  // namespace

TEST_CASE("cosine similarity of vectors at known angles") {
  using V = std::vector<float>;
  CHECK(cosineSimilarity(V{1, 0}, V{0, 1}) == 0.0f);                         // 90°
  CHECK(cosineSimilarity(V{1, 2, 3}, V{2, 4, 6}) == doctest::Approx(1.0));   // same direction
  CHECK(cosineSimilarity(V{1, 0}, V{1, 1}) == doctest::Approx(0.70710678));  // 45°: 1/√2
  CHECK(cosineSimilarity(V{1, 0}, V{-3, 0}) == doctest::Approx(-1.0));       // opposite
  CHECK(cosineSimilarity(V{3, 4}, V{4, 3}) == doctest::Approx(0.96));        // (12+12)/25
  CHECK(cosineSimilarity(V{0, 0}, V{1, 1}) == 0.0f);     // a zero vector is similar to nothing
  CHECK(cosineSimilarity(V{1, 0}, V{1, 0, 0}) == 0.0f);  // lengths differ
}

TEST_CASE("labels are spelled and read back") {
  CHECK(labelName(Label::kCalm) == "calm");
  CHECK(labelName(Label::kBeforeTrouble) == "before_trouble");
  CHECK(labelName(Label::kTroubleOnset) == "trouble_onset");
  for (Label l : {Label::kCalm, Label::kBeforeTrouble, Label::kTroubleOnset})
    CHECK(parseLabel(labelName(l)) == l);
  CHECK_FALSE(parseLabel("Calm"));
  CHECK_FALSE(parseLabel(""));
}

TEST_CASE("the feature layout: fixed positions, what is left out, GPU means, unit length") {
  // 4 resource signals × 5 values, 3 PSI levels, 4 GPU values, slowShare.
  CHECK(kFeatureDimensions == 28);
  CHECK(featureIndex(Feature::kCpuLevel) == 0);
  CHECK(featureIndex(Feature::kMemorySpread) == 6);  // 1 × 5 + 1
  CHECK(featureIndex(Feature::kNetworkGateError) == 19);
  CHECK(featureIndex(Feature::kPsiCpuLevel) == 20);
  CHECK(featureIndex(Feature::kGpuSmLevel) == 23);
  CHECK(featureIndex(Feature::kSlowShare) == 27);
  CHECK(resourceFeature(ResourceSignal::kMemory, ResourceValue::kSpread) == Feature::kMemorySpread);
  CHECK(resourceFeature(ResourceSignal::kDisk, ResourceValue::kRhythm) == Feature::kDiskRhythm);
  CHECK(resourceFeature(ResourceSignal::kNetwork, ResourceValue::kGateError) ==
        Feature::kNetworkGateError);

  SUBCASE("a fingerprint that is not ready has no features") {
    fleet::NodeFingerprint fp;
    fp.signals["cpu"] = signal(0.5);
    fp.ready = false;
    CHECK_FALSE(featuresOf(fp));
  }
  SUBCASE("cpu level 0.3 and spread 0.4 scale to 0.6 and 0.8 (length 0.5); the mean is left out") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["cpu"] = signal(0.3);
    fp.signals["cpu"].stddev = 0.4;
    fp.signals["cpu"].mean = 0.9;
    auto f = featuresOf(fp);
    REQUIRE(f);
    REQUIRE(f->size() == kFeatureDimensions);
    CHECK(at(*f, Feature::kCpuLevel) == doctest::Approx(0.6));
    CHECK(at(*f, Feature::kCpuSpread) == doctest::Approx(0.8));
    CHECK(squaredLength(*f) == doctest::Approx(1.0));
  }
  SUBCASE("peak, rhythm and the gate error √(0.03² + 0.04²) = 0.05 of the disk") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["disk"] = signal(0.12);
    fp.signals["disk"].projectedPeak = 0.2;
    fp.signals["disk"].gates->lambda1 = 0.1;
    fp.signals["disk"].gates->fitError = 0.03;
    fp.signals["disk"].gates->gluingDelta = 0.04;
    fp.signals["disk"].gates->isolation = 0.8;  // not in the layout
    auto f = featuresOf(fp);
    REQUIRE(f);
    // (0.12, 0.2, 0.1, 0.05): squares 0.0144 + 0.04 + 0.01 + 0.0025 = 0.0669, length 0.2586503.
    CHECK(at(*f, Feature::kDiskLevel) == doctest::Approx(0.12 / 0.2586503));
    CHECK(at(*f, Feature::kDiskPeak) == doctest::Approx(0.2 / 0.2586503));
    CHECK(at(*f, Feature::kDiskRhythm) == doctest::Approx(0.1 / 0.2586503));
    CHECK(at(*f, Feature::kDiskGateError) == doctest::Approx(0.05 / 0.2586503));
    CHECK(squaredLength(*f) == doctest::Approx(1.0));
  }
  SUBCASE("a PSI signal gives its level only") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["psi_memory"] = signal(0.3);
    fp.signals["psi_memory"].stddev = 0.2;
    fp.signals["psi_memory"].projectedPeak = 0.5;
    fp.signals["psi_memory"].gates->lambda1 = 0.9;
    auto f = featuresOf(fp);
    REQUIRE(f);
    CHECK(at(*f, Feature::kPsiMemoryLevel) == doctest::Approx(1.0));  // 0.3 / 0.3
    CHECK(squaredLength(*f) == doctest::Approx(1.0));
  }
  SUBCASE("the GPU values are means over the GPUs that have them") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["memory"] = signal(0.4);
    fp.signals["gpu0_sm"] = signal(0.1);
    fp.signals["gpu1_sm"] = signal(0.5);
    fp.signals["gpu_unknown"] = signal(0.9);  // not a signal name: left out
    auto f = featuresOf(fp);
    REQUIRE(f);
    // memory 0.4 beside gpu_sm (0.1 + 0.5) / 2 = 0.3: (0.4, 0.3) / 0.5.
    CHECK(at(*f, Feature::kMemoryLevel) == doctest::Approx(0.8));
    CHECK(at(*f, Feature::kGpuSmLevel) == doctest::Approx(0.6));
    CHECK(at(*f, Feature::kGpuSmPeak) == 0.0f);  // no GPU has a peak
    CHECK(at(*f, Feature::kGpuMemoryLevel) == 0.0f);
    CHECK(squaredLength(*f) == doctest::Approx(1.0));

    // gpu_memory level (0.4 + 0.8) / 2 = 0.6; its peak 0.8 is gpu0's alone, not (0.8 + 0) / 2.
    fleet::NodeFingerprint gpus;
    gpus.ready = true;
    gpus.signals["gpu0_memory"] = signal(0.4);
    gpus.signals["gpu0_memory"].projectedPeak = 0.8;
    gpus.signals["gpu1_memory"] = signal(0.8);
    auto g = featuresOf(gpus);
    REQUIRE(g);
    CHECK(at(*g, Feature::kGpuMemoryLevel) == doctest::Approx(0.6));
    CHECK(at(*g, Feature::kGpuMemoryPeak) == doctest::Approx(0.8));
    CHECK(squaredLength(*g) == doctest::Approx(1.0));
  }
  SUBCASE(
      "slowShare: the first 4 bins' share, averaged over the resource signals with a spectrum") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["cpu"] = signal(0.4);
    // Unit length (0.1296 + 0.2304 + 0.64 = 1); bins k = 1, 2 hold √(0.1296 + 0.2304) = 0.6.
    fp.signals["cpu"].spectrum = {0.36, 0.48, 0, 0, 0.8};
    fp.signals["disk"] = signal(0);
    fp.signals["disk"].spectrum = {0, 0, 0, 0, 1};  // its only power is in bin k = 5: 0
    fp.signals["memory"] = signal(0);               // no spectrum: not in the mean
    fp.signals["psi_cpu"] = signal(0);
    fp.signals["psi_cpu"].spectrum = {1};  // not a resource signal: not in the mean
    auto f = featuresOf(fp);
    REQUIRE(f);
    // slowShare (0.6 + 0) / 2 = 0.3 beside cpu level 0.4: (0.4, 0.3) / 0.5.
    CHECK(at(*f, Feature::kSlowShare) == doctest::Approx(0.6));
    CHECK(at(*f, Feature::kCpuLevel) == doctest::Approx(0.8));
    CHECK(squaredLength(*f) == doctest::Approx(1.0));
  }
  SUBCASE("an all-zero state stays zero and matches nothing") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["cpu"] = signal(0);
    auto f = featuresOf(fp);
    REQUIRE(f);
    CHECK(squaredLength(*f) == 0.0);
    FingerprintMemory m(10);
    addOrFail(m, entry("a", std::vector<float>(kFeatureDimensions, 1.0f)));
    CHECK(m.nearest(*f, 5).empty());
    CHECK_FALSE(m.seen(*f).best);
  }
  SUBCASE("a value the layout takes that is not finite gives no features") {
    fleet::NodeFingerprint fp;
    fp.ready = true;
    fp.signals["cpu"] = signal(std::nan(""));
    CHECK_FALSE(featuresOf(fp));
    fp.signals["cpu"] = signal(0.5);
    fp.signals["cpu"].gates->fitError = std::numeric_limits<double>::infinity();
    CHECK_FALSE(featuresOf(fp));  // the gate error √(∞² + 0²)
    fp.signals["cpu"] = signal(0.5);
    fp.signals["cpu"].mean = std::numeric_limits<double>::infinity();  // not in the layout
    auto f = featuresOf(fp);
    REQUIRE(f);
    CHECK(at(*f, Feature::kCpuLevel) == 1.0f);
  }
}

TEST_CASE("a fingerprint recorded from the real agent gives a unit vector in the layout") {
  auto text = readFile(std::filesystem::path(PI0_FIXTURES) / "fleet" / "fingerprint-node-a.json");
  REQUIRE(text);
  auto fp = fleet::parseFingerprint(*text);
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  auto f = featuresOf(*fp);
  REQUIRE(f);
  CHECK(f->size() == 28);
  CHECK(squaredLength(*f) == doctest::Approx(1.0).epsilon(1e-6));
  // Ratios survive the scaling. The fixture's gpu0_sm is a constant 0.6 and gpu1_sm 0.2 (mean
  // 0.4, peaks the same), memory a constant 0.3, psi_cpu 0.02.
  const float memory = at(*f, Feature::kMemoryLevel);
  CHECK(at(*f, Feature::kGpuSmLevel) / memory == doctest::Approx(0.4 / 0.3));
  CHECK(at(*f, Feature::kGpuSmPeak) / memory == doctest::Approx(0.4 / 0.3));
  CHECK(at(*f, Feature::kMemoryPeak) / memory == doctest::Approx(1.0));
  CHECK(at(*f, Feature::kPsiCpuLevel) / memory == doctest::Approx(0.02 / 0.3));
  // cpu: a sine of period 16 samples, level 0.6414486451229473, lambda1 0.9999999420993767,
  // fitError 2.918828950695735e-05 and gluingDelta 6.474960697194776e-06 (gate error
  // 2.989785e-05); its spectrum's power is in bin k = 64/16 = 4, so its first 4 bins hold
  // 0.9999999745 of it, memory's flat spectrum none: slowShare (0.9999999745 + 0) / 2.
  const float cpu = at(*f, Feature::kCpuLevel);
  CHECK(at(*f, Feature::kCpuRhythm) / cpu ==
        doctest::Approx(0.9999999420993767 / 0.6414486451229473));
  CHECK(at(*f, Feature::kCpuGateError) / cpu == doctest::Approx(2.989785e-05 / 0.6414486451229473));
  CHECK(at(*f, Feature::kSlowShare) / cpu == doctest::Approx(0.49999998727 / 0.6414486451229473));
  // No disk, network, psi_io or GPU memory signal in the fixture.
  for (Feature absent :
       {Feature::kDiskLevel, Feature::kNetworkPeak, Feature::kPsiIoLevel, Feature::kGpuMemoryLevel})
    CHECK(at(*f, absent) == 0.0f);
}

TEST_CASE("nearest: the most similar entries, most similar first") {
  FingerprintMemory m(10, 2);
  addOrFail(m, entry("a", {1, 0}));
  addOrFail(m, entry("b", {0, 5}));  // stored as (0, 1)
  addOrFail(m, entry("c", {2, 2}));  // stored as (1/√2, 1/√2)

  // Query (1, 0.1), length √1.01 = 1.004988: a 1/1.004988 = 0.995037; c 1.1/(√2·1.004988) =
  // 0.773957; b 0.1/1.004988 = 0.099504.
  auto near = m.nearest(std::vector<float>{1, 0.1f}, 3);
  REQUIRE(near.size() == 3);
  CHECK(near[0].node == "a");
  CHECK(near[0].similarity == doctest::Approx(0.995037));
  CHECK(near[1].node == "c");
  CHECK(near[1].similarity == doctest::Approx(0.773957));
  CHECK(near[2].node == "b");
  CHECK(near[2].similarity == doctest::Approx(0.099504));

  auto one = m.nearest(std::vector<float>{0, 1}, 1);  // 90° from a, 45° from c
  REQUIRE(one.size() == 1);
  CHECK(one[0].node == "b");
  CHECK(one[0].similarity == doctest::Approx(1.0));
  CHECK(m.nearest(std::vector<float>{1, 0}, 10).size() == 3);  // k past size(): every entry
  CHECK(m.nearest(std::vector<float>{1, 0}, 3)[1].similarity == doctest::Approx(0.70710678));
  CHECK(m.nearest(std::vector<float>{1, 0}, 0).empty());
  CHECK(m.nearest(std::vector<float>{1, 0, 0}, 3).empty());  // another layout matches nothing
}

TEST_CASE("nearest over many entries: equal similarities in the order stored") {
  // 300 entries, read in blocks: every 50th from e7 on equals the query (similarity 1), the
  // rest are (1, 1), at 45° (1/√2 = 0.70710678).
  FingerprintMemory m(1000, 2);
  for (int i = 0; i < 300; ++i) {
    const bool same = i % 50 == 7;
    std::string name = "e";
    name += std::to_string(i);  // not "e" + ...: GCC 12 warns (-Wrestrict) of a false overlap
    addOrFail(m, entry(name, same ? std::vector<float>{1, 0} : std::vector<float>{1, 1}));
  }
  auto four = m.nearest(std::vector<float>{3, 0}, 4);
  REQUIRE(four.size() == 4);
  CHECK(four[0].node == "e7");
  CHECK(four[1].node == "e57");
  CHECK(four[2].node == "e107");
  CHECK(four[3].node == "e157");
  for (const Match& match : four)
    CHECK(match.similarity == doctest::Approx(1.0));
  // Past the six equal ones, the first stored of the rest: e0, then e1.
  auto eight = m.nearest(std::vector<float>{3, 0}, 8);
  REQUIRE(eight.size() == 8);
  CHECK(eight[4].node == "e207");
  CHECK(eight[5].node == "e257");
  CHECK(eight[6].node == "e0");
  CHECK(eight[6].similarity == doctest::Approx(0.70710678));
  CHECK(eight[7].node == "e1");
  CHECK(m.nearest(std::vector<float>{3, 0}, 1000).size() == 300);
}

TEST_CASE("nearest finds the neighbour planted among 2,000 random states") {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(0, 1);
  FingerprintMemory m;
  std::vector<float> query(kFeatureDimensions);
  for (float& x : query)
    x = u(rng);
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> f(kFeatureDimensions);
    for (float& x : f)
      x = u(rng);
    if (i == 1234) {
      f = query;
      f[7] += 0.01f;  // nearly the query: similarity > 0.9999
    }
    addOrFail(m, entry("node-" + std::to_string(i), f));
  }
  CHECK(m.size() == 2000);
  auto near = m.nearest(query, 5);
  REQUIRE(near.size() == 5);
  CHECK(near[0].node == "node-1234");
  CHECK(near[0].similarity > 0.9999f);
  // Random points of the unit cube are about 0.75 similar (E[x·y]/E|x|² = 0.25/0.333), with a
  // standard deviation of about √(1/(10·28)) = 0.06 in 28 dimensions (the delta method: per
  // coordinate Var(xy) + 2(3/8)²Var(x²) − 4(3/8)Cov(xy, x²) = 7/144 + 1/40 − 1/16 = 1/90, times
  // (3/28)²·28), and a tail lighter than a normal's (a cosine is at most 1): the next is far
  // behind, under 0.99, four deviations out.
  CHECK(near[1].similarity < 0.99f);
  for (std::size_t i = 1; i < near.size(); ++i)
    CHECK(near[i - 1].similarity >= near[i].similarity);
}

TEST_CASE("add refuses features of another length or not finite") {
  FingerprintMemory m(10, 3);
  auto shorter = m.add(entry("a", {1, 0}));
  REQUIRE_FALSE(shorter);
  CHECK(shorter.error().message == "features: 2 values, the memory's are 3");
  auto nan = m.add(entry("a", {1, std::nanf(""), 0}));
  REQUIRE_FALSE(nan);
  CHECK(nan.error().message == "features: a value is not finite");
  CHECK(m.size() == 0);
}

TEST_CASE("when full, the oldest calm entry goes first, then the oldest of any label") {
  FingerprintMemory m(3, 2);
  CHECK(m.capacity() == 3);
  // Added out of time order: the oldest by time is calm-1, added last.
  addOrFail(m, entry("calm-3", {1, 0}, false, at(3)));
  addOrFail(m, entry("trouble-2", {0, 1}, true, at(2), Label::kBeforeTrouble));
  addOrFail(m, entry("calm-1", {1, 1}, false, at(1)));
  CHECK(nodesOf(m.entries()) == std::vector<std::string>{"calm-1", "trouble-2", "calm-3"});

  addOrFail(m, entry("calm-4", {1, 2}, false, at(4)));
  CHECK(m.size() == 3);
  CHECK(nodesOf(m.entries()) == std::vector<std::string>{"trouble-2", "calm-3", "calm-4"});
  // calm-4 took calm-1's column: the query (1, 2) finds it, at similarity 1.
  auto near = m.nearest(std::vector<float>{1, 2}, 1);
  REQUIRE(near.size() == 1);
  CHECK(near[0].node == "calm-4");
  CHECK(near[0].similarity == doctest::Approx(1.0));

  addOrFail(m, entry("onset-5", {2, 1}, true, at(5), Label::kTroubleOnset));
  addOrFail(m, entry("trouble-6", {3, 1}, true, at(6), Label::kBeforeTrouble));
  CHECK(nodesOf(m.entries()) == std::vector<std::string>{"trouble-2", "onset-5", "trouble-6"});
  CHECK(m.countByLabel() == std::map<Label, std::size_t>{{Label::kCalm, 0},
                                                         {Label::kBeforeTrouble, 2},
                                                         {Label::kTroubleOnset, 1}});

  // No calm entry left: the oldest of any label goes.
  addOrFail(m, entry("calm-7", {1, 3}, false, at(7)));
  const auto kept = m.entries();
  CHECK(nodesOf(kept) == std::vector<std::string>{"onset-5", "trouble-6", "calm-7"});
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].label == Label::kTroubleOnset);
  CHECK(kept[0].followedByTrouble);
  CHECK(kept[0].time == at(5));
  // Features come back as stored: (2, 1)/√5.
  CHECK(kept[0].features[0] == doctest::Approx(2 / std::sqrt(5.0)));
  CHECK(kept[0].features[1] == doctest::Approx(1 / std::sqrt(5.0)));
}

TEST_CASE("seen: the share of similar states followed by trouble, and its thresholds") {
  FingerprintMemory m(100, 2);
  const std::vector<float> query{1, 0};

  SUBCASE("an empty memory has seen nothing") {
    const SeenBefore s = m.seen(query);
    CHECK(s.matches == 0);
    CHECK(s.troubleShare == 0);
    CHECK_FALSE(s.troubled);
    CHECK_FALSE(s.best);
  }

  // Two states equal to the query, both followed by trouble, and five at similarity 0.8, (0.8,
  // 0.6)·(1, 0), under 0.95: not matches.
  addOrFail(m, entry("t1", {1, 0}, true, at(1)));
  addOrFail(m, entry("t2", {1, 0}, true, at(2)));
  for (int i = 0; i < 5; ++i)
    addOrFail(m, entry("far", {0.8f, 0.6f}, true, at(10 + i)));

  SeenBefore s = m.seen(query);
  CHECK(s.matches == 2);
  CHECK(s.troubleMatches == 2);
  CHECK(s.troubleShare == 1.0);
  CHECK_FALSE(s.troubled);  // 2 matches, fewer than minMatches = 3
  REQUIRE(s.best);
  CHECK(s.best->node == "t1");
  CHECK(s.best->time == at(1));
  CHECK(s.best->similarity == doctest::Approx(1.0));
  CHECK(s.best->followedByTrouble);

  // A third match, calm: 2 of 3 = 0.667 >= 0.6 with 3 matches.
  addOrFail(m, entry("c1", {2, 0}, false, at(3)));
  s = m.seen(query);
  CHECK(s.matches == 3);
  CHECK(s.troubleShare == doctest::Approx(2.0 / 3));
  CHECK(s.troubled);

  // A fourth, calm: 2 of 4 = 0.5 < 0.6.
  addOrFail(m, entry("c2", {3, 0}, false, at(4)));
  s = m.seen(query);
  CHECK(s.matches == 4);
  CHECK(s.troubleShare == 0.5);
  CHECK_FALSE(s.troubled);

  // A fifth, troubled: 3 of 5 = 0.6, the threshold itself.
  addOrFail(m, entry("t3", {1, 0}, true, at(5)));
  s = m.seen(query);
  CHECK(s.matches == 5);
  CHECK(s.troubleMatches == 3);
  CHECK(s.troubleShare == 0.6);
  CHECK(s.troubled);

  // Only k neighbours count: the three first stored of the equal ones, t1, t2, c1 (2 of 3).
  SeenOptions three;
  three.k = 3;
  s = m.seen(query, three);
  CHECK(s.matches == 3);
  CHECK(s.troubleMatches == 2);
  CHECK(s.troubled);

  // A lower bar takes in the five at 0.8 as well: of the 10 nearest, 8 followed by trouble.
  SeenOptions loose;
  loose.minSimilarity = 0.75;
  s = m.seen(query, loose);
  CHECK(s.matches == 10);
  CHECK(s.troubleMatches == 8);
  CHECK(s.troubleShare == doctest::Approx(0.8));
  CHECK(s.troubled);

  // A stricter share: 0.6 is not 0.61.
  SeenOptions strict;
  strict.troubleShare = 0.61;
  CHECK_FALSE(m.seen(query, strict).troubled);
}

TEST_CASE("seen and archetypes weigh each state by the time it stands for") {
  // The recorder samples calm states every 5 minutes and the states before an onset every 10 s:
  // counted one each, the few minutes before trouble would weigh thirty times what they are in a
  // node's day. Weighted by their sampling intervals, the share is a share of time.
  FingerprintMemory m(100, 2);
  const std::vector<float> query{1, 0};
  // Three states before trouble, sampled every 10 s, and two calm ones, every 300 s: equal.
  for (int i = 0; i < 3; ++i) {
    Entry e = entry("t", {1, 0}, true, at(i), Label::kBeforeTrouble);
    e.weight = 10;
    addOrFail(m, e);
  }
  for (int i = 0; i < 2; ++i) {
    Entry e = entry("c", {1, 0}, false, at(100 + i));
    e.weight = 300;
    addOrFail(m, e);
  }
  SeenBefore s = m.seen(query);
  CHECK(s.matches == 5);
  CHECK(s.troubleMatches == 3);
  // 3 x 10 of 3 x 10 + 2 x 300 seconds: 30 / 630. Counted one each it would be 3 of 5 = 0.6,
  // troubled.
  CHECK(s.troubleShare == doctest::Approx(30.0 / 630));
  CHECK_FALSE(s.troubled);

  const auto found = m.archetypes(1, 5, 1);
  REQUIRE(found.size() == 1);
  CHECK(found[0].members == 5);
  CHECK(found[0].troubleRate == doctest::Approx(30.0 / 630));

  // The weight is kept, and given back by entries().
  const auto kept = m.entries();
  REQUIRE(kept.size() == 5);
  CHECK(kept[0].weight == 10);
  CHECK(kept[4].weight == 300);

  // A weight that is not a positive finite number is refused.
  for (double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    Entry e = entry("x", {1, 0});
    e.weight = bad;
    CHECK_FALSE(m.add(e));
  }
  CHECK(m.size() == 5);
}

TEST_CASE("k-means recovers three planted clusters with their sizes and trouble rates") {
  FingerprintMemory m(1000, 3);
  // 50 states near (1,0,0), 10 followed by trouble; 30 near (0,1,0), all of them; 20 near
  // (0,0,1), none. Each state leans at most 0.05 off its axis toward each other one: within a
  // cluster the cosines are above 0.99, across clusters at most (0.05 + 0.05 + 0.0025) / 1.005
  // = 0.102.
  const auto near = [](int axis, int i) {
    std::vector<float> f(3, 0.0f);
    f[axis] = 1;
    f[(axis + 1) % 3] = 0.05f * static_cast<float>(i % 5) / 4;
    f[(axis + 2) % 3] = 0.05f * static_cast<float>(i % 3) / 2;
    return f;
  };
  int t = 0;
  for (int i = 0; i < 50; ++i)
    addOrFail(m, entry("a", near(0, i), i < 10, at(t++)));
  for (int i = 0; i < 30; ++i)
    addOrFail(m, entry("b", near(1, i), true, at(t++)));
  for (int i = 0; i < 20; ++i)
    addOrFail(m, entry("c", near(2, i), false, at(t++)));

  for (std::uint64_t seed : {1, 2, 3, 42, 1234}) {
    CAPTURE(seed);
    const auto found = m.archetypes(3, 20, seed);
    REQUIRE(found.size() == 3);
    // Most members first: 50, 30, 20.
    CHECK(found[0].members == 50);
    CHECK(found[0].troubleRate == doctest::Approx(0.2));  // 10 of 50
    CHECK(found[0].centroid[0] > 0.99f);
    CHECK(found[1].members == 30);
    CHECK(found[1].troubleRate == 1.0);
    CHECK(found[1].centroid[1] > 0.99f);
    CHECK(found[2].members == 20);
    CHECK(found[2].troubleRate == 0.0);
    CHECK(found[2].centroid[2] > 0.99f);
    for (const Archetype& a : found) {
      double length = 0;
      for (float x : a.centroid)
        length += static_cast<double>(x) * x;
      CHECK(length == doctest::Approx(1.0));
    }
  }
}

TEST_CASE("k-means: the same seed gives the same archetypes; edges") {
  FingerprintMemory m(1000, 4);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(0, 1);
  for (int i = 0; i < 300; ++i) {
    std::vector<float> f(4);
    for (float& x : f)
      x = u(rng);
    addOrFail(m, entry("n", f, i % 4 == 0, at(i)));
  }
  const auto once = m.archetypes(4, 10, 99);
  const auto again = m.archetypes(4, 10, 99);
  REQUIRE(once.size() == again.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < once.size(); ++i) {
    CHECK(once[i].centroid == again[i].centroid);
    CHECK(once[i].members == again[i].members);
    CHECK(once[i].troubleRate == again[i].troubleRate);
    total += once[i].members;
  }
  CHECK(total == 300);  // every entry belongs to one archetype

  CHECK(m.archetypes(0, 10, 1).empty());
  CHECK(FingerprintMemory(10, 4).archetypes(3, 10, 1).empty());  // an empty memory

  // k past size() is clamped; four equal states are one archetype, however many are asked for.
  FingerprintMemory small(10, 2);
  addOrFail(small, entry("x", {1, 0}, true));
  addOrFail(small, entry("y", {0, 1}, false));
  const auto two = small.archetypes(5, 10, 1);
  REQUIRE(two.size() == 2);
  CHECK(two[0].members + two[1].members == 2);
  FingerprintMemory same(10, 2);
  for (int i = 0; i < 4; ++i)
    addOrFail(same, entry("s", {3, 4}, i == 0));
  const auto one = same.archetypes(3, 10, 1);
  REQUIRE(one.size() == 1);
  CHECK(one[0].members == 4);
  CHECK(one[0].troubleRate == 0.25);
  CHECK(one[0].centroid[0] == doctest::Approx(0.6));
  CHECK(one[0].centroid[1] == doctest::Approx(0.8));
}

TEST_CASE("queries run while entries are added") {
  FingerprintMemory m(500, 2);
  addOrFail(m, entry("first", {1, 0}));
  std::jthread reader([&m] {
    for (int i = 0; i < 200; ++i) {
      // The first entry is never evicted (the memory does not fill), so it stays the nearest.
      auto near = m.nearest(std::vector<float>{1, 0}, 1);
      if (near.size() != 1 || near[0].node != "first") std::abort();
      (void)m.seen(std::vector<float>{1, 0});
    }
  });
  for (int i = 0; i < 400; ++i) {
    auto added = m.add(entry("n", {0.5f, 1}, false, at(i)));
    REQUIRE(added);
  }
  reader.join();
  CHECK(m.size() == 401);
}

TEST_CASE("feature names follow the layout") {
  CHECK(featureName(Feature::kCpuLevel) == "cpu_level");
  CHECK(featureName(Feature::kMemoryGateError) == "memory_gate_error");
  CHECK(featureName(Feature::kPsiCpuLevel) == "psi_cpu_level");
  CHECK(featureName(Feature::kGpuMemoryPeak) == "gpu_memory_peak");
  CHECK(featureName(Feature::kSlowShare) == "slow_share");
  CHECK(featureName(resourceFeature(ResourceSignal::kNetwork, ResourceValue::kRhythm)) ==
        "network_rhythm");
  std::vector<float> v(kFeatureDimensions, 0.f);
  v[featureIndex(Feature::kPsiCpuLevel)] = 0.6f;
  v[featureIndex(Feature::kCpuLevel)] = 0.7f;
  v[featureIndex(Feature::kCpuPeak)] = 0.3f;
  CHECK(strongestFeatures(v, 2) == "cpu_level psi_cpu_level");
  CHECK(strongestFeatures(v, 5) == "cpu_level psi_cpu_level cpu_peak");
  CHECK(strongestFeatures(std::vector<float>(kFeatureDimensions, 0.f), 3).empty());
}
