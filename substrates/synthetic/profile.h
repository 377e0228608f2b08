// Synthetic load profiles: a YAML description of how each signal moves over time, parsed into
// an immutable Profile and evaluated as a pure function of time. SyntheticSampler
// (synthetic_sampler.h) replays one in place of /proc, for tests, demos and end-to-end runs.
//
// Format:
//
//   # t is seconds since the sampler's first sample() (or since it noticed the file change)
//   memoryTotalBytes: 17179869184   # optional: gauge total for the memory signal (16 GiB)
//   signals:                        # required, at least one
//     cpu:      {wave: sine, mean: 0.5, amplitude: 0.2, periodSeconds: 8, phase: 0}
//     memory:   {wave: constant, value: 0.3}
//     psi_cpu:  {wave: step, from: 0.05, to: 0.6, atSeconds: 30}
//     disk:     {wave: noise, mean: 0.2, std: 0.05, seed: 7}
//     network:  {wave: ramp, from: 0.1, to: 0.9, overSeconds: 120}
//     psi_io:   {wave: square, low: 0.1, high: 0.7, periodSeconds: 16, duty: 0.25}
//     gpu0_sm:  {wave: sum, of: [{wave: sine, mean: 0.4, amplitude: 0.2, periodSeconds: 32},
//                                {wave: noise, mean: 0, std: 0.03, seed: 1}]}
//
// Waves, value at time t (seconds):
//   constant  value
//   sine      mean + amplitude * sin(2*pi*t/periodSeconds + phase); periodSeconds > 0,
//             phase in radians (optional, default 0)
//   step      from while t < atSeconds, to from atSeconds on; atSeconds >= 0
//   ramp      from + (to - from) * t/overSeconds, holding from before 0 and to after
//             overSeconds; overSeconds > 0
//   noise     Gaussian with mean and std (>= 0). One independent draw per millisecond of t
//             (t rounded to the nearest millisecond), computed by a counter-based hash of
//             (seed, millisecond): the value at a given t depends only on seed and t, never on
//             how often or in which order the profile was evaluated. seed: integer >= 0.
//   square    high for the first `duty` fraction of each period (starting at t = 0), low for
//             the rest; periodSeconds > 0, duty in [0,1] (optional, default 0.5)
//   sum       the sum of the waves listed in `of` (non-empty; nested at most 16 deep)
// Levels (value, mean, amplitude, from, to, low, high) are any finite numbers, so a term of a
// sum may be negative; every signal's value is clamped to [0,1] only when emitted.
//
// Signal names are the agent's: cpu, memory, psi_cpu, psi_memory, psi_io, disk, network,
// gpu<N>_sm, gpu<N>_memory (N a GPU index without leading zeros). Anything else, an unknown
// key at any level, a duplicate key, a missing or non-numeric field, or a value out of range is
// an error; the message names the file (with the line when known), the signal and the field:
//   "profile.yaml:4: signals.cpu: sine needs periodSeconds > 0, got -8"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "sampler.h"

namespace pi0::substrates {

inline constexpr double kDefaultMemoryTotalBytes = 17179869184.0;  // 16 GiB

struct ConstantWave {
  double value = 0;
};
struct SineWave {
  double mean = 0;
  double amplitude = 0;
  double periodSeconds = 1;
  double phase = 0;  // radians
};
struct StepWave {
  double from = 0;
  double to = 0;
  double atSeconds = 0;
};
struct RampWave {
  double from = 0;
  double to = 0;
  double overSeconds = 1;
};
struct NoiseWave {
  double mean = 0;
  double std = 0;
  std::uint64_t seed = 0;
};
struct SquareWave {
  double low = 0;
  double high = 0;
  double periodSeconds = 1;
  double duty = 0.5;
};
struct Wave;
struct SumWave {
  std::vector<Wave> terms;  // non-empty
};
struct Wave {
  std::variant<ConstantWave, SineWave, StepWave, RampWave, NoiseWave, SquareWave, SumWave> shape;
};

struct ProfileSignal {
  std::string name;  // one of the agent's signal names (see isKnownSignal)
  Wave wave;
};

// A parsed profile. A plain value: parseProfile validates it once and nothing changes it after.
struct Profile {
  double memoryTotalBytes = kDefaultMemoryTotalBytes;  // > 0
  std::vector<ProfileSignal> signals;                  // in file order; names unique; non-empty
};

// True for the signal names the agent windows (SignalId::parse): "cpu", "memory", "psi_cpu",
// "psi_memory", "psi_io", "disk", "network", "gpu<N>_sm", "gpu<N>_memory", N below 10,000.
bool isKnownSignal(std::string_view name);

// Parses and validates a profile. `fileName` only labels error messages. Never throws: YAML
// syntax errors and every validation failure come back as an Error. Pure and thread-safe.
Result<Profile> parseProfile(std::string_view yamlText, std::string_view fileName);

// The value of one wave at time t, not clamped. Pure and thread-safe.
double evaluateWave(const Wave& wave, double tSeconds);

// Every signal's value at time t (seconds), in the profile's order, clamped to [0,1] (a NaN,
// possible only when huge terms of a sum overflow, reads as 0). Pure and thread-safe.
std::vector<Reading> evaluate(const Profile& profile, double tSeconds);

}  // namespace pi0::substrates
