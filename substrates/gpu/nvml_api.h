// A minimal, hand-declared subset of the NVIDIA Management Library (NVML) C API, and the
// loader that resolves it with dlopen/dlsym at run time. Nothing here needs nvml.h, the CUDA
// toolkit or a driver at build time: on a node without a GPU, Nvml::open() fails cleanly.
//
// The declarations mirror the C ABI of libnvidia-ml.so.1 (return codes, struct layouts and the
// versioned symbol names such as nvmlInit_v2 that nvml.h maps the plain names to). Only the
// functions the GPU sampler calls are declared.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace pi0::substrates::nvml {

// nvmlReturn_t. An int-sized C enum in the library's ABI.
using Return = int;
inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorUninitialized = 1;
inline constexpr Return kErrorInvalidArgument = 2;
inline constexpr Return kErrorNotSupported = 3;
inline constexpr Return kErrorNoPermission = 4;
inline constexpr Return kErrorAlreadyInitialized = 5;
inline constexpr Return kErrorNotFound = 6;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorInsufficientPower = 8;
inline constexpr Return kErrorDriverNotLoaded = 9;
inline constexpr Return kErrorTimeout = 10;
inline constexpr Return kErrorIrqIssue = 11;
inline constexpr Return kErrorLibraryNotFound = 12;
inline constexpr Return kErrorFunctionNotFound = 13;
inline constexpr Return kErrorCorruptedInforom = 14;
inline constexpr Return kErrorGpuIsLost = 15;
inline constexpr Return kErrorResetRequired = 16;
inline constexpr Return kErrorOperatingSystem = 17;
inline constexpr Return kErrorLibRmVersionMismatch = 18;
inline constexpr Return kErrorInUse = 19;
inline constexpr Return kErrorMemory = 20;
inline constexpr Return kErrorNoData = 21;
inline constexpr Return kErrorUnknown = 999;

// Opaque handles (nvmlDevice_t, nvmlEventSet_t).
struct DeviceSt;
struct EventSetSt;
using Device = DeviceSt*;
using EventSet = EventSetSt*;

// nvmlUtilization_t: percentages over the driver's last sample period.
struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};

// nvmlMemory_t (the v1 layout that the unversioned nvmlDeviceGetMemoryInfo fills), in bytes.
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlEventData_t in its current layout (R450+: gpuInstanceId and computeInstanceId were
// appended). Older drivers fill only a prefix of it, so the larger struct is safe for both.
struct EventData {
  Device device;
  unsigned long long eventType;
  unsigned long long eventData;  // the XID number for nvmlEventTypeXidCriticalError
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

inline constexpr unsigned long long kEventTypeXidCriticalError = 0x0000000000000008ULL;
inline constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
// nvmlComputeMode_t (an int-sized C enum): NVML_COMPUTEMODE_DEFAULT lets several processes
// share the GPU; EXCLUSIVE_PROCESS (3) and PROHIBITED (2) do not.
inline constexpr int kComputeModeDefault = 0;
// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
inline constexpr unsigned int kNameBufferSize = 96;
inline constexpr unsigned int kUuidBufferSize = 96;

// The function table. Required entries are never null after Nvml::open() succeeds; optional
// ones are null when the library does not export them (callers treat that as "not supported").
struct Api {
  // Required.
  Return (*init)();                                                   // nvmlInit_v2
  Return (*shutdown)();                                               // nvmlShutdown
  Return (*deviceGetCount)(unsigned int* count);                      // nvmlDeviceGetCount_v2
  Return (*deviceGetHandleByIndex)(unsigned int index, Device* out);  // ..._v2
  // Optional.
  const char* (*errorString)(Return result);
  Return (*deviceGetName)(Device device, char* name, unsigned int length);
  Return (*deviceGetUuid)(Device device, char* uuid, unsigned int length);
  Return (*deviceGetMemoryInfo)(Device device, Memory* memory);
  Return (*deviceGetComputeMode)(Device device, int* mode);  // mode: nvmlComputeMode_t
  Return (*deviceGetUtilizationRates)(Device device, Utilization* utilization);
  Return (*deviceGetTemperature)(Device device, int sensor, unsigned int* celsius);
  Return (*deviceGetPowerUsage)(Device device, unsigned int* milliwatts);
  Return (*eventSetCreate)(EventSet* set);
  Return (*deviceRegisterEvents)(Device device, unsigned long long eventTypes, EventSet set);
  Return (*eventSetWait)(EventSet set, EventData* data, unsigned int timeoutMs);  // _v2
  Return (*eventSetFree)(EventSet set);
};

// The symbolic name of a return code, e.g. "NVML_ERROR_GPU_IS_LOST"; "NVML_ERROR_<n>" for a
// code this header does not know.
std::string returnName(Return result);

// An opened and initialized NVML: dlopen + dlsym + nvmlInit_v2. The destructor calls
// nvmlShutdown and dlclose. Not copyable or movable (handles obtained through it point into
// the library). Calls through api() follow NVML's own thread-safety (NVML is thread-safe).
class Nvml {
 public:
  // `library` is a dlopen name ("libnvidia-ml.so.1") or a path. Fails, with a message that
  // names the library and the cause, when it cannot be loaded, lacks a required function, or
  // nvmlInit fails (e.g. NVML_ERROR_DRIVER_NOT_LOADED).
  static Result<std::unique_ptr<Nvml>> open(const std::string& library);

  ~Nvml();
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  const Api& api() const { return api_; }
  const std::string& library() const { return library_; }

  // "NVML_ERROR_GPU_IS_LOST (GPU is lost)": the code's name and the library's own text.
  std::string describe(Return result) const;

 private:
  Nvml(void* handle, std::string library) : handle_(handle), library_(std::move(library)) {}

  void* handle_;
  std::string library_;
  Api api_{};
  bool initialized_ = false;
};

}  // namespace pi0::substrates::nvml
