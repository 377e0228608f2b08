#include "agent/agent_metrics.h"

#include <prometheus/family.h>

#include <cstdlib>
#include <limits>

namespace pi0::agent {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& r, const std::string& name,
                                             const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r);
}

}  // namespace

AgentMetrics::AgentMetrics(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()),
      sourceUp_(gauge(*registry_, "pi0_agent_source_up",
                      "Whether a measurement source is available (1) or missing (0).")),
      sampleErrors_(BuildCounter()
                        .Name("pi0_agent_sample_errors_total")
                        .Help("Samples of a source that failed (malformed or unreadable input).")
                        .Register(*registry_)),
      samples_(BuildCounter()
                   .Name("pi0_agent_samples_total")
                   .Help("Sampling rounds taken (one per interval, every source).")
                   .Register(*registry_)
                   .Add({})),
      fingerprintRequests_(BuildCounter()
                               .Name("pi0_agent_fingerprint_requests_total")
                               .Help("GET /fingerprint requests answered with a fingerprint.")
                               .Register(*registry_)
                               .Add({})),
      sampleDuration_(
          BuildHistogram()
              .Name("pi0_agent_sample_duration_seconds")
              .Help("Time to sample every source and recompute every gate.")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
                                                               1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                                                               100e-3})),
      windowFill_(gauge(*registry_, "pi0_agent_window_fill_ratio",
                        "Share of the rolling window filled (the least filled signal).")
                      .Add({})),
      ready_(gauge(*registry_, "pi0_agent_ready", "1 once every signal's window is full.").Add({})),
      stateWrites_(BuildCounter()
                       .Name("pi0_agent_state_writes_total")
                       .Help("Saves of the window to --state-dir, by result.")
                       .Register(*registry_)),
      stateRestored_(gauge(*registry_, "pi0_agent_state_restored",
                           "1 when the window was restored from --state-dir at start.")
                         .Add({})),
      signalRatio_(gauge(*registry_, "pi0_node_signal_ratio",
                         "Latest utilization ratio of a signal, in [0,1].")),
      signalMean_(
          gauge(*registry_, "pi0_node_signal_mean_ratio", "Mean of the signal over the window.")),
      signalStddev_(gauge(*registry_, "pi0_node_signal_stddev_ratio",
                          "Standard deviation of the signal over the window.")),
      lambdaInt_(gauge(*registry_, "pi0_node_gate_lambda_int",
                       "Gate lambda_int: integrated load, the mean of the window.")),
      lambda1_(gauge(*registry_, "pi0_node_gate_lambda1",
                     "Gate lambda1: share of the variation's power in the strongest rhythm.")),
      fitError_(gauge(*registry_, "pi0_node_gate_fit_error",
                      "Gate fit_error: RMS residual of DC plus the 4 strongest rhythms.")),
      gluingDelta_(gauge(*registry_, "pi0_node_gate_gluing_delta",
                         "Gate gluing_delta: disagreement of the window's two halves.")),
      isolation_(gauge(*registry_, "pi0_node_gate_isolation",
                       "Gate isolation: headroom left after the projected peak, in [0,1].")),
      projectedPeak_(gauge(*registry_, "pi0_node_projected_peak_ratio",
                           "Forecast of the signal's highest value over the horizon "
                           "(docs/forecast.md).")),
      period_(gauge(*registry_, "pi0_node_signal_dominant_period_seconds",
                    "Period of the strongest rhythm; 0 when the window is flat.")),
      entropy_(gauge(*registry_, "pi0_node_signal_spectral_entropy",
                     "Spectral entropy of the window, normalized to [0,1].")),
      secondsToTrouble_(gauge(*registry_, "pi0_node_seconds_to_trouble",
                              "Early warning: seconds until the signal's forecast crosses its "
                              "trouble line (saturation; the pressure line for PSI); 0 = at or "
                              "over it now; +Inf = not expected.")),
      trend_(gauge(*registry_, "pi0_node_forecast_trend_ratio_per_second",
                   "The signal's steady rising trend, ratio per second; 0 when none.")),
      memoryTotal_(gauge(*registry_, "pi0_node_memory_total_bytes", "MemTotal of the node.")),
      memoryAvailable_(
          gauge(*registry_, "pi0_node_memory_available_bytes", "MemAvailable of the node.")),
      linkSpeed_(gauge(*registry_, "pi0_node_network_link_speed_bytes_per_second",
                       "Link speed of a network interface.")),
      gpuTemperature_(gauge(*registry_, "pi0_node_gpu_temperature_celsius", "GPU temperature.")),
      gpuPower_(gauge(*registry_, "pi0_node_gpu_power_watts", "GPU power draw.")),
      gpuMemoryUsed_(gauge(*registry_, "pi0_node_gpu_memory_used_bytes", "GPU memory in use.")),
      gpuMemoryTotal_(gauge(*registry_, "pi0_node_gpu_memory_total_bytes", "GPU memory size.")),
      gpuXidErrors_(BuildCounter()
                        .Name("pi0_node_gpu_xid_errors_total")
                        .Help("XID critical errors reported by the GPU driver.")
                        .Register(*registry_)),
      gpuProbeRatio_(gauge(*registry_, "pi0_node_gpu_probe_bandwidth_ratio",
                           "Achieved over nominal memory bandwidth in the last GPU probe.")) {
  gauge(*registry_, "pi0_agent_build_info", "Build information of pi0-agent; always 1.")
      .Add({{"version", std::string(version)}})
      .Set(1);
}

void AgentMetrics::setSourceUp(std::string_view source, bool up) {
  sourceUp_.Add({{"source", std::string(source)}}).Set(up ? 1 : 0);
  // A source that is sampled has its error counter from the start, at 0, so that a rate()
  // sees its first failure.
  if (up) sampleErrors_.Add({{"source", std::string(source)}});
}

void AgentMetrics::countSampleError(std::string_view source) {
  sampleErrors_.Add({{"source", std::string(source)}}).Increment();
}

void AgentMetrics::observeSample(double seconds) {
  samples_.Increment();
  sampleDuration_.Observe(seconds);
}

void AgentMetrics::setWindow(double fill, bool ready) {
  windowFill_.Set(fill);
  ready_.Set(ready ? 1 : 0);
}

void AgentMetrics::countStateWrite(bool ok) {
  stateWrites_.Add({{"result", ok ? "ok" : "error"}}).Increment();
}

void AgentMetrics::setStateRestored(bool restored) {
  stateRestored_.Set(restored ? 1 : 0);
}

void AgentMetrics::setSignal(const std::string& signal, double current,
                             const gate::SignalAnalysis* analysis, double dominantPeriodSeconds,
                             std::optional<double> secondsToTrouble, double intervalSeconds) {
  auto it = signals_.find(signal);
  if (it == signals_.end()) {
    const prometheus::Labels labels{{"signal", signal}};
    it = signals_
             .emplace(signal, SignalSeries{&signalRatio_.Add(labels), &signalMean_.Add(labels),
                                           &signalStddev_.Add(labels), &lambdaInt_.Add(labels),
                                           &lambda1_.Add(labels), &fitError_.Add(labels),
                                           &gluingDelta_.Add(labels), &isolation_.Add(labels),
                                           &projectedPeak_.Add(labels), &period_.Add(labels),
                                           &entropy_.Add(labels), &secondsToTrouble_.Add(labels),
                                           &trend_.Add(labels)})
             .first;
  }
  SignalSeries& s = it->second;
  s.current->Set(current);
  if (!analysis) return;
  s.mean->Set(analysis->mean);
  s.stddev->Set(analysis->stddev);
  s.lambdaInt->Set(analysis->gates.lambdaInt);
  s.lambda1->Set(analysis->gates.lambda1);
  s.fitError->Set(analysis->gates.fitError);
  s.gluingDelta->Set(analysis->gates.gluingDelta);
  s.isolation->Set(analysis->gates.isolation);
  s.projectedPeak->Set(analysis->projectedPeak);
  s.period->Set(dominantPeriodSeconds);
  s.entropy->Set(analysis->entropy);
  s.secondsToTrouble->Set(secondsToTrouble.value_or(std::numeric_limits<double>::infinity()));
  s.trend->Set(analysis->forecast.trendPerSample / intervalSeconds);
}

void AgentMetrics::removeSignal(const std::string& signal) {
  auto it = signals_.find(signal);
  if (it == signals_.end()) return;
  SignalSeries& s = it->second;
  signalRatio_.Remove(s.current);
  signalMean_.Remove(s.mean);
  signalStddev_.Remove(s.stddev);
  lambdaInt_.Remove(s.lambdaInt);
  lambda1_.Remove(s.lambda1);
  fitError_.Remove(s.fitError);
  gluingDelta_.Remove(s.gluingDelta);
  isolation_.Remove(s.isolation);
  projectedPeak_.Remove(s.projectedPeak);
  period_.Remove(s.period);
  entropy_.Remove(s.entropy);
  secondsToTrouble_.Remove(s.secondsToTrouble);
  trend_.Remove(s.trend);
  signals_.erase(it);
}

AgentMetrics::RawSeries AgentMetrics::makeRawSeries(substrates::GaugeKind kind,
                                                    const std::string& device) {
  using substrates::GaugeKind;
  auto gauge = [](prometheus::Family<prometheus::Gauge>& family, const prometheus::Labels& labels) {
    auto* metric = &family.Add(labels);
    return RawSeries{[metric](double v) { metric->Set(v); },
                     [&family, metric] { family.Remove(metric); }};
  };
  const prometheus::Labels gpu{{"gpu", device}};
  switch (kind) {
    case GaugeKind::kMemoryTotalBytes:
      return gauge(memoryTotal_, {});
    case GaugeKind::kMemoryAvailableBytes:
      return gauge(memoryAvailable_, {});
    case GaugeKind::kNetworkLinkSpeedBytesPerSecond:
      return gauge(linkSpeed_, {{"device", device}});
    case GaugeKind::kGpuTemperatureCelsius:
      return gauge(gpuTemperature_, gpu);
    case GaugeKind::kGpuPowerWatts:
      return gauge(gpuPower_, gpu);
    case GaugeKind::kGpuMemoryUsedBytes:
      return gauge(gpuMemoryUsed_, gpu);
    case GaugeKind::kGpuMemoryTotalBytes:
      return gauge(gpuMemoryTotal_, gpu);
    case GaugeKind::kGpuProbeBandwidthRatio:
      return gauge(gpuProbeRatio_, gpu);
    case GaugeKind::kGpuXidErrorsTotal: {
      // The sampler reports a cumulative count; a counter only moves forward by deltas.
      auto* counter = &gpuXidErrors_.Add(gpu);
      return RawSeries{[counter, seen = 0.0](double total) mutable {
                         if (total > seen) counter->Increment(total - seen);
                         seen = total;
                       },
                       [this, counter] { gpuXidErrors_.Remove(counter); }};
    }
  }
  std::abort();  // every GaugeKind is handled above
}

void AgentMetrics::setGauge(const substrates::Gauge& g) {
  auto key = std::make_pair(g.kind, g.device);
  auto it = raw_.find(key);
  if (it == raw_.end()) it = raw_.emplace(key, makeRawSeries(g.kind, g.device)).first;
  it->second.set(g.value);
  it->second.lastRound = round_;
}

void AgentMetrics::endRound() {
  std::erase_if(raw_, [this](auto& entry) {
    if (entry.second.lastRound == round_) return false;
    entry.second.remove();
    return true;
  });
}

}  // namespace pi0::agent
