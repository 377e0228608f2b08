// SyntheticSampler: time comes only from `now`, gauges follow the memory signal, and a rewritten
// profile is picked up (restarting time) or, when broken, reported once and ignored.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "synthetic/synthetic_sampler.h"
#include "temp_dir.h"

using namespace std::chrono_literals;
using pi0::substrates::Clock;
using pi0::substrates::Gauge;
using pi0::substrates::GaugeKind;
using pi0::substrates::Sample;
using pi0::substrates::SyntheticSampler;
using pi0::testing::TempDir;

namespace {

// Writes a profile and moves its modification time a few seconds past the previous one, so the
// change is visible even when two writes land in the same filesystem timestamp tick.
void writeProfile(const std::filesystem::path& file, std::string_view yaml) {
  std::optional<std::filesystem::file_time_type> before;
  if (std::filesystem::exists(file)) before = std::filesystem::last_write_time(file);
  REQUIRE(pi0::writeFileAtomic(file, yaml).has_value());
  if (before) std::filesystem::last_write_time(file, *before + 5s);
}

// Captures log lines for the life of the object.
class LogCapture {
 public:
  LogCapture() {
    pi0::log::setSink([this](std::string_view line) { lines_.emplace_back(line); });
  }
  ~LogCapture() { pi0::log::setSink({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> warnings() const {
    std::vector<std::string> out;
    for (const auto& line : lines_) {
      if (line.find("\"level\":\"warn\"") != std::string::npos) out.push_back(line);
    }
    return out;
  }

 private:
  std::vector<std::string> lines_;
};

double ratio(const Sample& sample, std::string_view signal) {
  for (const auto& r : sample.readings) {
    if (r.signal == signal) return r.ratio;
  }
  FAIL("no reading for " << signal);
  return -1;
}

const Gauge* gauge(const Sample& sample, GaugeKind kind) {
  for (const auto& g : sample.gauges) {
    if (g.kind == kind) return &g;
  }
  return nullptr;
}

std::unique_ptr<SyntheticSampler> create(const std::filesystem::path& file) {
  auto sampler = SyntheticSampler::create(file);
  REQUIRE_MESSAGE(sampler.has_value(), (sampler ? "" : sampler.error().message));
  return std::move(*sampler);
}

Sample sampleAt(SyntheticSampler& sampler, Clock::time_point now) {
  auto sample = sampler.sample(now);
  REQUIRE_MESSAGE(sample.has_value(), (sample ? "" : sample.error().message));
  return *sample;
}

// An arbitrary start, far from the real clock's value: only `now` may matter.
const Clock::time_point kT0 = Clock::time_point{} + 1000h;

doctest::Approx near(double v) {
  return doctest::Approx(v).epsilon(1e-9);
}

}  // namespace

TEST_CASE("create fails naming the file when it is missing or invalid") {
  TempDir dir;
  auto missing = SyntheticSampler::create(dir.path() / "nope.yaml");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("nope.yaml") != std::string::npos);

  auto invalid = SyntheticSampler::create(PI0_FIXTURES "/synthetic/negative-period.yaml");
  REQUIRE_FALSE(invalid.has_value());
  CHECK(invalid.error().message.find("negative-period.yaml:5: signals.cpu: sine needs "
                                     "periodSeconds > 0") != std::string::npos);

  auto notYaml = SyntheticSampler::create(PI0_FIXTURES "/synthetic/not-yaml.yaml");
  REQUIRE_FALSE(notYaml.has_value());
  CHECK(notYaml.error().message.find("not-yaml.yaml") != std::string::npos);
}

TEST_CASE("t counts from the first sample, by `now` only") {
  auto sampler = create(PI0_FIXTURES "/synthetic/all-waves.yaml");
  CHECK(sampler->source() == "synthetic");

  Sample s0 = sampleAt(*sampler, kT0);
  REQUIRE(s0.readings.size() == 7);
  CHECK(ratio(s0, "cpu") == near(0.5));       // sine at t = 0
  CHECK(ratio(s0, "psi_cpu") == near(0.05));  // step before 30 s
  CHECK(ratio(s0, "network") == near(0.1));   // ramp start

  Sample s2 = sampleAt(*sampler, kT0 + 2s);
  CHECK(ratio(s2, "cpu") == near(0.7));  // a quarter of the 8 s period

  Sample s60 = sampleAt(*sampler, kT0 + 60s);
  CHECK(ratio(s60, "psi_cpu") == near(0.6));
  CHECK(ratio(s60, "network") == near(0.5));  // ramp midpoint

  // The same profile sampled on another schedule gives the same values at the same t.
  auto other = create(PI0_FIXTURES "/synthetic/all-waves.yaml");
  Clock::time_point t1 = Clock::time_point{} + 5h;
  sampleAt(*other, t1);
  Sample o60 = sampleAt(*other, t1 + 60s);
  CHECK(ratio(o60, "disk") == ratio(s60, "disk"));
  CHECK(ratio(o60, "gpu0_sm") == ratio(s60, "gpu0_sm"));
}

TEST_CASE("memory gauges come from the memory signal and memoryTotalBytes") {
  TempDir dir;
  auto file = dir.path() / "memory.yaml";
  writeProfile(file,
               "memoryTotalBytes: 1000\n"
               "signals:\n  memory: {wave: step, from: 0.25, to: 0.5, atSeconds: 10}\n");
  auto sampler = create(file);
  Sample s = sampleAt(*sampler, kT0);
  const Gauge* total = gauge(s, GaugeKind::kMemoryTotalBytes);
  const Gauge* available = gauge(s, GaugeKind::kMemoryAvailableBytes);
  REQUIRE(total != nullptr);
  REQUIRE(available != nullptr);
  CHECK(total->value == 1000);
  CHECK(total->device.empty());
  CHECK(available->value == near(750));
  CHECK(gauge(sampleAt(*sampler, kT0 + 10s), GaugeKind::kMemoryAvailableBytes)->value == near(500));

  auto noMemory = dir.path() / "cpu.yaml";
  writeProfile(noMemory, "signals:\n  cpu: {wave: constant, value: 0.5}\n");
  CHECK(sampleAt(*create(noMemory), kT0).gauges.empty());
}

TEST_CASE("a rewritten profile is picked up within a second and restarts time at 0") {
  TempDir dir;
  auto file = dir.path() / "profile.yaml";
  writeProfile(file, "signals:\n  cpu: {wave: constant, value: 0.2}\n");
  auto sampler = create(file);
  LogCapture log;
  CHECK(ratio(sampleAt(*sampler, kT0), "cpu") == near(0.2));
  CHECK(ratio(sampleAt(*sampler, kT0 + 10s), "cpu") == near(0.2));

  writeProfile(file,
               "signals:\n"
               "  cpu: {wave: step, from: 0.3, to: 0.95, atSeconds: 5}\n"
               "  memory: {wave: constant, value: 0.4}\n");
  // The file was last checked at kT0 + 10s: not again before a second has passed.
  Sample early = sampleAt(*sampler, kT0 + 10s + 500ms);
  CHECK(early.readings.size() == 1);
  CHECK(ratio(early, "cpu") == near(0.2));

  // Noticed at kT0 + 11s, which becomes t = 0 of the new profile, though the old one had run 11 s.
  Sample switched = sampleAt(*sampler, kT0 + 11s);
  CHECK(switched.readings.size() == 2);
  CHECK(ratio(switched, "cpu") == near(0.3));
  CHECK(ratio(switched, "memory") == near(0.4));
  CHECK(ratio(sampleAt(*sampler, kT0 + 15s + 900ms), "cpu") == near(0.3));  // t = 4.9
  CHECK(ratio(sampleAt(*sampler, kT0 + 16s), "cpu") == near(0.95));         // t = 5
  CHECK(sampler->profile().signals.size() == 2);
  CHECK(log.warnings().empty());
}

TEST_CASE("a broken rewrite keeps the old profile and clock, with one warning") {
  TempDir dir;
  auto file = dir.path() / "profile.yaml";
  writeProfile(file, "signals:\n  cpu: {wave: ramp, from: 0, to: 1, overSeconds: 100}\n");
  auto sampler = create(file);
  LogCapture log;
  CHECK(ratio(sampleAt(*sampler, kT0), "cpu") == near(0));

  writeProfile(file, "signals:\n  cpu: {wave: sine, mean: 0.5, amplitude: 0.2}\n");
  Sample s = sampleAt(*sampler, kT0 + 10s);
  CHECK(ratio(s, "cpu") == near(0.1));  // the old ramp, 10 s in: time was not restarted
  CHECK(ratio(sampleAt(*sampler, kT0 + 20s), "cpu") == near(0.2));
  CHECK(ratio(sampleAt(*sampler, kT0 + 30s), "cpu") == near(0.3));
  auto warnings = log.warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("profile.yaml:2: signals.cpu: sine needs periodSeconds") !=
        std::string::npos);

  // Deleting the file is one more warning, and still the old profile.
  std::filesystem::remove(file);
  CHECK(ratio(sampleAt(*sampler, kT0 + 40s), "cpu") == near(0.4));
  CHECK(ratio(sampleAt(*sampler, kT0 + 50s), "cpu") == near(0.5));
  CHECK(log.warnings().size() == 2);

  // A fixed file is picked up and restarts time.
  writeProfile(file, "signals:\n  cpu: {wave: constant, value: 0.8}\n");
  CHECK(ratio(sampleAt(*sampler, kT0 + 60s), "cpu") == near(0.8));
  CHECK(log.warnings().size() == 2);
}
