// Snapshot: what the agent knows after one sampling round, immutable once published. The HTTP
// thread renders /fingerprint from it; the sampling thread publishes a new one every round.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gate/spectrum.h"

namespace pi0::agent {

struct SignalState {
  std::string name;
  std::size_t samples = 0;  // in the window
  double current = 0;
  double mean = 0;  // over the samples held, even before the window is full
  double stddev = 0;
  std::optional<gate::SignalAnalysis> analysis;  // only once the window is full
  double troubleLine = 1;                        // saturation, or the pressure line for psi_*
  std::optional<double> secondsToTrouble;        // until the forecast crosses it; none: never
};

struct MissingSource {
  std::string source;
  std::string reason;
};

struct Snapshot {
  std::string node;
  std::chrono::system_clock::time_point timestamp;
  double intervalSeconds = 1;
  std::size_t windowSize = 64;
  double horizonSeconds = 30;        // how far the projected peak looks ahead
  double windowFill = 0;             // the least filled signal's fill
  bool ready = false;                // every signal's window is full
  std::vector<SignalState> signals;  // sorted by name
  std::vector<MissingSource> missing;
  nlohmann::json gpus = nlohmann::json::array();  // static GPU facts, when there are GPUs
};

// The /fingerprint document (schema: docs/fingerprint.schema.json).
nlohmann::json toFingerprintJson(const Snapshot& snapshot);

}  // namespace pi0::agent
