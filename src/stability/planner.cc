#include "stability/planner.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <tuple>

#include "common/format.h"
#include "stability/operators.h"

namespace pi0::stability {
namespace {

int severity(ChannelState s) {
  return static_cast<int>(s);
}

DependencyGraph graphOf(const PlanInput& input) {
  DependencyGraph graph;
  for (const auto& c : input.channels) {
    auto& deps = graph[c.ref.key()];
    for (const auto& d : c.dependsOn)
      deps.push_back(d.key());
  }
  return graph;
}

int levelIndex(const MatrixSpec& matrix, const std::string& name) {
  for (std::size_t i = 0; i < matrix.levels.size(); ++i) {
    if (matrix.levels[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

// Why a channel has its target, and where it sorts in a shutdown plan.
struct Decision {
  ChannelState target = ChannelState::kActive;
  int group = 3;  // 0 stability, 1 matrix cell, 2 GDO, 3 none
  int cellLevel = 0;
  int cellOrder = 0;
  std::string reason;
};

struct Decisions {
  std::map<std::string, Decision> byKey;
  StabilityOutlook stability;
};

// What the stability trigger decides over `facts`: its outlook, and the channels it shuts down
// (none when SAO is at the threshold or cannot reach it).
StabilityOutlook stabilityOutlook(const std::vector<ChannelFacts>& facts, double threshold,
                                  std::vector<std::string>& shutdowns) {
  StabilityOutlook st;
  st.sao = sao(facts);
  st.threshold = threshold;
  st.bound = saoBound(facts);
  st.reachable = st.sao >= threshold || st.bound >= threshold;
  const std::string head = "stability " + fixed(st.sao, 3);
  if (st.sao >= threshold) {
    st.explanation = head + " is at or above the threshold " + fixed(threshold, 3);
    return st;
  }
  if (!st.reachable) {
    // Name what holds the bound down: the active channels that must stay up and are less than
    // fully reliable, least reliable first.
    std::vector<const ChannelFacts*> holding;
    for (const auto& f : facts) {
      if (f.active && f.critical && f.reliability < 1) holding.push_back(&f);
    }
    std::sort(holding.begin(), holding.end(), [](const ChannelFacts* a, const ChannelFacts* b) {
      return a->reliability != b->reliability ? a->reliability < b->reliability : a->key < b->key;
    });
    constexpr std::size_t kNamed = 5;
    std::string names;
    for (std::size_t i = 0; i < holding.size() && i < kNamed; ++i) {
      names +=
          (names.empty() ? "" : ", ") + holding[i]->key + " " + fixed(holding[i]->reliability, 3);
    }
    if (holding.size() > kNamed)
      names += ", and " + std::to_string(holding.size() - kNamed) + " more";
    st.explanation = head + " is below the threshold " + fixed(threshold, 3) +
                     " and cannot reach it: the channels that must stay up" +
                     (names.empty() ? "" : " (" + names + ")") + " bound it at " +
                     fixed(st.bound, 3) + "; no channel is shut down for stability";
    return st;
  }
  shutdowns = stabilityShutdowns(facts, threshold);
  std::vector<ChannelFacts> after = facts;
  std::string names;
  for (auto& f : after) {
    if (std::find(shutdowns.begin(), shutdowns.end(), f.key) != shutdowns.end()) f.active = false;
  }
  for (const auto& key : shutdowns)
    names += (names.empty() ? "" : ", ") + key;
  st.explanation = head + " is below the threshold " + fixed(threshold, 3) +
                   ": shutting down the least reliable (" + names + ") brings it to " +
                   fixed(sao(after), 3);
  return st;
}

// The decision of a channel's matrix row at level `level`: the cell of the highest level at or
// below it decides (a Restore cell, or none, leaves the channel Active).
Decision cellDecision(const Row& row, const MatrixSpec& m, int level,
                      const std::string& levelName) {
  Decision d;
  const Cell* deciding = nullptr;
  int decidingLevel = -1;
  for (const auto& cell : row.cells) {
    const int li = levelIndex(m, cell.level);
    if (li >= 0 && li <= level && li >= decidingLevel) {
      deciding = &cell;
      decidingLevel = li;
    }
  }
  if (deciding != nullptr && deciding->action != Action::kRestore) {
    d.target =
        deciding->action == Action::kShutdown ? ChannelState::kInactive : ChannelState::kDegraded;
    d.group = 1;
    d.cellLevel = decidingLevel;
    d.cellOrder = deciding->order;
    d.reason = "level " + levelName + ": matrix cell at level " + deciding->level + " (order " +
               std::to_string(deciding->order) + ")";
  }
  return d;
}

// Above the first level: GDO degrades the channels outside the matrix whose priority is below
// the load, and keeps degraded those it degraded before.
void degradeByPriority(const PlanInput& input, const std::vector<ChannelFacts>& facts,
                       const std::set<std::string>& untouchable,
                       const std::map<std::string, const Row*>& rows, const std::string& levelName,
                       std::map<std::string, Decision>& out) {
  const MatrixSpec& m = *input.matrix;
  char load[32];
  std::snprintf(load, sizeof load, "%.2f", input.load);
  for (const auto& key : gdo(facts, input.load)) {
    auto& d = out[key];
    if (d.group == 3) {
      d.target = ChannelState::kDegraded;
      d.group = 2;
      d.reason =
          "level " + levelName + ": not in the matrix and its priority is below the load " + load;
    }
  }
  // GDO's decisions have the level's hysteresis: a channel it degraded stays degraded while
  // the level is above the first, whatever its CPO and ℓ do now. Recomputing from the live
  // load would restore and degrade it again each time ℓ crosses its CPO; the level falls to
  // the first only after the matrix's dwell, and then the channel is restored.
  const std::string first = m.levels.empty() ? "?" : m.levels.front().name;
  for (const auto& c : input.channels) {
    const std::string key = c.ref.key();
    if (c.state != ChannelState::kDegraded || c.absent || untouchable.contains(key) ||
        rows.contains(key))
      continue;
    auto& d = out[key];
    if (d.group == 3) {
      d.target = ChannelState::kDegraded;
      d.group = 2;
      d.reason = "level " + levelName +
                 ": not in the matrix and degraded by priority; it stays degraded until the "
                 "level falls back to " +
                 first;
    }
  }
}

Decisions decide(const PlanInput& input) {
  const MatrixSpec& m = *input.matrix;
  const auto graph = graphOf(input);
  std::set<std::string> critical;
  for (const auto& c : input.channels) {
    if (c.critical) critical.insert(c.ref.key());
  }
  std::map<std::string, const Row*> rows;
  for (const auto& row : m.rows) {
    rows[row.channel.key()] = &row;
    if (row.critical) critical.insert(row.channel.key());
  }
  const auto untouchable = criticalClosure(graph, critical);
  const std::string levelName = input.level >= 0 && input.level < static_cast<int>(m.levels.size())
                                    ? m.levels[static_cast<std::size_t>(input.level)].name
                                    : "?";

  std::vector<ChannelFacts> facts;
  for (const auto& c : input.channels) {
    ChannelFacts f;
    f.key = c.ref.key();
    f.critical = untouchable.contains(f.key) || c.absent;  // neither is GDO's or SAO's to pick
    f.active = c.state != ChannelState::kInactive;
    f.listed = rows.contains(f.key);
    f.cpo = c.cpo;
    f.reliability = c.reliability;
    facts.push_back(f);
  }

  std::map<std::string, Decision> out;
  for (const auto& c : input.channels) {
    const std::string key = c.ref.key();
    Decision d;
    if (untouchable.contains(key)) {
      d.reason = "critical";
      out[key] = d;
      continue;
    }
    if (c.absent) {
      d.target = c.state;
      d.reason = "none of its targets exists";
      out[key] = d;
      continue;
    }
    if (auto r = rows.find(key); r != rows.end())
      d = cellDecision(*r->second, m, input.level, levelName);
    out[key] = d;
  }
  if (input.level >= 1) degradeByPriority(input, facts, untouchable, rows, levelName, out);
  std::vector<std::string> shutdowns;
  Decisions result;
  // Judged as if every channel were up: a channel the trigger shut down stays down for as long
  // as bringing it back would put SAO under the threshold again (else it would be restored,
  // lower SAO, and be shut down again, by turns).
  std::vector<ChannelFacts> everyUp = facts;
  for (auto& f : everyUp)
    f.active = true;
  result.stability = stabilityOutlook(everyUp, m.stabilityThreshold, shutdowns);
  for (const auto& key : shutdowns) {
    auto& d = out[key];
    d.target = ChannelState::kInactive;
    d.group = 0;
    d.reason = "stability " + fixed(result.stability.sao, 3) + " is below the threshold " +
               fixed(m.stabilityThreshold, 3) + ": the least reliable channels shut down first";
  }
  result.byKey = std::move(out);
  return result;
}

}  // namespace

const char* channelStateName(ChannelState state) {
  switch (state) {
    case ChannelState::kActive:
      return "Active";
    case ChannelState::kDegraded:
      return "Degraded";
    case ChannelState::kInactive:
      return "Inactive";
  }
  return "Active";
}

std::vector<std::string> planProblems(const PlanInput& input) {
  std::vector<std::string> problems;
  if (auto cycle = findCycle(graphOf(input))) {
    problems.push_back("channels depend on each other in a cycle: " + describeCycle(*cycle));
  }
  std::set<std::string> known;
  for (const auto& c : input.channels)
    known.insert(c.ref.key());
  for (const auto& row : input.matrix->rows) {
    if (!known.contains(row.channel.key())) {
      problems.push_back("row names channel " + row.channel.key() + ", which does not exist");
    }
  }
  return problems;
}

std::map<std::string, ChannelState> targets(const PlanInput& input) {
  std::map<std::string, ChannelState> out;
  for (const auto& [key, d] : decide(input).byKey)
    out[key] = d.target;
  return out;
}

Plan planShutdown(const PlanInput& input) {
  Plan plan;
  const auto decided = decide(input);
  const auto& decisions = decided.byKey;
  plan.stability = decided.stability;
  const auto graph = graphOf(input);
  std::map<std::string, const PlannedChannel*> byKey;
  for (const auto& c : input.channels)
    byKey[c.ref.key()] = &c;

  // Candidate steps, in the order the design gives.
  std::vector<const PlannedChannel*> due;
  for (const auto& c : input.channels) {
    if (severity(decisions.at(c.ref.key()).target) > severity(c.state)) due.push_back(&c);
  }
  std::sort(due.begin(), due.end(), [&](const PlannedChannel* a, const PlannedChannel* b) {
    const auto& da = decisions.at(a->ref.key());
    const auto& db = decisions.at(b->ref.key());
    return std::tie(da.group, da.cellLevel, da.cellOrder, a->cpo, a->ref) <
           std::tie(db.group, db.cellLevel, db.cellOrder, b->cpo, b->ref);
  });

  // A shutdown waits for the shutdown of everything that depends on it, and is blocked when a
  // dependent stays active.
  std::set<std::string> emitted;
  std::function<void(const PlannedChannel*)> emit = [&](const PlannedChannel* c) {
    const std::string key = c->ref.key();
    if (emitted.contains(key)) return;
    const auto& d = decisions.at(key);
    if (d.target == ChannelState::kInactive) {
      std::vector<std::string> activeDependents;
      for (const auto& dep : dependentsOf(graph, key)) {
        auto it = byKey.find(dep);
        if (it == byKey.end()) continue;
        const bool willBeInactive = it->second->state == ChannelState::kInactive ||
                                    decisions.at(dep).target == ChannelState::kInactive;
        if (!willBeInactive) activeDependents.push_back(dep);
      }
      if (!activeDependents.empty()) {
        std::string names;
        for (const auto& n : activeDependents)
          names += (names.empty() ? "" : ", ") + n;
        plan.waiting.push_back("shutdown of " + key + " is blocked: " + names + " depend" +
                               (activeDependents.size() == 1 ? "s" : "") + " on it and stay" +
                               (activeDependents.size() == 1 ? "s" : "") + " active");
        emitted.insert(key);
        return;
      }
      for (const auto& dep : dependentsOf(graph, key)) {
        auto it = byKey.find(dep);
        if (it != byKey.end() && severity(decisions.at(dep).target) > severity(it->second->state))
          emit(it->second);
      }
    }
    emitted.insert(key);
    plan.steps.push_back(
        PlanStep{c->ref, d.target == ChannelState::kInactive ? Action::kShutdown : Action::kDegrade,
                 d.target, d.reason});
  };
  for (const auto* c : due)
    emit(c);
  return plan;
}

Plan planRecovery(const PlanInput& input) {
  Plan plan;
  const auto decided = decide(input);
  const auto& decisions = decided.byKey;
  plan.stability = decided.stability;
  std::map<std::string, const PlannedChannel*> byKey;
  for (const auto& c : input.channels)
    byKey[c.ref.key()] = &c;
  std::vector<const PlannedChannel*> due;
  for (const auto& c : input.channels) {
    if (severity(c.state) > severity(decisions.at(c.ref.key()).target)) due.push_back(&c);
  }
  std::sort(due.begin(), due.end(), [](const PlannedChannel* a, const PlannedChannel* b) {
    return a->cpo != b->cpo ? a->cpo > b->cpo : a->ref < b->ref;
  });
  for (const auto* c : due) {
    std::vector<std::string> notBack;
    for (const auto& dep : c->dependsOn) {
      auto it = byKey.find(dep.key());
      if (it == byKey.end()) continue;
      // Back: restored as far as this level allows (a dependency may stay Degraded), and ready.
      const auto depState = it->second->state;
      const bool back = depState != ChannelState::kInactive &&
                        severity(depState) <= severity(decisions.at(dep.key()).target) &&
                        it->second->ready;
      if (!back) notBack.push_back(dep.key());
    }
    if (!notBack.empty()) {
      std::string names;
      for (const auto& n : notBack)
        names += (names.empty() ? "" : ", ") + n;
      plan.waiting.push_back("restore of " + c->ref.key() + " waits for " + names +
                             " to be back and ready");
      continue;
    }
    const auto target = decisions.at(c->ref.key()).target;
    plan.steps.push_back(
        PlanStep{c->ref, Action::kRestore, target,
                 std::string("load fell: restore to ") + channelStateName(target)});
  }
  return plan;
}

}  // namespace pi0::stability
