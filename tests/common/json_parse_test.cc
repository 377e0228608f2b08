#include "common/json_parse.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "common/files.h"

namespace pi0::json {
namespace {

using Json = nlohmann::json;

// What nlohmann's own parser makes of `text`, or nullopt when it refuses it.
std::optional<Json> byNlohmann(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

Selection only(std::initializer_list<const char*> names) {
  Selection s;
  for (const char* n : names)
    s.members.push_back({n, {}});
  return s;
}

TEST_CASE("parse gives nlohmann's value for every document of the fuzz corpus and the fixtures") {
  int documents = 0, refused = 0;
  for (const char* dir : {PI0_FIXTURES "/../fuzz/corpus", PI0_FIXTURES "/fleet"}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".json") continue;
      auto text = readFile(entry.path().string());
      REQUIRE(text);
      CAPTURE(entry.path().string());
      const auto expected = byNlohmann(*text);
      const auto got = parse(*text);
      REQUIRE(got.has_value() == expected.has_value());
      if (expected) {
        CHECK(*got == *expected);
        // Types as well as values: 3 and 3.0 compare equal in nlohmann.
        CHECK(got->dump() == expected->dump());
      } else {
        ++refused;
      }
      ++documents;
    }
  }
  CHECK(documents > 80);
  CHECK(refused > 0);  // the corpus's malformed bodies
}

TEST_CASE("parse keeps nlohmann's types and values at the edges") {
  for (const std::string text : {
           R"({"a":1,"b":-1,"c":1.5,"d":1e3,"e":true,"f":null,"g":"x","h":[],"i":{}})",
           R"({"max":18446744073709551615,"min":-9223372036854775808})",
           R"({"big":18446744073709551616})",  // beyond 64 bits: simdjson refuses, nlohmann a
                                               // double
           R"({"dup":1,"dup":2})",             // the last wins, as in nlohmann
           R"({"s":"\u00e9\ud83d\ude00 \" \\ \n"})",
           R"(  [1, [2, [3, {"x": [4]}]]]  )",
           R"("just a string")",
           "-0",
       }) {
    CAPTURE(text);
    const auto expected = byNlohmann(text);
    REQUIRE(expected);
    const auto got = parse(text);
    REQUIRE(got);
    CHECK(got->dump() == expected->dump());
  }
}

TEST_CASE("invalid JSON fails with nlohmann's message saying where") {
  for (const std::string& text : std::initializer_list<std::string>{
           "", "{", "{\"a\":}", "[1,]", "{} x", "\"\\ud800\"", "nul", "\"\xff\"", "{\"a\":1}}"}) {
    CAPTURE(text);
    const auto got = parse(text);
    REQUIRE_FALSE(got);
    CHECK(got.error().message.find("parse error") == 0);
    CHECK(got.error().message.find("[json.exception") == std::string::npos);
  }
  const auto got = parse("{\n  \"a\": 1,,\n}");
  REQUIRE_FALSE(got);
  CHECK(got.error().message.find("line 2") != std::string::npos);
}

TEST_CASE("a selection keeps only the named fields, in objects within arrays too") {
  const std::string text =
      R"({"keep":{"a":1,"b":2},"drop":[1,2,3],"list":[{"x":1,"y":2},{"x":3},5,"s"],"n":7})";
  Selection list = only({"x"});
  Selection select;
  select.members.push_back({"keep", {}});  // whole
  select.members.push_back({"list", list});
  select.members.push_back({"n", only({"ignored"})});  // a scalar is kept whole
  const auto got = parse(text, select);
  REQUIRE(got);
  CHECK(*got == Json::parse(R"({"keep":{"a":1,"b":2},"list":[{"x":1},{"x":3},5,"s"],"n":7})"));
  // A selection does not excuse invalid JSON outside it.
  CHECK_FALSE(parse(R"({"keep":1,"drop":[1,}})", select));
}

TEST_CASE("documents larger than the reused parser's bound parse the same") {
  std::string text = "[";
  for (int i = 0; i < 20000; ++i) {
    if (i > 0) text += ',';
    text += "{\"i\":" + std::to_string(i) + "}";
  }
  text += "]";
  REQUIRE(text.size() > 64 * 1024);
  const auto got = parse(text);
  REQUIRE(got);
  CHECK(got->size() == 20000);
  CHECK((*got)[19999]["i"] == 19999);
  // And a small one after it, on the same thread.
  CHECK(parse("[1]").value() == Json::array({1}));
}

}  // namespace
}  // namespace pi0::json
