#include "stability/health.h"

#include <algorithm>

#include "kube/json.h"

namespace pi0::stability {

std::optional<PodSample> podSample(const nlohmann::json& pod) {
  using kube::field;
  using kube::stringField;
  if (!stringField(pod, "/metadata/deletionTimestamp"_json_pointer).empty()) return std::nullopt;
  const std::string phase = stringField(pod, "/status/phase"_json_pointer);
  if (phase == "Succeeded" || phase == "Failed") return std::nullopt;
  PodSample sample;
  sample.uid = stringField(pod, "/metadata/uid"_json_pointer);
  for (const auto& c :
       field<nlohmann::json>(pod, "/status/conditions"_json_pointer, nlohmann::json::array())) {
    if (c.is_object() && c.value("type", "") == "Ready")
      sample.ready = c.value("status", "") == "True";
  }
  for (const auto& s : field<nlohmann::json>(pod, "/status/containerStatuses"_json_pointer,
                                             nlohmann::json::array())) {
    if (s.is_object())
      sample.restarts += static_cast<int>(field<int64_t>(s, "/restartCount"_json_pointer, 0));
  }
  return sample;
}

Observation observe(const ChannelHealth& previous, const std::vector<PodSample>& pods, int desired,
                    WallClock::time_point now, const ObserveOptions& options) {
  const ReliabilityParams& params = options.reliability;
  Observation out;
  out.health = previous;
  auto& h = out.health;

  int ready = 0;
  std::map<std::string, int> restarts;
  for (const auto& pod : pods) {
    if (pod.ready) ++ready;
    restarts[pod.uid] = pod.restarts;
    // A pod seen for the first time brings its past restarts only when it is not new to the
    // channel's history; the first look at a channel counts none (they happened before Pi0).
    const auto before = previous.restartsByPod.find(pod.uid);
    if (before != previous.restartsByPod.end()) {
      out.newRestarts += std::max(0, pod.restarts - before->second);
    } else if (previous.restartsKnown) {
      out.newRestarts += pod.restarts;
    }
  }
  h.restartsByPod = std::move(restarts);
  h.restartsKnown = true;
  out.readyShare = desired > 0 ? std::min(1.0, static_cast<double>(ready) / desired) : 1.0;

  // Pi0's own scaling leaves fewer ready pods than desired, and its new pods may restart while
  // they start; neither says anything about the channel, so neither may lower the priority Pi0
  // acts on. An outage already in progress is the channel's own and is observed as usual.
  const bool excused = options.pi0Transition && !previous.notReadySince;
  const auto elapsed = previous.lastObserved
                           ? std::chrono::duration<double>(now - *previous.lastObserved)
                           : std::chrono::duration<double>(0);
  h.reliability = updateReliability(previous.reliability, excused ? 1.0 : out.readyShare, elapsed,
                                    excused ? 0 : out.newRestarts, params);
  h.lastObserved = now;

  if (out.readyShare < 1.0) {
    if (!h.notReadySince && !excused) h.notReadySince = now;
  } else if (h.notReadySince) {
    // NotReady → Ready: one more outage, folded into the mean.
    const double seconds =
        std::max(0.0, std::chrono::duration<double>(now - *h.notReadySince).count());
    const double mean = h.meanTimeToRecoverSeconds.value_or(0.0);
    h.meanTimeToRecoverSeconds = (mean * h.outages + seconds) / (h.outages + 1);
    ++h.outages;
    h.notReadySince.reset();
  }
  out.terms.reliability = h.reliability;
  out.terms.recovery =
      recoveryTerm(h.meanTimeToRecoverSeconds
                       ? std::optional<std::chrono::duration<double>>(*h.meanTimeToRecoverSeconds)
                       : std::nullopt);
  return out;
}

}  // namespace pi0::stability
