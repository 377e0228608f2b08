#include "cuda_probe_loader.h"

#include <dlfcn.h>

#include <array>
#include <cstring>
#include <system_error>

namespace pi0::substrates {
namespace {

constexpr size_t kMessageSize = 512;

std::string messageOf(const std::array<char, kMessageSize>& buffer, const char* fallback) {
  // strnlen: a misbehaving library may leave the buffer unterminated.
  std::string text(buffer.data(), strnlen(buffer.data(), buffer.size()));
  return text.empty() ? std::string(fallback) : text;
}

}  // namespace

std::filesystem::path defaultCudaProbeLibraryPath() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty()) return {};
  return exe.parent_path() / kCudaProbeLibraryName;
}

Result<std::unique_ptr<CudaProbeLibrary>> CudaProbeLibrary::open(
    const std::filesystem::path& path) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = dlerror();
    return fail("cannot load the CUDA probe library '" + path.string() +
                "': " + (why != nullptr ? why : "unknown dlopen error"));
  }
  std::unique_ptr<CudaProbeLibrary> library(new CudaProbeLibrary(handle));

  // dlsym returns an object pointer; POSIX guarantees it converts to the function's type.
  auto abiVersion =
      reinterpret_cast<pi0_cuda_probe_abi_version_fn>(dlsym(handle, "pi0_cuda_probe_abi_version"));
  library->deviceCount_ =
      reinterpret_cast<pi0_cuda_device_count_fn>(dlsym(handle, "pi0_cuda_device_count"));
  library->properties_ =
      reinterpret_cast<pi0_cuda_device_properties_fn>(dlsym(handle, "pi0_cuda_device_properties"));
  library->bandwidth_ =
      reinterpret_cast<pi0_cuda_bandwidth_probe_fn>(dlsym(handle, "pi0_cuda_bandwidth_probe"));
  if (abiVersion == nullptr || library->deviceCount_ == nullptr ||
      library->properties_ == nullptr || library->bandwidth_ == nullptr) {
    return fail("the CUDA probe library '" + path.string() +
                "' lacks one of the pi0_cuda_* functions");
  }
  const int version = abiVersion();
  if (version != PI0_CUDA_PROBE_ABI_VERSION) {
    return fail("the CUDA probe library '" + path.string() + "' has ABI version " +
                std::to_string(version) + ", this agent needs " +
                std::to_string(PI0_CUDA_PROBE_ABI_VERSION));
  }
  return library;
}

CudaProbeLibrary::~CudaProbeLibrary() {
  dlclose(handle_);
}

Result<int> CudaProbeLibrary::deviceCount() {
  std::array<char, kMessageSize> message{};
  const int count = deviceCount_(message.data(), message.size());
  if (count > 0) return count;
  return fail(messageOf(message, count == 0 ? "no CUDA device" : "CUDA runtime error"));
}

Result<pi0_cuda_properties> CudaProbeLibrary::properties(int device) {
  std::array<char, kMessageSize> message{};
  pi0_cuda_properties out{};
  if (properties_(device, &out, message.data(), message.size()) != 0) {
    return fail(messageOf(message, "pi0_cuda_device_properties failed"));
  }
  out.name[sizeof(out.name) - 1] = '\0';
  out.uuid[sizeof(out.uuid) - 1] = '\0';
  return out;
}

Result<double> CudaProbeLibrary::bandwidth(int device) {
  std::array<char, kMessageSize> message{};
  double achieved = 0;
  if (bandwidth_(device, &achieved, message.data(), message.size()) != 0) {
    return fail(messageOf(message, "pi0_cuda_bandwidth_probe failed"));
  }
  return achieved;
}

}  // namespace pi0::substrates
