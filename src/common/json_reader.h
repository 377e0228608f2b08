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

// `path` with `key` below it: "spec.targets", or "spec" at the root (an empty path).
std::string childPath(std::string_view path, std::string_view key);
// `path` with index `i`: "spec.targets[1]".
std::string itemPath(std::string_view path, std::size_t i);
// `s` between double quotes, as messages quote what they were given.
std::string quote(std::string_view s);

// A value inside a document, with its path. `value` is nullptr when the field is absent or null:
// a default applies. `null` tells the two apart, for documents where a null says something (a
// fingerprint's "no forecast yet") and a missing member is an error.
struct Node {
  const Json* value = nullptr;
  std::string path;
  bool null = false;  // present as null (value is nullptr)

  // The document itself; its path is `path` (empty: members are named from the top).
  static Node root(const Json& document, std::string path = {});

  bool present() const { return value != nullptr; }
  // The member `key` (absent unless this is an object with a non-null `key`).
  Node child(std::string_view key) const;
  // Item `i` of an array (absent unless this is an array with a non-null item there).
  Node item(std::size_t i) const;
};

class Reader {
 public:
  // How a value of the wrong type is reported: "must be a string, not number", or the terse
  // "not a string" of the pod and node readers.
  enum class Wording { kMustBe, kNot };

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
