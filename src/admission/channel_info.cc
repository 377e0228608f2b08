#include "admission/channel_info.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "common/timestamp.h"
#include "kube/json.h"
#include "kube/quantity.h"
#include "stability/spec.h"

namespace pi0::admission {
namespace {

using nlohmann::json;

std::string text(const json& object, const json::json_pointer& pointer) {
  return kube::field<std::string>(object, pointer, std::string());
}

// A quantity from the status (a string or a number), or nullopt.
template <class Parse>
std::optional<int64_t> quantity(const json& object, const json::json_pointer& pointer,
                                Parse parse) {
  if (!object.is_object() || !object.contains(pointer)) return std::nullopt;
  const json& v = object.at(pointer);
  std::string s;
  if (v.is_string()) {
    s = v.get<std::string>();
  } else if (v.is_number()) {
    s = v.dump();
  } else {
    return std::nullopt;
  }
  auto parsed = parse(s);
  if (!parsed) return std::nullopt;
  return *parsed;
}

// allocated − used, at least 0. Saturating: a status with absurd quantities (a negative used)
// must not overflow.
int64_t remaining(int64_t allocated, int64_t used) {
  int64_t left;
  if (__builtin_sub_overflow(allocated, used, &left))
    return used < 0 ? std::numeric_limits<int64_t>::max() : 0;
  return std::max<int64_t>(0, left);
}

// The `restoring` flag of the matrix's status.channels entry for ns/name; false without one.
bool restoring(const json& matrix, const std::string& ns, const std::string& name) {
  // Walked, not copied: the list has an entry per channel and every pod review reads it.
  if (!matrix.is_object()) return false;
  const auto status = matrix.find("status");
  if (status == matrix.end() || !status->is_object()) return false;
  const auto entries = status->find("channels");
  if (entries == status->end() || !entries->is_array()) return false;
  for (const json& e : *entries) {
    if (!e.is_object() || text(e, "/channel/namespace"_json_pointer) != ns ||
        text(e, "/channel/name"_json_pointer) != name) {
      continue;
    }
    return kube::field<bool>(e, "/restoring"_json_pointer, false);
  }
  return false;
}

}  // namespace

ObjectPtr channelOfPod(const std::string& ns, const std::map<std::string, std::string>& labels,
                       const std::vector<ObjectPtr>& channels) {
  ObjectPtr best;
  std::string bestName;
  for (const auto& c : channels) {
    if (!c || text(*c, "/metadata/namespace"_json_pointer) != ns) continue;
    auto spec = stability::parseChannel(*c);
    if (!spec || !spec->selector.matches(labels)) continue;
    if (!best || spec->ref.name < bestName) {
      best = c;
      bestName = spec->ref.name;
    }
  }
  return best;
}

ObjectPtr actingMatrix(const std::vector<ObjectPtr>& matrices) {
  ObjectPtr enforce, any;
  auto age = [](const ObjectPtr& m) {
    return std::make_pair(text(*m, "/metadata/creationTimestamp"_json_pointer),
                          text(*m, "/metadata/name"_json_pointer));
  };
  for (const auto& m : matrices) {
    if (!m) continue;
    if (!any || age(m) < age(any)) any = m;
    if (text(*m, "/spec/mode"_json_pointer) != "DryRun" && (!enforce || age(m) < age(enforce)))
      enforce = m;
  }
  return enforce ? enforce : any;
}

ChannelInfo channelInfo(const json& channel, const json* matrix) {
  ChannelInfo info;
  info.name = text(channel, "/metadata/namespace"_json_pointer) + "/" +
              text(channel, "/metadata/name"_json_pointer);
  const std::string state = text(channel, "/status/state"_json_pointer);
  info.state = state == "Inactive"   ? stability::ChannelState::kInactive
               : state == "Degraded" ? stability::ChannelState::kDegraded
                                     : stability::ChannelState::kActive;

  // The buffer left: allocated minus used, per resource the allocation names.
  const auto allocCpu =
      quantity(channel, "/status/buffer/allocated/cpu"_json_pointer, kube::parseCpuMilli);
  const auto allocMemory =
      quantity(channel, "/status/buffer/allocated/memory"_json_pointer, kube::parseBytes);
  if (allocCpu || allocMemory) {
    stability::Resources left;
    if (allocCpu) {
      const auto used =
          quantity(channel, "/status/buffer/used/cpu"_json_pointer, kube::parseCpuMilli);
      left.cpuMilli = remaining(*allocCpu, used.value_or(0));
    }
    if (allocMemory) {
      const auto used =
          quantity(channel, "/status/buffer/used/memory"_json_pointer, kube::parseBytes);
      left.memoryBytes = remaining(*allocMemory, used.value_or(0));
    }
    info.bufferRemaining = left;
  }
  if (auto at = parseRfc3339(text(channel, "/status/buffer/observedAt"_json_pointer)))
    info.bufferObservedAt = *at;

  if (matrix == nullptr) return info;
  info.restoring = restoring(*matrix, text(channel, "/metadata/namespace"_json_pointer),
                             text(channel, "/metadata/name"_json_pointer));
  info.level = text(*matrix, "/status/level"_json_pointer);
  info.load = kube::field<double>(*matrix, "/status/load"_json_pointer, 0.0);
  const auto levelIndex =
      static_cast<int>(kube::field<int64_t>(*matrix, "/status/levelIndex"_json_pointer, 0));
  info.elevated = levelIndex > 0;
  auto spec = stability::parseMatrix(*matrix);
  if (!spec || spec->levels.empty()) return info;
  // The level whose lower bound the channel waits for: its row's lowest Shutdown cell, else
  // the current level.
  int shutdownLevel = std::clamp(levelIndex, 0, static_cast<int>(spec->levels.size()) - 1);
  for (const auto& row : spec->rows) {
    if (row.channel.key() != info.name) continue;
    for (const auto& cell : row.cells) {
      if (cell.action != stability::Action::kShutdown) continue;
      for (std::size_t i = 0; i < spec->levels.size(); ++i) {
        if (spec->levels[i].name == cell.level)
          shutdownLevel = std::min(shutdownLevel, static_cast<int>(i));
      }
    }
  }
  if (shutdownLevel >= 1) {
    if (auto bound = spec->levels[static_cast<std::size_t>(shutdownLevel - 1)].upperBound)
      info.resumeBelow = *bound - spec->hysteresis.margin;
  }
  return info;
}

}  // namespace pi0::admission
