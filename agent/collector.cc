#include "agent/collector.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>

#include "common/log.h"

namespace pi0::agent {

Result<std::unique_ptr<Collector>> Collector::create(CollectorConfig config,
                                                     AgentMetrics& metrics) {
  if (config.intervalSeconds <= 0) return fail("the sampling interval must be positive");
  config.forecast.intervalSeconds = config.intervalSeconds;
  auto analyzer = gate::SpectrumAnalyzer::create(config.window, 4, config.forecast);
  if (!analyzer) return fail("window: " + analyzer.error().message);
  return std::unique_ptr<Collector>(
      new Collector(std::move(config), metrics, std::move(*analyzer)));
}

Collector::Collector(CollectorConfig config, AgentMetrics& metrics, gate::SpectrumAnalyzer analyzer)
    : config_(std::move(config)),
      metrics_(metrics),
      analyzer_(std::move(analyzer)),
      scratch_(config_.window) {
  fleet::NodeFingerprint first;
  first.node = config_.node;
  first.intervalSeconds = config_.intervalSeconds;
  first.windowSize = static_cast<std::int64_t>(config_.window);
  first.timestamp = std::chrono::system_clock::now();
  snapshot_ = std::make_shared<const Snapshot>(std::move(first));
}

void Collector::addSource(substrates::SamplerPtr sampler) {
  metrics_.setSourceUp(sampler->source(), true);
  sources_.push_back(SourceSlot{std::move(sampler)});
}

void Collector::addMissing(std::string source, std::string reason) {
  log::warn("measurement source missing; its signals are not reported",
            {{"source", source}, {"reason", reason}});
  metrics_.setSourceUp(source, false);
  missing_.push_back(fleet::MissingSource{std::move(source), std::move(reason)});
}

Collector::SignalSlot& Collector::slot(const std::string& signal) {
  auto it = signals_.find(signal);
  if (it == signals_.end()) it = signals_.emplace(signal, SignalSlot(config_.window)).first;
  return it->second;
}

void Collector::step(substrates::Clock::time_point now,
                     std::chrono::system_clock::time_point wallNow) {
  const auto started = substrates::Clock::now();
  ++round_;
  metrics_.beginRound();
  for (auto& src : sources_) {
    auto sample = src.sampler->sample(now);
    if (!sample) {
      metrics_.countSampleError(src.sampler->source());
      // Log the transition into failure once, not every interval.
      if (!src.failing) {
        log::warn("sampling failed",
                  {{"source", src.sampler->source()}, {"error", sample.error().message}});
      }
      src.failing = true;
      continue;
    }
    if (src.failing) log::info("sampling recovered", {{"source", src.sampler->source()}});
    src.failing = false;
    for (const auto& reading : sample->readings) {
      if (!std::isfinite(reading.ratio)) continue;
      SignalSlot& s = slot(reading.signal);
      s.window.push(std::clamp(reading.ratio, 0.0, 1.0));
      s.lastRound = round_;
    }
    for (const auto& gauge : sample->gauges)
      metrics_.setGauge(gauge);
  }
  metrics_.endRound();
  // A signal whose source stopped reporting it (a lost GPU, an unplugged NIC) is dropped once
  // its whole window is out of date, so no decision rests on old data.
  for (auto it = signals_.begin(); it != signals_.end();) {
    if (round_ - it->second.lastRound > config_.window) {
      log::warn("signal no longer reported; dropped", {{"signal", it->first}});
      metrics_.removeSignal(it->first);
      it = signals_.erase(it);
    } else {
      ++it;
    }
  }
  publish(wallNow);
  metrics_.observeSample(std::chrono::duration<double>(substrates::Clock::now() - started).count());
}

namespace {

double clip01(double v) {
  return std::clamp(v, 0.0, 1.0);
}

// The forecast path of an analyzed window, in seconds (fingerprint.h, SignalForecast).
fleet::SignalForecast forecastOf(const gate::SignalAnalysis& a, double current, double troubleLine,
                                 const CollectorConfig& config) {
  const gate::Forecast& f = a.forecast;
  fleet::SignalForecast out;
  out.horizonSeconds = static_cast<double>(config.forecast.horizon) * config.intervalSeconds;
  out.base = clip01(f.base);
  out.trendStart = clip01(f.trendStart);
  out.trendPerSecond = f.trendPerSample / config.intervalSeconds;
  out.noise = f.noise;
  out.troubleLine = troubleLine;
  if (auto samples = f.samplesUntil(troubleLine))
    out.secondsToTrouble = *samples * config.intervalSeconds;
  out.stallRate = f.stallRate;
  out.pressureNow = current;
  return out;
}

}  // namespace

fleet::SignalFingerprint Collector::fingerprintOf(const std::string& name,
                                                  const gate::RollingWindow& window) {
  fleet::SignalFingerprint out;
  out.samples = static_cast<std::int64_t>(window.size());
  out.current = window.latest();
  std::span<double> values(scratch_.data(), window.size());
  window.copyTo(values);
  std::optional<gate::SignalAnalysis> analysis;
  if (window.full()) {
    analysis = analyzer_.analyze(values, gate::signalKind(name));
    out.mean = analysis->mean;
    out.stddev = analysis->stddev;
    out.gates = analysis->gates;
    out.projectedPeak = analysis->projectedPeak;
    out.forecast =
        forecastOf(*analysis, out.current, gate::troubleLine(name, config_.troubleLines), config_);
    const double period = analysis->dominantPeriodSeconds(config_.window, config_.intervalSeconds);
    if (period > 0) out.dominantPeriodSeconds = period;
    out.spectrum = analysis->spectrum;
    out.entropy = analysis->entropy;
  } else {
    double sum = 0, ss = 0;
    for (double v : values)
      sum += v;
    out.mean = sum / static_cast<double>(values.size());
    for (double v : values)
      ss += (v - out.mean) * (v - out.mean);
    out.stddev = std::sqrt(ss / static_cast<double>(values.size()));
  }
  metrics_.setSignal(
      name, out.current, analysis ? &*analysis : nullptr, out.dominantPeriodSeconds.value_or(0.0),
      out.forecast ? out.forecast->secondsToTrouble : std::nullopt, config_.intervalSeconds);
  return out;
}

void Collector::publish(std::chrono::system_clock::time_point wallNow) {
  fleet::NodeFingerprint fp;
  fp.node = config_.node;
  fp.timestamp = wallNow;
  fp.intervalSeconds = config_.intervalSeconds;
  fp.windowSize = static_cast<std::int64_t>(config_.window);
  fp.missingSources = missing_;
  fp.windowFill = signals_.empty() ? 0.0 : 1.0;
  fp.ready = !signals_.empty();
  for (auto& [name, s] : signals_) {
    if (s.window.size() == 0) continue;
    fp.signals.emplace(name, fingerprintOf(name, s.window));
    fp.windowFill = std::min(fp.windowFill, s.window.fill());
    fp.ready = fp.ready && s.window.full();
  }
  if (gpuInfo_) fp.gpus = gpuInfo_();
  metrics_.setWindow(fp.windowFill, fp.ready);

  auto snap = std::make_shared<const Snapshot>(std::move(fp));
  std::lock_guard lock(snapshotMutex_);
  snapshot_ = std::move(snap);
}

std::shared_ptr<const Snapshot> Collector::snapshot() const {
  std::lock_guard lock(snapshotMutex_);
  return snapshot_;
}

std::map<std::string, std::vector<double>> Collector::windows() const {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, s] : signals_)
    out.emplace(name, s.window.values());
  return out;
}

void Collector::restore(const std::map<std::string, std::vector<double>>& saved) {
  for (const auto& [name, values] : saved) {
    SignalSlot& s = slot(name);
    const std::size_t skip = values.size() > config_.window ? values.size() - config_.window : 0;
    for (std::size_t i = skip; i < values.size(); ++i) {
      if (std::isfinite(values[i])) s.window.push(std::clamp(values[i], 0.0, 1.0));
    }
    s.lastRound = round_;
  }
  publish(std::chrono::system_clock::now());
}

}  // namespace pi0::agent
