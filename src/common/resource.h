// The resources Pi0 measures and budgets: one enum for the fleet's load, a ShutdownMatrix's load
// signal and admission.
#pragma once

#include <array>
#include <string_view>

namespace pi0 {

enum class Resource { kCpu, kMemory, kGpu };

inline constexpr std::array<Resource, 3> kAllResources = {Resource::kCpu, Resource::kMemory,
                                                          Resource::kGpu};

// "cpu", "memory", "gpu": as the API and the fingerprint name them.
constexpr std::string_view resourceName(Resource resource) {
  switch (resource) {
    case Resource::kCpu:
      return "cpu";
    case Resource::kMemory:
      return "memory";
    case Resource::kGpu:
      return "gpu";
  }
  return "unknown";
}

}  // namespace pi0
