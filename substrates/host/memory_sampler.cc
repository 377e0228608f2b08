#include "host/memory_sampler.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <utility>

#include "common/signal_id.h"
#include "host/proc_text.h"

namespace pi0::substrates {
namespace {

enum Field { kMemTotal, kMemFree, kMemAvailable, kBuffers, kCached, kFieldCount };
constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached"};

struct Memory {
  double totalBytes = 0;
  double availableBytes = 0;
};

// Only the fields the ratio needs are checked: a line the kernel adds or changes elsewhere in
// the file must not take the memory signal down.
Result<Memory> readMemory(KernelFile& file) {
  const std::filesystem::path& path = file.path();
  auto text = proc::readTextFile(file);
  if (!text) return fail(text.error().message);

  std::array<std::optional<double>, kFieldCount> kib;
  std::string_view rest = *text;
  std::string_view line;
  while (proc::nextLine(rest, line)) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto name = line.substr(0, colon);
    auto it = std::find(kFieldNames.begin(), kFieldNames.end(), name);
    if (it == kFieldNames.end()) continue;
    auto field = static_cast<size_t>(it - kFieldNames.begin());
    if (kib[field]) continue;  // first occurrence wins, as in every tool that reads this file
    auto fields = proc::splitFields(line.substr(colon + 1));
    if (fields.size() != 2 || fields[1] != "kB") {
      return fail(path.string() + ": " + std::string(name) + ": expected '<number> kB', got '" +
                  std::string(proc::trim(line.substr(colon + 1))) + "'");
    }
    auto value = parseUint(fields[0]);
    if (!value) {
      return fail(path.string() + ": " + std::string(name) + ": " + value.error().message);
    }
    kib[field] = static_cast<double>(*value);
    // The kernel prints these five first; the other ~50 lines need not be looked at.
    if (std::all_of(kib.begin(), kib.end(), [](const auto& v) { return v.has_value(); })) break;
  }

  if (!kib[kMemTotal]) return fail(path.string() + ": no MemTotal");
  if (*kib[kMemTotal] <= 0) return fail(path.string() + ": MemTotal is 0");
  double availableKib = 0;
  if (kib[kMemAvailable]) {
    availableKib = *kib[kMemAvailable];
  } else {
    // Pre-3.14 kernels: the same estimate `free` used before MemAvailable existed.
    for (Field field : {kMemFree, kBuffers, kCached}) {
      if (!kib[field]) {
        return fail(path.string() + ": no MemAvailable and no " + std::string(kFieldNames[field]) +
                    " to estimate it");
      }
      availableKib += *kib[field];
    }
  }
  return Memory{*kib[kMemTotal] * 1024.0, availableKib * 1024.0};
}

}  // namespace

Result<SamplerPtr> MemorySampler::create(const HostPaths& paths) {
  KernelFile meminfo(paths.proc() / "meminfo");
  auto memory = readMemory(meminfo);
  if (!memory) return fail(memory.error().message);
  return SamplerPtr(new MemorySampler(std::move(meminfo)));
}

Result<Sample> MemorySampler::sample(Clock::time_point /*now*/) {
  auto memory = readMemory(meminfo_);
  if (!memory) return fail(memory.error().message);
  Sample out;
  double used = (memory->totalBytes - memory->availableBytes) / memory->totalBytes;
  out.readings.push_back(
      Reading{SignalId{SignalId::Kind::kMemory}.name(), std::clamp(used, 0.0, 1.0)});
  out.gauges.push_back(Gauge{GaugeKind::kMemoryTotalBytes, "", memory->totalBytes});
  out.gauges.push_back(Gauge{GaugeKind::kMemoryAvailableBytes, "", memory->availableBytes});
  return out;
}

}  // namespace pi0::substrates
