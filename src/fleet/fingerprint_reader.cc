// Reading a fingerprint (parseFingerprint): apart from the writer, so that pi0-agent, which only
// writes them, links neither the JSON parser nor the checks.
#include "fleet/fingerprint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json_parse.h"
#include "common/json_reader.h"
#include "common/timestamp.h"

namespace pi0::fleet {
namespace {

using Json = nlohmann::json;
using json::Node;

// Floating-point noise in the agent's arithmetic (a mean of ones that sums to 1 + 2e-16) must
// not cost a node its data; anything further out of range is a defect.
constexpr double kRatioSlack = 1e-9;

// Shortest text that reads back as the same double ("0.5", "1.0000001").
std::string numberText(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// A fingerprint's fields on json::Reader. Every member is required unless the parser says
// otherwise (a missing one is "<object>: missing <key>", the top object named "fingerprint"); a
// null is a value of its own, which only a nullable field takes ("null where a number belongs"
// elsewhere); numbers have ranges. The first problem is kept.
class Fields {
 public:
  bool ok() const { return r_.ok(); }
  const std::string& error() const { return r_.error(); }
  void problem(const Node& node, const std::string& what) { r_.problem(node, what); }

  // True when `node` (present) is an object; a problem otherwise.
  bool object(const Node& node) { return r_.expect(node, node.value->is_object(), "an object"); }
  bool array(const Node& node) { return r_.expect(node, node.value->is_array(), "an array"); }

  // The member `key` of `object`, null included; absent, with a problem, when missing.
  Node member(const Node& object, std::string_view key) {
    Node m = object.raw(key);
    if (!m.present() && r_.ok()) {
      const std::string at = object.path();
      r_.problem((at.empty() ? std::string("fingerprint") : at) + ": missing " + std::string(key));
    }
    return m;
  }

  std::string string(const Node& object, std::string_view key) {
    const Node m = member(object, key);
    if (!m.present() || !r_.expect(m, m.value->is_string(), "a string")) return {};
    return m.value->get<std::string>();
  }

  bool boolean(const Node& object, std::string_view key) {
    const Node m = member(object, key);
    if (!m.present() || !r_.expect(m, m.value->is_boolean(), "a boolean")) return false;
    return m.value->get<bool>();
  }

  // A finite number in [lo, hi]; `loExclusive` makes lo itself invalid. 0 after a problem.
  double number(const Node& node, double lo, double hi, bool loExclusive = false) {
    if (!node.present() || !r_.expect(node, node.value->is_number(), "a number")) return 0;
    const double d = node.value->get<double>();
    if (!std::isfinite(d)) {
      r_.problem(node, "not a finite number");
      return 0;
    }
    if (d < lo || (loExclusive && d == lo) || d > hi) {
      r_.problem(node, numberText(d) + " is out of range");
      return 0;
    }
    return d;
  }
  double number(const Node& object, std::string_view key, double lo, double hi,
                bool loExclusive = false) {
    return number(member(object, key), lo, hi, loExclusive);
  }

  // A number in [0,1], within the agent's arithmetic noise of it, clamped.
  double ratio(const Node& node) {
    return std::clamp(number(node, -kRatioSlack, 1 + kRatioSlack), 0.0, 1.0);
  }
  double ratio(const Node& object, std::string_view key) { return ratio(member(object, key)); }

  std::int64_t integer(const Node& object, std::string_view key, std::int64_t lo) {
    const Node m = member(object, key);
    if (!m.present() || !r_.expect(m, m.value->is_number(), "an integer")) return lo;
    const double d = m.value->get<double>();
    // 2^53: beyond it a double no longer holds every integer, and no window is that long.
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0) {
      r_.problem(m, m.value->dump() + " is not an integer");
      return lo;
    }
    const auto i = static_cast<std::int64_t>(d);
    if (i < lo) {
      r_.problem(m, std::to_string(i) + " is below the minimum " + std::to_string(lo));
      return lo;
    }
    return i;
  }

  // nullopt when the member is null, else what `read` makes of it.
  template <class F>
  auto nullable(const Node& object, std::string_view key, F read)
      -> std::optional<std::invoke_result_t<F, const Node&>> {
    const Node m = member(object, key);
    if (!m.present() || m.value->is_null()) return std::nullopt;
    return read(m);
  }

 private:
  json::Reader r_{": ", json::Reader::Wording::kWhereBelongs};
};

SignalGates parseGates(Fields& f, const Node& node) {
  SignalGates g;
  if (!f.object(node)) return g;
  // Listed in the schema's order so that the first missing gate is the one reported.
  const std::pair<const char*, double*> fields[] = {{"lambda_int", &g.lambdaInt},
                                                    {"lambda1", &g.lambda1},
                                                    {"fit_error", &g.fitError},
                                                    {"gluing_delta", &g.gluingDelta},
                                                    {"isolation", &g.isolation}};
  for (const auto& [key, out] : fields)
    *out = f.ratio(node, key);  // fit_error's range is [0,1] too
  return g;
}

std::vector<double> parseSpectrum(Fields& f, const Node& node) {
  std::vector<double> bins;
  if (!f.array(node)) return bins;
  const std::size_t n = node.value->size();
  if (n < 4) {
    f.problem(node, std::to_string(n) + " bins, fewer than 4");
    return bins;
  }
  bins.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    bins.push_back(f.ratio(node.raw(i)));
  return bins;
}

SignalForecast parseForecast(Fields& f, const Node& node) {
  SignalForecast out;
  if (!f.object(node)) return out;
  out.horizonSeconds = f.number(node, "horizonSeconds", 0, HUGE_VAL, /*loExclusive=*/true);
  out.base = f.ratio(node, "base");
  out.trendStart = f.ratio(node, "trendStart");
  out.trendPerSecond = f.number(node, "trendPerSecond", 0, HUGE_VAL);
  out.noise = f.number(node, "noise", 0, HUGE_VAL);
  out.troubleLine =
      std::min(f.number(node, "troubleLine", 0, 1 + kRatioSlack, /*loExclusive=*/true), 1.0);
  out.secondsToTrouble = f.nullable(node, "secondsToTrouble",
                                    [&f](const Node& x) { return f.number(x, 0, HUGE_VAL); });
  if (node.value->contains("stallRate")) {  // absent from agents older than the pressure model
    const auto stall = f.nullable(node, "stallRate", [&f](const Node& x) {
      return std::min(f.number(x, 0, 1 + kRatioSlack), 1.0);
    });
    if (stall) out.stallRate = *stall;
  }
  return out;
}

// `hasNullForecast` is set when the signal's forecast is given as null.
SignalFingerprint parseSignal(Fields& f, const Node& node, bool* hasNullForecast) {
  SignalFingerprint s;
  if (!f.object(node)) return s;
  const Json& v = *node.value;
  s.samples = f.integer(node, "samples", 1);
  s.current = f.ratio(node, "current");
  s.mean = f.ratio(node, "mean");
  s.stddev = std::min(f.number(node, "std", 0, 0.5 + kRatioSlack), 0.5);
  s.gates = f.nullable(node, "gates", [&f](const Node& x) { return parseGates(f, x); });
  s.projectedPeak = f.nullable(node, "projectedPeak", [&f](const Node& x) { return f.ratio(x); });
  s.dominantPeriodSeconds = f.nullable(node, "dominantPeriodSeconds", [&f](const Node& x) {
    return f.number(x, 0, HUGE_VAL, /*loExclusive=*/true);
  });
  // Absent: a body of FingerprintDetail::kSummary.
  if (v.contains("spectrum")) {
    auto spectrum =
        f.nullable(node, "spectrum", [&f](const Node& x) { return parseSpectrum(f, x); });
    if (spectrum) s.spectrum = std::move(*spectrum);
  }
  if (v.contains("entropy"))
    s.entropy = f.nullable(node, "entropy", [&f](const Node& x) { return f.ratio(x); });
  // No member at all: an agent older than the forecast (see fingerprint.h).
  if (v.contains("forecast")) {
    s.forecast = f.nullable(node, "forecast", [&f](const Node& x) { return parseForecast(f, x); });
    if (!s.forecast) *hasNullForecast = true;
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
void parseLists(Fields& f, const Node& top, NodeFingerprint& fp) {
  const Node signals = f.member(top, "signals");
  if (signals.present() && f.object(signals)) {
    for (const auto& [name, unused] : signals.value->items()) {
      if (name.empty()) {
        f.problem(signals, "a signal with an empty name");
        break;
      }
      bool nullForecast = false;
      const Node node = signals.raw(name);
      SignalFingerprint s = parseSignal(f, node, &nullForecast);
      if (!f.ok()) return;
      if (fp.ready && !s.gates)
        f.problem(node.child("gates"), "null in a fingerprint that is ready");
      if (fp.ready && nullForecast)
        f.problem(node.child("forecast"), "null in a fingerprint that is ready");
      fp.signals.emplace(name, std::move(s));
    }
  }

  const Node missing = f.member(top, "missingSources");
  if (missing.present() && f.array(missing)) {
    for (std::size_t i = 0; i < missing.value->size(); ++i) {
      const Node m = missing.raw(i);
      if (!f.object(m)) break;
      std::string source = f.string(m, "source");
      std::string reason = f.string(m, "reason");
      fp.missingSources.push_back({std::move(source), std::move(reason)});
    }
  }

  const Node gpus = f.member(top, "gpus");
  if (gpus.present() && f.array(gpus)) {
    for (std::size_t i = 0; i < gpus.value->size(); ++i) {
      const Node g = gpus.raw(i);
      if (!f.object(g)) break;
      fp.gpus.push_back(parseGpu(*g.value));
    }
  }
}

}  // namespace

Result<NodeFingerprint> parseFingerprint(std::string_view body) {
  const auto parsed = json::parse(body);
  if (!parsed) return fail("not JSON: \"" + excerpt(body) + "\"");
  const Json& doc = *parsed;
  if (!doc.is_object())
    return fail("fingerprint: " + json::typeName(doc) + " where an object belongs");
  // The paths below start at the document's top level ("signals.cpu.gates").
  const Node top = Node::root(doc);
  Fields f;

  const std::string apiVersion = f.string(top, "apiVersion");
  if (!f.ok()) return fail(f.error());
  if (apiVersion != "stability.pi0.io/v1alpha1")
    return fail("apiVersion: \"" + excerpt(apiVersion) + "\", not stability.pi0.io/v1alpha1");
  const std::string kind = f.string(top, "kind");
  if (!f.ok()) return fail(f.error());
  if (kind != "Fingerprint") return fail("kind: \"" + excerpt(kind) + "\", not Fingerprint");

  NodeFingerprint fp;
  fp.node = f.string(top, "node");
  if (!f.ok()) return fail(f.error());
  if (fp.node.empty()) return fail("node: empty");

  const std::string timestamp = f.string(top, "timestamp");
  if (!f.ok()) return fail(f.error());
  const auto t = pi0::parseRfc3339(timestamp);
  if (!t) return fail("timestamp: \"" + excerpt(timestamp) + "\" is not an RFC 3339 date-time");
  fp.timestamp = *t;

  fp.intervalSeconds = f.number(top, "intervalSeconds", 0, HUGE_VAL, /*loExclusive=*/true);
  fp.windowSize = f.integer(top, "windowSize", 8);
  fp.windowFill = f.ratio(top, "windowFill");
  fp.ready = f.boolean(top, "ready");
  if (!f.ok()) return fail(f.error());

  parseLists(f, top, fp);
  if (!f.ok()) return fail(f.error());
  return fp;
}

}  // namespace pi0::fleet
