// SignalId: one signal the agent windows, typed. Its name ("cpu", "psi_memory", "gpu3_sm") is
// the key of the fingerprint's `signals` object, of the agent's metrics' `signal` label and of a
// synthetic profile; name() and parse() are the one place that spells and reads those names.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/resource.h"

namespace pi0 {

struct SignalId {
  enum class Kind {
    kCpu,        // "cpu": busy ratio over all CPUs
    kMemory,     // "memory": (MemTotal − MemAvailable) / MemTotal
    kPsiCpu,     // "psi_cpu": PSI `some avg10`
    kPsiMemory,  // "psi_memory"
    kPsiIo,      // "psi_io"
    kDisk,       // "disk": the busiest disk's busy ratio
    kNetwork,    // "network": the busiest interface's throughput over its speed
    kGpuSm,      // "gpu<i>_sm": GPU i's SM utilization
    kGpuMemory,  // "gpu<i>_memory": GPU i's memory used ratio
  };

  Kind kind = Kind::kCpu;
  int gpu = 0;  // the GPU's index (kGpuSm, kGpuMemory); 0 for the others

  static constexpr SignalId gpuSm(int index) { return {Kind::kGpuSm, index}; }

  // The name, e.g. "gpu3_sm". parse(name()) gives the same id back.
  std::string name() const;
  // The name of a signal with a fixed one (every kind but the GPUs'), without building a
  // string: for lookups on admission's hot path. Empty for a GPU signal.
  std::string_view fixedName() const;
  // The id a name spells; nullopt for any other text. A GPU index is a decimal of at most 9
  // digits without leading zeros ("gpu01_sm" is not a signal), so that name() spells it back.
  static std::optional<SignalId> parse(std::string_view name);

  // PSI signals (psi_*): a pressure, whose trouble line is the pressure line, not saturation.
  bool isPressure() const;
  bool isGpu() const { return kind == Kind::kGpuSm || kind == Kind::kGpuMemory; }

  friend bool operator==(const SignalId&, const SignalId&) = default;
};

// The signal whose utilization is a resource's (cpu: "cpu", memory: "memory"); for gpu, the SM
// signal of GPU `gpu`. Inline, as the next one: admission asks for every candidate node.
constexpr SignalId utilizationSignal(Resource resource, int gpu = 0) {
  switch (resource) {
    case Resource::kCpu:
      return {SignalId::Kind::kCpu};
    case Resource::kMemory:
      return {SignalId::Kind::kMemory};
    case Resource::kGpu:
      return SignalId::gpuSm(gpu);
  }
  return {SignalId::Kind::kCpu};
}

// The PSI signal of a resource (cpu: "psi_cpu", memory: "psi_memory"); nullopt for gpu.
constexpr std::optional<SignalId> pressureSignal(Resource resource) {
  switch (resource) {
    case Resource::kCpu:
      return SignalId{SignalId::Kind::kPsiCpu};
    case Resource::kMemory:
      return SignalId{SignalId::Kind::kPsiMemory};
    case Resource::kGpu:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace pi0
