// FingerprintMemory: the fingerprint memory (seed 001 P4): nodes' states as feature vectors, each
// labelled with what followed it, so that a state seen now can be compared with the states seen
// before ("similar (0.97) to node-a at 12:03:10, followed by trouble in 7 of 9 cases"), and the
// states grouped into a few archetypes with their trouble rates. Each state weighs the time it
// stands for (Entry::weight), so that the shares are shares of time however densely each kind
// of state was sampled. Pure computation, no I/O, no
// clock: the caller says when a state was seen and what followed it. Persistence is the caller's
// (entries() gives what to save; add() takes it back).
//
// The feature vector (featuresOf) has a fixed layout of kFeatureDimensions = 28 floats, in
// Feature's order, each taken from the fingerprint's ratios:
//
//   0..19   cpu, memory, disk, network: five values each, in ResourceValue's order:
//             level      current (the latest sample)
//             spread     stddev over the window
//             peak       projectedPeak (the forecast's peak within its horizon)
//             rhythm     lambda1 (the share of the variation's power in the strongest bin)
//             gateError  √(fitError² + gluingDelta²): how far the window is from its spectral
//                        model, and its two halves from each other
//   20..22  psi_cpu, psi_memory, psi_io: level (current)
//   23..26  gpu_sm level, gpu_sm peak, gpu_memory level, gpu_memory peak: each the mean over the
//           node's gpu<i>_sm (gpu<i>_memory) signals that have the value; zeros without GPUs
//   27      slowShare: √(Σ spectrum[k]², k = 1..4) averaged over the resource signals (cpu,
//           memory, disk, network) that carry a spectrum: the share of their variation's
//           amplitude at periods of N/4 samples and longer; 0 unless read with detail=spectra
//
//  - Why these 28, where the first layout took 99 values (nine signals × current, mean, stddev,
//    projectedPeak, lambda1, fitError, gluingDelta and four spectrum bins): a query reads every
//    stored vector, so its cost is the vector's length (at 100,000 entries 99 floats cost 2–3
//    ms a query, 28 a quarter to a half of one: bench/README.md), and much of the 99 said one
//    thing twice or was zero:
//      `mean` is gone: beside the latest sample (level), the window's spread and the forecast
//      peak (which starts from the window's level and rhythm) it adds little.
//      fitError and gluingDelta are both small and large together (a window its model does not
//      fit), so they are one term.
//      PSI signals keep their level: a pressure says how contended its resource is now; its
//      rhythm and gates are mostly those of the resource under it, which the resource block
//      keeps.
//      The GPU groups are zero on most nodes: level and peak are kept.
//      The 36 spectrum bins were zero unless the agent served spectra, and made summary and
//      spectra vectors unlike: one term is left, so that the two differ in one coordinate of
//      28 (keep one detail per memory all the same).
//    The bench checks what was lost on its synthetic states: with 28 features as with 99, the
//    best match of every query comes from the query's own state, and `seen` gives the same
//    verdict on 96 % of the queries (bench/README.md).
//  - A signal the node does not have (no PSI, no disk) gives zeros, as does a value it lacks (no
//    projectedPeak, no gates).
//  - The vector is scaled to unit length, so that a dot product is the cosine similarity; a
//    zero vector stays zero and is similar to nothing (similarity 0).
//
// Storage and cost: the stored vectors are one dimensions × entries float matrix, and a query is
// one matrix-vector product over it, exact. At 100,000 entries of 28 floats (11.2 MB) the product
// takes a quarter of a millisecond while the matrix is in cache, bound by the build's SSE2
// arithmetic rather than by memory, and 0.6–0.8 ms when other work has evicted it. Storing int8
// (a quarter of the bytes) and converting blocks to float was measured: slower in cache, no
// faster from memory; half precision is slower still, its conversion having no SSE2
// instruction (bench/README.md).
//
// Thread-safety: add() takes the memory's lock exclusively; size(), entries(), nearest(), seen()
// and archetypes() take it shared and may run concurrently with each other from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <Eigen/Core>

#include "common/result.h"
#include "fleet/fingerprint.h"

namespace pi0::memory {

using Time = std::chrono::system_clock::time_point;

// The feature vector's layout (see the file comment): Feature is the index of each value.
enum class Feature : std::size_t {
  kCpuLevel,
  kCpuSpread,
  kCpuPeak,
  kCpuRhythm,
  kCpuGateError,
  kMemoryLevel,
  kMemorySpread,
  kMemoryPeak,
  kMemoryRhythm,
  kMemoryGateError,
  kDiskLevel,
  kDiskSpread,
  kDiskPeak,
  kDiskRhythm,
  kDiskGateError,
  kNetworkLevel,
  kNetworkSpread,
  kNetworkPeak,
  kNetworkRhythm,
  kNetworkGateError,
  kPsiCpuLevel,
  kPsiMemoryLevel,
  kPsiIoLevel,
  kGpuSmLevel,  // means over gpu<i>_sm
  kGpuSmPeak,
  kGpuMemoryLevel,  // means over gpu<i>_memory
  kGpuMemoryPeak,
  kSlowShare,
};
inline constexpr std::size_t kFeatureDimensions = static_cast<std::size_t>(Feature::kSlowShare) + 1;
static_assert(kFeatureDimensions == 28);

// The resource block: the signals with all five values, and the values in their order.
enum class ResourceSignal { kCpu, kMemory, kDisk, kNetwork };
enum class ResourceValue { kLevel, kSpread, kPeak, kRhythm, kGateError };
inline constexpr std::size_t kResourceValues = 5;
// The spectrum bins (k = 1..kSlowBins, the lowest frequencies) whose share slowShare is.
inline constexpr std::size_t kSlowBins = 4;

constexpr std::size_t featureIndex(Feature feature) {
  return static_cast<std::size_t>(feature);
}
constexpr Feature resourceFeature(ResourceSignal signal, ResourceValue value) {
  return static_cast<Feature>(static_cast<std::size_t>(signal) * kResourceValues +
                              static_cast<std::size_t>(value));
}
// Feature's order and the resource block agree: the block is first, and ends where PSI begins.
static_assert(resourceFeature(ResourceSignal::kMemory, ResourceValue::kLevel) ==
              Feature::kMemoryLevel);
static_assert(resourceFeature(ResourceSignal::kNetwork, ResourceValue::kGateError) ==
              Feature::kNetworkGateError);
static_assert(featureIndex(Feature::kPsiCpuLevel) == 4 * kResourceValues);

// A feature's name for people and metrics: "cpu_level", "memory_peak", "psi_cpu_level",
// "gpu_sm_peak", "slow_share", ...
std::string_view featureName(Feature feature);
// The names of the `n` largest values of a vector in featuresOf()'s layout, largest first,
// space-separated ("cpu_level psi_cpu_level cpu_peak"): what a state or an archetype's centroid
// is mostly made of. Zeros are left out.
std::string strongestFeatures(std::span<const float> features, std::size_t n);

// The unit-length feature vector of `fingerprint` (kFeatureDimensions values, the layout above);
// nullopt when the fingerprint is not ready (its windows not full, so its gates not known) or a
// value the layout takes is not finite (parseFingerprint never gives one).
std::optional<std::vector<float>> featuresOf(const fleet::NodeFingerprint& fingerprint);

// The cosine similarity of two vectors of the same length: a·b / (|a| |b|), in [-1, 1]; 0 when
// either is all zeros or the lengths differ.
float cosineSimilarity(std::span<const float> a, std::span<const float> b);

// What followed a state.
enum class Label {
  kCalm,           // nothing: the node stayed fine over the horizon
  kBeforeTrouble,  // trouble began within the horizon after it
  kTroubleOnset,   // the state at the onset of trouble
};
// "calm", "before_trouble", "trouble_onset".
std::string_view labelName(Label label);
// The label a name spells; nullopt for any other text.
std::optional<Label> parseLabel(std::string_view name);

struct Entry {
  std::string node;
  Time time;  // when the state was seen
  Label label = Label::kCalm;
  bool followedByTrouble = false;
  std::vector<float> features;  // featuresOf()'s layout (or any of the memory's dimensions)
  // How much of a node's time the state stands for: the interval of the sampling that took it
  // (the recorder's, in seconds; only ratios count). States taken densely before trouble and
  // sparsely in calm weigh what they are in a node's day, so that a share of matches
  // (SeenBefore::troubleShare, Archetype::troubleRate) is a share of time. Positive, finite.
  double weight = 1;
};

// One stored entry and its cosine similarity to a query.
struct Match {
  std::string node;
  Time time;
  Label label = Label::kCalm;
  bool followedByTrouble = false;
  float similarity = 0;
  double weight = 1;  // Entry::weight
};

// Whether a state has been seen before, and what followed it then (FingerprintMemory::seen).
struct SeenBefore {
  int matches = 0;         // neighbours at least minSimilarity similar
  int troubleMatches = 0;  // of those, followed by trouble
  // The matches' weight followed by trouble over their whole weight (Entry::weight; with equal
  // weights troubleMatches / matches); 0 when no match.
  double troubleShare = 0;
  bool troubled = false;  // matches >= minMatches and troubleShare >= SeenOptions::troubleShare
  // The most similar entry of all, even when under minSimilarity; nullopt when the memory is
  // empty or the query is a zero vector.
  std::optional<Match> best;
};

// What FingerprintMemory::seen counts as seen before, and as troubled.
struct SeenOptions {
  std::size_t k = 10;           // neighbours considered
  double minSimilarity = 0.95;  // a neighbour at least this similar is a match
  double troubleShare = 0.6;    // troubled when at least this share of the matches saw trouble
  int minMatches = 3;           // and there are at least this many matches
};

// A state the memory's entries gather around (FingerprintMemory::archetypes).
struct Archetype {
  std::vector<float> centroid;  // unit length, the memory's dimensions
  std::size_t members = 0;      // entries nearer to it than to any other archetype
  double troubleRate = 0;       // share of the members' weight followed by trouble
};

class FingerprintMemory {
 public:
  static constexpr std::size_t kDefaultCapacity = 100'000;

  // A memory of at most `capacity` entries of `dimensions` features each (a 0 is read as 1).
  // The feature matrix grows as entries come, up to dimensions × capacity floats (100,000 ×
  // 28 × 4 bytes = 11.2 MB at the defaults).
  explicit FingerprintMemory(std::size_t capacity = kDefaultCapacity,
                             std::size_t dimensions = kFeatureDimensions);

  FingerprintMemory(const FingerprintMemory&) = delete;
  FingerprintMemory& operator=(const FingerprintMemory&) = delete;

  std::size_t capacity() const { return capacity_; }
  std::size_t dimensions() const { return dimensions_; }

  // Stores `entry`, its features scaled to unit length. When the memory is full, the new entry
  // replaces the oldest calm entry (Label::kCalm, by time, then by order of adding), or, when no
  // calm entry is left, the oldest of any label: states before trouble are rarer and worth more.
  // Fails, storing nothing, when the features are not `dimensions()` long or not all finite, or
  // the weight is not a positive finite number.
  Result<void> add(Entry entry);

  std::size_t size() const;
  // The entries of each label (every label present, 0 included): one pass over the entries'
  // labels, no copy of their features.
  std::map<Label, std::size_t> countByLabel() const;

  // Every entry, oldest first (by time, then order of adding), features as stored (unit length):
  // what to save, and to add() back.
  std::vector<Entry> entries() const;

  // The min(k, size()) entries most similar to `features` (by cosine similarity), most similar
  // first; equal similarities in the order they are stored (the order of adding, until eviction
  // reuses a place). Empty for a zero vector or one of another length.
  std::vector<Match> nearest(std::span<const float> features, std::size_t k) const;

  // Among the options.k nearest entries, those at least options.minSimilarity similar, and the
  // share of their weight followed by trouble.
  SeenBefore seen(std::span<const float> features, const SeenOptions& options = {}) const;

  // Spherical k-means over the stored unit vectors: k-means++ seeding from a std::mt19937_64
  // seeded with `seed`, then up to `iterations` rounds of assigning each entry to its most
  // similar centroid and moving each centroid to its members' normalized mean (a centroid that
  // loses every member stays). k is clamped to size(), and seeding stops early when every entry
  // already equals a centroid. The result holds the archetypes with members, most members first
  // (ties in seeding order); empty for an empty memory or k < 1. The same seed on the same
  // entries gives the same result.
  std::vector<Archetype> archetypes(int k, int iterations, std::uint64_t seed) const;

 private:
  // Eviction order: (time, order of adding, column).
  using Key = std::tuple<Time, std::uint64_t, std::size_t>;
  struct Slot {
    std::string node;
    Time time;
    Label label = Label::kCalm;
    bool followedByTrouble = false;
    double weight = 1;
    std::uint64_t order = 0;
  };

  Key keyOf(std::size_t column) const;
  Eigen::VectorXf similarities(std::span<const float> features) const;  // empty if no match
  std::vector<Match> nearestLocked(std::span<const float> features, std::size_t k) const;

  const std::size_t capacity_;
  const std::size_t dimensions_;
  mutable std::shared_mutex mutex_;
  // dimensions × allocated columns, column-major; the first slots_.size() columns are entries.
  Eigen::MatrixXf features_;
  std::vector<Slot> slots_;
  std::set<Key> byAge_;      // every entry
  std::set<Key> calmByAge_;  // the calm ones
  std::uint64_t added_ = 0;
};

}  // namespace pi0::memory
