#include "stability/spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "common/json_reader.h"
#include "kube/quantity.h"

namespace pi0::stability {

namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Reading API objects

using json::Node;
using json::quote;

// The generic reads are json::Reader's; these add the CRDs' rules: required fields, quantities,
// and the parts that Channel and ShutdownMatrix share.
class Reader : public json::Reader {
 public:
  // An item of a list that must be an object (a missing one is reported).
  bool itemObject(const Node& node) {
    if (!node.present()) {
      problem(node, "must be an object, not null");
      return false;
    }
    return object(node);
  }

  // A string the CRD requires, and requires non-empty.
  std::string requiredString(const Node& node) {
    if (!node.present()) {
      problem(node, "is required but missing");
      return {};
    }
    std::string s = string(node);
    if (ok() && s.empty()) problem(node, "must not be empty");
    return s;
  }

  // A Kubernetes quantity, as the CRDs' int-or-string: a string, or a JSON number.
  std::optional<int64_t> quantity(const Node& node, bool cpu) {
    if (!node.present()) return std::nullopt;
    const std::optional<std::string> text = kube::quantityText(*node.value);
    if (!text) {
      expect(node, false, "a quantity (a string such as \"500m\" or \"2Gi\", or a number)");
      return std::nullopt;
    }
    Result<int64_t> r = cpu ? kube::parseCpuMilli(*text) : kube::parseBytes(*text);
    if (!r) {
      problem(node, r.error().message);
      return std::nullopt;
    }
    return *r;
  }

  std::optional<Resources> resources(const Node& node) {
    if (!object(node)) return std::nullopt;
    return Resources{quantity(node.child("cpu"), true), quantity(node.child("memory"), false)};
  }

  Weights weights(const Node& node) {
    Weights w;
    if (!object(node)) return w;
    w.throughput = number(node.child("throughput"), w.throughput);
    w.reliability = number(node.child("reliability"), w.reliability);
    w.recovery = number(node.child("recovery"), w.recovery);
    return w;
  }

  // metadata.name, generation and uid.
  void metadata(const Node& root, std::string& name, int64_t& generation, std::string& uid) {
    const Node meta = root.child("metadata");
    if (!meta.present()) {
      problem(meta, "is required but missing");
      return;
    }
    if (!object(meta)) return;
    name = requiredString(meta.child("name"));
    generation = integer(meta.child("generation"), 0, 0, std::numeric_limits<int64_t>::max());
    uid = string(meta.child("uid"));
  }
};

// Parse failures name the object too: the field path alone does not say which Channel it is.
std::unexpected<Error> parseFailure(const char* kind, const std::string& ns,
                                    const std::string& name, const std::string& error) {
  std::string object = kind;
  if (!name.empty()) object += " " + (ns.empty() ? name : ns + "/" + name);
  return fail(object + ": " + error);
}

// ---------------------------------------------------------------------------------------------
// Validation messages

std::string number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

void checkWeights(const Weights& w, std::vector<std::string>& out) {
  const std::pair<const char*, double> all[] = {
      {"throughput", w.throughput}, {"reliability", w.reliability}, {"recovery", w.recovery}};
  for (const auto& [name, v] : all) {
    if (!(v >= 0.0 && v <= 1.0)) {
      out.push_back("weights." + std::string(name) + " is " + number(v) +
                    "; weights must be within [0, 1]");
    }
  }
}

void checkNotNegative(const std::optional<Resources>& r, const std::string& path,
                      std::vector<std::string>& out) {
  if (!r) return;
  if (r->cpuMilli && *r->cpuMilli < 0) {
    out.push_back(path + ".cpu is negative (" + kube::formatCpuMilli(*r->cpuMilli) + ")");
  }
  if (r->memoryBytes && *r->memoryBytes < 0) {
    out.push_back(path + ".memory is negative (" + kube::formatBytes(*r->memoryBytes) + ")");
  }
}

void checkAtLeast(int64_t v, int64_t least, const char* field, std::vector<std::string>& out) {
  if (v < least) {
    out.push_back(std::string(field) + " is " + std::to_string(v) + "; it must be " +
                  std::to_string(least) + " or more");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string LabelSelector::toQuery() const {
  std::string out;
  auto add = [&out](const std::string& term) {
    if (!out.empty()) out += ',';
    out += term;
  };
  for (const auto& [key, value] : matchLabels)
    add(key + "=" + value);
  for (const auto& r : matchExpressions) {
    std::string values;
    for (const auto& v : r.values)
      values += (values.empty() ? "" : ",") + v;
    if (r.op == "In") {
      add(r.key + " in (" + values + ")");
    } else if (r.op == "NotIn") {
      add(r.key + " notin (" + values + ")");
    } else if (r.op == "Exists") {
      add(r.key);
    } else if (r.op == "DoesNotExist") {
      add("!" + r.key);
    } else {
      // Not a selector operator (validateChannel reports it). Spelled out as given, the apiserver
      // refuses the query; leaving it out would silently select more pods.
      add(r.key + " " + r.op + " (" + values + ")");
    }
  }
  return out;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& [key, value] : matchLabels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  for (const auto& r : matchExpressions) {
    auto it = labels.find(r.key);
    const bool in = it != labels.end() &&
                    std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    if (r.op == "In") {
      if (!in) return false;
    } else if (r.op == "NotIn") {
      if (in) return false;
    } else if (r.op == "Exists") {
      if (it == labels.end()) return false;
    } else if (r.op == "DoesNotExist") {
      if (it != labels.end()) return false;
    } else {
      return false;
    }
  }
  return true;
}

const char* actionName(Action action) {
  switch (action) {
    case Action::kDegrade:
      return "Degrade";
    case Action::kShutdown:
      return "Shutdown";
    case Action::kRestore:
      return "Restore";
  }
  return "Unknown";
}

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::kEnforce:
      return "Enforce";
    case Mode::kDryRun:
      return "DryRun";
  }
  return "Unknown";
}

const char* workloadKindName(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kDeployment:
      return "Deployment";
    case WorkloadKind::kStatefulSet:
      return "StatefulSet";
  }
  return "Unknown";
}

Result<ChannelSpec> parseChannel(const nlohmann::json& object) {
  try {
    Reader r;
    ChannelSpec c;
    const Node root = Node::root(object);
    if (!object.is_object()) return fail("Channel: not a JSON object");
    r.metadata(root, c.ref.name, c.generation, c.uid);
    c.ref.ns = r.requiredString(root.child("metadata").child("namespace"));

    const Node spec = root.child("spec");
    r.object(spec);
    for (const Node& t : r.items(spec.child("targets"))) {
      if (!r.itemObject(t)) continue;
      Target target;
      target.kind = r.enumeration(
          t.child("kind"), WorkloadKind::kDeployment, "kind",
          {{"Deployment", WorkloadKind::kDeployment}, {"StatefulSet", WorkloadKind::kStatefulSet}});
      target.name = r.requiredString(t.child("name"));
      c.targets.push_back(std::move(target));
    }

    const Node selector = spec.child("selector");
    if (!selector.present()) {
      c.selector.matchLabels.emplace_back("stability.pi0.io/channel", c.ref.name);
    } else if (r.object(selector)) {
      const Node labels = selector.child("matchLabels");
      if (r.object(labels)) {
        for (const auto& [key, value] : labels.value->items())
          c.selector.matchLabels.emplace_back(key, r.string(labels.raw(key, true)));
      }
      for (const Node& e : r.items(selector.child("matchExpressions"))) {
        if (!r.itemObject(e)) continue;
        LabelSelectorRequirement req;
        req.key = r.requiredString(e.child("key"));
        const Node op = e.child("operator");
        req.op = r.requiredString(op);
        if (r.ok() && req.op != "In" && req.op != "NotIn" && req.op != "Exists" &&
            req.op != "DoesNotExist") {
          r.problem(op, "unknown operator " + quote(req.op) +
                            "; expected In, NotIn, Exists or DoesNotExist");
        }
        for (const Node& v : r.items(e.child("values"))) {
          if (!v.present()) {
            r.problem(v, "must be a string, not null");
            continue;
          }
          req.values.push_back(r.string(v));
        }
        c.selector.matchExpressions.push_back(std::move(req));
      }
    }

    c.critical = r.boolean(spec.child("critical"), false);
    for (const Node& d : r.items(spec.child("dependsOn"))) {
      if (!r.itemObject(d)) continue;
      ChannelRef ref;
      ref.name = r.requiredString(d.child("name"));
      ref.ns = r.string(d.child("namespace"));
      if (ref.ns.empty()) ref.ns = c.ref.ns;
      c.dependsOn.push_back(std::move(ref));
    }
    c.degradedReplicas = r.int32(spec.child("degradedReplicas"), c.degradedReplicas);
    if (r.object(spec.child("weights"))) c.weights = r.weights(spec.child("weights"));
    const Node throughput = spec.child("throughput");
    if (r.object(throughput)) {
      Throughput t;
      t.prometheusQuery = r.requiredString(throughput.child("prometheusQuery"));
      t.max = r.number(throughput.child("max"), t.max);
      c.throughput = std::move(t);
    }
    const Node buffer = spec.child("buffer");
    if (r.object(buffer)) {
      const Node max = buffer.child("max");
      if (!max.present()) r.problem(max, "is required but missing");
      c.bufferMax = r.resources(max);
    }
    c.restoreTimeoutSeconds = r.int32(spec.child("restoreTimeoutSeconds"), c.restoreTimeoutSeconds);

    if (!r.ok()) return parseFailure("Channel", c.ref.ns, c.ref.name, r.error());
    return c;
  } catch (const Json::exception& e) {
    // Every read checks its type first; this only keeps a missed case from escaping.
    return fail(std::string("Channel: cannot be read: ") + e.what());
  }
}

Result<MatrixSpec> parseMatrix(const nlohmann::json& object) {
  try {
    Reader r;
    MatrixSpec m;
    const Node root = Node::root(object);
    if (!object.is_object()) return fail("ShutdownMatrix: not a JSON object");
    r.metadata(root, m.name, m.generation, m.uid);

    const Node spec = root.child("spec");
    r.object(spec);
    const Node levels = spec.child("levels");
    if (!levels.present()) r.problem(levels, "is required but missing");
    for (const Node& l : r.items(levels)) {
      if (!r.itemObject(l)) continue;
      Level level;
      level.name = r.requiredString(l.child("name"));
      const Node bound = l.child("upperBound");
      if (bound.present()) level.upperBound = r.number(bound, 0.0);
      m.levels.push_back(std::move(level));
    }

    for (const Node& w : r.items(spec.child("rows"))) {
      if (!r.itemObject(w)) continue;
      Row row;
      const Node channel = w.child("channel");
      if (!channel.present()) r.problem(channel, "is required but missing");
      if (r.object(channel)) {
        row.channel.name = r.requiredString(channel.child("name"));
        row.channel.ns = r.requiredString(channel.child("namespace"));
      }
      row.critical = r.boolean(w.child("critical"), false);
      for (const Node& k : r.items(w.child("cells"))) {
        if (!r.itemObject(k)) continue;
        Cell cell;
        cell.level = r.requiredString(k.child("level"));
        const Node action = k.child("action");
        if (!action.present()) r.problem(action, "is required but missing");
        // Restore parses so that validateMatrix can say why it does not belong in a cell.
        cell.action = r.enumeration(action, Action::kDegrade, "action",
                                    {{"Degrade", Action::kDegrade},
                                     {"Shutdown", Action::kShutdown},
                                     {"Restore", Action::kRestore}});
        cell.order = r.int32(k.child("order"), 0);
        row.cells.push_back(std::move(cell));
      }
      m.rows.push_back(std::move(row));
    }

    const Node load = spec.child("loadSignal");
    if (r.object(load)) {
      m.loadSignal.source =
          r.enumeration(load.child("source"), LoadSource::kFleet, "source",
                        {{"Fleet", LoadSource::kFleet}, {"Prometheus", LoadSource::kPrometheus}});
      m.loadSignal.prometheusQuery = r.string(load.child("prometheusQuery"));
      const Node resources = load.child("resources");
      if (resources.present()) {
        m.loadSignal.resources.clear();
        for (const Node& k : r.items(resources)) {
          if (!k.present()) {
            r.problem(k, "must be a string, not null");
            continue;
          }
          m.loadSignal.resources.push_back(r.enumeration(
              k, Resource::kCpu, "resource",
              {{"cpu", Resource::kCpu}, {"memory", Resource::kMemory}, {"gpu", Resource::kGpu}}));
        }
      }
    }
    m.stabilityThreshold = r.number(spec.child("stabilityThreshold"), m.stabilityThreshold);
    m.weights = r.weights(spec.child("weights"));
    m.totalBuffer = r.resources(spec.child("totalBuffer"));
    const Node hysteresis = spec.child("hysteresis");
    if (r.object(hysteresis)) {
      m.hysteresis.margin = r.number(hysteresis.child("margin"), m.hysteresis.margin);
      m.hysteresis.dwellSeconds =
          r.int32(hysteresis.child("dwellSeconds"), m.hysteresis.dwellSeconds);
    }
    m.stepIntervalSeconds = r.int32(spec.child("stepIntervalSeconds"), m.stepIntervalSeconds);
    m.anticipationSeconds = r.int32(spec.child("anticipationSeconds"), m.anticipationSeconds);
    m.mode = r.enumeration(spec.child("mode"), Mode::kEnforce, "mode",
                           {{"Enforce", Mode::kEnforce}, {"DryRun", Mode::kDryRun}});
    const Node restore = spec.child("restore");
    if (r.object(restore)) {
      m.restore.backoffSeconds = r.int32(restore.child("backoffSeconds"), m.restore.backoffSeconds);
      m.restore.maxBackoffSeconds =
          r.int32(restore.child("maxBackoffSeconds"), m.restore.maxBackoffSeconds);
    }
    const Node rollback = spec.child("rollback");
    if (r.object(rollback)) {
      m.rollback.settleSeconds = r.int32(rollback.child("settleSeconds"), m.rollback.settleSeconds);
      m.rollback.margin = r.number(rollback.child("margin"), m.rollback.margin);
      m.rollback.cooldownSeconds =
          r.int32(rollback.child("cooldownSeconds"), m.rollback.cooldownSeconds);
    }

    if (!r.ok()) return parseFailure("ShutdownMatrix", "", m.name, r.error());
    return m;
  } catch (const Json::exception& e) {
    return fail(std::string("ShutdownMatrix: cannot be read: ") + e.what());
  }
}

std::vector<std::string> validateChannel(const ChannelSpec& channel) {
  std::vector<std::string> out;
  std::set<std::pair<WorkloadKind, std::string>> targets;
  for (const Target& t : channel.targets) {
    if (!targets.emplace(t.kind, t.name).second) {
      out.push_back("target " + std::string(workloadKindName(t.kind)) + "/" + t.name +
                    " is listed twice; list each workload once");
    }
  }
  for (std::size_t i = 0; i < channel.selector.matchExpressions.size(); ++i) {
    const LabelSelectorRequirement& e = channel.selector.matchExpressions[i];
    const std::string where =
        "selector.matchExpressions[" + std::to_string(i) + "] (key " + quote(e.key) + ")";
    if (e.op == "In" || e.op == "NotIn") {
      if (e.values.empty()) out.push_back(where + ": " + e.op + " needs at least one value");
    } else if (e.op == "Exists" || e.op == "DoesNotExist") {
      if (!e.values.empty()) out.push_back(where + ": " + e.op + " takes no values");
    } else {
      out.push_back(where + ": unknown operator " + quote(e.op) +
                    "; expected In, NotIn, Exists or DoesNotExist");
    }
  }
  for (const ChannelRef& d : channel.dependsOn) {
    if (d == channel.ref) {
      out.push_back("channel " + channel.ref.key() + " depends on itself");
      break;
    }
  }
  checkAtLeast(channel.degradedReplicas, 0, "degradedReplicas", out);
  if (channel.weights) checkWeights(*channel.weights, out);
  if (channel.throughput) {
    if (channel.throughput->prometheusQuery.empty()) {
      out.push_back(
          "throughput.prometheusQuery is empty; give a PromQL query returning one number");
    }
    if (!(channel.throughput->max > 0.0)) {
      out.push_back("throughput.max is " + number(channel.throughput->max) +
                    "; it must be above 0");
    }
  }
  checkNotNegative(channel.bufferMax, "buffer.max", out);
  checkAtLeast(channel.restoreTimeoutSeconds, 1, "restoreTimeoutSeconds", out);
  return out;
}

namespace {

// Levels: unique names, bounds on all but the last, strictly ascending. Returns their names;
// `levelList` gets them in order, as messages list them.
std::set<std::string> checkLevels(const std::vector<Level>& levels, std::string& levelList,
                                  std::vector<std::string>& out) {
  if (levels.empty()) {
    out.push_back("there are no levels; a ShutdownMatrix needs at least one (the last one open)");
  }
  std::set<std::string> levelNames;
  const Level* previousBounded = nullptr;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const Level& l = levels[i];
    const bool last = i + 1 == levels.size();
    if (!levelNames.insert(l.name).second) {
      out.push_back("level " + quote(l.name) + " is listed twice; level names must be unique");
    } else {
      levelList += (levelList.empty() ? "" : ", ") + l.name;
    }
    if (last && l.upperBound) {
      out.push_back("the last level " + quote(l.name) + " has upperBound " + number(*l.upperBound) +
                    "; the last level must have none (it holds every load above the one before)");
    } else if (!last && !l.upperBound) {
      out.push_back("level " + quote(l.name) +
                    " has no upperBound; every level but the last needs one");
    }
    if (!l.upperBound) continue;
    if (!(*l.upperBound > 0.0)) {
      out.push_back("level " + quote(l.name) + " has upperBound " + number(*l.upperBound) +
                    "; bounds must be above 0");
    }
    if (previousBounded != nullptr && !(*l.upperBound > *previousBounded->upperBound)) {
      out.push_back("levels must ascend strictly by upperBound: " + quote(l.name) + " (" +
                    number(*l.upperBound) + ") is not above " + quote(previousBounded->name) +
                    " (" + number(*previousBounded->upperBound) + ")");
    }
    previousBounded = &l;
  }

  return levelNames;
}

// Rows: one per channel; cells at known levels above the first, one per level.
void checkRows(const MatrixSpec& matrix, const std::set<std::string>& levelNames,
               const std::string& levelList, std::vector<std::string>& out) {
  std::set<ChannelRef> channels;
  for (const Row& row : matrix.rows) {
    const std::string rowName = "row for channel " + row.channel.key();
    if (!channels.insert(row.channel).second) {
      out.push_back("channel " + row.channel.key() +
                    " is listed in two rows; give each channel one row");
    }
    if (row.critical && !row.cells.empty()) {
      out.push_back(rowName + " is critical and must have no cells");
      continue;
    }
    std::set<std::string> cellLevels;
    for (const Cell& cell : row.cells) {
      if (!levelNames.contains(cell.level)) {
        out.push_back(rowName + " names unknown level " + quote(cell.level) +
                      " (levels: " + levelList + ")");
      } else if (cell.level == matrix.levels.front().name) {
        out.push_back(rowName + " has a cell at the first level " + quote(cell.level) +
                      ", which is normal operation where nothing is degraded; move it to a "
                      "higher level");
      }
      if (!cellLevels.insert(cell.level).second) {
        out.push_back(rowName + " has two cells for level " + quote(cell.level) +
                      "; give each level at most one cell");
      }
      if (cell.action == Action::kRestore) {
        out.push_back(rowName + " has a Restore cell at level " + quote(cell.level) +
                      "; a matrix cell may only Degrade or Shutdown (restores follow from the "
                      "load falling)");
      }
      if (cell.order < 0) {
        out.push_back(rowName + " has order " + std::to_string(cell.order) + " at level " +
                      quote(cell.level) + "; order must be 0 or more");
      }
    }
  }
}

// Everything else: the load signal, thresholds, weights and timings.
void checkSettings(const MatrixSpec& matrix, std::vector<std::string>& out) {
  if (matrix.loadSignal.source == LoadSource::kPrometheus &&
      matrix.loadSignal.prometheusQuery.empty()) {
    out.push_back(
        "loadSignal.source is Prometheus but loadSignal.prometheusQuery is empty; give a PromQL "
        "query returning the load as a ratio");
  }
  if (matrix.loadSignal.resources.empty()) {
    out.push_back("loadSignal.resources is empty; list at least one of cpu, memory, gpu");
  }
  if (!(matrix.stabilityThreshold >= 0.0 && matrix.stabilityThreshold <= 1.0)) {
    out.push_back("stabilityThreshold is " + number(matrix.stabilityThreshold) +
                  "; it must be within [0, 1]");
  }
  checkWeights(matrix.weights, out);
  checkNotNegative(matrix.totalBuffer, "totalBuffer", out);
  // A margin of 1 or more would put the recovery mark at or below 0: nothing would come back.
  if (!(matrix.hysteresis.margin >= 0.0 && matrix.hysteresis.margin < 1.0)) {
    out.push_back("hysteresis.margin is " + number(matrix.hysteresis.margin) +
                  "; it must be at least 0 and below 1");
  }
  checkAtLeast(matrix.hysteresis.dwellSeconds, 0, "hysteresis.dwellSeconds", out);
  checkAtLeast(matrix.stepIntervalSeconds, 1, "stepIntervalSeconds", out);
  if (matrix.anticipationSeconds < 0 || matrix.anticipationSeconds > kMaxAnticipationSeconds) {
    out.push_back("anticipationSeconds is " + std::to_string(matrix.anticipationSeconds) +
                  "; it must be from 0 (off) to " + std::to_string(kMaxAnticipationSeconds));
  }
  checkAtLeast(matrix.restore.backoffSeconds, 1, "restore.backoffSeconds", out);
  checkAtLeast(matrix.restore.maxBackoffSeconds, 1, "restore.maxBackoffSeconds", out);
  checkAtLeast(matrix.rollback.settleSeconds, 0, "rollback.settleSeconds", out);
  checkAtLeast(matrix.rollback.cooldownSeconds, 0, "rollback.cooldownSeconds", out);
  if (!(matrix.rollback.margin >= 0.0 && matrix.rollback.margin < 1.0)) {
    out.push_back("rollback.margin is " + number(matrix.rollback.margin) +
                  "; it must be at least 0 and below 1");
  }
}

}  // namespace

std::vector<std::string> validateMatrix(const MatrixSpec& matrix) {
  std::vector<std::string> out;
  std::string levelList;
  const std::set<std::string> levelNames = checkLevels(matrix.levels, levelList, out);
  checkRows(matrix, levelNames, levelList, out);
  checkSettings(matrix, out);
  return out;
}

}  // namespace pi0::stability
