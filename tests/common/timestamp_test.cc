#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "common/timestamp.h"

using std::chrono::milliseconds;
using std::chrono::system_clock;

TEST_CASE("RFC 3339 in UTC with milliseconds") {
  CHECK(pi0::rfc3339Millis(system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
  // 951782400 s is the leap day 2000-02-29 at midnight UTC.
  CHECK(pi0::rfc3339Millis(system_clock::time_point(milliseconds(951782400123))) ==
        "2000-02-29T00:00:00.123Z");
  // Half a second before the epoch.
  CHECK(pi0::rfc3339Millis(system_clock::time_point(milliseconds(-500))) ==
        "1969-12-31T23:59:59.500Z");
}

TEST_CASE("RFC 3339 as the Kubernetes API writes it: whole seconds and microseconds") {
  using std::chrono::microseconds;
  const auto t = system_clock::time_point(microseconds(951782400123456));
  CHECK(pi0::rfc3339(t, 0) == "2000-02-29T00:00:00Z");
  CHECK(pi0::rfc3339(t, 3) == "2000-02-29T00:00:00.123Z");
  CHECK(pi0::rfc3339(t, 6) == "2000-02-29T00:00:00.123456Z");
}

TEST_CASE("parseRfc3339 reads back what rfc3339 writes, offsets and fractions") {
  using std::chrono::microseconds;
  const auto t = system_clock::time_point(microseconds(951782400123456));
  for (int digits : {0, 3, 6}) {
    const auto back = pi0::parseRfc3339(pi0::rfc3339(t, digits));
    REQUIRE(back);
    CHECK(pi0::rfc3339(*back, digits) == pi0::rfc3339(t, digits));
  }
  CHECK(pi0::parseRfc3339("2000-02-29T02:30:00+02:30") ==
        pi0::parseRfc3339("2000-02-29T00:00:00Z"));
  CHECK(pi0::parseRfc3339("2000-02-28T23:00:00-01:00") ==
        pi0::parseRfc3339("2000-02-29T00:00:00Z"));
  CHECK(pi0::parseRfc3339("1970-01-01T00:00:00.5Z") == system_clock::time_point(milliseconds(500)));
  for (const char* bad :
       {"", "2000-02-29", "2000-02-30T00:00:00Z", "2000-13-01T00:00:00Z", "2000-02-29T00:00:00",
        "2000-02-29T00:00:00.Z", "2000-02-29T00:00:00Zjunk", "2000-02-29 00:00:00Z",
        "2000-02-29T24:00:00Z", "2000-02-29T00:00:00.1234567890Z"}) {
    CHECK_MESSAGE(!pi0::parseRfc3339(bad), bad);
  }
}

namespace {

system_clock::time_point utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms) {
  using namespace std::chrono;
  return sys_days(year_month_day{year(y), month(mo), day(d)}) + hours(h) + minutes(mi) +
         seconds(s) + milliseconds(ms);
}

}  // namespace

TEST_CASE("RFC 3339 timestamps as agents and the API write them, and what is refused") {
  struct Case {
    const char* text;
    bool ok;
    system_clock::time_point want;
  };
  const Case cases[] = {
      {"2026-11-22T12:38:10.462Z", true, utc(2026, 11, 22, 12, 38, 10, 462)},
      {"2026-11-22T12:38:10Z", true, utc(2026, 11, 22, 12, 38, 10, 0)},
      {"2026-11-22t12:38:10.4z", true, utc(2026, 11, 22, 12, 38, 10, 400)},
      {"2026-11-22T13:08:10.462+00:30", true, utc(2026, 11, 22, 12, 38, 10, 462)},
      {"2026-11-22T02:38:10-10:00", true, utc(2026, 11, 22, 12, 38, 10, 0)},
      {"2024-02-29T00:00:00Z", true, utc(2024, 2, 29, 0, 0, 0, 0)},
      {"1970-01-01T00:00:00Z", true, system_clock::time_point{}},
      {"2026-02-29T00:00:00Z", false, {}},  // not a leap year
      {"2026-11-22T24:00:00Z", false, {}},
      {"2026-11-22T12:60:00Z", false, {}},
      {"2026-11-22T12:38:60Z", false, {}},  // a leap second: nobody writes one
      {"2026-11-22T12:38:10+24:00", false, {}},
      {"2026-11-22T12:38:10+02:60", false, {}},
      {"2026-11-22T12:38:10", false, {}},  // no zone
      {"2026-11-22 12:38:10Z", false, {}},
      {"2026-11-22T12:38:10.Z", false, {}},
      {"2026-11-22T12:38:10Zjunk", false, {}},
      {"2026-11-22T12:38:10+0200", false, {}},
      {"26-11-22T12:38:10Z", false, {}},
      {"", false, {}},
  };
  for (const Case& c : cases) {
    const std::string textValue = c.text;
    CAPTURE(textValue);
    auto t = pi0::parseRfc3339(c.text);
    REQUIRE(t.has_value() == c.ok);
    if (c.ok) CHECK(*t == c.want);
  }
}
