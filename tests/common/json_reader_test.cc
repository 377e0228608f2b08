// The path-aware JSON reader (common/json_reader.h): paths, null as absent, the first problem
// kept, each message written out by hand.
#include "common/json_reader.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

using namespace pi0::json;

namespace {

enum class Color { kRed, kGreen, kBlue };

}  // namespace

TEST_CASE("member: absent, null and non-objects give nullptr") {
  const Json doc = Json::parse(R"({"a": 1, "n": null})");
  REQUIRE(member(doc, "a") != nullptr);
  CHECK(*member(doc, "a") == 1);
  CHECK(member(doc, "n") == nullptr);
  CHECK(member(doc, "missing") == nullptr);
  CHECK(member(Json::array({1}), "a") == nullptr);
  CHECK(member(Json(), "a") == nullptr);
}

TEST_CASE("nodes carry their paths; null members and items are absent") {
  const Json doc = Json::parse(R"({"spec": {"targets": [{"kind": "Job"}, null]}, "n": null})");
  const Node root = Node::root(doc);
  const Node kind = root.child("spec").child("targets").item(0).child("kind");
  CHECK(kind.path() == "spec.targets[0].kind");
  REQUIRE(kind.present());
  CHECK(*kind.value == "Job");
  CHECK_FALSE(root.child("spec").child("targets").item(1).present());
  CHECK_FALSE(root.child("spec").child("targets").item(7).present());
  CHECK_FALSE(root.child("n").present());
  CHECK(root.child("n").null);  // present as null, unlike a missing member
  CHECK_FALSE(root.child("missing").null);
  CHECK(root.child("spec").child("targets").item(1).null);
  CHECK_FALSE(root.child("spec").child("targets").item(7).null);
  CHECK(root.child("n").child("deeper").path() == "n.deeper");
  CHECK(Node::root(doc, "request").child("uid").path() == "request.uid");
  CHECK_FALSE(Node::root(Json()).present());
  CHECK(quote("x") == "\"x\"");
}

TEST_CASE("paths are spelled when asked, through present, absent and null nodes alike") {
  const Json doc = Json::parse(
      R"({"a": {"b": [{"c": 1}, {"c": 2, "d": {"e": "x"}}], "n": null, "l": {"k.io/x": null}},
          "z": [[1, [2]]]})");
  const Node root = Node::root(doc);
  const Node b1 = root.child("a").child("b").item(1);
  CHECK(b1.child("d").child("e").path() == "a.b[1].d.e");
  CHECK(b1.child("c").path() == "a.b[1].c");
  CHECK(root.child("z").item(0).item(1).item(0).path() == "z[0][1][0]");
  // Below absent and null nodes, where the document has no parent to find.
  CHECK(root.child("missing").child("x").item(2).child("y").path() == "missing.x[2].y");
  CHECK(root.child("a").child("n").child("x").path() == "a.n.x");
  CHECK(b1.child("c").child("below").path() == "a.b[1].c.below");  // below a number
  CHECK(root.child("a").item(4).path() == "a[4]");
  // The root's own path; a null document's members.
  CHECK(Node::root(doc, "spec").child("a").item(0).path() == "spec.a[0]");
  CHECK(Node::root(doc, "spec").path() == "spec");
  CHECK(Node::root(Json(), "spec").child("x").path() == "spec.x");
  CHECK(Node::root(doc).item(0).path() == "[0]");
  // Entries name keys with dots in brackets; raw() keeps a null member present.
  const Node labels = root.child("a").child("l");
  CHECK(labels.entry("k.io/x").path() == "a.l[\"k.io/x\"]");
  CHECK_FALSE(labels.entry("k.io/x").present());
  const Node raw = labels.raw("k.io/x", true);
  REQUIRE(raw.present());
  CHECK(raw.value->is_null());
  CHECK(raw.path() == "a.l[\"k.io/x\"]");
  CHECK_FALSE(labels.raw("other").present());
  CHECK(labels.raw("other").path() == "a.l.other");
  // Two equal values in different places are told apart by where they are.
  const Json twins = Json::parse(R"({"p": {"v": 1}, "q": {"v": 1}})");
  Reader r;
  r.string(Node::root(twins).child("q").child("v"));
  CHECK(r.error() == "q.v: must be a string, not number");
}

TEST_CASE("typed reads: the value, the fallback when absent, a problem when of another type") {
  const Json doc = Json::parse(R"({"s": "x", "b": true, "d": 0.5, "i": 7, "f": 2.0, "a": [1, null],
                                   "o": {}, "neg": -3, "big": 18446744073709551615})");
  const Node root = Node::root(doc);
  Reader r;
  CHECK(r.string(root.child("s")) == "x");
  CHECK(r.string(root.child("none"), "dflt") == "dflt");
  CHECK(r.boolean(root.child("b"), false));
  CHECK(r.number(root.child("d"), 0.0) == 0.5);
  CHECK(r.number(root.child("i"), 0.0) == 7.0);
  CHECK(r.integer(root.child("i"), 0, 0, 10) == 7);
  CHECK(r.integer(root.child("f"), 0, 0, 10) == 2);  // an integral float counts
  CHECK(r.int32(root.child("neg"), 0) == -3);
  CHECK(r.object(root.child("o")));
  CHECK_FALSE(r.object(root.child("none")));
  const auto items = r.items(root.child("a"));
  REQUIRE(items.size() == 2);
  CHECK(items[0].path() == "a[0]");
  CHECK_FALSE(items[1].present());
  CHECK(r.items(root.child("none")).empty());
  CHECK(r.enumeration(root.child("none"), Color::kBlue, "color", {{"Red", Color::kRed}}) ==
        Color::kBlue);
  CHECK(r.ok());
}

TEST_CASE("each kind of problem, in both separators") {
  const Json doc = Json::parse(R"({"s": 1, "b": "yes", "d": [], "i": 1.5, "r": 11, "o": "x",
                                   "a": {}, "e": "Purple", "big": 18446744073709551615})");
  struct Case {
    const char* name;
    void (*read)(Reader&, const Node&);
    const char* colon;  // with ": ", the default
    const char* space;  // with " "
  };
  const Case cases[] = {
      {"string", [](Reader& r, const Node& n) { r.string(n.child("s")); },
       "s: must be a string, not number", "s must be a string, not number"},
      {"boolean", [](Reader& r, const Node& n) { r.boolean(n.child("b"), false); },
       "b: must be a boolean, not string", "b must be a boolean, not string"},
      {"number", [](Reader& r, const Node& n) { r.number(n.child("d"), 0); },
       "d: must be a number, not array", "d must be a number, not array"},
      {"fraction", [](Reader& r, const Node& n) { r.integer(n.child("i"), 0, 0, 10); },
       "i: must be an integer, not 1.5", "i must be an integer, not 1.5"},
      {"range", [](Reader& r, const Node& n) { r.integer(n.child("r"), 0, 0, 10); },
       "r: 11 is out of range [0, 10]", "r 11 is out of range [0, 10]"},
      {"unsigned", [](Reader& r, const Node& n) { r.int32(n.child("big"), 0); },
       "big: 18446744073709551615 is out of range [-2147483648, 2147483647]",
       "big 18446744073709551615 is out of range [-2147483648, 2147483647]"},
      {"object", [](Reader& r, const Node& n) { r.object(n.child("o")); },
       "o: must be an object, not string", "o must be an object, not string"},
      {"array", [](Reader& r, const Node& n) { r.items(n.child("a")); },
       "a: must be an array, not object", "a must be an array, not object"},
      {"enum",
       [](Reader& r, const Node& n) {
         r.enumeration(n.child("e"), Color::kRed, "color",
                       {{"Red", Color::kRed}, {"Green", Color::kGreen}, {"Blue", Color::kBlue}});
       },
       "e: unknown color \"Purple\"; expected Red, Green or Blue",
       "e unknown color \"Purple\"; expected Red, Green or Blue"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    Reader colon;
    c.read(colon, Node::root(doc));
    REQUIRE_FALSE(colon.ok());
    CHECK(colon.error() == c.colon);
    Reader space(" ");
    c.read(space, Node::root(doc));
    REQUIRE_FALSE(space.ok());
    CHECK(space.error() == c.space);
  }
}

TEST_CASE("the terse wording names the type expected only") {
  const Json doc = Json::parse(R"({"s": 1, "o": [], "a": "x"})");
  const Node root = Node::root(doc, "spec");
  const std::pair<void (*)(Reader&, const Node&), const char*> cases[] = {
      {[](Reader& r, const Node& n) { r.string(n.child("s")); }, "spec.s: not a string"},
      {[](Reader& r, const Node& n) { r.object(n.child("o")); }, "spec.o: not an object"},
      {[](Reader& r, const Node& n) { r.items(n.child("a")); }, "spec.a: not an array"},
  };
  for (const auto& [read, message] : cases) {
    Reader r(": ", Reader::Wording::kNot);
    read(r, root);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == message);
  }
}

TEST_CASE("the fingerprint's wording names the type found and the type expected") {
  const Json doc = Json::parse(R"({"s": 1, "o": [], "a": "x", "n": null, "l": [null]})");
  const Node root = Node::root(doc, "signals");
  const std::pair<void (*)(Reader&, const Node&), const char*> cases[] = {
      {[](Reader& r, const Node& n) { r.string(n.child("s")); },
       "signals.s: a number where a string belongs"},
      {[](Reader& r, const Node& n) { r.object(n.child("o")); },
       "signals.o: an array where an object belongs"},
      {[](Reader& r, const Node& n) { r.items(n.child("a")); },
       "signals.a: a string where an array belongs"},
      // raw() keeps a null member or item present, so that it is named as a value of its own.
      {[](Reader& r, const Node& n) { r.number(n.raw("n"), 0); },
       "signals.n: null where a number belongs"},
      {[](Reader& r, const Node& n) { r.object(n.child("l").raw(std::size_t{0})); },
       "signals.l[0]: null where an object belongs"},
  };
  for (const auto& [read, message] : cases) {
    Reader r(": ", Reader::Wording::kWhereBelongs);
    read(r, root);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == message);
  }
  CHECK(typeName(Json(true)) == "a boolean");
  CHECK(typeName(Json::object()) == "an object");
}

TEST_CASE("the first problem is kept; the walk goes on with the fallbacks") {
  const Json doc = Json::parse(R"({"a": 1, "b": 2, "c": "three"})");
  const Node root = Node::root(doc);
  Reader r;
  CHECK(r.string(root.child("a"), "fa") == "fa");
  CHECK(r.boolean(root.child("b"), true));
  CHECK(r.string(root.child("c")) == "three");  // reads after a problem still read
  r.problem("a message of its own");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "a: must be a string, not number");
  Reader raw;
  raw.problem("request.operation is \"PATCH\"");
  raw.problem(root.child("a"), "is ignored");
  CHECK(raw.error() == "request.operation is \"PATCH\"");
}
