// How the operator writes the numbers of its statuses, and when a change of one is worth a
// write: one rule for the Channel's and the ShutdownMatrix's.
#pragma once

#include <cmath>
#include <optional>

namespace pi0::op {

// Rounded to 4 decimals, so that a status does not change with the last bits of a double.
inline double round4(double x) {
  return std::round(x * 1e4) / 1e4;
}

// Whether two numbers read alike as written (round4), within 0.01: a smaller change is not
// worth a status write.
inline bool near(double a, double b) {
  constexpr double kTolerance = 0.01;
  return std::abs(round4(a) - round4(b)) <= kTolerance;
}

inline bool near(const std::optional<double>& a, const std::optional<double>& b) {
  return a.has_value() == b.has_value() && (!a || near(*a, *b));
}

}  // namespace pi0::op
