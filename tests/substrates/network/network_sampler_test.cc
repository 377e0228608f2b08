#include "network/network_sampler.h"

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

#include "substrates/host/temp_host_root.h"

namespace pi0::substrates {
namespace {

using namespace std::chrono_literals;
using testing::gaugeOf;
using testing::readingOf;
using testing::TempHostRoot;

const std::string kFixtures = PI0_FIXTURES "/network";
// The clock's epoch, where steady_clock stands on a machine that has just booted: a first
// sample then is a baseline like any other.
const Clock::time_point kT0{};
constexpr GaugeKind kSpeed = GaugeKind::kNetworkLinkSpeedBytesPerSecond;

// Byte counters of the fixtures (rx, tx):
//   recorded:  eth0 68181900, 67500 (physical, speed -1); ifb0, ifb1 0, 0 (virtual); lo
//   advanced:  eth0 70681900, 567500; ifb0 9999999, 0
//   advanced2: eth0 71681900, 817500; ifb0 17999999, 0
//   wrapped:   eth0 1000, 500
SamplerPtr createOn(TempHostRoot& root, const std::string& fixture) {
  root.copyTree(kFixtures + "/" + fixture);
  auto sampler = NetworkSampler::create(root.paths());
  REQUIRE_MESSAGE(sampler.has_value(), (sampler ? "" : sampler.error().message));
  return std::move(*sampler);
}

void replaceNetDev(TempHostRoot& root, const std::string& fixture) {
  root.copyFile(kFixtures + "/" + fixture + "/proc/net/dev", "proc/net/dev");
}

struct Interface {
  const char* name;
  std::uint64_t rxBytes;
  std::uint64_t txBytes;
};

// A /proc/net/dev with these interfaces (other counters 0).
std::string netDev(std::initializer_list<Interface> interfaces) {
  std::string text =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
      "drop fifo colls carrier compressed\n";
  for (const auto& i : interfaces) {
    text += std::string(i.name) + ": " + std::to_string(i.rxBytes) + " 1 0 0 0 0 0 0 " +
            std::to_string(i.txBytes) + " 1 0 0 0 0 0 0\n";
  }
  return text;
}

// The "network" ratio of a successful sample; -1 when it has no such reading.
double networkRatio(const Result<Sample>& sample) {
  REQUIRE(sample.has_value());
  CHECK(sample->readings.size() <= 1);
  return readingOf(*sample, "network").value_or(-1.0);
}

bool noReading(const Result<Sample>& sample) {
  REQUIRE(sample.has_value());
  return sample->readings.empty();
}

TEST_CASE("NetworkSampler: create needs an interface other than lo") {
  auto recorded = NetworkSampler::create(HostPaths{kFixtures + "/recorded"});
  REQUIRE(recorded.has_value());
  CHECK((*recorded)->source() == "network");

  TempHostRoot empty;
  auto missing = NetworkSampler::create(empty.paths());
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("proc/net/dev") != std::string::npos);

  auto loOnly = NetworkSampler::create(HostPaths{kFixtures + "/lo-only"});
  REQUIRE_FALSE(loOnly.has_value());
  CHECK(loOnly.error().message.starts_with("no network interface other than lo in "));
  CHECK(loOnly.error().message.find("lo-only/proc/net/dev") != std::string::npos);
}

TEST_CASE("NetworkSampler: unknown speed (-1) is measured against the largest rate seen") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  auto first = sampler->sample(kT0);
  CHECK(noReading(first));
  CHECK(first->gauges.empty());  // eth0 reads -1: no known speed, no gauge

  // eth0 over 1 s: rx +2500000, tx +500000 → 2.5e6 B/s, the largest so far → 1.
  replaceNetDev(root, "advanced");
  CHECK(networkRatio(sampler->sample(kT0 + 1s)) == 1.0);

  // rx +1000000, tx +250000 → 1e6 B/s / 2.5e6 = 0.4. Only eth0 is physical: ifb0
  // (+8000000 B/s against its 9999999 peak = 0.8) is not counted.
  replaceNetDev(root, "advanced2");
  CHECK(networkRatio(sampler->sample(kT0 + 2s)) == doctest::Approx(0.4).epsilon(1e-12));

  // rx +5000000 in 1 s raises the peak to 5e6 → 1; then +1000000 → 1e6/5e6 = 0.2.
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"eth0", 76681900, 817500}}));
  CHECK(networkRatio(sampler->sample(kT0 + 3s)) == 1.0);
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"eth0", 77681900, 817500}}));
  CHECK(networkRatio(sampler->sample(kT0 + 4s)) == doctest::Approx(0.2).epsilon(1e-12));
}

TEST_CASE("NetworkSampler: known link speeds, and a gauge for each") {
  TempHostRoot root;
  auto sampler = createOn(root, "known-speed");
  auto first = sampler->sample(kT0);
  CHECK(noReading(first));
  // 1000 Mb/s × 125000 = 1.25e8 B/s; 10000 Mb/s → 1.25e9 B/s. docker0 is not sampled: eth0
  // and eth1 are physical.
  REQUIRE(first->gauges.size() == 2);
  CHECK(gaugeOf(*first, kSpeed, "eth0").value_or(-1) == 125000000.0);
  CHECK(gaugeOf(*first, kSpeed, "eth1").value_or(-1) == 1250000000.0);

  replaceNetDev(root, "known-speed-advanced");
  auto second = sampler->sample(kT0 + 2s);
  // Over 2 s: eth0 max(125e6, 25e6)/2 = 62.5e6 B/s / 1.25e8 = 0.5;
  // eth1 max(100e6, 500e6)/2 = 250e6 B/s / 1.25e9 = 0.2 → 0.5. docker0 (+1e9) is not counted.
  CHECK(networkRatio(second) == doctest::Approx(0.5).epsilon(1e-12));
  CHECK(second->gauges.size() == 2);

  // More than the link can carry clamps: eth0 +125e6 in 0.25 s = 5e8 B/s / 1.25e8 → 1.
  root.write("proc/net/dev",
             netDev({{"eth0", 1250000000, 525000000}, {"eth1", 2100000000, 3500000000}}));
  CHECK(networkRatio(sampler->sample(kT0 + 2250ms)) == 1.0);
}

TEST_CASE("NetworkSampler: without a physical NIC every interface but lo counts") {
  TempHostRoot root;
  auto sampler = createOn(root, "virtual-only");
  auto first = sampler->sample(kT0);
  CHECK(noReading(first));
  // veth1a2b3c4d reads 10000 Mb/s; cni0's speed file is empty and flannel.1 has none.
  REQUIRE(first->gauges.size() == 1);
  CHECK(gaugeOf(*first, kSpeed, "veth1a2b3c4d").value_or(-1) == 1250000000.0);

  replaceNetDev(root, "virtual-only-advanced");
  // veth1a2b3c4d: max(250e6, 50e6) B/s / 1.25e9 = 0.2; cni0 and flannel.1 moved nothing and
  // have seen nothing, so 0. lo (+1e10 B/s, unknown speed → 1) is never counted.
  CHECK(networkRatio(sampler->sample(kT0 + 1s)) == doctest::Approx(0.2).epsilon(1e-12));
}

TEST_CASE("NetworkSampler: no traffic ever seen gives 0, not nothing") {
  TempHostRoot root;
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"tun0", 500, 500}}));
  auto sampler = NetworkSampler::create(root.paths());
  REQUIRE(sampler.has_value());
  CHECK(noReading((*sampler)->sample(kT0)));
  CHECK(networkRatio((*sampler)->sample(kT0 + 1s)) == 0.0);
}

TEST_CASE("NetworkSampler: speeds that mean unknown") {
  struct Case {
    const char* speed;  // nullptr: no file
    double ratio;
  };
  // tun0 over 1 s: 1000000 B/s. Known speed 8 Mb/s = 1e6 B/s → 1 as well, so use 80 Mb/s
  // (1e7 B/s) → 0.1. Unknown: the first rate is the peak → 1.
  for (const Case& c : {Case{"80\n", 0.1}, Case{" 80 \n", 0.1}, Case{"-1\n", 1.0}, Case{"0\n", 1.0},
                        Case{"", 1.0}, Case{"fast\n", 1.0}, Case{nullptr, 1.0}}) {
    CAPTURE((c.speed ? c.speed : "(none)"));
    TempHostRoot root;
    if (c.speed) root.write("sys/class/net/tun0/speed", c.speed);
    root.write("proc/net/dev", netDev({{"tun0", 0, 0}}));
    auto sampler = NetworkSampler::create(root.paths());
    REQUIRE(sampler.has_value());
    auto first = (*sampler)->sample(kT0);
    CHECK(noReading(first));
    CHECK(first->gauges.size() == (c.ratio == 0.1 ? 1u : 0u));
    root.write("proc/net/dev", netDev({{"tun0", 1000000, 0}}));
    CHECK(networkRatio((*sampler)->sample(kT0 + 1s)) == doctest::Approx(c.ratio).epsilon(1e-12));
  }
}

TEST_CASE("NetworkSampler: a counter that went backwards re-baselines") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  root.write("sys/class/net/eth0/speed", "1000\n");
  CHECK(noReading(sampler->sample(kT0)));
  replaceNetDev(root, "wrapped");
  CHECK(noReading(sampler->sample(kT0 + 1s)));
  // From the wrapped baseline over 1 s: rx 68181900 − 1000 = 68180900, tx 67500 − 500 = 67000
  // → 68180900 B/s / 1.25e8 = 0.5454472.
  replaceNetDev(root, "recorded");
  CHECK(networkRatio(sampler->sample(kT0 + 2s)) ==
        doctest::Approx(68180900.0 / 125000000.0).epsilon(1e-12));
}

TEST_CASE("NetworkSampler: a call whose time is not after the previous one re-baselines") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  root.write("sys/class/net/eth0/speed", "1000\n");
  CHECK(noReading(sampler->sample(kT0)));
  replaceNetDev(root, "advanced");
  auto same = sampler->sample(kT0);
  CHECK(noReading(same));
  CHECK(gaugeOf(*same, kSpeed, "eth0").value_or(-1) == 125000000.0);  // gauges still come
  // Against "advanced": rx +1000000 in 1 s → 1e6/1.25e8 = 0.008 ("recorded" would give 0.028).
  replaceNetDev(root, "advanced2");
  CHECK(networkRatio(sampler->sample(kT0 + 1s)) == doctest::Approx(0.008).epsilon(1e-12));
}

TEST_CASE("NetworkSampler: interfaces that appear and disappear") {
  TempHostRoot root;
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"veth0", 0, 0}}));
  auto sampler = NetworkSampler::create(root.paths());
  REQUIRE(sampler.has_value());
  CHECK(noReading((*sampler)->sample(kT0)));
  // veth0 +1000000 in 1 s, its first rate → 1 (peak 1e6).
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"veth0", 1000000, 0}}));
  CHECK(networkRatio((*sampler)->sample(kT0 + 1s)) == 1.0);
  // veth0 gone: nothing to measure, not an error.
  root.write("proc/net/dev", netDev({{"lo", 0, 0}}));
  CHECK(noReading((*sampler)->sample(kT0 + 2s)));
  // A veth0 again: a new baseline, and its old peak is forgotten: +250000 in 1 s is its
  // largest rate → 1 (with the old peak it would be 0.25).
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"veth0", 100000, 0}}));
  CHECK(noReading((*sampler)->sample(kT0 + 3s)));
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"veth0", 350000, 0}}));
  CHECK(networkRatio((*sampler)->sample(kT0 + 4s)) == 1.0);

  // A physical NIC appears: from now on only it counts, and it has no baseline yet.
  root.write("sys/class/net/eth0/device/modalias", "virtio:d00000001v00001AF4\n");
  root.write("sys/class/net/eth0/speed", "1000\n");
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"veth0", 9350000, 0}, {"eth0", 0, 0}}));
  CHECK(noReading((*sampler)->sample(kT0 + 5s)));
  // eth0: tx +62500000 in 1 s / 1.25e8 = 0.5; veth0 (+9e6, above its peak → 1) is ignored.
  root.write("proc/net/dev", netDev({{"lo", 0, 0}, {"veth0", 18350000, 0}, {"eth0", 0, 62500000}}));
  CHECK(networkRatio((*sampler)->sample(kT0 + 6s)) == doctest::Approx(0.5).epsilon(1e-12));
}

TEST_CASE("NetworkSampler: old kernels print no blank after the colon") {
  TempHostRoot root;
  root.write("sys/class/net/eth0/speed", "1000\n");
  root.write("proc/net/dev", netDev({}) + "  eth0:4294967000 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0\n");
  auto sampler = NetworkSampler::create(root.paths());
  REQUIRE(sampler.has_value());
  CHECK(noReading((*sampler)->sample(kT0)));
  root.write("proc/net/dev", netDev({}) + "  eth0:4306467000 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0\n");
  // (4306467000 − 4294967000) B / 1 s = 11500000 B/s / 1.25e8 = 0.092.
  CHECK(networkRatio((*sampler)->sample(kT0 + 1s)) == doctest::Approx(0.092).epsilon(1e-12));
}

TEST_CASE("NetworkSampler: bad files are errors that name the file and the problem") {
  struct Case {
    const char* fixture;
    const char* expected;
  };
  for (const Case& c :
       {Case{"malformed", "line 6: eth0 rx_bytes: not an unsigned integer: '681x1900'"},
        Case{"truncated", "truncated"}, Case{"empty", "empty file"}}) {
    CAPTURE(c.fixture);
    auto created = NetworkSampler::create(HostPaths{kFixtures + "/" + c.fixture});
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find(std::string(c.fixture) + "/proc/net/dev") !=
          std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }

  struct Inline {
    std::string contents;
    const char* expected;
  };
  TempHostRoot root;
  for (const Inline& c : {
           Inline{"  eth0: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n", "missing the two header lines"},
           Inline{netDev({}) + "  eth0 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n",
                  "line 3: no ':' after the interface"},
           Inline{netDev({}) + "  eth0: 1 1 0 0 0 0 0 0 1\n", "eth0 has 9 counters, expected 16"},
           Inline{netDev({}) + "  eth0: 1 1 0 0 0 0 0 0 -5 1 0 0 0 0 0 0\n", "eth0 tx_bytes"},
           Inline{netDev({}) + "  : 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n", "bad interface name"},
           Inline{netDev({}) + "  ..: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n", "bad interface name"},
       }) {
    CAPTURE(c.contents);
    root.write("proc/net/dev", c.contents);
    auto created = NetworkSampler::create(root.paths());
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error().message.find("proc/net/dev") != std::string::npos);
    CHECK(created.error().message.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("NetworkSampler: a bad file during sampling is an error and keeps the baseline") {
  TempHostRoot root;
  auto sampler = createOn(root, "recorded");
  root.write("sys/class/net/eth0/speed", "1000\n");
  CHECK(noReading(sampler->sample(kT0)));
  replaceNetDev(root, "truncated");
  auto truncated = sampler->sample(kT0 + 1s);
  REQUIRE_FALSE(truncated.has_value());
  CHECK(truncated.error().message.find("proc/net/dev: truncated") != std::string::npos);
  replaceNetDev(root, "malformed");
  CHECK_FALSE(sampler->sample(kT0 + 2s).has_value());
  // Against "recorded" at kT0: rx +2500000 over 4 s = 625000 B/s / 1.25e8 = 0.005.
  replaceNetDev(root, "advanced");
  CHECK(networkRatio(sampler->sample(kT0 + 4s)) == doctest::Approx(0.005).epsilon(1e-12));
}

}  // namespace
}  // namespace pi0::substrates
