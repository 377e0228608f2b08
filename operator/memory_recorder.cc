#include "operator/memory_recorder.h"

#include <algorithm>
#include <utility>

#include "operator/outcomes.h"

namespace pi0::op {

namespace {

MemoryRecorderOptions heldToHorizon(MemoryRecorderOptions options) {
  options.lookback = std::min(options.lookback, options.horizon);
  return options;
}

}  // namespace

MemoryRecorderOptions MemoryRecorderOptions::forHorizon(std::chrono::milliseconds horizon) {
  MemoryRecorderOptions o;
  o.horizon = horizon;
  o.lookback = std::min(o.lookback, horizon);
  o.sampleEvery = o.lookback / 12;
  o.calmEvery = std::min(o.calmEvery, horizon / 3);
  return o;
}

MemoryRecorder::MemoryRecorder(MemoryRecorderOptions options)
    : options_(heldToHorizon(options)), memory_(options.capacity) {}

void MemoryRecorder::observe(const fleet::NodeFingerprint& full, ledger::Time at) {
  auto features = memory::featuresOf(full);
  if (!features) return;
  std::lock_guard lock(mu_);
  NodeState& n = nodes_[full.node];
  if (n.latest && at < n.latest->at) return;
  n.latest = Vector{at, *features};
  if (n.recent.empty() || at - n.recent.back().at >= options_.sampleEvery)
    n.recent.push_back(Vector{at, std::move(*features)});
  while (!n.recent.empty() && n.recent.front().at < at - options_.lookback)
    n.recent.pop_front();
}

void MemoryRecorder::store(std::vector<memory::Entry>& out, const std::string& node,
                           const Vector& v, memory::Label label,
                           std::chrono::milliseconds sampledEvery) {
  memory::Entry e{node,       v.at,
                  label,      label != memory::Label::kCalm,
                  v.features, std::chrono::duration<double>(sampledEvery).count()};
  // featuresOf gives kFeatureDimensions finite values, what the memory takes: a refusal would be
  // a bug here, and costs only the entry.
  if (memory_.add(e)) out.push_back(std::move(e));
}

void MemoryRecorder::onset(std::vector<memory::Entry>& out, const std::string& node, NodeState& n) {
  const bool fresh = n.latest && n.latest->at > n.watermark;
  const ledger::Time before = fresh ? n.latest->at : ledger::Time::max();
  const ledger::Time reference = n.latest ? n.latest->at : n.watermark;
  std::vector<const Vector*> led;
  for (const Vector& v : n.recent) {
    if (v.at > n.watermark && v.at < before && v.at >= reference - options_.lookback)
      led.push_back(&v);
  }
  // Calm samples within their horizon were followed by this trouble, however long before it.
  for (const Vector& p : n.pending) {
    const bool kept =
        std::any_of(led.begin(), led.end(), [&](const Vector* v) { return v->at == p.at; });
    if (p.at > n.watermark && p.at < before && !kept) led.push_back(&p);
  }
  std::sort(led.begin(), led.end(), [](const Vector* a, const Vector* b) { return a->at < b->at; });
  // Within the lookback the states were taken one per sampleEvery, before it one per calmEvery:
  // each weighs the time it stands for.
  for (const Vector* v : led) {
    const bool dense = v->at >= reference - options_.lookback;
    store(out, node, *v, memory::Label::kBeforeTrouble,
          dense ? options_.sampleEvery : options_.calmEvery);
  }
  if (fresh) store(out, node, *n.latest, memory::Label::kTroubleOnset, options_.sampleEvery);
  n.pending.clear();
  if (n.latest) n.watermark = std::max(n.watermark, n.latest->at);
}

std::vector<memory::Entry> MemoryRecorder::round(const fleet::FleetSnapshot& fleet,
                                                 Clock::time_point now, ledger::Time wallNow) {
  std::vector<memory::Entry> out;
  std::lock_guard lock(mu_);
  std::erase_if(nodes_, [&](const auto& item) { return fleet.find(item.first) == nullptr; });
  for (const auto& status : fleet.nodes()) {
    NodeState& n = nodes_[status->node];
    if (!status->fingerprint || !fleet.isUsable(*status, now)) {
      n.pending.clear();
      continue;
    }
    // Calm samples whose horizon has passed, seen calm at every round since.
    std::erase_if(n.pending, [&](const Vector& p) {
      if (p.at + options_.horizon > wallNow) return false;
      store(out, status->node, p, memory::Label::kCalm, options_.calmEvery);
      n.watermark = std::max(n.watermark, p.at);
      return true;
    });
    const bool trouble = nodeTrouble(*status->fingerprint).has_value();
    if (trouble) {
      if (n.troubled == false) onset(out, status->node, n);
      // What was taken up to now was taken in trouble: never before-trouble.
      n.watermark = std::max(n.watermark, wallNow);
    } else if (n.latest && n.latest->at > n.watermark &&
               (!n.lastCalmSample || n.latest->at - *n.lastCalmSample >= options_.calmEvery)) {
      // Paced by the vectors' times, so that a round that finds no newer vector than the last
      // round's never puts the same one aside twice.
      n.pending.push_back(*n.latest);
      n.lastCalmSample = n.latest->at;
    }
    n.troubled = trouble;
  }
  return out;
}

std::optional<NodeSeen> MemoryRecorder::seen(std::string_view node,
                                             const memory::SeenOptions& options) const {
  Vector latest;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.latest) return std::nullopt;
    latest = *it->second.latest;
  }
  return NodeSeen{memory_.seen(latest.features, options), latest.at};
}

std::optional<fleet::HistoryVerdict> MemoryRecorder::verdict(std::string_view node,
                                                             const memory::SeenOptions& options) {
  Vector latest;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.latest) return std::nullopt;
    const NodeState& n = it->second;
    if (n.verdictOf && n.latest->at - *n.verdictOf < options_.sampleEvery) return n.verdict;
    latest = *n.latest;
  }
  // The query outside the lock: observe() on other threads goes on meanwhile.
  const memory::SeenBefore seen = memory_.seen(latest.features, options);
  fleet::HistoryVerdict v;
  v.troubled = seen.troubled;
  v.matches = seen.matches;
  v.troubleMatches = seen.troubleMatches;
  if (seen.best) {
    v.matchNode = seen.best->node;
    v.matchAt = seen.best->time;
    v.matchLabel = std::string(memory::labelName(seen.best->label));
    v.similarity = seen.best->similarity;
  }
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it != nodes_.end() && (!it->second.verdictOf || *it->second.verdictOf < latest.at)) {
    it->second.verdict = v;
    it->second.verdictOf = latest.at;
  }
  return v;
}

std::vector<memory::Match> MemoryRecorder::nearest(std::string_view node, std::size_t k) const {
  std::vector<float> features;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.latest) return {};
    features = it->second.latest->features;
  }
  return memory_.nearest(features, k);
}

std::size_t MemoryRecorder::load(std::vector<memory::Entry> entries) {
  std::size_t added = 0;
  for (memory::Entry& e : entries)
    added += memory_.add(std::move(e)).has_value();
  return added;
}

ledger::MemoryRecord toRecord(const memory::Entry& entry) {
  return ledger::MemoryRecord{entry.node,
                              entry.time,
                              std::string(memory::labelName(entry.label)),
                              entry.followedByTrouble,
                              entry.features,
                              entry.weight};
}

std::vector<ledger::MemoryRecord> toRecords(std::span<const memory::Entry> entries) {
  std::vector<ledger::MemoryRecord> out;
  out.reserve(entries.size());
  for (const memory::Entry& e : entries)
    out.push_back(toRecord(e));
  return out;
}

std::optional<memory::Entry> fromRecord(const ledger::MemoryRecord& record) {
  const auto label = memory::parseLabel(record.label);
  if (!label) return std::nullopt;
  return memory::Entry{record.node,     record.at,    *label, record.followedByTrouble,
                       record.features, record.weight};
}

std::vector<memory::Entry> entriesOf(std::span<const ledger::MemoryRecord> records) {
  std::vector<memory::Entry> out;
  out.reserve(records.size());
  for (const ledger::MemoryRecord& r : records) {
    if (auto e = fromRecord(r)) out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace pi0::op
