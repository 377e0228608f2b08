// Numbers in messages for people (conditions, Events, denials, logs): one spelling everywhere.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace pi0 {

// `v` with `decimals` digits after the point: fixed(0.125) == "0.13", fixed(1, 3) == "1.000".
inline std::string fixed(double v, int decimals = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// `v` with at least `decimals` digits after the point and as many more (up to 6) as it takes to
// spell it exactly: settingOf(0.05) == "0.05", settingOf(0.025) == "0.025". For settings and
// thresholds, where rounding would show a value that is not the one in force.
inline std::string settingOf(double v, int decimals = 2) {
  while (decimals < 6) {
    const double scaled = v * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) < 1e-6) break;
    ++decimals;
  }
  return fixed(v, decimals);
}

}  // namespace pi0
