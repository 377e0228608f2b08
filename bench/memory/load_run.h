// LoadRun: one node driven by a load shape, second by second, through the real pieces the
// operator leader wires: the agent's Collector (its windows, gates and forecast; a scripted
// sampler as the source), the /fingerprint body read back as the operator polls it
// (?detail=resources), a FleetView whose trim hook hands the untrimmed fingerprint to the
// MemoryRecorder, and the recorder's round once a second. PSI readings are the kernel's avg10,
// an exponential average (10 s) of the share of time stalled, which the shapes set.
// Shared by operator_memory_test and pi0-memory-lead-bench (which measures how much earlier the
// memory flags a pattern it has seen before).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/collector.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_sampler.h"
#include "fleet/fingerprints.h"
#include "fleet/resource_view.h"
#include "operator/memory_recorder.h"

namespace pi0::op::scenario {

inline const ledger::Time kT0 = ledger::Time(std::chrono::milliseconds(1'780'000'000'000));
inline const std::string kNode = "node-a";
// The kernel's avg10: e^(-1 s / 10 s) of the old average stays each second.
inline const double kAvg10Keep = std::exp(-0.1);

// What the node does at second t: its utilizations and the share of time its tasks stall on
// CPU and on memory (the PSI averages follow the stall shares).
struct Load {
  double cpu = 0.30;
  double memory = 0.45;
  double stallCpu = 0.01;
  double stallMemory = 0.01;
};
using Shape = std::function<Load(int)>;

// One second of a run, as the test saw it.
struct Second {
  int t = 0;
  ledger::Time wall;
  double psiCpu = 0;     // the averages the agent read
  double psiMemory = 0;  // (ground truth for the line crossings)
  bool cpuSaturated = false;
  std::optional<NodeSeen> seen;
  std::vector<float> features;  // the untrimmed fingerprint's, empty before the window is full
  std::optional<fleet::HistoryVerdict> history;  // the verdict the poll's fingerprint carried
};

// The agent of one node and the operator leader's side of it.
class LoadRun {
 public:
  explicit LoadRun(MemoryRecorderOptions options = {}) : recorder_(options) {
    auto collector = agent::Collector::create({kNode, 64, 1.0, {}, {}}, metrics_);
    if (!collector) throw std::runtime_error("collector: " + collector.error().message);
    collector_ = std::move(*collector);
    auto sampler = std::make_unique<pi0::testing::FakeSampler>("synthetic");
    sampler_ = sampler.get();
    collector_->addSource(std::move(sampler));
    fleet::FleetViewOptions viewOptions;
    // The leader's wiring: the features before the trim.
    viewOptions.trim = [this](fleet::NodeFingerprint& fp) {
      recorder_.observe(fp, wall_);
      fp.history = recorder_.verdict(fp.node);  // what the feed carries to the webhook
      history_ = fp.history;
      const auto f = memory::featuresOf(fp);
      features_ = f ? *f : std::vector<float>();
      fleet::trimToResourceView(fp);
    };
    view_ = std::make_unique<fleet::FleetView>(viewOptions, clock_);
    view_->setAgents({{kNode, "http://node-a:9560"}});
  }

  // Runs `shape` from second `from` to `to` (exclusive), one sample, poll and round a second.
  void play(const Shape& shape, int from, int to) {
    for (int t = from; t < to; ++t)
      second(t, shape(t));
  }

  MemoryRecorder& recorder() { return recorder_; }
  const std::vector<Second>& seconds() const { return seconds_; }
  const std::vector<memory::Entry>& entries() const { return entries_; }
  ledger::Time wallAt(int t) const { return kT0 + std::chrono::seconds(t); }

 private:
  void second(int t, const Load& load) {
    auto noisy = [&](double x, double sd) {
      return std::clamp(x + std::normal_distribution<double>(0, sd)(rng_), 0.0, 1.0);
    };
    psiCpu_ = kAvg10Keep * psiCpu_ + (1 - kAvg10Keep) * noisy(load.stallCpu, 0.003);
    psiMemory_ = kAvg10Keep * psiMemory_ + (1 - kAvg10Keep) * noisy(load.stallMemory, 0.003);
    const double cpu = noisy(load.cpu, 0.01);
    sampler_->push(substrates::Sample{{{"cpu", cpu},
                                       {"memory", noisy(load.memory, 0.005)},
                                       {"psi_cpu", psiCpu_},
                                       {"psi_memory", psiMemory_}},
                                      {}});
    wall_ = wallAt(t);
    const auto steady = Clock::time_point{} + std::chrono::hours(1) + std::chrono::seconds(t);
    clock_.advance(steady - clock_.now());
    collector_->step(steady, wall_);
    // What the operator polls (GET /fingerprint?detail=resources), parsed as it parses it.
    auto polled =
        fleet::parseFingerprint(collector_->snapshot()->body(fleet::FingerprintDetail::kResources));
    if (!polled) throw std::runtime_error("fingerprint: " + polled.error().message);
    view_->recordSuccess(kNode, std::move(*polled), steady);
    auto added = recorder_.round(*view_->snapshot(), steady, wall_);
    entries_.insert(entries_.end(), added.begin(), added.end());
    seconds_.push_back(
        {t, wall_, psiCpu_, psiMemory_, cpu >= 1.0, recorder_.seen(kNode), features_, history_});
  }

  agent::AgentMetrics metrics_{"test"};
  std::unique_ptr<agent::Collector> collector_;
  pi0::testing::FakeSampler* sampler_ = nullptr;
  pi0::testing::FakeClock clock_;
  MemoryRecorder recorder_;
  std::unique_ptr<fleet::FleetView> view_;
  ledger::Time wall_ = kT0;
  std::vector<float> features_;
  std::optional<fleet::HistoryVerdict> history_;
  double psiCpu_ = 0.01;
  double psiMemory_ = 0.01;
  std::mt19937 rng_{20261205};
  std::vector<Second> seconds_;
  std::vector<memory::Entry> entries_;
};

// The first second in [from, to) at which `pred` holds; nullopt when none.
inline std::optional<int> firstSecond(const std::vector<Second>& run, int from, int to,
                                      const std::function<bool(const Second&)>& pred) {
  for (const auto& s : run) {
    if (s.t >= from && s.t < to && pred(s)) return s.t;
  }
  return std::nullopt;
}

// Whether the memory called the node's state troubled at that second.
inline bool troubled(const Second& s) {
  return s.seen && s.seen->seen.troubled;
}

// The step: CPU from 0.30 to 0.85 at `start`; the stall share on CPU then builds up over 90 s
// (the run queue growing) from 0.01 to 0.35, holds, and everything falls back at `start + 150`.
inline Load stepLoad(int t, int start) {
  Load l;
  if (t >= start && t < start + 150) {
    l.cpu = 0.85;
    l.stallCpu = 0.01 + 0.34 * std::min(1.0, (t - start) / 90.0);
  }
  return l;
}

// A slow memory leak from `start`: memory grows from 0.45 by 0.018 a minute (to 0.97); over
// 0.85 its tasks start to stall, more the fuller it is (to 0.5 of the time at 0.95): the average
// crosses the line about 25 minutes into the leak. Back to calm at `start + 2000`.
inline Load leakLoad(int t, int start) {
  Load l;
  if (t >= start && t < start + 2000) {
    l.memory = std::min(0.97, 0.45 + 0.0003 * (t - start));
    l.stallMemory = 0.01 + std::max(0.0, (l.memory - 0.85) / 0.10) * 0.49;
  }
  return l;
}

}  // namespace pi0::op::scenario
