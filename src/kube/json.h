// Reading fields of API objects without exceptions: an absent field, a null object or a value
// of another type gives the fallback. Objects come from outside; reading them must never
// throw (nlohmann::json's value() throws on a null object and on a type mismatch).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace pi0::kube {

using Json = nlohmann::json;
using JsonPointer = Json::json_pointer;

template <class T>
T field(const Json& object, const JsonPointer& pointer, T fallback) noexcept {
  try {
    if (!object.is_object() || !object.contains(pointer)) return fallback;
    const Json& v = object.at(pointer);
    if constexpr (std::is_same_v<T, std::string>) {
      return v.is_string() ? v.get<std::string>() : fallback;
    } else if constexpr (std::is_same_v<T, bool>) {
      return v.is_boolean() ? v.get<bool>() : fallback;
    } else if constexpr (std::is_integral_v<T>) {
      return v.is_number_integer() ? v.get<T>() : fallback;
    } else if constexpr (std::is_floating_point_v<T>) {
      return v.is_number() ? v.get<T>() : fallback;
    } else {
      return v;
    }
  } catch (const Json::exception&) {
    return fallback;
  }
}

inline std::string stringField(const Json& object, const JsonPointer& pointer) {
  return field<std::string>(object, pointer, std::string());
}

// An object's metadata.labels (values that are not strings left out); empty when it has none.
inline std::map<std::string, std::string> labelsOf(const Json& object) {
  std::map<std::string, std::string> out;
  // Held in a variable: a range-for over items() of a temporary would outlive it.
  const Json labels = field<Json>(object, "/metadata/labels"_json_pointer, Json::object());
  if (!labels.is_object()) return out;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it->is_string()) out[it.key()] = it->get<std::string>();
  }
  return out;
}

}  // namespace pi0::kube
