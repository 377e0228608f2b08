#include "agent/state_store.h"

#include <cmath>
#include <system_error>

#include <nlohmann/json.hpp>

#include "common/digest.h"
#include "common/files.h"

namespace pi0::agent {
namespace {

constexpr std::string_view kHeader = "pi0-agent-state v1 sha256=";

}  // namespace

std::string encodeState(const SavedState& state) {
  const double savedAt = std::chrono::duration<double>(state.savedAt.time_since_epoch()).count();
  nlohmann::json payload{{"node", state.node},
                         {"savedAt", savedAt},
                         {"window", state.window},
                         {"intervalSeconds", state.intervalSeconds},
                         {"signals", state.signals}};
  std::string body = payload.dump();
  return std::string(kHeader) + sha256Hex(body) + "\n" + body;
}

Result<SavedState> decodeState(std::string_view text) {
  if (!text.starts_with(kHeader)) return fail("not a pi0-agent state file (bad header)");
  const auto newline = text.find('\n');
  if (newline == std::string_view::npos) return fail("truncated (no payload)");
  const auto digest = text.substr(kHeader.size(), newline - kHeader.size());
  const auto body = text.substr(newline + 1);
  if (digest != sha256Hex(body)) return fail("checksum mismatch (corrupt or truncated)");

  auto payload = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (payload.is_discarded() || !payload.is_object()) return fail("payload is not JSON");
  try {
    SavedState state;
    state.node = payload.at("node").get<std::string>();
    const double savedAt = payload.at("savedAt").get<double>();
    state.savedAt = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(savedAt)));
    state.window = payload.at("window").get<std::size_t>();
    state.intervalSeconds = payload.at("intervalSeconds").get<double>();
    state.signals = payload.at("signals").get<std::map<std::string, std::vector<double>>>();
    return state;
  } catch (const nlohmann::json::exception& e) {
    // A payload with the right checksum but the wrong shape: written by another version.
    return fail(std::string("unexpected payload: ") + e.what());
  }
}

Result<void> StateStore::save(const SavedState& state) const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return fail("cannot create state directory " + dir_.string() + ": " + ec.message());
  return writeFileAtomic(file(), encodeState(state));
}

Result<SavedState> StateStore::load(std::size_t window, double intervalSeconds,
                                    std::chrono::system_clock::time_point now,
                                    std::chrono::duration<double> maxAge) const {
  auto text = readFile(file());
  if (!text) return fail(text.error().message);
  auto state = decodeState(*text);
  if (!state) return fail(file().string() + ": " + state.error().message);
  if (state->window != window || std::abs(state->intervalSeconds - intervalSeconds) > 1e-9) {
    return fail(file().string() + ": saved with window " + std::to_string(state->window) +
                " and interval " + std::to_string(state->intervalSeconds) +
                "s, not the current configuration");
  }
  const auto age = std::chrono::duration<double>(now - state->savedAt);
  if (age > maxAge || age.count() < -60) {
    return fail(file().string() + ": stale (saved " + std::to_string(age.count()) +
                "s ago, limit " + std::to_string(maxAge.count()) + "s)");
  }
  return state;
}

}  // namespace pi0::agent
