// StateStore: the agent's warm restart (seed 002's checkpoint manager). The rolling windows are
// saved to <state-dir>/window.json atomically (temporary file, fsync, rename) with a SHA-256
// of the payload, and loaded at start when the file is intact, was written by an agent with
// the same window and interval, and is recent (younger than maxAge). Anything else is ignored
// with a log line: a warm restart is an optimization, never a reason not to start.
// Not thread-safe: used by the sampling thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace pi0::agent {

struct SavedState {
  std::string node;
  std::chrono::system_clock::time_point savedAt;
  std::size_t window = 0;
  double intervalSeconds = 0;
  std::map<std::string, std::vector<double>> signals;
};

class StateStore {
 public:
  explicit StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::filesystem::path file() const { return dir_ / "window.json"; }

  Result<void> save(const SavedState& state) const;

  // Fails (with the reason) when there is no usable state: missing, corrupt, from another
  // configuration, or older than maxAge at `now`.
  Result<SavedState> load(std::size_t window, double intervalSeconds,
                          std::chrono::system_clock::time_point now,
                          std::chrono::duration<double> maxAge) const;

 private:
  std::filesystem::path dir_;
};

// The on-disk form, exposed for tests: a header line "pi0-agent-state v1 sha256=<hex>"
// followed by the JSON payload.
std::string encodeState(const SavedState& state);
Result<SavedState> decodeState(std::string_view text);

}  // namespace pi0::agent
