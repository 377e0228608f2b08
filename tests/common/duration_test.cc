#include <doctest/doctest.h>

#include "common/duration.h"

using pi0::parseDuration;

TEST_CASE("durations with and without units") {
  CHECK(parseDuration("250ms")->count() == doctest::Approx(0.25));
  CHECK(parseDuration("1s")->count() == 1.0);
  CHECK(parseDuration("1.5s")->count() == 1.5);
  CHECK(parseDuration("2m")->count() == 120.0);
  CHECK(parseDuration("1h")->count() == 3600.0);
  CHECK(parseDuration("0.5")->count() == 0.5);
  CHECK(parseDuration("0")->count() == 0.0);
}

TEST_CASE("bad durations say what is expected") {
  for (const char* bad : {"", "s", "fast", "-1s", "1d", "1 s", "nan", "infs"}) {
    CAPTURE(bad);
    auto d = parseDuration(bad);
    REQUIRE_FALSE(d);
    CHECK(d.error().message.find("invalid duration") != std::string::npos);
  }
}
