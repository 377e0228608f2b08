// pi0-memory-bench: what the fingerprint memory (src/memory/fingerprint_memory.h) costs at its
// default capacity: how fast entries are added, how long `nearest` (k = 10) and `seen` take over
// every entry (p50, p99 and mean of single queries; and `nearest` again with the matrix evicted
// from the caches before each query, as a query that comes alone would find it), against two
// peers in the same run: a naive loop over the same 28-float features kept as std::vector<float>
// rows, and the same memory holding the first layout's 99 features (what a query cost before).
// Then how the two agree: whether the product and the loop find the same best match and the
// same 10, and whether the 28 features tell the states apart as the 99 did (the best match drawn
// from the query's own archetypal state; the same `seen` verdict). Last, k-means (k = 8, 20
// iterations) over every entry.
//
//   build/release/bench/memory/pi0-memory-bench [--entries 100000] [--queries 2000]
//
// The entries are synthetic fingerprints made with a fixed seed: 40 archetypal node states (each
// signal's level, rhythm, gates and spectrum; a quarter with two GPUs; 8 of the 40 usually
// followed by trouble), each entry one of them plus noise, turned into features by featuresOf().
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/signal_id.h"
#include "memory/fingerprint_memory.h"

namespace {

using namespace pi0;
using Clock = std::chrono::steady_clock;

constexpr int kArchetypes = 40;
constexpr int kTroubledArchetypes = 8;
constexpr std::size_t kK = 10;

double millis(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct Latency {
  double p50 = 0, p99 = 0, mean = 0;  // ms
};

Latency latency(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Latency l;
  l.p50 = ms[ms.size() / 2];
  l.p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  l.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  return l;
}

// One archetypal node state: each signal's shape, from which noisy fingerprints are drawn.
struct SignalShape {
  double level = 0, amplitude = 0, lambda1 = 0, fitError = 0, gluingDelta = 0;
  std::size_t dominantBin = 1;
};
struct State {
  std::vector<std::pair<std::string, SignalShape>> signals;
  bool troubled = false;
};

State makeState(std::mt19937_64& rng, bool troubled, bool gpus) {
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<std::size_t> bin(0, 7);
  std::vector<std::string> names = {"cpu",    "memory", "psi_cpu", "psi_memory",
                                    "psi_io", "disk",   "network"};
  if (gpus) {
    for (const char* s : {"gpu0_sm", "gpu0_memory", "gpu1_sm", "gpu1_memory"})
      names.push_back(s);
  }
  State state;
  state.troubled = troubled;
  for (const std::string& name : names) {
    SignalShape s;
    const bool pressure = name.starts_with("psi_");
    s.level = pressure ? 0.3 * u(rng) : u(rng);
    if (troubled && !pressure) s.level = 0.6 + 0.4 * u(rng);  // trouble comes from high load
    s.amplitude = 0.2 * u(rng);
    s.lambda1 = u(rng);
    s.fitError = 0.05 * u(rng);
    s.gluingDelta = 0.05 * u(rng);
    s.dominantBin = bin(rng);
    state.signals.emplace_back(name, s);
  }
  return state;
}

// A fingerprint of `state` with noise (standard deviation 0.03 on every figure).
fleet::NodeFingerprint sample(const State& state, std::mt19937_64& rng, int node) {
  std::normal_distribution<double> noise(0, 0.03);
  const auto ratio = [&](double x) { return std::clamp(x + noise(rng), 0.0, 1.0); };
  fleet::NodeFingerprint fp;
  fp.node = "node-" + std::to_string(node);
  fp.ready = true;
  fp.windowFill = 1;
  for (const auto& [name, s] : state.signals) {
    fleet::SignalFingerprint f;
    f.samples = 64;
    f.mean = ratio(s.level);
    f.stddev = ratio(s.amplitude / std::sqrt(2.0));
    f.current = ratio(s.level + s.amplitude * std::sin(noise(rng) * 100));
    f.projectedPeak = ratio(s.level + s.amplitude);
    gate::GateMetrics g;
    g.lambdaInt = f.mean;
    g.lambda1 = ratio(s.lambda1);
    g.fitError = ratio(s.fitError);
    g.gluingDelta = ratio(s.gluingDelta);
    g.isolation = 1 - *f.projectedPeak;
    f.gates = g;
    f.spectrum.assign(32, 0.0);
    double squares = 0;
    for (std::size_t k = 0; k < f.spectrum.size(); ++k) {
      f.spectrum[k] = std::abs(noise(rng)) + (k == s.dominantBin ? 1.0 : 0.0);
      squares += f.spectrum[k] * f.spectrum[k];
    }
    for (double& x : f.spectrum)
      x /= std::sqrt(squares);
    fp.signals.emplace(name, std::move(f));
  }
  return fp;
}

// The first layout (the peer that says what a query cost before): nine signal groups (cpu,
// memory, psi_cpu, psi_memory, psi_io, disk, network, gpu_sm, gpu_memory, SignalId::Kind's
// order) × current, mean, stddev, projectedPeak, lambda1, fitError, gluingDelta and the first 4
// spectrum bins, GPU groups the mean over the GPUs, scaled to unit length.
constexpr std::size_t kLegacyValues = 11;
constexpr std::size_t kLegacyDimensions = 9 * kLegacyValues;  // 99

std::size_t legacyGroup(SignalId::Kind kind) {
  using Kind = SignalId::Kind;
  switch (kind) {
    case Kind::kCpu:
      return 0;
    case Kind::kMemory:
      return 1;
    case Kind::kPsiCpu:
      return 2;
    case Kind::kPsiMemory:
      return 3;
    case Kind::kPsiIo:
      return 4;
    case Kind::kDisk:
      return 5;
    case Kind::kNetwork:
      return 6;
    case Kind::kGpuSm:
      return 7;
    case Kind::kGpuMemory:
      return 8;
  }
  return 0;
}

std::vector<float> legacyFeatures(const fleet::NodeFingerprint& fp) {
  std::vector<double> sum(kLegacyDimensions, 0.0);
  std::vector<int> count(kLegacyDimensions, 0);
  for (const auto& [name, s] : fp.signals) {
    const std::optional<SignalId> id = SignalId::parse(name);
    if (!id) continue;
    const std::size_t base = legacyGroup(id->kind) * kLegacyValues;
    const auto add = [&](std::size_t value, double x) {
      sum[base + value] += x;
      ++count[base + value];
    };
    add(0, s.current);
    add(1, s.mean);
    add(2, s.stddev);
    if (s.projectedPeak) add(3, *s.projectedPeak);
    if (s.gates) {
      add(4, s.gates->lambda1);
      add(5, s.gates->fitError);
      add(6, s.gates->gluingDelta);
    }
    for (std::size_t b = 0; b < std::min<std::size_t>(4, s.spectrum.size()); ++b)
      add(7 + b, s.spectrum[b]);
  }
  double squares = 0;
  for (std::size_t i = 0; i < kLegacyDimensions; ++i) {
    if (count[i] > 0) sum[i] /= count[i];
    squares += sum[i] * sum[i];
  }
  std::vector<float> out(kLegacyDimensions, 0.0f);
  for (std::size_t i = 0; i < kLegacyDimensions && squares > 0; ++i)
    out[i] = static_cast<float>(sum[i] / std::sqrt(squares));
  return out;
}

// Evicts the memory's matrix from the caches: reads every line of a buffer larger than the
// last-level cache a core of this machine sees (32 MiB). Reads only, so that the caches are left
// holding clean lines, and the query that follows pays for its own reads, not for writing back
// the flusher's.
class CacheFlusher {
 public:
  CacheFlusher() {
    for (std::size_t i = 0; i < buffer_.size(); i += 64)
      buffer_[i] = static_cast<unsigned char>(i >> 6);
  }
  void operator()() {
    unsigned sum = 0;
    for (std::size_t i = 0; i < buffer_.size(); i += 64)
      sum += buffer_[i];
    sink_ = sum;  // so that the loop is not optimized away
  }

 private:
  std::vector<unsigned char> buffer_ = std::vector<unsigned char>(128u << 20);
  volatile unsigned sink_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 100000;
  std::size_t queries = 2000;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc || (flag != "--entries" && flag != "--queries")) {
      std::fprintf(stderr, "usage: pi0-memory-bench [--entries N] [--queries N]\n");
      return 2;
    }
    const long long value = std::atoll(argv[i + 1]);
    (flag == "--entries" ? n : queries) = value > 0 ? static_cast<std::size_t>(value) : 0;
  }
  if (n < 1000 || queries < 100) {
    std::fprintf(stderr, "pi0-memory-bench: --entries must be at least 1000, --queries 100\n");
    return 2;
  }

  std::mt19937_64 rng(20261207);
  std::vector<State> states;
  for (int i = 0; i < kArchetypes; ++i)
    states.push_back(makeState(rng, i < kTroubledArchetypes, i % 4 == 0));
  std::uniform_int_distribution<std::size_t> pick(0, states.size() - 1);
  std::uniform_real_distribution<double> u(0, 1);

  // The entries' features in both layouts, made before the clock runs for add(). Entry i is seen
  // at t0 + i × 100 ms, which names it in a Match.
  const memory::Time t0 = std::chrono::system_clock::now() - std::chrono::hours(24);
  const auto indexOf = [t0](memory::Time t) {
    return static_cast<std::size_t>((t - t0) / std::chrono::milliseconds(100));
  };
  std::vector<memory::Entry> entries, legacyEntries;
  std::vector<std::size_t> stateOf;  // entry i's archetypal state
  entries.reserve(n);
  legacyEntries.reserve(n);
  Clock::duration featureTime{};
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t s = pick(rng);
    const fleet::NodeFingerprint fp = sample(states[s], rng, static_cast<int>(i % 5000));
    const auto start = Clock::now();
    auto features = memory::featuresOf(fp);
    featureTime += Clock::now() - start;
    if (!features) return 1;
    memory::Entry e;
    e.node = fp.node;
    e.time = t0 + std::chrono::milliseconds(i * 100);
    e.followedByTrouble = u(rng) < (states[s].troubled ? 0.7 : 0.03);
    e.label = e.followedByTrouble ? memory::Label::kBeforeTrouble : memory::Label::kCalm;
    e.features = legacyFeatures(fp);
    legacyEntries.push_back(e);
    e.features = std::move(*features);
    entries.push_back(std::move(e));
    stateOf.push_back(s);
  }
  std::vector<std::vector<float>> asked, legacyAsked;
  std::vector<std::size_t> askedState;
  for (std::size_t i = 0; i < queries; ++i) {
    const std::size_t s = pick(rng);
    const fleet::NodeFingerprint fp = sample(states[s], rng, 0);
    auto features = memory::featuresOf(fp);
    if (!features) return 1;
    asked.push_back(std::move(*features));
    legacyAsked.push_back(legacyFeatures(fp));
    askedState.push_back(s);
  }

  memory::FingerprintMemory memory(n);
  const auto addStart = Clock::now();
  for (memory::Entry& e : entries) {
    if (auto added = memory.add(std::move(e)); !added) {
      std::fprintf(stderr, "pi0-memory-bench: %s\n", added.error().message.c_str());
      return 1;
    }
  }
  const double addMs = millis(Clock::now() - addStart);
  memory::FingerprintMemory legacy(n, kLegacyDimensions);
  for (memory::Entry& e : legacyEntries) {
    if (auto added = legacy.add(std::move(e)); !added) return 1;
  }

  // Each kind of query in a loop of its own, so that one does not evict another's matrix from
  // the caches: the 99 features' 39.6 MB do not fit in them, the 28 features' 11.2 MB do.
  std::vector<double> nearestMs, seenMs, legacyMs, naiveMs, coldMs;
  std::vector<std::vector<memory::Match>> found(queries);
  for (std::size_t q = 0; q < queries; ++q) {
    const auto start = Clock::now();
    found[q] = memory.nearest(asked[q], kK);
    nearestMs.push_back(millis(Clock::now() - start));
  }
  std::vector<bool> verdict(queries);
  std::size_t troubled = 0;
  for (std::size_t q = 0; q < queries; ++q) {
    const auto start = Clock::now();
    const memory::SeenBefore seen = memory.seen(asked[q]);
    seenMs.push_back(millis(Clock::now() - start));
    verdict[q] = seen.troubled;
    troubled += seen.troubled ? 1 : 0;
  }
  std::vector<memory::Match> legacyBest(queries);
  for (std::size_t q = 0; q < queries; ++q) {
    const auto start = Clock::now();
    legacyBest[q] = legacy.nearest(legacyAsked[q], kK).front();
    legacyMs.push_back(millis(Clock::now() - start));
  }
  // A query that comes alone finds the matrix in memory, not in cache: every tenth again, each
  // after reading 128 MiB.
  CacheFlusher flush;
  for (std::size_t q = 0; q < queries; q += 10) {
    flush();
    const auto start = Clock::now();
    const auto near = memory.nearest(asked[q], kK);
    coldMs.push_back(millis(Clock::now() - start));
    if (near.front().time != found[q].front().time) return 1;
  }

  // Do the 28 features tell the states apart as the 99 did? The best match's state, among the 10
  // nearest those of the query's state, and the seen verdicts: the same as with 99 features, and
  // troubled on a query from a troubled state (of those) and from a calm one (false alarms).
  struct Agreement {
    std::size_t ownBest = 0, ownTen = 0, sameVerdict = 0, hits = 0, falseAlarms = 0;
  } compact, first;
  std::size_t troubledQueries = 0;
  for (std::size_t q = 0; q < queries; ++q) {
    const bool stateTroubled = states[askedState[q]].troubled;
    troubledQueries += stateTroubled ? 1 : 0;
    const bool legacyVerdict = legacy.seen(legacyAsked[q]).troubled;
    compact.ownBest += stateOf[indexOf(found[q].front().time)] == askedState[q] ? 1 : 0;
    first.ownBest += stateOf[indexOf(legacyBest[q].time)] == askedState[q] ? 1 : 0;
    for (const memory::Match& m : found[q])
      compact.ownTen += stateOf[indexOf(m.time)] == askedState[q] ? 1 : 0;
    for (const memory::Match& m : legacy.nearest(legacyAsked[q], kK))
      first.ownTen += stateOf[indexOf(m.time)] == askedState[q] ? 1 : 0;
    compact.sameVerdict += verdict[q] == legacyVerdict ? 1 : 0;
    for (const auto& [agreement, v] :
         {std::pair{&compact, bool(verdict[q])}, std::pair{&first, legacyVerdict}}) {
      if (v && stateTroubled) ++agreement->hits;
      if (v && !stateTroubled) ++agreement->falseAlarms;
    }
  }

  // The peer: the same 28 features of every entry, oldest first, in one row-major
  // std::vector<float>; one dot product after the other, then the 10 best by partial_sort.
  const std::size_t d = memory::kFeatureDimensions;
  std::vector<float> rows;
  rows.reserve(n * d);
  std::vector<memory::Time> rowTime;
  for (const memory::Entry& e : memory.entries()) {
    rows.insert(rows.end(), e.features.begin(), e.features.end());
    rowTime.push_back(e.time);
  }
  std::size_t sameBest = 0, sameTen = 0;
  std::vector<float> sims(rowTime.size());
  std::vector<std::size_t> order(rowTime.size());
  for (std::size_t q = 0; q < queries; ++q) {
    const auto start = Clock::now();
    const float* query = asked[q].data();  // unit already (featuresOf)
    for (std::size_t r = 0; r < sims.size(); ++r) {
      const float* row = rows.data() + r * d;
      float dot = 0;
      for (std::size_t i = 0; i < d; ++i)
        dot += row[i] * query[i];
      sims[r] = dot;
    }
    std::iota(order.begin(), order.end(), std::size_t{0});
    const auto more = [&](std::size_t a, std::size_t b) {
      return sims[a] > sims[b] || (sims[a] == sims[b] && a < b);
    };
    std::partial_sort(order.begin(), order.begin() + kK, order.end(), more);
    naiveMs.push_back(millis(Clock::now() - start));
    if (std::abs(sims[order[0]] - found[q].front().similarity) < 1e-5f) ++sameBest;
    // The same 10 entries, in any order (a sum in another order can swap near-equal ones).
    std::set<memory::Time> loop, product;
    for (std::size_t i = 0; i < kK; ++i) {
      loop.insert(rowTime[order[i]]);
      product.insert(found[q][i].time);
    }
    for (const memory::Time& t : loop)
      sameTen += product.count(t);
  }

  const auto kmeansStart = Clock::now();
  const auto archetypes = memory.archetypes(8, 20, 1);
  const double kmeansMs = millis(Clock::now() - kmeansStart);

  const Latency nearest = latency(nearestMs), seen = latency(seenMs), naive = latency(naiveMs),
                before = latency(legacyMs), cold = latency(coldMs);
  std::printf(
      "pi0-memory-bench: %zu entries of %zu features (%d archetypal states plus noise), "
      "%zu queries, k = %zu\n",
      n, memory::kFeatureDimensions, kArchetypes, queries, kK);
  std::printf("  features   %9.2f us a fingerprint (featuresOf)\n",
              millis(featureTime) * 1000 / static_cast<double>(n));
  std::printf("  add        %9.0f entries/s  (%.1f ms in all)\n",
              static_cast<double>(n) / addMs * 1000, addMs);
  std::printf("  nearest    p50 %6.3f ms  p99 %6.3f ms  mean %6.3f ms\n", nearest.p50, nearest.p99,
              nearest.mean);
  std::printf("  seen       p50 %6.3f ms  p99 %6.3f ms  mean %6.3f ms  (%zu of %zu troubled)\n",
              seen.p50, seen.p99, seen.mean, troubled, queries);
  std::printf(
      "  cold       p50 %6.3f ms  p99 %6.3f ms  mean %6.3f ms  (nearest, %zu queries, caches "
      "flushed)\n",
      cold.p50, cold.p99, cold.mean, coldMs.size());
  std::printf(
      "  naive loop p50 %6.3f ms  p99 %6.3f ms  mean %6.3f ms  (the same %zu features, "
      "row-major)\n",
      naive.p50, naive.p99, naive.mean, memory::kFeatureDimensions);
  std::printf(
      "  99 features p50 %5.3f ms  p99 %6.3f ms  mean %6.3f ms  (the first layout, "
      "same code)\n",
      before.p50, before.p99, before.mean);
  // Each query reads every stored vector once: the bytes over the time are the rate it reads
  // them at, from cache and (cold) from memory.
  const double bytes = static_cast<double>(n * memory::kFeatureDimensions * sizeof(float));
  std::printf(
      "  nearest is %.2f times as fast as the naive loop and %.2f times as fast as the 99 "
      "features (means); it reads %.1f MB a query, %.1f GB/s in cache, %.1f GB/s cold\n",
      naive.mean / nearest.mean, before.mean / nearest.mean, bytes / 1e6,
      bytes / 1e6 / nearest.mean, bytes / 1e6 / cold.mean);
  std::printf(
      "  product against loop: same best match in %zu of %zu, the same 10 in %zu of %zu places\n",
      sameBest, queries, sameTen, queries * kK);
  std::printf(
      "  28 / 99 features: best match from the query's own state in %zu / %zu of %zu, of the 10 "
      "nearest %zu / %zu of %zu\n",
      compact.ownBest, first.ownBest, queries, compact.ownTen, first.ownTen, queries * kK);
  std::printf(
      "  28 / 99 features: seen troubled on %zu / %zu of %zu queries from troubled states, on "
      "%zu / %zu of %zu from calm ones; the same verdict on %zu of %zu\n",
      compact.hits, first.hits, troubledQueries, compact.falseAlarms, first.falseAlarms,
      queries - troubledQueries, compact.sameVerdict, queries);
  std::printf("  k-means    %9.1f ms  (k = 8, 20 iterations)\n", kmeansMs);
  for (const memory::Archetype& a : archetypes)
    std::printf("    archetype: %6zu members, trouble rate %.3f\n", a.members, a.troubleRate);
  return sameBest == queries ? 0 : 1;
}
