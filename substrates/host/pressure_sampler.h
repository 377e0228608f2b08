// PressureSampler: Linux pressure stall information (PSI) for cpu, memory and io, from
// <root>/proc/pressure/{cpu,memory,io}.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/files.h"
#include "sampler.h"

namespace pi0::substrates {

// Contract:
// - create() fails with "no PSI: ..." when none of the three files exists (kernel without
//   CONFIG_PSI, or booted with psi=0), and fails naming the file when one that exists is
//   malformed. The files present at create() are the ones sampled from then on.
// - sample() returns, for each of those files, the reading "psi_<resource>" = the `some avg10`
//   percentage / 100 (the share of the last 10 s in which at least one task stalled on it).
//   A bad file is an error value naming it. Not counter-based: `now` is unused.
// - Called by one thread; not thread-safe.
class PressureSampler final : public Sampler {
 public:
  static Result<SamplerPtr> create(const HostPaths& paths);

  std::string_view source() const override { return "psi"; }
  Result<Sample> sample(Clock::time_point now) override;

 private:
  struct Source {
    std::string signal;  // "psi_cpu", "psi_memory", "psi_io"
    KernelFile file;
  };

  explicit PressureSampler(std::vector<Source> sources) : sources_(std::move(sources)) {}

  std::vector<Source> sources_;
};

}  // namespace pi0::substrates
