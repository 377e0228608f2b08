#include "gpu_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "common/signal_id.h"
#include "cuda_probe_loader.h"

namespace pi0::substrates {
namespace {

// Bounds the work of one sample() when a GPU floods the event set.
constexpr int kMaxEventsPerSample = 1024;
// The wait's timeout in ms. Not 0: what 0 means differs between NVML versions and wrappers,
// and the sampling thread must never block on it.
constexpr unsigned kEventWaitTimeoutMs = 1;
// The probe's CUDA context plus its two buffers, with margin: a GPU with less free memory is
// left to its workloads.
constexpr unsigned long long kProbeMinFreeBytes = 4ULL << 30;
// A copy kernel cannot beat the memory's nominal rate; above this the measurement is wrong
// (e.g. the buffers were served from cache).
constexpr double kMaxPlausibleRatio = 1.05;

// What a read of one optional NVML value produced.
enum class Read { kValue, kOmitted, kFailed };

// NOT_SUPPORTED and an absent function both mean "this GPU has no such value": omitted.
template <class Fn, class... Args>
Read readValue(Fn fn, nvml::Return& result, Args... args) {
  if (fn == nullptr) return Read::kOmitted;
  result = fn(args...);
  if (result == nvml::kSuccess) return Read::kValue;
  if (result == nvml::kErrorNotSupported) return Read::kOmitted;
  return Read::kFailed;
}

// Errors that say the GPU itself (or the driver) is unusable, as opposed to one value that could
// not be read (NO_PERMISSION, TIMEOUT, UNKNOWN, ...).
bool isDeviceLevelError(nvml::Return result) {
  return result == nvml::kErrorGpuIsLost || result == nvml::kErrorResetRequired ||
         result == nvml::kErrorUninitialized || result == nvml::kErrorDriverNotLoaded ||
         result == nvml::kErrorLibRmVersionMismatch;
}

std::string gpuName(unsigned index) {
  return "gpu" + std::to_string(index);
}

std::string stringFromBuffer(const char* buffer, size_t size) {
  return std::string(buffer, strnlen(buffer, size));
}

}  // namespace

Result<std::unique_ptr<GpuSampler>> GpuSampler::create(const GpuOptions& options) {
  auto nvml = nvml::Nvml::open(options.nvmlLibrary);
  if (!nvml) return std::unexpected(nvml.error());

  unsigned int count = 0;
  const nvml::Return result = (*nvml)->api().deviceGetCount(&count);
  if (result != nvml::kSuccess) {
    return fail("nvmlDeviceGetCount_v2 failed in '" + options.nvmlLibrary +
                "': " + (*nvml)->describe(result));
  }
  if (count == 0) {
    return fail("NVML ('" + options.nvmlLibrary + "') reports no GPU on this node");
  }

  std::unique_ptr<GpuSampler> sampler(new GpuSampler(options, std::move(*nvml)));
  const nvml::Api& api = sampler->nvml_->api();
  if (api.eventSetCreate != nullptr && api.deviceRegisterEvents != nullptr &&
      api.eventSetWait != nullptr) {
    const nvml::Return created = api.eventSetCreate(&sampler->eventSet_);
    if (created != nvml::kSuccess) {
      sampler->eventSet_ = nullptr;
      log::warn("gpu xid events unavailable",
                {{"source", "gpu"}, {"error", sampler->nvml_->describe(created)}});
    }
  }
  for (unsigned i = 0; i < count; ++i) {
    sampler->states_.push_back(DeviceState{.index = i});
    GpuDeviceInfo info;
    info.index = i;
    sampler->infos_.push_back(std::move(info));
  }
  for (DeviceState& device : sampler->states_) {
    if (auto attached = sampler->attach(device); !attached) {
      device.failing = true;
      log::warn("gpu device error",
                {{"source", "gpu"}, {"gpu", device.index}, {"error", attached.error().message}});
    }
  }
  sampler->setUpProbe();
  log::info("gpu sampler ready", {{"source", "gpu"},
                                  {"gpus", count},
                                  {"xid_events", sampler->eventSet_ != nullptr},
                                  {"probe", sampler->probeStatus()}});
  return sampler;
}

GpuSampler::GpuSampler(const GpuOptions& options, std::unique_ptr<nvml::Nvml> nvml)
    : options_(options), nvml_(std::move(nvml)) {}

GpuSampler::~GpuSampler() {
  const nvml::Api& api = nvml_->api();
  if (eventSet_ != nullptr && api.eventSetFree != nullptr) api.eventSetFree(eventSet_);
  probe_.reset();
  nvml_.reset();  // nvmlShutdown, dlclose
}

// Gets the handle and the static facts of one GPU and registers it for XID events.
Result<void> GpuSampler::attach(DeviceState& device) {
  const nvml::Api& api = nvml_->api();
  nvml::Device handle = nullptr;
  nvml::Return result = api.deviceGetHandleByIndex(device.index, &handle);
  if (result != nvml::kSuccess) {
    return fail("nvmlDeviceGetHandleByIndex_v2(" + std::to_string(device.index) +
                ") failed: " + nvml_->describe(result));
  }

  GpuDeviceInfo info;
  info.index = device.index;
  char name[nvml::kNameBufferSize] = {};
  if (readValue(api.deviceGetName, result, handle, name, nvml::kNameBufferSize) == Read::kFailed) {
    return fail("nvmlDeviceGetName failed: " + nvml_->describe(result));
  }
  info.name = stringFromBuffer(name, sizeof(name));
  char uuid[nvml::kUuidBufferSize] = {};
  if (readValue(api.deviceGetUuid, result, handle, uuid, nvml::kUuidBufferSize) == Read::kFailed) {
    return fail("nvmlDeviceGetUUID failed: " + nvml_->describe(result));
  }
  info.uuid = stringFromBuffer(uuid, sizeof(uuid));
  nvml::Memory memory{};
  if (readValue(api.deviceGetMemoryInfo, result, handle, &memory) == Read::kFailed) {
    return fail("nvmlDeviceGetMemoryInfo failed: " + nvml_->describe(result));
  }
  info.memoryTotalBytes = memory.total;

  device.handle = handle;
  registerXid(device);
  std::lock_guard lock(mutex_);
  infos_[device.index] = std::move(info);
  return {};
}

void GpuSampler::registerXid(DeviceState& device) {
  if (eventSet_ == nullptr) return;
  const nvml::Return result =
      nvml_->api().deviceRegisterEvents(device.handle, nvml::kEventTypeXidCriticalError, eventSet_);
  if (result == nvml::kSuccess) {
    device.xidRegistered = true;
  } else if (result != nvml::kErrorNotSupported) {
    log::warn("gpu xid events unavailable",
              {{"source", "gpu"}, {"gpu", device.index}, {"error", nvml_->describe(result)}});
  }
}

void GpuSampler::setUpProbe() {
  if (options_.probeInterval.count() <= 0) {
    setProbeStatus("disabled");
    return;
  }
  std::filesystem::path path = options_.probeLibrary;
  if (path.empty()) {
    path = defaultCudaProbeLibraryPath();
    std::error_code ec;
    if (path.empty() || !std::filesystem::exists(path, ec)) {
      setProbeStatus("library not built");
      log::info("gpu probe: no CUDA probe library next to the executable",
                {{"source", "gpu"}, {"path", path.string()}});
      return;
    }
  }
  auto library = CudaProbeLibrary::open(path);
  if (!library) {
    setProbeStatus("library load failed: " + library.error().message);
    log::warn("gpu probe unavailable", {{"source", "gpu"}, {"error", library.error().message}});
    return;
  }
  auto count = (*library)->deviceCount();
  if (!count) {
    setProbeStatus("no CUDA device: " + count.error().message);
    log::warn("gpu probe unavailable", {{"source", "gpu"}, {"error", count.error().message}});
    return;
  }

  // CUDA ordinals need not follow NVML's order (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER), so
  // devices are matched by UUID; a GPU without a match is not probed.
  int matched = 0;
  for (int ordinal = 0; ordinal < *count; ++ordinal) {
    auto properties = (*library)->properties(ordinal);
    if (!properties) {
      log::warn(
          "gpu probe: cannot read CUDA device properties",
          {{"source", "gpu"}, {"cuda_device", ordinal}, {"error", properties.error().message}});
      continue;
    }
    std::lock_guard lock(mutex_);
    for (DeviceState& device : states_) {
      GpuDeviceInfo& info = infos_[device.index];
      if (device.cudaDevice >= 0 || info.uuid.empty() || info.uuid != properties->uuid) continue;
      device.cudaDevice = ordinal;
      info.smCount = properties->sm_count;
      info.smClockMHz = properties->sm_clock_mhz;
      info.memoryClockMHz = properties->memory_clock_mhz;
      info.memoryBusWidthBits = properties->memory_bus_width_bits;
      info.nominalBandwidthBytesPerSecond = properties->nominal_bandwidth_bytes_per_second;
      ++matched;
      break;
    }
  }
  if (matched == 0) {
    setProbeStatus("no CUDA device matches an NVML GPU");
    log::warn("gpu probe unavailable",
              {{"source", "gpu"}, {"error", "no CUDA device UUID matches an NVML GPU"}});
    return;
  }
  probe_ = std::move(*library);
  setProbeStatus("pending");
}

void GpuSampler::setProbeStatus(std::string status) {
  std::lock_guard lock(mutex_);
  probeStatus_ = std::move(status);
}

std::string GpuSampler::probeStatus() const {
  std::lock_guard lock(mutex_);
  return probeStatus_;
}

std::vector<GpuDeviceInfo> GpuSampler::devices() const {
  std::lock_guard lock(mutex_);
  return infos_;
}

// Drains the event set without blocking (a 1 ms timeout): NVML answers NVML_ERROR_TIMEOUT as
// soon as no event is pending. Any other error (e.g. NVML_ERROR_GPU_IS_LOST when a GPU fell off
// the bus) rebuilds the set from the GPUs that still register, so the healthy GPUs' XIDs are
// still counted; when that fails, or the rebuilt set fails too, XID counting stops.
void GpuSampler::drainXidEvents() {
  if (eventSet_ == nullptr) return;
  const nvml::Api& api = nvml_->api();
  bool rebuilt = false;
  for (int i = 0; i < kMaxEventsPerSample; ++i) {
    nvml::EventData data{};
    const nvml::Return result = api.eventSetWait(eventSet_, &data, kEventWaitTimeoutMs);
    if (result == nvml::kErrorTimeout) break;
    if (result != nvml::kSuccess) {
      if (!eventReadFailing_) {
        log::warn("gpu xid events: read failed, rebuilding the event set",
                  {{"source", "gpu"}, {"error", nvml_->describe(result)}});
      }
      eventReadFailing_ = true;
      if (rebuilt || !rebuildEventSet()) {
        log::error("gpu xid events: giving up, the xid gauges are no longer exported",
                   {{"source", "gpu"}, {"error", nvml_->describe(result)}});
        dropEventSet();
        return;
      }
      rebuilt = true;
      continue;
    }
    if ((data.eventType & nvml::kEventTypeXidCriticalError) == 0) continue;
    for (DeviceState& device : states_) {
      if (device.handle == nullptr || device.handle != data.device) continue;
      ++device.xidTotal;
      log::warn("gpu xid error",
                {{"source", "gpu"}, {"gpu", device.index}, {"xid", data.eventData}});
    }
  }
  if (!rebuilt) eventReadFailing_ = false;
}

// Frees the event set and creates a new one holding every GPU that is not failing. Fails only
// when no new set can be created.
bool GpuSampler::rebuildEventSet() {
  const nvml::Api& api = nvml_->api();
  if (api.eventSetFree != nullptr) api.eventSetFree(eventSet_);
  eventSet_ = nullptr;
  for (DeviceState& device : states_)
    device.xidRegistered = false;
  const nvml::Return created = api.eventSetCreate(&eventSet_);
  if (created != nvml::kSuccess) {
    eventSet_ = nullptr;
    log::warn("gpu xid events: cannot create a new event set",
              {{"source", "gpu"}, {"error", nvml_->describe(created)}});
    return false;
  }
  for (DeviceState& device : states_) {
    if (device.handle != nullptr && !device.failing) registerXid(device);
  }
  return true;
}

// Stops XID counting for good: frozen totals would look like "no new XIDs" and silence alerts.
void GpuSampler::dropEventSet() {
  const nvml::Api& api = nvml_->api();
  if (eventSet_ != nullptr && api.eventSetFree != nullptr) api.eventSetFree(eventSet_);
  eventSet_ = nullptr;
  for (DeviceState& device : states_)
    device.xidRegistered = false;
}

// Appends one GPU's readings and gauges to `out`; on a failure `out` is left as it was.
Result<void> GpuSampler::readDevice(const DeviceState& device, Sample& out) {
  const nvml::Api& api = nvml_->api();
  const std::string label = std::to_string(device.index);
  const int gpu = static_cast<int>(device.index);
  Sample part;
  nvml::Return result = nvml::kSuccess;
  auto failed = [&](const char* function) {
    return fail(std::string(function) + " failed: " + nvml_->describe(result));
  };

  nvml::Utilization utilization{};
  switch (readValue(api.deviceGetUtilizationRates, result, device.handle, &utilization)) {
    case Read::kValue:
      part.readings.push_back({SignalId::gpuSm(gpu).name(),
                               std::clamp(static_cast<double>(utilization.gpu) / 100.0, 0.0, 1.0)});
      break;
    case Read::kOmitted:
      break;
    case Read::kFailed:
      return failed("nvmlDeviceGetUtilizationRates");
  }

  nvml::Memory memory{};
  switch (readValue(api.deviceGetMemoryInfo, result, device.handle, &memory)) {
    case Read::kValue:
      if (memory.total > 0) {
        part.readings.push_back(
            {SignalId{SignalId::Kind::kGpuMemory, gpu}.name(),
             std::clamp(static_cast<double>(memory.used) / static_cast<double>(memory.total), 0.0,
                        1.0)});
      }
      part.gauges.push_back(
          {GaugeKind::kGpuMemoryUsedBytes, label, static_cast<double>(memory.used)});
      part.gauges.push_back(
          {GaugeKind::kGpuMemoryTotalBytes, label, static_cast<double>(memory.total)});
      break;
    case Read::kOmitted:
      break;
    case Read::kFailed:
      return failed("nvmlDeviceGetMemoryInfo");
  }

  unsigned int celsius = 0;
  switch (
      readValue(api.deviceGetTemperature, result, device.handle, nvml::kTemperatureGpu, &celsius)) {
    case Read::kValue:
      part.gauges.push_back(
          {GaugeKind::kGpuTemperatureCelsius, label, static_cast<double>(celsius)});
      break;
    case Read::kOmitted:
      break;
    case Read::kFailed:
      // One unreadable sensor (NO_PERMISSION, TIMEOUT, ...) is omitted; a lost GPU fails.
      if (isDeviceLevelError(result)) return failed("nvmlDeviceGetTemperature");
      break;
  }

  unsigned int milliwatts = 0;
  switch (readValue(api.deviceGetPowerUsage, result, device.handle, &milliwatts)) {
    case Read::kValue:
      part.gauges.push_back(
          {GaugeKind::kGpuPowerWatts, label, static_cast<double>(milliwatts) / 1000.0});
      break;
    case Read::kOmitted:
      break;
    case Read::kFailed:
      if (isDeviceLevelError(result)) return failed("nvmlDeviceGetPowerUsage");
      break;
  }

  std::move(part.readings.begin(), part.readings.end(), std::back_inserter(out.readings));
  std::move(part.gauges.begin(), part.gauges.end(), std::back_inserter(out.gauges));
  return {};
}

// Why `device` must not be probed now, or empty. The probe must never contend with a workload:
// a GPU in a compute mode other than DEFAULT (EXCLUSIVE_PROCESS, PROHIBITED; MPS runs in
// EXCLUSIVE_PROCESS) would make a process that starts during the probe fail, and a GPU with
// little free memory has none to spare for the probe's context and buffers.
std::string GpuSampler::probeSkipReason(const DeviceState& device) const {
  const nvml::Api& api = nvml_->api();
  const std::string name = gpuName(device.index);
  nvml::Return result = nvml::kSuccess;
  int mode = nvml::kComputeModeDefault;
  switch (readValue(api.deviceGetComputeMode, result, device.handle, &mode)) {
    case Read::kValue:
      if (mode != nvml::kComputeModeDefault) {
        return name + " compute mode is not default (" + std::to_string(mode) + ")";
      }
      break;
    case Read::kOmitted:  // no such function, or not supported: nothing says it is shared
      break;
    case Read::kFailed:
      return name + " compute mode unreadable: " + nvml_->describe(result);
  }
  nvml::Memory memory{};
  switch (readValue(api.deviceGetMemoryInfo, result, device.handle, &memory)) {
    case Read::kValue:
      if (memory.free < kProbeMinFreeBytes) {
        return name + " free memory " + std::to_string(memory.free) + " bytes is below " +
               std::to_string(kProbeMinFreeBytes);
      }
      break;
    case Read::kOmitted:  // the probe library itself takes at most a fraction of what is free
      break;
    case Read::kFailed:
      return name + " free memory unreadable: " + nvml_->describe(result);
  }
  return {};
}

void GpuSampler::runProbe(Clock::time_point now) {
  if (probe_ == nullptr) return;
  // In seconds: converting a huge probeInterval to the clock's ticks would overflow.
  if (lastProbe_ && std::chrono::duration_cast<std::chrono::seconds>(now - *lastProbe_) <
                        options_.probeInterval) {
    return;
  }
  lastProbe_ = now;

  std::string firstError;
  std::string skipped;
  bool ran = false;
  bool considered = false;
  for (const DeviceState& device : states_) {
    // A GPU that NVML cannot reach is not one to launch kernels on.
    if (device.cudaDevice < 0 || device.failing) continue;
    considered = true;
    const std::string skip = probeSkipReason(device);
    if (!skip.empty()) {
      skipped += (skipped.empty() ? "" : "; ") + skip;
      // Nothing was measured: the ratio gauge goes away rather than repeat old news.
      std::lock_guard lock(mutex_);
      GpuDeviceInfo& info = infos_[device.index];
      info.lastProbeAchievedBytesPerSecond = std::numeric_limits<double>::quiet_NaN();
      info.lastProbeRatio = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    ran = true;
    auto achieved = probe_->bandwidth(device.cudaDevice);
    std::lock_guard lock(mutex_);
    GpuDeviceInfo& info = infos_[device.index];
    info.lastProbeAchievedBytesPerSecond = std::numeric_limits<double>::quiet_NaN();
    info.lastProbeRatio = std::numeric_limits<double>::quiet_NaN();
    if (!achieved) {
      // A failed probe measured nothing: the ratio gauge goes away rather than repeat old news.
      if (firstError.empty()) firstError = gpuName(device.index) + ": " + achieved.error().message;
      continue;
    }
    const double ratio = info.nominalBandwidthBytesPerSecond > 0
                             ? *achieved / info.nominalBandwidthBytesPerSecond
                             : std::numeric_limits<double>::quiet_NaN();
    if (ratio > kMaxPlausibleRatio) {
      if (firstError.empty()) {
        firstError = gpuName(device.index) + ": implausible bandwidth ratio " +
                     std::to_string(ratio) + " (above " + std::to_string(kMaxPlausibleRatio) +
                     " of nominal; measured cache, not memory?), not exported";
      }
      continue;
    }
    info.lastProbeAchievedBytesPerSecond = *achieved;
    info.lastProbeRatio = ratio;
  }
  if (!considered) return;
  if (!ran) {
    log::info("gpu probe skipped", {{"source", "gpu"}, {"why", skipped}});
    setProbeStatus("skipped: " + skipped);
    return;
  }
  if (firstError.empty()) {
    if (probeFailing_) log::info("gpu probe recovered", {{"source", "gpu"}});
    probeFailing_ = false;
    setProbeStatus(skipped.empty() ? "ok" : "ok; skipped: " + skipped);
    return;
  }
  if (!probeFailing_) log::warn("gpu probe failed", {{"source", "gpu"}, {"error", firstError}});
  probeFailing_ = true;
  setProbeStatus("failed: " + firstError + (skipped.empty() ? "" : "; skipped: " + skipped));
}

Result<Sample> GpuSampler::sample(Clock::time_point now) {
  drainXidEvents();

  Sample out;
  std::string errors;
  size_t healthy = 0;
  for (DeviceState& device : states_) {
    Result<void> read = device.handle == nullptr ? attach(device) : Result<void>{};
    if (read) read = readDevice(device, out);
    if (read) {
      ++healthy;
      if (device.failing) {
        log::info("gpu device recovered", {{"source", "gpu"}, {"gpu", device.index}});
        // Left out of an event set rebuilt while it was failing.
        if (!device.xidRegistered) registerXid(device);
      }
      device.failing = false;
    } else {
      if (!device.failing) {
        log::warn("gpu device error",
                  {{"source", "gpu"}, {"gpu", device.index}, {"error", read.error().message}});
      }
      device.failing = true;
      errors += (errors.empty() ? "" : "; ") + gpuName(device.index) + ": " + read.error().message;
    }
    if (device.xidRegistered) {
      out.gauges.push_back({GaugeKind::kGpuXidErrorsTotal, std::to_string(device.index),
                            static_cast<double>(device.xidTotal)});
    }
  }
  if (healthy == 0) {
    return fail("all " + std::to_string(states_.size()) + " GPUs failed: " + errors);
  }

  runProbe(now);
  std::lock_guard lock(mutex_);
  for (const DeviceState& device : states_) {
    const double ratio = infos_[device.index].lastProbeRatio;
    if (device.failing || !std::isfinite(ratio)) continue;
    out.gauges.push_back({GaugeKind::kGpuProbeBandwidthRatio, std::to_string(device.index), ratio});
  }
  return out;
}

}  // namespace pi0::substrates
