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

std::string quote(std::string_view s) {
  // Built by appending: GCC 12 warns (-Wrestrict, a false positive) on "\"" + std::string(s).
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

std::string typeName(const Json& v) {
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "something else";
}

namespace {

void appendMember(std::string& path, std::string_view key) {
  if (!path.empty()) path += '.';
  path += key;
}

void appendItem(std::string& path, std::size_t i) {
  path += '[';
  path += std::to_string(i);
  path += ']';
}

// Appends to `path` the steps from `at` down to `target`, looking at most `depth` steps down;
// false (and `path` as it was) when `target` is not there.
bool spellPath(const Json& at, const Json* target, std::size_t depth, std::string& path) {
  if (&at == target) return true;
  if (depth == 0) return false;
  const std::size_t mark = path.size();
  if (at.is_object()) {
    for (auto it = at.begin(); it != at.end(); ++it) {
      appendMember(path, it.key());
      if (spellPath(*it, target, depth - 1, path)) return true;
      path.resize(mark);
    }
  } else if (at.is_array()) {
    for (std::size_t i = 0; i < at.size(); ++i) {
      appendItem(path, i);
      if (spellPath(at[i], target, depth - 1, path)) return true;
      path.resize(mark);
    }
  }
  return false;
}

}  // namespace

Node Node::root(const Json& document, std::string_view path) {
  Node n;
  n.document_ = &document;
  n.rootPath_ = path;
  n.value = document.is_null() ? nullptr : &document;
  n.null = document.is_null();
  return n;
}

Node Node::below(const Json* v, Step step, std::string_view key, std::size_t index) const {
  Node n;
  n.document_ = document_;
  n.rootPath_ = rootPath_;
  if (value != nullptr || step_ == Step::kRoot) {
    n.parent_ = value;  // a null root's members are named from the root's path alone
  } else {
    n.parentPath_ = path();
  }
  n.step_ = step;
  n.key_ = key;
  n.index_ = index;
  n.depth_ = depth_ + 1;
  n.null = v && v->is_null();
  n.value = n.null ? nullptr : v;
  return n;
}

Node Node::child(std::string_view key) const {
  if (value && value->is_object()) {
    // The document's own key, which lives as long as the document.
    if (auto it = value->find(key); it != value->end())
      return below(&*it, Step::kMember, it.key(), 0);
  }
  return below(nullptr, Step::kMember, key, 0);
}

Node Node::entry(std::string_view key) const {
  Node n = child(key);
  n.step_ = Step::kEntry;
  return n;
}

Node Node::raw(std::string_view key, bool bracketed) const {
  Node n = bracketed ? entry(key) : child(key);
  if (n.null) {
    n.value = &*value->find(key);  // null: so it is there
    n.null = false;
  }
  return n;
}

Node Node::raw(std::size_t i) const {
  Node n = item(i);
  if (n.null) {
    n.value = &(*value)[i];
    n.null = false;
  }
  return n;
}

Node Node::item(std::size_t i) const {
  const Json* v = nullptr;
  if (value && value->is_array() && i < value->size()) v = &(*value)[i];
  return below(v, Step::kItem, {}, i);
}

std::string Node::path() const {
  if (step_ == Step::kRoot) return std::string(rootPath_);
  std::string out;
  if (parentPath_) {
    out = *parentPath_;
  } else {
    out = rootPath_;
    if (parent_ != nullptr && document_ != nullptr) spellPath(*document_, parent_, depth_ - 1, out);
  }
  switch (step_) {
    case Step::kRoot:
      break;
    case Step::kMember:
      appendMember(out, key_);
      break;
    case Step::kEntry:
      out += '[';
      out += quote(key_);
      out += ']';
      break;
    case Step::kItem:
      appendItem(out, index_);
      break;
  }
  return out;
}

void Reader::problem(const Node& node, const std::string& what) {
  if (!error_) error_ = node.path() + separator_ + what;
}

void Reader::problem(std::string message) {
  if (!error_) error_ = std::move(message);
}

bool Reader::expect(const Node& node, bool good, const char* type) {
  if (good) return true;
  if (wording_ == Wording::kNot) {
    problem(node, std::string("not ") + type);
  } else if (wording_ == Wording::kWhereBelongs) {
    problem(node, typeName(*node.value) + " where " + type + " belongs");
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
