// NodeFingerprint: what one pi0-agent serves at GET /fingerprint (docs/fingerprint.schema.json),
// in types, and the one contract for it: the agent builds a NodeFingerprint from its sampling
// round and writes it with toJson(); the operator and the webhook read agents' fingerprints only
// through parseFingerprint(). parseFingerprint(toJson(x)) == x (fingerprint_test.cc).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/signal_id.h"
#include "gate/forecast.h"
#include "gate/spectrum.h"

namespace pi0::fleet {

// The five gate metrics of one signal (DESIGN.md, "Gate metrics"), as the agent computes them.
using SignalGates = gate::GateMetrics;

// The forecast path of one signal (docs/forecast.md), τ seconds ahead of its newest sample:
//   F(τ) = min(1, max(base, trendStart + trendPerSecond · τ)),
// and projectedPeak = F(horizonSeconds).
struct SignalForecast {
  double horizonSeconds = 30;  // the horizon projectedPeak looks ahead (> 0)
  double base = 0;             // [0,1]: the peak if the signal keeps its level and rhythm
  double trendStart = 0;       // [0,1]: the rising trend's line now (plus the noise margin)
  double trendPerSecond = 0;   // >= 0: a steady rising trend, ratio per second (0: none)
  double noise = 0;            // >= 0: the noise standard deviation the margin is made of
  double troubleLine = 1;      // (0,1]: saturation (1), or the PSI line for psi_* signals
  // Seconds until F crosses troubleLine: 0 when at or over it now, nullopt when not expected.
  std::optional<double> secondsToTrouble;
  // PSI signals: the stall rate the kernel's 10 s average (`pressureNow`, the signal's current
  // value) is moving toward; F then also holds s + (pressureNow − s)·e^(−τ/10 s).
  std::optional<double> stallRate;
  double pressureNow = 0;

  // F(τ) for τ = `seconds` ahead (negative τ reads as 0), in [0,1].
  double at(double seconds) const { return perSecond().peakWithin(seconds); }
  // PSI signals: the kernel's average `seconds` ahead as the stall rate carries it, never below
  // pressureNow (gate::Forecast::pressureWithin): F's pressure term, without the level's noise
  // margin or a trend. What the psi gate reads.
  double pressureAt(double seconds) const {
    return std::clamp(perSecond().pressureWithin(seconds), 0.0, 1.0);
  }

  // gate::Forecast, the one home of F's formula, with a sample a second.
  gate::Forecast perSecond() const {
    gate::Forecast f;
    f.base = base;
    f.trendStart = trendStart;
    f.trendPerSample = trendPerSecond;
    f.stallRate = stallRate;
    f.pressureNow = pressureNow;
    f.decayPerSample = std::exp(-1.0 / 10.0);  // the kernel's 10 s average, per second
    return f;
  }

  friend bool operator==(const SignalForecast&, const SignalForecast&) = default;
};

// One signal of a node (a utilization ratio in [0,1]).
struct SignalFingerprint {
  std::int64_t samples = 0;  // samples in the window
  double current = 0;        // the latest sample
  double mean = 0;           // over the samples held, even before the window is full
  double stddev = 0;
  // The rest is known only once the signal's window is full.
  std::optional<SignalGates> gates;
  std::optional<double> projectedPeak;  // the forecast's F(horizon), in [0,1]
  // nullopt before the window is full, and from an agent that predates the forecast.
  std::optional<SignalForecast> forecast;
  std::optional<double> dominantPeriodSeconds;  // also absent when the window is flat
  // Normalized magnitude spectrum, and its entropy: only in FingerprintDetail::kSpectra, and
  // once the window is full. Empty and nullopt otherwise.
  std::vector<double> spectrum;
  std::optional<double> entropy;

  friend bool operator==(const SignalFingerprint&, const SignalFingerprint&) = default;
};

struct MissingSource {
  std::string source;  // "cpu", "memory", "psi", "disk", "network", "gpu", "synthetic"
  std::string reason;

  friend bool operator==(const MissingSource&, const MissingSource&) = default;
};

// Static facts of one GPU the agent saw through NVML. Fields an agent leaves out read as 0 (or
// nullopt); none of them takes part in a decision.
struct GpuInfo {
  std::int64_t index = 0;  // NVML index: the <i> of gpu<i>_*
  std::string name;
  std::string uuid;  // "GPU-..."
  std::int64_t memoryTotalBytes = 0;
  // From the CUDA probe library when it matched this GPU, else 0.
  std::int64_t smCount = 0;
  std::int64_t smClockMHz = 0;
  std::int64_t memoryClockMHz = 0;
  std::int64_t memoryBusWidthBits = 0;
  std::optional<double> nominalBandwidthBytesPerSecond;
  // The last bandwidth probe; nullopt when none ran yet or it failed.
  std::optional<double> probeAchievedBytesPerSecond;
  std::optional<double> probeRatio;  // achieved / nominal

  friend bool operator==(const GpuInfo&, const GpuInfo&) = default;
};

// What the operator leader's fingerprint memory says of a node's state (operator/memory_recorder.h,
// DESIGN.md "The learning loop"): whether states like it were mostly followed by trouble, and the
// most similar one. The leader sets it on the fingerprints it polls; the fleet feed carries it
// to the webhook replicas, whose history gate reads it. An agent never serves one.
struct HistoryVerdict {
  bool troubled = false;  // enough similar states, mostly followed by trouble (SeenOptions)
  int matches = 0;        // similar states among the nearest
  int troubleMatches = 0;
  // The most similar remembered state: its node, when it was seen, its label and similarity.
  std::string matchNode;
  std::chrono::system_clock::time_point matchAt;
  std::string matchLabel;  // "calm", "before_trouble", "trouble_onset"
  double similarity = 0;

  friend bool operator==(const HistoryVerdict&, const HistoryVerdict&) = default;
};

struct NodeFingerprint {
  std::string node;
  std::chrono::system_clock::time_point timestamp;  // when the agent took its last sample
  double intervalSeconds = 1;
  std::int64_t windowSize = 64;
  double windowFill = 0;  // the least filled signal's fill, in [0,1]
  bool ready = false;     // every signal's window is full (then every signal has gates)
  std::map<std::string, SignalFingerprint, std::less<>> signals;  // "cpu", "gpu0_sm", ...
  std::vector<MissingSource> missingSources;
  std::vector<GpuInfo> gpus;  // the GPUs the agent saw through NVML
  // The leader's memory's verdict on this state (see HistoryVerdict); nullopt from an agent.
  std::optional<HistoryVerdict> history;

  // The signal named `name`, or nullptr.
  const SignalFingerprint* signal(std::string_view name) const {
    auto it = signals.find(name);
    return it == signals.end() ? nullptr : &it->second;
  }
  const SignalFingerprint* signal(const SignalId& id) const {
    return id.isGpu() ? signal(id.name()) : signal(id.fixedName());
  }

  friend bool operator==(const NodeFingerprint&, const NodeFingerprint&) = default;
};

// How much of each signal a /fingerprint body carries. No Pi0 consumer reads spectra or
// entropy, so the agent serves them only when asked (GET /fingerprint?detail=spectra).
enum class FingerprintDetail {
  kSummary,  // no `spectrum`, no `entropy`
  kSpectra,  // also each signal's `spectrum` and `entropy`
  // As kSummary, only the signals resourceView reads (readByResourceView: cpu, memory, their
  // pressure, gpu<i>_sm) and no `gpus`: what pi0-operator and pi0-webhook poll
  // (GET /fingerprint?detail=resources): on a node without GPUs, 4 of the 7 signals.
  kResources,
};

// The /fingerprint body of `fingerprint`: compact JSON, signals in name order. The timestamp is
// written to the millisecond; every number reads back as the same double. A signal without
// gates is written with null gates, projectedPeak, forecast and dominantPeriodSeconds (and, in
// kSpectra, null spectrum and entropy).
std::string toJson(const NodeFingerprint& fingerprint, FingerprintDetail detail);

// Parses a /fingerprint body. Checks what the schema requires: the document is a JSON object
// of apiVersion stability.pi0.io/v1alpha1 and kind Fingerprint, every required field is present
// with its type (`spectrum` and `entropy` may be absent: FingerprintDetail::kSummary), numbers are
// finite and in their ranges, a signal's gates are either null or all
// five, and a ready fingerprint has gates for every signal. A signal's `forecast` is null or
// complete and in range (horizonSeconds > 0; base, trendStart in [0,1]; trendPerSecond, noise
// and secondsToTrouble >= 0; troubleLine in (0,1]), and not null in a ready fingerprint; a
// signal without the member at all comes from an agent older than the forecast and parses with
// no forecast (so that agents and consumers can be upgraded in either order). Ratios within
// 1e-9 of [0,1] are clamped into it (floating-point noise of the agent's arithmetic). Fields the
// schema does not name are ignored, so that a newer agent can add some (and an older agent's
// memoryTrend is ignored: the memory-exhaustion projection is signals.memory.forecast now). Never
// throws; any defect is an Error whose message names the field, e.g. "signals.cpu.gates: missing
// fit_error".
Result<NodeFingerprint> parseFingerprint(std::string_view body);

}  // namespace pi0::fleet
