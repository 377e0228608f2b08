// Every metric pi0-agent exports, declared in one place. Names follow Prometheus conventions:
// pi0_agent_* describe the agent itself, pi0_node_* the node it measures.
// Thread-safety: prometheus-cpp metrics are thread-safe; the per-label maps here are touched
// only by the sampling thread (the HTTP thread only serializes the registry).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "gate/spectrum.h"
#include "sampler.h"

namespace pi0::agent {

class AgentMetrics {
 public:
  explicit AgentMetrics(std::string_view version);

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> sharedRegistry() { return registry_; }

  // A source that is up (sampled) also gets its pi0_agent_sample_errors_total series, at 0.
  void setSourceUp(std::string_view source, bool up);
  void countSampleError(std::string_view source);
  void observeSample(double seconds);
  void setWindow(double fill, bool ready);
  void countStateWrite(bool ok);
  void setStateRestored(bool restored);
  // A GET /fingerprint answered 200 (pi0_agent_fingerprint_requests_total): how often the
  // fleet reads this agent (once per poll interval with the fleet feed, once per consumer
  // without). Called from the HTTP threads.
  void countFingerprintRequest() { fingerprintRequests_.Increment(); }

  // Current value and, once the window is full, the analysis of one signal and its early
  // warning (seconds until its forecast crosses its trouble line; none: +Inf).
  void setSignal(const std::string& signal, double current, const gate::SignalAnalysis* analysis,
                 double dominantPeriodSeconds, std::optional<double> secondsToTrouble,
                 double intervalSeconds);
  void removeSignal(const std::string& signal);
  // Raw values from the samplers. A round is bracketed by beginRound() and endRound(); a series
  // that was not set during a round (a GPU that is gone, a probe result that was discarded) is
  // removed at its end rather than left showing its last value.
  void beginRound() { ++round_; }
  void setGauge(const substrates::Gauge& gauge);
  void endRound();

 private:
  struct SignalSeries {
    prometheus::Gauge* current;
    prometheus::Gauge* mean;
    prometheus::Gauge* stddev;
    prometheus::Gauge* lambdaInt;
    prometheus::Gauge* lambda1;
    prometheus::Gauge* fitError;
    prometheus::Gauge* gluingDelta;
    prometheus::Gauge* isolation;
    prometheus::Gauge* projectedPeak;
    prometheus::Gauge* period;
    prometheus::Gauge* entropy;
    prometheus::Gauge* secondsToTrouble;
    prometheus::Gauge* trend;
  };

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& sourceUp_;
  prometheus::Family<prometheus::Counter>& sampleErrors_;
  prometheus::Counter& samples_;
  prometheus::Counter& fingerprintRequests_;
  prometheus::Histogram& sampleDuration_;
  prometheus::Gauge& windowFill_;
  prometheus::Gauge& ready_;
  prometheus::Family<prometheus::Counter>& stateWrites_;
  prometheus::Gauge& stateRestored_;

  prometheus::Family<prometheus::Gauge>& signalRatio_;
  prometheus::Family<prometheus::Gauge>& signalMean_;
  prometheus::Family<prometheus::Gauge>& signalStddev_;
  prometheus::Family<prometheus::Gauge>& lambdaInt_;
  prometheus::Family<prometheus::Gauge>& lambda1_;
  prometheus::Family<prometheus::Gauge>& fitError_;
  prometheus::Family<prometheus::Gauge>& gluingDelta_;
  prometheus::Family<prometheus::Gauge>& isolation_;
  prometheus::Family<prometheus::Gauge>& projectedPeak_;
  prometheus::Family<prometheus::Gauge>& period_;
  prometheus::Family<prometheus::Gauge>& entropy_;
  prometheus::Family<prometheus::Gauge>& secondsToTrouble_;
  prometheus::Family<prometheus::Gauge>& trend_;

  prometheus::Family<prometheus::Gauge>& memoryTotal_;
  prometheus::Family<prometheus::Gauge>& memoryAvailable_;
  prometheus::Family<prometheus::Gauge>& linkSpeed_;
  prometheus::Family<prometheus::Gauge>& gpuTemperature_;
  prometheus::Family<prometheus::Gauge>& gpuPower_;
  prometheus::Family<prometheus::Gauge>& gpuMemoryUsed_;
  prometheus::Family<prometheus::Gauge>& gpuMemoryTotal_;
  prometheus::Family<prometheus::Counter>& gpuXidErrors_;
  prometheus::Family<prometheus::Gauge>& gpuProbeRatio_;

  std::map<std::string, SignalSeries, std::less<>> signals_;
  struct RawSeries {
    std::function<void(double)> set;
    std::function<void()> remove;
    std::uint64_t lastRound = 0;
  };
  RawSeries makeRawSeries(substrates::GaugeKind kind, const std::string& device);

  std::map<std::pair<substrates::GaugeKind, std::string>, RawSeries> raw_;
  std::uint64_t round_ = 0;
};

}  // namespace pi0::agent
