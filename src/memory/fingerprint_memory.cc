#include "memory/fingerprint_memory.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>
#include <random>
#include <utility>

#include "common/signal_id.h"

namespace pi0::memory {
namespace {

// Sums and counts per feature, so that a GPU value is the mean over the GPUs that have it, and
// slowShare the mean over the resource signals that carry a spectrum.
struct Accumulator {
  std::array<double, kFeatureDimensions> sum{};
  std::array<int, kFeatureDimensions> count{};

  void add(Feature feature, double x) {
    const std::size_t i = featureIndex(feature);
    sum[i] += x;
    ++count[i];
  }
};

std::optional<ResourceSignal> resourceOf(SignalId::Kind kind) {
  using Kind = SignalId::Kind;
  switch (kind) {
    case Kind::kCpu:
      return ResourceSignal::kCpu;
    case Kind::kMemory:
      return ResourceSignal::kMemory;
    case Kind::kDisk:
      return ResourceSignal::kDisk;
    case Kind::kNetwork:
      return ResourceSignal::kNetwork;
    default:
      return std::nullopt;
  }
}

void addResource(Accumulator& acc, ResourceSignal resource, const fleet::SignalFingerprint& s) {
  const auto at = [resource](ResourceValue value) { return resourceFeature(resource, value); };
  acc.add(at(ResourceValue::kLevel), s.current);
  acc.add(at(ResourceValue::kSpread), s.stddev);
  if (s.projectedPeak) acc.add(at(ResourceValue::kPeak), *s.projectedPeak);
  if (s.gates) {
    acc.add(at(ResourceValue::kRhythm), s.gates->lambda1);
    acc.add(at(ResourceValue::kGateError), std::hypot(s.gates->fitError, s.gates->gluingDelta));
  }
  if (!s.spectrum.empty()) {
    double squares = 0;
    const std::size_t bins = std::min(kSlowBins, s.spectrum.size());
    for (std::size_t b = 0; b < bins; ++b)
      squares += s.spectrum[b] * s.spectrum[b];
    acc.add(Feature::kSlowShare, std::sqrt(squares));
  }
}

void addSignal(Accumulator& acc, SignalId::Kind kind, const fleet::SignalFingerprint& s) {
  using Kind = SignalId::Kind;
  if (const auto resource = resourceOf(kind)) {
    addResource(acc, *resource, s);
    return;
  }
  switch (kind) {
    case Kind::kPsiCpu:
      acc.add(Feature::kPsiCpuLevel, s.current);
      break;
    case Kind::kPsiMemory:
      acc.add(Feature::kPsiMemoryLevel, s.current);
      break;
    case Kind::kPsiIo:
      acc.add(Feature::kPsiIoLevel, s.current);
      break;
    case Kind::kGpuSm:
      acc.add(Feature::kGpuSmLevel, s.current);
      if (s.projectedPeak) acc.add(Feature::kGpuSmPeak, *s.projectedPeak);
      break;
    case Kind::kGpuMemory:
      acc.add(Feature::kGpuMemoryLevel, s.current);
      if (s.projectedPeak) acc.add(Feature::kGpuMemoryPeak, *s.projectedPeak);
      break;
    default:
      break;  // the resource signals, above
  }
}

// A uniform double in [0, 1) from the generator's 53 high bits: unlike
// std::uniform_real_distribution, the same on every standard library, so a seed gives the same
// archetypes everywhere.
double uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

std::optional<std::vector<float>> featuresOf(const fleet::NodeFingerprint& fingerprint) {
  if (!fingerprint.ready) return std::nullopt;
  Accumulator acc;
  for (const auto& [name, signal] : fingerprint.signals) {
    const std::optional<SignalId> id = SignalId::parse(name);
    if (!id) continue;  // a signal a newer agent added: not in the layout
    addSignal(acc, id->kind, signal);
  }
  std::array<double, kFeatureDimensions> values{};
  double squares = 0;
  for (std::size_t i = 0; i < kFeatureDimensions; ++i) {
    if (acc.count[i] == 0) continue;
    values[i] = acc.sum[i] / acc.count[i];
    if (!std::isfinite(values[i])) return std::nullopt;
    squares += values[i] * values[i];
  }
  const double norm = std::sqrt(squares);
  if (!std::isfinite(norm)) return std::nullopt;
  std::vector<float> features(kFeatureDimensions, 0.0f);
  if (norm > 0) {
    for (std::size_t i = 0; i < kFeatureDimensions; ++i) {
      features[i] = static_cast<float>(values[i] / norm);
    }
  }
  return features;
}

float cosineSimilarity(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return 0;
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (aa == 0 || bb == 0) return 0;
  return static_cast<float>(std::clamp(ab / std::sqrt(aa * bb), -1.0, 1.0));
}

std::string_view featureName(Feature feature) {
  static constexpr std::string_view kNames[kFeatureDimensions] = {
      "cpu_level",      "cpu_spread",        "cpu_peak",        "cpu_rhythm",
      "cpu_gate_error", "memory_level",      "memory_spread",   "memory_peak",
      "memory_rhythm",  "memory_gate_error", "disk_level",      "disk_spread",
      "disk_peak",      "disk_rhythm",       "disk_gate_error", "network_level",
      "network_spread", "network_peak",      "network_rhythm",  "network_gate_error",
      "psi_cpu_level",  "psi_memory_level",  "psi_io_level",    "gpu_sm_level",
      "gpu_sm_peak",    "gpu_memory_level",  "gpu_memory_peak", "slow_share"};
  const auto i = featureIndex(feature);
  return i < kFeatureDimensions ? kNames[i] : std::string_view("unknown");
}

std::string strongestFeatures(std::span<const float> features, std::size_t n) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < features.size() && i < kFeatureDimensions; ++i)
    if (features[i] > 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return features[a] > features[b]; });
  std::string out;
  for (std::size_t i = 0; i < order.size() && i < n; ++i) {
    if (!out.empty()) out += ' ';
    out += featureName(static_cast<Feature>(order[i]));
  }
  return out;
}

std::string_view labelName(Label label) {
  switch (label) {
    case Label::kCalm:
      return "calm";
    case Label::kBeforeTrouble:
      return "before_trouble";
    case Label::kTroubleOnset:
      return "trouble_onset";
  }
  return "calm";
}

std::optional<Label> parseLabel(std::string_view name) {
  for (Label label : {Label::kCalm, Label::kBeforeTrouble, Label::kTroubleOnset}) {
    if (labelName(label) == name) return label;
  }
  return std::nullopt;
}

FingerprintMemory::FingerprintMemory(std::size_t capacity, std::size_t dimensions)
    : capacity_(std::max<std::size_t>(capacity, 1)),
      dimensions_(std::max<std::size_t>(dimensions, 1)),
      features_(static_cast<Eigen::Index>(dimensions_), 0) {}

FingerprintMemory::Key FingerprintMemory::keyOf(std::size_t column) const {
  return {slots_[column].time, slots_[column].order, column};
}

Result<void> FingerprintMemory::add(Entry entry) {
  if (entry.features.size() != dimensions_) {
    return fail("features: " + std::to_string(entry.features.size()) +
                " values, the memory's are " + std::to_string(dimensions_));
  }
  Eigen::Map<const Eigen::VectorXf> given(entry.features.data(),
                                          static_cast<Eigen::Index>(dimensions_));
  if (!given.allFinite()) return fail("features: a value is not finite");
  const float norm = given.norm();
  if (!std::isfinite(norm)) return fail("features: the vector's length is not finite");
  if (!(entry.weight > 0) || !std::isfinite(entry.weight))
    return fail("weight: " + std::to_string(entry.weight) + ", not a positive finite number");

  std::unique_lock lock(mutex_);
  std::size_t column = 0;
  if (slots_.size() < capacity_) {
    column = slots_.size();
    if (static_cast<Eigen::Index>(column) >= features_.cols()) {
      // Grow geometrically: conservativeResize copies the columns held.
      const std::size_t grown = std::min(capacity_, std::max<std::size_t>(1024, 2 * column));
      features_.conservativeResize(Eigen::NoChange, static_cast<Eigen::Index>(grown));
    }
    slots_.emplace_back();
  } else {
    const Key victim = calmByAge_.empty() ? *byAge_.begin() : *calmByAge_.begin();
    byAge_.erase(victim);
    calmByAge_.erase(victim);
    column = std::get<2>(victim);
  }
  const auto col = static_cast<Eigen::Index>(column);
  if (norm > 0) {
    features_.col(col) = given / norm;
  } else {
    features_.col(col).setZero();
  }
  slots_[column] = Slot{std::move(entry.node),   entry.time,   entry.label,
                        entry.followedByTrouble, entry.weight, added_++};
  byAge_.insert(keyOf(column));
  if (entry.label == Label::kCalm) calmByAge_.insert(keyOf(column));
  return {};
}

std::size_t FingerprintMemory::size() const {
  std::shared_lock lock(mutex_);
  return slots_.size();
}

std::map<Label, std::size_t> FingerprintMemory::countByLabel() const {
  std::map<Label, std::size_t> out{
      {Label::kCalm, 0}, {Label::kBeforeTrouble, 0}, {Label::kTroubleOnset, 0}};
  std::shared_lock lock(mutex_);
  for (const Slot& slot : slots_)
    ++out[slot.label];
  return out;
}

std::vector<Entry> FingerprintMemory::entries() const {
  std::shared_lock lock(mutex_);
  std::vector<Entry> out;
  out.reserve(slots_.size());
  for (const Key& key : byAge_) {
    const std::size_t column = std::get<2>(key);
    const Slot& slot = slots_[column];
    const float* data = features_.col(static_cast<Eigen::Index>(column)).data();
    out.push_back(Entry{slot.node, slot.time, slot.label, slot.followedByTrouble,
                        std::vector<float>(data, data + dimensions_), slot.weight});
  }
  return out;
}

Eigen::VectorXf FingerprintMemory::similarities(std::span<const float> features) const {
  if (features.size() != dimensions_ || slots_.empty()) return {};
  Eigen::Map<const Eigen::VectorXf> query(features.data(), static_cast<Eigen::Index>(dimensions_));
  const float norm = query.norm();
  if (!(norm > 0) || !std::isfinite(norm)) return {};
  const Eigen::VectorXf unit = query / norm;
  // Every stored column is unit length (or zero): one matrix-vector product gives every cosine.
  // Rounding can put one a hair past ±1; nearestLocked clamps as it reads them.
  Eigen::VectorXf s(static_cast<Eigen::Index>(slots_.size()));
  s.noalias() = features_.leftCols(static_cast<Eigen::Index>(slots_.size())).transpose() * unit;
  return s;
}

std::vector<Match> FingerprintMemory::nearestLocked(std::span<const float> features,
                                                    std::size_t k) const {
  const Eigen::VectorXf s = similarities(features);
  const std::size_t n = static_cast<std::size_t>(s.size());
  k = std::min(k, n);
  if (k == 0) return {};
  // One pass keeps a heap of the k most similar, the least of them on top and in `least`: no
  // index array is written, and a block of 64 entries whose greatest similarity (one vectorized
  // maxCoeff) does not beat `least` is passed over whole. Clamping only lowers a value past 1,
  // so a block the unclamped maximum rejects holds no clamped value that beats `least`. Going
  // through the columns in order, an entry that only ties `least` never displaces it: equal
  // similarities keep the order stored.
  using Scored = std::pair<float, std::size_t>;  // (similarity clamped to [-1, 1], column)
  const auto moreSimilar = [](const Scored& a, const Scored& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  const auto clamped = [&s](std::size_t j) {
    return std::clamp(s[static_cast<Eigen::Index>(j)], -1.0f, 1.0f);
  };
  std::vector<Scored> best;
  best.reserve(k);
  for (std::size_t j = 0; j < k; ++j) {
    best.emplace_back(clamped(j), j);
    std::push_heap(best.begin(), best.end(), moreSimilar);
  }
  float least = best.front().first;
  constexpr std::size_t kBlock = 64;
  for (std::size_t start = k; start < n; start += kBlock) {
    const std::size_t end = std::min(n, start + kBlock);
    const auto block =
        s.segment(static_cast<Eigen::Index>(start), static_cast<Eigen::Index>(end - start));
    if (!(block.maxCoeff() > least)) continue;
    for (std::size_t j = start; j < end; ++j) {
      const float similarity = clamped(j);
      if (!(similarity > least)) continue;
      std::pop_heap(best.begin(), best.end(), moreSimilar);
      best.back() = {similarity, j};
      std::push_heap(best.begin(), best.end(), moreSimilar);
      least = best.front().first;
    }
  }
  std::sort_heap(best.begin(), best.end(), moreSimilar);  // most similar first
  std::vector<Match> out;
  out.reserve(k);
  for (const auto& [similarity, column] : best) {
    const Slot& slot = slots_[column];
    out.push_back(
        Match{slot.node, slot.time, slot.label, slot.followedByTrouble, similarity, slot.weight});
  }
  return out;
}

std::vector<Match> FingerprintMemory::nearest(std::span<const float> features,
                                              std::size_t k) const {
  std::shared_lock lock(mutex_);
  return nearestLocked(features, k);
}

SeenBefore FingerprintMemory::seen(std::span<const float> features,
                                   const SeenOptions& options) const {
  std::vector<Match> near;
  {
    std::shared_lock lock(mutex_);
    near = nearestLocked(features, options.k);
  }
  SeenBefore out;
  if (!near.empty()) out.best = near.front();
  double weight = 0, troubleWeight = 0;
  for (const Match& m : near) {
    if (static_cast<double>(m.similarity) < options.minSimilarity) continue;
    ++out.matches;
    weight += m.weight;
    if (m.followedByTrouble) {
      ++out.troubleMatches;
      troubleWeight += m.weight;
    }
  }
  if (out.matches > 0) out.troubleShare = troubleWeight / weight;
  out.troubled = out.matches >= options.minMatches && out.troubleShare >= options.troubleShare;
  return out;
}

std::vector<Archetype> FingerprintMemory::archetypes(int k, int iterations,
                                                     std::uint64_t seed) const {
  std::shared_lock lock(mutex_);
  const std::size_t n = slots_.size();
  if (n == 0 || k < 1) return {};
  const auto nn = static_cast<Eigen::Index>(n);
  const auto x = features_.leftCols(nn);
  const std::size_t wanted = std::min(static_cast<std::size_t>(k), n);

  // k-means++: each next centroid is an entry drawn with probability proportional to its cosine
  // distance (1 − similarity) to the nearest centroid drawn so far.
  std::mt19937_64 rng(seed);
  Eigen::MatrixXf centroids(x.rows(), static_cast<Eigen::Index>(wanted));
  const auto first = static_cast<Eigen::Index>(
      std::min(n - 1, static_cast<std::size_t>(uniform(rng) * static_cast<double>(n))));
  centroids.col(0) = x.col(first);
  Eigen::VectorXf best = x.transpose() * centroids.col(0);
  Eigen::Index count = 1;
  while (static_cast<std::size_t>(count) < wanted) {
    double total = 0;
    for (Eigen::Index j = 0; j < nn; ++j)
      total += std::max(0.0, 1.0 - best[j]);
    if (!(total > 0)) break;  // every entry equals a centroid: no new state to draw
    const double target = uniform(rng) * total;
    double cumulative = 0;
    Eigen::Index pick = -1;
    for (Eigen::Index j = 0; j < nn; ++j) {
      const double d = std::max(0.0, 1.0 - best[j]);
      if (d <= 0) continue;
      pick = j;  // the last with a distance, should rounding leave the target past the end
      cumulative += d;
      if (cumulative > target) break;
    }
    centroids.col(count) = x.col(pick);
    best = best.cwiseMax(x.transpose() * centroids.col(count));
    ++count;
  }
  centroids.conservativeResize(Eigen::NoChange, count);

  std::vector<Eigen::Index> assigned(n, -1);
  const auto assign = [&] {
    const Eigen::MatrixXf s = centroids.transpose() * x;  // count × n cosines
    bool changed = false;
    for (Eigen::Index j = 0; j < nn; ++j) {
      Eigen::Index c = 0;
      s.col(j).maxCoeff(&c);
      if (assigned[j] != c) changed = true;
      assigned[j] = c;
    }
    return changed;
  };
  for (int it = 0; it < iterations; ++it) {
    if (!assign()) break;
    Eigen::MatrixXf sums = Eigen::MatrixXf::Zero(x.rows(), count);
    for (Eigen::Index j = 0; j < nn; ++j)
      sums.col(assigned[j]) += x.col(j);
    for (Eigen::Index c = 0; c < count; ++c) {
      const float norm = sums.col(c).norm();
      if (norm > 0) centroids.col(c) = sums.col(c) / norm;
    }
  }
  assign();  // the members of the centroids as they are now

  std::vector<std::size_t> members(static_cast<std::size_t>(count), 0);
  std::vector<double> weight(static_cast<std::size_t>(count), 0);
  std::vector<double> troubled(static_cast<std::size_t>(count), 0);
  for (std::size_t j = 0; j < n; ++j) {
    const auto c = static_cast<std::size_t>(assigned[j]);
    ++members[c];
    weight[c] += slots_[j].weight;
    if (slots_[j].followedByTrouble) troubled[c] += slots_[j].weight;
  }
  std::vector<Archetype> out;
  for (Eigen::Index c = 0; c < count; ++c) {
    const auto i = static_cast<std::size_t>(c);
    if (members[i] == 0) continue;
    const float* data = centroids.col(c).data();
    out.push_back(Archetype{std::vector<float>(data, data + dimensions_), members[i],
                            troubled[i] / weight[i]});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Archetype& a, const Archetype& b) { return a.members > b.members; });
  return out;
}

}  // namespace pi0::memory
