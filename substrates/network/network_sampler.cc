#include "network/network_sampler.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include "common/signal_id.h"
#include "host/proc_text.h"

namespace pi0::substrates {
namespace {

// After "<if>:" come 8 receive columns (bytes first) and 8 transmit columns (bytes first).
constexpr size_t kColumns = 16;
constexpr size_t kRxBytesColumn = 0;
constexpr size_t kTxBytesColumn = 8;
constexpr double kBytesPerSecondPerMbit = 125000.0;

}  // namespace

// Reading `speed` fails with EINVAL for most virtual devices and for a NIC without link, and
// reads -1 for SPEED_UNKNOWN; none of that is an error of the sampler. The file stays open
// (see KernelFile) while the interface is listed.
std::optional<double> NetworkSampler::linkSpeed(const std::string& interface) {
  auto it = speedFiles_.find(interface);
  if (it == speedFiles_.end()) {
    it = speedFiles_.emplace(interface, KernelFile(sysNet_ + interface + "/speed")).first;
  }
  auto text = it->second.read();
  if (!text) return std::nullopt;
  auto mbits = parseUint(proc::trim(*text));
  if (!mbits || *mbits == 0) return std::nullopt;
  return static_cast<double>(*mbits) * kBytesPerSecondPerMbit;
}

Result<NetworkSampler::CountersByInterface> NetworkSampler::readCounters() {
  const std::filesystem::path& path = netDev_.path();
  auto text = proc::readTextFile(netDev_);
  if (!text) return fail(text.error().message);

  std::string_view rest = *text;
  std::string_view line;
  // Two header lines ("Inter-|   Receive ..." and " face |bytes ..."), then one per interface.
  for (int header = 0; header < 2; ++header) {
    if (!proc::nextLine(rest, line) || line.find('|') == std::string_view::npos) {
      return fail(path.string() + ": missing the two header lines");
    }
  }

  CountersByInterface all;
  CountersByInterface physical;
  std::vector<std::string_view> fields;
  std::string devicePath;
  for (size_t lineNo = 3; proc::nextLine(rest, line); ++lineNo) {
    if (proc::trim(line).empty()) continue;
    auto where = [&] { return path.string() + ": line " + std::to_string(lineNo) + ": "; };
    // Split at the colon, not at blanks: old kernels print "eth0:123" once counters get wide.
    // Interface names cannot contain ':'.
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail(where() + "no ':' after the interface");
    auto name = proc::trim(line.substr(0, colon));
    if (!proc::isSafeName(name)) return fail(where() + "bad interface name");
    if (name == "lo") continue;
    proc::splitFields(line.substr(colon + 1), fields);
    if (fields.size() < kColumns) {
      return fail(where() + std::string(name) + " has " + std::to_string(fields.size()) +
                  " counters, expected " + std::to_string(kColumns));
    }
    auto rx = parseUint(fields[kRxBytesColumn]);
    if (!rx) return fail(where() + std::string(name) + " rx_bytes: " + rx.error().message);
    auto tx = parseUint(fields[kTxBytesColumn]);
    if (!tx) return fail(where() + std::string(name) + " tx_bytes: " + tx.error().message);
    Counters counters{*rx, *tx};
    // lstat() on a plain string: the `device` link is all we ask about (following it costs
    // the kernel more than the rest of the lookup); std::filesystem::path would split the path
    // into components (several allocations) for every interface of every sample.
    devicePath.assign(sysNet_).append(name).append("/device");
    struct stat st {};
    if (::lstat(devicePath.c_str(), &st) == 0) {
      physical.insert_or_assign(std::string(name), counters);
    }
    all.insert_or_assign(std::string(name), counters);
  }
  // On a node with a NIC, bridges, veths and tunnels carry the same bytes again (or pod
  // traffic that never leaves the node); without one (some VMs) they are all there is.
  return physical.empty() ? all : physical;
}

Result<SamplerPtr> NetworkSampler::create(const HostPaths& paths) {
  std::unique_ptr<NetworkSampler> sampler(new NetworkSampler(paths));
  auto counters = sampler->readCounters();
  if (!counters) return fail(counters.error().message);
  if (counters->empty()) {
    return fail("no network interface other than lo in " + (paths.proc() / "net" / "dev").string());
  }
  return SamplerPtr(std::move(sampler));
}

Result<Sample> NetworkSampler::sample(Clock::time_point now) {
  auto counters = readCounters();
  if (!counters) return fail(counters.error().message);

  Sample out;
  std::map<std::string, double, std::less<>> speeds;
  std::erase_if(speedFiles_, [&](const auto& entry) { return !counters->contains(entry.first); });
  for (const auto& [name, unused] : *counters) {
    if (auto speed = linkSpeed(name)) {
      speeds.emplace(name, *speed);
      out.gauges.push_back(Gauge{GaugeKind::kNetworkLinkSpeedBytesPerSecond, name, *speed});
    }
  }
  // A name that left and came back may be another device: forget what was seen under it.
  std::erase_if(peakRate_, [&](const auto& entry) { return !counters->contains(entry.first); });

  std::optional<Baseline> previous = std::exchange(previous_, Baseline{std::move(*counters), now});
  if (!previous || now <= previous->at) return out;
  double elapsedSeconds = std::chrono::duration<double>(now - previous->at).count();

  std::optional<double> busiest;
  for (const auto& [name, current] : previous_->counters) {
    auto before = previous->counters.find(name);
    if (before == previous->counters.end()) continue;  // new interface: this call is its baseline
    const Counters& old = before->second;
    // 32-bit counters on old drivers wrap; a driver reload resets them.
    if (current.rxBytes < old.rxBytes || current.txBytes < old.txBytes) continue;
    double rate = static_cast<double>(
                      std::max(current.rxBytes - old.rxBytes, current.txBytes - old.txBytes)) /
                  elapsedSeconds;
    double& peak = peakRate_[name];
    peak = std::max(peak, rate);
    double ratio = 0.0;
    if (auto speed = speeds.find(name); speed != speeds.end()) {
      ratio = rate / speed->second;
    } else if (peak > 0.0) {
      ratio = rate / peak;
    }
    busiest = std::max(busiest.value_or(0.0), std::clamp(ratio, 0.0, 1.0));
  }
  if (busiest) out.readings.push_back(Reading{SignalId{SignalId::Kind::kNetwork}.name(), *busiest});
  return out;
}

}  // namespace pi0::substrates
