// Percent-encoding of a URL query value or path segment (RFC 3986: everything but the
// unreserved characters), for the clients that build their own URLs (the apiserver's, label
// selectors with '=', ',', '!'; Prometheus's, PromQL); and the reading of a query string, for
// the servers (the fleet feed, the operator's queries).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

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

// The parameters of a query string "a=1&b=x%20y" in order, percent-escapes and '+' decoded
// ({"a", "1"}, {"b", "x y"}); a parameter without '=' has an empty value, empty pairs ("a=1&&")
// are skipped. An error names the parameter whose escape is not two hex digits.
inline Result<std::vector<std::pair<std::string, std::string>>> queryParams(
    std::string_view query) {
  auto decode = [](std::string_view text, std::string& out) {
    auto hex = [](char c) {
      return c >= '0' && c <= '9'   ? c - '0'
             : c >= 'a' && c <= 'f' ? c - 'a' + 10
             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : -1;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '+') {
        out.push_back(' ');
      } else if (text[i] != '%') {
        out.push_back(text[i]);
      } else {
        if (i + 2 >= text.size()) return false;
        const int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
      }
    }
    return true;
  };
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == query.npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    std::string key, value;
    if (!decode(pair.substr(0, eq), key) ||
        (eq != pair.npos && !decode(pair.substr(eq + 1), value)))
      return fail("query parameter \"" + std::string(pair.substr(0, eq)) +
                  "\": a '%' that is not followed by two hex digits");
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

}  // namespace pi0
