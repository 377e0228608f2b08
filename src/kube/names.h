// Kubernetes' name rules, as the apiserver checks them.
#pragma once

#include <string_view>

namespace pi0::kube {

// A DNS-1123 label, as a namespace or a Service name must be: 1-63 of [a-z0-9-], starting and
// ending with a letter or a digit.
inline bool isDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// A DNS-1123 subdomain, as a Lease or a Secret name must be: dot-separated labels, at most 253.
inline bool isDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const auto dot = s.find('.', start);
    if (!isDnsLabel(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace pi0::kube
