// Prometheus text exposition of a prometheus-cpp registry, served by Pi0's own HTTP stack
// (cpp-httplib) rather than prometheus-cpp's embedded server, so each program runs one.
#pragma once

#include <string>
#include <string_view>

#include <prometheus/registry.h>

namespace pi0::metrics {

inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// Thread-safe (the registry is).
std::string renderText(const prometheus::Registry& registry);

}  // namespace pi0::metrics
