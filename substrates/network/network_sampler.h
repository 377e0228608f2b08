// NetworkSampler: the busiest network interface's utilization, from <root>/proc/net/dev and
// <root>/sys/class/net.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/files.h"
#include "sampler.h"

namespace pi0::substrates {

// Contract:
// - Interfaces: those of <root>/proc/net/dev except `lo`; when any of them is a physical NIC
//   (<root>/sys/class/net/<if>/device exists) only the physical ones. The set is re-read on
//   every call, so hot-plugged interfaces come and go. create() fails, naming the file, when it
//   is unreadable or malformed, or when no interface qualifies.
// - sample(now) returns the reading "network" = the largest, over interfaces, of
//   rate / capacity clamped to [0,1], where rate = max(rx, tx) bytes/s since the previous call
//   (Δt measured with `now` alone) and capacity = <root>/sys/class/net/<if>/speed Mb/s × 125000
//   bytes/s. When the speed is unknown (-1, 0, empty or unreadable, as for most virtual
//   devices) capacity is the largest rate seen on that interface so far, and the ratio is 0
//   until some traffic was seen. An interface gives no ratio on its first appearance or when
//   a counter went backwards; none gives one on the first call or when `now` is not after
//   the previous call. Without any ratio there is no reading.
// - sample() also returns, on every successful call, the gauge kNetworkLinkSpeedBytesPerSecond
//   for each sampled interface whose speed is known (device = interface name).
// - A bad file is an error value and leaves the baseline as it was.
// - Called by one thread; not thread-safe.
class NetworkSampler final : public Sampler {
 public:
  static Result<SamplerPtr> create(const HostPaths& paths);

  std::string_view source() const override { return "network"; }
  Result<Sample> sample(Clock::time_point now) override;

 private:
  struct Counters {
    std::uint64_t rxBytes = 0;
    std::uint64_t txBytes = 0;
  };
  using CountersByInterface = std::map<std::string, Counters, std::less<>>;

  explicit NetworkSampler(const HostPaths& paths)
      : netDev_(paths.proc() / "net" / "dev"),
        sysNet_((paths.sys() / "class" / "net").string() + "/") {}
  // The counters of the interfaces to sample (see the contract), read now.
  Result<CountersByInterface> readCounters();
  // Link speed in bytes/s, or nothing when the kernel does not know it.
  std::optional<double> linkSpeed(const std::string& interface);

  KernelFile netDev_;
  std::string sysNet_;                                         // "<root>/sys/class/net/"
  std::map<std::string, KernelFile, std::less<>> speedFiles_;  // by interface
  // The previous call's counters and its `now`; nullopt before the first call.
  struct Baseline {
    CountersByInterface counters;
    Clock::time_point at;
  };
  std::optional<Baseline> previous_;
  std::map<std::string, double, std::less<>> peakRate_;  // bytes/s, per interface
};

}  // namespace pi0::substrates
