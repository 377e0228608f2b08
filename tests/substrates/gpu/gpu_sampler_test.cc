// GpuSampler against the FAKE NVML and FAKE CUDA probe libraries (fake_nvml.c,
// fake_cuda_probe.c): every expected value below is one written into the fakes' state file.
#include "gpu/gpu_sampler.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "fake_state.h"
#include "gpu/cuda_probe_loader.h"

namespace pi0::substrates {
namespace {

using namespace std::chrono_literals;
using testing::FakeHooks;
using testing::FakeState;
using testing::gauge;
using testing::gaugeCount;
using testing::reading;

// Two GPUs: 37 % busy with 10 of 40 GiB used, and 100 % busy with 60 of 80 GiB used.
constexpr std::string_view kTwoGpus = R"(# two healthy GPUs
gpu name="Fake A100 40GB" uuid=GPU-00000000-1111-2222-3333-444444444444 util=37 mem_total=42949672960 mem_used=10737418240 temp=61 power_mw=215500 xid=0
gpu name="Fake H100" uuid=GPU-55555555-6666-7777-8888-999999999999 util=100 mem_total=85899345920 mem_used=64424509440 temp=74 power_mw=700000 xid=0
)";

GpuOptions fakeOptions(const char* nvml = PI0_FAKE_NVML) {
  GpuOptions options;
  options.nvmlLibrary = nvml;
  options.probeInterval = 0s;
  return options;
}

// Captures log lines while alive.
class LogCapture {
 public:
  LogCapture() {
    log::setSink([this](std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::setSink({}); }
  int count(std::string_view a, std::string_view b = {}) {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const std::string& l : lines_) {
      n += l.find(a) != std::string::npos && l.find(b) != std::string::npos ? 1 : 0;
    }
    return n;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

const Clock::time_point kT0 = Clock::time_point{} + 1000h;

TEST_CASE("two fake GPUs give the state file's signals and gauges") {
  FakeState state(kTwoGpus);
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE_MESSAGE(sampler, (sampler ? "" : sampler.error().message));
  CHECK((*sampler)->source() == "gpu");

  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK(sample->readings.size() == 4);
  CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.37));
  CHECK(reading(*sample, "gpu0_memory") == doctest::Approx(0.25));
  CHECK(reading(*sample, "gpu1_sm") == doctest::Approx(1.0));
  CHECK(reading(*sample, "gpu1_memory") == doctest::Approx(0.75));

  CHECK(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "0") == 61);
  CHECK(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "1") == 74);
  CHECK(gauge(*sample, GaugeKind::kGpuPowerWatts, "0") == doctest::Approx(215.5));
  CHECK(gauge(*sample, GaugeKind::kGpuPowerWatts, "1") == doctest::Approx(700.0));
  CHECK(gauge(*sample, GaugeKind::kGpuMemoryUsedBytes, "0") == 10737418240.0);
  CHECK(gauge(*sample, GaugeKind::kGpuMemoryTotalBytes, "0") == 42949672960.0);
  CHECK(gauge(*sample, GaugeKind::kGpuMemoryUsedBytes, "1") == 64424509440.0);
  CHECK(gauge(*sample, GaugeKind::kGpuMemoryTotalBytes, "1") == 85899345920.0);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0") == 0);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 0);
  CHECK(gaugeCount(*sample, GaugeKind::kGpuProbeBandwidthRatio) == 0);

  const std::vector<GpuDeviceInfo> devices = (*sampler)->devices();
  REQUIRE(devices.size() == 2);
  CHECK(devices[0].index == 0);
  CHECK(devices[0].name == "Fake A100 40GB");
  CHECK(devices[0].uuid == "GPU-00000000-1111-2222-3333-444444444444");
  CHECK(devices[0].memoryTotalBytes == 42949672960ULL);
  CHECK(devices[1].index == 1);
  CHECK(devices[1].name == "Fake H100");
  CHECK(devices[1].memoryTotalBytes == 85899345920ULL);
  CHECK(devices[1].smCount == 0);
  CHECK(std::isnan(devices[1].lastProbeRatio));
  CHECK((*sampler)->probeStatus() == "disabled");

  // Values are read afresh on every sample.
  state.write(R"(gpu name=A uuid=GPU-a util=5 mem_total=1000 mem_used=100 temp=40 power_mw=50000
gpu name=B uuid=GPU-b util=0 mem_total=1000 mem_used=0 temp=35 power_mw=30000
)");
  sample = (*sampler)->sample(kT0 + 1s);
  REQUIRE(sample);
  CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.05));
  CHECK(reading(*sample, "gpu0_memory") == doctest::Approx(0.1));
  CHECK(reading(*sample, "gpu1_sm") == 0);
  CHECK(gauge(*sample, GaugeKind::kGpuPowerWatts, "1") == doctest::Approx(30.0));
}

TEST_CASE("XID critical errors are counted from the sampler's start, without re-counting") {
  FakeState state(R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 temp=30 power_mw=1000 xid=3
gpu uuid=GPU-b util=1 mem_total=100 mem_used=1 temp=30 power_mw=1000 xid=0
)");
  LogCapture logs;
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);

  // The 3 errors gpu0 had before the sampler started are not events it saw.
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0") == 0);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 0);

  state.write(
      R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 temp=30 power_mw=1000 xid=5 xid_code=48
gpu uuid=GPU-b util=1 mem_total=100 mem_used=1 temp=30 power_mw=1000 xid=1 xid_code=79
)");
  sample = (*sampler)->sample(kT0 + 1s);
  REQUIRE(sample);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0") == 2);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 1);
  CHECK(logs.count("gpu xid error", "\"xid\":48") == 2);
  CHECK(logs.count("gpu xid error", "\"xid\":79") == 1);

  sample = (*sampler)->sample(kT0 + 2s);  // nothing new
  REQUIRE(sample);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0") == 2);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 1);

  state.write(R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 temp=30 power_mw=1000 xid=9
gpu uuid=GPU-b util=1 mem_total=100 mem_used=1 temp=30 power_mw=1000 xid=1
)");
  sample = (*sampler)->sample(kT0 + 3s);
  REQUIRE(sample);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0") == 6);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 1);
}

TEST_CASE("values NVML does not support are omitted, not errors") {
  FakeState state(
      R"(gpu uuid=GPU-a util=20 mem_total=1000 mem_used=500 temp=NOT_SUPPORTED power_mw=NOT_SUPPORTED events=NOT_SUPPORTED
gpu uuid=GPU-b util=NOT_SUPPORTED mem_total=NOT_SUPPORTED temp=55 power_mw=80000
)");
  LogCapture logs;
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);

  CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.2));
  CHECK(reading(*sample, "gpu0_memory") == doctest::Approx(0.5));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "0"));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuPowerWatts, "0"));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0"));  // registration unsupported

  CHECK_FALSE(reading(*sample, "gpu1_sm"));
  CHECK_FALSE(reading(*sample, "gpu1_memory"));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuMemoryUsedBytes, "1"));
  CHECK(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "1") == 55);
  CHECK(gauge(*sample, GaugeKind::kGpuPowerWatts, "1") == doctest::Approx(80.0));
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 0);
  CHECK(logs.count("gpu device error") == 0);
}

TEST_CASE("a library without the optional functions works with what it has") {
  FakeHooks hooks(PI0_FAKE_NVML_PARTIAL);  // no power, no events, no nvmlErrorString
  FakeState state(R"(gpu uuid=GPU-a util=42 mem_total=200 mem_used=50 temp=66 power_mw=90000 xid=0
)");
  auto sampler = GpuSampler::create(fakeOptions(PI0_FAKE_NVML_PARTIAL));
  REQUIRE(sampler);
  state.write(R"(gpu uuid=GPU-a util=42 mem_total=200 mem_used=50 temp=66 power_mw=90000 xid=4
)");
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.42));
  CHECK(reading(*sample, "gpu0_memory") == doctest::Approx(0.25));
  CHECK(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "0") == 66);
  CHECK(gaugeCount(*sample, GaugeKind::kGpuPowerWatts) == 0);
  CHECK(gaugeCount(*sample, GaugeKind::kGpuXidErrorsTotal) == 0);

  // Without nvmlErrorString an error is still named.
  state.write("init=DRIVER_NOT_LOADED\n");
  auto failed = GpuSampler::create(fakeOptions(PI0_FAKE_NVML_PARTIAL));
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message.find("NVML_ERROR_DRIVER_NOT_LOADED") != std::string::npos);
}

TEST_CASE("a lost GPU is reported once while the other keeps reporting, and it may come back") {
  FakeState state(kTwoGpus);
  LogCapture logs;
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  REQUIRE((*sampler)->sample(kT0));

  state.write(
      R"(gpu uuid=GPU-a util=37 mem_total=42949672960 mem_used=10737418240 temp=61 power_mw=215500 xid=0
gpu uuid=GPU-b util=GPU_IS_LOST mem_total=GPU_IS_LOST temp=GPU_IS_LOST power_mw=GPU_IS_LOST xid=1
)");
  for (int i = 1; i <= 3; ++i) {
    auto sample = (*sampler)->sample(kT0 + i * 1s);
    REQUIRE(sample);
    CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.37));
    CHECK(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "0") == 61);
    CHECK_FALSE(reading(*sample, "gpu1_sm"));
    CHECK_FALSE(reading(*sample, "gpu1_memory"));
    CHECK_FALSE(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "1"));
    // The XID that came with the loss is still exported for the lost GPU.
    CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 1);
  }
  CHECK(logs.count("gpu device error", "NVML_ERROR_GPU_IS_LOST") == 1);
  CHECK(logs.count("gpu device error", "\"gpu\":1") == 1);
  CHECK(logs.count("gpu device error", "\"gpu\":0") == 0);

  // Every GPU lost: the sample is an error naming each.
  state.write(
      R"(gpu uuid=GPU-a util=GPU_IS_LOST mem_total=GPU_IS_LOST temp=GPU_IS_LOST power_mw=GPU_IS_LOST
gpu uuid=GPU-b util=GPU_IS_LOST mem_total=GPU_IS_LOST temp=GPU_IS_LOST power_mw=GPU_IS_LOST
)");
  auto all = (*sampler)->sample(kT0 + 4s);
  REQUIRE_FALSE(all);
  CHECK(all.error().message.find("gpu0") != std::string::npos);
  CHECK(all.error().message.find("gpu1") != std::string::npos);
  CHECK(all.error().message.find("NVML_ERROR_GPU_IS_LOST") != std::string::npos);

  state.write(kTwoGpus);
  auto back = (*sampler)->sample(kT0 + 5s);
  REQUIRE(back);
  CHECK(reading(*back, "gpu1_sm") == doctest::Approx(1.0));
  CHECK(logs.count("gpu device recovered") == 2);
}

TEST_CASE("a GPU whose handle cannot be had at start is retried on each sample") {
  FakeState state(R"(gpu uuid=GPU-a util=10 mem_total=100 mem_used=10 temp=30 power_mw=1000
gpu uuid=GPU-b handle=GPU_IS_LOST util=20 mem_total=100 mem_used=20 temp=31 power_mw=2000
)");
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  CHECK((*sampler)->devices()[1].uuid.empty());
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.1));
  CHECK_FALSE(reading(*sample, "gpu1_sm"));

  state.write(R"(gpu uuid=GPU-a util=10 mem_total=100 mem_used=10 temp=30 power_mw=1000
gpu uuid=GPU-b util=20 mem_total=100 mem_used=20 temp=31 power_mw=2000
)");
  sample = (*sampler)->sample(kT0 + 1s);
  REQUIRE(sample);
  CHECK(reading(*sample, "gpu1_sm") == doctest::Approx(0.2));
  CHECK((*sampler)->devices()[1].uuid == "GPU-b");
}

TEST_CASE("create() fails with a message that says why") {
  FakeHooks hooks(PI0_FAKE_NVML);
  REQUIRE(hooks.loaded());

  SUBCASE("nvmlInit fails: no driver") {
    FakeState state("init=DRIVER_NOT_LOADED\ngpu uuid=GPU-a util=1\n");
    const int inits = hooks.call("pi0_fake_nvml_init_count");
    REQUIRE(inits >= 0);
    auto sampler = GpuSampler::create(fakeOptions());
    REQUIRE_FALSE(sampler);
    const std::string& m = sampler.error().message;
    CHECK(m.find("nvmlInit_v2") != std::string::npos);
    CHECK(m.find("NVML_ERROR_DRIVER_NOT_LOADED (Driver Not Loaded)") != std::string::npos);
    CHECK(hooks.call("pi0_fake_nvml_init_count") == inits);
  }
  SUBCASE("zero GPUs") {
    FakeState state("count=0\n");
    const int shutdowns = hooks.call("pi0_fake_nvml_shutdown_count");
    REQUIRE(shutdowns >= 0);
    auto sampler = GpuSampler::create(fakeOptions());
    REQUIRE_FALSE(sampler);
    CHECK(sampler.error().message.find("no GPU") != std::string::npos);
    CHECK(hooks.call("pi0_fake_nvml_shutdown_count") == shutdowns + 1);  // NVML was shut down
  }
  SUBCASE("the device count fails") {
    FakeState state("count=UNKNOWN\ngpu uuid=GPU-a\n");
    auto sampler = GpuSampler::create(fakeOptions());
    REQUIRE_FALSE(sampler);
    CHECK(sampler.error().message.find("nvmlDeviceGetCount_v2") != std::string::npos);
    CHECK(sampler.error().message.find("NVML_ERROR_UNKNOWN") != std::string::npos);
  }
  SUBCASE("a library that does not exist") {
    FakeState state(kTwoGpus);
    const std::string missing = (state.dir() / "no-such-libnvidia-ml.so.1").string();
    auto sampler = GpuSampler::create(fakeOptions(missing.c_str()));
    REQUIRE_FALSE(sampler);
    CHECK(sampler.error().message.find("cannot load the NVML library") != std::string::npos);
    CHECK(sampler.error().message.find(missing) != std::string::npos);
  }
  SUBCASE("a library without a required function") {
    FakeState state(kTwoGpus);
    auto sampler = GpuSampler::create(fakeOptions(PI0_FAKE_NVML_BROKEN));
    REQUIRE_FALSE(sampler);
    CHECK(sampler.error().message.find("nvmlDeviceGetHandleByIndex_v2") != std::string::npos);
  }
}

TEST_CASE("the real NVML on this machine: create() either works or fails cleanly") {
  GpuOptions options;  // libnvidia-ml.so.1
  options.probeInterval = 0s;
  auto sampler = GpuSampler::create(options);
  if (!sampler) {
    MESSAGE("real NVML unavailable, as expected without a GPU: " << sampler.error().message);
    CHECK(sampler.error().message.find("libnvidia-ml.so.1") != std::string::npos);
    return;
  }
  MESSAGE("real NVML found " << (*sampler)->devices().size() << " GPU(s)");
  CHECK_FALSE((*sampler)->devices().empty());
  CHECK((*sampler)->sample(Clock::now()));
}

TEST_CASE("the destructor shuts NVML down") {
  FakeHooks hooks(PI0_FAKE_NVML);
  REQUIRE(hooks.loaded());
  FakeState state(kTwoGpus);
  const int inits = hooks.call("pi0_fake_nvml_init_count");
  const int shutdowns = hooks.call("pi0_fake_nvml_shutdown_count");
  REQUIRE(inits >= 0);
  REQUIRE(shutdowns >= 0);
  {
    auto sampler = GpuSampler::create(fakeOptions());
    REQUIRE(sampler);
    CHECK(hooks.call("pi0_fake_nvml_init_count") == inits + 1);
    CHECK(hooks.call("pi0_fake_nvml_shutdown_count") == shutdowns);
  }
  CHECK(hooks.call("pi0_fake_nvml_shutdown_count") == shutdowns + 1);
}

// The fake probe lists the GPUs in the opposite order to NVML: matching is by UUID.
// gpu0: 1.24416e12 of 1.5552e12 B/s (0.8); gpu1: 2.51424e12 of 3.35232e12 B/s (0.75).
constexpr std::string_view kProbedGpus =
    R"(gpu name=A uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 util=10 mem_total=85899345920 mem_used=10 temp=30 power_mw=1000
gpu name=B uuid=GPU-bbbbbbbb-0000-0000-0000-000000000000 util=20 mem_total=85899345920 mem_used=20 temp=31 power_mw=2000
cuda uuid=GPU-bbbbbbbb-0000-0000-0000-000000000000 sm=132 sm_clock=1980 mem_clock=2619 bus=5120 nominal=3352320000000 achieved=2514240000000
cuda uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 sm=108 sm_clock=1410 mem_clock=1215 bus=5120 nominal=1555200000000 achieved=1244160000000
)";

GpuOptions probedOptions(std::chrono::seconds interval = 300s) {
  GpuOptions options = fakeOptions();
  options.probeLibrary = PI0_FAKE_CUDA_PROBE;
  options.probeInterval = interval;
  return options;
}

TEST_CASE("the probe runs on the first sample, then at most once per interval") {
  FakeState state(kProbedGpus);
  FakeHooks probeHooks(PI0_FAKE_CUDA_PROBE);
  REQUIRE(probeHooks.loaded());
  auto sampler = GpuSampler::create(probedOptions());
  REQUIRE(sampler);
  CHECK((*sampler)->probeStatus() == "pending");

  std::vector<GpuDeviceInfo> devices = (*sampler)->devices();
  REQUIRE(devices.size() == 2);
  CHECK(devices[0].smCount == 108);
  CHECK(devices[0].smClockMHz == 1410);
  CHECK(devices[0].memoryClockMHz == 1215);
  CHECK(devices[0].memoryBusWidthBits == 5120);
  CHECK(devices[0].nominalBandwidthBytesPerSecond == 1555200000000.0);
  CHECK(devices[1].smCount == 132);
  CHECK(devices[1].nominalBandwidthBytesPerSecond == 3352320000000.0);
  CHECK(std::isnan(devices[0].lastProbeRatio));

  const int runs = probeHooks.call("pi0_fake_cuda_probe_runs");
  REQUIRE(runs >= 0);
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 2);
  CHECK((*sampler)->probeStatus() == "ok");
  CHECK(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "0") == doctest::Approx(0.8));
  CHECK(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "1") == doctest::Approx(0.75));
  devices = (*sampler)->devices();
  CHECK(devices[0].lastProbeAchievedBytesPerSecond == 1244160000000.0);
  CHECK(devices[0].lastProbeRatio == doctest::Approx(0.8));

  // New results are not picked up before the interval has passed...
  state.write(
      R"(gpu name=A uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 util=10 mem_total=85899345920 mem_used=10 temp=30 power_mw=1000
gpu name=B uuid=GPU-bbbbbbbb-0000-0000-0000-000000000000 util=20 mem_total=85899345920 mem_used=20 temp=31 power_mw=2000
cuda uuid=GPU-bbbbbbbb-0000-0000-0000-000000000000 sm=132 nominal=3352320000000 achieved=FAIL
cuda uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 sm=108 nominal=1555200000000 achieved=777600000000
)");
  sample = (*sampler)->sample(kT0 + 299s);
  REQUIRE(sample);
  CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 2);
  CHECK(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "0") == doctest::Approx(0.8));

  // ...and are once it has.
  sample = (*sampler)->sample(kT0 + 300s);
  REQUIRE(sample);
  CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 4);
  CHECK(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "0") == doctest::Approx(0.5));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "1"));  // that probe failed
  CHECK((*sampler)->probeStatus().starts_with("failed: gpu1: fake CUDA: probe kernel failed"));
  CHECK(std::isnan((*sampler)->devices()[1].lastProbeRatio));
}

TEST_CASE("the probe's status says why it is not running") {
  FakeHooks probeHooks(PI0_FAKE_CUDA_PROBE);
  REQUIRE(probeHooks.loaded());

  SUBCASE("interval 0 disables it") {
    FakeState state(kProbedGpus);
    const int runs = probeHooks.call("pi0_fake_cuda_probe_runs");
    REQUIRE(runs >= 0);
    auto sampler = GpuSampler::create(probedOptions(0s));
    REQUIRE(sampler);
    CHECK((*sampler)->probeStatus() == "disabled");
    auto sample = (*sampler)->sample(kT0);
    REQUIRE(sample);
    CHECK(gaugeCount(*sample, GaugeKind::kGpuProbeBandwidthRatio) == 0);
    CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs);
    CHECK((*sampler)->devices()[0].smCount == 0);
  }
  SUBCASE("no library next to the executable") {
    FakeState state(kProbedGpus);
    GpuOptions options = probedOptions();
    options.probeLibrary.clear();
    auto sampler = GpuSampler::create(options);
    REQUIRE(sampler);
    CHECK((*sampler)->probeStatus() == "library not built");
  }
  SUBCASE("a configured library that does not exist") {
    FakeState state(kProbedGpus);
    GpuOptions options = probedOptions();
    options.probeLibrary = (state.dir() / "libpi0_cuda_probe.so").string();
    auto sampler = GpuSampler::create(options);
    REQUIRE(sampler);
    CHECK((*sampler)->probeStatus().starts_with("library load failed: "));
    CHECK((*sampler)->sample(kT0));
  }
  SUBCASE("a library of another ABI version") {
    FakeState state(std::string(kProbedGpus) + "cuda_abi=99\n");
    auto sampler = GpuSampler::create(probedOptions());
    REQUIRE(sampler);
    CHECK((*sampler)->probeStatus().starts_with("library load failed: "));
    CHECK((*sampler)->probeStatus().find("ABI version 99") != std::string::npos);
  }
  SUBCASE("no CUDA device") {
    FakeState state(std::string(kProbedGpus) + "cuda_count=0\n");
    auto sampler = GpuSampler::create(probedOptions());
    REQUIRE(sampler);
    CHECK((*sampler)->probeStatus() == "no CUDA device: fake CUDA: no CUDA device");
  }
  SUBCASE("CUDA devices that are not NVML's GPUs") {
    FakeState state(
        R"(gpu uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 util=10 mem_total=100 mem_used=10
cuda uuid=GPU-cccccccc-0000-0000-0000-000000000000 sm=1 nominal=1 achieved=1
)");
    const int runs = probeHooks.call("pi0_fake_cuda_probe_runs");
    REQUIRE(runs >= 0);
    auto sampler = GpuSampler::create(probedOptions());
    REQUIRE(sampler);
    CHECK((*sampler)->probeStatus() == "no CUDA device matches an NVML GPU");
    REQUIRE((*sampler)->sample(kT0));
    CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs);
  }
}

TEST_CASE("without a GPU the probe library is never opened") {
  FakeHooks probeHooks(PI0_FAKE_CUDA_PROBE);
  REQUIRE(probeHooks.loaded());
  const int opens = probeHooks.call("pi0_fake_cuda_probe_opens");
  REQUIRE(opens >= 0);
  {
    FakeState state(std::string("count=0\n") + std::string(kProbedGpus));
    CHECK_FALSE(GpuSampler::create(probedOptions()));
  }
  {
    FakeState state(std::string("init=DRIVER_NOT_LOADED\n") + std::string(kProbedGpus));
    CHECK_FALSE(GpuSampler::create(probedOptions()));
  }
  CHECK(probeHooks.call("pi0_fake_cuda_probe_opens") == opens);
  // The same state with GPUs does open it: the hook counts what it should.
  FakeState state(kProbedGpus);
  CHECK(GpuSampler::create(probedOptions()));
  CHECK(probeHooks.call("pi0_fake_cuda_probe_opens") == opens + 1);
}

TEST_CASE("devices() and probeStatus() may be read while the sampling thread samples") {
  FakeState state(kProbedGpus);
  auto sampler = GpuSampler::create(probedOptions(1s));
  REQUIRE(sampler);
  std::atomic<bool> stop{false};
  std::atomic<int> wrongSizes{0};
  std::thread reader([&] {
    while (!stop.load()) {
      if ((*sampler)->devices().size() != 2) ++wrongSizes;
      if ((*sampler)->probeStatus().empty()) ++wrongSizes;
    }
  });
  for (int i = 0; i < 200; ++i)
    REQUIRE((*sampler)->sample(kT0 + i * 1s));
  stop = true;
  reader.join();
  CHECK(wrongSizes.load() == 0);
  CHECK((*sampler)->devices()[1].lastProbeRatio == doctest::Approx(0.75));
}

TEST_CASE("the probe skips a GPU in a non-default compute mode or with little free memory") {
  FakeHooks probeHooks(PI0_FAKE_CUDA_PROBE);
  REQUIRE(probeHooks.loaded());
  const int runs = probeHooks.call("pi0_fake_cuda_probe_runs");
  REQUIRE(runs >= 0);

  SUBCASE("EXCLUSIVE_PROCESS (or MPS) on one GPU: only the other is probed") {
    std::string contents(kProbedGpus);
    contents.replace(contents.find("util=10"), 7, "util=10 compute_mode=3");
    FakeState state(contents);
    auto sampler = GpuSampler::create(probedOptions());
    REQUIRE(sampler);
    auto sample = (*sampler)->sample(kT0);
    REQUIRE(sample);
    CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 1);
    CHECK_FALSE(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "0"));
    CHECK(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "1") == doctest::Approx(0.75));
    CHECK((*sampler)->probeStatus() == "ok; skipped: gpu0 compute mode is not default (3)");
  }
  SUBCASE("less than 4 GiB free on every GPU: nothing is probed") {
    std::string contents(kProbedGpus);
    contents.replace(contents.find("util=10"), 7, "util=10 mem_free=4294967295");
    contents.replace(contents.find("util=20"), 7, "util=20 mem_free=1073741824");
    FakeState state(contents);
    auto sampler = GpuSampler::create(probedOptions());
    REQUIRE(sampler);
    auto sample = (*sampler)->sample(kT0);
    REQUIRE(sample);
    CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs);
    CHECK(gaugeCount(*sample, GaugeKind::kGpuProbeBandwidthRatio) == 0);
    const std::string status = (*sampler)->probeStatus();
    CHECK(status.starts_with("skipped: gpu0 free memory 4294967295 bytes is below"));
    CHECK(status.find("gpu1 free memory 1073741824") != std::string::npos);
  }
  SUBCASE("an unreadable compute mode is a reason to skip") {
    std::string contents(kProbedGpus);
    contents.replace(contents.find("util=10"), 7, "util=10 compute_mode=NO_PERMISSION");
    FakeState state(contents);
    auto sampler = GpuSampler::create(probedOptions());
    REQUIRE(sampler);
    REQUIRE((*sampler)->sample(kT0));
    CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 1);
    CHECK((*sampler)->probeStatus().find("gpu0 compute mode unreadable") != std::string::npos);
  }
  SUBCASE("an NVML without nvmlDeviceGetComputeMode does not skip for that reason") {
    FakeHooks partial(PI0_FAKE_NVML_PARTIAL);
    std::string contents(kProbedGpus);
    contents.replace(contents.find("util=10"), 7, "util=10 compute_mode=3");
    FakeState state(contents);
    GpuOptions options = probedOptions();
    options.nvmlLibrary = PI0_FAKE_NVML_PARTIAL;
    auto sampler = GpuSampler::create(options);
    REQUIRE(sampler);
    REQUIRE((*sampler)->sample(kT0));
    CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 2);
    CHECK((*sampler)->probeStatus() == "ok");
  }
}

TEST_CASE("a probe ratio above 1.05 of nominal is implausible and not exported") {
  FakeState state(
      R"(gpu name=A uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 util=10 mem_total=85899345920 mem_used=10
cuda uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000 sm=108 nominal=1555200000000 achieved=1710720000000
)");
  auto sampler = GpuSampler::create(probedOptions());
  REQUIRE(sampler);
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuProbeBandwidthRatio, "0"));
  CHECK(std::isnan((*sampler)->devices()[0].lastProbeRatio));
  CHECK((*sampler)->probeStatus().starts_with("failed: gpu0: implausible bandwidth ratio 1.1"));
}

TEST_CASE("a huge probe interval does not overflow: the probe waits for it") {
  FakeState state(kProbedGpus);
  FakeHooks probeHooks(PI0_FAKE_CUDA_PROBE);
  REQUIRE(probeHooks.loaded());
  const int runs = probeHooks.call("pi0_fake_cuda_probe_runs");
  REQUIRE(runs >= 0);
  // 1e10 s is 1e19 ns: beyond a 64-bit count of nanoseconds.
  auto sampler = GpuSampler::create(probedOptions(std::chrono::seconds(10'000'000'000LL)));
  REQUIRE(sampler);
  REQUIRE((*sampler)->sample(kT0));
  CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 2);
  REQUIRE((*sampler)->sample(kT0 + 1s));
  REQUIRE((*sampler)->sample(kT0 + 1000h));
  CHECK(probeHooks.call("pi0_fake_cuda_probe_runs") == runs + 2);
}

TEST_CASE("an unreadable temperature or power is omitted; a device-level error fails the GPU") {
  FakeState state(
      R"(gpu uuid=GPU-a util=10 mem_total=100 mem_used=10 temp=NO_PERMISSION power_mw=UNKNOWN
gpu uuid=GPU-b util=20 mem_total=100 mem_used=20 temp=TIMEOUT power_mw=2000
gpu uuid=GPU-c util=30 mem_total=100 mem_used=30 temp=40 power_mw=RESET_REQUIRED
gpu uuid=GPU-d util=40 mem_total=100 mem_used=40 temp=GPU_IS_LOST power_mw=4000
)");
  LogCapture logs;
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  auto sample = (*sampler)->sample(kT0);
  REQUIRE(sample);
  CHECK(reading(*sample, "gpu0_sm") == doctest::Approx(0.1));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "0"));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuPowerWatts, "0"));
  CHECK(reading(*sample, "gpu1_sm") == doctest::Approx(0.2));
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuTemperatureCelsius, "1"));
  CHECK(gauge(*sample, GaugeKind::kGpuPowerWatts, "1") == doctest::Approx(2.0));
  CHECK_FALSE(reading(*sample, "gpu2_sm"));
  CHECK_FALSE(reading(*sample, "gpu3_sm"));
  CHECK(logs.count("gpu device error", "\"gpu\":0") == 0);
  CHECK(logs.count("gpu device error", "\"gpu\":1") == 0);
  CHECK(logs.count("gpu device error", "NVML_ERROR_RESET_REQUIRED") == 1);
  CHECK(logs.count("gpu device error", "NVML_ERROR_GPU_IS_LOST") == 1);
}

TEST_CASE("the XID wait uses a 1 ms timeout, never 0") {
  FakeHooks hooks(PI0_FAKE_NVML);
  REQUIRE(hooks.loaded());
  FakeState state(kTwoGpus);
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  REQUIRE((*sampler)->sample(kT0));
  CHECK(hooks.call("pi0_fake_nvml_last_wait_timeout") == 1);
}

TEST_CASE("a failing XID wait rebuilds the event set; when that fails the XID gauges go away") {
  FakeHooks hooks(PI0_FAKE_NVML);
  REQUIRE(hooks.loaded());
  FakeState state(R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 xid=0
gpu uuid=GPU-b util=2 mem_total=100 mem_used=2 xid=0
)");
  LogCapture logs;
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  REQUIRE((*sampler)->sample(kT0));
  const int creates = hooks.call("pi0_fake_nvml_event_set_creates");

  // gpu0 fell off the bus: the wait fails (before it gets to gpu1's events), and gpu0 can no
  // longer be registered.
  state.write(R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 xid=GPU_IS_LOST events=GPU_IS_LOST
gpu uuid=GPU-b util=2 mem_total=100 mem_used=2 xid=0
)");
  auto sample = (*sampler)->sample(kT0 + 1s);
  REQUIRE(sample);
  CHECK(hooks.call("pi0_fake_nvml_event_set_creates") == creates + 1);
  CHECK_FALSE(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "0"));
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 0);

  // gpu1's XIDs are still counted.
  state.write(R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 xid=GPU_IS_LOST events=GPU_IS_LOST
gpu uuid=GPU-b util=2 mem_total=100 mem_used=2 xid=2
)");
  sample = (*sampler)->sample(kT0 + 2s);
  REQUIRE(sample);
  CHECK(gauge(*sample, GaugeKind::kGpuXidErrorsTotal, "1") == 2);
  CHECK(logs.count("gpu xid events: giving up") == 0);

  // Now the wait fails and no new set can be made: the gauges go, rather than freeze.
  state.write(R"(event_create=UNKNOWN
gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 xid=GPU_IS_LOST events=GPU_IS_LOST
gpu uuid=GPU-b util=2 mem_total=100 mem_used=2 xid=GPU_IS_LOST
)");
  for (int i = 3; i <= 5; ++i) {
    sample = (*sampler)->sample(kT0 + i * 1s);
    REQUIRE(sample);
    CHECK(gaugeCount(*sample, GaugeKind::kGpuXidErrorsTotal) == 0);
    CHECK(reading(*sample, "gpu1_sm") == doctest::Approx(0.02));
  }
  CHECK(logs.count("gpu xid events: giving up") == 1);
}

TEST_CASE("an XID wait that fails again after the rebuild stops XID counting") {
  FakeState state(R"(gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 xid=0
)");
  LogCapture logs;
  auto sampler = GpuSampler::create(fakeOptions());
  REQUIRE(sampler);
  REQUIRE((*sampler)->sample(kT0));
  // Registration still succeeds, but every wait fails.
  state.write("gpu uuid=GPU-a util=1 mem_total=100 mem_used=1 xid=UNKNOWN\n");
  auto sample = (*sampler)->sample(kT0 + 1s);
  REQUIRE(sample);
  CHECK(gaugeCount(*sample, GaugeKind::kGpuXidErrorsTotal) == 0);
  REQUIRE((*sampler)->sample(kT0 + 2s));
  CHECK(logs.count("gpu xid events: giving up") == 1);
}

TEST_CASE("the CUDA probe library is looked for beside the program, under its own name") {
  CHECK(defaultCudaProbeLibraryPath().filename() == kCudaProbeLibraryName);
}

}  // namespace
}  // namespace pi0::substrates
