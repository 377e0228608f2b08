#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace pi0::log {
namespace {

std::atomic<int> gLevel{static_cast<int>(Level::kInfo)};
std::mutex gMutex;
std::function<void(std::string_view)> gSink;  // guarded by gMutex

constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

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
  line["ts"] = timestamp();
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
