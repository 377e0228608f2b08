#include "admission/gate_policy.h"

#include <array>
#include <cmath>

#include "common/duration.h"
#include "common/flags.h"
#include "common/format.h"
#include "common/json_reader.h"

namespace pi0::admission {
namespace {

using nlohmann::json;
using pi0::json::Node;

constexpr std::array<const char*, 4> kThresholdKeys{"fitError", "gluingDelta", "psi", "isolation"};

// A number in [lo, hi] at `node` (the fallback when absent); a problem otherwise.
double ratioIn(pi0::json::Reader& r, const Node& node, double fallback, double lo, double hi) {
  const double v = r.number(node, fallback);
  if (r.ok() && node.present() && !(v >= lo && v <= hi))
    r.problem(node, "must be in [" + fixed(lo) + ", " + fixed(hi) + "], not " + fixed(v));
  return v;
}

// A duration ("90s", "1h") of at least `least` at `node` (the fallback when absent).
std::chrono::seconds durationAtLeast(pi0::json::Reader& r, const Node& node,
                                     std::chrono::seconds fallback, std::chrono::seconds least) {
  if (!node.present()) return fallback;
  const std::string text = r.string(node);
  if (!r.ok()) return fallback;
  auto d = parseDuration(text);
  if (!d) {
    r.problem(node, d.error().message);
    return fallback;
  }
  const auto s = std::chrono::seconds(static_cast<std::int64_t>(std::llround(d->count())));
  if (s < least) {
    r.problem(node, "must be at least " + std::to_string(least.count()) + "s, not " +
                        pi0::json::quote(text));
    return fallback;
  }
  return s;
}

}  // namespace

const char* calibrationModeName(CalibrationMode mode) {
  switch (mode) {
    case CalibrationMode::kOff:
      return "Off";
    case CalibrationMode::kRecommend:
      return "Recommend";
    case CalibrationMode::kAuto:
      return "Auto";
  }
  return "Off";
}

Result<GatePolicySpec> parseGatePolicySpec(const json& object) {
  if (!object.is_object()) return fail("GatePolicy: not a JSON object");
  pi0::json::Reader r;
  GatePolicySpec s;
  const Node spec = Node::root(object).child("spec");
  if (spec.present() && !r.object(spec)) return fail(r.error());
  s.mode = r.enumeration(spec.child("mode"), s.mode, "mode",
                         {{"Off", CalibrationMode::kOff},
                          {"Recommend", CalibrationMode::kRecommend},
                          {"Auto", CalibrationMode::kAuto}});
  s.holdoutShare = ratioIn(r, spec.child("holdoutShare"), s.holdoutShare, 0, 0.5);
  CalibrationPolicy& c = s.calibration;
  c.step = ratioIn(r, spec.child("step"), c.step, 0.001, 0.1);
  c.minDecisions = r.integer(spec.child("minDecisions"), c.minDecisions, 1, 1'000'000'000);
  s.interval = durationAtLeast(r, spec.child("interval"), s.interval, std::chrono::seconds(1));
  s.window = durationAtLeast(r, spec.child("window"), s.window, std::chrono::seconds(1));
  const Node targets = spec.child("targets");
  if (r.object(targets)) {
    c.targetFalsification = ratioIn(r, targets.child("falsification"), c.targetFalsification, 0, 1);
    c.targetMiss = ratioIn(r, targets.child("miss"), c.targetMiss, 0, 1);
  }
  const Node bounds = spec.child("bounds");
  if (r.object(bounds)) {
    for (std::size_t i = 0; i < kThresholdKeys.size(); ++i) {
      const Node b = bounds.child(kThresholdKeys[i]);
      if (!r.object(b)) continue;
      GateBounds& g = c.bounds[i];
      g.min = ratioIn(r, b.child("min"), g.min, 0, 1);
      g.max = ratioIn(r, b.child("max"), g.max, 0, 1);
      if (r.ok() && !(g.min < g.max))
        r.problem(b, "min " + fixed(g.min) + " is not below max " + fixed(g.max));
    }
  }
  if (!r.ok()) return fail(r.error());
  return s;
}

void addGateFlags(FlagTable& t, Thresholds& fixed, std::string& policyName) {
  auto ratio = [](double& into) {
    return flags::nonEmpty(flags::number(into, {.min = 0, .max = 1}, "a number in [0,1]"));
  };
  t.add("--gate-fit-error X", ratio(fixed.fitError), "θ_fit");
  t.add("--gate-gluing-delta X", ratio(fixed.gluingDelta), "θ_glue");
  t.add("--gate-psi X", ratio(fixed.psi), "θ_psi");
  t.add("--gate-isolation X", ratio(fixed.isolation), "θ_iso");
  t.add("--gate-policy NAME", flags::text(policyName),
        "the GatePolicy whose status.thresholds apply in its Auto mode, in place of the four "
        "above (which stay the holdout's); \"\" ignores GatePolicies")
      .defaultText("\"\": none");
}

json thresholdsToJson(const Thresholds& t) {
  json out = json::object();
  for (std::size_t i = 0; i < kThresholdKeys.size(); ++i)
    out[kThresholdKeys[i]] = thresholdOf(t, static_cast<Gate>(i));
  return out;
}

Result<Thresholds> parseThresholds(const json& value, std::string_view path) {
  pi0::json::Reader r;
  const Node root = Node::root(value, path);
  if (!r.object(root)) return fail(r.error());
  Thresholds t;
  for (std::size_t i = 0; i < kThresholdKeys.size(); ++i) {
    const Node n = root.child(kThresholdKeys[i]);
    if (!n.present()) {
      r.problem(n, "is required");
      break;
    }
    t = withThreshold(t, static_cast<Gate>(i), ratioIn(r, n, 0, 0, 1));
  }
  if (!r.ok()) return fail(r.error());
  return t;
}

ThresholdsInForce thresholdsInForce(const json* policy, const Thresholds& fixed) {
  ThresholdsInForce out;
  out.thresholds = fixed;
  if (policy == nullptr) {
    out.source = "the flags (no GatePolicy)";
    return out;
  }
  const std::string name = policy->value(json::json_pointer("/metadata/name"), std::string());
  auto spec = parseGatePolicySpec(*policy);
  if (!spec) {
    out.source = "the flags (GatePolicy " + name + " is invalid: " + spec.error().message + ")";
    return out;
  }
  if (spec->mode != CalibrationMode::kAuto) {
    out.source = std::string("the flags (GatePolicy ") + name + " is in mode " +
                 calibrationModeName(spec->mode) + ")";
    return out;
  }
  const json* status = pi0::json::member(*policy, "status");
  const json* written = status ? pi0::json::member(*status, "thresholds") : nullptr;
  if (written == nullptr) {
    out.source = "the flags (GatePolicy " + name + " is in mode Auto, no status.thresholds yet)";
    return out;
  }
  auto t = parseThresholds(*written, "status.thresholds");
  if (!t) {
    out.source = "the flags (GatePolicy " + name + ": " + t.error().message + ")";
    return out;
  }
  out.thresholds = *t;
  out.calibrated = true;
  out.holdoutShare = spec->holdoutShare;
  out.source = "GatePolicy " + name + " (Auto, generation " +
               std::to_string(policy->value(json::json_pointer("/metadata/generation"), 0)) + ")";
  return out;
}

}  // namespace pi0::admission
