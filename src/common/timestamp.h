// RFC 3339 timestamps in UTC: "2026-11-22T09:51:46.123Z" (milliseconds) as Pi0 writes them in
// logs and documents, and the forms the Kubernetes API uses: metav1.Time (whole seconds) and
// metav1.MicroTime (microseconds).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pi0 {

// `fractionDigits` is 0 (no fraction), 3 or 6.
std::string rfc3339(std::chrono::system_clock::time_point t, int fractionDigits);

// The inverse for what the API and Pi0 write: "YYYY-MM-DDTHH:MM:SS", an optional fraction of up
// to 9 digits, then "Z" or a numeric offset ("+02:00"). nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);

inline std::string rfc3339Millis(std::chrono::system_clock::time_point t) {
  return rfc3339(t, 3);
}

}  // namespace pi0
