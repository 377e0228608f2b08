// RFC 3339 timestamps in UTC: "2026-11-22T09:51:46.123Z" (milliseconds) as Pi0 writes them in
// logs and documents, and the forms the Kubernetes API uses: metav1.Time (whole seconds) and
// metav1.MicroTime (microseconds).
#pragma once

#include <chrono>
#include <string>

namespace pi0 {

// `fractionDigits` is 0 (no fraction), 3 or 6.
std::string rfc3339(std::chrono::system_clock::time_point t, int fractionDigits);

inline std::string rfc3339Millis(std::chrono::system_clock::time_point t) {
  return rfc3339(t, 3);
}

}  // namespace pi0
