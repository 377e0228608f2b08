#include "synthetic/synthetic_sampler.h"

#include <system_error>
#include <utility>

#include "common/files.h"
#include "common/log.h"
#include "common/signal_id.h"

namespace pi0::substrates {
namespace {

constexpr Clock::duration kReloadCheckInterval = std::chrono::seconds(1);

}  // namespace

SyntheticSampler::FileStamp SyntheticSampler::stampOf(const std::filesystem::path& file) {
  std::error_code ec;
  FileStamp stamp;
  stamp.modified = std::filesystem::last_write_time(file, ec);
  if (ec) return FileStamp{};
  stamp.size = std::filesystem::file_size(file, ec);
  if (ec) return FileStamp{};
  stamp.exists = true;
  return stamp;
}

Result<std::unique_ptr<SyntheticSampler>> SyntheticSampler::create(
    const std::filesystem::path& file) {
  // Stamp before reading: a write racing with the read then shows up as a change next time.
  FileStamp stamp = stampOf(file);
  auto text = readFile(file);
  if (!text) return fail("synthetic profile: " + text.error().message);
  auto profile = parseProfile(*text, file.string());
  if (!profile) return std::unexpected(profile.error());
  return std::unique_ptr<SyntheticSampler>(new SyntheticSampler(file, std::move(*profile), stamp));
}

void SyntheticSampler::reloadIfChanged(Clock::time_point now) {
  if (lastCheck_ && now >= *lastCheck_ && now - *lastCheck_ < kReloadCheckInterval) return;
  lastCheck_ = now;
  FileStamp stamp = stampOf(file_);
  if (stamp == stamp_) return;
  // Remember the new stamp whatever the outcome, so a broken file is reported once, not on
  // every check, and a later fix (a new stamp) is picked up.
  stamp_ = stamp;
  Result<Profile> next = [&]() -> Result<Profile> {
    if (!stamp.exists) return fail("cannot stat " + file_.string());
    auto text = readFile(file_);
    if (!text) return std::unexpected(text.error());
    return parseProfile(*text, file_.string());
  }();
  if (!next) {
    log::warn("synthetic profile reload failed; keeping the previous profile",
              {{"source", "synthetic"}, {"file", file_.string()}, {"error", next.error().message}});
    return;
  }
  profile_ = std::move(*next);
  start_ = now;
  log::info("synthetic profile reloaded; time restarts at 0",
            {{"source", "synthetic"}, {"file", file_.string()}});
}

Result<Sample> SyntheticSampler::sample(Clock::time_point now) {
  reloadIfChanged(now);
  if (!start_) start_ = now;
  double t = std::chrono::duration<double>(now - *start_).count();
  if (t < 0) t = 0;

  Sample out;
  out.readings = evaluate(profile_, t);
  for (const Reading& reading : out.readings) {
    if (SignalId::parse(reading.signal) != SignalId{SignalId::Kind::kMemory}) continue;
    out.gauges.push_back(Gauge{GaugeKind::kMemoryTotalBytes, "", profile_.memoryTotalBytes});
    out.gauges.push_back(Gauge{GaugeKind::kMemoryAvailableBytes, "",
                               profile_.memoryTotalBytes * (1.0 - reading.ratio)});
  }
  return out;
}

}  // namespace pi0::substrates
