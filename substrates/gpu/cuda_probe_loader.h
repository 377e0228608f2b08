// Loads libpi0_cuda_probe.so (the C ABI of cuda_probe_api.h) with dlopen, so that the agent
// never links CUDA: on a node without a GPU the library is never opened, and on a node where
// it was not built the GPU sampler simply runs without the probe.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/result.h"
#include "cuda_probe_api.h"

namespace pi0::substrates {

// The probe library's file name, as CMake names the pi0_cuda_probe target's output.
inline constexpr const char* kCudaProbeLibraryName = "libpi0_cuda_probe.so";

// Where the agent looks when no path is configured: the directory of the running executable
// (/proc/self/exe), joined with kCudaProbeLibraryName. Empty when /proc/self/exe is unreadable.
std::filesystem::path defaultCudaProbeLibraryPath();

// An opened probe library. Calls are forwarded to the library; see cuda_probe_api.h for what
// each does. Not thread-safe: the GPU sampler calls it from its sampling thread only.
class CudaProbeLibrary {
 public:
  // Fails when the library cannot be loaded, lacks a function, or was built for another ABI
  // version; the message names the path and the cause. The library is opened with
  // RTLD_NODELETE and stays mapped after the object is destroyed: the statically linked CUDA
  // runtime inside it registers exit-time handlers that must not outlive its code.
  static Result<std::unique_ptr<CudaProbeLibrary>> open(const std::filesystem::path& path);

  ~CudaProbeLibrary();
  CudaProbeLibrary(const CudaProbeLibrary&) = delete;
  CudaProbeLibrary& operator=(const CudaProbeLibrary&) = delete;

  // Number of CUDA devices; an error (with the runtime's message) when there is none or the
  // runtime fails.
  Result<int> deviceCount();
  Result<pi0_cuda_properties> properties(int device);
  // Achieved device-memory bandwidth in bytes per second.
  Result<double> bandwidth(int device);

 private:
  explicit CudaProbeLibrary(void* handle) : handle_(handle) {}

  void* handle_;
  pi0_cuda_device_count_fn deviceCount_ = nullptr;
  pi0_cuda_device_properties_fn properties_ = nullptr;
  pi0_cuda_bandwidth_probe_fn bandwidth_ = nullptr;
};

}  // namespace pi0::substrates
