#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "fleet/fingerprint.h"
#include "fleet/resource_view.h"

using namespace pi0;
using namespace pi0::fleet;
using Json = nlohmann::json;

namespace {

// Recorded from the real pi0-agent replaying fixtures/fleet/node-a.profile.yaml (the recipe is
// in the profile), and checked against docs/fingerprint.schema.json when it was recorded.
std::string fixture() {
  auto text = readFile(std::filesystem::path(PI0_FIXTURES) / "fleet" / "fingerprint-node-a.json");
  REQUIRE(text);
  return *text;
}

std::chrono::system_clock::time_point utc(int y, unsigned mo, unsigned d, int h, int mi, int s,
                                          int ms) {
  using namespace std::chrono;
  return sys_days(year(y) / mo / d) + hours(h) + minutes(mi) + seconds(s) + milliseconds(ms);
}

}  // namespace

TEST_CASE("a fingerprint recorded from the real agent parses into its values") {
  auto fp = parseFingerprint(fixture());
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  CHECK(fp->node == "node-a");
  CHECK(fp->timestamp == utc(2026, 12, 5, 20, 40, 19, 207));
  CHECK(fp->intervalSeconds == 0.25);
  CHECK(fp->windowSize == 64);
  CHECK(fp->windowFill == 1.0);
  CHECK(fp->ready);
  CHECK(fp->signals.size() == 5);
  CHECK(fp->gpus.size() == 0);  // the profile has GPU signals, but no NVML saw GPUs
  CHECK(fp->missingSources.empty());

  // cpu: a sine of mean 0.5, amplitude 0.2, period 4 s = 16 samples at 250 ms.
  const SignalFingerprint* cpu = fp->signal("cpu");
  REQUIRE(cpu);
  CHECK(cpu->samples == 64);
  REQUIRE(cpu->gates);
  CHECK(cpu->gates->isolation == 0.2999731730751689);
  CHECK(cpu->gates->lambda1 == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(cpu->gates->lambdaInt == doctest::Approx(0.5).epsilon(1e-4));
  CHECK(cpu->stddev == doctest::Approx(0.2 / std::sqrt(2.0)).epsilon(1e-4));
  REQUIRE(cpu->dominantPeriodSeconds);
  CHECK(*cpu->dominantPeriodSeconds == 4.0);
  CHECK(cpu->spectrum.size() == 32);
  REQUIRE(cpu->projectedPeak);
  CHECK(*cpu->projectedPeak == doctest::Approx(1 - cpu->gates->isolation));
  // The sine's crest, 0.5 + 0.2, is what it really reaches (not μ + 2σ = 0.78).
  CHECK(*cpu->projectedPeak == doctest::Approx(0.7).epsilon(1e-3));

  // memory: a constant 0.3: flat, so no dominant period.
  const SignalFingerprint* memory = fp->signal("memory");
  REQUIRE(memory);
  REQUIRE(memory->gates);
  CHECK(memory->gates->isolation == doctest::Approx(0.7));
  CHECK_FALSE(memory->dominantPeriodSeconds);
  CHECK(fp->signal("gpu1_sm"));
  CHECK_FALSE(fp->signal("disk"));

  // The forecast: a flat path at the projected peak (a steady rhythm has no trend), 30 samples
  // of 250 ms ahead, no trouble expected; psi_cpu's trouble line is the pressure line.
  REQUIRE(cpu->forecast);
  CHECK(cpu->forecast->horizonSeconds == 7.5);
  CHECK(cpu->forecast->base == *cpu->projectedPeak);
  CHECK(cpu->forecast->at(cpu->forecast->horizonSeconds) == doctest::Approx(*cpu->projectedPeak));
  CHECK(cpu->forecast->trendPerSecond == 0.0);
  CHECK(cpu->forecast->troubleLine == 1.0);
  CHECK_FALSE(cpu->forecast->secondsToTrouble);
  REQUIRE(fp->signal("psi_cpu")->forecast);
  CHECK(fp->signal("psi_cpu")->forecast->troubleLine == 0.2);
}

TEST_CASE("the forecast path F(τ) = min(1, max(base, trendStart + trendPerSecond·τ))") {
  // A memory leak: 0.55 now, rising 0.01 per second; the level alone would stay at 0.5.
  const SignalForecast f{30, 0.5, 0.55, 0.01, 0.01, 1.0, 45.0, std::nullopt, 0};
  CHECK(f.at(0) == doctest::Approx(0.55));
  CHECK(f.at(30) == doctest::Approx(0.85));  // 0.55 + 0.3
  CHECK(f.at(45) == doctest::Approx(1.0));   // at the trouble line after 45 s
  CHECK(f.at(100) == 1.0);                   // capped
  CHECK(f.at(-5) == doctest::Approx(0.55));  // the past reads as now
  // No trend: the base holds at every τ.
  const SignalForecast flat{30, 0.62, 0.62, 0, 0.01, 1.0, std::nullopt, std::nullopt, 0};
  CHECK(flat.at(0) == doctest::Approx(0.62));
  CHECK(flat.at(1000) == doctest::Approx(0.62));
  // A trend line below the base (a rhythm's crest above it) is hidden until it rises past it.
  const SignalForecast crest{30, 0.8, 0.5, 0.01, 0.01, 1.0, 50.0, std::nullopt, 0};
  CHECK(crest.at(10) == doctest::Approx(0.8));
  CHECK(crest.at(40) == doctest::Approx(0.9));
}

TEST_CASE("a pressure's path: its 10 s average moving toward the stall rate") {
  // io pressure at 0.1, tasks stalling 40 % of the time: 0.4 − 0.3·e^(−τ/10).
  SignalForecast f{30, 0.1, 0.1, 0, 0.002, 0.2, 4.05, std::nullopt, 0};
  f.stallRate = 0.4;
  f.pressureNow = 0.1;
  CHECK(f.at(0) == doctest::Approx(0.1));
  CHECK(f.at(10) == doctest::Approx(0.4 - 0.3 * std::exp(-1.0)));
  CHECK(f.at(10 * std::log(1.5)) == doctest::Approx(0.2));  // the line, at secondsToTrouble
  // A stall rate under the average (the storm is over) leaves the base.
  f.stallRate = 0.05;
  CHECK(f.at(30) == doctest::Approx(0.1));
}

TEST_CASE("a signal's forecast: parsed with its fields, absent from an older agent") {
  Json doc = Json::parse(fixture());
  doc["signals"]["memory"]["forecast"] = {{"horizonSeconds", 30}, {"base", 0.55},
                                          {"trendStart", 0.6},    {"trendPerSecond", 0.004},
                                          {"noise", 0.012},       {"troubleLine", 1.0},
                                          {"stallRate", nullptr}, {"secondsToTrouble", 100}};
  doc["signals"]["psi_cpu"]["forecast"] = {{"horizonSeconds", 30}, {"base", 0.05},
                                           {"trendStart", 0.05},   {"trendPerSecond", 0},
                                           {"noise", 0.001},       {"troubleLine", 0.2},
                                           {"stallRate", 0.4},     {"secondsToTrouble", 5.3}};
  doc["signals"]["cpu"].erase("forecast");         // an agent that predates the forecast
  doc["memoryTrend"] = {{"slopePerSecond", 0.1}};  // what such an agent also sent: ignored
  auto fp = parseFingerprint(doc.dump());
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  CHECK_FALSE(fp->signal("cpu")->forecast);
  const auto& f = fp->signal("memory")->forecast;
  REQUIRE(f);
  CHECK(f->horizonSeconds == 30);
  CHECK(f->base == 0.55);
  CHECK(f->trendStart == 0.6);
  CHECK(f->trendPerSecond == 0.004);
  CHECK(f->noise == 0.012);
  CHECK(f->troubleLine == 1.0);
  REQUIRE(f->secondsToTrouble);
  CHECK(*f->secondsToTrouble == 100);
  CHECK(f->at(f->horizonSeconds) == doctest::Approx(0.72));  // 0.6 + 0.004·30
  CHECK_FALSE(f->stallRate);
  const auto& io = fp->signal("psi_cpu")->forecast;
  REQUIRE(io);
  REQUIRE(io->stallRate);
  CHECK(*io->stallRate == 0.4);
  CHECK(io->pressureNow == fp->signal("psi_cpu")->current);  // the average now
}

TEST_CASE("a fingerprint before the window is full has no gates") {
  Json doc = Json::parse(fixture());
  doc["ready"] = false;
  doc["windowFill"] = 0.5;
  for (const char* field :
       {"gates", "projectedPeak", "dominantPeriodSeconds", "spectrum", "entropy", "forecast"})
    doc["signals"]["cpu"][field] = nullptr;
  auto fp = parseFingerprint(doc.dump());
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  CHECK_FALSE(fp->ready);
  CHECK_FALSE(fp->signal("cpu")->gates);
  CHECK(fp->signal("cpu")->spectrum.empty());
  CHECK_FALSE(fp->signal("cpu")->forecast);
  CHECK(fp->signal("memory")->gates);
  CHECK(fp->signal("memory")->forecast);
}

TEST_CASE("tolerated variations: floating-point noise, unknown fields, GPUs, offsets") {
  Json doc = Json::parse(fixture());
  doc["signals"]["memory"]["gates"]["isolation"] = 1 + 1e-12;  // clamped to 1
  doc["signals"]["cpu"]["mean"] = -1e-12;                      // clamped to 0
  doc["futureField"] = {{"x", 1}};
  doc["signals"]["cpu"]["futureField"] = true;
  doc["gpus"] =
      Json::array({{{"index", 0}, {"name", "A"}, {"uuid", "GPU-1"}, {"memoryTotalBytes", 1}},
                   {{"index", 1}, {"name", "A"}, {"uuid", "GPU-2"}, {"memoryTotalBytes", 1}}});
  doc["timestamp"] = "2026-12-05T20:52:36.600+02:00";
  doc["windowSize"] = 64.0;
  auto fp = parseFingerprint(doc.dump());
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  CHECK(fp->signal("memory")->gates->isolation == 1.0);
  CHECK(fp->signal("cpu")->mean == 0.0);
  CHECK(fp->gpus.size() == 2);
  CHECK(fp->timestamp == utc(2026, 12, 5, 18, 52, 36, 600));
  CHECK(fp->windowSize == 64);
}

TEST_CASE("garbage is an error that names what is wrong") {
  struct Case {
    const char* name;
    std::function<std::string()> body;
    const char* error;  // the message starts with this
  };
  auto edit = [](std::function<void(Json&)> change) {
    return [change] {
      Json doc = Json::parse(fixture());
      change(doc);
      return doc.dump();
    };
  };
  auto raw = [](std::string text) { return [text] { return text; }; };
  const std::string truncated = fixture().substr(0, 500);
  const Case cases[] = {
      {"empty body", raw(""), "not JSON: \"\""},
      {"HTML", raw("<html><body>502 Bad Gateway</body></html>"), "not JSON: \"<html><body>"},
      {"truncated", raw(truncated), "not JSON"},
      {"NaN is not JSON", raw(R"({"apiVersion": NaN})"), "not JSON"},
      {"a number too large for a double", raw(R"({"intervalSeconds": 1e999})"), "not JSON"},
      {"an array", raw("[1, 2]"), "fingerprint: an array where an object belongs"},
      {"null", raw("null"), "fingerprint: null where an object belongs"},
      {"deep nesting", raw(std::string(100000, '[') + std::string(100000, ']')),
       "fingerprint: an array where an object belongs"},
      {"wrong apiVersion", edit([](Json& d) { d["apiVersion"] = "v1"; }),
       "apiVersion: \"v1\", not stability.pi0.io/v1alpha1"},
      {"wrong kind", edit([](Json& d) { d["kind"] = "Pod"; }), "kind: \"Pod\", not Fingerprint"},
      {"no kind", edit([](Json& d) { d.erase("kind"); }), "fingerprint: missing kind"},
      {"no node", edit([](Json& d) { d.erase("node"); }), "fingerprint: missing node"},
      {"empty node", edit([](Json& d) { d["node"] = ""; }), "node: empty"},
      {"bad timestamp", edit([](Json& d) { d["timestamp"] = "yesterday"; }),
       "timestamp: \"yesterday\" is not an RFC 3339 date-time"},
      {"interval 0", edit([](Json& d) { d["intervalSeconds"] = 0; }),
       "intervalSeconds: 0 is out of range"},
      {"small window", edit([](Json& d) { d["windowSize"] = 4; }),
       "windowSize: 4 is below the minimum 8"},
      {"fractional window", edit([](Json& d) { d["windowSize"] = 64.5; }),
       "windowSize: 64.5 is not an integer"},
      {"ready as a string", edit([](Json& d) { d["ready"] = "true"; }),
       "ready: a string where a boolean belongs"},
      {"signals as an array", edit([](Json& d) { d["signals"] = Json::array(); }),
       "signals: an array where an object belongs"},
      {"a signal missing a gate",
       edit([](Json& d) { d["signals"]["cpu"]["gates"].erase("fit_error"); }),
       "signals.cpu.gates: missing fit_error"},
      {"a signal without gates", edit([](Json& d) { d["signals"]["memory"].erase("gates"); }),
       "signals.memory: missing gates"},
      {"a gate as a string",
       edit([](Json& d) { d["signals"]["cpu"]["gates"]["isolation"] = "0.5"; }),
       "signals.cpu.gates.isolation: a string where a number belongs"},
      {"a gate out of range",
       edit([](Json& d) { d["signals"]["cpu"]["gates"]["isolation"] = 1.5; }),
       "signals.cpu.gates.isolation: 1.5 is out of range"},
      {"a negative gate",
       edit([](Json& d) { d["signals"]["gpu0_sm"]["gates"]["lambda1"] = -0.25; }),
       "signals.gpu0_sm.gates.lambda1: -0.25 is out of range"},
      {"gates null while ready", edit([](Json& d) { d["signals"]["cpu"]["gates"] = nullptr; }),
       "signals.cpu.gates: null in a fingerprint that is ready"},
      {"std too large", edit([](Json& d) { d["signals"]["cpu"]["std"] = 0.6; }),
       "signals.cpu.std: 0.6 is out of range"},
      {"zero samples", edit([](Json& d) { d["signals"]["cpu"]["samples"] = 0; }),
       "signals.cpu.samples: 0 is below the minimum 1"},
      {"a short spectrum", edit([](Json& d) {
         d["signals"]["cpu"]["spectrum"] = Json::array({0.1, 0.2, 0.3});
       }),
       "signals.cpu.spectrum: 3 bins, fewer than 4"},
      {"a spectrum bin out of range", edit([](Json& d) { d["signals"]["cpu"]["spectrum"][2] = 2; }),
       "signals.cpu.spectrum[2]: 2 is out of range"},
      {"a signal as a number", edit([](Json& d) { d["signals"]["disk"] = 0.5; }),
       "signals.disk: a number where an object belongs"},
      {"a negative period",
       edit([](Json& d) { d["signals"]["cpu"]["dominantPeriodSeconds"] = -4; }),
       "signals.cpu.dominantPeriodSeconds: -4 is out of range"},
      {"missingSources as an object", edit([](Json& d) { d["missingSources"] = Json::object(); }),
       "missingSources: an object where an array belongs"},
      {"a missing source without reason", edit([](Json& d) {
         d["missingSources"] = Json::array({{{"source", "gpu"}}});
       }),
       "missingSources[0]: missing reason"},
      {"gpus with a string", edit([](Json& d) { d["gpus"] = Json::array({"GPU-1"}); }),
       "gpus[0]: a string where an object belongs"},
      {"a forecast as a number", edit([](Json& d) { d["signals"]["cpu"]["forecast"] = 0.5; }),
       "signals.cpu.forecast: a number where an object belongs"},
      {"forecast null while ready",
       edit([](Json& d) { d["signals"]["memory"]["forecast"] = nullptr; }),
       "signals.memory.forecast: null in a fingerprint that is ready"},
      {"a forecast without a horizon",
       edit([](Json& d) { d["signals"]["cpu"]["forecast"].erase("horizonSeconds"); }),
       "signals.cpu.forecast: missing horizonSeconds"},
      {"a horizon of 0",
       edit([](Json& d) { d["signals"]["cpu"]["forecast"]["horizonSeconds"] = 0; }),
       "signals.cpu.forecast.horizonSeconds: 0 is out of range"},
      {"a base above 1", edit([](Json& d) { d["signals"]["cpu"]["forecast"]["base"] = 1.2; }),
       "signals.cpu.forecast.base: 1.2 is out of range"},
      {"a trend start as a string",
       edit([](Json& d) { d["signals"]["cpu"]["forecast"]["trendStart"] = "0.5"; }),
       "signals.cpu.forecast.trendStart: a string where a number belongs"},
      {"a falling trend",
       edit([](Json& d) { d["signals"]["cpu"]["forecast"]["trendPerSecond"] = -0.01; }),
       "signals.cpu.forecast.trendPerSecond: -0.01 is out of range"},
      {"negative noise", edit([](Json& d) { d["signals"]["cpu"]["forecast"]["noise"] = -0.5; }),
       "signals.cpu.forecast.noise: -0.5 is out of range"},
      {"a trouble line of 0",
       edit([](Json& d) { d["signals"]["psi_cpu"]["forecast"]["troubleLine"] = 0; }),
       "signals.psi_cpu.forecast.troubleLine: 0 is out of range"},
      {"a trouble line above 1",
       edit([](Json& d) { d["signals"]["cpu"]["forecast"]["troubleLine"] = 1.5; }),
       "signals.cpu.forecast.troubleLine: 1.5 is out of range"},
      {"a negative time to trouble",
       edit([](Json& d) { d["signals"]["memory"]["forecast"]["secondsToTrouble"] = -1; }),
       "signals.memory.forecast.secondsToTrouble: -1 is out of range"},
      {"no time to trouble",
       edit([](Json& d) { d["signals"]["memory"]["forecast"].erase("secondsToTrouble"); }),
       "signals.memory.forecast: missing secondsToTrouble"},
  };
  for (const Case& c : cases) {
    const std::string nameText = c.name;
    CAPTURE(nameText);
    auto fp = parseFingerprint(c.body());
    REQUIRE_FALSE(fp);
    CAPTURE(fp.error().message);
    CHECK(fp.error().message.starts_with(c.error));
  }
}

// --- Writing: toJson, and the round trip parseFingerprint(toJson(x)) == x -----------------------

namespace {

// A signal whose window is full, with every optional member set; values that no decimal of few
// digits holds (0.1 + 0.2), so that the round trip must keep every bit.
SignalFingerprint analyzed(double level, std::optional<double> period) {
  SignalFingerprint s;
  s.samples = 64;
  s.current = level + 0.1 + 0.2 - 0.3;
  s.mean = level;
  s.stddev = 0.1 + 0.2 - 0.25;
  s.gates = SignalGates{level, 0.7, 0.012345678901234567, 1.0 / 3, (1 - level) / 3};
  s.projectedPeak = level + 0.1;
  SignalForecast f;
  f.horizonSeconds = 30;
  f.base = level + 0.1;
  f.trendStart = level + 0.05;
  f.trendPerSecond = 1e-7;
  f.noise = 0.003;
  f.troubleLine = 1;
  f.secondsToTrouble = 123.456;
  f.pressureNow = s.current;  // parseFingerprint sets it from `current`
  s.forecast = f;
  s.dominantPeriodSeconds = period;
  s.spectrum = {0.5, 0.5, 0.5, 0.5, 1e-300, 0};
  s.entropy = 0.25;
  return s;
}

NodeFingerprint base(bool ready) {
  NodeFingerprint fp;
  fp.node = "worker-3";
  // Milliseconds: the wire's precision.
  fp.timestamp = utc(2026, 12, 6, 5, 4, 3, 21);
  fp.intervalSeconds = 0.25;
  fp.windowSize = 64;
  fp.windowFill = ready ? 1.0 : 0.125;
  fp.ready = ready;
  return fp;
}

NodeFingerprint withoutSpectra(NodeFingerprint fp) {
  for (auto& [name, s] : fp.signals) {
    s.spectrum.clear();
    s.entropy.reset();
  }
  return fp;
}

void checkRoundTrip(const NodeFingerprint& fp) {
  const std::string body = toJson(fp, FingerprintDetail::kSpectra);
  auto full = parseFingerprint(body);
  REQUIRE_MESSAGE(full, (full ? "" : full.error().message));
  CHECK_MESSAGE(*full == fp, body);
  CHECK_MESSAGE(toJson(*full, FingerprintDetail::kSpectra) == body, body);
  auto summary = parseFingerprint(toJson(fp, FingerprintDetail::kSummary));
  REQUIRE_MESSAGE(summary, (summary ? "" : summary.error().message));
  CHECK(*summary == withoutSpectra(fp));
}

}  // namespace

TEST_CASE("round trip: a fingerprint before any window is full") {
  NodeFingerprint fp = base(false);
  SignalFingerprint cpu;
  cpu.samples = 8;
  cpu.current = 0.3;
  cpu.mean = 0.1 + 0.2;
  cpu.stddev = 0.01;
  fp.signals.emplace("cpu", cpu);
  fp.signals.emplace("memory", cpu);
  checkRoundTrip(fp);
  // Everything the window does not know yet is null on the wire.
  const Json doc = Json::parse(toJson(fp, FingerprintDetail::kSpectra));
  for (const char* key :
       {"gates", "projectedPeak", "forecast", "dominantPeriodSeconds", "spectrum", "entropy"})
    CHECK_MESSAGE(doc["signals"]["cpu"][key].is_null(), key);
}

TEST_CASE("round trip: a ready fingerprint with forecasts, pressure, a flat signal, sources") {
  NodeFingerprint fp = base(true);
  fp.signals.emplace("cpu", analyzed(0.4, 4.0));
  fp.signals.emplace("memory", analyzed(0.6, std::nullopt));  // flat: no dominant period
  SignalFingerprint psi = analyzed(0.05, 8.0);
  psi.forecast->troubleLine = 0.2;
  psi.forecast->stallRate = 0.3;
  psi.forecast->secondsToTrouble.reset();
  fp.signals.emplace("psi_cpu", psi);
  fp.missingSources = {{"disk", "no block devices"}, {"gpu", "disabled by --nvml-library none"}};
  checkRoundTrip(fp);
}

TEST_CASE("round trip: GPUs, their signals and their facts") {
  NodeFingerprint fp = base(true);
  fp.signals.emplace("cpu", analyzed(0.4, 4.0));
  fp.signals.emplace("gpu0_sm", analyzed(0.9, 2.0));
  fp.signals.emplace("gpu1_sm", analyzed(0.1, std::nullopt));
  fp.signals.emplace("gpu0_memory", analyzed(0.5, 16.0));
  GpuInfo a;
  a.index = 0;
  a.name = "NVIDIA H100 80GB HBM3";
  a.uuid = "GPU-0a1b";
  a.memoryTotalBytes = 85899345920;
  a.smCount = 132;
  a.smClockMHz = 1980;
  a.memoryClockMHz = 2619;
  a.memoryBusWidthBits = 5120;
  a.nominalBandwidthBytesPerSecond = 3.35e12;
  a.probeAchievedBytesPerSecond = 2.9e12;
  a.probeRatio = 2.9 / 3.35;
  GpuInfo b = a;  // no probe library: its facts are 0, and no probe ran
  b.index = 1;
  b.uuid = "GPU-2c3d";
  b.smCount = b.smClockMHz = b.memoryClockMHz = b.memoryBusWidthBits = 0;
  b.nominalBandwidthBytesPerSecond = b.probeAchievedBytesPerSecond = b.probeRatio = std::nullopt;
  fp.gpus = {a, b};
  checkRoundTrip(fp);
}

TEST_CASE("the recorded fingerprint reads back the same through toJson") {
  auto fp = parseFingerprint(fixture());
  REQUIRE(fp);
  checkRoundTrip(*fp);
}

TEST_CASE("detail=resources: the signals the resource view reads, parsed as the trimmed summary") {
  auto fp = parseFingerprint(fixture());
  REQUIRE(fp);
  // As a real agent's: disk and network too, which admission does not read.
  for (const char* other : {"disk", "network", "psi_io"})
    fp->signals.emplace(other, fp->signals.at("cpu"));
  const std::string summary = toJson(*fp, FingerprintDetail::kSummary);
  const std::string resources = toJson(*fp, FingerprintDetail::kResources);
  const Json doc = Json::parse(resources);
  CHECK(doc["gpus"].empty());
  std::size_t kept = 0;
  for (const auto& [name, signal] : fp->signals) {
    CHECK_MESSAGE(doc["signals"].contains(name) == readByResourceView(name), name);
    kept += readByResourceView(name) ? 1 : 0;
  }
  CHECK(kept >= 4);  // cpu, memory and their pressure, at least
  CHECK(doc["signals"].size() == kept);
  CHECK(fp->signals.size() > kept);  // the fixture has more: the test would show nothing
  CHECK(resources.size() < summary.size());
  // What a reader keeps of the summary, it gets from the resources body.
  auto read = parseFingerprint(resources);
  REQUIRE(read);
  NodeFingerprint trimmed = *fp;
  trimToResourceView(trimmed);
  CHECK(*read == trimmed);
}

TEST_CASE("the summary leaves spectra and entropy out; the parser takes both forms") {
  NodeFingerprint fp = base(true);
  fp.signals.emplace("cpu", analyzed(0.4, 4.0));
  const std::string summary = toJson(fp, FingerprintDetail::kSummary);
  const std::string spectra = toJson(fp, FingerprintDetail::kSpectra);
  CHECK(summary.find("spectrum") == std::string::npos);
  CHECK(summary.find("entropy") == std::string::npos);
  CHECK(spectra.find("\"spectrum\":[0.5,0.5,0.5,0.5,1e-300,0.0]") != std::string::npos);
  CHECK(spectra.find("\"entropy\":0.25") != std::string::npos);
  // What the schema names, in the summary: the same document less the two members.
  Json withSpectra = Json::parse(spectra);
  withSpectra["signals"]["cpu"].erase("spectrum");
  withSpectra["signals"]["cpu"].erase("entropy");
  CHECK(Json::parse(summary) == withSpectra);
  // A spectrum present is still checked.
  withSpectra["signals"]["cpu"]["spectrum"] = Json::array({0.5, 0.5, 2.0, 0.5});
  auto bad = parseFingerprint(withSpectra.dump());
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "signals.cpu.spectrum[2]: 2 is out of range");
}
