#include "condition.h"

#include "common/timestamp.h"
#include "kube/json.h"

namespace pi0::op {

using Json = nlohmann::json;
using kube::field;
using kube::stringField;

void setCondition(std::vector<Condition>& conditions, std::string_view type, bool status,
                  std::string reason, std::string message, int64_t observedGeneration,
                  WallTime now) {
  for (auto& c : conditions) {
    if (c.type != type) continue;
    if (c.status != status || !c.lastTransitionTime) c.lastTransitionTime = now;
    c.status = status;
    c.reason = std::move(reason);
    c.message = std::move(message);
    c.observedGeneration = observedGeneration;
    return;
  }
  conditions.push_back(Condition{std::string(type), status, std::move(reason), std::move(message),
                                 observedGeneration, now});
}

const Condition* findCondition(const std::vector<Condition>& conditions, std::string_view type) {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

Json toJson(const std::vector<Condition>& conditions) {
  Json out = Json::array();
  for (const auto& c : conditions) {
    Json j = {{"type", c.type},
              {"status", c.status ? "True" : "False"},
              {"reason", c.reason},
              {"message", c.message},
              {"observedGeneration", c.observedGeneration}};
    if (c.lastTransitionTime) j["lastTransitionTime"] = rfc3339(*c.lastTransitionTime, 0);
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<Condition> conditionsFromJson(const Json& array) {
  std::vector<Condition> out;
  if (!array.is_array()) return out;
  for (const auto& j : array) {
    if (!j.is_object() || !j.contains("type")) continue;
    Condition c;
    c.type = stringField(j, "/type"_json_pointer);
    c.status = stringField(j, "/status"_json_pointer) == "True";
    c.reason = stringField(j, "/reason"_json_pointer);
    c.message = stringField(j, "/message"_json_pointer);
    c.observedGeneration = field<int64_t>(j, "/observedGeneration"_json_pointer, 0);
    if (auto t = j.find("lastTransitionTime"); t != j.end() && t->is_string())
      c.lastTransitionTime = parseRfc3339(t->get<std::string>());
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace pi0::op
