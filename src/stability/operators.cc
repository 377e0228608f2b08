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

std::vector<Resources> bao(const std::vector<ChannelFacts>& channels, const Resources& total) {
  double maxCpo = 0;
  for (const auto& c : channels) {
    if (c.active) maxCpo = std::max(maxCpo, clip01(c.cpo));
  }
  auto share = [&](const ChannelFacts& c, const std::optional<int64_t>& pool,
                   std::optional<int64_t> Resources::*field) -> std::optional<int64_t> {
    if (!pool || !c.active) return pool ? std::optional<int64_t>(0) : std::nullopt;
    const double fraction = maxCpo > 0 ? clip01(c.cpo) / maxCpo : 0.0;
    auto amount = static_cast<int64_t>(std::floor(static_cast<double>(*pool) * fraction));
    if (c.bufferMax && (*c.bufferMax).*field) amount = std::min(amount, *((*c.bufferMax).*field));
    return std::max<int64_t>(0, amount);
  };
  std::vector<Resources> out;
  out.reserve(channels.size());
  for (const auto& c : channels) {
    out.push_back({share(c, total.cpuMilli, &Resources::cpuMilli),
                   share(c, total.memoryBytes, &Resources::memoryBytes)});
  }
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

std::vector<std::string> stabilityShutdowns(const std::vector<ChannelFacts>& channels,
                                            double threshold) {
  std::vector<ChannelFacts> state = channels;
  if (sao(state) >= threshold) return {};
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
