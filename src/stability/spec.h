// Pi0's custom resources as typed values: the spec of a Channel and of a ShutdownMatrix as
// crds/ defines them (docs/resources.md is the user's reference). Parsing turns the JSON the
// apiserver serves into these structs; validation says, for a person, what is wrong with one.
// The operator, the webhook and the planner all work on these types, never on JSON.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/resource.h"
#include "common/result.h"

namespace pi0::stability {

// A channel is named by namespace and name; "ns/name" is its key.
struct ChannelRef {
  std::string ns;
  std::string name;
  std::string key() const { return ns + "/" + name; }
  friend bool operator==(const ChannelRef&, const ChannelRef&) = default;
  friend auto operator<=>(const ChannelRef&, const ChannelRef&) = default;
};

enum class WorkloadKind { kDeployment, kStatefulSet };

struct Target {
  WorkloadKind kind = WorkloadKind::kDeployment;
  std::string name;  // in the channel's namespace
  friend bool operator==(const Target&, const Target&) = default;
};

// CPO's α, β, γ.
struct Weights {
  double throughput = 0.4;
  double reliability = 0.4;
  double recovery = 0.2;
  friend bool operator==(const Weights&, const Weights&) = default;
};

// cpu in millicores, memory in bytes; absent when not given.
struct Resources {
  std::optional<int64_t> cpuMilli;
  std::optional<int64_t> memoryBytes;
  friend bool operator==(const Resources&, const Resources&) = default;
};

struct LabelSelectorRequirement {
  std::string key;
  std::string op;  // In, NotIn, Exists, DoesNotExist
  std::vector<std::string> values;
  friend bool operator==(const LabelSelectorRequirement&,
                         const LabelSelectorRequirement&) = default;
};

struct LabelSelector {
  std::vector<std::pair<std::string, std::string>> matchLabels;
  std::vector<LabelSelectorRequirement> matchExpressions;
  // The selector in the API's query syntax: "a=b,c in (d,e),!f".
  std::string toQuery() const;
  // Whether an object with these labels is selected, as the apiserver decides. An unknown
  // operator selects nothing. An empty selector selects everything.
  bool matches(const std::map<std::string, std::string>& labels) const;
  friend bool operator==(const LabelSelector&, const LabelSelector&) = default;
};

struct Throughput {
  std::string prometheusQuery;
  double max = 1.0;
};

struct ChannelSpec {
  ChannelRef ref;
  int64_t generation = 0;
  std::string uid;
  std::vector<Target> targets;
  LabelSelector selector;  // defaulted to stability.pi0.io/channel=<name> when absent
  bool critical = false;
  std::vector<ChannelRef> dependsOn;  // namespace defaulted to the channel's own
  int32_t degradedReplicas = 1;
  std::optional<Weights> weights;  // absent: the matrix's weights apply
  std::optional<Throughput> throughput;
  std::optional<Resources> bufferMax;
  int32_t restoreTimeoutSeconds = 300;
};

enum class Action { kDegrade, kShutdown, kRestore };

struct Level {
  std::string name;
  std::optional<double> upperBound;  // absent on the last, open level
};

struct Cell {
  std::string level;
  Action action = Action::kDegrade;
  int32_t order = 0;  // lower acts earlier within a level
};

struct Row {
  ChannelRef channel;
  bool critical = false;
  std::vector<Cell> cells;
};

enum class LoadSource { kFleet, kPrometheus };

struct LoadSignal {
  LoadSource source = LoadSource::kFleet;
  std::string prometheusQuery;
  std::vector<Resource> resources{kAllResources.begin(), kAllResources.end()};
};

struct Hysteresis {
  double margin = 0.05;
  int32_t dwellSeconds = 60;
};

enum class Mode { kEnforce, kDryRun };

struct RestorePolicy {
  int32_t backoffSeconds = 10;
  int32_t maxBackoffSeconds = 600;
};

// Rollback of a step that made things worse (DESIGN.md "Shutdown and recovery"): settleSeconds
// after a degrade or shutdown step, the operator compares the cluster with what it was just
// before the step; when the load rose, stability (SAO) or the other channels' availability fell
// by more than `margin`, or a channel that depends on the one touched lost ready replicas or
// started restarting, the step is undone through its undo record and not taken again for
// cooldownSeconds. settleSeconds 0 turns rollback off.
struct RollbackPolicy {
  int32_t settleSeconds = 60;
  double margin = 0.05;
  int32_t cooldownSeconds = 600;
};

struct MatrixSpec {
  std::string name;
  int64_t generation = 0;
  std::string uid;
  std::vector<Level> levels;
  std::vector<Row> rows;
  LoadSignal loadSignal;
  double stabilityThreshold = 0.5;
  Weights weights;
  std::optional<Resources> totalBuffer;
  Hysteresis hysteresis;
  int32_t stepIntervalSeconds = 30;
  // Lead time of the anticipated level, 0..kMaxAnticipationSeconds; 0 is off. With a Fleet load
  // signal the level follows the larger of ℓ and the load the nodes' forecasts expect this many
  // seconds past their horizon (fleet/load.h); a Prometheus load signal has no forecast.
  int32_t anticipationSeconds = 0;
  Mode mode = Mode::kEnforce;
  RestorePolicy restore;
  RollbackPolicy rollback;
};

inline constexpr int32_t kMaxAnticipationSeconds = 3600;

// Names as the API writes them ("Degrade", "DryRun", "Deployment", "cpu").
const char* actionName(Action action);
const char* modeName(Mode mode);
const char* workloadKindName(WorkloadKind kind);

// From the objects the apiserver serves (defaults applied by the CRD schema, but missing
// fields default here too, so objects written before a default existed still parse). Fail
// with a message naming the field ("spec.targets[1].kind: unknown kind \"Job\"").
Result<ChannelSpec> parseChannel(const nlohmann::json& object);
Result<MatrixSpec> parseMatrix(const nlohmann::json& object);

// What is wrong with a spec beyond what the CRD schema checks, one sentence per problem (empty
// when valid). Channel: weights outside [0,1], a negative buffer, a self-dependency.
// Matrix: levels not strictly ascending or not unique, an upper bound on the last level or a
// missing one before it, rows naming unknown levels, cells on critical rows, a channel listed
// twice, anticipationSeconds outside 0..3600. The webhook refuses what these report; the
// operator reports it in a condition.
std::vector<std::string> validateChannel(const ChannelSpec& channel);
std::vector<std::string> validateMatrix(const MatrixSpec& matrix);

}  // namespace pi0::stability
