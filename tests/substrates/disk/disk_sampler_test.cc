#include "disk/disk_sampler.h"

#include <chrono>
#include <string>

#include <doctest/doctest.h>

#include "substrates/host/temp_host_root.h"

namespace pi0::substrates {
namespace {

using namespace std::chrono_literals;
using testing::readingOf;
using testing::TempHostRoot;

const std::string kFixtures = PI0_FIXTURES "/disk";
// The clock's epoch, where steady_clock stands on a machine that has just booted: a first
// sample then is a baseline like any other.
const Clock::time_point kT0{};

// io_ticks (column 13, ms) of the fixtures:
//   recorded:   vda 6820, loop0 0, zram0 0 (all in sys/block; loop and zram excluded by name)
//   advanced:   vda 7070, loop0 1000, zram0 400
//   wrapped:    vda 100
//   hotplug-t1: vda 7070, vdb 5000 (new, with sys/block/vdb)
//   hotplug-t2: vda 7570, vdb 5900
//   hotplug-t3: vda 7670, vdb gone
SamplerPtr createOn(TempHostRoot& root, const std::string& fixture) {
  root.copyTree(kFixtures + "/" + fixture);
  auto sampler = DiskSampler::create(root.paths());
  REQUIRE_MESSAGE(sampler.has_value(), (sampler ? "" : sampler.error().message));
  return std::move(*sampler);
}

void replaceDiskstats(TempHostRoot& root, const std::string& fixture) {
  root.copyFile(kFixtures + "/" + fixture + "/proc/diskstats", "proc/diskstats");
}

// The ratio of the only reading, "disk"; fails the test when there is not exactly that one.
double diskRatio(const Result<Sample>& sample) {
  REQUIRE(sample.has_value());
  REQUIRE(sample->readings.size() == 1);
  CHECK(sample->readings[0].signal == "disk");
  CHECK(sample->gauges.empty());
  return sample->readings[0].ratio;
}

// True when the sample succeeded with neither reading nor gauge.
bool noReading(const Result<Sample>& sample) {
  REQUIRE(sample.has_value());
  return sample->readings.empty() && sample->gauges.empty();
}

TEST_CASE("DiskSampler: create needs a readable diskstats with a whole disk") {
  auto recorded = DiskSampler::create(HostPaths{kFixtures + "/recorded"});
  REQUIRE(recorded.has_value());
  CHECK((*recorded)->source() == "disk");

  TempHostRoot empty;
  auto missing = DiskSampler::create(empty.paths());
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("proc/diskstats") != std::string::npos);

  // loop0, zram0 and sr0 are in sys/block but excluded by name; vda1 is a partition (not in
  // sys/block).
  auto noDisk = DiskSampler::create(HostPaths{kFixtures + "/no-disk"});
  REQUIRE_FALSE(noDisk.has_value());
  CHECK(noDisk.error().message.starts_with("no whole disk in "));
  CHECK(noDisk.error().message.find("no-disk/proc/diskstats") != std::string::npos);

  // A diskstats without any sys/block beside it names no whole disk either.
  auto noSys = DiskSampler::create(HostPaths{kFixtures + "/wrapped"});
  REQUIRE_FALSE(noSys.has_value());
  CHECK(noSys.error().message.starts_with("no whole disk in "));
}

TEST_CASE("DiskSampler: busy ratio of the recorded disk over half a second") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "advanced");
  // vda: (7070 − 6820) ms / 500 ms = 0.5. loop0 (+1000 ms → 1.0 after clamping) and zram0
  // (+400 ms → 0.8) would win if they were counted.
  CHECK(diskRatio(sampler->sample(kT0 + 500ms)) == doctest::Approx(0.5).epsilon(1e-12));
}

TEST_CASE("DiskSampler: the old 14-column format; partitions and sr are not counted") {
  TempHostRoot root;
  auto sampler = createOn(root, "format14");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "format14-advanced");
  // Over 1000 ms: sda (1500 − 1200)/1000 = 0.3, sdb (840 − 40)/1000 = 0.8 → max 0.8.
  // The partition sda1 ((2100 − 1100)/1000 = 1.0) and sr0 (1000/1000 = 1.0) would give 1.0.
  CHECK(diskRatio(sampler->sample(kT0 + 1s)) == doctest::Approx(0.8).epsilon(1e-12));
}

TEST_CASE("DiskSampler: the 18-column format (with discard statistics) and device mapper") {
  TempHostRoot root;
  auto sampler = createOn(root, "format18");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "format18-advanced");
  // Over 2000 ms: nvme0n1 (4600 − 4000)/2000 = 0.3, dm-0 (4800 − 3800)/2000 = 0.5 → 0.5.
  // The partition nvme0n1p1 ((5900 − 3900)/2000 = 1.0) is not counted.
  CHECK(diskRatio(sampler->sample(kT0 + 2s)) == doctest::Approx(0.5).epsilon(1e-12));
}

TEST_CASE("DiskSampler: more I/O time than wall time clamps to 1") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "advanced");
  // (7070 − 6820) ms / 100 ms = 2.5 → 1.
  CHECK(diskRatio(sampler->sample(kT0 + 100ms)) == 1.0);
}

TEST_CASE("DiskSampler: a counter that went backwards re-baselines that disk") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "wrapped");
  CHECK(noReading(sampler->sample(kT0 + 1s)));
  replaceDiskstats(root, "recorded");
  // From the wrapped baseline: (6820 − 100) ms / 10000 ms = 0.672.
  CHECK(diskRatio(sampler->sample(kT0 + 11s)) == doctest::Approx(0.672).epsilon(1e-12));
}

TEST_CASE("DiskSampler: a call whose time is not after the previous one re-baselines") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "advanced");
  CHECK(noReading(sampler->sample(kT0)));
  // hotplug-t2 lists vdb too, but this root has no sys/block/vdb, so only vda counts:
  // (7570 − 7070)/1000 = 0.5 against the new baseline ("recorded" would give 750/1000).
  replaceDiskstats(root, "hotplug-t2");
  CHECK(diskRatio(sampler->sample(kT0 + 1s)) == doctest::Approx(0.5).epsilon(1e-12));
  replaceDiskstats(root, "hotplug-t3");
  CHECK(noReading(sampler->sample(kT0 + 500ms)));
}

TEST_CASE("DiskSampler: disks that appear and disappear") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  CHECK(noReading(sampler->sample(kT0)));

  // vdb appears (diskstats and sys/block/vdb): no baseline yet, so only vda:
  // (7070 − 6820)/500 = 0.5.
  root.copyTree(kFixtures + "/hotplug-t1");
  CHECK(diskRatio(sampler->sample(kT0 + 500ms)) == doctest::Approx(0.5).epsilon(1e-12));

  // Both over 1000 ms: vda (7570 − 7070)/1000 = 0.5, vdb (5900 − 5000)/1000 = 0.9 → 0.9.
  replaceDiskstats(root, "hotplug-t2");
  CHECK(diskRatio(sampler->sample(kT0 + 1500ms)) == doctest::Approx(0.9).epsilon(1e-12));

  // vdb unplugged: vda (7670 − 7570)/1000 = 0.1.
  root.remove("sys/block/vdb");
  replaceDiskstats(root, "hotplug-t3");
  CHECK(diskRatio(sampler->sample(kT0 + 2500ms)) == doctest::Approx(0.1).epsilon(1e-12));

  // vdb is back (5900) while vda stepped back (7670 → 7570): vdb has no baseline any more and
  // vda re-baselines, so there is no ratio at all.
  root.copyTree(kFixtures + "/hotplug-t1");
  replaceDiskstats(root, "hotplug-t2");
  CHECK(noReading(sampler->sample(kT0 + 3500ms)));

  // All disks gone from sys/block: not an error, just nothing to say.
  root.remove("sys/block");
  CHECK(noReading(sampler->sample(kT0 + 4500ms)));
}

TEST_CASE("DiskSampler: names with a slash are looked up with '!' in sys/block") {
  TempHostRoot root;
  root.write("sys/block/cciss!c0d0/dev", "104:0\n");
  root.write("proc/diskstats", " 104 0 cciss/c0d0 1 0 8 1 1 0 8 1 0 100 2\n");
  auto sampler = DiskSampler::create(root.paths());
  REQUIRE(sampler.has_value());
  CHECK(noReading((*sampler)->sample(kT0)));
  root.write("proc/diskstats", " 104 0 cciss/c0d0 1 0 8 1 1 0 8 1 0 350 2\n");
  // (350 − 100)/1000 = 0.25.
  CHECK(diskRatio((*sampler)->sample(kT0 + 1s)) == doctest::Approx(0.25).epsilon(1e-12));

  // A name that would climb out of sys/block is never a disk (sys/block/.. exists).
  root.write("proc/diskstats", " 1 0 .. 1 0 8 1 1 0 8 1 0 350 2\n");
  CHECK_FALSE(DiskSampler::create(root.paths()).has_value());
}

TEST_CASE("DiskSampler: bad files are errors that name the file and the problem") {
  struct Case {
    const char* fixture;
    const char* expected;
  };
  for (const Case& c : {Case{"malformed", "line 9: vda io_ticks: not an unsigned integer: '68z0'"},
                        Case{"truncated", "truncated"}, Case{"empty", "empty file"}}) {
    CAPTURE(c.fixture);
    auto created = DiskSampler::create(HostPaths{kFixtures + "/" + c.fixture});
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find(std::string(c.fixture) + "/proc/diskstats") !=
          std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }

  struct Inline {
    const char* contents;
    const char* expected;
  };
  TempHostRoot root;
  root.write("sys/block/vda/dev", "254:0\n");
  for (const Inline& c : {
           Inline{" 254 0 vda 1 2 3\n", "line 1: vda has 6 columns, expected at least 14"},
           Inline{" 254 0 vda 1 2 3 4 5 6 7 8 9 -10 11\n", "vda io_ticks"},
           Inline{" 254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n 254\n", "line 2: no device name"},
       }) {
    CAPTURE(c.contents);
    root.write("proc/diskstats", c.contents);
    auto created = DiskSampler::create(root.paths());
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find("proc/diskstats: ") != std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("DiskSampler: a bad file during sampling is an error and keeps the baseline") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  CHECK(noReading(sampler->sample(kT0)));
  replaceDiskstats(root, "truncated");
  auto truncated = sampler->sample(kT0 + 1s);
  REQUIRE_FALSE(truncated.has_value());
  CHECK(truncated.error().message.find("proc/diskstats: truncated") != std::string::npos);
  replaceDiskstats(root, "malformed");
  CHECK_FALSE(sampler->sample(kT0 + 2s).has_value());
  replaceDiskstats(root, "empty");
  CHECK_FALSE(sampler->sample(kT0 + 3s).has_value());
  // Against "recorded" at kT0: (7070 − 6820)/4000 = 0.0625.
  replaceDiskstats(root, "advanced");
  CHECK(diskRatio(sampler->sample(kT0 + 4s)) == doctest::Approx(0.0625).epsilon(1e-12));
}

}  // namespace
}  // namespace pi0::substrates
