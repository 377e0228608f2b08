#include "host/cpu_sampler.h"

#include <chrono>
#include <string>

#include <doctest/doctest.h>

#include "substrates/host/temp_host_root.h"

namespace pi0::substrates {
namespace {

using namespace std::chrono_literals;
using testing::readingOf;
using testing::TempHostRoot;

const std::string kFixtures = PI0_FIXTURES "/host";
// The clock's epoch, where steady_clock stands on a machine that has just booted: a first
// sample then is a baseline like any other.
const Clock::time_point kT0{};

// Aggregate lines of the fixtures (user nice system idle iowait irq softirq steal guest gnice):
//   recorded: cpu  4809 0    2528 63173 465 0  45 7  0   0
//             total = 4809+0+2528+63173+465+0+45+7 = 71027, idle+iowait = 63638
//   advanced: cpu  5409 50   2678 64173 565 20 75 57 100 20
//             total = 5409+50+2678+64173+565+20+75+57 = 73027, idle+iowait = 64738
//   wrapped:  cpu  100  0    50   1000  10  0  5  0  0   0
//             total = 1165, idle+iowait = 1010
SamplerPtr createOn(TempHostRoot& root, const std::string& fixture) {
  root.copyTree(kFixtures + "/" + fixture);
  auto sampler = CpuSampler::create(root.paths());
  REQUIRE_MESSAGE(sampler.has_value(), (sampler ? "" : sampler.error().message));
  return std::move(*sampler);
}

void replaceStat(TempHostRoot& root, const std::string& fixture) {
  root.copyFile(kFixtures + "/" + fixture + "/proc/stat", "proc/stat");
}

TEST_CASE("CpuSampler: source name and missing /proc/stat") {
  auto missing = CpuSampler::create(HostPaths{kFixtures + "/partial-psi"});
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("partial-psi/proc/stat") != std::string::npos);

  auto sampler = CpuSampler::create(HostPaths{kFixtures + "/recorded"});
  REQUIRE(sampler.has_value());
  CHECK((*sampler)->source() == "cpu");
}

TEST_CASE("CpuSampler: first call has no reading, the second the busy ratio of the interval") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  auto first = sampler->sample(kT0);
  REQUIRE(first.has_value());
  CHECK(first->readings.empty());
  CHECK(first->gauges.empty());

  replaceStat(root, "advanced");
  auto second = sampler->sample(kT0 + 1s);
  REQUIRE(second.has_value());
  REQUIRE(second->readings.size() == 1);
  // Δtotal = 73027 − 71027 = 2000 (guest +100 and guest_nice +20 are inside user and nice and
  // not added again; counted twice Δtotal would be 2120 and the ratio 0.4811).
  // Δ(idle+iowait) = 64738 − 63638 = 1100. busy = 1 − 1100/2000 = 0.45.
  CHECK(second->readings[0].signal == "cpu");
  CHECK(second->readings[0].ratio == doctest::Approx(0.45).epsilon(1e-12));
}

TEST_CASE("CpuSampler: a call whose time is not after the previous one re-baselines") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  REQUIRE(sampler->sample(kT0).has_value());

  replaceStat(root, "advanced");
  auto sameTime = sampler->sample(kT0);
  REQUIRE(sameTime.has_value());
  CHECK(sameTime->readings.empty());

  // The baseline is now "advanced": user +100, idle +300 → Δtotal = 400, Δidle = 300,
  // busy = 1 − 300/400 = 0.25. (Against "recorded" it would be 1 − 1400/2400 = 0.4167.)
  root.write("proc/stat", "cpu  5509 50 2678 64473 565 20 75 57 100 20\n");
  auto later = sampler->sample(kT0 + 1s);
  REQUIRE(later.has_value());
  CHECK(readingOf(*later, "cpu").value_or(-1.0) == doctest::Approx(0.25).epsilon(1e-12));

  // A clock that steps back also only re-baselines: +400 user ticks, nothing idle would be 1.0.
  root.write("proc/stat", "cpu  5909 50 2678 64473 565 20 75 57 100 20\n");
  auto earlier = sampler->sample(kT0);
  REQUIRE(earlier.has_value());
  CHECK(earlier->readings.empty());
}

TEST_CASE("CpuSampler: counters that went backwards re-baseline") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  REQUIRE(sampler->sample(kT0).has_value());

  replaceStat(root, "wrapped");
  auto wrapped = sampler->sample(kT0 + 1s);
  REQUIRE(wrapped.has_value());
  CHECK(wrapped->readings.empty());

  // From the wrapped baseline back to the recorded counters:
  // Δtotal = 71027 − 1165 = 69862, Δidle = 63638 − 1010 = 62628,
  // busy = (69862 − 62628)/69862 = 7234/69862 = 0.103547.
  replaceStat(root, "recorded");
  auto after = sampler->sample(kT0 + 2s);
  REQUIRE(after.has_value());
  CHECK(readingOf(*after, "cpu").value_or(-1.0) ==
        doctest::Approx(7234.0 / 69862.0).epsilon(1e-12));
}

TEST_CASE("CpuSampler: iowait stepping back while idle grows is not a reset") {
  TempHostRoot root;
  root.write("proc/stat", "cpu  100 0 100 1000 50 0 0 0 0 0\n");
  auto sampler = CpuSampler::create(root.paths());
  REQUIRE(sampler.has_value());
  REQUIRE((*sampler)->sample(kT0).has_value());
  // iowait 50 → 40 while idle 1000 → 1090 and user +20: Δ(idle+iowait) = 1130 − 1050 = 80,
  // Δtotal = 1350 − 1250 = 100, busy = 1 − 80/100 = 0.2.
  root.write("proc/stat", "cpu  120 0 100 1090 40 0 0 0 0 0\n");
  auto next = (*sampler)->sample(kT0 + 1s);
  REQUIRE(next.has_value());
  CHECK(readingOf(*next, "cpu").value_or(-1.0) == doctest::Approx(0.2).epsilon(1e-12));
}

TEST_CASE("CpuSampler: no tick elapsed gives no reading") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  REQUIRE(sampler->sample(kT0).has_value());
  auto same = sampler->sample(kT0 + 1s);
  REQUIRE(same.has_value());
  CHECK(same->readings.empty());
}

TEST_CASE("CpuSampler: bad files are errors that name the file and the problem") {
  struct Case {
    const char* fixture;
    const char* expected;
  };
  for (const Case& c : {Case{"malformed", "field system: not an unsigned integer: '25x8'"},
                        Case{"truncated", "truncated"}, Case{"empty", "empty file"}}) {
    CAPTURE(c.fixture);
    auto created = CpuSampler::create(HostPaths{kFixtures + "/" + c.fixture});
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find(std::string(c.fixture) + "/proc/stat") != std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }

  TempHostRoot root;
  root.write("proc/stat", "cpu  4809 0 2528\n");
  auto fewFields = CpuSampler::create(root.paths());
  REQUIRE_FALSE(fewFields.has_value());
  CHECK(fewFields.error().message.find("has 3 fields, expected at least 8") != std::string::npos);

  root.write("proc/stat", "cpu0 4809 0 2528 63173 465 0 45 7 0 0\nctxt 441246\n");
  auto noAggregate = CpuSampler::create(root.paths());
  REQUIRE_FALSE(noAggregate.has_value());
  CHECK(noAggregate.error().message.find("no aggregate 'cpu' line") != std::string::npos);

  root.write("proc/stat", "cpu  18446744073709551615 1 0 0 0 0 0 0 0 0\n");
  auto overflow = CpuSampler::create(root.paths());
  REQUIRE_FALSE(overflow.has_value());
  CHECK(overflow.error().message.find("overflow") != std::string::npos);
}

TEST_CASE("CpuSampler: a bad file during sampling is an error and keeps the baseline") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  REQUIRE(sampler->sample(kT0).has_value());

  replaceStat(root, "truncated");
  auto truncated = sampler->sample(kT0 + 1s);
  REQUIRE_FALSE(truncated.has_value());
  CHECK(truncated.error().message.find("proc/stat: truncated") != std::string::npos);

  replaceStat(root, "malformed");
  CHECK_FALSE(sampler->sample(kT0 + 2s).has_value());

  root.remove("proc/stat");
  auto gone = sampler->sample(kT0 + 3s);
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error().message.find("proc/stat") != std::string::npos);

  // Still measured against "recorded": 1 − 1100/2000 = 0.45.
  replaceStat(root, "advanced");
  auto recovered = sampler->sample(kT0 + 4s);
  REQUIRE(recovered.has_value());
  CHECK(readingOf(*recovered, "cpu").value_or(-1.0) == doctest::Approx(0.45).epsilon(1e-12));
}

}  // namespace
}  // namespace pi0::substrates
