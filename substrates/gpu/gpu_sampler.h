// The NVIDIA GPU sampler: per-GPU utilization, memory, temperature, power and XID errors from
// NVML (loaded with dlopen, see nvml_api.h), plus an optional on-device memory-bandwidth probe
// from libpi0_cuda_probe.so (see cuda_probe_api.h). Builds and runs without CUDA or a driver.
#pragma once

#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "nvml_api.h"
#include "sampler.h"

namespace pi0::substrates {

class CudaProbeLibrary;

struct GpuOptions {
  // dlopen name or path of NVML.
  std::string nvmlLibrary = "libnvidia-ml.so.1";
  // Path of libpi0_cuda_probe.so. Empty: look next to the running executable
  // (/proc/self/exe's directory); when it is not there, run without the probe.
  std::string probeLibrary;
  // How often the on-device bandwidth probe runs; 0 disables it (the library is not loaded).
  std::chrono::seconds probeInterval{300};
};

// Static facts about one GPU, for the fingerprint JSON.
struct GpuDeviceInfo {
  unsigned index = 0;  // NVML index, the `device` label of the gauges and the <i> of gpu<i>_*
  std::string name;
  std::string uuid;  // "GPU-..."
  unsigned long long memoryTotalBytes = 0;
  // From the CUDA probe library when it is loaded and this GPU was matched by UUID, else 0.
  int smCount = 0;
  int smClockMHz = 0;
  int memoryClockMHz = 0;
  int memoryBusWidthBits = 0;
  double nominalBandwidthBytesPerSecond = 0;
  // The last probe of this GPU; NaN when none ran yet or the last one failed.
  double lastProbeAchievedBytesPerSecond = std::numeric_limits<double>::quiet_NaN();
  double lastProbeRatio = std::numeric_limits<double>::quiet_NaN();  // achieved / nominal
};

// Contract (see Sampler):
// - create() loads NVML, initializes it and enumerates the GPUs. It fails, with a message that
//   says which, when NVML cannot be loaded or lacks a required function, nvmlInit fails (no
//   driver), or NVML reports zero GPUs. Only then, with at least one GPU, is the CUDA probe
//   library loaded (unless probeInterval is 0), so a node without a GPU never loads CUDA.
// - sample(), per GPU i: readings "gpu<i>_sm" (utilization.gpu / 100) and "gpu<i>_memory"
//   (used / total); gauges (device = "<i>") kGpuTemperatureCelsius, kGpuPowerWatts,
//   kGpuMemoryUsedBytes, kGpuMemoryTotalBytes, kGpuXidErrorsTotal (XID critical-error events
//   seen since create(), drained from an NVML event set with a 1 ms wait; absent for a GPU
//   where NVML does not support event registration) and kGpuProbeBandwidthRatio (when the last
//   probe of that GPU succeeded with a plausible ratio, at most 1.05). When the event wait fails
//   otherwise than with a timeout (e.g. a GPU fell off the bus), the event set is rebuilt from
//   the GPUs that still register; if that fails, or the rebuilt set fails too, no
//   kGpuXidErrorsTotal gauge is exported any more (frozen totals would silence alerts), logged
//   once. A value NVML reports as NVML_ERROR_NOT_SUPPORTED, or whose function the library lacks,
//   is omitted; so is a temperature or power that fails with an error that is not device-level
//   (NO_PERMISSION, TIMEOUT, UNKNOWN, ...). A GPU whose queries fail otherwise (e.g.
//   NVML_ERROR_GPU_IS_LOST) contributes only its XID gauge; the failure is logged once per run
//   of failures and the other GPUs still report. sample() fails only when every GPU failed.
// - The probe runs on the calling (sampling) thread inside sample(): on the first call, then
//   at most once per probeInterval of the `now` values passed in. It takes milliseconds plus
//   the CUDA context creation (the probe releases its context afterwards). It never contends
//   with workloads: a GPU whose NVML compute mode is not DEFAULT (EXCLUSIVE_PROCESS, MPS,
//   PROHIBITED; checked when NVML has nvmlDeviceGetComputeMode) or that has less than 4 GiB
//   free is skipped, and probeStatus() says why.
// - sample() is called by one thread. devices() and probeStatus() may be called concurrently
//   from any thread (the HTTP thread). Never throws.
// - The destructor frees the event set, calls nvmlShutdown and dlcloses NVML.
class GpuSampler final : public Sampler {
 public:
  static Result<std::unique_ptr<GpuSampler>> create(const GpuOptions& options);
  ~GpuSampler() override;
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  std::string_view source() const override { return "gpu"; }
  Result<Sample> sample(Clock::time_point now) override;

  // A copy of the per-GPU facts, in NVML index order. Thread-safe.
  std::vector<GpuDeviceInfo> devices() const;
  // The probe's state for people and the fingerprint: "disabled" (probeInterval 0), "library
  // not built" (no library next to the executable), "library load failed: <why>", "no CUDA
  // device: <why>", "no CUDA device matches an NVML GPU", "pending" (loaded, not run yet),
  // "ok", "skipped: <why>" (no GPU could be probed, e.g. "gpu0 compute mode is not default
  // (3)"), "failed: <why>" (including an implausible ratio); "ok" and "failed: ..." get
  // "; skipped: <why>" appended when some GPUs were skipped. Thread-safe.
  std::string probeStatus() const;

 private:
  struct DeviceState {
    unsigned index = 0;
    nvml::Device handle = nullptr;  // null until nvmlDeviceGetHandleByIndex succeeded
    bool xidRegistered = false;
    unsigned long long xidTotal = 0;
    int cudaDevice = -1;   // CUDA ordinal matched by UUID, -1 when none
    bool failing = false;  // in a run of failures (logged once)
  };

  GpuSampler(const GpuOptions& options, std::unique_ptr<nvml::Nvml> nvml);

  Result<void> attach(DeviceState& device);
  void registerXid(DeviceState& device);
  void setUpProbe();
  void drainXidEvents();
  bool rebuildEventSet();
  void dropEventSet();
  std::string probeSkipReason(const DeviceState& device) const;
  Result<void> readDevice(const DeviceState& device, Sample& out);
  void runProbe(Clock::time_point now);
  void setProbeStatus(std::string status);

  // Sampling thread only (and create()).
  GpuOptions options_;
  std::unique_ptr<nvml::Nvml> nvml_;
  nvml::EventSet eventSet_ = nullptr;
  bool eventReadFailing_ = false;
  std::vector<DeviceState> states_;
  std::unique_ptr<CudaProbeLibrary> probe_;
  std::optional<Clock::time_point> lastProbe_;
  bool probeFailing_ = false;

  // Shared with devices() / probeStatus().
  mutable std::mutex mutex_;
  std::vector<GpuDeviceInfo> infos_;
  std::string probeStatus_;
};

}  // namespace pi0::substrates
