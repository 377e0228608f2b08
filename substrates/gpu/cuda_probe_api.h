/* The C ABI of libpi0_cuda_probe.so, the optional on-device probe of the GPU sampler.
 *
 * The library is built from cuda_probe.cu only when CUDA is enabled (PI0_CUDA), links the CUDA
 * runtime statically, and is loaded with dlopen by cuda_probe_loader.cc, so the agent itself
 * never links CUDA and runs on nodes without a GPU. Every function is safe to call on a machine
 * without a GPU or driver: it returns an error code and writes a message into `err` (always
 * NUL-terminated when n > 0, truncated to n bytes). None of them throws or aborts.
 *
 * Threading: the functions may be called from any thread, but not concurrently with each other
 * for the same device (the agent calls them from its sampling thread only).
 */
#ifndef PI0_SUBSTRATES_GPU_CUDA_PROBE_API_H_
#define PI0_SUBSTRATES_GPU_CUDA_PROBE_API_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change to the structs or signatures below; the loader refuses a mismatch. */
#define PI0_CUDA_PROBE_ABI_VERSION 1

struct pi0_cuda_properties {
  char name[256];
  /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", the form NVML's nvmlDeviceGetUUID reports, so
   * CUDA ordinals (which CUDA_VISIBLE_DEVICES may renumber) are matched to NVML devices. */
  char uuid[64];
  unsigned long long total_memory_bytes;
  int sm_count;
  int sm_clock_mhz;     /* cudaDevAttrClockRate / 1000 */
  int memory_clock_mhz; /* cudaDevAttrMemoryClockRate / 1000 */
  int memory_bus_width_bits;
  /* 2 (double data rate) x memory clock (Hz) x bus width (bytes). For HBM and GDDR alike this
   * matches the vendor's figure, e.g. A100-40GB: 2 x 1215 MHz x 5120 / 8 = 1555 GB/s. */
  double nominal_bandwidth_bytes_per_second;
};

/* Returns PI0_CUDA_PROBE_ABI_VERSION of the library. */
int pi0_cuda_probe_abi_version(void);

/* Returns the number of CUDA devices (> 0); 0 with a message when there is none; < 0 with a
 * message when the runtime fails (no driver, driver too old, ...). */
int pi0_cuda_device_count(char* err, size_t n);

/* Fills *out for CUDA device `dev`. Returns 0, or non-zero with a message. */
int pi0_cuda_device_properties(int dev, struct pi0_cuda_properties* out, char* err, size_t n);

/* Measures device-memory bandwidth on `dev`: a read+write copy kernel over 256 MiB per buffer, or
 * 4 x the L2 cache size when that is larger (less when the device has little free memory, but
 * never under 4 x L2 nor 16 MiB: the probe then fails with a message), timed with CUDA events over
 * a few launches (milliseconds), counting bytes read plus bytes written. Frees everything and
 * resets the device's primary context afterwards, so the probe holds no GPU memory between runs.
 * Returns 0 and sets *achieved_bytes_per_second, or non-zero with a message. */
int pi0_cuda_bandwidth_probe(int dev, double* achieved_bytes_per_second, char* err, size_t n);

typedef int (*pi0_cuda_probe_abi_version_fn)(void);
typedef int (*pi0_cuda_device_count_fn)(char* err, size_t n);
typedef int (*pi0_cuda_device_properties_fn)(int dev, struct pi0_cuda_properties* out, char* err,
                                             size_t n);
typedef int (*pi0_cuda_bandwidth_probe_fn)(int dev, double* achieved_bytes_per_second, char* err,
                                           size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PI0_SUBSTRATES_GPU_CUDA_PROBE_API_H_ */
