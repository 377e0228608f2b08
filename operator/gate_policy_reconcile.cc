#include "operator/gate_policy_reconcile.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/format.h"
#include "common/json_reader.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "kube/errors.h"
#include "kube/resource.h"
#include "operator/condition.h"
#include "operator/operator_metrics.h"

namespace pi0::op {
namespace {

using admission::CalibrationMode;
using admission::Gate;
using admission::GateEvidence;
using admission::Thresholds;
using nlohmann::json;

constexpr std::size_t kGates = 4;

std::optional<Gate> gateNamed(std::string_view name) {
  for (std::size_t i = 0; i < kGates; ++i)
    if (name == admission::gateName(static_cast<Gate>(i))) return static_cast<Gate>(i);
  return std::nullopt;
}

std::optional<WallTime> timeAt(const json& object, const char* key) {
  const json* v = object.is_object() ? pi0::json::member(object, key) : nullptr;
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return parseRfc3339(v->get<std::string>());
}

json evidenceJson(const GateEvidence& e) {
  json out = {{"admitted", e.admitted},
              {"falsified", e.falsified},
              {"denied", e.denied},
              {"missed", e.missed}};
  // A ratio of nothing is not 0: it is left out until there is something to divide.
  if (e.admitted > 0)
    out["falsificationRatio"] =
        std::round(static_cast<double>(e.falsified) / static_cast<double>(e.admitted) * 1e4) / 1e4;
  if (e.denied > 0)
    out["missRatio"] =
        std::round(static_cast<double>(e.missed) / static_cast<double>(e.denied) * 1e4) / 1e4;
  // The admissions' mean slack, falsified and fine: whether the gate's value told them apart.
  const std::int64_t fine = e.admitted - e.falsified;
  if (e.falsified > 0)
    out["falsifiedSlack"] =
        std::round(e.falsifiedSlack / static_cast<double>(e.falsified) * 1e4) / 1e4;
  if (fine > 0) out["fineSlack"] = std::round(e.fineSlack / static_cast<double>(fine) * 1e4) / 1e4;
  return out;
}

// Tightening lowers a maximum and raises isolation's margin (a minimum).
bool tighter(Gate gate, double from, double to) {
  return gate == Gate::kIsolation ? to > from : to < from;
}

const char* eventReason(const ThresholdChange& c, bool reset) {
  if (reset) return "ThresholdReset";
  return tighter(c.gate, c.from, c.to) ? "ThresholdTightened" : "ThresholdLoosened";
}

}  // namespace

Evidence evidenceOf(const std::vector<ledger::GateRate>& rates) {
  Evidence out;
  for (const auto& r : rates) {
    const auto gate = gateNamed(r.gate);
    if (!gate) continue;
    GateEvidence& e = (r.holdout ? out.holdout : out.inForce)[static_cast<std::size_t>(*gate)];
    e.admitted += r.admitted;
    e.falsified += r.falsified;
    e.denied += r.denied;
    e.missed += r.missed;
    e.falsifiedSlack += r.falsifiedSlack;
    e.fineSlack += r.fineSlack;
    e.sinceChange += r.sinceChange;
    e.nearAdmitted += r.nearAdmitted;
    e.nearFalsified += r.nearFalsified;
  }
  return out;
}

bool roundDue(const json& policy, WallTime now) {
  const json* status = pi0::json::member(policy, "status");
  if (status == nullptr || !status->is_object()) return true;
  const auto generation = policy.value(json::json_pointer("/metadata/generation"), 0LL);
  if (status->value("observedGeneration", -1LL) != generation) return true;
  const auto last = timeAt(*status, "lastCalibrationTime");
  if (!last) return true;
  auto spec = admission::parseGatePolicySpec(policy);
  if (!spec) return false;  // judged at this generation already; a new spec comes with a new one
  return now - *last >= spec->interval;
}

std::array<WallTime, 4> evidenceSince(const json& policy, const admission::GatePolicySpec& spec,
                                      WallTime now) {
  std::array<WallTime, 4> since;
  since.fill(now - spec.window);
  const json* status = pi0::json::member(policy, "status");
  const json* history = status ? pi0::json::member(*status, "history") : nullptr;
  if (history == nullptr || !history->is_array()) return since;
  for (const json& change : *history) {
    const auto gate = gateNamed(change.is_object() ? change.value("gate", "") : "");
    const auto at = gate ? timeAt(change, "time") : std::nullopt;
    if (at)
      since[static_cast<std::size_t>(*gate)] =
          std::max(since[static_cast<std::size_t>(*gate)], *at);
  }
  return since;
}

Thresholds inForce(const json& policy, const admission::GatePolicySpec& spec,
                   const Thresholds& fixed) {
  if (spec.mode != CalibrationMode::kAuto) return fixed;
  const json* status = pi0::json::member(policy, "status");
  const json* t = status ? pi0::json::member(*status, "thresholds") : nullptr;
  if (t == nullptr) return fixed;
  auto parsed = admission::parseThresholds(*t, "status.thresholds");
  return parsed ? *parsed : fixed;
}

RoundOutput calibrationRound(const RoundInput& in) {
  RoundOutput out;
  const json& policy = *in.policy;
  const std::int64_t generation = policy.value(json::json_pointer("/metadata/generation"), 0LL);
  const json* oldStatus = pi0::json::member(policy, "status");
  json status = oldStatus && oldStatus->is_object() ? *oldStatus : json::object();
  std::vector<Condition> conditions = conditionsFromJson(status.value("conditions", json::array()));
  json history = status.value("history", json::array());
  if (!history.is_array()) history = json::array();

  auto spec = admission::parseGatePolicySpec(policy);
  if (spec)
    out.spec = *spec;
  else
    out.invalid = spec.error().message;
  const CalibrationMode mode = spec ? spec->mode : CalibrationMode::kOff;

  const Thresholds current = spec ? inForce(policy, *spec, in.fixed) : in.fixed;
  Thresholds next = current;
  std::string resetReason;
  if (mode != CalibrationMode::kAuto) {
    next = in.fixed;
    resetReason = spec ? std::string("mode ") + admission::calibrationModeName(mode) +
                             ": the fixed thresholds apply"
                       : "the spec is invalid: the fixed thresholds apply";
  }
  // A change back to the fixed thresholds (the mode left Auto) is recorded like any other.
  if (const json* t = pi0::json::member(status, "thresholds");
      t && mode != CalibrationMode::kAuto) {
    if (auto before = admission::parseThresholds(*t, "status.thresholds")) {
      for (std::size_t i = 0; i < kGates; ++i) {
        const Gate gate = static_cast<Gate>(i);
        const double from = admission::thresholdOf(*before, gate);
        const double to = admission::thresholdOf(next, gate);
        if (std::abs(from - to) > 1e-9)
          out.changes.push_back({in.now, gate, from, to, resetReason});
      }
    }
  }

  status.erase("evidence");
  status.erase("recommendation");
  // EnoughEvidence speaks of the evidence a round read: none is read without a valid spec, in
  // Off mode or without a ledger, so the condition goes rather than stay as an old round left it.
  std::erase_if(conditions, [](const Condition& c) { return c.type == "EnoughEvidence"; });
  if (!spec) {
    setCondition(conditions, "Ready", false, "InvalidSpec", out.invalid, generation, in.now);
  } else if (mode == CalibrationMode::kOff) {
    setCondition(conditions, "Ready", true, "Off", "calibration is off: the fixed thresholds apply",
                 generation, in.now);
  } else if (!in.evidence) {
    const bool noLedger = in.evidenceError.empty();
    setCondition(conditions, "Ready", false, noLedger ? "NoLedger" : "LedgerError",
                 noLedger ? "the operator keeps no truth ledger (--ledger-path): no outcomes to "
                            "calibrate from"
                          : "cannot read the truth ledger: " + in.evidenceError,
                 generation, in.now);
  } else {
    const Evidence& e = *in.evidence;
    const auto recs = admission::recommend(current, e.inForce, spec->calibration);
    json gates = json::array(), recommendation = json::array();
    std::string short_;
    const auto since = evidenceSince(policy, *spec, in.now);
    for (std::size_t i = 0; i < kGates; ++i) {
      const Gate gate = static_cast<Gate>(i);
      json g = evidenceJson(e.inForce[i]);
      g["holdout"] = evidenceJson(e.holdout[i]);
      json entry = {{"gate", admission::gateName(gate)},
                    {"since", rfc3339(since[i], 0)},
                    {"sinceChange", e.inForce[i].sinceChange},
                    {"nearAdmitted", e.inForce[i].nearAdmitted},
                    {"nearFalsified", e.inForce[i].nearFalsified}};
      entry.update(g);
      gates.push_back(std::move(entry));
      const auto& r = recs[i];
      recommendation.push_back({{"gate", admission::gateName(gate)},
                                {"current", r.current},
                                {"recommended", r.recommended},
                                {"move", admission::moveName(r.move)},
                                {"reason", r.reason}});
      const std::int64_t judged = e.inForce[i].admitted + e.inForce[i].denied;
      if (judged < spec->calibration.minDecisions) {
        short_ += (short_.empty() ? "" : ", ") + std::string(admission::gateName(gate)) + " " +
                  std::to_string(judged);
      }
      if (mode == CalibrationMode::kAuto && r.move != admission::Move::kHold) {
        next = admission::withThreshold(next, gate, r.recommended);
        out.changes.push_back({in.now, gate, r.current, r.recommended, r.reason});
      }
    }
    status["evidence"] = {{"since", rfc3339(in.now - spec->window, 0)},
                          {"gates", std::move(gates)}};
    status["recommendation"] = std::move(recommendation);
    setCondition(conditions, "Ready", true, "Calibrating",
                 std::string("mode ") + admission::calibrationModeName(mode) + ", every " +
                     std::to_string(spec->interval.count()) + "s",
                 generation, in.now);
    if (short_.empty()) {
      setCondition(conditions, "EnoughEvidence", true, "EnoughEvidence",
                   "every gate has at least " + std::to_string(spec->calibration.minDecisions) +
                       " judged decisions",
                   generation, in.now);
    } else {
      setCondition(conditions, "EnoughEvidence", false, "InsufficientEvidence",
                   "judged decisions under the " + std::to_string(spec->calibration.minDecisions) +
                       " a gate needs to move: " + short_,
                   generation, in.now);
    }
  }

  for (const auto& c : out.changes) {
    history.push_back({{"time", rfc3339(c.at, 0)},
                       {"gate", admission::gateName(c.gate)},
                       {"from", c.from},
                       {"to", c.to},
                       {"reason", c.reason}});
  }
  if (history.size() > in.historyLimit)
    history.erase(history.begin(),
                  history.begin() + static_cast<std::ptrdiff_t>(history.size() - in.historyLimit));
  status["observedGeneration"] = generation;
  status["mode"] = admission::calibrationModeName(mode);
  status["thresholds"] = admission::thresholdsToJson(next);
  status["fixedThresholds"] = admission::thresholdsToJson(in.fixed);
  status["lastCalibrationTime"] = rfc3339(in.now, 0);
  status["history"] = std::move(history);
  status["conditions"] = toJson(conditions);
  out.status = std::move(status);
  return out;
}

GatePolicyCalibrator::GatePolicyCalibrator(kube::ObjectWriter& writer, ledger::Ledger* ledger,
                                           kube::EventSink& events, OperatorMetrics* metrics,
                                           CalibratorOptions options)
    : writer_(writer),
      ledger_(ledger),
      events_(events),
      metrics_(metrics),
      options_(std::move(options)) {}

Result<std::vector<ThresholdChange>> GatePolicyCalibrator::round(WallTime now) {
  RoundOutput out;
  bool ran = false;
  auto stored = writer_.modify(
      kube::resources::kGatePolicies, "", options_.name,
      [&](json& policy) {
        ran = false;
        if (!roundDue(policy, now)) return false;
        RoundInput in;
        in.policy = &policy;
        in.fixed = options_.fixed;
        in.now = now;
        in.historyLimit = options_.historyLimit;
        auto spec = admission::parseGatePolicySpec(policy);
        if (ledger_ && spec && spec->mode != CalibrationMode::kOff) {
          // The window's decisions judged again with the thresholds in force, each gate's
          // counted since its own last change as well.
          const auto since = evidenceSince(policy, *spec, now);
          const Thresholds current = inForce(policy, *spec, options_.fixed);
          std::map<std::string, ledger::GateNow> gates;
          for (std::size_t i = 0; i < kGates; ++i) {
            const Gate gate = static_cast<Gate>(i);
            gates[admission::gateName(gate)] = {admission::thresholdOf(current, gate), since[i],
                                                admission::nearBand(spec->calibration)};
          }
          if (auto rates = ledger_->gateRates(now - spec->window, gates))
            in.evidence = evidenceOf(*rates);
          else
            in.evidenceError = rates.error().message;
        }
        out = calibrationRound(in);
        policy["status"] = out.status;
        ran = true;
        return true;
      },
      kube::Subresource::kStatus);
  if (!stored) {
    if (stored.error().reason == kube::Reason::kNotFound) return std::vector<ThresholdChange>{};
    if (metrics_) metrics_->countCalibrationRound("error");
    return fail("GatePolicy " + options_.name + ": " + stored.error().describe());
  }
  if (!ran) return std::vector<ThresholdChange>{};
  const auto ref = kube::ObjectReference::of(*stored);
  if (!out.invalid.empty()) {
    if (metrics_) metrics_->countCalibrationRound("invalid");
    if (out.invalid != lastInvalid_) {
      events_.record(ref, kube::EventType::kWarning, "InvalidGatePolicy",
                     out.invalid + "; the fixed thresholds apply");
      log::warn("GatePolicy is invalid", {{"name", options_.name}, {"error", out.invalid}});
    }
  } else if (metrics_) {
    metrics_->countCalibrationRound("calibrated");
  }
  lastInvalid_ = out.invalid;
  const bool reset = !out.spec || out.spec->mode != CalibrationMode::kAuto;
  for (const auto& c : out.changes) {
    const std::string message = std::string(admission::gateName(c.gate)) + " " + settingOf(c.from) +
                                " -> " + settingOf(c.to) + ": " + c.reason;
    events_.record(ref, kube::EventType::kNormal, eventReason(c, reset), message);
    log::info("gate threshold changed", {{"policy", options_.name},
                                         {"gate", admission::gateName(c.gate)},
                                         {"from", c.from},
                                         {"to", c.to},
                                         {"reason", c.reason}});
    if (metrics_)
      metrics_->countThresholdChange(admission::gateName(c.gate), eventReason(c, reset));
  }
  if (metrics_) {
    if (auto t = admission::parseThresholds(out.status["thresholds"], "status.thresholds"))
      metrics_->setGateThresholds(*t);
  }
  return out.changes;
}

void GatePolicyCalibrator::run(std::stop_token stop, const std::function<bool()>& leading,
                               Clock& clock) {
  while (!stop.stop_requested()) {
    if (leading()) {
      if (auto r = round(std::chrono::system_clock::now()); !r)
        log::warn("calibration round failed", {{"error", r.error().message}});
    }
    clock.sleepUntil(clock.now() + options_.tick, stop);
  }
}

}  // namespace pi0::op
