#include <doctest/doctest.h>

#include <cmath>
#include <optional>

#include "fleet/fingerprints.h"
#include "fleet/resource_view.h"

using namespace pi0;
using namespace pi0::fleet;
using fleet::testing::fingerprint;

TEST_CASE("cpu and memory: their signal's gates and peak, and PSI's current value") {
  auto fp = fingerprint("node-a", {{"cpu", 0.25}, {"psi_cpu", 0.9}, {"memory", std::nullopt}});
  fp.signals.at("cpu").gates->fitError = 0.04;
  fp.signals.at("psi_cpu").current = 0.15;
  fp.signals.at("memory").current = 0.5;  // no gates yet: no data for memory

  const ResourceView cpu = resourceView(fp, Resource::kCpu);
  REQUIRE(cpu.gates);
  CHECK(cpu.gates->isolation == 0.25);
  CHECK(cpu.gates->fitError == 0.04);
  CHECK(*cpu.projectedPeak == 0.75);
  CHECK(*cpu.pressure == 0.15);

  const ResourceView memory = resourceView(fp, Resource::kMemory);
  CHECK_FALSE(memory.gates);
  CHECK_FALSE(memory.projectedPeak);
  CHECK_FALSE(memory.pressure);  // no psi_memory signal: a kernel without PSI
}

TEST_CASE("gpu: every gate and the peak are the mean over the gpu<i>_sm signals") {
  // isolation 0.1, 0.5 and 0.6; fit_error 0.02, 0.04 and 0.09 (gpu0_memory takes no part):
  // isolation (0.1 + 0.5 + 0.6) / 3 = 0.4, fit_error 0.15 / 3 = 0.05, peak 1 − 0.4 = 0.6.
  auto fp = fingerprint("node-b",
                        {{"gpu0_sm", 0.1}, {"gpu1_sm", 0.5}, {"gpu2_sm", 0.6}, {"gpu0_memory", 0}});
  fp.signals.at("gpu0_sm").gates->fitError = 0.02;
  fp.signals.at("gpu1_sm").gates->fitError = 0.04;
  fp.signals.at("gpu2_sm").gates->fitError = 0.09;
  fp.signals.at("gpu0_memory").gates->fitError = 1;
  const ResourceView gpu = resourceView(fp, Resource::kGpu);
  REQUIRE(gpu.gates);
  CHECK(gpu.gates->isolation == doctest::Approx(0.4));
  CHECK(gpu.gates->fitError == doctest::Approx(0.05));
  CHECK(*gpu.projectedPeak == doctest::Approx(0.6));
  CHECK_FALSE(gpu.pressure);

  // One GPU without gates: the pool is unknown, not the mean of the other two.
  fp.signals.at("gpu1_sm").gates.reset();
  CHECK_FALSE(resourceView(fp, Resource::kGpu).gates);
  CHECK_FALSE(resourceView(fp, Resource::kGpu).projectedPeak);
}

TEST_CASE("trimToResourceView keeps the signals resourceView reads, without their spectra") {
  NodeFingerprint fp;
  fp.node = "node-a";
  fp.ready = true;
  for (const char* name : {"cpu", "memory", "psi_cpu", "psi_memory", "psi_io", "disk_sda_util",
                           "net_eth0_rx", "gpu0_sm", "gpu0_mem", "gpu12_sm", "gpux_sm"}) {
    SignalFingerprint s;
    s.gates = SignalGates{};
    s.spectrum.assign(33, 0.5);
    s.forecast = SignalForecast{};  // the webhook's trouble warnings read it
    fp.signals.emplace(name, s);
  }
  NodeFingerprint trimmed = fp;
  trimToResourceView(trimmed);
  std::vector<std::string> kept;
  for (const auto& [name, s] : trimmed.signals) {
    kept.push_back(name);
    CHECK(s.spectrum.empty());
    CHECK(s.gates);
    CHECK(s.forecast);
  }
  CHECK(kept ==
        std::vector<std::string>{"cpu", "gpu0_sm", "gpu12_sm", "memory", "psi_cpu", "psi_memory"});
}

TEST_CASE("pressureWithin: the PSI the forecast expects within a lead, never below PSI now") {
  auto fp = fingerprint("node-a", {{"cpu", 0.8}, {"psi_cpu", 0.9}, {"memory", 0.8}});
  SignalFingerprint& psi = fp.signals.at("psi_cpu");
  psi.current = 0.12;
  // A neighbour's stalls: the kernel's 10 s average (0.12) moving toward a stall rate of 0.35.
  psi.forecast = SignalForecast{};
  psi.forecast->base = 0.12;
  psi.forecast->trendStart = 0.12;
  psi.forecast->troubleLine = 0.2;
  psi.forecast->stallRate = 0.35;
  psi.forecast->pressureNow = 0.12;

  psi.forecast->base = 0.14;  // the level's noise margin, or a rhythm's crest

  const ResourceView cpu = resourceView(fp, Resource::kCpu);
  CHECK(*cpu.pressureWithin(0) == doctest::Approx(0.12));  // no lead: PSI now
  // s + (a − s)·e^(−τ/10 s): 0.35 − 0.23·e^(−1) at 10 s.
  CHECK(*cpu.pressureWithin(10) == doctest::Approx(0.35 - 0.23 * std::exp(-1.0)));
  CHECK(*cpu.pressureWithin(5) < *cpu.pressureWithin(10));

  // A calm average (the stall rate at it): the gate reads PSI now, not F's noise margin (base
  // 0.14) or a trend, which at a tight threshold would deny a calm node for its noise.
  psi.forecast->stallRate = 0.12;
  psi.forecast->trendStart = 0.13;
  psi.forecast->trendPerSecond = 0.01;
  CHECK(*resourceView(fp, Resource::kCpu).pressureWithin(10) == doctest::Approx(0.12));
  CHECK(psi.forecast->at(10) == doctest::Approx(0.23));  // F itself still reads the trend
  psi.forecast->trendStart = 0.12;
  psi.forecast->trendPerSecond = 0;

  // A falling average: the forecast's base is the level; PSI now is never undercut.
  psi.current = 0.3;
  psi.forecast->stallRate = 0.05;
  psi.forecast->pressureNow = 0.3;
  psi.forecast->base = 0.28;  // rounding on the way: PSI now is the floor
  CHECK(*resourceView(fp, Resource::kCpu).pressureWithin(10) == doctest::Approx(0.3));

  // No forecast (the window is not full, or an older agent): PSI now.
  psi.forecast.reset();
  CHECK(*resourceView(fp, Resource::kCpu).pressureWithin(10) == doctest::Approx(0.3));
  // No PSI: nothing.
  CHECK_FALSE(resourceView(fp, Resource::kMemory).pressureWithin(10));
  CHECK_FALSE(resourceView(fp, Resource::kGpu).pressureWithin(10));
}
