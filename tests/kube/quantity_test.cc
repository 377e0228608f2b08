// Kubernetes quantities (kube/quantity.h): each case's value worked out by hand from the text.
#include "kube/quantity.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

using namespace pi0::kube;

namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

}  // namespace

TEST_CASE("cpu quantities to millicores, rounded away from zero like Kubernetes") {
  struct Case {
    const char* text;
    int64_t milli;
  };
  const Case cases[] = {
      {"500m", 500},
      {"2", 2000},
      {"1.5", 1500},
      {"0", 0},
      {"-0", 0},
      {"0.000", 0},
      {"007", 7000},
      {"+2", 2000},
      {".5", 500},
      {"1.", 1000},
      {"-1", -1000},
      {"0.0001", 1},  // 0.1m rounds up to 1m
      {"0.1m", 1},
      {"1.0001", 1001},
      {"-0.0001", -1},  // away from zero, as Quantity.MilliValue
      {"100n", 1},
      {"1000000n", 1},
      {"1500u", 2},
      {"1k", 1000000},
      {"1M", 1000000000},
      {"1Ki", 1024000},
      {"0.5Ki", 512000},
      {"1e3", 1000000},
      {"1E3", 1000000},
      {"2.5e+2", 250000},
      {"1e-3", 1},
      {"1.5e-3", 2},
      {"1e0", 1000},
      {"0.000000000000000000000000001", 1},
      {"1e-1000000000000", 1},  // an absurd exponent saturates instead of looping
      {"9223372036854775.807", kMax},
      {"-9223372036854775.808", kMin},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto r = parseCpuMilli(c.text);
    REQUIRE_MESSAGE(r.has_value(), r.error().message);
    CHECK(*r == c.milli);
  }
}

TEST_CASE("memory quantities to bytes, fractions rounded up") {
  struct Case {
    const char* text;
    int64_t bytes;
  };
  const Case cases[] = {
      {"128Mi", 134217728},
      {"1G", 1000000000},
      {"1e9", 1000000000},
      {"1E", 1000000000000000000},
      {"1e18", 1000000000000000000},
      {"1.5Gi", 1610612736},
      {"0.5Ki", 512},
      {"0.1Ki", 103},  // 102.4
      {"1Ti", 1099511627776},
      {"1m", 1},
      {"1000m", 1},
      {"1500m", 2},
      {"1.000000000000000000000000001", 2},
      {"12345678901234567890e-10", 1234567891},  // 1234567890.123456789
      {"7Ei", 8070450532247928832},
      {"-8Ei", kMin},
      {"-1.5Ki", -1536},
      {"9223372036854775807", kMax},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto r = parseBytes(c.text);
    REQUIRE_MESSAGE(r.has_value(), r.error().message);
    CHECK(*r == c.bytes);
  }
}

TEST_CASE("malformed quantities fail for both kinds, quoting the text") {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "it is empty"},
      {"abc", "it does not start with a number"},
      {".", "it does not start with a number"},
      {"+", "it does not start with a number"},
      {"--1", "it does not start with a number"},
      {" 1", "it does not start with a number"},
      {"m", "it does not start with a number"},
      {"Ki", "it does not start with a number"},
      {"1 ", "unknown suffix \" \""},
      {"1 Gi", "unknown suffix \" Gi\""},
      {"1x", "unknown suffix \"x\""},
      {"1e", "unknown suffix \"e\""},
      {"1e+", "unknown suffix \"e+\""},
      {"1e1.5", "unknown suffix \"e1.5\""},
      {"1.2.3", "unknown suffix \".3\""},
      {"1ki", "unknown suffix \"ki\""},
      {"1KI", "unknown suffix \"KI\""},
      {"1mi", "unknown suffix \"mi\""},
      {"1Kib", "unknown suffix \"Kib\""},
      {"0x10", "unknown suffix \"x10\""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    std::string prefix = "\"";  // appended piece by piece: GCC 12 warns (-Wrestrict) otherwise
    prefix.append(c.text).append("\" is not a quantity: ").append(c.why);
    for (auto parse : {parseCpuMilli, parseBytes}) {
      auto r = parse(c.text);
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().message.starts_with(prefix));
    }
  }
}

TEST_CASE("quantities beyond int64 fail as out of range") {
  struct Case {
    const char* text;
    bool cpu;
    const char* message;
  };
  const Case cases[] = {
      {"9223372036854775.808", true,
       "\"9223372036854775.808\" is out of range: beyond 9223372036854775807 millicores"},
      {"9223372036854776", true,
       "\"9223372036854776\" is out of range: beyond 9223372036854775807 millicores"},
      {"10E", true, "\"10E\" is out of range: beyond 9223372036854775807 millicores"},
      {"-9223372036854775.8081", true,
       "\"-9223372036854775.8081\" is out of range: beyond -9223372036854775808 millicores"},
      {"8Ei", false, "\"8Ei\" is out of range: beyond 9223372036854775807 bytes"},
      {"9223372036854775808", false,
       "\"9223372036854775808\" is out of range: beyond 9223372036854775807 bytes"},
      {"18446744073709551616", false,
       "\"18446744073709551616\" is out of range: beyond 9223372036854775807 bytes"},
      {"99999999999999999999999", false,
       "\"99999999999999999999999\" is out of range: beyond 9223372036854775807 bytes"},
      {"1e19", false, "\"1e19\" is out of range: beyond 9223372036854775807 bytes"},
      {"1e1000000000000", false,
       "\"1e1000000000000\" is out of range: beyond 9223372036854775807 bytes"},
      {"9223372036854775807.5", false,
       "\"9223372036854775807.5\" is out of range: beyond 9223372036854775807 bytes"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto r = c.cpu ? parseCpuMilli(c.text) : parseBytes(c.text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == c.message);
  }
}

TEST_CASE("quantities formatted back") {
  CHECK(formatCpuMilli(2000) == "2");
  CHECK(formatCpuMilli(1500) == "1500m");
  CHECK(formatCpuMilli(0) == "0");
  CHECK(formatCpuMilli(-1000) == "-1");
  CHECK(formatCpuMilli(-500) == "-500m");
  CHECK(formatBytes(0) == "0");
  CHECK(formatBytes(1000) == "1000");
  CHECK(formatBytes(1536) == "1536");
  CHECK(formatBytes(1024) == "1Ki");
  CHECK(formatBytes(536870912) == "512Mi");
  CHECK(formatBytes(3221225472) == "3Gi");
  CHECK(formatBytes(-1073741824) == "-1Gi");
  CHECK(formatBytes(kMin) == "-8Ei");
  // Round trips.
  for (const char* text : {"2", "1500m", "-1", "7m"})
    CHECK(formatCpuMilli(*parseCpuMilli(text)) == text);
  for (const char* text : {"512Mi", "1000", "16Gi", "7Ei"})
    CHECK(formatBytes(*parseBytes(text)) == text);
}

TEST_CASE("quantity text: strings as written, JSON numbers in their shortest exact form") {
  CHECK(quantityText(nlohmann::json("500m")) == "500m");
  CHECK(quantityText(nlohmann::json(2)) == "2");
  CHECK(quantityText(nlohmann::json(0.5)) == "0.5");
  CHECK(quantityText(nlohmann::json(true)) == std::nullopt);
  CHECK(quantityText(nlohmann::json()) == std::nullopt);
  CHECK(quantityText(nlohmann::json::object()) == std::nullopt);
}
