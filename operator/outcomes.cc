#include "operator/outcomes.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/format.h"
#include "common/log.h"
#include "operator/operator_metrics.h"

namespace pi0::op {
namespace {

using kube::Json;

std::string reasonOf(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::vector<ledger::Outcome> podOutcomes(const Json& pod, ledger::Time now) {
  std::vector<ledger::Outcome> out;
  const Json status = kube::field<Json>(pod, "/status"_json_pointer, Json::object());
  if (!status.is_object()) return out;
  auto add = [&](std::string kind, std::string detail) {
    for (const auto& o : out)
      if (o.kind == kind) return;
    out.push_back({std::move(kind), now, std::move(detail)});
  };
  bool disrupted = false;
  for (const Json& c : kube::field<Json>(status, "/conditions"_json_pointer, Json::array())) {
    if (!c.is_object() || reasonOf(c, "status") != "True") continue;
    const std::string type = reasonOf(c, "type");
    if (type == "Ready") add("ready", "");
    if (type == "DisruptionTarget") {
      const std::string reason = reasonOf(c, "reason");
      const std::string message = reasonOf(c, "message");
      const std::string detail = reason + (message.empty() ? "" : ": " + message);
      disrupted = true;
      if (reason == "PreemptionByScheduler" || reason == "PreemptionByKubeScheduler")
        add("preempted", detail);
      else
        add("evicted", detail);
    }
  }
  for (const Json& c :
       kube::field<Json>(status, "/containerStatuses"_json_pointer, Json::array())) {
    if (!c.is_object()) continue;
    const std::string name = reasonOf(c, "name");
    for (const char* state : {"/state/terminated/reason", "/lastState/terminated/reason"}) {
      if (kube::field<std::string>(c, Json::json_pointer(state), "") == "OOMKilled")
        add("oom_killed", "container " + name + ": OOMKilled");
    }
    if (kube::field<std::string>(c, "/state/waiting/reason"_json_pointer, "") == "CrashLoopBackOff")
      add("crash_looping", "container " + name + ": CrashLoopBackOff");
  }
  const std::string reason = reasonOf(status, "reason");
  if (!disrupted && reason == "Evicted") add("evicted", "Evicted: " + reasonOf(status, "message"));
  if (reasonOf(status, "phase") == "Failed" && reason != "Evicted" && !disrupted)
    add("failed", reason);
  return out;
}

std::optional<std::string> nodeTrouble(const fleet::NodeFingerprint& fingerprint) {
  for (const auto& [name, signal] : fingerprint.signals) {
    const bool pressure = name.starts_with("psi_");
    if (pressure) {
      const double line = signal.forecast ? signal.forecast->troubleLine : kDefaultPressureLine;
      if (signal.current >= line) return name + " " + fixed(signal.current) + " >= " + fixed(line);
    } else if (signal.forecast && signal.current >= signal.forecast->troubleLine) {
      return name + " " + fixed(signal.current) + " at saturation";
    }
  }
  return std::nullopt;
}

void TroubleHistory::observe(const fleet::FleetSnapshot& fleet, Clock::time_point now,
                             ledger::Time wallNow) {
  if (!since_) since_ = wallNow;
  for (const auto& status : fleet.nodes()) {
    if (!status->fingerprint || !fleet.isUsable(*status, now)) continue;
    const auto trouble = nodeTrouble(*status->fingerprint);
    auto& episodes = episodes_[status->node];
    const bool open = !episodes.empty() && !episodes.back().end;
    if (trouble && !open) episodes.push_back({wallNow, std::nullopt, *trouble});
    if (!trouble && open) episodes.back().end = wallNow;
  }
}

std::optional<TroubleHistory::Seen> TroubleHistory::troubleWithin(const std::string& node,
                                                                  ledger::Time from,
                                                                  ledger::Time to) const {
  auto it = episodes_.find(node);
  if (it == episodes_.end()) return std::nullopt;
  for (const Episode& e : it->second) {
    if (e.start >= to) break;
    if (e.end && *e.end <= from) continue;
    return Seen{std::max(e.start, from), e.detail};
  }
  return std::nullopt;
}

void TroubleHistory::forget(ledger::Time before) {
  for (auto it = episodes_.begin(); it != episodes_.end();) {
    auto& v = it->second;
    v.erase(std::remove_if(v.begin(), v.end(),
                           [&](const Episode& e) { return e.end && *e.end < before; }),
            v.end());
    it = v.empty() ? episodes_.erase(it) : std::next(it);
  }
}

OutcomeTracker::OutcomeTracker(ledger::Ledger& ledger, std::chrono::milliseconds horizon,
                               OperatorMetrics* metrics)
    : ledger_(ledger), horizon_(horizon), metrics_(metrics) {}

void OutcomeTracker::podChanged(const kube::ObjectPtr& before, const kube::ObjectPtr& now,
                                ledger::Time at) {
  if (!now) return;
  const std::string uid = kube::field<std::string>(*now, "/metadata/uid"_json_pointer, "");
  if (uid.empty()) return;
  std::set<std::string> had;
  if (before)
    for (const auto& o : podOutcomes(*before, at))
      had.insert(o.kind);
  std::vector<ledger::Outcome> fresh;
  for (auto& o : podOutcomes(*now, at))
    if (!had.contains(o.kind)) fresh.push_back(std::move(o));
  if (fresh.empty()) return;
  std::lock_guard lock(mu_);
  for (auto& o : fresh)
    queue_.push_back({uid, std::move(o)});
}

void OutcomeTracker::nodesObserved(const fleet::FleetSnapshot& fleet, Clock::time_point now,
                                   ledger::Time wallNow) {
  std::lock_guard lock(mu_);
  history_.observe(fleet, now, wallNow);
}

std::size_t OutcomeTracker::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void OutcomeTracker::flush(ledger::Time now) {
  std::vector<ledger::Ledger::PodOutcome> pods;
  {
    std::lock_guard lock(mu_);
    pods.swap(queue_);
  }
  if (!pods.empty()) {
    auto joins = ledger_.addPodOutcomes(pods, horizon_);
    if (!joins) {
      log::warn("ledger: cannot join pod outcomes; retrying",
                {{"error", joins.error().message}, {"outcomes", pods.size()}});
      std::lock_guard lock(mu_);
      queue_.insert(queue_.begin(), pods.begin(), pods.end());
    } else {
      if (metrics_) {
        for (const auto& [kind, n] : joins->joined)
          metrics_->countLedgerOutcome(kind, n);
      }
      // No decision yet: it may still be on its way from a webhook replica (a second, or a
      // leader change). Tried again until kDecisionGrace has passed; a pod no Pi0 webhook
      // decided on (an excluded namespace) ends there.
      std::lock_guard lock(mu_);
      for (std::size_t i : joins->unmatched) {
        if (now - pods[i].outcome.at < kDecisionGrace) queue_.push_back(std::move(pods[i]));
      }
    }
  }

  // Node verdicts: decisions whose horizon has passed, made while the history covered the fleet
  // and still covers their horizon (it keeps the episodes that ended within three horizons).
  std::vector<std::pair<std::string, ledger::Outcome>> verdicts;
  {
    std::lock_guard lock(mu_);
    const auto since = history_.observedSince();
    if (!since) return;
    const ledger::Time kept = now - 3 * horizon_;
    const ledger::Time from = std::max(*since, kept);
    const ledger::Time to = now - horizon_;
    if (from >= to) return;
    auto due = ledger_.awaitingNodeVerdict(from, to, 10000);
    if (!due) {
      log::warn("ledger: cannot read decisions awaiting a node verdict",
                {{"error", due.error().message}});
      return;
    }
    for (const ledger::Decision& d : *due) {
      if (auto seen = history_.troubleWithin(d.node, d.at, d.at + horizon_))
        verdicts.push_back({d.id, {"node_trouble", seen->at, seen->detail}});
      else
        verdicts.push_back({d.id, {"node_fine", d.at + horizon_, ""}});
    }
    history_.forget(kept);
  }
  if (verdicts.empty()) return;
  auto added = ledger_.addOutcomes(verdicts);
  if (!added) {
    log::warn("ledger: cannot store node verdicts; retrying", {{"error", added.error().message}});
    return;
  }
  if (metrics_) {
    std::size_t trouble = 0;
    for (const auto& v : verdicts)
      trouble += v.second.kind == "node_trouble";
    metrics_->countLedgerOutcome("node_trouble", trouble);
    metrics_->countLedgerOutcome("node_fine", verdicts.size() - trouble);
  }
}

void OutcomeTracker::run(std::stop_token stop, std::chrono::milliseconds every) {
  while (!stop.stop_requested()) {
    flush(std::chrono::system_clock::now());
    systemClock().sleepUntil(systemClock().now() + every, stop);
  }
}

}  // namespace pi0::op
