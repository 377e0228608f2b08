#include "host/pressure_sampler.h"

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
const Clock::time_point kT0 = Clock::time_point{} + 1h;

TEST_CASE("PressureSampler: recorded cpu, memory and io") {
  auto sampler = PressureSampler::create(HostPaths{kFixtures + "/recorded"});
  REQUIRE(sampler.has_value());
  CHECK((*sampler)->source() == "psi");
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample.has_value());
  // some avg10: cpu 0.01 %, memory 0.00 %, io 0.03 % → 0.0001, 0, 0.0003.
  REQUIRE(sample->readings.size() == 3);
  CHECK(sample->readings[0].signal == "psi_cpu");
  CHECK(sample->readings[0].ratio == doctest::Approx(0.0001).epsilon(1e-12));
  CHECK(sample->readings[1].signal == "psi_memory");
  CHECK(sample->readings[1].ratio == 0.0);
  CHECK(sample->readings[2].signal == "psi_io");
  CHECK(sample->readings[2].ratio == doctest::Approx(0.0003).epsilon(1e-12));
  CHECK(sample->gauges.empty());
}

TEST_CASE("PressureSampler: only the files that exist are sampled") {
  auto sampler = PressureSampler::create(HostPaths{kFixtures + "/partial-psi"});
  REQUIRE(sampler.has_value());
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample.has_value());
  // memory: "some avg10=12.50" → 0.125; the "full avg10=6.25" line is not the one read.
  REQUIRE(sample->readings.size() == 1);
  CHECK(sample->readings[0].signal == "psi_memory");
  CHECK(sample->readings[0].ratio == doctest::Approx(0.125).epsilon(1e-12));
}

TEST_CASE("PressureSampler: no PSI at all") {
  auto sampler = PressureSampler::create(HostPaths{kFixtures + "/no-psi"});
  REQUIRE_FALSE(sampler.has_value());
  CHECK(sampler.error().message.starts_with("no PSI: "));
  CHECK(sampler.error().message.find("no-psi/proc/pressure") != std::string::npos);
}

TEST_CASE("PressureSampler: bad files are errors that name the file and the problem") {
  struct Case {
    const char* fixture;
    const char* expected;
  };
  for (const Case& c : {Case{"malformed", "some avg10: not a number: 'abc'"},
                        Case{"truncated", "truncated"}, Case{"empty", "empty file"}}) {
    CAPTURE(c.fixture);
    auto created = PressureSampler::create(HostPaths{kFixtures + "/" + c.fixture});
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find(std::string(c.fixture) + "/proc/pressure/cpu") !=
          std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }

  struct Inline {
    const char* contents;
    const char* expected;
  };
  TempHostRoot root;
  for (const Inline& c : {
           Inline{"full avg10=1.00 avg60=0.00 avg300=0.00 total=0\n", "no 'some' line"},
           Inline{"some avg60=1.00 avg300=0.00 total=0\n", "'some' line has no avg10"},
           Inline{"some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n", "outside 0..100"},
           Inline{"some avg10=-1 avg60=0.00 avg300=0.00 total=0\n", "outside 0..100"},
           Inline{"some avg10=nan avg60=0.00 avg300=0.00 total=0\n", "outside 0..100"},
       }) {
    CAPTURE(c.contents);
    root.write("proc/pressure/io", c.contents);
    auto created = PressureSampler::create(root.paths());
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find("proc/pressure/io") != std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("PressureSampler: each call reads again; a file gone bad is an error") {
  TempHostRoot root;
  root.copyTree(kFixtures + "/recorded");
  auto sampler = PressureSampler::create(root.paths());
  REQUIRE(sampler.has_value());

  root.write("proc/pressure/io",
             "some avg10=100.00 avg60=50.00 avg300=10.00 total=1\n"
             "full avg10=99.00 avg60=50.00 avg300=10.00 total=1\n");
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample.has_value());
  // 100.00 % → 1.0; cpu still 0.01 % → 0.0001.
  CHECK(readingOf(*sample, "psi_io").value_or(-1) == 1.0);
  CHECK(readingOf(*sample, "psi_cpu").value_or(-1) == doctest::Approx(0.0001).epsilon(1e-12));

  root.copyFile(kFixtures + "/malformed/proc/pressure/cpu", "proc/pressure/cpu");
  auto bad = (*sampler)->sample(kT0 + 1s);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message.find("proc/pressure/cpu: some avg10") != std::string::npos);

  root.remove("proc/pressure/memory");
  root.copyFile(kFixtures + "/recorded/proc/pressure/cpu", "proc/pressure/cpu");
  auto gone = (*sampler)->sample(kT0 + 2s);
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error().message.find("proc/pressure/memory") != std::string::npos);
}

}  // namespace
}  // namespace pi0::substrates
