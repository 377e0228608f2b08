// Fingerprints built in code for the fleet tests: only what the code under test reads.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "fleet/fingerprint.h"

namespace pi0::fleet::testing {

// A ready fingerprint of `node` whose signals have the given isolation (projected peak
// 1 - isolation); a signal mapped to nullopt has no gates yet (and makes the fingerprint not
// ready).
inline NodeFingerprint fingerprint(const std::string& node,
                                   const std::map<std::string, std::optional<double>>& isolation) {
  NodeFingerprint fp;
  fp.node = node;
  fp.ready = true;
  fp.windowFill = 1;
  for (const auto& [name, iso] : isolation) {
    SignalFingerprint s;
    s.samples = 64;
    if (iso) {
      s.gates = SignalGates{};
      s.gates->isolation = *iso;
      s.projectedPeak = 1 - *iso;
    } else {
      fp.ready = false;
    }
    fp.signals.emplace(name, s);
  }
  return fp;
}

}  // namespace pi0::fleet::testing
