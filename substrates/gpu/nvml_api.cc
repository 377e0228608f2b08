#include "nvml_api.h"

#include <dlfcn.h>

#include <array>
#include <utility>

namespace pi0::substrates::nvml {
namespace {

constexpr std::array<std::pair<Return, std::string_view>, 23> kReturnNames{{
    {kSuccess, "NVML_SUCCESS"},
    {kErrorUninitialized, "NVML_ERROR_UNINITIALIZED"},
    {kErrorInvalidArgument, "NVML_ERROR_INVALID_ARGUMENT"},
    {kErrorNotSupported, "NVML_ERROR_NOT_SUPPORTED"},
    {kErrorNoPermission, "NVML_ERROR_NO_PERMISSION"},
    {kErrorAlreadyInitialized, "NVML_ERROR_ALREADY_INITIALIZED"},
    {kErrorNotFound, "NVML_ERROR_NOT_FOUND"},
    {kErrorInsufficientSize, "NVML_ERROR_INSUFFICIENT_SIZE"},
    {kErrorInsufficientPower, "NVML_ERROR_INSUFFICIENT_POWER"},
    {kErrorDriverNotLoaded, "NVML_ERROR_DRIVER_NOT_LOADED"},
    {kErrorTimeout, "NVML_ERROR_TIMEOUT"},
    {kErrorIrqIssue, "NVML_ERROR_IRQ_ISSUE"},
    {kErrorLibraryNotFound, "NVML_ERROR_LIBRARY_NOT_FOUND"},
    {kErrorFunctionNotFound, "NVML_ERROR_FUNCTION_NOT_FOUND"},
    {kErrorCorruptedInforom, "NVML_ERROR_CORRUPTED_INFOROM"},
    {kErrorGpuIsLost, "NVML_ERROR_GPU_IS_LOST"},
    {kErrorResetRequired, "NVML_ERROR_RESET_REQUIRED"},
    {kErrorOperatingSystem, "NVML_ERROR_OPERATING_SYSTEM"},
    {kErrorLibRmVersionMismatch, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"},
    {kErrorInUse, "NVML_ERROR_IN_USE"},
    {kErrorMemory, "NVML_ERROR_MEMORY"},
    {kErrorNoData, "NVML_ERROR_NO_DATA"},
    {kErrorUnknown, "NVML_ERROR_UNKNOWN"},
}};

// dlsym returns an object pointer; POSIX guarantees it converts to the function's type.
template <class Fn>
void resolve(void* handle, const char* symbol, Fn& out) {
  out = reinterpret_cast<Fn>(dlsym(handle, symbol));
}

}  // namespace

std::string returnName(Return result) {
  for (const auto& [code, name] : kReturnNames) {
    if (code == result) return std::string(name);
  }
  return "NVML_ERROR_" + std::to_string(result);
}

Result<std::unique_ptr<Nvml>> Nvml::open(const std::string& library) {
  dlerror();
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return fail(
        "cannot load the NVML library '" + library +
        "' (no NVIDIA driver on this node?): " + (why != nullptr ? why : "unknown dlopen error"));
  }
  std::unique_ptr<Nvml> nvml(new Nvml(handle, library));
  Api& api = nvml->api_;

  // The versioned names are what nvml.h maps the plain names to since the R319 drivers.
  struct Required {
    const char* symbol;
    bool present;
  };
  resolve(handle, "nvmlInit_v2", api.init);
  resolve(handle, "nvmlShutdown", api.shutdown);
  resolve(handle, "nvmlDeviceGetCount_v2", api.deviceGetCount);
  resolve(handle, "nvmlDeviceGetHandleByIndex_v2", api.deviceGetHandleByIndex);
  for (const Required& r :
       {Required{"nvmlInit_v2", api.init != nullptr},
        Required{"nvmlShutdown", api.shutdown != nullptr},
        Required{"nvmlDeviceGetCount_v2", api.deviceGetCount != nullptr},
        Required{"nvmlDeviceGetHandleByIndex_v2", api.deviceGetHandleByIndex != nullptr}}) {
    if (!r.present) {
      return fail("the NVML library '" + library + "' lacks the required function " + r.symbol);
    }
  }

  resolve(handle, "nvmlErrorString", api.errorString);
  resolve(handle, "nvmlDeviceGetName", api.deviceGetName);
  resolve(handle, "nvmlDeviceGetUUID", api.deviceGetUuid);
  resolve(handle, "nvmlDeviceGetMemoryInfo", api.deviceGetMemoryInfo);
  resolve(handle, "nvmlDeviceGetComputeMode", api.deviceGetComputeMode);
  resolve(handle, "nvmlDeviceGetUtilizationRates", api.deviceGetUtilizationRates);
  resolve(handle, "nvmlDeviceGetTemperature", api.deviceGetTemperature);
  resolve(handle, "nvmlDeviceGetPowerUsage", api.deviceGetPowerUsage);
  resolve(handle, "nvmlEventSetCreate", api.eventSetCreate);
  resolve(handle, "nvmlDeviceRegisterEvents", api.deviceRegisterEvents);
  resolve(handle, "nvmlEventSetWait_v2", api.eventSetWait);
  if (api.eventSetWait == nullptr) resolve(handle, "nvmlEventSetWait", api.eventSetWait);
  resolve(handle, "nvmlEventSetFree", api.eventSetFree);

  const Return result = api.init();
  if (result != kSuccess) {
    return fail("nvmlInit_v2 failed in '" + library + "': " + nvml->describe(result));
  }
  nvml->initialized_ = true;
  return nvml;
}

Nvml::~Nvml() {
  if (initialized_) api_.shutdown();
  dlclose(handle_);
}

std::string Nvml::describe(Return result) const {
  std::string name = returnName(result);
  if (api_.errorString == nullptr) return name;
  const char* text = api_.errorString(result);
  if (text == nullptr || *text == '\0') return name;
  return name + " (" + text + ")";
}

}  // namespace pi0::substrates::nvml
