#include "admission/resource_validation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "stability/graph.h"
#include "stability/spec.h"

namespace pi0::admission {
namespace {

using stability::ChannelSpec;
using stability::DependencyGraph;

// Bounds and margins are set by hand to a few decimals; 0.8 + 0.05 should read "0.85", not
// "0.8500000000000001".
std::string decimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  std::string s(buf);
  while (!s.empty() && s.back() == '0')
    s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

std::vector<ChannelSpec> parseAll(const std::vector<nlohmann::json>& objects) {
  std::vector<ChannelSpec> out;
  for (const auto& o : objects) {
    // One that does not parse was written before this webhook or while it was down; the
    // operator reports it in its own condition. It cannot be judged here.
    if (auto c = stability::parseChannel(o)) out.push_back(std::move(*c));
  }
  return out;
}

void addEdges(DependencyGraph& graph, const ChannelSpec& c) {
  auto& deps = graph[c.ref.key()];
  for (const auto& d : c.dependsOn)
    deps.push_back(d.key());
}

// The gate-margin rule (resource_validation.h): the first level's upperBound must leave the
// margin above the admission ceiling.
std::optional<std::string> marginProblem(const stability::MatrixSpec& m, const GateMargin& gate) {
  if (m.levels.size() < 2 || !m.levels.front().upperBound) return std::nullopt;
  if (!std::isfinite(gate.admissionCeiling)) return std::nullopt;
  const stability::Level& first = m.levels.front();
  const double bound = *first.upperBound;
  const bool hysteresisWins = m.hysteresis.margin > gate.minimumMargin;
  const double margin = hysteresisWins ? m.hysteresis.margin : gate.minimumMargin;
  const double needed = gate.admissionCeiling + margin;
  // Bounds are written to a few decimals: compare at that precision, not in binary.
  if (bound >= needed - 1e-9) return std::nullopt;

  std::string s = "the first level " + quoted(first.name) + " ends at upperBound " +
                  decimal(bound) + ", but pod admission admits up to a projected load of " +
                  decimal(gate.admissionCeiling) + " (1 - θ_iso); above " + decimal(bound) +
                  " the operator degrades and shuts down channels, so it would act against pods "
                  "that admission lets in: raise the upperBound of " +
                  quoted(first.name) + " to at least " + decimal(needed) + " (" +
                  decimal(gate.admissionCeiling) + " plus a margin of " + decimal(margin) +
                  (hysteresisWins ? ", this matrix's hysteresis.margin" : "") + ")";
  const double ceiling = bound - margin;
  if (ceiling > 0) {
    s += ", or have the admission gate stop at " + decimal(ceiling) + " or lower (θ_iso ≥ " +
         decimal(1.0 - ceiling) + ")";
  }
  return s;
}

}  // namespace

std::vector<std::string> validateChannelObject(const nlohmann::json& channel,
                                               const std::vector<nlohmann::json>& otherChannels) {
  auto parsed = stability::parseChannel(channel);
  if (!parsed) return {parsed.error().message};
  const ChannelSpec& c = *parsed;
  std::vector<std::string> out = stability::validateChannel(c);

  DependencyGraph graph;
  for (const auto& other : parseAll(otherChannels)) {
    if (other.ref != c.ref) addEdges(graph, other);
  }
  graph[c.ref.key()].clear();
  addEdges(graph, c);
  // A self-dependency is validateChannel's message already; a longer cycle is ours. The edge to
  // itself is dropped so that the search names a cycle through other channels, if one exists.
  std::erase(graph[c.ref.key()], c.ref.key());
  if (auto cycle = stability::cycleThrough(graph, c.ref.key())) {
    out.push_back("dependsOn would close a dependency cycle: " + stability::describeCycle(*cycle) +
                  "; a channel cannot depend, directly or through others, on a channel that "
                  "depends on it");
  }
  return out;
}

std::vector<std::string> validateMatrixObject(const nlohmann::json& matrix,
                                              const std::vector<nlohmann::json>& channels,
                                              const GateMargin& margin) {
  auto parsed = stability::parseMatrix(matrix);
  if (!parsed) return {parsed.error().message};
  const stability::MatrixSpec& m = *parsed;
  std::vector<std::string> out = stability::validateMatrix(m);

  // The same graph and sentence as stability::planProblems: what the operator would stop on.
  DependencyGraph graph;
  for (const auto& c : parseAll(channels))
    addEdges(graph, c);
  if (auto cycle = stability::findCycle(graph)) {
    out.push_back("channels depend on each other in a cycle: " + stability::describeCycle(*cycle));
  }

  if (auto problem = marginProblem(m, margin)) out.push_back(std::move(*problem));
  return out;
}

std::vector<std::string> matrixWarnings(const nlohmann::json& matrix,
                                        const std::vector<nlohmann::json>& channels) {
  auto parsed = stability::parseMatrix(matrix);
  if (!parsed) return {};
  std::set<std::string> known;
  for (const auto& c : parseAll(channels))
    known.insert(c.ref.key());
  std::vector<std::string> out;
  if (parsed->anticipationSeconds > 0 &&
      parsed->loadSignal.source == stability::LoadSource::kPrometheus) {
    out.push_back("anticipationSeconds " + std::to_string(parsed->anticipationSeconds) +
                  " has no effect: the load signal is a Prometheus query, which has no forecast "
                  "(anticipation needs loadSignal.source Fleet)");
  }
  for (const auto& row : parsed->rows) {
    if (!known.contains(row.channel.key())) {
      out.push_back("row names channel " + row.channel.key() +
                    ", which does not exist (yet); the operator does not act on this matrix "
                    "until it does");
    }
  }
  return out;
}

}  // namespace pi0::admission
