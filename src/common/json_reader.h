// Reading a JSON document that came from outside (an API object, an AdmissionReview, an agent's
// fingerprint) with every problem named by its path: "spec.targets[1].kind: must be a string,
// not number". A Node is a value and its path; a Reader walks Nodes, checks each value's type
// before reading it (so nothing here throws on bad input), keeps the first problem, and goes on
// with the caller's defaults, so a parser reads straight through and checks ok() once at the end.
// Parsers add their own rules (required fields, quantities, enums of their own) on top.
// A Reader is a value for one walk on one thread; the document must outlive its Nodes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pi0::json {

using Json = nlohmann::json;

// The member `key` of `object`, or nullptr when `object` is not an object or the member is absent
// or null (Kubernetes treats a null field as an absent one).
const Json* member(const Json& object, std::string_view key);

// `s` between double quotes, as messages quote what they were given.
std::string quote(std::string_view s);
// A value's type as a message names it: "a number", "an object", "null".
std::string typeName(const Json& v);

// A value inside a document, and where it is. `value` is nullptr when the field is absent or
// null: a default applies. `null` tells the two apart, for documents where a null says something
// (a fingerprint's "no forecast yet") and a missing member is an error.
//
// A Node is three pointers and a key: its path ("spec.targets[1].kind") is spelled only when a
// problem names it, by finding the node's parent in the document, so a parser that meets no
// problem builds no path (below an absent node, where there is no parent to find, the parent's
// path is spelled at once). Keys and the root's path are views: pass literals, or keys of the
// document itself (as an iteration over an object gives them).
struct Node {
  const Json* value = nullptr;
  bool null = false;  // present as null (value is nullptr)

  // The document itself; its path is `path` (empty: members are named from the top).
  static Node root(const Json& document, std::string_view path = {});

  bool present() const { return value != nullptr; }
  // The member `key` (absent unless this is an object with a non-null `key`).
  Node child(std::string_view key) const;
  // The same, named in brackets: `matchLabels["app.kubernetes.io/name"]`, for keys that hold
  // dots. Only a leaf's path shows the brackets: a node below an entry names it with a dot.
  Node entry(std::string_view key) const;
  // The member `key` as it is, a null one present (of type null), named in brackets when
  // `bracketed`: for maps whose every value must be of one type (labels, resource lists), read
  // member by member. Absent unless this is an object with `key`.
  Node raw(std::string_view key, bool bracketed = false) const;
  // Item `i` as it is, a null one present.
  Node raw(std::size_t i) const;
  // Item `i` of an array (absent unless this is an array with a non-null item there).
  Node item(std::size_t i) const;

  // "spec.targets[1].kind" (at the root: the root's path).
  std::string path() const;

 private:
  enum class Step : std::uint8_t { kRoot, kMember, kEntry, kItem };
  Node below(const Json* v, Step step, std::string_view key, std::size_t index) const;

  const Json* document_ = nullptr;  // the root's value
  std::string_view rootPath_;
  const Json* parent_ = nullptr;  // the value this node is a member or item of (kRoot: none)
  // Below an absent node there is no parent in the document to find: its path, spelled then.
  std::optional<std::string> parentPath_;
  Step step_ = Step::kRoot;
  std::string_view key_;   // kMember, kEntry
  std::size_t index_ = 0;  // kItem
  std::size_t depth_ = 0;  // steps below the root
};

class Reader {
 public:
  // How a value of the wrong type is reported: "must be a string, not number", the terse
  // "not a string" of the pod and node readers, or the fingerprint's "a number where a string
  // belongs".
  enum class Wording { kMustBe, kNot, kWhereBelongs };

  // `separator` goes between a path and what is wrong there: ": " reads "spec.x: must be a
  // string, not number", " " reads "request.uid must be a string, not number".
  explicit Reader(std::string separator = ": ", Wording wording = Wording::kMustBe)
      : separator_(std::move(separator)), wording_(wording) {}

  bool ok() const { return !error_.has_value(); }
  // The first problem; only when !ok().
  const std::string& error() const { return *error_; }

  // Records "<path><separator><what>" unless a problem is already recorded.
  void problem(const Node& node, const std::string& what);
  // Records `message` as it is (for problems that name their fields themselves).
  void problem(std::string message);

  // When `good` is false, records "must be <type>, not <the JSON type>" (or "not <type>");
  // returns `good`. `node` must be present.
  bool expect(const Node& node, bool good, const char* type);

  // True when the node is a present object; a problem when it is present and something else.
  bool object(const Node& node);
  // The items of an array (none when absent; a problem when something else).
  std::vector<Node> items(const Node& node);

  // Typed values: the fallback when absent, and a problem (and the fallback) when present with
  // another type.
  std::string string(const Node& node, std::string fallback = {});
  bool boolean(const Node& node, bool fallback);
  double number(const Node& node, double fallback);
  // An integer within [lo, hi]; a float with an integral value counts (1.0 is 1).
  int64_t integer(const Node& node, int64_t fallback, int64_t lo, int64_t hi);
  int32_t int32(const Node& node, int32_t fallback);

  // One of an enum's names; `what` names the field's kind in the message ("unknown kind \"Job\";
  // expected Deployment or StatefulSet"). Absent: the fallback.
  template <class E>
  E enumeration(const Node& node, E fallback, const char* what,
                std::initializer_list<std::pair<const char*, E>> names) {
    if (!node.present()) return fallback;
    const std::string s = string(node);
    if (!ok()) return fallback;
    std::string expected;
    std::size_t i = 0;
    for (const auto& [name, e] : names) {
      if (s == name) return e;
      expected += (i == 0 ? "" : (i + 1 == names.size() ? " or " : ", ")) + std::string(name);
      ++i;
    }
    problem(node, std::string("unknown ") + what + " " + quote(s) + "; expected " + expected);
    return fallback;
  }

 private:
  std::string separator_;
  Wording wording_;
  std::optional<std::string> error_;
};

}  // namespace pi0::json
