#include "disk/disk_sampler.h"

#include <algorithm>
#include <array>
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

// Virtual or removable devices whose activity says nothing about the node's storage.
constexpr std::array<std::string_view, 5> kExcludedPrefixes = {"loop", "ram", "zram", "fd", "sr"};
// major, minor, name, then 11 statistics; io_ticks is the 10th of those (column 13).
constexpr size_t kMinColumns = 14;
constexpr size_t kIoTicksColumn = 12;

}  // namespace

bool DiskSampler::isWholeDisk(std::string_view name) const {
  for (auto prefix : kExcludedPrefixes) {
    if (name.starts_with(prefix)) return false;
  }
  // Names with a slash in diskstats (cciss/c0d0) appear in sysfs with '!' (cciss!c0d0).
  std::string sysName(name);
  std::replace(sysName.begin(), sysName.end(), '/', '!');
  if (!proc::isSafeName(sysName)) return false;
  // lstat() on a plain string: the entry is all we ask about, and following its symlink into
  // /sys/devices costs the kernel more than the rest of the lookup; std::filesystem::path
  // would split the path into components (several allocations) on every sample.
  struct stat st {};
  return ::lstat((sysBlock_ + sysName).c_str(), &st) == 0;
}

Result<DiskSampler::IoTicks> DiskSampler::readIoTicks() {
  const std::filesystem::path& path = diskstats_.path();
  auto text = proc::readTextFile(diskstats_);
  if (!text) return fail(text.error().message);
  IoTicks ticks;
  std::string_view rest = *text;
  std::string_view line;
  std::vector<std::string_view> fields;
  for (size_t lineNo = 1; proc::nextLine(rest, line); ++lineNo) {
    proc::splitFields(line, fields);
    if (fields.empty()) continue;
    auto where = [&] { return path.string() + ": line " + std::to_string(lineNo) + ": "; };
    if (fields.size() < 3) return fail(where() + "no device name");
    // Columns of devices we do not sample are not checked: a format change in a line we
    // ignore must not take the disk signal down.
    if (!isWholeDisk(fields[2])) continue;
    if (fields.size() < kMinColumns) {
      return fail(where() + std::string(fields[2]) + " has " + std::to_string(fields.size()) +
                  " columns, expected at least " + std::to_string(kMinColumns));
    }
    auto ioTicks = parseUint(fields[kIoTicksColumn]);
    if (!ioTicks) {
      return fail(where() + std::string(fields[2]) + " io_ticks: " + ioTicks.error().message);
    }
    ticks.insert_or_assign(std::string(fields[2]), *ioTicks);
  }
  return ticks;
}

Result<SamplerPtr> DiskSampler::create(const HostPaths& paths) {
  std::unique_ptr<DiskSampler> sampler(new DiskSampler(paths));
  auto ticks = sampler->readIoTicks();
  if (!ticks) return fail(ticks.error().message);
  if (ticks->empty()) {
    return fail("no whole disk in " + (paths.proc() / "diskstats").string() +
                " (a disk must be listed in " + (paths.sys() / "block").string() +
                " and not be loop, ram, zram, fd or sr)");
  }
  return SamplerPtr(std::move(sampler));
}

Result<Sample> DiskSampler::sample(Clock::time_point now) {
  auto ticks = readIoTicks();
  if (!ticks) return fail(ticks.error().message);

  Sample out;
  std::optional<Baseline> previous = std::exchange(previous_, Baseline{std::move(*ticks), now});
  if (!previous || now <= previous->at) return out;
  double elapsedMs = std::chrono::duration<double, std::milli>(now - previous->at).count();

  std::optional<double> busiest;
  for (const auto& [name, current] : previous_->ticks) {
    auto before = previous->ticks.find(name);
    // A new disk has no baseline yet; a counter that went back (the 32-bit ms counter wraps
    // after 49.7 days, or the device was replaced) starts a new one.
    if (before == previous->ticks.end() || current < before->second) continue;
    double ratio = std::clamp(static_cast<double>(current - before->second) / elapsedMs, 0.0, 1.0);
    busiest = std::max(busiest.value_or(0.0), ratio);
  }
  if (busiest) out.readings.push_back(Reading{SignalId{SignalId::Kind::kDisk}.name(), *busiest});
  return out;
}

}  // namespace pi0::substrates
