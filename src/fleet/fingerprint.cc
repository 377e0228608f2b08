#include "fleet/fingerprint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json_parse.h"
#include "common/timestamp.h"

namespace pi0::fleet {
namespace {

using Json = nlohmann::json;

// Floating-point noise in the agent's arithmetic (a mean of ones that sums to 1 + 2e-16) must
// not cost a node its data; anything further out of range is a defect.
constexpr double kRatioSlack = 1e-9;

// Shortest text that reads back as the same double ("0.5", "1.0000001").
std::string numberText(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

std::string join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

std::string typeName(const Json& v) {
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "something else";
}

// Reads the members of one JSON object; every error names the member's dotted path.
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string path) : object_(object), path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  Result<const Json*> member(std::string_view key) const {
    auto it = object_.find(key);
    if (it == object_.end()) return fail(where() + ": missing " + std::string(key));
    return &*it;
  }

  Result<std::string> string(std::string_view key) const {
    auto v = member(key);
    if (!v) return std::unexpected(v.error());
    if (!(*v)->is_string()) return wrongType(key, **v, "a string");
    return (*v)->get<std::string>();
  }

  Result<bool> boolean(std::string_view key) const {
    auto v = member(key);
    if (!v) return std::unexpected(v.error());
    if (!(*v)->is_boolean()) return wrongType(key, **v, "a boolean");
    return (*v)->get<bool>();
  }

  // A finite number in [lo, hi]; `loExclusive` makes lo itself invalid.
  Result<double> number(std::string_view key, double lo, double hi,
                        bool loExclusive = false) const {
    auto v = member(key);
    if (!v) return std::unexpected(v.error());
    return checkNumber(**v, join(path_, key), lo, hi, loExclusive);
  }

  Result<double> ratio(std::string_view key) const {
    auto v = member(key);
    if (!v) return std::unexpected(v.error());
    return checkRatio(**v, join(path_, key));
  }

  // null, or what `read` makes of the value.
  template <class F>
  auto nullable(std::string_view key, F read) const -> Result<
      std::optional<typename std::invoke_result_t<F, const Json&, std::string>::value_type>> {
    using T = typename std::invoke_result_t<F, const Json&, std::string>::value_type;
    auto v = member(key);
    if (!v) return std::unexpected(v.error());
    if ((*v)->is_null()) return std::optional<T>();
    auto r = read(**v, join(path_, key));
    if (!r) return std::unexpected(r.error());
    return std::optional<T>(std::move(*r));
  }

  Result<std::int64_t> integer(std::string_view key, std::int64_t lo) const {
    auto v = member(key);
    if (!v) return std::unexpected(v.error());
    const std::string at = join(path_, key);
    if (!(*v)->is_number()) return wrongType(key, **v, "an integer");
    const double d = (*v)->get<double>();
    // 2^53: beyond it a double no longer holds every integer, and no window is that long.
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0)
      return fail(at + ": " + (*v)->dump() + " is not an integer");
    const auto i = static_cast<std::int64_t>(d);
    if (i < lo)
      return fail(at + ": " + std::to_string(i) + " is below the minimum " + std::to_string(lo));
    return i;
  }

  static Result<double> checkNumber(const Json& v, const std::string& at, double lo, double hi,
                                    bool loExclusive = false) {
    if (!v.is_number()) return fail(at + ": " + typeName(v) + " where a number belongs");
    const double d = v.get<double>();
    if (!std::isfinite(d)) return fail(at + ": not a finite number");
    if (d < lo || (loExclusive && d == lo) || d > hi)
      return fail(at + ": " + numberText(d) + " is out of range");
    return d;
  }

  static Result<double> checkRatio(const Json& v, const std::string& at) {
    auto d = checkNumber(v, at, -kRatioSlack, 1 + kRatioSlack);
    if (!d) return d;
    return std::clamp(*d, 0.0, 1.0);
  }

 private:
  std::string where() const { return path_.empty() ? std::string("fingerprint") : path_; }

  std::unexpected<Error> wrongType(std::string_view key, const Json& v,
                                   std::string_view wanted) const {
    return fail(join(path_, key) + ": " + typeName(v) + " where " + std::string(wanted) +
                " belongs");
  }

  const Json& object_;
  std::string path_;
};

Result<ObjectReader> objectAt(const Json& v, std::string path) {
  if (!v.is_object()) return fail(path + ": " + typeName(v) + " where an object belongs");
  return ObjectReader(v, std::move(path));
}

Result<SignalGates> parseGates(const Json& v, std::string path) {
  auto r = objectAt(v, std::move(path));
  if (!r) return std::unexpected(r.error());
  SignalGates g;
  // Listed in the schema's order so that the first missing gate is the one reported.
  const std::pair<const char*, double*> fields[] = {{"lambda_int", &g.lambdaInt},
                                                    {"lambda1", &g.lambda1},
                                                    {"fit_error", &g.fitError},
                                                    {"gluing_delta", &g.gluingDelta},
                                                    {"isolation", &g.isolation}};
  for (const auto& [key, out] : fields) {
    auto d = r->ratio(key);  // fit_error's range is [0,1] too
    if (!d) return std::unexpected(d.error());
    *out = *d;
  }
  return g;
}

Result<double> parseRatioValue(const Json& v, std::string path) {
  return ObjectReader::checkRatio(v, path);
}

Result<double> parsePeriod(const Json& v, std::string path) {
  return ObjectReader::checkNumber(v, path, 0, HUGE_VAL, /*loExclusive=*/true);
}

Result<std::vector<double>> parseSpectrum(const Json& v, std::string path) {
  if (!v.is_array()) return fail(path + ": " + typeName(v) + " where an array belongs");
  if (v.size() < 4) return fail(path + ": " + std::to_string(v.size()) + " bins, fewer than 4");
  std::vector<double> bins;
  bins.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    auto d = ObjectReader::checkRatio(v[i], path + "[" + std::to_string(i) + "]");
    if (!d) return std::unexpected(d.error());
    bins.push_back(*d);
  }
  return bins;
}

Result<SignalForecast> parseForecast(const Json& v, std::string path) {
  auto r = objectAt(v, std::move(path));
  if (!r) return std::unexpected(r.error());
  SignalForecast f;
  auto horizon = r->number("horizonSeconds", 0, HUGE_VAL, /*loExclusive=*/true);
  if (!horizon) return std::unexpected(horizon.error());
  f.horizonSeconds = *horizon;
  auto base = r->ratio("base");
  if (!base) return std::unexpected(base.error());
  f.base = *base;
  auto trendStart = r->ratio("trendStart");
  if (!trendStart) return std::unexpected(trendStart.error());
  f.trendStart = *trendStart;
  auto trend = r->number("trendPerSecond", 0, HUGE_VAL);
  if (!trend) return std::unexpected(trend.error());
  f.trendPerSecond = *trend;
  auto noise = r->number("noise", 0, HUGE_VAL);
  if (!noise) return std::unexpected(noise.error());
  f.noise = *noise;
  auto line = r->number("troubleLine", 0, 1 + kRatioSlack, /*loExclusive=*/true);
  if (!line) return std::unexpected(line.error());
  f.troubleLine = std::min(*line, 1.0);
  auto seconds = r->nullable("secondsToTrouble", [](const Json& x, std::string at) {
    return ObjectReader::checkNumber(x, at, 0, HUGE_VAL);
  });
  if (!seconds) return std::unexpected(seconds.error());
  f.secondsToTrouble = *seconds;
  if (v.contains("stallRate")) {  // absent from agents older than the pressure model
    auto stall = r->nullable("stallRate", [](const Json& x, std::string at) {
      return ObjectReader::checkNumber(x, at, 0, 1 + kRatioSlack);
    });
    if (!stall) return std::unexpected(stall.error());
    if (*stall) f.stallRate = std::min(**stall, 1.0);
  }
  return f;
}

// `hasNullForecast` is set when the signal's forecast is given as null.
Result<SignalFingerprint> parseSignal(const Json& v, std::string path, bool* hasNullForecast) {
  auto r = objectAt(v, std::move(path));
  if (!r) return std::unexpected(r.error());
  SignalFingerprint s;
  auto samples = r->integer("samples", 1);
  if (!samples) return std::unexpected(samples.error());
  s.samples = *samples;
  auto current = r->ratio("current");
  if (!current) return std::unexpected(current.error());
  s.current = *current;
  auto mean = r->ratio("mean");
  if (!mean) return std::unexpected(mean.error());
  s.mean = *mean;
  auto stddev = r->number("std", 0, 0.5 + kRatioSlack);
  if (!stddev) return std::unexpected(stddev.error());
  s.stddev = std::min(*stddev, 0.5);
  auto gates = r->nullable("gates", parseGates);
  if (!gates) return std::unexpected(gates.error());
  s.gates = *gates;
  auto peak = r->nullable("projectedPeak", parseRatioValue);
  if (!peak) return std::unexpected(peak.error());
  s.projectedPeak = *peak;
  auto period = r->nullable("dominantPeriodSeconds", parsePeriod);
  if (!period) return std::unexpected(period.error());
  s.dominantPeriodSeconds = *period;
  // Absent: a body of FingerprintDetail::kSummary.
  if (v.contains("spectrum")) {
    auto spectrum = r->nullable("spectrum", parseSpectrum);
    if (!spectrum) return std::unexpected(spectrum.error());
    if (*spectrum) s.spectrum = std::move(**spectrum);
  }
  if (v.contains("entropy")) {
    auto entropy = r->nullable("entropy", parseRatioValue);
    if (!entropy) return std::unexpected(entropy.error());
    s.entropy = *entropy;
  }
  // No member at all: an agent older than the forecast (see fingerprint.h).
  if (v.contains("forecast")) {
    auto forecast = r->nullable("forecast", parseForecast);
    if (!forecast) return std::unexpected(forecast.error());
    if (!*forecast) *hasNullForecast = true;
    s.forecast = *forecast;
    if (s.forecast) s.forecast->pressureNow = s.current;
  }
  return s;
}

// GPU facts are informational: a field of another type than the schema's reads as absent.
GpuInfo parseGpu(const Json& v) {
  auto integer = [&v](const char* key) -> std::int64_t {
    auto it = v.find(key);
    return it != v.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
  };
  auto text = [&v](const char* key) -> std::string {
    auto it = v.find(key);
    return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto number = [](const Json& object, const char* key) -> std::optional<double> {
    auto it = object.find(key);
    if (it == object.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
  GpuInfo g;
  g.index = integer("index");
  g.name = text("name");
  g.uuid = text("uuid");
  g.memoryTotalBytes = integer("memoryTotalBytes");
  g.smCount = integer("smCount");
  g.smClockMHz = integer("smClockMHz");
  g.memoryClockMHz = integer("memoryClockMHz");
  g.memoryBusWidthBits = integer("memoryBusWidthBits");
  g.nominalBandwidthBytesPerSecond = number(v, "nominalBandwidthBytesPerSecond");
  if (auto probe = v.find("probe"); probe != v.end() && probe->is_object()) {
    g.probeAchievedBytesPerSecond = number(*probe, "achievedBytesPerSecond");
    g.probeRatio = number(*probe, "ratio");
  }
  return g;
}

// The first bytes of a body, printable, for an error message.
std::string excerpt(std::string_view body) {
  constexpr std::size_t kMax = 40;
  std::string out;
  for (char c : body.substr(0, kMax))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (body.size() > kMax) out += "...";
  return out;
}

// The fingerprint's signals, missingSources and gpus into `fp` (whose `ready` is read).
Result<void> parseLists(const ObjectReader& r, NodeFingerprint& fp) {
  auto signalsJson = r.member("signals");
  if (!signalsJson) return std::unexpected(signalsJson.error());
  if (!(*signalsJson)->is_object())
    return fail("signals: " + typeName(**signalsJson) + " where an object belongs");
  for (const auto& [name, value] : (*signalsJson)->items()) {
    if (name.empty()) return fail("signals: a signal with an empty name");
    bool nullForecast = false;
    auto s = parseSignal(value, "signals." + name, &nullForecast);
    if (!s) return std::unexpected(s.error());
    if (fp.ready && !s->gates)
      return fail("signals." + name + ".gates: null in a fingerprint that is ready");
    if (fp.ready && nullForecast)
      return fail("signals." + name + ".forecast: null in a fingerprint that is ready");
    fp.signals.emplace(name, std::move(*s));
  }

  auto missing = r.member("missingSources");
  if (!missing) return std::unexpected(missing.error());
  if (!(*missing)->is_array())
    return fail("missingSources: " + typeName(**missing) + " where an array belongs");
  for (std::size_t i = 0; i < (*missing)->size(); ++i) {
    auto m = objectAt((**missing)[i], "missingSources[" + std::to_string(i) + "]");
    if (!m) return std::unexpected(m.error());
    auto source = m->string("source");
    if (!source) return std::unexpected(source.error());
    auto reason = m->string("reason");
    if (!reason) return std::unexpected(reason.error());
    fp.missingSources.push_back({std::move(*source), std::move(*reason)});
  }

  auto gpus = r.member("gpus");
  if (!gpus) return std::unexpected(gpus.error());
  if (!(*gpus)->is_array()) return fail("gpus: " + typeName(**gpus) + " where an array belongs");
  for (std::size_t i = 0; i < (*gpus)->size(); ++i) {
    if (!(**gpus)[i].is_object())
      return fail("gpus[" + std::to_string(i) + "]: " + typeName((**gpus)[i]) +
                  " where an object belongs");
    fp.gpus.push_back(parseGpu((**gpus)[i]));
  }
  return {};
}

}  // namespace

double SignalForecast::at(double seconds) const {
  const double tau = std::max(seconds, 0.0);
  double peak = std::max(base, trendStart + trendPerSecond * tau);
  if (stallRate && *stallRate > pressureNow)
    peak = std::max(peak, *stallRate + (pressureNow - *stallRate) * std::exp(-tau / 10.0));
  return std::clamp(peak, 0.0, 1.0);
}

Result<NodeFingerprint> parseFingerprint(std::string_view body) {
  const auto parsed = json::parse(body);
  if (!parsed) return fail("not JSON: \"" + excerpt(body) + "\"");
  const Json& doc = *parsed;
  auto top = objectAt(doc, "fingerprint");
  if (!top) return std::unexpected(top.error());
  // The error paths below start at the document's top level ("signals.cpu.gates").
  const ObjectReader r(doc, "");

  auto apiVersion = r.string("apiVersion");
  if (!apiVersion) return std::unexpected(apiVersion.error());
  if (*apiVersion != "stability.pi0.io/v1alpha1")
    return fail("apiVersion: \"" + excerpt(*apiVersion) + "\", not stability.pi0.io/v1alpha1");
  auto kind = r.string("kind");
  if (!kind) return std::unexpected(kind.error());
  if (*kind != "Fingerprint") return fail("kind: \"" + excerpt(*kind) + "\", not Fingerprint");

  NodeFingerprint fp;
  auto node = r.string("node");
  if (!node) return std::unexpected(node.error());
  if (node->empty()) return fail("node: empty");
  fp.node = std::move(*node);

  auto timestamp = r.string("timestamp");
  if (!timestamp) return std::unexpected(timestamp.error());
  auto t = pi0::parseRfc3339(*timestamp);
  if (!t) return fail("timestamp: \"" + excerpt(*timestamp) + "\" is not an RFC 3339 date-time");
  fp.timestamp = *t;

  auto interval = r.number("intervalSeconds", 0, HUGE_VAL, /*loExclusive=*/true);
  if (!interval) return std::unexpected(interval.error());
  fp.intervalSeconds = *interval;
  auto windowSize = r.integer("windowSize", 8);
  if (!windowSize) return std::unexpected(windowSize.error());
  fp.windowSize = *windowSize;
  auto fill = r.ratio("windowFill");
  if (!fill) return std::unexpected(fill.error());
  fp.windowFill = *fill;
  auto ready = r.boolean("ready");
  if (!ready) return std::unexpected(ready.error());
  fp.ready = *ready;

  auto lists = parseLists(r, fp);
  if (!lists) return std::unexpected(lists.error());
  return fp;
}

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
  for (const auto& [name, s] : fp.signals)
    signals[name] = signalJson(s, detail);
  Json missing = Json::array();
  for (const auto& m : fp.missingSources)
    missing.push_back({{"source", m.source}, {"reason", m.reason}});
  Json gpus = Json::array();
  for (const auto& g : fp.gpus)
    gpus.push_back(gpuJson(g));
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
