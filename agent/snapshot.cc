#include "agent/snapshot.h"

#include <cmath>

#include "common/timestamp.h"

namespace pi0::agent {
namespace {

// JSON has no infinity: an unbounded projection is null.
nlohmann::json finiteOrNull(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nullptr;
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
      j["dominantPeriodSeconds"] = period > 0 ? nlohmann::json(period) : nullptr;
      j["spectrum"] = a.spectrum;
      j["entropy"] = a.entropy;
    } else {
      j["gates"] = nullptr;
      j["projectedPeak"] = nullptr;
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
  if (s.memoryTrend) {
    doc["memoryTrend"] = {{"slopePerSecond", s.memoryTrend->slopePerSecond},
                          {"secondsToExhaustion", finiteOrNull(s.memoryTrend->secondsToExhaustion)},
                          {"r2", s.memoryTrend->r2}};
  } else {
    doc["memoryTrend"] = nullptr;
  }
  return doc;
}

}  // namespace pi0::agent
