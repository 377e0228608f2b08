// Collector: one sampling round every interval. It asks every source for a sample, pushes each
// signal into its rolling window, recomputes the gates and the fingerprint, updates the metrics
// and publishes an immutable Snapshot.
// Thread-safety: step(), restore() and windows() belong to the sampling thread; snapshot() may
// be called from any thread.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/agent_metrics.h"
#include "agent/snapshot.h"
#include "gate/spectrum.h"
#include "gate/window.h"
#include "sampler.h"

namespace pi0::agent {

struct CollectorConfig {
  std::string node;
  std::size_t window = 64;
  double intervalSeconds = 1;
  gate::ForecastOptions forecast;
  gate::TroubleLines troubleLines;
};

class Collector {
 public:
  // The metrics object must outlive the collector.
  static Result<std::unique_ptr<Collector>> create(CollectorConfig config, AgentMetrics& metrics);

  // A source that is available.
  void addSource(substrates::SamplerPtr sampler);
  // A source that is not (no PSI, no GPU, no NVML): logged once, exported as
  // pi0_agent_source_up{source} 0 and listed in the fingerprint.
  void addMissing(std::string source, std::string reason);
  // Static GPU facts for the fingerprint, called on the sampling thread.
  void setGpuInfo(std::function<std::vector<fleet::GpuInfo>()> gpuInfo) {
    gpuInfo_ = std::move(gpuInfo);
  }

  std::size_t sourceCount() const { return sources_.size(); }

  void step(substrates::Clock::time_point now, std::chrono::system_clock::time_point wallNow);

  std::shared_ptr<const Snapshot> snapshot() const;

  // Window contents by signal, oldest first: what the state store saves and restores.
  std::map<std::string, std::vector<double>> windows() const;
  // Loads saved windows (each truncated to the newest `window` samples); call before step().
  void restore(const std::map<std::string, std::vector<double>>& saved);

 private:
  struct SourceSlot {
    substrates::SamplerPtr sampler;
    bool failing = false;
  };
  struct SignalSlot {
    explicit SignalSlot(std::size_t n) : window(n) {}
    gate::RollingWindow window;
    std::uint64_t lastRound = 0;
  };

  Collector(CollectorConfig config, AgentMetrics& metrics, gate::SpectrumAnalyzer analyzer);
  SignalSlot& slot(const std::string& signal);
  void publish(std::chrono::system_clock::time_point wallNow);
  // The fingerprint of one signal from its window; updates its metrics.
  fleet::SignalFingerprint fingerprintOf(const std::string& name,
                                         const gate::RollingWindow& window);

  CollectorConfig config_;
  AgentMetrics& metrics_;
  gate::SpectrumAnalyzer analyzer_;
  std::vector<SourceSlot> sources_;
  std::vector<fleet::MissingSource> missing_;
  std::function<std::vector<fleet::GpuInfo>()> gpuInfo_;
  std::map<std::string, SignalSlot, std::less<>> signals_;
  std::vector<double> scratch_;
  std::uint64_t round_ = 0;

  mutable std::mutex snapshotMutex_;
  std::shared_ptr<const Snapshot> snapshot_;  // guarded by snapshotMutex_
};

}  // namespace pi0::agent
