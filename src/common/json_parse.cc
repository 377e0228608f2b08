#include "common/json_parse.h"

#include <cstddef>
#include <cstdint>
#include <exception>

#include <simdjson.h>

namespace pi0::json {
namespace {

using Json = nlohmann::json;
using simdjson::dom::element;
using simdjson::dom::element_type;

// Documents up to this size are read by the calling thread's parser, which keeps its buffers
// (about 16 bytes per byte of the largest document it has read) for the next call; larger ones
// by a parser of their own, freed at once, so that a server's threads do not each keep the
// buffers of the largest request they ever saw.
constexpr std::size_t kReusedParserMax = 32 * 1024;

const Selection* memberSelection(const Selection& select, std::string_view key) {
  for (const auto& m : select.members) {
    if (m.name == key) return &m.select;
  }
  return nullptr;
}

// Depth is bounded by simdjson's maximum (1024), so the recursion is too.
Json convert(element e, const Selection& select) {
  switch (e.type()) {
    case element_type::OBJECT: {
      Json out = Json::object();
      simdjson::dom::object object;
      if (e.get(object) != simdjson::SUCCESS) return out;  // cannot fail: e is an object
      for (auto [key, value] : object) {
        if (select.members.empty()) {
          out[std::string(key)] = convert(value, select);
        } else if (const Selection* s = memberSelection(select, key)) {
          out[std::string(key)] = convert(value, *s);
        }
      }
      return out;
    }
    case element_type::ARRAY: {
      Json out = Json::array();
      simdjson::dom::array array;
      if (e.get(array) != simdjson::SUCCESS) return out;
      for (element value : array)
        out.push_back(convert(value, select));
      return out;
    }
    case element_type::STRING:
      return Json(std::string(e.get_string().value_unsafe()));
    case element_type::INT64:
      return Json(e.get_int64().value_unsafe());
    case element_type::UINT64:
      return Json(e.get_uint64().value_unsafe());
    case element_type::DOUBLE:
      return Json(e.get_double().value_unsafe());
    case element_type::BOOL:
      return Json(e.get_bool().value_unsafe());
    case element_type::NULL_VALUE:
      break;
  }
  return Json(nullptr);
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; a person needs the rest.
std::string withoutExceptionId(const char* what) {
  std::string_view s(what);
  if (!s.empty() && s.front() == '[') {
    const auto end = s.find("] ");
    if (end != std::string_view::npos) s.remove_prefix(end + 2);
  }
  return std::string(s);
}

Result<Json> parseByNlohmann(std::string_view text) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return fail(withoutExceptionId(e.what()));
  } catch (const std::exception& e) {
    return fail(e.what());  // std::bad_alloc
  }
}

}  // namespace

Result<Json> parse(std::string_view text, const Selection& select) {
  try {
    thread_local simdjson::dom::parser reused;
    simdjson::dom::parser own;
    simdjson::dom::parser& parser = text.size() <= kReusedParserMax ? reused : own;
    element root;
    if (parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS) {
      return convert(root, select);
    }
  } catch (const std::exception& e) {
    return fail(e.what());  // std::bad_alloc building the values
  }
  return parseByNlohmann(text);
}

}  // namespace pi0::json
