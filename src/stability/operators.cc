#include "stability/operators.h"

#include <algorithm>
#include <cmath>

namespace pi0::stability {
namespace {

double clip01(double x) {
  if (!(x > 0)) return 0;  // also NaN
  return x > 1 ? 1 : x;
}

}  // namespace

double cpo(const Weights& w, const Terms& t) {
  return clip01(w.throughput * clip01(t.throughput) + w.reliability * clip01(t.reliability) +
                w.recovery * clip01(t.recovery));
}

double throughputFromQuery(double value, double max) {
  return max > 0 ? clip01(value / max) : 0;
}

double throughputFromReplicas(int64_t ready, int64_t desired) {
  return desired > 0 ? clip01(static_cast<double>(ready) / static_cast<double>(desired)) : 0;
}

double recoveryTerm(std::optional<std::chrono::duration<double>> mttr) {
  if (!mttr) return 1;
  return 1.0 / (1.0 + std::max(0.0, mttr->count()) / 60.0);
}

double updateReliability(double previous, double readyShare, std::chrono::duration<double> elapsed,
                         int newRestarts, const ReliabilityParams& params) {
  const double a = 1.0 - std::exp(-std::max(0.0, elapsed.count()) / params.tau.count());
  double r = clip01(previous) + a * (clip01(readyShare) - clip01(previous));
  r *= std::pow(1.0 - params.restartPenalty, std::max(0, newRestarts));
  return clip01(r);
}

double sao(const std::vector<ChannelFacts>& channels) {
  double product = 1;
  for (const auto& c : channels) {
    if (c.active) product *= 1.0 - failureProbability(clip01(c.reliability));
  }
  return product;
}

double availability(const std::vector<ChannelFacts>& channels) {
  double weighted = 0;
  double total = 0;
  for (const auto& c : channels) {
    const double w = c.critical ? 1.0 + clip01(c.cpo) : clip01(c.cpo);
    weighted += w * (c.active ? clip01(c.readyShare) : 0.0);
    total += w;
  }
  return total > 0 ? weighted / total : 1.0;
}

const char* systemStateName(SystemState state) {
  switch (state) {
    case SystemState::kRunning:
      return "Running";
    case SystemState::kDegraded:
      return "Degraded";
    case SystemState::kCritical:
      return "Critical";
  }
  return "Running";
}

SystemState systemState(double a) {
  if (a >= 0.9) return SystemState::kRunning;
  if (a < 0.5) return SystemState::kCritical;
  return SystemState::kDegraded;
}

namespace {

// One resource's pool split over the active channels by water-filling: each gets
// ⌊R·wᵢ/W⌋ of what is left R, over the weights W of those not yet at their cap, and a channel
// whose share would pass its cap gets the cap instead, the rest going round again. Weights are
// CPO in millionths and the arithmetic is exact integers, so the floors can never add up to
// more than the pool (a double's rounding could).
void waterFill(int64_t pool, const std::vector<int64_t>& weights,
               const std::vector<std::optional<int64_t>>& caps, std::vector<int64_t>& shares) {
  __extension__ typedef __int128 Wide;  // GCC and Clang have it; ISO C++ does not
  const std::size_t n = weights.size();
  std::vector<bool> fixed(n, false);
  Wide left = std::max<int64_t>(0, pool);
  while (true) {
    Wide total = 0;
    std::size_t open = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (fixed[i]) continue;
      total += weights[i];
      ++open;
    }
    if (open == 0) return;
    // What is left goes to the uncapped in proportion to CPO, or equally when their CPOs are
    // all 0 (so nothing stays in the pool while a channel could take it).
    auto weight = [&](std::size_t i) -> Wide { return total > 0 ? weights[i] : 1; };
    const Wide sum = total > 0 ? total : static_cast<Wide>(open);
    // Capping a channel whose share passes its cap only raises the others' (it takes less than
    // its proportion), so every channel over its cap now is over it at the end too.
    bool capped = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (fixed[i] || !caps[i]) continue;
      const Wide cap = std::max<int64_t>(0, *caps[i]);
      if (left * weight(i) > cap * sum) {
        shares[i] = static_cast<int64_t>(cap);
        fixed[i] = true;
        capped = true;
      }
    }
    if (capped) {
      left = std::max<int64_t>(0, pool);
      for (std::size_t i = 0; i < n; ++i) {
        if (fixed[i]) left -= shares[i];
      }
      continue;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!fixed[i]) shares[i] = static_cast<int64_t>(left * weight(i) / sum);
    }
    return;
  }
}

}  // namespace

std::vector<Resources> bao(const std::vector<ChannelFacts>& channels, const Resources& total) {
  std::vector<std::size_t> active;
  std::vector<int64_t> weights;
  for (std::size_t i = 0; i < channels.size(); ++i) {
    if (!channels[i].active) continue;
    active.push_back(i);
    weights.push_back(std::llround(clip01(channels[i].cpo) * 1e6));
  }
  std::vector<Resources> out(channels.size());
  auto split = [&](std::optional<int64_t> Resources::*field) {
    if (!(total.*field)) return;  // absent from every share
    for (auto& r : out)
      r.*field = 0;  // shut-down channels get nothing
    std::vector<std::optional<int64_t>> caps;
    for (const std::size_t i : active)
      caps.push_back(channels[i].bufferMax ? (*channels[i].bufferMax).*field : std::nullopt);
    std::vector<int64_t> shares(active.size(), 0);
    waterFill(*(total.*field), weights, caps, shares);
    for (std::size_t k = 0; k < active.size(); ++k)
      out[active[k]].*field = shares[k];
  };
  split(&Resources::cpuMilli);
  split(&Resources::memoryBytes);
  return out;
}

std::vector<std::string> gdo(const std::vector<ChannelFacts>& channels, double load) {
  std::vector<const ChannelFacts*> picked;
  for (const auto& c : channels) {
    if (!c.critical && !c.listed && c.active && c.cpo < load) picked.push_back(&c);
  }
  std::sort(picked.begin(), picked.end(), [](const ChannelFacts* a, const ChannelFacts* b) {
    return a->cpo != b->cpo ? a->cpo < b->cpo : a->key < b->key;
  });
  std::vector<std::string> keys;
  for (const auto* c : picked)
    keys.push_back(c->key);
  return keys;
}

double saoBound(const std::vector<ChannelFacts>& channels) {
  // sao() of the same list with every candidate shut down: the same factors in the same order,
  // so stabilityShutdowns() reaches exactly this value when it shuts all of them down.
  std::vector<ChannelFacts> state = channels;
  for (auto& c : state) {
    if (!c.critical) c.active = false;
  }
  return sao(state);
}

std::vector<std::string> stabilityShutdowns(const std::vector<ChannelFacts>& channels,
                                            double threshold) {
  std::vector<ChannelFacts> state = channels;
  if (sao(state) >= threshold || saoBound(channels) < threshold) return {};
  std::vector<ChannelFacts*> candidates;
  for (auto& c : state) {
    if (c.active && !c.critical) candidates.push_back(&c);
  }
  std::sort(candidates.begin(), candidates.end(), [](const ChannelFacts* a, const ChannelFacts* b) {
    return a->reliability != b->reliability ? a->reliability < b->reliability : a->key < b->key;
  });
  std::vector<std::string> keys;
  for (auto* c : candidates) {
    c->active = false;
    keys.push_back(c->key);
    if (sao(state) >= threshold) break;
  }
  return keys;
}

}  // namespace pi0::stability
