#include "agent/snapshot.h"

#include <algorithm>
#include <cmath>

#include "common/timestamp.h"

namespace pi0::agent {
namespace {

double clip01(double v) {
  return std::clamp(v, 0.0, 1.0);
}

// The forecast path F(τ) = min(1, max(base, trendStart + trendPerSecond·τ)), τ in seconds.
nlohmann::json forecastJson(const SignalState& sig, const Snapshot& s) {
  const auto& f = sig.analysis->forecast;
  return {
      {"horizonSeconds", s.horizonSeconds},
      {"base", clip01(f.base)},
      {"trendStart", clip01(f.trendStart)},
      {"trendPerSecond", f.trendPerSample / s.intervalSeconds},
      {"noise", f.noise},
      {"troubleLine", sig.troubleLine},
      {"stallRate", f.stallRate ? nlohmann::json(*f.stallRate) : nullptr},
      {"secondsToTrouble", sig.secondsToTrouble ? nlohmann::json(*sig.secondsToTrouble) : nullptr}};
}

}  // namespace

nlohmann::json toFingerprintJson(const Snapshot& s) {
  nlohmann::json signals = nlohmann::json::object();
  for (const auto& sig : s.signals) {
    nlohmann::json j{{"samples", sig.samples},
                     {"current", sig.current},
                     {"mean", sig.mean},
                     {"std", sig.stddev}};
    if (sig.analysis) {
      const auto& a = *sig.analysis;
      const double period = a.dominantPeriodSeconds(s.windowSize, s.intervalSeconds);
      j["gates"] = {{"lambda_int", a.gates.lambdaInt},
                    {"lambda1", a.gates.lambda1},
                    {"fit_error", a.gates.fitError},
                    {"gluing_delta", a.gates.gluingDelta},
                    {"isolation", a.gates.isolation}};
      j["projectedPeak"] = a.projectedPeak;
      j["forecast"] = forecastJson(sig, s);
      j["dominantPeriodSeconds"] = period > 0 ? nlohmann::json(period) : nullptr;
      j["spectrum"] = a.spectrum;
      j["entropy"] = a.entropy;
    } else {
      j["gates"] = nullptr;
      j["projectedPeak"] = nullptr;
      j["forecast"] = nullptr;
      j["dominantPeriodSeconds"] = nullptr;
      j["spectrum"] = nullptr;
      j["entropy"] = nullptr;
    }
    signals[sig.name] = std::move(j);
  }
  nlohmann::json missing = nlohmann::json::array();
  for (const auto& m : s.missing)
    missing.push_back({{"source", m.source}, {"reason", m.reason}});

  nlohmann::json doc{{"apiVersion", "stability.pi0.io/v1alpha1"},
                     {"kind", "Fingerprint"},
                     {"node", s.node},
                     {"timestamp", rfc3339Millis(s.timestamp)},
                     {"intervalSeconds", s.intervalSeconds},
                     {"windowSize", s.windowSize},
                     {"windowFill", s.windowFill},
                     {"ready", s.ready},
                     {"signals", std::move(signals)},
                     {"missingSources", std::move(missing)},
                     {"gpus", s.gpus}};
  return doc;
}

}  // namespace pi0::agent
