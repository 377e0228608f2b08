#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "common/timestamp.h"

namespace pi0::log {
namespace {

std::atomic<int> gLevel{static_cast<int>(Level::kInfo)};
std::mutex gMutex;
std::function<void(std::string_view)> gSink;  // guarded by gMutex

constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};

}  // namespace

Result<Level> parseLevel(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (kNames[i] == name) return static_cast<Level>(i);
  }
  return fail("unknown log level '" + std::string(name) + "' (want debug, info, warn or error)");
}

void setLevel(Level level) {
  gLevel.store(static_cast<int>(level));
}

bool enabled(Level level) {
  return static_cast<int>(level) >= gLevel.load();
}

void setSink(std::function<void(std::string_view)> sink) {
  std::lock_guard lock(gMutex);
  gSink = std::move(sink);
}

void write(Level level, std::string_view message, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  nlohmann::ordered_json line;
  line["ts"] = rfc3339Millis(std::chrono::system_clock::now());
  line["level"] = kNames[static_cast<int>(level)];
  line["msg"] = message;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it)
      line[it.key()] = it.value();
  }
  // Replace invalid UTF-8 (say, a device name read from /sys) instead of throwing.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(gMutex);
  if (gSink) {
    gSink(text);
  } else {
    text.push_back('\n');
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
}

}  // namespace pi0::log
