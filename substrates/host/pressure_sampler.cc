#include "host/pressure_sampler.h"

#include <array>
#include <system_error>
#include <utility>

#include "common/signal_id.h"
#include "host/proc_text.h"

namespace pi0::substrates {
namespace {

// The files under /proc/pressure and the signals they feed.
constexpr std::array<std::pair<std::string_view, SignalId::Kind>, 3> kResources = {{
    {"cpu", SignalId::Kind::kPsiCpu},
    {"memory", SignalId::Kind::kPsiMemory},
    {"io", SignalId::Kind::kPsiIo},
}};

// The `some` line reads "some avg10=1.23 avg60=... avg300=... total=..."; the ratio is avg10.
Result<double> readSomeAvg10(KernelFile& file) {
  const std::filesystem::path& path = file.path();
  auto text = proc::readTextFile(file);
  if (!text) return fail(text.error().message);
  std::string_view rest = *text;
  std::string_view line;
  std::vector<std::string_view> fields;
  while (proc::nextLine(rest, line)) {
    proc::splitFields(line, fields);
    if (fields.empty() || fields[0] != "some") continue;
    for (size_t i = 1; i < fields.size(); ++i) {
      constexpr std::string_view kKey = "avg10=";
      if (!fields[i].starts_with(kKey)) continue;
      auto percent = parseDouble(fields[i].substr(kKey.size()));
      if (!percent) return fail(path.string() + ": some avg10: " + percent.error().message);
      // Also rejects NaN, which from_chars accepts.
      if (!(*percent >= 0.0 && *percent <= 100.0)) {
        return fail(path.string() + ": some avg10 is " +
                    std::string(fields[i].substr(kKey.size())) + ", outside 0..100");
      }
      return *percent / 100.0;
    }
    return fail(path.string() + ": 'some' line has no avg10");
  }
  return fail(path.string() + ": no 'some' line");
}

}  // namespace

Result<SamplerPtr> PressureSampler::create(const HostPaths& paths) {
  auto dir = paths.proc() / "pressure";
  std::vector<Source> sources;
  for (const auto& [resource, signal] : kResources) {
    auto path = dir / resource;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) continue;
    // Read once now so that a file the kernel would never produce fails at startup, where the
    // agent reports it once, rather than on every tick.
    KernelFile file(std::move(path));
    auto ratio = readSomeAvg10(file);
    if (!ratio) return fail(ratio.error().message);
    sources.push_back(Source{SignalId{signal}.name(), std::move(file)});
  }
  if (sources.empty()) {
    return fail("no PSI: none of cpu, memory, io exists in " + dir.string() +
                " (kernel without CONFIG_PSI or booted with psi=0)");
  }
  return SamplerPtr(new PressureSampler(std::move(sources)));
}

Result<Sample> PressureSampler::sample(Clock::time_point /*now*/) {
  Sample out;
  for (auto& source : sources_) {
    auto ratio = readSomeAvg10(source.file);
    if (!ratio) return fail(ratio.error().message);
    out.readings.push_back(Reading{source.signal, *ratio});
  }
  return out;
}

}  // namespace pi0::substrates
