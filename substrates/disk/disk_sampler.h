// DiskSampler: the busiest whole disk's busy ratio, from <root>/proc/diskstats.
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
// - Only whole disks count: a device of <root>/proc/diskstats is sampled when
//   <root>/sys/block/<name> exists (partitions are not there) and its name does not start with
//   loop, ram, zram, fd or sr. The set is re-read on every call, so hot-plugged disks come and
//   go. create() fails, naming the file, when it is unreadable or malformed, or when it lists
//   no such disk.
// - sample(now) returns the reading "disk" = the largest, over disks, of Δio_ticks / Δt (the
//   share of the interval the disk had I/O in flight; io_ticks is diskstats column 13, in
//   ms), clamped to [0,1], where Δt is measured with `now` alone. A disk gives no ratio on its
//   first appearance or when its counter went backwards (wrap, reset); no disk gives one on
//   the first call or when `now` is not after the previous call. Without any ratio there is no
//   reading. Both the 14-column format and the 18/20-column one (with discard and flush
//   statistics) are read. A bad file is an error value and leaves the baseline as it was.
// - Called by one thread; not thread-safe.
class DiskSampler final : public Sampler {
 public:
  static Result<SamplerPtr> create(const HostPaths& paths);

  std::string_view source() const override { return "disk"; }
  Result<Sample> sample(Clock::time_point now) override;

 private:
  using IoTicks = std::map<std::string, std::uint64_t, std::less<>>;  // by device name

  explicit DiskSampler(const HostPaths& paths)
      : diskstats_(paths.proc() / "diskstats"), sysBlock_((paths.sys() / "block").string() + "/") {}
  Result<IoTicks> readIoTicks();
  bool isWholeDisk(std::string_view name) const;

  KernelFile diskstats_;
  std::string sysBlock_;  // "<root>/sys/block/"
  // The previous call's counters and its `now`; nullopt before the first call.
  struct Baseline {
    IoTicks ticks;
    Clock::time_point at;
  };
  std::optional<Baseline> previous_;
};

}  // namespace pi0::substrates
