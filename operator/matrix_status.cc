#include "matrix_status.h"

#include <cmath>

#include "common/timestamp.h"
#include "kube/json.h"
#include "kube/quantity.h"
#include "operator/status_numbers.h"

namespace pi0::op {
namespace {

using Json = nlohmann::json;
using kube::field;
using kube::stringField;
using stability::ChannelRef;
using stability::ChannelState;

Json refJson(const ChannelRef& ref) {
  return {{"namespace", ref.ns}, {"name", ref.name}};
}

ChannelRef refOf(const Json& j) {
  return {stringField(j, "/namespace"_json_pointer), stringField(j, "/name"_json_pointer)};
}

std::optional<WallTime> timeOf(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return parseRfc3339(it->get<std::string>());
}

void putTime(Json& j, const char* key, const std::optional<WallTime>& t, int digits = 0) {
  if (t) j[key] = rfc3339(*t, digits);
}

std::optional<stability::Action> parseAction(std::string_view name) {
  if (name == "Degrade") return stability::Action::kDegrade;
  if (name == "Shutdown") return stability::Action::kShutdown;
  if (name == "Restore") return stability::Action::kRestore;
  return std::nullopt;
}

Json resourcesJson(const stability::Resources& r) {
  Json j = Json::object();
  if (r.cpuMilli) j["cpu"] = kube::formatCpuMilli(*r.cpuMilli);
  if (r.memoryBytes) j["memory"] = kube::formatBytes(*r.memoryBytes);
  return j;
}

std::optional<stability::Resources> resourcesOf(const Json& j) {
  if (!j.is_object()) return std::nullopt;
  stability::Resources r;
  if (auto v = kube::parseCpuMilli(stringField(j, "/cpu"_json_pointer)); v && j.contains("cpu"))
    r.cpuMilli = *v;
  if (auto v = kube::parseBytes(stringField(j, "/memory"_json_pointer)); v && j.contains("memory"))
    r.memoryBytes = *v;
  return r;
}

Json array(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : Json::array();
}

}  // namespace

std::optional<ChannelState> parseChannelState(std::string_view name) {
  if (name == "Active") return ChannelState::kActive;
  if (name == "Degraded") return ChannelState::kDegraded;
  if (name == "Inactive") return ChannelState::kInactive;
  return std::nullopt;
}

const ChannelEntry* MatrixStatus::entry(const std::string& channelKey) const {
  for (const auto& e : channels) {
    if (e.channel.key() == channelKey) return &e;
  }
  return nullptr;
}

Json toJson(const MatrixStatus& s) {
  Json j = Json::object();
  j["observedGeneration"] = s.observedGeneration;
  if (!s.level.empty()) {
    j["level"] = s.level;
    j["levelIndex"] = s.levelIndex;
  }
  if (s.load) j["load"] = round4(*s.load);
  Json byResource = Json::object();
  for (const auto& [r, v] : s.loadByResource)
    byResource[r] = round4(v);
  j["loadByResource"] = byResource;
  if (s.anticipatedLoad) j["anticipatedLoad"] = round4(*s.anticipatedLoad);
  j["levelCause"] = s.levelCause;
  j["stability"] = round4(s.stability);
  j["availability"] = round4(s.availability);
  j["systemState"] = s.systemState;
  Json plan = Json::array();
  for (std::size_t i = 0; i < s.plan.size(); ++i) {
    const auto& p = s.plan[i];
    plan.push_back({{"step", static_cast<int>(i) + 1},
                    {"action", stability::actionName(p.action)},
                    {"channel", refJson(p.channel)},
                    {"reason", p.reason},
                    {"targets", p.targets}});
  }
  j["plan"] = plan;

  const auto& p = s.progress;
  Json progress = {
      {"phase", p.phase}, {"completedSteps", p.completedSteps}, {"message", p.message}};
  putTime(progress, "calmSince", p.calmSince);
  putTime(progress, "lastActionTime", p.lastActionTime, 3);
  if (!p.restores.empty()) {
    Json restores = Json::array();
    for (const auto& r : p.restores) {
      Json x = {{"channel", refJson(r.channel)},
                {"target", stability::channelStateName(r.target)},
                {"phase", r.phase == RestoreRecord::Phase::kAnnounced ? "Announced" : "Scaling"},
                {"attempts", r.attempts},
                {"stalled", r.stalled}};
      if (r.rollback) x["rollback"] = true;
      putTime(x, "announcedAt", r.announcedAt, 3);
      putTime(x, "startedAt", r.startedAt);
      putTime(x, "retryAt", r.retryAt);
      restores.push_back(std::move(x));
    }
    progress["restores"] = restores;
  }
  if (!p.evaluations.empty()) {
    Json evaluations = Json::array();
    for (const auto& e : p.evaluations) {
      Json dependents = Json::array();
      for (const auto& d : e.dependents) {
        dependents.push_back(
            {{"channel", d.key}, {"readyShare", round4(d.readyShare)}, {"restarts", d.restarts}});
      }
      Json x = {{"channel", refJson(e.channel)},
                {"action", stability::actionName(e.action)},
                {"before", stability::channelStateName(e.before)},
                {"load", round4(e.load)},
                {"stability", round4(e.stability)},
                {"availability", round4(e.availability)},
                {"dependents", dependents}};
      putTime(x, "takenAt", e.takenAt, 3);
      evaluations.push_back(std::move(x));
    }
    progress["evaluations"] = evaluations;
  }
  if (!p.cooldowns.empty()) {
    Json cooldowns = Json::array();
    for (const auto& c : p.cooldowns) {
      Json x = {{"channel", refJson(c.channel)}, {"reason", c.reason}};
      putTime(x, "until", c.until);
      cooldowns.push_back(std::move(x));
    }
    progress["cooldowns"] = cooldowns;
  }
  j["progress"] = progress;

  Json channels = Json::array();
  for (const auto& e : s.channels) {
    Json x = {{"channel", refJson(e.channel)},
              {"state", stability::channelStateName(e.state)},
              {"target", stability::channelStateName(e.target)},
              {"restoring", e.restoring}};
    if (e.buffer) x["buffer"] = resourcesJson(*e.buffer);
    channels.push_back(std::move(x));
  }
  j["channels"] = channels;
  j["conditions"] = toJson(s.conditions);
  return j;
}

MatrixStatus matrixStatusFromJson(const Json& j) {
  MatrixStatus s;
  if (!j.is_object()) return s;
  s.observedGeneration = field<int64_t>(j, "/observedGeneration"_json_pointer, 0);
  s.level = stringField(j, "/level"_json_pointer);
  s.levelIndex = static_cast<int>(field<int64_t>(j, "/levelIndex"_json_pointer, 0));
  if (auto it = j.find("load"); it != j.end() && it->is_number()) s.load = it->get<double>();
  if (auto it = j.find("loadByResource"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_number()) s.loadByResource[k] = v.get<double>();
    }
  }
  if (auto it = j.find("anticipatedLoad"); it != j.end() && it->is_number())
    s.anticipatedLoad = it->get<double>();
  if (auto cause = stringField(j, "/levelCause"_json_pointer); !cause.empty()) s.levelCause = cause;
  s.stability = field<double>(j, "/stability"_json_pointer, 1.0);
  s.availability = field<double>(j, "/availability"_json_pointer, 1.0);
  if (auto state = stringField(j, "/systemState"_json_pointer); !state.empty())
    s.systemState = state;
  for (const auto& p : array(j, "plan")) {
    auto action = parseAction(stringField(p, "/action"_json_pointer));
    if (!action) continue;
    PlanStepStatus step{*action,
                        refOf(field<Json>(p, "/channel"_json_pointer, Json::object())),
                        stringField(p, "/reason"_json_pointer),
                        {}};
    for (const auto& t : field<Json>(p, "/targets"_json_pointer, Json::array())) {
      if (t.is_string()) step.targets.push_back(t.get<std::string>());
    }
    s.plan.push_back(std::move(step));
  }

  const Json progress = field<Json>(j, "/progress"_json_pointer, Json::object());
  auto& p = s.progress;
  if (auto phase = stringField(progress, "/phase"_json_pointer); !phase.empty()) p.phase = phase;
  p.calmSince = timeOf(progress, "calmSince");
  p.lastActionTime = timeOf(progress, "lastActionTime");
  p.completedSteps = field<int64_t>(progress, "/completedSteps"_json_pointer, 0);
  p.message = stringField(progress, "/message"_json_pointer);
  for (const auto& r : array(progress, "restores")) {
    RestoreRecord x;
    x.channel = refOf(field<Json>(r, "/channel"_json_pointer, Json::object()));
    if (x.channel.name.empty()) continue;
    x.target =
        parseChannelState(stringField(r, "/target"_json_pointer)).value_or(ChannelState::kActive);
    x.startedAt = timeOf(r, "startedAt");
    // A record without a phase was written by an operator that scaled at once: Scaling.
    x.phase = stringField(r, "/phase"_json_pointer) == "Announced"
                  ? RestoreRecord::Phase::kAnnounced
                  : RestoreRecord::Phase::kScaling;
    x.announcedAt = timeOf(r, "announcedAt").value_or(x.startedAt.value_or(WallTime{}));
    x.rollback = field<bool>(r, "/rollback"_json_pointer, false);
    x.attempts = static_cast<int>(
        field<int64_t>(r, "/attempts"_json_pointer, x.phase == RestoreRecord::Phase::kScaling));
    x.stalled = field<bool>(r, "/stalled"_json_pointer, false);
    x.retryAt = timeOf(r, "retryAt");
    p.restores.push_back(std::move(x));
  }
  for (const auto& e : array(progress, "evaluations")) {
    Evaluation x;
    x.channel = refOf(field<Json>(e, "/channel"_json_pointer, Json::object()));
    auto action = parseAction(stringField(e, "/action"_json_pointer));
    auto taken = timeOf(e, "takenAt");
    if (x.channel.name.empty() || !action || !taken) continue;
    x.action = *action;
    x.takenAt = *taken;
    x.before =
        parseChannelState(stringField(e, "/before"_json_pointer)).value_or(ChannelState::kActive);
    x.load = field<double>(e, "/load"_json_pointer, 0.0);
    x.stability = field<double>(e, "/stability"_json_pointer, 1.0);
    x.availability = field<double>(e, "/availability"_json_pointer, 1.0);
    for (const auto& d : field<Json>(e, "/dependents"_json_pointer, Json::array())) {
      x.dependents.push_back({stringField(d, "/channel"_json_pointer),
                              field<double>(d, "/readyShare"_json_pointer, 1.0),
                              field<int64_t>(d, "/restarts"_json_pointer, 0)});
    }
    p.evaluations.push_back(std::move(x));
  }
  for (const auto& c : array(progress, "cooldowns")) {
    auto until = timeOf(c, "until");
    Cooldown x;
    x.channel = refOf(field<Json>(c, "/channel"_json_pointer, Json::object()));
    if (x.channel.name.empty() || !until) continue;
    x.until = *until;
    x.reason = stringField(c, "/reason"_json_pointer);
    p.cooldowns.push_back(std::move(x));
  }

  for (const auto& e : array(j, "channels")) {
    ChannelEntry x;
    x.channel = refOf(field<Json>(e, "/channel"_json_pointer, Json::object()));
    if (x.channel.name.empty()) continue;
    x.state =
        parseChannelState(stringField(e, "/state"_json_pointer)).value_or(ChannelState::kActive);
    x.target =
        parseChannelState(stringField(e, "/target"_json_pointer)).value_or(ChannelState::kActive);
    x.restoring = field<bool>(e, "/restoring"_json_pointer, false);
    if (auto it = e.find("buffer"); it != e.end()) x.buffer = resourcesOf(*it);
    s.channels.push_back(std::move(x));
  }
  s.conditions = conditionsFromJson(field<Json>(j, "/conditions"_json_pointer, Json::array()));
  return s;
}

bool worthWriting(const MatrixStatus& previous, const MatrixStatus& next) {
  auto stripped = [](MatrixStatus s) {
    s.load.reset();
    s.anticipatedLoad.reset();
    s.loadByResource.clear();
    s.stability = s.availability = 0;
    s.progress.message.clear();
    for (auto& p : s.plan)
      p.reason.clear();
    return s;
  };
  if (!(stripped(previous) == stripped(next))) return true;
  if (!near(previous.load, next.load) || !near(previous.anticipatedLoad, next.anticipatedLoad) ||
      !near(previous.stability, next.stability) ||
      !near(previous.availability, next.availability)) {
    return true;
  }
  if (previous.loadByResource.size() != next.loadByResource.size()) return true;
  for (const auto& [r, v] : next.loadByResource) {
    auto it = previous.loadByResource.find(r);
    if (it == previous.loadByResource.end() || !near(it->second, v)) return true;
  }
  return false;
}

}  // namespace pi0::op
