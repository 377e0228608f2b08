// A channel's health over time, from its pods: the reliability and recovery terms of CPO.
// observe() folds one look at the channel's pods into the running state; the state is small
// and is written to the Channel's status, so a new operator leader goes on from it.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stability/operators.h"

namespace pi0::stability {

using WallClock = std::chrono::system_clock;

// What observe() needs of one pod.
struct PodSample {
  std::string uid;
  bool ready = false;
  int restarts = 0;  // summed over its containers
};

// From a Pod as the API serves it: the Ready condition and the containers' restart counts. A pod
// that is being deleted or has finished (Succeeded/Failed) is not counted: nullopt.
std::optional<PodSample> podSample(const nlohmann::json& pod);

struct ChannelHealth {
  double reliability = 1;                          // start trusting a new channel
  std::optional<double> meanTimeToRecoverSeconds;  // over the outages seen so far
  int outages = 0;
  std::optional<WallClock::time_point> notReadySince;  // in an outage since
  std::map<std::string, int> restartsByPod;            // last restart count per pod uid
  // restartsByPod holds a baseline: a pod it does not list is new and brings its restarts.
  // False on a channel's first look, and when the state comes from the status alone (a new
  // leader): the restarts the pods already have then are the baseline, not new ones.
  bool restartsKnown = false;
  std::optional<WallClock::time_point> lastObserved;
};

struct Observation {
  ChannelHealth health;
  double readyShare = 1;  // ready pods over desired replicas (1 when none are desired)
  int newRestarts = 0;    // seen since the last look (not penalized during a Pi0 transition)
  Terms terms;            // reliability and recovery filled; throughput is the caller's
};

struct ObserveOptions {
  // Pi0 is changing this channel's replicas now: one of its steps (a degrade or a shutdown) or a
  // restore is in progress. While it is set, fewer ready pods than desired is Pi0's doing, not
  // the channel's: no outage starts and none is counted, the reliability update sees a full
  // ready share (so it does not fall, and may rise), and restarts are not penalized (they still
  // join the baseline, so they are not counted later either). An outage that began before the
  // transition (notReadySince already set) is observed as without the flag: it keeps lowering
  // reliability and ends, counted, when the pods are back. Set it only until the step is
  // verified (ready replicas back) or reported stalled: a stalled restore is the channel's
  // failure again.
  bool pi0Transition = false;
  ReliabilityParams reliability;
};

// Folds one look at the channel's pods into `previous`. `desired` is the replicas the channel
// should have now (its state's count); an outage is any time with fewer ready pods than that,
// outside a transition of Pi0's (see ObserveOptions). Observation::readyShare is the real share
// either way.
Observation observe(const ChannelHealth& previous, const std::vector<PodSample>& pods, int desired,
                    WallClock::time_point now, const ObserveOptions& options = {});

}  // namespace pi0::stability
