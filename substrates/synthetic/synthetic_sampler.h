// SyntheticSampler: replays a load profile (profile.h) instead of reading /proc, selected by
// `pi0-agent --source synthetic:FILE`. Tests, demos and end-to-end overload runs use it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "common/result.h"
#include "sampler.h"
#include "synthetic/profile.h"

namespace pi0::substrates {

// Contract:
// - create() reads and parses the file; it fails, naming the file, when the file is missing,
//   unreadable or not a valid profile.
// - sample(now) returns every signal of the profile evaluated at t = seconds from the first
//   sample() call to `now` (only `now` is used, never the real clock), plus the gauges
//   kMemoryTotalBytes (the profile's memoryTotalBytes) and kMemoryAvailableBytes
//   (total * (1 - memory)) when the profile has a `memory` signal.
// - Live reload: at most once a second of `now` time, sample() compares the file's modification
//   time and size with the last seen. When they changed it re-parses the file. On success it
//   switches to the new profile and restarts t at 0 (the sample that noticed the change is the
//   new profile's t = 0). On failure (invalid or missing file) it logs one warning per change
//   and keeps replaying the old profile on the old clock; sample() does not fail.
// - Not thread-safe: one thread (the agent's sampling loop) calls sample().
class SyntheticSampler final : public Sampler {
 public:
  static Result<std::unique_ptr<SyntheticSampler>> create(const std::filesystem::path& file);

  std::string_view source() const override { return "synthetic"; }
  Result<Sample> sample(Clock::time_point now) override;

  // The profile being replayed.
  const Profile& profile() const { return profile_; }

 private:
  // What tells a changed file apart; `exists` false when the file could not be stat'ed.
  struct FileStamp {
    bool exists = false;
    std::filesystem::file_time_type modified{};
    std::uintmax_t size = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp stampOf(const std::filesystem::path& file);

  SyntheticSampler(std::filesystem::path file, Profile profile, FileStamp stamp)
      : file_(std::move(file)), profile_(std::move(profile)), stamp_(stamp) {}

  void reloadIfChanged(Clock::time_point now);

  std::filesystem::path file_;
  Profile profile_;
  FileStamp stamp_;
  std::optional<Clock::time_point> start_;      // t = 0 of the current profile
  std::optional<Clock::time_point> lastCheck_;  // when the file was last stat'ed
};

}  // namespace pi0::substrates
