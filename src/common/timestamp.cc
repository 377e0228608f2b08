#include "common/timestamp.h"

#include <cstdio>
#include <ctime>

namespace pi0 {

std::string rfc3339Millis(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  // floor, not duration_cast, so an instant before the epoch still gets 0..999 milliseconds.
  const auto secs = floor<seconds>(t);
  const auto millis = duration_cast<milliseconds>(t - secs).count();
  const std::time_t tt = system_clock::to_time_t(system_clock::time_point(secs));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

}  // namespace pi0
