// The projected peak as a forecast: the highest value a signal is expected to take over the
// next horizon, and how soon it is expected to cross a trouble line. Definition, reference
// values and the evidence behind the choices: docs/forecast.md. Pure computation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include "common/result.h"

namespace pi0::gate {

struct ForecastOptions {
  std::size_t horizon = 30;     // H, samples ahead the projected peak looks
  std::size_t recent = 3;       // R, the newest samples whose maximum is the present level
  std::size_t trendHalf = 10;   // M: a trend is fit over 2M samples (at most the window), each
                                // half must rise
  double margin = 1.2;          // k, noise standard deviations added to every predictor
  double trendZ = 4.0;          // a trend's slope counts only beyond z standard errors
  double minRhythmShare = 0.3;  // lambda1 a rhythm needs before its crest is forecast
  double intervalSeconds = 1;   // T, the sampling interval (the pressure model runs in seconds)
};

// What a signal measures: a utilization ratio, or a PSI `some avg10` ratio (a pressure: the
// kernel's 10 s exponential average of the share of time tasks stalled, updated every 2 s).
enum class SignalKind { kUtilization, kPressure };
SignalKind signalKind(std::string_view signal);  // psi_* (SignalId::isPressure) is a pressure

// Checks the options against a window of n samples.
Result<void> validate(const ForecastOptions& options, std::size_t n);

// The forecast path of one signal, in samples ahead of the newest sample:
//   F(h) = clip01(max(base, trendStart + trendPerSample · h, pressure(h)))
// where, for a pressure whose stall rate s is above its present average a,
//   pressure(h) = s + (a − s) · decayPerSample^h   (the kernel's average moving toward s).
struct Forecast {
  double noise = 0;           // σ_n: robust standard deviation of the model's residual noise
  double base = 0;            // the peak if the signal keeps its present level and rhythm
  double trendStart = 0;      // the rising trend's line at the newest sample, plus the margin
  double trendPerSample = 0;  // a steady rising trend (0 when there is none)
  std::optional<double> rhythmCrest;  // the next crest of a short rhythm, when one dominates
  // Pressure signals: the share of time stalled since the kernel's last update, which its
  // 10 s average is moving toward; the average now; its decay per sample, e^(−T/10 s).
  std::optional<double> stallRate;
  double pressureNow = 0;
  double decayPerSample = 0;

  // F(h): the highest value expected within h samples, in [0,1]. Inline: the webhook's psi gate
  // reads it for every candidate node of a review.
  double peakWithin(double samples) const {
    const double h = std::max(samples, 0.0);
    return std::clamp(std::max({base, trendStart + trendPerSample * h, pressureWithin(h)}), 0.0,
                      1.0);
  }
  // pressure(h) alone, the highest of the kernel's average within h samples: where a stall rate
  // above it carries it, else where it is (pressureNow; 0 for a utilization). No noise margin:
  // the model is the kernel's own arithmetic.
  double pressureWithin(double samples) const {
    if (!stallRate || !(*stallRate > pressureNow)) return pressureNow;
    return *stallRate +
           (pressureNow - *stallRate) * std::pow(decayPerSample, std::max(samples, 0.0));
  }
  // Samples until F reaches `line`: 0 when it already does, none when it never will.
  std::optional<double> samplesUntil(double line) const;
};

// The lines past which a signal means trouble (DESIGN.md, "What trouble means"): PSI signals
// (named psi_*) at the pressure line, every utilization signal at saturation.
struct TroubleLines {
  double pressure = 0.2;
  double saturation = 1.0;
};
double troubleLine(std::string_view signal, const TroubleLines& lines);

// x: the window, oldest first. model: the spectral model x̂ (DC + the K strongest bins) at the
// same samples. dominantBin, lambda1: from the window's spectrum (0 when flat). scratch: at
// least x.size() doubles, overwritten.
Forecast forecast(std::span<const double> x, std::span<const double> model, std::size_t dominantBin,
                  double lambda1, const ForecastOptions& options, SignalKind kind,
                  std::span<double> scratch);

}  // namespace pi0::gate
