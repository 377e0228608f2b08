#include "agent/collector.h"

#include <algorithm>
#include <cmath>

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
  auto first = std::make_shared<Snapshot>();
  first->node = config_.node;
  first->intervalSeconds = config_.intervalSeconds;
  first->windowSize = config_.window;
  first->horizonSeconds = static_cast<double>(config_.forecast.horizon) * config_.intervalSeconds;
  first->timestamp = std::chrono::system_clock::now();
  snapshot_ = std::move(first);
}

void Collector::addSource(substrates::SamplerPtr sampler) {
  metrics_.setSourceUp(sampler->source(), true);
  sources_.push_back(SourceSlot{std::move(sampler)});
}

void Collector::addMissing(std::string source, std::string reason) {
  log::warn("measurement source missing; its signals are not reported",
            {{"source", source}, {"reason", reason}});
  metrics_.setSourceUp(source, false);
  missing_.push_back(MissingSource{std::move(source), std::move(reason)});
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

void Collector::publish(std::chrono::system_clock::time_point wallNow) {
  auto snap = std::make_shared<Snapshot>();
  snap->node = config_.node;
  snap->timestamp = wallNow;
  snap->intervalSeconds = config_.intervalSeconds;
  snap->windowSize = config_.window;
  snap->horizonSeconds = static_cast<double>(config_.forecast.horizon) * config_.intervalSeconds;
  snap->missing = missing_;
  snap->windowFill = signals_.empty() ? 0.0 : 1.0;
  snap->ready = !signals_.empty();
  snap->signals.reserve(signals_.size());

  for (auto& [name, s] : signals_) {
    SignalState state;
    state.name = name;
    state.samples = s.window.size();
    if (state.samples == 0) continue;
    state.current = s.window.latest();
    std::span<double> values(scratch_.data(), state.samples);
    s.window.copyTo(values);
    if (s.window.full()) {
      state.analysis = analyzer_.analyze(values, gate::signalKind(name));
      state.mean = state.analysis->mean;
      state.stddev = state.analysis->stddev;
      state.troubleLine = gate::troubleLine(name, config_.troubleLines);
      if (auto samples = state.analysis->forecast.samplesUntil(state.troubleLine))
        state.secondsToTrouble = *samples * config_.intervalSeconds;
    } else {
      double sum = 0, ss = 0;
      for (double v : values)
        sum += v;
      state.mean = sum / static_cast<double>(values.size());
      for (double v : values)
        ss += (v - state.mean) * (v - state.mean);
      state.stddev = std::sqrt(ss / static_cast<double>(values.size()));
    }
    const double period = state.analysis ? state.analysis->dominantPeriodSeconds(
                                               config_.window, config_.intervalSeconds)
                                         : 0.0;
    metrics_.setSignal(name, state.current, state.analysis ? &*state.analysis : nullptr, period,
                       state.secondsToTrouble, config_.intervalSeconds);
    snap->windowFill = std::min(snap->windowFill, s.window.fill());
    snap->ready = snap->ready && s.window.full();
    snap->signals.push_back(std::move(state));
  }
  if (gpuInfo_) snap->gpus = gpuInfo_();
  metrics_.setWindow(snap->windowFill, snap->ready);

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
