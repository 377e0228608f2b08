// The stability operators of DESIGN.md as pure functions: a channel's priority (CPO) and its
// terms, its failure probability, the buffer split (BAO), the system's stability (SAO), its
// availability and state, and the channels to degrade that no matrix lists (GDO). No I/O, no
// clocks: every input is an argument, so each is tested with values computed by hand.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "stability/spec.h"

namespace pi0::stability {

// The three CPO terms, each in [0,1].
struct Terms {
  double throughput = 0;
  double reliability = 0;
  double recovery = 0;
};

// α·throughput + β·reliability + γ·recovery, clipped to [0,1] (weights need not sum to 1).
double cpo(const Weights& weights, const Terms& terms);

// A query's value over its declared maximum, clipped to [0,1] (max <= 0 gives 0).
double throughputFromQuery(double value, double max);
// Ready replicas over desired, clipped to [0,1]; 0 when nothing is desired.
double throughputFromReplicas(int64_t ready, int64_t desired);

// 1 / (1 + MTTR / 60 s): 1 for instant recovery, 0.5 for a minute; no outage yet gives 1.
double recoveryTerm(std::optional<std::chrono::duration<double>> meanTimeToRecover);

// The share of time the channel's pods were Ready, as an exponentially weighted mean with time
// constant `tau`, lowered by restarts: each restart seen since the last update multiplies the
// result by (1 − restartPenalty). Start a new channel at 1.
struct ReliabilityParams {
  std::chrono::duration<double> tau = std::chrono::minutes(10);
  double restartPenalty = 0.05;
};
double updateReliability(double previous, double readyShare, std::chrono::duration<double> elapsed,
                         int newRestarts, const ReliabilityParams& params = {});

// 1 − reliability.
inline double failureProbability(double reliability) {
  return 1.0 - reliability;
}

// What the system-wide operators need to know of one channel.
struct ChannelFacts {
  std::string key;        // "ns/name"
  bool critical = false;  // critical, or something a critical channel depends on
  bool active = true;     // not shut down (Active or Degraded)
  bool listed = false;    // named by a row of the matrix
  double cpo = 0;
  double reliability = 1;
  double readyShare = 1;  // ready replicas over the replicas it should have when active
  std::optional<Resources> bufferMax;
};

// Π (1 − p_fail) over the active channels: 1 when none is active.
double sao(const std::vector<ChannelFacts>& channels);

// Σ wᵢ·hᵢ / Σ wᵢ over all channels, wᵢ = CPO, and 1 + CPO for critical channels (so they weigh
// most); hᵢ = ready share, 0 for a channel that is shut down. 1 when there are no channels.
double availability(const std::vector<ChannelFacts>& channels);

enum class SystemState { kRunning, kDegraded, kCritical };
const char* systemStateName(SystemState state);
// Running (A ≥ 0.9), Degraded, Critical (A < 0.5).
SystemState systemState(double availability);

// BAO: a partition of the total buffer B over the active channels, per resource, in the order
// of `channels`. Shares are proportional to CPO over the sum of the active channels' CPO (equal
// when every active CPO is 0), each capped at the channel's max_buffer for that resource; what
// a cap frees goes to the channels below their caps, in proportion again (water-filling; equally
// among them when their CPOs are all 0). Shares are floored to whole units. A channel that is
// shut down gets 0 and does not weigh in the split (its buffer returns to the pool); a CPO of 0
// beside a positive one gets 0. A resource the total does not name is absent from every share.
// Guarantee, per resource: 0 ≤ share ≤ cap, Σ shares ≤ B; when at least one active channel ends
// below its cap, Σ shares > B − (number of active channels), i.e. flooring loses less than one
// unit per channel; when every active channel is at its cap, Σ shares = Σ caps ≤ B and the rest
// stays in the pool. CPO counts in millionths.
std::vector<Resources> bao(const std::vector<ChannelFacts>& channels, const Resources& total);

// GDO: the keys of the channels that are not critical, not listed by the matrix, active, and
// whose CPO is below the load ℓ, lowest CPO first (ties by key).
std::vector<std::string> gdo(const std::vector<ChannelFacts>& channels, double load);

// The most SAO can reach by shutting channels down: SAO with every active non-critical channel
// shut down, i.e. the product over the active critical ones; 1 when there are none.
double saoBound(const std::vector<ChannelFacts>& channels);

// The least reliable active non-critical channels whose shutdown brings SAO back to at least
// `threshold`, least reliable first (ties by key); empty when SAO is already there. Empty too
// when even shutting all of them down cannot get there (saoBound() < threshold): the critical
// channels bound SAO below the threshold, and shutdowns would only lose channels.
std::vector<std::string> stabilityShutdowns(const std::vector<ChannelFacts>& channels,
                                            double threshold);

}  // namespace pi0::stability
