// Percent-encoding of a URL query value or path segment (RFC 3986: everything but the
// unreserved characters), for the clients that build their own URLs (the apiserver's, label
// selectors with '=', ',', '!'; Prometheus's, PromQL).
#pragma once

#include <string>
#include <string_view>

namespace pi0 {

inline std::string urlEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace pi0
