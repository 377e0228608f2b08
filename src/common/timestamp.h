// RFC 3339 timestamps in UTC with milliseconds ("2026-11-22T09:51:46.123Z"), as Pi0 writes
// them in logs and documents.
#pragma once

#include <chrono>
#include <string>

namespace pi0 {

std::string rfc3339Millis(std::chrono::system_clock::time_point t);

}  // namespace pi0
