#include <doctest/doctest.h>

#include "common/flags.h"

using pi0::FlagReader;

TEST_CASE("flags with separate and inline values") {
  const std::vector<std::string> args = {"--a", "1", "--b=two", "--c=", "--flag"};
  FlagReader r(args);
  REQUIRE(r.next());
  CHECK(r.flag() == "--a");
  CHECK_FALSE(r.hasInlineValue());
  CHECK(*r.value() == "1");
  REQUIRE(r.next());
  CHECK(r.flag() == "--b");
  CHECK(r.raw() == "--b=two");
  CHECK(r.hasInlineValue());
  CHECK(*r.value() == "two");
  REQUIRE(r.next());
  CHECK(*r.value() == "");
  CHECK(r.nonEmptyValue().error().message == "--c must not be empty");
  REQUIRE(r.next());
  CHECK(r.value().error().message == "--flag needs a value");
  CHECK_FALSE(r.next());
}

TEST_CASE("durations are checked against their bounds, naming the flag") {
  const std::vector<std::string> args = {"--i", "250ms", "--i",  "0",   "--i",
                                         "2h",  "--i",   "soon", "--z", "0"};
  FlagReader r(args);
  REQUIRE(r.next());
  CHECK(*r.durationSeconds(false, 3600, "1h") == doctest::Approx(0.25));
  REQUIRE(r.next());
  CHECK(r.durationSeconds(false, 3600, "1h").error().message == "--i must be greater than 0");
  REQUIRE(r.next());
  CHECK(r.durationSeconds(false, 3600, "1h").error().message == "--i must be at most 1h");
  REQUIRE(r.next());
  CHECK(r.durationSeconds(false, 3600, "1h").error().message.starts_with("--i: "));
  REQUIRE(r.next());
  CHECK(*r.durationSeconds(true, 60, "1m") == 0.0);
}
