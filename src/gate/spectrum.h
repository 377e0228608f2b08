// The gate metrics and the spectral fingerprint of one signal's window, exactly as defined in
// DESIGN.md ("Gate metrics"). Pure computation: no I/O, no clock.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"
#include "gate/forecast.h"

namespace pi0::gate {

struct GateMetrics {
  double lambdaInt = 0;    // mean of the window
  double lambda1 = 0;      // share of the variation's power in the strongest bin
  double fitError = 0;     // RMS residual of DC + the K strongest bins
  double gluingDelta = 0;  // disagreement between the two halves of the window
  double isolation = 0;    // 1 - projectedPeak

  friend bool operator==(const GateMetrics&, const GateMetrics&) = default;
};

struct SignalAnalysis {
  GateMetrics gates;
  double mean = 0;
  double stddev = 0;             // population standard deviation
  Forecast forecast;             // the forecast path (docs/forecast.md)
  double projectedPeak = 0;      // forecast.peakWithin(horizon): the peak expected within H
  double modelPeak = 0;          // max of the spectral model x̂ over the window (μ when flat)
  std::size_t dominantBin = 0;   // k* in 1..N/2; 0 when the window is flat
  std::vector<double> spectrum;  // |X[k]| for k = 1..N/2, scaled to unit L2 norm (zeros if flat)
  double entropy = 0;  // Shannon entropy of P[k]/ΣP over the N/2 bins, divided by log(N/2)

  // Dominant period in seconds for a sampling interval; 0 when the window is flat.
  double dominantPeriodSeconds(std::size_t n, double intervalSeconds) const {
    return dominantBin == 0
               ? 0.0
               : static_cast<double>(n) * intervalSeconds / static_cast<double>(dominantBin);
  }
};

// SpectrumAnalyzer owns FFTW plans and buffers for one window length N; the plans are made
// once at creation and reused by every analyze() call. Not thread-safe: one per thread.
class SpectrumAnalyzer {
 public:
  // n: window length (even, >= 8); k: number of strongest bins kept by the model (1..n/2).
  static Result<SpectrumAnalyzer> create(std::size_t n, std::size_t k = 4,
                                         ForecastOptions forecast = {});

  SpectrumAnalyzer(SpectrumAnalyzer&&) noexcept;
  SpectrumAnalyzer& operator=(SpectrumAnalyzer&&) noexcept;
  ~SpectrumAnalyzer();

  std::size_t size() const;
  const ForecastOptions& forecastOptions() const;

  // window.size() must equal size(); samples oldest first.
  SignalAnalysis analyze(std::span<const double> window,
                         SignalKind kind = SignalKind::kUtilization);

 private:
  struct Impl;
  explicit SpectrumAnalyzer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Cosine similarity of two spectra (1 = same shape; 0 when either is all zeros).
double cosineSimilarity(std::span<const double> a, std::span<const double> b);

}  // namespace pi0::gate
