// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-22T09:51:46.123Z","level":"warn","msg":"source missing","source":"psi"}
// Thread-safe. The level is process-wide; records below it are dropped cheaply.
#pragma once

#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pi0::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

Result<Level> parseLevel(std::string_view name);
void setLevel(Level level);
bool enabled(Level level);

// Replaces the output (default: stderr). Tests use it to capture lines; pass {} to restore.
void setSink(std::function<void(std::string_view line)> sink);

void write(Level level, std::string_view message, const nlohmann::json& fields = {});

inline void debug(std::string_view m, const nlohmann::json& f = {}) {
  write(Level::kDebug, m, f);
}
inline void info(std::string_view m, const nlohmann::json& f = {}) {
  write(Level::kInfo, m, f);
}
inline void warn(std::string_view m, const nlohmann::json& f = {}) {
  write(Level::kWarn, m, f);
}
inline void error(std::string_view m, const nlohmann::json& f = {}) {
  write(Level::kError, m, f);
}

}  // namespace pi0::log
