// The fingerprint's writer (toJson) and its forecast; the reader is fingerprint_reader.cc.
#include "fleet/fingerprint.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "common/timestamp.h"
#include "fleet/resource_view.h"
#include "gate/forecast.h"

namespace pi0::fleet {

using Json = nlohmann::json;

// --- Writing ------------------------------------------------------------------------------------

namespace {

Json orNull(const std::optional<double>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json gatesJson(const SignalGates& g) {
  return {{"lambda_int", g.lambdaInt},
          {"lambda1", g.lambda1},
          {"fit_error", g.fitError},
          {"gluing_delta", g.gluingDelta},
          {"isolation", g.isolation}};
}

Json forecastJson(const SignalForecast& f) {
  return {{"horizonSeconds", f.horizonSeconds},
          {"base", f.base},
          {"trendStart", f.trendStart},
          {"trendPerSecond", f.trendPerSecond},
          {"noise", f.noise},
          {"troubleLine", f.troubleLine},
          {"stallRate", orNull(f.stallRate)},
          {"secondsToTrouble", orNull(f.secondsToTrouble)}};
}

Json signalJson(const SignalFingerprint& s, FingerprintDetail detail) {
  Json j{{"samples", s.samples},
         {"current", s.current},
         {"mean", s.mean},
         {"std", s.stddev},
         {"gates", s.gates ? gatesJson(*s.gates) : Json(nullptr)},
         {"projectedPeak", orNull(s.projectedPeak)},
         {"forecast", s.forecast ? forecastJson(*s.forecast) : Json(nullptr)},
         {"dominantPeriodSeconds", orNull(s.dominantPeriodSeconds)}};
  if (detail == FingerprintDetail::kSpectra) {
    j["spectrum"] = s.spectrum.empty() ? Json(nullptr) : Json(s.spectrum);
    j["entropy"] = orNull(s.entropy);
  }
  return j;
}

Json gpuJson(const GpuInfo& g) {
  return {{"index", g.index},
          {"name", g.name},
          {"uuid", g.uuid},
          {"memoryTotalBytes", g.memoryTotalBytes},
          {"smCount", g.smCount},
          {"smClockMHz", g.smClockMHz},
          {"memoryClockMHz", g.memoryClockMHz},
          {"memoryBusWidthBits", g.memoryBusWidthBits},
          {"nominalBandwidthBytesPerSecond", orNull(g.nominalBandwidthBytesPerSecond)},
          {"probe",
           {{"achievedBytesPerSecond", orNull(g.probeAchievedBytesPerSecond)},
            {"ratio", orNull(g.probeRatio)}}}};
}

}  // namespace

std::string toJson(const NodeFingerprint& fp, FingerprintDetail detail) {
  Json signals = Json::object();
  for (const auto& [name, s] : fp.signals) {
    if (detail == FingerprintDetail::kResources && !readByResourceView(name)) continue;
    signals[name] = signalJson(s, detail);
  }
  Json missing = Json::array();
  for (const auto& m : fp.missingSources)
    missing.push_back({{"source", m.source}, {"reason", m.reason}});
  Json gpus = Json::array();
  if (detail != FingerprintDetail::kResources) {
    for (const auto& g : fp.gpus)
      gpus.push_back(gpuJson(g));
  }
  const Json doc{{"apiVersion", "stability.pi0.io/v1alpha1"},
                 {"kind", "Fingerprint"},
                 {"node", fp.node},
                 {"timestamp", rfc3339Millis(fp.timestamp)},
                 {"intervalSeconds", fp.intervalSeconds},
                 {"windowSize", fp.windowSize},
                 {"windowFill", fp.windowFill},
                 {"ready", fp.ready},
                 {"signals", std::move(signals)},
                 {"missingSources", std::move(missing)},
                 {"gpus", std::move(gpus)}};
  return doc.dump();
}

}  // namespace pi0::fleet
