// A Prometheus counter that mirrors a cumulative count kept elsewhere (an atomic a component
// counts on its own, read at each scrape).
#pragma once

#include <cstdint>

#include <prometheus/counter.h>

namespace pi0::metrics {

// Raises `counter` to `total`. A counter only rises: a smaller total (a component started
// again) leaves it where it is. Only this function may change `counter`.
inline void raiseTo(prometheus::Counter& counter, std::uint64_t total) {
  const double value = static_cast<double>(total);
  if (value > counter.Value()) counter.Increment(value - counter.Value());
}

}  // namespace pi0::metrics
