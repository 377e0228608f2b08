#include "gate/spectrum.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <string>

namespace pi0::gate {
namespace {

// FFTW's planner is not thread-safe; plans themselves may be executed concurrently.
std::mutex& plannerMutex() {
  static std::mutex m;
  return m;
}

double clip01(double v) {
  return std::clamp(v, 0.0, 1.0);
}

struct Moments {
  double mean = 0;
  double stddev = 0;
};

Moments moments(std::span<const double> x) {
  if (x.empty()) return {};
  double mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
  double ss = 0;
  for (double v : x)
    ss += (v - mean) * (v - mean);
  return {mean, std::sqrt(ss / static_cast<double>(x.size()))};
}

}  // namespace

struct SpectrumAnalyzer::Impl {
  std::size_t n = 0;
  std::size_t k = 0;
  double* timeIn = nullptr;         // mean-removed window, input of the forward plan
  fftw_complex* freq = nullptr;     // forward output, N/2+1 bins
  fftw_complex* modelIn = nullptr;  // the K kept bins, input of the inverse plan
  double* modelOut = nullptr;       // inverse output (unnormalized)
  fftw_plan forward = nullptr;
  fftw_plan inverse = nullptr;
  std::vector<double> power;       // P[k], index k (0 unused)
  std::vector<std::size_t> order;  // bins 1..N/2 sorted by power
  std::vector<double> model;       // x̂, the spectral model at each sample
  std::vector<double> scratch;     // the forecast's working space
  ForecastOptions forecast;

  ~Impl() {
    std::lock_guard lock(plannerMutex());
    if (forward) fftw_destroy_plan(forward);
    if (inverse) fftw_destroy_plan(inverse);
    fftw_free(timeIn);
    fftw_free(freq);
    fftw_free(modelIn);
    fftw_free(modelOut);
  }
};

Result<SpectrumAnalyzer> SpectrumAnalyzer::create(std::size_t n, std::size_t k,
                                                  ForecastOptions forecast) {
  if (n < 8 || n % 2 != 0) {
    return fail("window length must be even and at least 8, got " + std::to_string(n));
  }
  if (k < 1 || k > n / 2) {
    return fail("model bins K must be in 1.." + std::to_string(n / 2) + ", got " +
                std::to_string(k));
  }
  if (auto ok = validate(forecast, n); !ok) return fail("forecast: " + ok.error().message);
  auto impl = std::make_unique<Impl>();
  impl->forecast = forecast;
  impl->n = n;
  impl->k = k;
  const std::size_t bins = n / 2 + 1;
  impl->timeIn = fftw_alloc_real(n);
  impl->freq = fftw_alloc_complex(bins);
  impl->modelIn = fftw_alloc_complex(bins);
  impl->modelOut = fftw_alloc_real(n);
  if (!impl->timeIn || !impl->freq || !impl->modelIn || !impl->modelOut) {
    return fail("cannot allocate FFT buffers");
  }
  {
    std::lock_guard lock(plannerMutex());
    const int len = static_cast<int>(n);
    impl->forward = fftw_plan_dft_r2c_1d(len, impl->timeIn, impl->freq, FFTW_ESTIMATE);
    // c2r overwrites its input, which is fine: modelIn is rebuilt before every execution.
    impl->inverse = fftw_plan_dft_c2r_1d(len, impl->modelIn, impl->modelOut, FFTW_ESTIMATE);
  }
  if (!impl->forward || !impl->inverse) return fail("FFTW could not make a plan");
  impl->power.assign(bins, 0.0);
  impl->order.resize(n / 2);
  impl->model.assign(n, 0.0);
  impl->scratch.assign(n, 0.0);
  return SpectrumAnalyzer(std::move(impl));
}

SpectrumAnalyzer::SpectrumAnalyzer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpectrumAnalyzer::SpectrumAnalyzer(SpectrumAnalyzer&&) noexcept = default;
SpectrumAnalyzer& SpectrumAnalyzer::operator=(SpectrumAnalyzer&&) noexcept = default;
SpectrumAnalyzer::~SpectrumAnalyzer() = default;

std::size_t SpectrumAnalyzer::size() const {
  return impl_->n;
}

const ForecastOptions& SpectrumAnalyzer::forecastOptions() const {
  return impl_->forecast;
}

SignalAnalysis SpectrumAnalyzer::analyze(std::span<const double> x, SignalKind kind) {
  Impl& s = *impl_;
  const std::size_t n = s.n;
  const std::size_t half = n / 2;
  const double nd = static_cast<double>(n);

  SignalAnalysis out;
  out.spectrum.assign(half, 0.0);
  const Moments first = moments(x.first(half));
  const Moments second = moments(x.last(half));
  // The window's moments from its two equal halves': the variance is the halves' mean variance
  // plus the variance of their means.
  const double halfGap = 0.5 * (second.mean - first.mean);
  const Moments all{0.5 * (first.mean + second.mean),
                    std::sqrt(0.5 * (first.stddev * first.stddev + second.stddev * second.stddev) +
                              halfGap * halfGap)};
  out.mean = all.mean;
  out.stddev = all.stddev;
  out.gates.lambdaInt = all.mean;
  out.gates.gluingDelta =
      std::max(std::abs(second.mean - first.mean), std::abs(second.stddev - first.stddev));

  for (std::size_t i = 0; i < n; ++i)
    s.timeIn[i] = x[i] - all.mean;
  fftw_execute(s.forward);

  double total = 0;
  for (std::size_t k = 1; k <= half; ++k) {
    s.power[k] = s.freq[k][0] * s.freq[k][0] + s.freq[k][1] * s.freq[k][1];
    total += s.power[k];
  }

  // A window whose variation is below rounding noise is flat: no rhythm, the model is μ.
  const double flatPower = 1e-24 * nd * nd;
  std::fill(s.model.begin(), s.model.end(), all.mean);
  out.modelPeak = all.mean;
  if (total > flatPower) {
    std::iota(s.order.begin(), s.order.end(), std::size_t{1});
    // Only the K strongest are used: strongest first; ties go to the lower frequency so
    // results are deterministic.
    std::partial_sort(s.order.begin(), s.order.begin() + static_cast<std::ptrdiff_t>(s.k),
                      s.order.end(), [&](std::size_t a, std::size_t b) {
                        return s.power[a] > s.power[b] || (s.power[a] == s.power[b] && a < b);
                      });
    out.dominantBin = s.order[0];
    out.gates.lambda1 = s.power[out.dominantBin] / total;

    double entropy = 0;
    const double norm = std::sqrt(total);
    for (std::size_t k = 1; k <= half; ++k) {
      out.spectrum[k - 1] = std::sqrt(s.power[k]) / norm;
      double p = s.power[k] / total;
      if (p > 0) entropy -= p * std::log(p);
    }
    out.entropy = clip01(entropy / std::log(static_cast<double>(half)));

    for (std::size_t k = 0; k <= half; ++k)
      s.modelIn[k][0] = s.modelIn[k][1] = 0;
    for (std::size_t j = 0; j < s.k; ++j) {
      std::size_t k = s.order[j];
      s.modelIn[k][0] = s.freq[k][0];
      s.modelIn[k][1] = s.freq[k][1];
    }
    fftw_execute(s.inverse);

    double ss = 0;
    out.modelPeak = -INFINITY;
    for (std::size_t i = 0; i < n; ++i) {
      const double xhat = s.modelOut[i] / nd + all.mean;
      s.model[i] = xhat;
      ss += (x[i] - xhat) * (x[i] - xhat);
      out.modelPeak = std::max(out.modelPeak, xhat);
    }
    out.gates.fitError = std::sqrt(ss / nd);
  }

  out.forecast =
      gate::forecast(x, s.model, out.dominantBin, out.gates.lambda1, s.forecast, kind, s.scratch);
  out.projectedPeak = out.forecast.peakWithin(static_cast<double>(s.forecast.horizon));
  out.gates.isolation = 1.0 - out.projectedPeak;
  return out;
}

double cosineSimilarity(std::span<const double> a, std::span<const double> b) {
  const std::size_t n = std::min(a.size(), b.size());
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na == 0 || nb == 0) return 0;
  return dot / std::sqrt(na * nb);
}

}  // namespace pi0::gate
