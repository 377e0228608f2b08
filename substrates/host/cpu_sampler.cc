#include "host/cpu_sampler.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "common/signal_id.h"
#include "host/proc_text.h"

namespace pi0::substrates {
namespace {

constexpr std::array<std::string_view, 8> kFieldNames = {"user",   "nice", "system",  "idle",
                                                         "iowait", "irq",  "softirq", "steal"};
constexpr size_t kIdle = 3;
constexpr size_t kIowait = 4;
// Linux has printed user..steal since 2.6.11; fewer fields means the line is not what we think.
constexpr size_t kRequiredFields = kFieldNames.size();

}  // namespace

Result<SamplerPtr> CpuSampler::create(const HostPaths& paths) {
  KernelFile stat(paths.proc() / "stat");
  auto ticks = readTicks(stat);
  if (!ticks) return fail(ticks.error().message);
  return SamplerPtr(new CpuSampler(std::move(stat)));
}

Result<CpuSampler::Ticks> CpuSampler::readTicks(KernelFile& stat) {
  const std::filesystem::path& statPath = stat.path();
  auto text = proc::readTextFile(stat);
  if (!text) return fail(text.error().message);
  std::string_view rest = *text;
  std::string_view line;
  while (proc::nextLine(rest, line)) {
    // Split only the aggregate line: the others (one per CPU, and "intr" with a count per IRQ)
    // can be thousands of fields.
    if (proc::firstField(line) != "cpu") continue;
    auto fields = proc::splitFields(line);
    if (fields.size() < 1 + kRequiredFields) {
      return fail(statPath.string() + ": aggregate 'cpu' line has " +
                  std::to_string(fields.size() - 1) + " fields, expected at least " +
                  std::to_string(kRequiredFields));
    }
    Ticks ticks;
    for (size_t i = 0; i < kRequiredFields; ++i) {
      auto value = parseUint(fields[1 + i]);
      if (!value) {
        return fail(statPath.string() + ": aggregate 'cpu' line, field " +
                    std::string(kFieldNames[i]) + ": " + value.error().message);
      }
      // A sum that wraps would turn garbage into a plausible ratio; refuse it instead.
      if (ticks.total > std::numeric_limits<std::uint64_t>::max() - *value) {
        return fail(statPath.string() + ": aggregate 'cpu' line: counters overflow");
      }
      ticks.total += *value;
      if (i == kIdle || i == kIowait) ticks.idle += *value;
    }
    return ticks;
  }
  return fail(statPath.string() + ": no aggregate 'cpu' line");
}

Result<Sample> CpuSampler::sample(Clock::time_point now) {
  auto ticks = readTicks(stat_);
  if (!ticks) return fail(ticks.error().message);

  Sample out;
  std::optional<Baseline> baseline = std::exchange(previous_, Baseline{*ticks, now});
  if (!baseline || now <= baseline->at) return out;
  const Ticks* previous = &baseline->ticks;
  // The kernel's iowait alone may step back a little (it is an estimate on tickless kernels),
  // so the test for a reset is on the two sums the ratio uses: idle+iowait and the busy rest.
  std::uint64_t busy = ticks->total - ticks->idle;
  std::uint64_t previousBusy = previous->total - previous->idle;
  if (ticks->idle < previous->idle || busy < previousBusy) return out;
  std::uint64_t deltaTotal = ticks->total - previous->total;
  if (deltaTotal == 0) return out;  // no tick elapsed: nothing to say about the interval
  double idleShare =
      static_cast<double>(ticks->idle - previous->idle) / static_cast<double>(deltaTotal);
  out.readings.push_back(
      Reading{SignalId{SignalId::Kind::kCpu}.name(), std::clamp(1.0 - idleShare, 0.0, 1.0)});
  return out;
}

}  // namespace pi0::substrates
