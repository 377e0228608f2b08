#include "common/timestamp.h"

#include <cstdio>
#include <ctime>

namespace pi0 {

std::string rfc3339(std::chrono::system_clock::time_point t, int fractionDigits) {
  using namespace std::chrono;
  // floor, not duration_cast, so an instant before the epoch still gets a fraction in [0, 1).
  const auto secs = floor<seconds>(t);
  const auto micros = duration_cast<microseconds>(t - secs).count();
  const std::time_t tt = system_clock::to_time_t(system_clock::time_point(secs));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[96];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (fractionDigits == 3) {
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%03d",
                       static_cast<int>(micros / 1000));
  } else if (fractionDigits == 6) {
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%06d",
                       static_cast<int>(micros));
  }
  std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), "Z");
  return buf;
}

}  // namespace pi0
