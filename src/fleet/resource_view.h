// ResourceView: what a consumer needs of one resource (cpu, memory, gpu) on one node, read from
// the node's fingerprint. The one place that knows which signals make up a resource: the cluster
// load (fleet/load.h) and admission (admission/pod_decision.h) both read nodes through it.
// Pure: no I/O.
//
// The signals of a resource:
//  - cpu: utilization "cpu", pressure "psi_cpu"; memory: "memory" and "psi_memory".
//  - gpu: the node's GPUs form one pool, as its CPUs do: every gate metric, the projected peak
//    and the forecast are the MEAN over the node's "gpu<i>_sm" signals (gpu<i>_memory takes no
//    part), and there is no pressure signal. With the mean, weighting a node by its GPU count
//    makes the cluster's gpu load the mean over all GPUs (the max would let one busy GPU make a
//    node of eight look full, though seven could take work). One GPU without data leaves the
//    pool's value unknown rather than biased.
#pragma once

#include <algorithm>
#include <optional>
#include <string_view>

#include "common/resource.h"
#include "fleet/fingerprint.h"

namespace pi0::fleet {

struct ResourceView {
  // The utilization signal's gate metrics (gpu: each the mean over the GPUs); nullopt when the
  // node has no such signal or its window is not full (no data for the resource).
  std::optional<SignalGates> gates;
  // 1 − isolation (gpu: the mean of it over the GPUs), in [0,1]; nullopt exactly when gates is.
  std::optional<double> projectedPeak;
  // The pressure signal's current value (PSI `some avg10`); nullopt for gpu and on a node
  // whose kernel has no PSI. Known even before the window is full.
  std::optional<double> pressure;
  // The highest PSI the kernel's average reaches within `seconds`, as the pressure signal's
  // stall rate carries it (SignalForecast::pressureAt: the kernel's arithmetic, without F's
  // noise margin, which at a tight threshold denies calm nodes for their noise), never below
  // `pressure`; `pressure` for `seconds` ≤ 0 and where the signal has no forecast (a window not
  // yet full, an agent older than the forecast); nullopt exactly when `pressure` is. What the
  // psi gate reads (admission/pod_decision.h, Policy::psiLeadSeconds).
  std::optional<double> pressureWithin(double seconds) const {
    if (!pressure || !pressureForecast || !(seconds > 0)) return pressure;
    return std::max(*pressure, pressureForecast->pressureAt(seconds));
  }
  // The soonest secondsToTrouble among the resource's signals, utilization and pressure (gpu:
  // every GPU); nullopt when none expects trouble.
  std::optional<double> secondsToTrouble;

  // F(τ) of the utilization signal `seconds` ahead (gpu: the mean over the GPUs), in [0,1];
  // nullopt when a signal it needs has no forecast.
  std::optional<double> forecastAt(double seconds) const;
  // The peak expected within the horizon plus `leadSeconds`: max(projected peak,
  // F(horizon + lead)) per signal (the gpu mean as above), or the projected peak where a signal
  // has no forecast (an agent older than the forecast); nullopt when projectedPeak is.
  std::optional<double> anticipatedPeak(double leadSeconds) const;

  Resource resource = Resource::kCpu;
  const NodeFingerprint* node = nullptr;             // not owned; the view is valid while it lives
  const SignalForecast* pressureForecast = nullptr;  // the pressure signal's, in `node`
};

// Whether resourceView reads the signal named `signal` (cpu, memory, psi_cpu, psi_memory,
// gpu<i>_sm): what a consumer that reads nodes only through it must keep of a fingerprint.
bool readByResourceView(std::string_view signal);

// Drops what no reader through resourceView needs from a fingerprint: the other signals, every
// spectrum and entropy (an agent asked for them), and the GPU facts. The operator's and the
// webhook's fleet views keep fingerprints trimmed so (FleetViewOptions::trim): thousands of nodes
// in a few MiB.
void trimToResourceView(NodeFingerprint& fingerprint);

// The view of `resource` on the node of `fingerprint`, which must outlive the view.
ResourceView resourceView(const NodeFingerprint& fingerprint, Resource resource);

}  // namespace pi0::fleet
