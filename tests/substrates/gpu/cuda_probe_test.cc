// The real libpi0_cuda_probe.so, when it was built (else Skipped): loaded with dlopen and called
// through its C ABI. On a machine without a GPU this checks the real CUDA runtime's answer (an
// error with a message, no crash); on one with a GPU it also checks the properties and a probe.
#include <dlfcn.h>

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fake_state.h"
#include "gpu/cuda_probe_api.h"
#include "gpu/cuda_probe_loader.h"
#include "gpu/gpu_sampler.h"

namespace pi0::substrates {
namespace {

using namespace std::chrono_literals;

#ifdef PI0_CUDA_PROBE_LIBRARY

TEST_CASE("the real CUDA probe library answers through its C ABI without crashing") {
  void* handle = dlopen(PI0_CUDA_PROBE_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  REQUIRE_MESSAGE(handle != nullptr, dlerror());
  auto version =
      reinterpret_cast<pi0_cuda_probe_abi_version_fn>(dlsym(handle, "pi0_cuda_probe_abi_version"));
  auto count = reinterpret_cast<pi0_cuda_device_count_fn>(dlsym(handle, "pi0_cuda_device_count"));
  auto properties =
      reinterpret_cast<pi0_cuda_device_properties_fn>(dlsym(handle, "pi0_cuda_device_properties"));
  auto bandwidth =
      reinterpret_cast<pi0_cuda_bandwidth_probe_fn>(dlsym(handle, "pi0_cuda_bandwidth_probe"));
  REQUIRE(static_cast<bool>(version));
  REQUIRE(static_cast<bool>(count));
  REQUIRE(static_cast<bool>(properties));
  REQUIRE(static_cast<bool>(bandwidth));
  CHECK(version() == PI0_CUDA_PROBE_ABI_VERSION);
  // The statically linked CUDA runtime stays private to the library.
  CHECK(dlsym(handle, "cudaGetDeviceCount") == nullptr);

  std::array<char, 512> err{};
  const int devices = count(err.data(), err.size());
  if (devices <= 0) {
    MESSAGE("no CUDA device here; the runtime said: " << std::string(err.data()));
    CHECK(std::strlen(err.data()) > 0);
    // Asking about a device that is not there is an error too, not a crash.
    pi0_cuda_properties props{};
    std::array<char, 512> err2{};
    CHECK(properties(0, &props, err2.data(), err2.size()) != 0);
    CHECK(std::strlen(err2.data()) > 0);
    double achieved = -1;
    std::array<char, 512> err3{};
    CHECK(bandwidth(0, &achieved, err3.data(), err3.size()) != 0);
    CHECK(achieved == 0);
    CHECK(std::strlen(err3.data()) > 0);
    // A null message buffer is allowed on every path: nothing is written through it.
    CHECK(count(nullptr, 0) <= 0);
    CHECK(properties(0, &props, nullptr, 0) != 0);
    CHECK(bandwidth(0, &achieved, nullptr, 0) != 0);
    return;
  }

  MESSAGE(devices << " CUDA device(s): checking properties and a bandwidth probe on device 0");
  pi0_cuda_properties props{};
  REQUIRE_MESSAGE(properties(0, &props, err.data(), err.size()) == 0, err.data());
  CHECK(props.sm_count > 0);
  CHECK(props.memory_clock_mhz > 0);
  CHECK(props.memory_bus_width_bits > 0);
  CHECK(std::string(props.uuid).starts_with("GPU-"));
  CHECK(props.nominal_bandwidth_bytes_per_second ==
        doctest::Approx(2.0 * props.memory_clock_mhz * 1e6 * props.memory_bus_width_bits / 8)
            .epsilon(0.01));
  double achieved = 0;
  REQUIRE_MESSAGE(bandwidth(0, &achieved, err.data(), err.size()) == 0, err.data());
  MESSAGE("achieved " << achieved / 1e9 << " GB/s of nominal "
                      << props.nominal_bandwidth_bytes_per_second / 1e9 << " GB/s");
  CHECK(achieved > 0.05 * props.nominal_bandwidth_bytes_per_second);
  CHECK(achieved < 1.2 * props.nominal_bandwidth_bytes_per_second);
  // The same probe with no message buffer (buffers at least 4 x L2, so memory is measured).
  achieved = 0;
  CHECK(bandwidth(0, &achieved, nullptr, 0) == 0);
  CHECK(achieved > 0);
}

TEST_CASE("the loader opens the real library and reports the runtime's answer") {
  auto library = CudaProbeLibrary::open(PI0_CUDA_PROBE_LIBRARY);
  REQUIRE_MESSAGE(library, (library ? "" : library.error().message));
  auto count = (*library)->deviceCount();
  if (!count) {
    MESSAGE("deviceCount(): " << count.error().message);
    CHECK_FALSE(count.error().message.empty());
  } else {
    CHECK(*count > 0);
  }
}

TEST_CASE("with the fake NVML and the real probe library, the sampler runs on without CUDA") {
  testing::FakeState state(
      "gpu uuid=GPU-00000000-0000-0000-0000-00000000fa6e util=50 mem_total=100 mem_used=25\n");
  GpuOptions options;
  options.nvmlLibrary = PI0_FAKE_NVML;
  options.probeLibrary = PI0_CUDA_PROBE_LIBRARY;
  options.probeInterval = 1s;
  auto sampler = GpuSampler::create(options);
  REQUIRE_MESSAGE(sampler, (sampler ? "" : sampler.error().message));
  const std::string status = (*sampler)->probeStatus();
  MESSAGE("probe status: " << status);
  // No CUDA device here; on a machine with GPUs, none has the fake's UUID.
  CHECK(status.starts_with("no CUDA device"));
  auto sample = (*sampler)->sample(Clock::now());
  REQUIRE(sample);
  CHECK(testing::reading(*sample, "gpu0_sm") == doctest::Approx(0.5));
  CHECK(testing::gaugeCount(*sample, GaugeKind::kGpuProbeBandwidthRatio) == 0);
}

#else

// Nothing to test: the binary says why and exits 77, which ctest reports as Skipped
// (SKIP_RETURN_CODE), not as Passed.
TEST_CASE("the real CUDA probe library") {
  std::fprintf(stderr, "SKIPPED: %s\n", PI0_CUDA_PROBE_SKIP_REASON);
  std::exit(77);
}

#endif

}  // namespace
}  // namespace pi0::substrates
