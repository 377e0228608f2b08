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

std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text) {
  using namespace std::chrono;
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > text.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  auto at = [&](std::size_t i, char c) { return i < text.size() && text[i] == c; };
  const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  const auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || !at(4, '-') || !at(7, '-') ||
      !(at(10, 'T') || at(10, 't')) || !at(13, ':') || !at(16, ':')) {
    return std::nullopt;
  }
  // A leap second (":60") is refused: neither Kubernetes nor Pi0's agents write one.
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 ||
      *second > 59) {
    return std::nullopt;
  }
  std::size_t i = 19;
  nanoseconds fraction{0};
  if (at(i, '.')) {
    ++i;
    int64_t scale = 100000000;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (i - start >= 9) return std::nullopt;
      fraction += nanoseconds((text[i] - '0') * scale);
      scale /= 10;
      ++i;
    }
    if (i == start) return std::nullopt;
  }
  seconds offset{0};
  if (at(i, 'Z') || at(i, 'z')) {
    ++i;
  } else if (at(i, '+') || at(i, '-')) {
    const auto oh = digits(i + 1, 2), om = digits(i + 4, 2);
    if (!oh || !om || !at(i + 3, ':') || *oh > 23 || *om > 59) return std::nullopt;
    offset = hours(*oh) + minutes(*om);
    if (text[i] == '-') offset = -offset;
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  const year_month_day date{std::chrono::year(*year),
                            std::chrono::month(static_cast<unsigned>(*month)),
                            std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok()) return std::nullopt;
  const auto t = sys_days(date) + hours(*hour) + minutes(*minute) + seconds(*second) - offset;
  return time_point_cast<system_clock::duration>(t + fraction);
}

}  // namespace pi0
