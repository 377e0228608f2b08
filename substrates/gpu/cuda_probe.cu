// libpi0_cuda_probe.so: device properties and a memory-bandwidth probe behind the C ABI of
// cuda_probe_api.h. Built only when CUDA is enabled; loaded with dlopen by the GPU sampler.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cuda_probe_api.h"

#define PI0_CUDA_PROBE_EXPORT __attribute__((visibility("default")))

namespace {

constexpr size_t kProbeBytes = size_t{256} << 20;    // per buffer (one read, one written)
constexpr size_t kMinProbeBytes = size_t{16} << 20;  // below this the timing means little
// A buffer that fits in L2 measures the cache, not the memory: each buffer is at least this many
// times the L2 size.
constexpr size_t kMinL2Multiple = 4;
constexpr int kTimedLaunches = 8;
constexpr int kThreadsPerBlock = 256;

void setMessage(char* err, size_t n, const char* text) {
  if (err == nullptr || n == 0) return;
  std::snprintf(err, n, "%s", text);
}

void setCudaError(char* err, size_t n, const char* what, cudaError_t e) {
  if (err == nullptr || n == 0) return;
  std::snprintf(err, n, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

void setNotEnoughMemory(char* err, size_t n, size_t freeBytes, size_t minBytes) {
  if (err == nullptr || n == 0) return;
  std::snprintf(err, n,
                "not enough free device memory for the probe (%zu bytes free, the probe needs 8 x "
                "%zu bytes free to take at most a quarter)",
                freeBytes, minBytes);
}

// Reads one buffer and writes the other in 16-byte words: the simplest kernel that streams
// device memory in both directions at close to the hardware's rate.
__global__ void copyKernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t words) {
  const size_t stride = size_t{blockDim.x} * gridDim.x;
  for (size_t i = size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < words; i += stride) {
    dst[i] = src[i];
  }
}

// Everything one probe allocates, released on every path.
struct ProbeResources {
  void* src = nullptr;
  void* dst = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  bool context = false;

  ~ProbeResources() {
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (stream != nullptr) cudaStreamDestroy(stream);
    if (src != nullptr) cudaFree(src);
    if (dst != nullptr) cudaFree(dst);
    // The primary context alone holds hundreds of MiB on a data-centre GPU; the probe runs every
    // few minutes, so give it back rather than keep it from the node's workloads.
    if (context) cudaDeviceReset();
    cudaGetLastError();  // clear a non-sticky error so the next probe starts clean
  }
};

void formatUuid(const cudaUUID_t& uuid, char* out, size_t n) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  std::snprintf(out, n, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                b[13], b[14], b[15]);
}

}  // namespace

extern "C" {

PI0_CUDA_PROBE_EXPORT int pi0_cuda_probe_abi_version(void) {
  return PI0_CUDA_PROBE_ABI_VERSION;
}

PI0_CUDA_PROBE_EXPORT int pi0_cuda_device_count(char* err, size_t n) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    setCudaError(err, n, "cudaGetDeviceCount", e);
    return -1;
  }
  if (count == 0) setMessage(err, n, "cudaGetDeviceCount: no CUDA device");
  return count;
}

PI0_CUDA_PROBE_EXPORT int pi0_cuda_device_properties(int dev, pi0_cuda_properties* out, char* err,
                                                     size_t n) {
  if (out == nullptr) {
    setMessage(err, n, "pi0_cuda_device_properties: null output");
    return 1;
  }
  std::memset(out, 0, sizeof(*out));
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof(prop));
  cudaError_t e = cudaGetDeviceProperties(&prop, dev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    setCudaError(err, n, "cudaGetDeviceProperties", e);
    return 1;
  }
  // CUDA 13 removed clockRate and memoryClockRate from cudaDeviceProp; both are attributes (kHz).
  int smClockKhz = 0;
  int memoryClockKhz = 0;
  e = cudaDeviceGetAttribute(&smClockKhz, cudaDevAttrClockRate, dev);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&memoryClockKhz, cudaDevAttrMemoryClockRate, dev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    setCudaError(err, n, "cudaDeviceGetAttribute", e);
    return 1;
  }
  std::snprintf(out->name, sizeof(out->name), "%s", prop.name);
  formatUuid(prop.uuid, out->uuid, sizeof(out->uuid));
  out->total_memory_bytes = prop.totalGlobalMem;
  out->sm_count = prop.multiProcessorCount;
  out->sm_clock_mhz = smClockKhz / 1000;
  out->memory_clock_mhz = memoryClockKhz / 1000;
  out->memory_bus_width_bits = prop.memoryBusWidth;
  out->nominal_bandwidth_bytes_per_second =
      2.0 * static_cast<double>(memoryClockKhz) * 1000.0 * prop.memoryBusWidth / 8.0;
  return 0;
}

PI0_CUDA_PROBE_EXPORT int pi0_cuda_bandwidth_probe(int dev, double* achieved, char* err, size_t n) {
  if (achieved == nullptr) {
    setMessage(err, n, "pi0_cuda_bandwidth_probe: null output");
    return 1;
  }
  *achieved = 0;
  ProbeResources r;
  cudaError_t e = cudaSetDevice(dev);
  if (e != cudaSuccess) {
    setCudaError(err, n, "cudaSetDevice", e);
    return 1;
  }
  size_t freeBytes = 0;
  size_t totalBytes = 0;
  e = cudaMemGetInfo(&freeBytes, &totalBytes);  // creates the primary context
  r.context = true;
  if (e != cudaSuccess) {
    setCudaError(err, n, "cudaMemGetInfo", e);
    return 1;
  }
  int l2Bytes = 0;
  if ((e = cudaDeviceGetAttribute(&l2Bytes, cudaDevAttrL2CacheSize, dev)) != cudaSuccess) {
    setCudaError(err, n, "cudaDeviceGetAttribute(cudaDevAttrL2CacheSize)", e);
    return 1;
  }
  size_t minBytes = kMinProbeBytes;
  if (l2Bytes > 0 && kMinL2Multiple * static_cast<size_t>(l2Bytes) > minBytes) {
    minBytes = kMinL2Multiple * static_cast<size_t>(l2Bytes);
  }
  // Never take more than a quarter of what is free: the node's workloads come first.
  size_t bytes = kProbeBytes > minBytes ? kProbeBytes : minBytes;
  if (2 * bytes > freeBytes / 4) bytes = (freeBytes / 8) & ~size_t{0xFFFF};
  if (bytes < minBytes) {
    setNotEnoughMemory(err, n, freeBytes, minBytes);
    return 1;
  }
  const size_t words = bytes / sizeof(uint4);

  if ((e = cudaMalloc(&r.src, bytes)) != cudaSuccess ||
      (e = cudaMalloc(&r.dst, bytes)) != cudaSuccess) {
    setCudaError(err, n, "cudaMalloc", e);
    return 1;
  }
  if ((e = cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking)) != cudaSuccess ||
      (e = cudaEventCreate(&r.start)) != cudaSuccess ||
      (e = cudaEventCreate(&r.stop)) != cudaSuccess) {
    setCudaError(err, n, "cudaStreamCreate/cudaEventCreate", e);
    return 1;
  }
  if ((e = cudaMemsetAsync(r.src, 0x5a, bytes, r.stream)) != cudaSuccess) {
    setCudaError(err, n, "cudaMemsetAsync", e);
    return 1;
  }

  int smCount = 0;
  cudaDeviceGetAttribute(&smCount, cudaDevAttrMultiProcessorCount, dev);
  size_t blocks = (words + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const size_t maxBlocks = static_cast<size_t>(smCount > 0 ? smCount : 1) * 16;
  if (blocks > maxBlocks) blocks = maxBlocks;
  const auto* src = static_cast<const uint4*>(r.src);
  auto* dst = static_cast<uint4*>(r.dst);

  // One untimed launch warms the caches, the TLB and the clocks.
  copyKernel<<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, r.stream>>>(src, dst, words);
  cudaEventRecord(r.start, r.stream);
  for (int i = 0; i < kTimedLaunches; ++i) {
    copyKernel<<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, r.stream>>>(src, dst, words);
  }
  cudaEventRecord(r.stop, r.stream);
  if ((e = cudaGetLastError()) != cudaSuccess) {
    setCudaError(err, n, "copy kernel launch", e);
    return 1;
  }
  if ((e = cudaEventSynchronize(r.stop)) != cudaSuccess) {
    setCudaError(err, n, "cudaEventSynchronize", e);
    return 1;
  }
  float ms = 0;
  if ((e = cudaEventElapsedTime(&ms, r.start, r.stop)) != cudaSuccess) {
    setCudaError(err, n, "cudaEventElapsedTime", e);
    return 1;
  }
  if (!(ms > 0)) {
    setMessage(err, n, "copy kernel took no measurable time");
    return 1;
  }
  *achieved = 2.0 * static_cast<double>(bytes) * kTimedLaunches / (static_cast<double>(ms) / 1e3);
  return 0;
}

}  // extern "C"
