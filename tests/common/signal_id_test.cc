#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "common/signal_id.h"

using namespace pi0;
using Kind = SignalId::Kind;

TEST_CASE("every signal name reads as its id and the id spells it back") {
  const struct {
    const char* name;
    SignalId id;
  } cases[] = {
      {"cpu", {Kind::kCpu}},
      {"memory", {Kind::kMemory}},
      {"psi_cpu", {Kind::kPsiCpu}},
      {"psi_memory", {Kind::kPsiMemory}},
      {"psi_io", {Kind::kPsiIo}},
      {"disk", {Kind::kDisk}},
      {"network", {Kind::kNetwork}},
      {"gpu0_sm", {Kind::kGpuSm, 0}},
      {"gpu12_sm", {Kind::kGpuSm, 12}},
      {"gpu7_memory", {Kind::kGpuMemory, 7}},
      {"gpu123456789_sm", {Kind::kGpuSm, 123456789}},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    const std::optional<SignalId> id = SignalId::parse(c.name);
    REQUIRE(id);
    CHECK(*id == c.id);
    CHECK(id->name() == c.name);
    // A fixed name reads the same without a string built; a GPU signal has none.
    CHECK(id->fixedName() == (id->isGpu() ? std::string_view() : std::string_view(c.name)));
  }
}

TEST_CASE("text that only looks like a signal is none") {
  for (const char* name : {"", "CPU", "cpu2", "psi", "psi_gpu", "psi_", "gpu", "gpu_sm", "gpux_sm",
                           "gpu01_sm", "gpu0_", "gpu0_smx", "gpu0_mem", "gpu-1_sm", "gpu+1_sm",
                           "gpu1234567890_sm", " cpu", "disk_sda_util"}) {
    CAPTURE(std::string(name));
    CHECK_FALSE(SignalId::parse(name));
  }
}

TEST_CASE("pressure signals, GPU signals and the signals of a resource") {
  CHECK(SignalId{Kind::kPsiIo}.isPressure());
  CHECK(SignalId{Kind::kPsiMemory}.isPressure());
  CHECK_FALSE(SignalId{Kind::kCpu}.isPressure());
  CHECK_FALSE(SignalId::gpuSm(0).isPressure());
  CHECK(SignalId::gpuSm(3).isGpu());
  CHECK(SignalId{Kind::kGpuMemory, 1}.isGpu());
  CHECK_FALSE(SignalId{Kind::kNetwork}.isGpu());

  CHECK(utilizationSignal(Resource::kCpu).name() == "cpu");
  CHECK(utilizationSignal(Resource::kMemory).name() == "memory");
  CHECK(utilizationSignal(Resource::kGpu, 2).name() == "gpu2_sm");
  CHECK(pressureSignal(Resource::kCpu)->name() == "psi_cpu");
  CHECK(pressureSignal(Resource::kMemory)->name() == "psi_memory");
  CHECK_FALSE(pressureSignal(Resource::kGpu));
}
