#include "gate/forecast.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace pi0::gate {
namespace {

double clip01(double v) {
  return std::clamp(v, 0.0, 1.0);
}

double median(std::span<double> v) {
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2 == 1) return *mid;
  return 0.5 * (*mid + *std::max_element(v.begin(), mid));
}

// Robust standard deviation of white noise in y from its first differences: the differences
// of noise of std σ have std σ√2, and MAD · 1.4826 estimates a normal std. Steps add a few
// outlying differences and a trend a constant, which the median and MAD ignore.
double noiseFromDifferences(std::span<const double> y, std::span<double> scratch) {
  const std::size_t n = y.size();
  if (n < 3) return 0;
  auto d = scratch.first(n - 1);
  for (std::size_t i = 0; i + 1 < n; ++i)
    d[i] = y[i + 1] - y[i];
  const double center = median(d);
  for (double& v : d)
    v = std::abs(v - center);
  return 1.4826 * median(d) / std::sqrt(2.0);
}

// The noise around the window's structure: the smaller of the estimate from the raw samples
// (steps and trends removed by differencing) and from the spectral model's residual (rhythms
// removed), since each model leaves the other's structure in its residual.
double noise(std::span<const double> x, std::span<const double> model, std::span<double> scratch) {
  const std::size_t n = x.size();
  const double raw = noiseFromDifferences(x, scratch);
  auto residual = scratch.first(n);
  for (std::size_t i = 0; i < n; ++i)
    residual[i] = x[i] - model[i];
  // Differences are written over the residual's own storage: d[i] uses residual[i] and
  // residual[i+1] before overwriting residual[i].
  return std::min(raw, noiseFromDifferences(residual, residual));
}

struct Line {
  double slope = 0;       // per sample
  double slopeError = 0;  // standard error of the slope
  double last = 0;        // the line's value at the segment's newest sample
};

// Least squares through y[0..m-1] at t = 0..m-1.
Line fitLine(std::span<const double> y) {
  const std::size_t m = y.size();
  const double md = static_cast<double>(m);
  const double tMean = 0.5 * (md - 1);
  double yMean = 0;
  for (double v : y)
    yMean += v;
  yMean /= md;
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const double t = static_cast<double>(i) - tMean;
    sxy += t * (y[i] - yMean);
    sxx += t * t;
  }
  Line out;
  out.slope = sxy / sxx;
  double ssr = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const double r = y[i] - (yMean + out.slope * (static_cast<double>(i) - tMean));
    ssr += r * r;
  }
  out.slopeError = std::sqrt(ssr / (md - 2) / sxx);
  out.last = yMean + out.slope * (md - 1 - tMean);
  return out;
}

}  // namespace

Result<void> validate(const ForecastOptions& o, std::size_t n) {
  if (o.horizon < 1) return fail("forecast horizon must be at least 1 sample");
  if (n < 6) return fail("the window must hold at least 6 samples, got " + std::to_string(n));
  if (o.recent < 1) return fail("recent samples must be at least 1");
  if (o.trendHalf < 3) {
    return fail("trend half must be at least 3 samples, got " + std::to_string(o.trendHalf));
  }
  if (!(o.margin >= 0) || !(o.trendZ >= 0)) return fail("margin and trend z must be >= 0");
  if (!(o.minRhythmShare >= 0 && o.minRhythmShare <= 1))
    return fail("minimum rhythm share must be in [0,1]");
  return {};
}

double troubleLine(std::string_view signal, const TroubleLines& lines) {
  return signal.starts_with("psi_") ? lines.pressure : lines.saturation;
}

double Forecast::peakWithin(double samples) const {
  return clip01(std::max(base, trendStart + trendPerSample * std::max(samples, 0.0)));
}

std::optional<double> Forecast::samplesUntil(double line) const {
  if (std::max(base, trendStart) >= line) return 0.0;
  if (line > 1.0 || trendPerSample <= 0) return std::nullopt;
  return (line - trendStart) / trendPerSample;
}

Forecast forecast(std::span<const double> x, std::span<const double> model, std::size_t dominantBin,
                  double lambda1, const ForecastOptions& o, std::span<double> scratch) {
  const std::size_t n = x.size();
  Forecast out;
  if (n == 0) return out;
  out.noise = noise(x, model, scratch);
  const double margin = o.margin * out.noise;

  // The present level: the newest samples' maximum, so a rise shows at once and a fall within
  // `recent` samples.
  const std::size_t recent = std::min(o.recent, n);
  out.base = *std::max_element(x.end() - static_cast<std::ptrdiff_t>(recent), x.end()) + margin;

  // A rhythm whose period fits in the horizon brings its next crest within it: the spectral
  // model's crest over the last cycle, moved to the level the data held over that cycle. A
  // rhythm repeats at least twice in the window (bin 1 is what a step or a ramp looks like).
  if (dominantBin >= 2 && lambda1 >= o.minRhythmShare) {
    const double period = static_cast<double>(n) / static_cast<double>(dominantBin);
    if (period <= static_cast<double>(o.horizon)) {
      const auto cycle = std::min(n, static_cast<std::size_t>(std::ceil(period)));
      double crest = -INFINITY, dataSum = 0, modelSum = 0;
      for (std::size_t i = n - cycle; i < n; ++i) {
        crest = std::max(crest, model[i]);
        dataSum += x[i];
        modelSum += model[i];
      }
      out.rhythmCrest = crest + (dataSum - modelSum) / static_cast<double>(cycle) + margin;
      out.base = std::max(out.base, *out.rhythmCrest);
    }
  }

  // A steady rising trend: the line through the newest 2M samples rises beyond z standard
  // errors of its slope, and each half of them rises at least half as fast. A single step lies
  // in one half only, so it is not taken for a trend. A window that a short rhythm explains has
  // no trend (the rising half of a burst is not a ramp).
  out.trendStart = out.base;
  const std::size_t half = std::min(o.trendHalf, n / 2);  // a short window has short halves
  if (!out.rhythmCrest && half >= 3) {
    const Line both = fitLine(x.last(2 * half));
    const Line newer = fitLine(x.last(half));
    const Line older = fitLine(x.last(2 * half).first(half));
    if (both.slope > o.trendZ * both.slopeError && newer.slope >= both.slope / 2 &&
        older.slope >= both.slope / 2) {
      out.trendPerSample = both.slope;
      out.trendStart = both.last + margin;
    }
  }
  return out;
}

}  // namespace pi0::gate
