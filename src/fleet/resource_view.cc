#include "fleet/resource_view.h"

#include <algorithm>

namespace pi0::fleet {
namespace {

// `of` applied to the resource's utilization signal or, for gpu, the mean of it over the node's
// GPUs; nullopt when a signal has no value.
template <class F>
std::optional<double> pooled(const NodeFingerprint& fp, Resource resource, F of) {
  if (resource != Resource::kGpu) {
    const SignalFingerprint* s = fp.signal(utilizationSignal(resource));
    return s ? of(*s) : std::nullopt;
  }
  double sum = 0;
  int n = 0;
  for (const auto& [name, s] : fp.signals) {
    const std::optional<SignalId> id = SignalId::parse(name);
    if (!id || id->kind != SignalId::Kind::kGpuSm) continue;
    const std::optional<double> v = of(s);
    if (!v) return std::nullopt;
    sum += *v;
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

std::optional<double> peakOf(const SignalFingerprint& s) {
  if (!s.gates) return std::nullopt;
  return 1.0 - s.gates->isolation;
}

void considerTrouble(const SignalFingerprint* s, std::optional<double>& soonest) {
  if (!s || !s->forecast || !s->forecast->secondsToTrouble) return;
  if (!soonest || *s->forecast->secondsToTrouble < *soonest)
    soonest = s->forecast->secondsToTrouble;
}

// The GPU pool in one pass over the signals: each gate, and 1 − isolation, averaged over the
// node's gpu<i>_sm signals (unknown when one has no gates), and the soonest trouble among them.
void poolGpus(const NodeFingerprint& fp, ResourceView& v) {
  SignalGates sum;
  double peakSum = 0;
  int n = 0;
  bool complete = true;
  for (const auto& [name, s] : fp.signals) {
    const std::optional<SignalId> id = SignalId::parse(name);
    if (!id || id->kind != SignalId::Kind::kGpuSm) continue;
    considerTrouble(&s, v.secondsToTrouble);
    if (!s.gates) complete = false;
    if (!complete) continue;
    sum.lambdaInt += s.gates->lambdaInt;
    sum.lambda1 += s.gates->lambda1;
    sum.fitError += s.gates->fitError;
    sum.gluingDelta += s.gates->gluingDelta;
    sum.isolation += s.gates->isolation;
    peakSum += 1.0 - s.gates->isolation;
    ++n;
  }
  if (!complete || n == 0) return;
  v.gates = SignalGates{sum.lambdaInt / n, sum.lambda1 / n, sum.fitError / n, sum.gluingDelta / n,
                        sum.isolation / n};
  v.projectedPeak = peakSum / n;
}

}  // namespace

bool readByResourceView(std::string_view signal) {
  const std::optional<SignalId> id = SignalId::parse(signal);
  if (!id) return false;
  switch (id->kind) {
    case SignalId::Kind::kCpu:
    case SignalId::Kind::kMemory:
    case SignalId::Kind::kPsiCpu:
    case SignalId::Kind::kPsiMemory:
    case SignalId::Kind::kGpuSm:
      return true;
    default:
      return false;
  }
}

void trimToResourceView(NodeFingerprint& fingerprint) {
  std::erase_if(fingerprint.signals,
                [](const auto& entry) { return !readByResourceView(entry.first); });
  for (auto& [name, signal] : fingerprint.signals) {
    signal.spectrum.clear();
    signal.spectrum.shrink_to_fit();
    signal.entropy.reset();
  }
  fingerprint.gpus.clear();
}

ResourceView resourceView(const NodeFingerprint& fp, Resource resource) {
  ResourceView v;
  v.resource = resource;
  v.node = &fp;
  if (resource == Resource::kGpu) {
    poolGpus(fp, v);
    return v;
  }
  const SignalFingerprint* s = fp.signal(utilizationSignal(resource));
  const SignalFingerprint* psi = fp.signal(*pressureSignal(resource));
  if (s && s->gates) {
    v.gates = s->gates;
    v.projectedPeak = peakOf(*s);
  }
  if (psi) {
    v.pressure = psi->current;
    if (psi->forecast) v.pressureForecast = &*psi->forecast;
  }
  considerTrouble(s, v.secondsToTrouble);
  considerTrouble(psi, v.secondsToTrouble);
  return v;
}

std::optional<double> ResourceView::forecastAt(double seconds) const {
  return pooled(*node, resource, [seconds](const SignalFingerprint& s) -> std::optional<double> {
    if (!s.forecast) return std::nullopt;
    return s.forecast->at(seconds);
  });
}

std::optional<double> ResourceView::anticipatedPeak(double leadSeconds) const {
  return pooled(*node, resource,
                [leadSeconds](const SignalFingerprint& s) -> std::optional<double> {
                  const std::optional<double> peak = peakOf(s);
                  if (!peak || !s.forecast) return peak;
                  // Never below the peak ℓ counts, whatever rounding the agent's numbers went
                  // through.
                  return std::max(*peak, s.forecast->at(s.forecast->horizonSeconds + leadSeconds));
                });
}

}  // namespace pi0::fleet
