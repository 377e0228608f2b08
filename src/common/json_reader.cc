#include "common/json_reader.h"

#include <cmath>
#include <limits>

namespace pi0::json {

const Json* member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string childPath(std::string_view path, std::string_view key) {
  std::string out(path);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string itemPath(std::string_view path, std::size_t i) {
  std::string out(path);
  out += '[';
  out += std::to_string(i);
  out += ']';
  return out;
}

std::string quote(std::string_view s) {
  // Built by appending: GCC 12 warns (-Wrestrict, a false positive) on "\"" + std::string(s).
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

namespace {

// `v` as a Node: null (or no value) is absent, a present null marked as such.
Node nodeOf(const Json* v, std::string path) {
  if (v && v->is_null()) return Node{nullptr, std::move(path), true};
  return Node{v, std::move(path), false};
}

}  // namespace

Node Node::root(const Json& document, std::string path) {
  return nodeOf(&document, std::move(path));
}

Node Node::child(std::string_view key) const {
  const Json* v = nullptr;
  if (value && value->is_object()) {
    auto it = value->find(key);
    if (it != value->end()) v = &*it;
  }
  return nodeOf(v, childPath(path, key));
}

Node Node::item(std::size_t i) const {
  const Json* v = nullptr;
  if (value && value->is_array() && i < value->size()) v = &(*value)[i];
  return nodeOf(v, itemPath(path, i));
}

void Reader::problem(const Node& node, const std::string& what) {
  if (!error_) error_ = node.path + separator_ + what;
}

void Reader::problem(std::string message) {
  if (!error_) error_ = std::move(message);
}

bool Reader::expect(const Node& node, bool good, const char* type) {
  if (good) return true;
  if (wording_ == Wording::kNot) {
    problem(node, std::string("not ") + type);
  } else {
    problem(node, std::string("must be ") + type + ", not " + node.value->type_name());
  }
  return false;
}

bool Reader::object(const Node& node) {
  return node.present() && expect(node, node.value->is_object(), "an object");
}

std::vector<Node> Reader::items(const Node& node) {
  std::vector<Node> out;
  if (!node.present() || !expect(node, node.value->is_array(), "an array")) return out;
  for (std::size_t i = 0; i < node.value->size(); ++i)
    out.push_back(node.item(i));
  return out;
}

std::string Reader::string(const Node& node, std::string fallback) {
  if (!node.present() || !expect(node, node.value->is_string(), "a string")) return fallback;
  return node.value->get<std::string>();
}

bool Reader::boolean(const Node& node, bool fallback) {
  if (!node.present() || !expect(node, node.value->is_boolean(), "a boolean")) return fallback;
  return node.value->get<bool>();
}

double Reader::number(const Node& node, double fallback) {
  if (!node.present() || !expect(node, node.value->is_number(), "a number")) return fallback;
  return node.value->get<double>();
}

int64_t Reader::integer(const Node& node, int64_t fallback, int64_t lo, int64_t hi) {
  if (!node.present() || !expect(node, node.value->is_number(), "an integer")) return fallback;
  const Json& v = *node.value;
  bool inRange = false;
  int64_t out = 0;
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    inRange = u <= static_cast<uint64_t>(hi);
    out = inRange ? static_cast<int64_t>(u) : 0;
  } else if (v.is_number_integer()) {
    out = v.get<int64_t>();
    inRange = out >= lo && out <= hi;
  } else {
    const double d = v.get<double>();
    if (d != std::floor(d)) {
      problem(node, "must be an integer, not " + v.dump());
      return fallback;
    }
    inRange = d >= static_cast<double>(lo) && d <= static_cast<double>(hi);
    out = inRange ? static_cast<int64_t>(d) : 0;
  }
  if (!inRange) {
    problem(node,
            v.dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return fallback;
  }
  return out;
}

int32_t Reader::int32(const Node& node, int32_t fallback) {
  return static_cast<int32_t>(integer(node, fallback, std::numeric_limits<int32_t>::min(),
                                      std::numeric_limits<int32_t>::max()));
}

}  // namespace pi0::json
