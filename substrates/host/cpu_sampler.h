// CpuSampler: the node's CPU busy ratio, from the aggregate "cpu" line of <root>/proc/stat.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <utility>

#include "common/files.h"
#include "sampler.h"

namespace pi0::substrates {

// Contract:
// - create() fails, naming the file, when <root>/proc/stat cannot be read or has no
//   well-formed aggregate "cpu" line.
// - sample(now) returns the reading "cpu" = 1 − Δ(idle+iowait)/Δtotal since the previous
//   successful call, total = user+nice+system+idle+iowait+irq+softirq+steal (guest and
//   guest_nice are already part of user and nice). It returns no reading on the first call,
//   when `now` is not after the previous call, when a counter went backwards, or when no tick
//   elapsed; in the first three cases it re-baselines. A bad file is an error value and leaves
//   the baseline as it was. `now` is the only clock used.
// - Called by one thread (the agent's sampling loop); not thread-safe.
class CpuSampler final : public Sampler {
 public:
  static Result<SamplerPtr> create(const HostPaths& paths);

  std::string_view source() const override { return "cpu"; }
  Result<Sample> sample(Clock::time_point now) override;

 private:
  // The two counters the ratio needs, in USER_HZ ticks since boot.
  struct Ticks {
    std::uint64_t idle = 0;   // idle + iowait
    std::uint64_t total = 0;  // user + nice + system + idle + iowait + irq + softirq + steal
  };

  explicit CpuSampler(KernelFile stat) : stat_(std::move(stat)) {}
  static Result<Ticks> readTicks(KernelFile& stat);

  KernelFile stat_;
  // The previous call's counters and its `now`; nullopt before the first call.
  struct Baseline {
    Ticks ticks;
    Clock::time_point at;
  };
  std::optional<Baseline> previous_;
};

}  // namespace pi0::substrates
