// The pod's channel as pi0-webhook sees it, from the Channel and ShutdownMatrix objects the
// operator keeps current (their status), as pure functions:
//
// - The pod's channel: the Channels of the pod's namespace whose selector matches the pod's
//   labels; when several do, the first by name (a pod should belong to one channel; the
//   operator counts it in each).
// - The acting matrix: the oldest in Enforce mode, else the oldest of all (ties by name), as the
//   operator chooses it (its status is the one the channels' statuses follow).
// - ChannelInfo: the channel's status.state; the matrix's status.level, levelIndex and load;
//   `elevated` when levelIndex > 0; the load under which an Inactive channel comes back: the
//   upper bound of the level below the lowest level at which the channel's row shuts it down,
//   minus the hysteresis margin (for a channel without such a cell, shut down by the stability
//   trigger or unlisted, the bound of the level below the current one); the buffer left:
//   status.buffer.allocated minus status.buffer.used per resource (absent when nothing is
//   allocated); bufferObservedAt from status.buffer.observedAt (RFC 3339; absent when missing
//   or unreadable); `restoring` from the acting matrix's status.channels entry whose channel
//   (namespace and name) is this one: its boolean `restoring`, false when the entry or the
//   field is absent or not a boolean.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/pod_decision.h"

namespace pi0::admission {

using ObjectPtr = std::shared_ptr<const nlohmann::json>;

// The Channel object the pod belongs to, if any.
ObjectPtr channelOfPod(const std::string& ns, const std::map<std::string, std::string>& labels,
                       const std::vector<ObjectPtr>& channels);

// The matrix whose status the channels follow, or null when there is none.
ObjectPtr actingMatrix(const std::vector<ObjectPtr>& matrices);

// What decide() needs to know of the channel. `matrix` may be null (no matrix: level and load
// unknown, never elevated).
ChannelInfo channelInfo(const nlohmann::json& channel, const nlohmann::json* matrix);

}  // namespace pi0::admission
