#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "fleet/fingerprint.h"

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
  CHECK(fp->timestamp == utc(2026, 11, 22, 12, 38, 10, 462));
  CHECK(fp->intervalSeconds == 0.25);
  CHECK(fp->windowSize == 64);
  CHECK(fp->windowFill == 1.0);
  CHECK(fp->ready);
  CHECK(fp->signals.size() == 5);
  CHECK(fp->gpuCount == 0);  // the profile has GPU signals, but no NVML saw GPUs
  CHECK(fp->missingSources.empty());

  // cpu: a sine of mean 0.5, amplitude 0.2, period 4 s = 16 samples at 250 ms.
  const SignalFingerprint* cpu = fp->signal("cpu");
  REQUIRE(cpu);
  CHECK(cpu->samples == 64);
  REQUIRE(cpu->gates);
  CHECK(cpu->gates->isolation == 0.21715760430797104);
  CHECK(cpu->gates->lambda1 == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(cpu->gates->lambdaInt == doctest::Approx(0.5).epsilon(1e-4));
  CHECK(cpu->stddev == doctest::Approx(0.2 / std::sqrt(2.0)).epsilon(1e-4));
  REQUIRE(cpu->dominantPeriodSeconds);
  CHECK(*cpu->dominantPeriodSeconds == 4.0);
  CHECK(cpu->spectrum.size() == 32);
  REQUIRE(cpu->projectedPeak);
  CHECK(*cpu->projectedPeak == doctest::Approx(1 - cpu->gates->isolation));

  // memory: a constant 0.3: flat, so no dominant period.
  const SignalFingerprint* memory = fp->signal("memory");
  REQUIRE(memory);
  REQUIRE(memory->gates);
  CHECK(memory->gates->isolation == doctest::Approx(0.7));
  CHECK_FALSE(memory->dominantPeriodSeconds);
  CHECK(fp->signal("gpu1_sm"));
  CHECK_FALSE(fp->signal("disk"));

  REQUIRE(fp->memoryTrend);
  CHECK_FALSE(fp->memoryTrend->secondsToExhaustion);  // not growing
}

TEST_CASE("a fingerprint before the window is full has no gates") {
  Json doc = Json::parse(fixture());
  doc["ready"] = false;
  doc["windowFill"] = 0.5;
  for (const char* field :
       {"gates", "projectedPeak", "dominantPeriodSeconds", "spectrum", "entropy"})
    doc["signals"]["cpu"][field] = nullptr;
  doc["memoryTrend"] = nullptr;
  auto fp = parseFingerprint(doc.dump());
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  CHECK_FALSE(fp->ready);
  CHECK_FALSE(fp->signal("cpu")->gates);
  CHECK(fp->signal("cpu")->spectrum.empty());
  CHECK(fp->signal("memory")->gates);
  CHECK_FALSE(fp->memoryTrend);
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
  doc["timestamp"] = "2026-11-22T14:38:10.462+02:00";
  doc["windowSize"] = 64.0;
  auto fp = parseFingerprint(doc.dump());
  REQUIRE_MESSAGE(fp, (fp ? "" : fp.error().message));
  CHECK(fp->signal("memory")->gates->isolation == 1.0);
  CHECK(fp->signal("cpu")->mean == 0.0);
  CHECK(fp->gpuCount == 2);
  CHECK(fp->timestamp == utc(2026, 11, 22, 12, 38, 10, 462));
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
      {"no memoryTrend", edit([](Json& d) { d.erase("memoryTrend"); }),
       "fingerprint: missing memoryTrend"},
      {"a memoryTrend without r2", edit([](Json& d) { d["memoryTrend"].erase("r2"); }),
       "memoryTrend: missing r2"},
      {"a negative time to exhaustion",
       edit([](Json& d) { d["memoryTrend"]["secondsToExhaustion"] = -1; }),
       "memoryTrend.secondsToExhaustion: -1 is out of range"},
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

TEST_CASE("RFC 3339 timestamps") {
  struct Case {
    const char* text;
    bool ok;
    std::chrono::system_clock::time_point want;
  };
  using std::chrono::system_clock;
  const Case cases[] = {
      {"2026-11-22T12:38:10.462Z", true, utc(2026, 11, 22, 12, 38, 10, 462)},
      {"2026-11-22T12:38:10Z", true, utc(2026, 11, 22, 12, 38, 10, 0)},
      {"2026-11-22t12:38:10.4z", true, utc(2026, 11, 22, 12, 38, 10, 400)},
      {"2026-11-22T13:08:10.462+00:30", true, utc(2026, 11, 22, 12, 38, 10, 462)},
      {"2026-11-22T02:38:10-10:00", true, utc(2026, 11, 22, 12, 38, 10, 0)},
      {"2024-02-29T00:00:00Z", true, utc(2024, 2, 29, 0, 0, 0, 0)},
      {"1970-01-01T00:00:00Z", true, system_clock::time_point{}},
      {"2026-02-29T00:00:00Z", false, {}},  // not a leap year
      {"2026-11-22T24:00:00Z", false, {}},
      {"2026-11-22T12:60:00Z", false, {}},
      {"2026-11-22T12:38:10", false, {}},  // no zone
      {"2026-11-22 12:38:10Z", false, {}},
      {"2026-11-22T12:38:10.Z", false, {}},
      {"2026-11-22T12:38:10Zjunk", false, {}},
      {"2026-11-22T12:38:10+0200", false, {}},
      {"26-11-22T12:38:10Z", false, {}},
      {"", false, {}},
  };
  for (const Case& c : cases) {
    const std::string textValue = c.text;
    CAPTURE(textValue);
    auto t = parseRfc3339(c.text);
    REQUIRE(t.has_value() == c.ok);
    if (c.ok) CHECK(*t == c.want);
  }
}
