#include "host/memory_sampler.h"

#include <chrono>
#include <string>

#include <doctest/doctest.h>

#include "substrates/host/temp_host_root.h"

namespace pi0::substrates {
namespace {

using namespace std::chrono_literals;
using testing::gaugeOf;
using testing::readingOf;
using testing::TempHostRoot;

const std::string kFixtures = PI0_FIXTURES "/host";
const Clock::time_point kT0 = Clock::time_point{} + 1h;

TEST_CASE("MemorySampler: recorded meminfo") {
  auto sampler = MemorySampler::create(HostPaths{kFixtures + "/recorded"});
  REQUIRE(sampler.has_value());
  CHECK((*sampler)->source() == "memory");
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample.has_value());
  // MemTotal 24684092 kB, MemAvailable 24298908 kB:
  // used = (24684092 − 24298908)/24684092 = 385184/24684092 = 0.0156045.
  REQUIRE(sample->readings.size() == 1);
  CHECK(sample->readings[0].signal == "memory");
  CHECK(sample->readings[0].ratio == doctest::Approx(385184.0 / 24684092.0).epsilon(1e-12));
  // 24684092 × 1024 = 25276510208 bytes; 24298908 × 1024 = 24882081792 bytes.
  REQUIRE(sample->gauges.size() == 2);
  CHECK(gaugeOf(*sample, GaugeKind::kMemoryTotalBytes).value_or(-1) == 25276510208.0);
  CHECK(gaugeOf(*sample, GaugeKind::kMemoryAvailableBytes).value_or(-1) == 24882081792.0);
}

TEST_CASE("MemorySampler: an old kernel without MemAvailable") {
  auto sampler = MemorySampler::create(HostPaths{kFixtures + "/old-kernel"});
  REQUIRE(sampler.has_value());
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample.has_value());
  // available = MemFree + Buffers + Cached = 1000000 + 200000 + 1800000 = 3000000 kB;
  // used = (8000000 − 3000000)/8000000 = 0.625.
  CHECK(readingOf(*sample, "memory").value_or(-1) == doctest::Approx(0.625).epsilon(1e-12));
  // 8000000 × 1024 = 8192000000; 3000000 × 1024 = 3072000000.
  CHECK(gaugeOf(*sample, GaugeKind::kMemoryTotalBytes).value_or(-1) == 8192000000.0);
  CHECK(gaugeOf(*sample, GaugeKind::kMemoryAvailableBytes).value_or(-1) == 3072000000.0);
}

TEST_CASE("MemorySampler: every call reads the file again") {
  TempHostRoot root;
  root.copyTree(kFixtures + "/recorded");
  auto sampler = MemorySampler::create(root.paths());
  REQUIRE(sampler.has_value());
  REQUIRE((*sampler)->sample(kT0).has_value());
  root.write("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 250 kB\n");
  auto sample = (*sampler)->sample(kT0 + 1s);
  REQUIRE(sample.has_value());
  // (1000 − 250)/1000 = 0.75.
  CHECK(readingOf(*sample, "memory").value_or(-1) == doctest::Approx(0.75).epsilon(1e-12));
  CHECK(gaugeOf(*sample, GaugeKind::kMemoryAvailableBytes).value_or(-1) == 256000.0);

  // MemAvailable above MemTotal cannot happen, but would clamp to 0 rather than go negative.
  root.write("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 1200 kB\n");
  auto clamped = (*sampler)->sample(kT0 + 2s);
  REQUIRE(clamped.has_value());
  CHECK(readingOf(*clamped, "memory").value_or(-1) == 0.0);
}

TEST_CASE("MemorySampler: missing and bad files are errors that name the file") {
  auto missing = MemorySampler::create(HostPaths{kFixtures + "/no-psi"});
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("no-psi/proc/meminfo") != std::string::npos);

  struct Case {
    const char* fixture;
    const char* expected;
  };
  for (const Case& c : {Case{"malformed", "MemAvailable: not an unsigned integer: '24x98908'"},
                        Case{"truncated", "truncated"}, Case{"empty", "empty file"}}) {
    CAPTURE(c.fixture);
    auto created = MemorySampler::create(HostPaths{kFixtures + "/" + c.fixture});
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find(std::string(c.fixture) + "/proc/meminfo") !=
          std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }

  struct Inline {
    const char* contents;
    const char* expected;
  };
  TempHostRoot root;
  for (const Inline& c : {
           Inline{"MemFree: 10 kB\nMemAvailable: 5 kB\n", "no MemTotal"},
           Inline{"MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal is 0"},
           Inline{"MemTotal: 1000 kB\nMemFree: 10 kB\nBuffers: 5 kB\n",
                  "no MemAvailable and no Cached"},
           Inline{"MemTotal: 1000 MB\nMemAvailable: 5 kB\n", "MemTotal: expected '<number> kB'"},
           Inline{"MemTotal:\nMemAvailable: 5 kB\n", "MemTotal: expected '<number> kB', got ''"},
       }) {
    CAPTURE(c.contents);
    root.write("proc/meminfo", c.contents);
    auto created = MemorySampler::create(root.paths());
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find("proc/meminfo") != std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("MemorySampler: a file that goes bad while sampling is an error") {
  TempHostRoot root;
  root.copyTree(kFixtures + "/recorded");
  auto sampler = MemorySampler::create(root.paths());
  REQUIRE(sampler.has_value());
  root.copyFile(kFixtures + "/truncated/proc/meminfo", "proc/meminfo");
  auto sample = (*sampler)->sample(kT0);
  REQUIRE_FALSE(sample.has_value());
  CHECK(sample.error().message.find("proc/meminfo: truncated") != std::string::npos);
}

}  // namespace
}  // namespace pi0::substrates
