// The sampler contract: every source of node measurements (host CPU, memory, pressure,
// disks, network, GPUs, the synthetic replay) is one small class behind this interface.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pi0::substrates {

using Clock = std::chrono::steady_clock;

// One utilization ratio in [0,1] for the rolling window, keyed by a stable signal name:
// "cpu", "memory", "psi_cpu", "psi_memory", "psi_io", "disk", "network", "gpu<i>_sm",
// "gpu<i>_memory".
struct Reading {
  std::string signal;
  double ratio = 0;
};

// Raw values exported as Prometheus metrics as they are (not windowed).
enum class GaugeKind {
  kMemoryTotalBytes,
  kMemoryAvailableBytes,
  kNetworkLinkSpeedBytesPerSecond,  // device = interface
  kGpuTemperatureCelsius,           // device = GPU index
  kGpuPowerWatts,
  kGpuMemoryUsedBytes,
  kGpuMemoryTotalBytes,
  kGpuXidErrorsTotal,       // cumulative since the agent started
  kGpuProbeBandwidthRatio,  // achieved / nominal memory bandwidth of the last probe
};

struct Gauge {
  GaugeKind kind;
  std::string device;  // empty when the value is node-wide
  double value = 0;
};

struct Sample {
  std::vector<Reading> readings;
  std::vector<Gauge> gauges;
};

// Where the host's /proc and /sys are. In a DaemonSet they are mounted under /host.
struct HostPaths {
  std::filesystem::path root = "/";
  std::filesystem::path proc() const { return root / "proc"; }
  std::filesystem::path sys() const { return root / "sys"; }
};

// Contract:
// - A sampler is created by a static `create(...)` that returns an error when its source is
//   missing (no PSI, no NVML, no GPU): the agent logs that once and exports it as a metric.
// - sample() is called by one thread (the agent's sampling loop) once per interval with the
//   current time. Counter-based samplers (cpu, disk, network) compute ratios from the delta
//   since the previous call; on the first call, and after a counter went backwards (wrap,
//   hotplug, reset), they re-baseline and return no reading for that counter.
// - sample() never throws and never aborts on bad input: a malformed or truncated file is an
//   error value whose message names the file and what is wrong with it.
class Sampler {
 public:
  virtual ~Sampler() = default;
  // Name of the source, used in logs and the `source` metric label: "cpu", "memory", "psi",
  // "disk", "network", "gpu", "synthetic".
  virtual std::string_view source() const = 0;
  virtual Result<Sample> sample(Clock::time_point now) = 0;
};

using SamplerPtr = std::unique_ptr<Sampler>;

}  // namespace pi0::substrates
