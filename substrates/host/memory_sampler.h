// MemorySampler: the node's memory used ratio and raw sizes, from <root>/proc/meminfo.
#pragma once

#include <filesystem>
#include <string_view>
#include <utility>

#include "common/files.h"
#include "sampler.h"

namespace pi0::substrates {

// Contract:
// - create() fails, naming the file, when <root>/proc/meminfo cannot be read or lacks the
//   fields below.
// - sample() returns the reading "memory" = (MemTotal − MemAvailable)/MemTotal, clamped to
//   [0,1], and the gauges kMemoryTotalBytes and kMemoryAvailableBytes (node-wide, in bytes).
//   Kernels before 3.14 have no MemAvailable; there, available = MemFree + Buffers + Cached.
//   A bad file is an error value naming the file and the field. Not counter-based: every
//   successful call has a reading, and `now` is unused.
// - Called by one thread; not thread-safe.
class MemorySampler final : public Sampler {
 public:
  static Result<SamplerPtr> create(const HostPaths& paths);

  std::string_view source() const override { return "memory"; }
  Result<Sample> sample(Clock::time_point now) override;

 private:
  explicit MemorySampler(KernelFile meminfo) : meminfo_(std::move(meminfo)) {}

  KernelFile meminfo_;
};

}  // namespace pi0::substrates
