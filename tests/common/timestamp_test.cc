#include <doctest/doctest.h>

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
