#include "gate/forecast.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/signal_id.h"

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

// Robust standard deviation of white noise in y from its first differences: differences of
// noise of std σ have std σ√2, and MAD · 1.4826 estimates a normal std. A step adds one
// outlying difference and a trend a constant, which the median and the MAD ignore.
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

// The noise around the window's structure. Differencing removes steps and trends but leaves a
// rhythm in; the spectral model's residual removes the rhythm. When a rhythm dominates the
// window, the smaller of the two estimates is the less contaminated one.
double noise(std::span<const double> x, std::span<const double> model, bool rhythmic,
             std::span<double> scratch) {
  const std::size_t n = x.size();
  const double raw = noiseFromDifferences(x, scratch);
  if (!rhythmic) return raw;
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

// The sums a least-squares line through y[i] at t = i needs; two adjacent segments' sums add.
struct Sums {
  double m = 0, sy = 0, sty = 0, syy = 0;

  static Sums of(std::span<const double> y) {
    Sums s;
    s.m = static_cast<double>(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) {
      s.sy += y[i];
      s.sty += static_cast<double>(i) * y[i];
      s.syy += y[i] * y[i];
    }
    return s;
  }
  // The sums of this segment followed by `later`.
  Sums then(const Sums& later) const {
    return {m + later.m, sy + later.sy, sty + later.sty + m * later.sy, syy + later.syy};
  }
  Line line() const {
    const double tMean = 0.5 * (m - 1);
    const double yMean = sy / m;
    const double sxx = m * (m * m - 1) / 12;  // Σ (t − t̄)²
    const double sxy = sty - m * tMean * yMean;
    const double syyCentered = syy - m * yMean * yMean;
    Line out;
    out.slope = sxy / sxx;
    const double ssr = std::max(0.0, syyCentered - out.slope * sxy);
    out.slopeError = std::sqrt(ssr / (m - 2) / sxx);
    out.last = yMean + out.slope * (m - 1 - tMean);
    return out;
  }
};

// The stall rate a PSI average is moving toward, from its last two kernel updates. The kernel
// updates avg10 every 2 s as a ← a·e^(−2/10) + s·(1 − e^(−2/10)), s being the share of those
// 2 s that tasks stalled; two successive values a₁, a₂ give s = (a₂ − a₁·d)/(1 − d). Samples
// hold a value until the next update, so an update shows as a change between samples; the
// number of updates between two changes is their spacing over 2 s, at least one.
std::optional<double> stallRate(std::span<const double> x, double intervalSeconds) {
  constexpr double kUpdateSeconds = 2.0, kAverageSeconds = 10.0;
  std::size_t newer = 0, older = 0;
  for (std::size_t i = x.size(); i-- > 1;) {
    if (x[i] == x[i - 1]) continue;
    if (newer == 0) {
      newer = i;
    } else {
      older = i;
      break;
    }
  }
  if (older == 0) return std::nullopt;  // fewer than two updates in the window
  const double spacing = static_cast<double>(newer - older) * intervalSeconds;
  const double updates = std::max(1.0, std::round(spacing / kUpdateSeconds - 0.25));
  const double d = std::exp(-updates * kUpdateSeconds / kAverageSeconds);
  return clip01((x[newer] - d * x[older]) / (1 - d));
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
  if (!(o.intervalSeconds > 0)) return fail("the sampling interval must be positive");
  return {};
}

SignalKind signalKind(std::string_view signal) {
  const std::optional<SignalId> id = SignalId::parse(signal);
  return id && id->isPressure() ? SignalKind::kPressure : SignalKind::kUtilization;
}

double troubleLine(std::string_view signal, const TroubleLines& lines) {
  return signalKind(signal) == SignalKind::kPressure ? lines.pressure : lines.saturation;
}

std::optional<double> Forecast::samplesUntil(double line) const {
  if (std::max(base, trendStart) >= line) return 0.0;
  if (line > 1.0) return std::nullopt;
  std::optional<double> soonest;
  if (trendPerSample > 0) soonest = (line - trendStart) / trendPerSample;
  // The average reaches the line when (s − line) = (s − a)·d^h.
  if (stallRate && *stallRate > line && line > pressureNow && decayPerSample > 0 &&
      decayPerSample < 1) {
    const double h =
        std::log((*stallRate - line) / (*stallRate - pressureNow)) / std::log(decayPerSample);
    if (!soonest || h < *soonest) soonest = h;
  }
  return soonest;
}

Forecast forecast(std::span<const double> x, std::span<const double> model, std::size_t dominantBin,
                  double lambda1, const ForecastOptions& o, SignalKind kind,
                  std::span<double> scratch) {
  const std::size_t n = x.size();
  Forecast out;
  if (n == 0) return out;
  const bool rhythmic = dominantBin >= 2 && lambda1 >= o.minRhythmShare;
  out.noise = noise(x, model, rhythmic, scratch);
  const double margin = o.margin * out.noise;

  // The present level: the newest samples' maximum, so a rise shows at once and a fall within
  // `recent` samples.
  const std::size_t recent = std::min(o.recent, n);
  out.base = *std::max_element(x.end() - static_cast<std::ptrdiff_t>(recent), x.end()) + margin;

  // A rhythm whose period fits in the horizon brings its next crest within it: the spectral
  // model's crest over the last cycle, moved to the level the data held over that cycle. A
  // rhythm repeats at least twice in the window (bin 1 is what a step or a ramp looks like),
  // and is still there: the data's last cycle swings at least half as wide as the model's
  // (bursts that have stopped leave their rhythm in the window's model, not in its data).
  if (rhythmic) {
    const double period = static_cast<double>(n) / static_cast<double>(dominantBin);
    if (period <= static_cast<double>(o.horizon)) {
      const auto cycle = std::min(n, static_cast<std::size_t>(std::ceil(period)));
      double crest = -INFINITY, trough = INFINITY, dataSum = 0, modelSum = 0;
      double dataHigh = -INFINITY, dataLow = INFINITY;
      for (std::size_t i = n - cycle; i < n; ++i) {
        crest = std::max(crest, model[i]);
        trough = std::min(trough, model[i]);
        dataHigh = std::max(dataHigh, x[i]);
        dataLow = std::min(dataLow, x[i]);
        dataSum += x[i];
        modelSum += model[i];
      }
      if (dataHigh - dataLow >= 0.5 * (crest - trough)) {
        out.rhythmCrest = crest + (dataSum - modelSum) / static_cast<double>(cycle) + margin;
        out.base = std::max(out.base, *out.rhythmCrest);
      }
    }
  }

  // A steady rising trend: the line through the newest 2M samples rises beyond z standard
  // errors of its slope, and each half of them rises at least half as fast. A single step lies
  // in one half only, so it is not taken for a trend. A window that a short rhythm explains has
  // no trend (the rising half of a burst is not a ramp).
  out.trendStart = out.base;
  const std::size_t half = std::min(o.trendHalf, n / 2);  // a short window has short halves
  if (!out.rhythmCrest && half >= 3) {
    const Sums olderSums = Sums::of(x.last(2 * half).first(half));
    const Sums newerSums = Sums::of(x.last(half));
    const Line both = olderSums.then(newerSums).line();
    const Line newer = newerSums.line();
    const Line older = olderSums.line();
    if (both.slope > o.trendZ * both.slopeError && newer.slope >= both.slope / 2 &&
        older.slope >= both.slope / 2) {
      out.trendPerSample = both.slope;
      out.trendStart = both.last + margin;
    }
  }
  // A pressure also moves toward the stall rate the kernel measured last: a storm's stalls show
  // there before its 10 s average reaches them.
  if (kind == SignalKind::kPressure) {
    out.pressureNow = x[n - 1];
    out.decayPerSample = std::exp(-o.intervalSeconds / 10.0);
    out.stallRate = stallRate(x, o.intervalSeconds);
  }
  return out;
}

}  // namespace pi0::gate
