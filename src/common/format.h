// Numbers in messages for people (conditions, Events, denials, logs): one spelling everywhere.
#pragma once

#include <cstdio>
#include <string>

namespace pi0 {

// `v` with `decimals` digits after the point: fixed(0.125) == "0.13", fixed(1, 3) == "1.000".
inline std::string fixed(double v, int decimals = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace pi0
