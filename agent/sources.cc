#include "agent/sources.h"

#include <cmath>

#include "disk/disk_sampler.h"
#include "gpu/gpu_sampler.h"
#include "host/cpu_sampler.h"
#include "host/memory_sampler.h"
#include "host/pressure_sampler.h"
#include "network/network_sampler.h"
#include "synthetic/synthetic_sampler.h"

namespace pi0::agent {
namespace {

std::vector<fleet::GpuInfo> gpuFacts(const std::vector<substrates::GpuDeviceInfo>& devices) {
  auto known = [](double v) { return std::isfinite(v) && v > 0 ? std::optional(v) : std::nullopt; };
  std::vector<fleet::GpuInfo> out;
  for (const auto& d : devices) {
    fleet::GpuInfo g;
    g.index = d.index;
    g.name = d.name;
    g.uuid = d.uuid;
    g.memoryTotalBytes = static_cast<std::int64_t>(d.memoryTotalBytes);
    g.smCount = d.smCount;
    g.smClockMHz = d.smClockMHz;
    g.memoryClockMHz = d.memoryClockMHz;
    g.memoryBusWidthBits = d.memoryBusWidthBits;
    g.nominalBandwidthBytesPerSecond = known(d.nominalBandwidthBytesPerSecond);
    g.probeAchievedBytesPerSecond = known(d.lastProbeAchievedBytesPerSecond);
    g.probeRatio = known(d.lastProbeRatio);
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

Result<void> addSources(const Options& options, Collector& collector) {
  if (!options.syntheticFile.empty()) {
    auto synthetic = substrates::SyntheticSampler::create(options.syntheticFile);
    if (!synthetic) return fail("--source synthetic: " + synthetic.error().message);
    collector.addSource(std::move(*synthetic));
    return {};
  }

  const substrates::HostPaths paths{options.hostRoot};
  struct Factory {
    const char* source;
    Result<substrates::SamplerPtr> (*create)(const substrates::HostPaths&);
  };
  const Factory factories[] = {{"cpu", &substrates::CpuSampler::create},
                               {"memory", &substrates::MemorySampler::create},
                               {"psi", &substrates::PressureSampler::create},
                               {"disk", &substrates::DiskSampler::create},
                               {"network", &substrates::NetworkSampler::create}};
  std::string missingReasons;
  for (const auto& f : factories) {
    auto sampler = f.create(paths);
    if (sampler) {
      collector.addSource(std::move(*sampler));
    } else {
      if (!missingReasons.empty()) missingReasons += "; ";
      missingReasons += sampler.error().message;
      collector.addMissing(f.source, sampler.error().message);
    }
  }

  // Not one host source: the host root is wrong (say /host is not mounted), not a node
  // without PSI. Refuse to start, so the mistake shows as a crash loop with this message
  // rather than an agent that is never ready.
  if (collector.sourceCount() == 0) {
    return fail("no host source is readable under --host-root " + options.hostRoot.string() +
                " (is the host's /proc mounted there?): " + missingReasons);
  }

  if (options.nvmlLibrary == "none") {
    collector.addMissing("gpu", "disabled by --nvml-library none");
    return {};
  }
  substrates::GpuOptions gpuOptions;
  gpuOptions.nvmlLibrary = options.nvmlLibrary;
  gpuOptions.probeInterval =
      std::chrono::seconds(static_cast<long>(std::ceil(options.gpuProbeIntervalSeconds)));
  auto gpu = substrates::GpuSampler::create(gpuOptions);
  if (!gpu) {
    collector.addMissing("gpu", gpu.error().message);
    return {};
  }
  const substrates::GpuSampler* gpuSampler = gpu->get();
  collector.setGpuInfo([gpuSampler] { return gpuFacts(gpuSampler->devices()); });
  collector.addSource(std::move(*gpu));
  return {};
}

}  // namespace pi0::agent
