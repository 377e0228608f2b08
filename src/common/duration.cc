#include "common/duration.h"

#include <cmath>
#include <string>

#include "common/files.h"

namespace pi0 {

Result<Seconds> parseDuration(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double seconds;
  };
  // Longest suffixes first so "ms" is not read as "m" + "s".
  static constexpr Unit kUnits[] = {{"ms", 1e-3}, {"us", 1e-6}, {"h", 3600}, {"m", 60}, {"s", 1}};
  double scale = 1;
  std::string_view number = text;
  for (const auto& unit : kUnits) {
    if (text.size() > unit.suffix.size() && text.ends_with(unit.suffix)) {
      number = text.substr(0, text.size() - unit.suffix.size());
      scale = unit.seconds;
      break;
    }
  }
  auto value = parseDouble(number);
  if (!value || !std::isfinite(*value) || *value < 0) {
    return fail("invalid duration '" + std::string(text) +
                "' (want a non-negative number with an optional unit ms, s, m or h)");
  }
  return Seconds(*value * scale);
}

}  // namespace pi0
