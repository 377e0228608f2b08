#include <doctest/doctest.h>

#include "gate/window.h"

using pi0::gate::RollingWindow;

TEST_CASE("the window keeps the last N samples, oldest first") {
  RollingWindow w(4);
  CHECK(w.size() == 0);
  CHECK_FALSE(w.full());
  w.push(1);
  w.push(2);
  CHECK(w.values() == std::vector<double>{1, 2});
  CHECK(w.fill() == doctest::Approx(0.5));
  for (double v : {3.0, 4.0, 5.0, 6.0})
    w.push(v);
  CHECK(w.full());
  CHECK(w.values() == std::vector<double>{3, 4, 5, 6});
  CHECK(w.latest() == 6);
}
