// Profile parsing and evaluation: every wave against values computed by hand, and every kind of
// bad profile against the message a person would need to fix it.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "common/files.h"
#include "synthetic/profile.h"

using pi0::substrates::evaluate;
using pi0::substrates::isKnownSignal;
using pi0::substrates::kDefaultMemoryTotalBytes;
using pi0::substrates::parseProfile;
using pi0::substrates::Profile;

namespace {

Profile parse(const std::string& yaml) {
  auto profile = parseProfile(yaml, "profile.yaml");
  INFO(yaml);
  REQUIRE_MESSAGE(profile.has_value(), (profile ? "" : profile.error().message));
  return *profile;
}

// The value of the only signal of a one-signal profile at time t.
double only(const Profile& profile, double t) {
  auto readings = evaluate(profile, t);
  REQUIRE(readings.size() == 1);
  return readings[0].ratio;
}

doctest::Approx near(double v) {
  return doctest::Approx(v).epsilon(1e-9);
}

}  // namespace

TEST_CASE("constant holds its value at every t") {
  Profile p = parse("signals:\n  memory: {wave: constant, value: 0.3}\n");
  CHECK(p.memoryTotalBytes == kDefaultMemoryTotalBytes);
  REQUIRE(p.signals.size() == 1);
  CHECK(p.signals[0].name == "memory");
  for (double t : {0.0, 1.0, 12.5, 86400.0})
    CHECK(only(p, t) == near(0.3));
}

TEST_CASE("sine: mean at 0, peak at a quarter period, mean at half, trough at three quarters") {
  Profile p = parse("signals:\n  cpu: {wave: sine, mean: 0.5, amplitude: 0.2, periodSeconds: 8}\n");
  CHECK(only(p, 0) == near(0.5));
  CHECK(only(p, 2) == near(0.7));
  CHECK(only(p, 4) == near(0.5));
  CHECK(only(p, 6) == near(0.3));
  CHECK(only(p, 8) == near(0.5));

  // A phase of pi/2 starts at the peak.
  Profile shifted = parse(
      "signals:\n  cpu: {wave: sine, mean: 0.5, amplitude: 0.2, periodSeconds: 8, "
      "phase: 1.5707963267948966}\n");
  CHECK(only(shifted, 0) == near(0.7));
  CHECK(only(shifted, 2) == near(0.5));
}

TEST_CASE("step: from before atSeconds, to at and after it") {
  Profile p = parse("signals:\n  psi_cpu: {wave: step, from: 0.05, to: 0.6, atSeconds: 30}\n");
  CHECK(only(p, 0) == near(0.05));
  CHECK(only(p, 29.999) == near(0.05));
  CHECK(only(p, 30) == near(0.6));
  CHECK(only(p, 31) == near(0.6));
  CHECK(only(p, 1e6) == near(0.6));
}

TEST_CASE("ramp: linear from `from` to `to`, then holds `to`") {
  Profile p = parse("signals:\n  network: {wave: ramp, from: 0.1, to: 0.9, overSeconds: 120}\n");
  CHECK(only(p, 0) == near(0.1));
  CHECK(only(p, 30) == near(0.3));
  CHECK(only(p, 60) == near(0.5));
  CHECK(only(p, 120) == near(0.9));
  CHECK(only(p, 500) == near(0.9));

  Profile down = parse("signals:\n  network: {wave: ramp, from: 0.8, to: 0.2, overSeconds: 10}\n");
  CHECK(only(down, 5) == near(0.5));
}

TEST_CASE("square: high for the duty fraction of each period, starting high") {
  Profile p = parse(
      "signals:\n  psi_io: {wave: square, low: 0.1, high: 0.7, periodSeconds: 10, duty: 0.3}\n");
  CHECK(only(p, 0) == near(0.7));
  CHECK(only(p, 2.9) == near(0.7));
  CHECK(only(p, 3) == near(0.1));
  CHECK(only(p, 9.9) == near(0.1));
  CHECK(only(p, 10) == near(0.7));
  CHECK(only(p, 13.5) == near(0.1));

  // Over whole periods, the share of time spent high is the duty.
  int high = 0;
  const int points = 10000;  // 10 periods, 1000 points each, at the middle of each 10 ms
  for (int i = 0; i < points; ++i) {
    if (only(p, (i + 0.5) * 0.01) > 0.5) ++high;
  }
  CHECK(high == 3000);

  Profile half = parse("signals:\n  psi_io: {wave: square, low: 0, high: 1, periodSeconds: 4}\n");
  CHECK(only(half, 1.9) == near(1));
  CHECK(only(half, 2.1) == near(0));
}

TEST_CASE("sum adds its terms, nested sums included") {
  Profile p = parse(
      "signals:\n"
      "  gpu0_sm:\n"
      "    wave: sum\n"
      "    of:\n"
      "      - {wave: constant, value: 0.2}\n"
      "      - {wave: sine, mean: 0, amplitude: 0.1, periodSeconds: 4}\n"
      "      - {wave: sum, of: [{wave: step, from: 0, to: 0.5, atSeconds: 10}]}\n");
  CHECK(only(p, 0) == near(0.2));
  CHECK(only(p, 1) == near(0.3));
  CHECK(only(p, 3) == near(0.1));
  CHECK(only(p, 11) == near(0.6));  // 0.2 + 0.1*sin(11*pi/2) + 0.5 = 0.2 - 0.1 + 0.5
}

TEST_CASE("values are clamped to [0,1] when emitted, not inside a sum") {
  CHECK(only(parse("signals:\n  cpu: {wave: constant, value: 1.7}\n"), 0) == 1.0);
  CHECK(only(parse("signals:\n  cpu: {wave: constant, value: -0.2}\n"), 0) == 0.0);
  Profile sine =
      parse("signals:\n  cpu: {wave: sine, mean: 0.9, amplitude: 0.5, periodSeconds: 4}\n");
  CHECK(only(sine, 1) == 1.0);
  CHECK(only(sine, 2) == near(0.9));
  CHECK(only(sine, 3) == near(0.4));
  // A term below 0 is kept inside the sum: 1.5 - 0.8 = 0.7, not 1 - 0.8.
  Profile sum = parse(
      "signals:\n  cpu: {wave: sum, of: [{wave: constant, value: 1.5}, "
      "{wave: constant, value: -0.8}]}\n");
  CHECK(only(sum, 0) == near(0.7));
}

TEST_CASE("noise depends only on seed and t, not on how often or in which order it is sampled") {
  const std::string yaml = "signals:\n  disk: {wave: noise, mean: 0.5, std: 0.1, seed: 7}\n";
  Profile a = parse(yaml);
  Profile b = parse(yaml);
  std::vector<double> forward;
  for (int i = 0; i < 100; ++i)
    forward.push_back(only(a, i * 0.5));
  // b: backwards, with other times in between.
  for (int i = 99; i >= 0; --i) {
    only(b, i * 0.5 + 0.25);
    CHECK(only(b, i * 0.5) == forward[static_cast<std::size_t>(i)]);
  }
  // Not a constant: the draws vary.
  CHECK(forward[0] != forward[1]);
  CHECK(forward[1] != forward[2]);

  Profile other = parse("signals:\n  disk: {wave: noise, mean: 0.5, std: 0.1, seed: 8}\n");
  int same = 0;
  for (int i = 0; i < 100; ++i)
    same += only(other, i * 0.5) == forward[static_cast<std::size_t>(i)];
  CHECK(same == 0);

  // One draw per millisecond of t.
  CHECK(only(a, 3.0) == only(a, 3.0004));
  CHECK(only(a, 3.0) != only(a, 3.001));

  // std 0 is exactly the mean.
  CHECK(only(parse("signals:\n  disk: {wave: noise, mean: 0.25, std: 0, seed: 1}\n"), 9) == 0.25);
}

TEST_CASE("noise has the mean and std of its spec over 10,000 samples") {
  // mean 0.5, std 0.1: clamping at 0 and 1 (5 sigma) changes nothing measurable.
  Profile p = parse("signals:\n  disk: {wave: noise, mean: 0.5, std: 0.1, seed: 12345}\n");
  const int n = 10000;
  double sum = 0, sumSq = 0;
  for (int i = 0; i < n; ++i) {
    double v = only(p, i);  // one sample a second, as the agent samples
    sum += v;
    sumSq += v * v;
  }
  double mean = sum / n;
  double std = std::sqrt(sumSq / n - mean * mean);
  // Standard errors: 0.001 for the mean, 0.0007 for the std; allow 5 of them.
  CHECK(mean == doctest::Approx(0.5).epsilon(0.01));
  CHECK(std::abs(std - 0.1) < 0.0035);

  // And across seeds at fine time steps, about 1 sample in 20 lies beyond 2 std.
  Profile q = parse("signals:\n  disk: {wave: noise, mean: 0.5, std: 0.1, seed: 99}\n");
  int beyond = 0;
  for (int i = 0; i < n; ++i)
    beyond += std::abs(only(q, i * 0.001) - 0.5) > 0.2;
  CHECK(beyond > 455 - 110);  // 4.55 % of 10,000, about 5 standard errors either side
  CHECK(beyond < 455 + 110);
}

TEST_CASE("several signals come out in file order with memoryTotalBytes") {
  Profile p = parse(
      "memoryTotalBytes: 8589934592\n"
      "signals:\n"
      "  network: {wave: constant, value: 0.1}\n"
      "  cpu: {wave: constant, value: 0.2}\n"
      "  gpu1_memory: {wave: constant, value: 0.3}\n"
      "  psi_memory: {wave: constant, value: 0.4}\n");
  CHECK(p.memoryTotalBytes == 8589934592.0);
  auto readings = evaluate(p, 0);
  REQUIRE(readings.size() == 4);
  CHECK(readings[0].signal == "network");
  CHECK(readings[1].signal == "cpu");
  CHECK(readings[2].signal == "gpu1_memory");
  CHECK(readings[3].signal == "psi_memory");
  CHECK(readings[3].ratio == near(0.4));
}

TEST_CASE("the agent's signal names are known, nothing else is") {
  for (const char* name : {"cpu", "memory", "psi_cpu", "psi_memory", "psi_io", "disk", "network",
                           "gpu0_sm", "gpu0_memory", "gpu7_sm", "gpu12_memory"}) {
    INFO(std::string(name));
    CHECK(isKnownSignal(name));
  }
  for (const char* name :
       {"", "CPU", "cpu2", "psi", "psi_gpu", "gpu", "gpu_sm", "gpuX_sm", "gpu01_sm", "gpu0_",
        "gpu0_mem", "gpu0_sm_memory", "gpu-1_sm", "memory ", "gpu0sm"}) {
    INFO(std::string(name));
    CHECK_FALSE(isKnownSignal(name));
  }
}

TEST_CASE("the fixture with every wave parses and evaluates by hand") {
  auto text = pi0::readFile(PI0_FIXTURES "/synthetic/all-waves.yaml");
  REQUIRE(text.has_value());
  Profile p = parse(*text);
  CHECK(p.memoryTotalBytes == 4294967296.0);
  auto readings = evaluate(p, 30);
  REQUIRE(readings.size() == 7);
  CHECK(readings[0].signal == "cpu");
  CHECK(readings[0].ratio == near(0.5 + 0.2 * std::sin(2 * std::numbers::pi * 30 / 8)));
  CHECK(readings[1].ratio == near(0.3));  // memory
  CHECK(readings[2].ratio == near(0.6));  // psi_cpu at 30 s
  CHECK(readings[3].signal == "disk");
  CHECK(readings[4].ratio == near(0.1 + 0.8 * 30 / 120));  // network
  CHECK(readings[5].ratio == near(0.1));                   // psi_io: 30 mod 16 = 14 > 0.25*16
  CHECK(readings[6].signal == "gpu0_sm");
}

TEST_CASE("the user-facing example profiles are valid") {
  for (std::string name : {"steady-node.yaml", "daily-rhythm.yaml", "overload-step.yaml"}) {
    INFO(name);
    auto text = pi0::readFile(PI0_EXAMPLES "/" + name);
    REQUIRE(text.has_value());
    auto profile = parseProfile(*text, name);
    CHECK_MESSAGE(profile.has_value(), (profile ? "" : profile.error().message));
  }
}

namespace {

struct BadProfile {
  const char* what;
  const char* yaml;
  std::vector<const char*> mustMention;
};

}  // namespace

TEST_CASE("every bad profile is an error naming the file, the signal and the field") {
  const std::vector<BadProfile> cases = {
      {"missing field",
       "signals:\n  cpu: {wave: sine, mean: 0.5, amplitude: 0.2}\n",
       {"profile.yaml:2:", "signals.cpu", "sine needs periodSeconds"}},
      {"missing field in block style",
       "signals:\n  memory:\n    wave: step\n    from: 0.1\n    atSeconds: 3\n",
       {"profile.yaml:3:", "signals.memory", "step needs to"}},
      {"wrong type: word for a number",
       "signals:\n  memory: {wave: constant, value: abc}\n",
       {"profile.yaml:2:", "signals.memory", "value", "'abc'"}},
      {"wrong type: list for a number",
       "signals:\n  cpu: {wave: sine, mean: [1, 2], amplitude: 0.2, periodSeconds: 8}\n",
       {"signals.cpu", "mean", "a list"}},
      {"wrong type: not finite",
       "signals:\n  cpu: {wave: constant, value: .nan}\n",
       {"signals.cpu", "value", "finite"}},
      {"wrong type: a wave that is not a mapping",
       "signals:\n  cpu: 0.5\n",
       {"profile.yaml:2:", "signals.cpu", "expected a wave", "'0.5'"}},
      {"missing wave", "signals:\n  memory: {value: 0.3}\n", {"signals.memory", "wave"}},
      {"unknown wave",
       "signals:\n  cpu: {wave: triangle, mean: 0.5}\n",
       {"profile.yaml:2:", "signals.cpu", "unknown wave 'triangle'", "sine"}},
      {"unknown field (typo)",
       "signals:\n  cpu: {wave: sine, mean: 0.5, amplitude: 0.2, periodSecond: 8}\n",
       {"profile.yaml:2:", "signals.cpu", "unknown field 'periodSecond'", "periodSeconds"}},
      {"field of another wave",
       "signals:\n  cpu: {wave: constant, value: 0.5, seed: 3}\n",
       {"signals.cpu", "unknown field 'seed'", "constant"}},
      {"duplicate field",
       "signals:\n  cpu: {wave: constant, value: 0.5, value: 0.6}\n",
       {"signals.cpu", "duplicate field value"}},
      {"unknown top-level key",
       "signal:\n  cpu: {wave: constant, value: 0.5}\n",
       {"profile.yaml:1:", "signal", "unknown key", "signals"}},
      {"bad signal name: upper case",
       "signals:\n  CPU: {wave: constant, value: 0.5}\n",
       {"profile.yaml:2:", "signals.CPU", "unknown signal 'CPU'", "psi_cpu", "gpu<N>_sm"}},
      {"bad signal name: unknown",
       "signals:\n  temperature: {wave: constant, value: 0.5}\n",
       {"signals.temperature", "unknown signal", "allowed"}},
      {"bad signal name: gpu without index",
       "signals:\n  gpu_sm: {wave: constant, value: 0.5}\n",
       {"signals.gpu_sm", "unknown signal"}},
      {"duplicate signal",
       "signals:\n  cpu: {wave: constant, value: 0.5}\n  cpu: {wave: constant, value: 0.6}\n",
       {"profile.yaml:3:", "signals.cpu", "duplicate signal"}},
      {"negative period",
       "signals:\n  cpu: {wave: sine, mean: 0.5, amplitude: 0.2, periodSeconds: -8}\n",
       {"profile.yaml:2:", "signals.cpu: sine needs periodSeconds > 0, got -8"}},
      {"zero square period",
       "signals:\n  psi_io: {wave: square, low: 0, high: 1, periodSeconds: 0}\n",
       {"signals.psi_io", "square needs periodSeconds > 0"}},
      {"zero ramp duration",
       "signals:\n  network: {wave: ramp, from: 0, to: 1, overSeconds: 0}\n",
       {"signals.network", "overSeconds > 0"}},
      {"negative step time",
       "signals:\n  disk: {wave: step, from: 0, to: 1, atSeconds: -1}\n",
       {"signals.disk", "atSeconds >= 0"}},
      {"negative std",
       "signals:\n  disk: {wave: noise, mean: 0.5, std: -0.1, seed: 1}\n",
       {"signals.disk", "std >= 0"}},
      {"negative seed",
       "signals:\n  disk: {wave: noise, mean: 0.5, std: 0.1, seed: -1}\n",
       {"signals.disk", "seed", "integer"}},
      {"fractional seed",
       "signals:\n  disk: {wave: noise, mean: 0.5, std: 0.1, seed: 1.5}\n",
       {"signals.disk", "seed", "'1.5'"}},
      {"duty out of range",
       "signals:\n  psi_io: {wave: square, low: 0, high: 1, periodSeconds: 4, duty: 1.5}\n",
       {"signals.psi_io", "duty in [0,1]"}},
      {"empty sum",
       "signals:\n  gpu0_sm: {wave: sum, of: []}\n",
       {"signals.gpu0_sm", "non-empty list"}},
      {"bad term of a sum",
       "signals:\n  gpu0_sm:\n    wave: sum\n    of:\n      - {wave: constant, value: 0.1}\n"
       "      - {wave: sine, mean: 0, amplitude: 0.1, periodSeconds: 0}\n",
       {"profile.yaml:6:", "signals.gpu0_sm.of[1]", "periodSeconds > 0"}},
      {"empty signals", "signals: {}\n", {"profile.yaml:1:", "signals", "non-empty"}},
      {"signals as a list", "signals: [cpu, memory]\n", {"signals", "non-empty mapping"}},
      {"no signals", "memoryTotalBytes: 1024\n", {"profile.yaml", "needs `signals:`"}},
      {"bad memoryTotalBytes",
       "memoryTotalBytes: -5\nsignals:\n  cpu: {wave: constant, value: 0.5}\n",
       {"profile.yaml:1:", "memoryTotalBytes", "positive"}},
      {"empty file", "", {"profile.yaml", "empty"}},
      {"not YAML at all: unclosed flow",
       "signals: {cpu: [wave: sine\n",
       {"profile.yaml:", "not a valid YAML profile"}},
      {"not YAML at all: bad indentation",
       "signals:\n  cpu: {wave: constant}\n bad: - ]\n",
       {"profile.yaml:", "not a valid YAML profile"}},
      {"not a mapping: prose", "this is not a profile\n", {"profile.yaml", "expected a mapping"}},
  };
  for (const BadProfile& c : cases) {
    INFO(std::string(c.what));
    INFO(std::string(c.yaml));
    auto profile = parseProfile(c.yaml, "profile.yaml");
    REQUIRE_FALSE(profile.has_value());
    INFO(profile.error().message);
    for (const char* part : c.mustMention) {
      CHECK_MESSAGE(profile.error().message.find(part) != std::string::npos, std::string(part));
    }
  }
}

TEST_CASE("the error fixture names its line") {
  auto text = pi0::readFile(PI0_FIXTURES "/synthetic/negative-period.yaml");
  REQUIRE(text.has_value());
  auto profile = parseProfile(*text, "negative-period.yaml");
  REQUIRE_FALSE(profile.has_value());
  CHECK(profile.error().message ==
        "negative-period.yaml:5: signals.cpu: sine needs periodSeconds > 0, got -8");
}

TEST_CASE("a YAML alias bomb is refused instead of expanded") {
  // Each level lists the previous one ten times through an alias: six levels name 10^6 waves
  // from a few hundred bytes (and took 22 s to expand before the bound).
  std::string yaml = "signals:\n  cpu: &l0 {wave: constant, value: 0.5}\n";
  const char* names[] = {"memory", "disk", "network", "psi_cpu", "psi_memory", "psi_io"};
  for (int level = 1; level <= 6; ++level) {
    yaml += std::string("  ") + names[level - 1] + ": &l" + std::to_string(level) +
            " {wave: sum, of: [";
    for (int i = 0; i < 10; ++i)
      yaml += (i ? ", *l" : "*l") + std::to_string(level - 1);
    yaml += "]}\n";
  }
  auto profile = parseProfile(yaml, "bomb.yaml");
  REQUIRE_FALSE(profile.has_value());
  CHECK(profile.error().message.find("expands to more than 10000 waves") != std::string::npos);
  CHECK(profile.error().message.find("bomb.yaml") != std::string::npos);
}
