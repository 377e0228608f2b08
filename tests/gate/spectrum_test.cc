// Gate metrics against the reference values of DESIGN.md, computed by hand from known
// signals (N = 64, K = 4).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "gate/spectrum.h"

using pi0::gate::cosineSimilarity;
using pi0::gate::SpectrumAnalyzer;

namespace {

constexpr std::size_t kN = 64;

SpectrumAnalyzer analyzer() {
  auto a = SpectrumAnalyzer::create(kN, 4);
  REQUIRE(a.has_value());
  return std::move(*a);
}

std::vector<double> sine(double mean, double amplitude, double periodSamples, double phase = 0) {
  std::vector<double> x(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    x[i] =
        mean +
        amplitude * std::sin(2 * std::numbers::pi * static_cast<double>(i) / periodSamples + phase);
  }
  return x;
}

}  // namespace

TEST_CASE("create rejects window lengths and model sizes it cannot use") {
  CHECK_FALSE(SpectrumAnalyzer::create(7).has_value());
  CHECK_FALSE(SpectrumAnalyzer::create(63).has_value());
  CHECK_FALSE(SpectrumAnalyzer::create(64, 0).has_value());
  CHECK_FALSE(SpectrumAnalyzer::create(64, 33).has_value());
  auto bad = SpectrumAnalyzer::create(63);
  CHECK(bad.error().message.find("63") != std::string::npos);
}

TEST_CASE("a constant c: lambda_int = c, isolation = 1 - c, every other metric 0") {
  auto a = analyzer();
  for (double c : {0.0, 0.25, 0.7}) {
    std::vector<double> x(kN, c);
    auto r = a.analyze(x);
    CHECK(r.gates.lambdaInt == doctest::Approx(c));
    CHECK(r.gates.lambda1 == 0.0);
    CHECK(r.gates.fitError == 0.0);
    CHECK(r.gates.gluingDelta == 0.0);
    CHECK(r.gates.isolation == doctest::Approx(1 - c));
    CHECK(r.dominantBin == 0);
    CHECK(r.dominantPeriodSeconds(kN, 1.0) == 0.0);
    CHECK(r.entropy == 0.0);
    CHECK(std::all_of(r.spectrum.begin(), r.spectrum.end(), [](double v) { return v == 0; }));
  }
}

TEST_CASE("a sine of period 8 samples is one rhythm that the model explains exactly") {
  auto a = analyzer();
  const double mean = 0.4, amp = 0.2;
  const auto x = sine(mean, amp, 8, 0.3);
  auto r = a.analyze(x);
  // Period 8 over 64 samples is bin 64/8 = 8; all the variation is in it.
  CHECK(r.dominantBin == 8);
  CHECK(r.dominantPeriodSeconds(kN, 1.0) == doctest::Approx(8.0));
  CHECK(r.dominantPeriodSeconds(kN, 0.5) == doctest::Approx(4.0));
  CHECK(r.gates.lambda1 == doctest::Approx(1.0));
  CHECK(r.gates.fitError == doctest::Approx(0.0).epsilon(1e-9));
  // Each half holds 4 whole periods: same mean and std.
  CHECK(r.gates.gluingDelta == doctest::Approx(0.0).epsilon(1e-9));
  // σ of a sine is A/√2. The forecast's peak is the rhythm's crest, the highest sample of a
  // period (the model leaves no noise and the period fits the horizon), not the first
  // definition's μ + 2σ = μ + A·√2.
  const double sigma = amp / std::sqrt(2.0);
  const double crest = *std::max_element(x.begin(), x.end());
  CHECK(r.stddev == doctest::Approx(sigma));
  CHECK(r.modelPeak == doctest::Approx(crest));
  CHECK(r.projectedPeak == doctest::Approx(crest));
  CHECK(r.gates.isolation == doctest::Approx(1 - crest));
  // All the power in one bin: the normalized spectrum is a unit vector, entropy 0.
  CHECK(r.spectrum[7] == doctest::Approx(1.0));
  CHECK(r.entropy == doctest::Approx(0.0).epsilon(1e-9));
}

TEST_CASE("a step from a to b at the middle: gluing_delta = |b - a|") {
  auto a = analyzer();
  for (auto [from, to] : {std::pair{0.2, 0.7}, std::pair{0.9, 0.1}}) {
    std::vector<double> x(kN, from);
    std::fill(x.begin() + kN / 2, x.end(), to);
    auto r = a.analyze(x);
    CHECK(r.gates.gluingDelta == doctest::Approx(std::abs(to - from)));
    CHECK(r.gates.lambdaInt == doctest::Approx((from + to) / 2));
    // A step is not a rhythm: its power spreads over the odd bins (1/k² falloff), so the
    // strongest bin (k = 1) holds 8/π²·(1/Σodd 1/k²)... i.e. well under 1.
    CHECK(r.dominantBin == 1);
    CHECK(r.gates.lambda1 < 0.85);
    CHECK(r.gates.fitError > 0.01);
  }
}

TEST_CASE("a saturated signal has no headroom") {
  auto a = analyzer();
  std::vector<double> x(kN, 1.0);
  CHECK(a.analyze(x).gates.isolation == 0.0);
  // Near-saturated with a rhythm: the crest μ + A = 1.05 > 1, clipped to 0, never negative.
  auto r = a.analyze(sine(0.95, 0.1, 16));
  CHECK(r.gates.isolation == 0.0);
  CHECK(r.projectedPeak == 1.0);
}

TEST_CASE("white noise of std sigma: fit_error is about 0.79 sigma") {
  auto a = analyzer();
  const double sigma = 0.05;
  std::vector<double> ratios;     // fit_error / the generating σ
  std::vector<double> ownRatios;  // fit_error / the window's own σ
  for (unsigned seed = 1; seed <= 2000; ++seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0.5, sigma);
    std::vector<double> x(kN);
    for (auto& v : x)
      v = noise(rng);
    auto r = a.analyze(x);
    ratios.push_back(r.gates.fitError / sigma);
    ownRatios.push_back(r.gates.fitError / r.stddev);
  }
  std::sort(ownRatios.begin(), ownRatios.end());
  double mean = 0;
  for (double v : ratios)
    mean += v;
  mean /= static_cast<double>(ratios.size());
  // DESIGN.md: ≈ 0.79σ on average (the 4 strongest of 32 bins carry ~38 % of the power,
  // √0.62 ≈ 0.79); 5th–95th percentile 0.73σ–0.84σ, σ being the window's own deviation (the
  // spread over the generating σ is wider because the window's σ varies too).
  CHECK(mean == doctest::Approx(0.79).epsilon(0.02));
  CHECK(ownRatios[ownRatios.size() * 5 / 100] == doctest::Approx(0.73).epsilon(0.02));
  CHECK(ownRatios[ownRatios.size() * 95 / 100] == doctest::Approx(0.84).epsilon(0.02));
}

TEST_CASE("two rhythms: lambda1 is the stronger one's share; K=4 models both exactly") {
  auto a = analyzer();
  // Amplitudes 0.2 (period 8, bin 8) and 0.1 (period 32, bin 2): powers in ratio 4:1.
  auto x = sine(0.5, 0.2, 8);
  auto slow = sine(0.0, 0.1, 32);
  for (std::size_t i = 0; i < kN; ++i)
    x[i] += slow[i];
  auto r = a.analyze(x);
  CHECK(r.dominantBin == 8);
  CHECK(r.gates.lambda1 == doctest::Approx(0.8));
  CHECK(r.gates.fitError == doctest::Approx(0.0).epsilon(1e-9));
  // Entropy of (0.8, 0.2) over log(32).
  const double h = -(0.8 * std::log(0.8) + 0.2 * std::log(0.2)) / std::log(32.0);
  CHECK(r.entropy == doctest::Approx(h));
}

TEST_CASE("the analyzer is reusable: the same window gives the same answer") {
  auto a = analyzer();
  auto x = sine(0.3, 0.1, 8);
  auto first = a.analyze(x);
  std::vector<double> other(kN, 0.9);
  (void)a.analyze(other);
  auto again = a.analyze(x);
  CHECK(again.gates.isolation == first.gates.isolation);
  CHECK(again.spectrum == first.spectrum);
}

TEST_CASE("cosine similarity of fingerprints") {
  auto a = analyzer();
  auto s8 = a.analyze(sine(0.3, 0.1, 8)).spectrum;
  auto s8shifted = a.analyze(sine(0.6, 0.05, 8, 1.0)).spectrum;
  auto s16 = a.analyze(sine(0.3, 0.1, 16)).spectrum;
  CHECK(cosineSimilarity(s8, s8shifted) == doctest::Approx(1.0));
  CHECK(cosineSimilarity(s8, s16) == doctest::Approx(0.0));
  std::vector<double> zeros(kN / 2, 0.0);
  CHECK(cosineSimilarity(s8, zeros) == 0.0);
}
