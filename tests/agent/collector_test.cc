#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include <nlohmann/json.hpp>

#include "agent/collector.h"
#include "common/log.h"
#include "fakes/fake_sampler.h"
#include "metrics/exposition.h"

using namespace pi0;
using pi0::testing::FakeSampler;
using substrates::Clock;
using substrates::Reading;
using substrates::Sample;

namespace {

struct Fixture {
  agent::AgentMetrics metrics{"test"};
  std::unique_ptr<agent::Collector> collector;
  FakeSampler* fake = nullptr;
  Clock::time_point t{};

  explicit Fixture(std::size_t window = 8) {
    collector = std::move(*agent::Collector::create({"node-1", window, 0.5, {}, {}}, metrics));
    auto owned = std::make_unique<FakeSampler>("fake");
    fake = owned.get();
    collector->addSource(std::move(owned));
  }
  void step(std::vector<Reading> readings) {
    fake->push(Sample{std::move(readings), {}});
    t += std::chrono::milliseconds(500);
    collector->step(t, std::chrono::system_clock::now());
  }
  std::string text() { return metrics::renderText(metrics.registry()); }
};

const fleet::SignalFingerprint* find(const agent::Snapshot& s, std::string_view name) {
  return s.fingerprint().signal(name);
}

// The /fingerprint body of a snapshot, with its spectra, as JSON.
nlohmann::json json(const agent::Snapshot& s) {
  return nlohmann::json::parse(s.body(fleet::FingerprintDetail::kSpectra));
}

}  // namespace

TEST_CASE("the window fills, then the gates appear and the agent is ready") {
  Fixture f(8);
  for (int i = 0; i < 7; ++i)
    f.step({{"cpu", 0.25}});
  auto partial = f.collector->snapshot();
  CHECK_FALSE(partial->fingerprint().ready);
  CHECK(partial->fingerprint().windowFill == doctest::Approx(7.0 / 8));
  REQUIRE(find(*partial, "cpu"));
  CHECK_FALSE(find(*partial, "cpu")->gates.has_value());

  f.step({{"cpu", 0.25}});
  auto full = f.collector->snapshot();
  CHECK(full->fingerprint().ready);
  CHECK(full->fingerprint().node == "node-1");
  const auto* cpu = find(*full, "cpu");
  REQUIRE(cpu);
  REQUIRE(cpu->gates);
  CHECK(cpu->gates->lambdaInt == doctest::Approx(0.25));
  CHECK(cpu->gates->isolation == doctest::Approx(0.75));
  auto text = f.text();
  CHECK(text.find("pi0_agent_ready 1") != std::string::npos);
  CHECK(text.find("pi0_node_gate_isolation{signal=\"cpu\"} 0.75") != std::string::npos);
}

TEST_CASE("readings are clamped to [0,1] and non-finite ones dropped") {
  Fixture f(8);
  f.step({{"cpu", 1.7}, {"disk", -0.2}, {"network", std::nan("")}});
  auto s = f.collector->snapshot();
  CHECK(find(*s, "cpu")->current == 1.0);
  CHECK(find(*s, "disk")->current == 0.0);
  CHECK(find(*s, "network") == nullptr);
}

TEST_CASE("a failing source is counted, logged once, and recovers") {
  Fixture f(8);
  // The counter is there before the first failure, at 0, so that a rate() sees that failure.
  CHECK(f.text().find("pi0_agent_sample_errors_total{source=\"fake\"} 0") != std::string::npos);
  std::vector<std::string> lines;
  log::setSink([&](std::string_view line) { lines.emplace_back(line); });
  for (int i = 0; i < 3; ++i) {
    f.fake->push(fail("/proc/stat: truncated"));
    f.t += std::chrono::milliseconds(500);
    f.collector->step(f.t, std::chrono::system_clock::now());
  }
  f.step({{"cpu", 0.5}});
  log::setSink({});
  int failed = 0, recovered = 0;
  for (const auto& l : lines) {
    failed += l.find("sampling failed") != std::string::npos;
    recovered += l.find("sampling recovered") != std::string::npos;
  }
  CHECK(failed == 1);
  CHECK(recovered == 1);
  CHECK(f.text().find("pi0_agent_sample_errors_total{source=\"fake\"} 3") != std::string::npos);
}

TEST_CASE("a missing source is reported in the fingerprint and as a metric") {
  Fixture f(8);
  log::setSink([](std::string_view) {});
  f.collector->addMissing("psi", "no PSI: /proc/pressure/cpu: No such file or directory");
  log::setSink({});
  f.step({{"cpu", 0.5}});
  auto s = f.collector->snapshot();
  REQUIRE(s->fingerprint().missingSources.size() == 1);
  CHECK(s->fingerprint().missingSources[0].source == "psi");
  CHECK(f.text().find("pi0_agent_source_up{source=\"psi\"} 0") != std::string::npos);
  CHECK(f.text().find("pi0_agent_source_up{source=\"fake\"} 1") != std::string::npos);
  // A missing source is never sampled: no error counter for it.
  CHECK(f.text().find("pi0_agent_sample_errors_total{source=\"psi\"}") == std::string::npos);
  CHECK(json(*s)["missingSources"][0]["source"] == "psi");
}

TEST_CASE("a signal that stops being reported is dropped after a whole window") {
  Fixture f(8);
  log::setSink([](std::string_view) {});
  f.step({{"cpu", 0.5}, {"gpu0_sm", 0.9}});
  for (int i = 0; i < 8; ++i)
    f.step({{"cpu", 0.5}});
  CHECK(find(*f.collector->snapshot(), "gpu0_sm") != nullptr);
  f.step({{"cpu", 0.5}});
  log::setSink({});
  CHECK(find(*f.collector->snapshot(), "gpu0_sm") == nullptr);
  CHECK(f.text().find("signal=\"gpu0_sm\"") == std::string::npos);
}

TEST_CASE("the fingerprint of a sine: dominant period in seconds, spectrum, entropy") {
  Fixture f(64);
  for (int i = 0; i < 64; ++i) {
    f.step({{"cpu", 0.5 + 0.1 * std::sin(2 * std::numbers::pi * i / 8.0)}});
  }
  const auto doc = json(*f.collector->snapshot());
  const auto& cpu = doc["signals"]["cpu"];
  // Period 8 samples at 0.5 s.
  CHECK(cpu["dominantPeriodSeconds"].get<double>() == doctest::Approx(4.0));
  CHECK(cpu["gates"]["lambda1"].get<double>() == doctest::Approx(1.0));
  CHECK(cpu["spectrum"].size() == 32);
  CHECK(doc["ready"] == true);
  CHECK(doc["windowSize"] == 64);
}

TEST_CASE("early warning: a steady memory leak is projected to exhaustion") {
  Fixture f(8);
  // +0.01 of memory per sample at 0.5 s: 0.02/s. After 8 samples the last is 0.57, so
  // saturation in (1 - 0.57) / 0.02 = 21.5 s. The CPU is flat: no trouble expected.
  for (int i = 0; i < 8; ++i)
    f.step({{"memory", 0.5 + 0.01 * i}, {"cpu", 0.3}});
  auto s = f.collector->snapshot();
  const auto* memory = find(*s, "memory");
  REQUIRE(memory);
  REQUIRE(memory->forecast);
  CHECK(memory->forecast->troubleLine == 1.0);
  REQUIRE(memory->forecast->secondsToTrouble);
  CHECK(*memory->forecast->secondsToTrouble == doctest::Approx(21.5));
  CHECK_FALSE(find(*s, "cpu")->forecast->secondsToTrouble);

  const auto doc = json(*s);
  const auto& forecast = doc["signals"]["memory"]["forecast"];
  CHECK(forecast["secondsToTrouble"].get<double>() == doctest::Approx(21.5));
  CHECK(forecast["trendPerSecond"].get<double>() == doctest::Approx(0.02));
  CHECK(forecast["trendStart"].get<double>() == doctest::Approx(0.57));
  CHECK(forecast["horizonSeconds"].get<double>() == doctest::Approx(15.0));  // 30 × 0.5 s
  // The projected peak is where the leak will be at the horizon: 0.57 + 15 s × 0.02/s.
  CHECK(doc["signals"]["memory"]["projectedPeak"].get<double>() == doctest::Approx(0.87));
  CHECK(doc["signals"]["cpu"]["forecast"]["secondsToTrouble"].is_null());
  CHECK(doc.contains("memoryTrend") == false);

  const auto text = f.text();
  const std::string memoryTtt = "pi0_node_seconds_to_trouble{signal=\"memory\"} ";
  const auto at = text.find(memoryTtt);
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(text.substr(at + memoryTtt.size())) == doctest::Approx(21.5));
  CHECK(text.find("pi0_node_seconds_to_trouble{signal=\"cpu\"} +Inf") != std::string::npos);
  CHECK(text.find("pi0_node_forecast_trend_ratio_per_second{signal=\"memory\"} 0.02") !=
        std::string::npos);
}

TEST_CASE("early warning: a PSI signal warns at the pressure line, not at saturation") {
  agent::AgentMetrics metrics{"test"};
  agent::CollectorConfig config{"node-1", 8, 1.0, {}, {}};
  config.troubleLines.pressure = 0.25;
  auto collector = std::move(*agent::Collector::create(config, metrics));
  auto owned = std::make_unique<FakeSampler>("fake");
  auto* fake = owned.get();
  collector->addSource(std::move(owned));
  Clock::time_point t{};
  // io pressure rising 0.02 per second from 0.05: at the newest sample 0.19; 0.25 in 3 s.
  for (int i = 0; i < 8; ++i) {
    fake->push(Sample{{{"psi_io", 0.05 + 0.02 * i}}, {}});
    t += std::chrono::seconds(1);
    collector->step(t, std::chrono::system_clock::now());
  }
  const auto* io = find(*collector->snapshot(), "psi_io");
  REQUIRE(io);
  REQUIRE(io->forecast);
  CHECK(io->forecast->troubleLine == 0.25);
  REQUIRE(io->forecast->secondsToTrouble);
  CHECK(*io->forecast->secondsToTrouble == doctest::Approx(3.0));
}

TEST_CASE("restored windows make the agent ready at once") {
  Fixture f(8);
  f.collector->restore({{"cpu", std::vector<double>(10, 0.3)}, {"memory", {0.4, 0.4}}});
  auto s = f.collector->snapshot();
  CHECK(find(*s, "cpu")->samples == 8);  // the newest 8 of the 10 saved
  CHECK_FALSE(s->fingerprint().ready);   // memory has only 2
  auto windows = f.collector->windows();
  CHECK(windows.at("cpu") == std::vector<double>(8, 0.3));
}

TEST_CASE("raw values: a series not reported in a round is removed, XID counts move by deltas") {
  Fixture f(8);
  using substrates::GaugeKind;
  auto round = [&](std::vector<substrates::Gauge> gauges) {
    f.fake->push(Sample{{{"cpu", 0.5}}, std::move(gauges)});
    f.t += std::chrono::milliseconds(500);
    f.collector->step(f.t, std::chrono::system_clock::now());
  };
  round({{GaugeKind::kGpuTemperatureCelsius, "0", 61},
         {GaugeKind::kGpuTemperatureCelsius, "1", 70},
         {GaugeKind::kGpuXidErrorsTotal, "0", 2}});
  auto text = f.text();
  CHECK(text.find("pi0_node_gpu_temperature_celsius{gpu=\"1\"} 70") != std::string::npos);
  CHECK(text.find("pi0_node_gpu_xid_errors_total{gpu=\"0\"} 2") != std::string::npos);

  // GPU 1 is gone; GPU 0's cumulative count went from 2 to 5.
  round({{GaugeKind::kGpuTemperatureCelsius, "0", 62}, {GaugeKind::kGpuXidErrorsTotal, "0", 5}});
  text = f.text();
  CHECK(text.find("pi0_node_gpu_temperature_celsius{gpu=\"1\"}") == std::string::npos);
  CHECK(text.find("pi0_node_gpu_temperature_celsius{gpu=\"0\"} 62") != std::string::npos);
  CHECK(text.find("pi0_node_gpu_xid_errors_total{gpu=\"0\"} 5") != std::string::npos);

  // No raw values at all this round: nothing stale is left.
  round({});
  CHECK(f.text().find("pi0_node_gpu_") == std::string::npos);
}

TEST_CASE("the agent's /fingerprint bodies parse back into the fingerprint it published") {
  Fixture f(8);
  log::setSink([](std::string_view) {});
  f.collector->addMissing("psi", "no PSI");
  log::setSink({});
  for (int i = 0; i < 8; ++i)
    f.step({{"cpu", 0.5 + 0.1 * std::sin(i)}, {"memory", 0.3 + 0.01 * i}, {"gpu0_sm", 0.9}});
  f.step({{"cpu", 0.5}, {"disk", 0.1}});  // disk's window has one sample: not ready
  auto s = f.collector->snapshot();
  const fleet::NodeFingerprint& published = s->fingerprint();
  REQUIRE(published.signals.size() == 4);
  for (auto detail : {fleet::FingerprintDetail::kSpectra, fleet::FingerprintDetail::kSummary}) {
    auto parsed = fleet::parseFingerprint(s->body(detail));
    REQUIRE_MESSAGE(parsed, (parsed ? "" : parsed.error().message));
    fleet::NodeFingerprint expected = published;
    // The wire carries the timestamp to the millisecond, and the summary no spectra.
    expected.timestamp = std::chrono::floor<std::chrono::milliseconds>(published.timestamp);
    if (detail == fleet::FingerprintDetail::kSummary) {
      for (auto& [name, signal] : expected.signals) {
        signal.spectrum.clear();
        signal.entropy.reset();
      }
    }
    CHECK(*parsed == expected);
  }
  // The body is built once per snapshot: the same string every time.
  CHECK(&s->body(fleet::FingerprintDetail::kSummary) ==
        &s->body(fleet::FingerprintDetail::kSummary));
  CHECK(s->body(fleet::FingerprintDetail::kSummary).find("spectrum") == std::string::npos);
  CHECK(s->body(fleet::FingerprintDetail::kSpectra).find("spectrum") != std::string::npos);
}
