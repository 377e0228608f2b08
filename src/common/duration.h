// Durations on the command line: "250ms", "1s", "1.5s", "2m", "1h", or a plain number of
// seconds ("0.5").
#pragma once

#include <chrono>
#include <string_view>

#include "common/result.h"

namespace pi0 {

using Seconds = std::chrono::duration<double>;

Result<Seconds> parseDuration(std::string_view text);

}  // namespace pi0
