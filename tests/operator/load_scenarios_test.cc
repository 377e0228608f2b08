// The operator driven by load shapes through the real analysis: a synthetic series (steps up and
// down, spikes, a rhythm around a level's bound, a slow leak) goes sample by sample through the
// agent's gate::SpectrumAnalyzer (64-sample window, 1 s interval, the default forecast), into a
// fingerprint as the agent publishes it (projectedPeak and the forecast), through
// fleet::clusterLoad (with the matrix's lead) into decideMatrix, whose steps the test applies to
// the channels at once. The properties are judged against the series itself (the ground truth),
// never against the code's own numbers:
//   - a step up moves the level within a few samples;
//   - once the series has fallen below the bound of the level under the current one (and stayed
//     there for the few samples the forecast takes to follow a fall), no degrade or shutdown step
//     is taken; the level falls back after the dwell and everything is restored;
//   - a rhythm around a bound does not make the level flap;
//   - a slow leak raises the level before the series crosses the bound, earlier still with a lead.
// Each scenario also runs with the first definition of the projected peak, max(μ + 2σ, max x̂)
// over the window (computed here from SignalAnalysis.mean, .stddev and .modelPeak), to show what
// it did on the same series: it kept shutting channels down for most of a window after a fall.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fleet/load.h"
#include "gate/spectrum.h"
#include "gate/window.h"
#include "matrix_decision.h"

using namespace pi0;
using namespace pi0::op;
using stability::ChannelState;

namespace {

constexpr std::size_t kWindow = 64;
constexpr double kInterval = 1.0;  // seconds per sample
constexpr int kChannels = 6;
const SteadyTime kStart = SteadyTime{} + std::chrono::hours(10);

enum class PeakModel {
  kForecast,  // the agent's projectedPeak and forecast today
  kFirst,     // max(μ + 2σ, max x̂) over the window, no forecast (the first definition)
};

// Levels normal ≤ 0.7, elevated ≤ 0.8, high ≤ 0.9, critical. Channels c0..c5 are degraded at
// elevated and shut down at high, in that order; one step per 10 s; recovery after 20 s of calm
// under the lower level's bound minus 0.05.
stability::MatrixSpec scenarioMatrix(int anticipationSeconds = 0) {
  stability::MatrixSpec m;
  m.name = "scenario";
  m.levels = {{"normal", 0.7}, {"elevated", 0.8}, {"high", 0.9}, {"critical", std::nullopt}};
  for (int i = 0; i < kChannels; ++i) {
    m.rows.push_back({{"shop", "c" + std::to_string(i)},
                      false,
                      {{"elevated", stability::Action::kDegrade, i},
                       {"high", stability::Action::kShutdown, i}}});
  }
  m.loadSignal.resources = {Resource::kCpu};
  m.stepIntervalSeconds = 10;
  m.hysteresis = {0.05, 20};
  m.anticipationSeconds = anticipationSeconds;
  return m;
}

// What the agent publishes for one signal from its analysis (docs/fingerprint.schema.json).
fleet::SignalFingerprint published(const gate::SignalAnalysis& a, PeakModel model,
                                   const gate::ForecastOptions& options) {
  fleet::SignalFingerprint s;
  s.samples = static_cast<std::int64_t>(kWindow);
  s.mean = a.mean;
  s.stddev = a.stddev;
  s.gates = fleet::SignalGates{a.gates.lambdaInt, a.gates.lambda1, a.gates.fitError,
                               a.gates.gluingDelta, a.gates.isolation};
  double peak = a.projectedPeak;
  if (model == PeakModel::kFirst) {
    peak = std::clamp(std::max(a.mean + 2 * a.stddev, a.modelPeak), 0.0, 1.0);
  } else {
    const gate::Forecast& f = a.forecast;
    const auto samples = f.samplesUntil(1.0);
    s.forecast =
        fleet::SignalForecast{static_cast<double>(options.horizon) * kInterval,
                              std::clamp(f.base, 0.0, 1.0),
                              std::clamp(f.trendStart, 0.0, 1.0),
                              f.trendPerSample / kInterval,
                              f.noise,
                              1.0,
                              samples ? std::optional<double>(*samples * kInterval) : std::nullopt,
                              std::nullopt,
                              0};
  }
  s.gates->isolation = 1.0 - peak;
  s.projectedPeak = peak;
  return s;
}

// One second of the run.
struct Second {
  int t = 0;
  double truth = 0;  // the sample the node took
  double load = 0;   // ℓ the matrix saw
  std::optional<double> anticipated;
  int level = 0;
  std::optional<stability::PlanStep> step;  // a degrade or shutdown taken now
  int restores = 0;                         // restores started now
  bool anticipatedRise = false;
};

// The shape of a series: its value at second t (t < 0 is the history that fills the window).
using Shape = std::function<double(int)>;

std::vector<Second> runScenario(const Shape& shape, int seconds, PeakModel model,
                                const stability::MatrixSpec& matrix,
                                const gate::ForecastOptions& options = {}) {
  auto analyzer = gate::SpectrumAnalyzer::create(kWindow, 4, options);
  REQUIRE(analyzer);
  gate::RollingWindow window(kWindow);
  // Noise of std 0.01, the same on every run.
  std::mt19937 rng(20261205);
  std::normal_distribution<double> noise(0.0, 0.01);
  auto sample = [&](int t) { return std::clamp(shape(t) + noise(rng), 0.0, 1.0); };
  for (int t = -static_cast<int>(kWindow); t < 0; ++t)
    window.push(sample(t));

  std::vector<stability::PlannedChannel> channels;
  for (int i = 0; i < kChannels; ++i) {
    stability::PlannedChannel c;
    c.ref = {"shop", "c" + std::to_string(i)};
    c.cpo = 0.5;
    channels.push_back(c);
  }
  MatrixMemory memory;
  const std::array<fleet::Resource, 1> cpu = {fleet::Resource::kCpu};
  const std::optional<double> lead = matrix.anticipationSeconds > 0
                                         ? std::optional<double>(matrix.anticipationSeconds)
                                         : std::nullopt;
  std::vector<Second> out;
  std::vector<double> values(kWindow);
  for (int t = 0; t < seconds; ++t) {
    Second s;
    s.t = t;
    s.truth = sample(t);
    window.push(s.truth);
    window.copyTo(values);
    const gate::SignalAnalysis a = analyzer->analyze(values);

    fleet::NodeFingerprint fp;
    fp.node = "node-a";
    fp.ready = true;
    fp.windowFill = 1;
    fp.signals.emplace("cpu", published(a, model, options));
    const std::array<fleet::NodeLoadInput, 1> nodes = {
        fleet::NodeLoadInput{"node-a", fleet::Capacity{4000, 0, 0}, &fp}};
    const fleet::ClusterLoad cl = fleet::clusterLoad(nodes, cpu, lead);
    REQUIRE(cl.load);
    s.load = *cl.load;
    s.anticipated = cl.anticipated;

    const SteadyTime now = kStart + std::chrono::seconds(t);
    const MatrixDecision d = decideMatrix(matrix, memory, cl.load, channels, now, cl.anticipated);
    memory.level = d.level;
    s.level = d.level.index;
    s.anticipatedRise = d.anticipatedRise;
    auto find = [&](const stability::ChannelRef& ref) -> stability::PlannedChannel& {
      for (auto& c : channels) {
        if (c.ref == ref) return c;
      }
      FAIL("a step for an unknown channel");
      return channels.front();
    };
    if (d.shutdownNow) {
      find(d.shutdownNow->channel).state = d.shutdownNow->target;
      s.step = d.shutdownNow;
      memory.lastActionAt = now;
    }
    for (const auto& r : d.restoreNow) {
      find(r.channel).state = ChannelState::kActive;
      ++s.restores;
      memory.lastActionAt = now;
    }
    out.push_back(s);
  }
  return out;
}

// Degrade and shutdown steps taken at or after second `from`.
int stepsFrom(const std::vector<Second>& run, int from) {
  return static_cast<int>(std::count_if(
      run.begin(), run.end(), [&](const Second& s) { return s.t >= from && s.step.has_value(); }));
}

// The first second at or after `from` at which `pred` holds; -1 when none.
int firstSecond(const std::vector<Second>& run, int from,
                const std::function<bool(const Second&)>& pred) {
  for (const auto& s : run) {
    if (s.t >= from && pred(s)) return s.t;
  }
  return -1;
}

int levelChanges(const std::vector<Second>& run) {
  int n = 0;
  for (std::size_t i = 1; i < run.size(); ++i)
    n += run[i].level != run[i - 1].level;
  return n;
}

// Every degrade or shutdown step in `run` is earned by the series: within the last `follow`
// samples (the forecast's recent samples, the time it takes to follow a fall), the series was
// above the bound of the level under the one the matrix is at. Returns the seconds of the steps
// that were not.
std::vector<int> unearnedSteps(const std::vector<Second>& run, const stability::MatrixSpec& m,
                               int follow) {
  std::vector<int> out;
  for (std::size_t i = 0; i < run.size(); ++i) {
    if (!run[i].step || run[i].level == 0) continue;
    const double bound = *m.levels[static_cast<std::size_t>(run[i].level - 1)].upperBound;
    bool earned = false;
    for (std::size_t j = i + 1 >= static_cast<std::size_t>(follow) ? i + 1 - follow : 0; j <= i;
         ++j)
      earned = earned || run[j].truth > bound;
    if (!earned) out.push_back(run[i].t);
  }
  return out;
}

int channelsDown(const std::vector<Second>& run) {
  int down = 0;
  for (const auto& s : run) {
    if (s.step) ++down;
    down -= s.restores;
  }
  return down;
}

}  // namespace

TEST_CASE("a step up to 0.85 and back down to 0.3: the level follows both ways") {
  // 0.3, then 0.85 (level high: above elevated's bound 0.8, under high's 0.9) from t = 10 for
  // 40 s, then 0.3 again until t = 160.
  constexpr int kUp = 10, kDown = 50;
  const Shape shape = [](int t) { return t >= kUp && t < kDown ? 0.85 : 0.3; };
  const auto m = scenarioMatrix();
  const int follow = static_cast<int>(gate::ForecastOptions{}.recent);

  const auto run = runScenario(shape, 160, PeakModel::kForecast, m);
  // Up: at level high within 3 samples of the step.
  const int high = firstSecond(run, 0, [](const Second& s) { return s.level >= 2; });
  CHECK(high >= kUp);
  CHECK(high <= kUp + 2);
  CHECK(stepsFrom(run, 0) >= 3);  // it acted while the load was high (steps at 10, 20, 30, 40)
  // Down: no degrade or shutdown step once the series has been under the bound for `follow`
  // samples; none unearned anywhere.
  CHECK(stepsFrom(run, kDown + follow) == 0);
  CHECK(unearnedSteps(run, m, follow).empty());
  // The level falls after the dwell (20 s) and everything comes back.
  const int normal = firstSecond(run, kDown, [](const Second& s) { return s.level == 0; });
  CHECK(normal > kDown);
  CHECK(normal <= kDown + follow + m.hysteresis.dwellSeconds + 2);
  CHECK(channelsDown(run) == 0);

  // The first definition on the same series: μ + 2σ of a window holding both levels reads 1 after
  // the fall, so the level stays up for most of a window and the shutdowns go on while the load
  // is at 0.3.
  const auto first = runScenario(shape, 160, PeakModel::kFirst, m);
  CHECK(stepsFrom(first, kDown + follow) >= 2);
  CHECK_FALSE(unearnedSteps(first, m, follow).empty());
  const int firstNormal = firstSecond(first, kDown, [](const Second& s) { return s.level == 0; });
  CHECK((firstNormal < 0 || firstNormal > kDown + 40));
  // And it saw the rise late: a window mostly at 0.3 keeps μ + 2σ under 0.8 for a few samples.
  const int firstHigh = firstSecond(first, 0, [](const Second& s) { return s.level >= 2; });
  CHECK(firstHigh > kUp + 2);
}

TEST_CASE("irregular spikes: a spike is seen at once and no step follows it once it has passed") {
  // 0.4 with one-sample spikes to 0.95 at irregular times.
  const std::vector<int> spikes = {15, 52, 97, 150};
  const Shape shape = [&](int t) {
    return std::find(spikes.begin(), spikes.end(), t) != spikes.end() ? 0.95 : 0.4;
  };
  const auto m = scenarioMatrix();
  const int follow = static_cast<int>(gate::ForecastOptions{}.recent);
  const auto run = runScenario(shape, 200, PeakModel::kForecast, m);
  for (int spike : spikes) {
    CAPTURE(spike);
    CHECK(run[static_cast<std::size_t>(spike)].level == 3);  // the spike crosses high's bound 0.9
    // Back at normal after the dwell, before the next spike.
    CHECK(run[static_cast<std::size_t>(spike + follow + m.hysteresis.dwellSeconds + 2)].level == 0);
  }
  CHECK(unearnedSteps(run, m, follow).empty());
  CHECK(channelsDown(run) == 0);

  // The first definition does not see a one-sample spike at all (μ + 2σ of a window at 0.4 with
  // one 0.95 is about 0.55): the level never moves.
  const auto first = runScenario(shape, 200, PeakModel::kFirst, m);
  CHECK(levelChanges(first) == 0);
}

TEST_CASE("a rhythm around normal's bound does not make the level flap") {
  // A sine of mean 0.7 and amplitude 0.06, period 16 s: it crosses 0.7 every 8 s.
  const Shape shape = [](int t) { return 0.7 + 0.06 * std::sin(2 * M_PI * t / 16.0); };
  const auto m = scenarioMatrix();
  for (PeakModel model : {PeakModel::kForecast, PeakModel::kFirst}) {
    CAPTURE(static_cast<int>(model));
    const auto run = runScenario(shape, 200, model, m);
    // At most one change (the first rise), and no restore: nothing is degraded twice.
    CHECK(levelChanges(run) <= 1);
    CHECK(std::none_of(run.begin(), run.end(), [](const Second& s) { return s.restores > 0; }));
    CHECK(stepsFrom(run, 0) <= kChannels);
    // The crests pass 0.76 > elevated's lower bound 0.7: the level is elevated, not normal.
    CHECK(run.back().level >= 1);
  }
}

TEST_CASE("a slow leak: the level rises before the series crosses the bound, earlier with a lead") {
  // From 0.5, rising 0.004 per second: the series crosses 0.7 at t = 50 and 0.8 at t = 75.
  const Shape shape = [](int t) { return t < 0 ? 0.5 : 0.5 + 0.004 * t; };
  constexpr int kCrossElevated = 50, kCrossHigh = 75;
  auto reached = [](const std::vector<Second>& run, int level) {
    return firstSecond(run, 0, [level](const Second& s) { return s.level >= level; });
  };

  const auto plain = runScenario(shape, 100, PeakModel::kForecast, scenarioMatrix());
  const int plainElevated = reached(plain, 1), plainHigh = reached(plain, 2);
  // The projected peak looks 30 s ahead along the trend: the level is there at least 10 s before
  // the series is.
  CHECK(plainElevated >= 0);
  CHECK(plainElevated <= kCrossElevated - 10);
  CHECK(plainHigh >= 0);
  CHECK(plainHigh <= kCrossHigh - 10);

  // A lead of 30 s looks 30 s further: high comes at least 15 s sooner, and says why.
  const auto led = runScenario(shape, 100, PeakModel::kForecast, scenarioMatrix(30));
  const int ledHigh = reached(led, 2);
  CHECK(ledHigh >= 0);
  CHECK(ledHigh <= plainHigh - 15);
  CHECK(std::any_of(led.begin(), led.end(), [](const Second& s) { return s.anticipatedRise; }));
  for (const auto& s : led) {
    REQUIRE(s.anticipated);
    CHECK(*s.anticipated >= s.load - 1e-12);  // F never falls with τ
  }

  // The first definition trails the series: μ + 2σ of a ramp is about 0.025 above its newest
  // sample, so the level moves 10 s or more after the forecast's.
  const auto first = runScenario(shape, 100, PeakModel::kFirst, scenarioMatrix());
  CHECK(reached(first, 1) >= plainElevated + 10);
}

TEST_CASE("an anticipated rise that does not come true falls back under the dwell") {
  // From 0.3 rising 0.01 per second for 25 s, then flat at 0.55: the series never leaves normal
  // (it stays under the calm mark, normal's bound 0.7 minus the margin 0.05), but while it
  // rises, the forecast 30 s past the horizon expects far more.
  constexpr int kStop = 25;
  const Shape shape = [](int t) { return t < 0 ? 0.3 : 0.3 + 0.01 * (t < kStop ? t : kStop); };
  const auto m = scenarioMatrix(30);
  const gate::ForecastOptions options;
  const auto run = runScenario(shape, 140, PeakModel::kForecast, m, options);
  // The lead raised the level on the forecast alone.
  const int rise = firstSecond(run, 0, [](const Second& s) { return s.anticipatedRise; });
  CHECK(rise >= 0);
  CHECK(rise < kStop);
  // Once the series stops rising, the trend leaves the forecast within 2M samples (the trend's
  // fit); after that no step is taken, and the level is back at normal after the dwell.
  const int settled = kStop + static_cast<int>(2 * options.trendHalf);
  CHECK(stepsFrom(run, settled) == 0);
  const int normal = firstSecond(run, kStop, [](const Second& s) { return s.level == 0; });
  CHECK(normal > kStop);
  CHECK(normal <= settled + m.hysteresis.dwellSeconds + 2);
  CHECK(run.back().level == 0);
  CHECK(channelsDown(run) == 0);
}
