#include "kubectl-pi0/plugin.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include <yaml-cpp/yaml.h>

#include "common/format.h"
#include "common/url.h"

namespace pi0::kubectl {
namespace {

constexpr const char* kCommands[] = {"why",         "ledger",     "plan",   "seen",
                                     "calibration", "completion", "version"};

// kubectl's own flags that take a value, passed on to every kubectl run.
constexpr const char* kKubectlValueFlags[] = {"--kubeconfig",
                                              "--context",
                                              "--cluster",
                                              "--user",
                                              "--as",
                                              "--as-group",
                                              "--token",
                                              "--server",
                                              "-s",
                                              "--request-timeout",
                                              "--certificate-authority",
                                              "--client-certificate",
                                              "--client-key",
                                              "--tls-server-name"};
constexpr const char* kKubectlSwitches[] = {"--insecure-skip-tls-verify"};

struct PluginFlag {
  const char* name;
  const char* alias;  // "" for none
  bool takesValue;
};
constexpr PluginFlag kFlags[] = {{"--namespace", "-n", true}, {"--all-namespaces", "-A", false},
                                 {"--output", "-o", true},    {"--pi0-namespace", "", true},
                                 {"--service", "", true},     {"--since", "", true},
                                 {"--node", "", true},        {"--channel", "", true},
                                 {"--limit", "", true},       {"--actions", "", false},
                                 {"--help", "-h", false}};

bool among(std::string_view word, std::span<const char* const> list) {
  return std::find(list.begin(), list.end(), word) != list.end();
}

const PluginFlag* findFlag(std::string_view name) {
  for (const PluginFlag& f : kFlags)
    if (name == f.name || (*f.alias && name == f.alias)) return &f;
  return nullptr;
}

std::string text(const Json& j, const char* key, std::string fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

double number(const Json& j, const char* key, double fallback = NAN) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

const Json& items(const Json& j, const char* key) {
  static const Json kEmpty = Json::array();
  if (!j.is_object()) return kEmpty;
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

// "2026-12-07T10:00:01.123Z" shown to the second.
std::string shortTime(const std::string& rfc3339) {
  const auto dot = rfc3339.find('.');
  return dot == std::string::npos ? rfc3339 : rfc3339.substr(0, dot) + "Z";
}

std::string orDash(std::string s) {
  return s.empty() ? "-" : s;
}

// Columns aligned as kubectl aligns them: upper-case headers, three spaces between columns.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str() const {
    std::vector<std::size_t> width;
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (width.size() <= i) width.push_back(0);
        width[i] = std::max(width[i], row[i].size());
      }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 3, ' ');
      }
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "denied (Enforce)", "allowed (Warn: would deny)", "allowed (holdout)".
std::string resultOf(const Json& d) {
  const bool allowed = d.value("allowed", true), verdict = d.value("verdict", true);
  std::string out = allowed ? "allowed" : "denied";
  const std::string mode = text(d, "mode");
  if (allowed != verdict) out += " (" + mode + ": would " + (verdict ? "admit" : "deny") + ")";
  return out;
}

// The gates that failed: "cpu/psi 0.31>0.24, memory/fit_error 0.20>0.10".
std::string failedGates(const Json& d) {
  std::string out;
  for (const Json& g : items(d, "gates")) {
    if (g.value("passed", true)) continue;
    const bool minimum = text(g, "gate") == "isolation";
    if (!out.empty()) out += ", ";
    out += text(g, "resource") + "/" + text(g, "gate") + " " + fixed(number(g, "value")) +
           (minimum ? "<" : ">") + fixed(number(g, "threshold"));
  }
  return out;
}

std::string outcomeKinds(const Json& d) {
  std::string out;
  for (const Json& o : items(d, "outcomes")) {
    if (!out.empty()) out += ",";
    out += text(o, "kind");
  }
  return out.empty() ? "pending" : out;
}

std::string podOf(const Json& d) {
  std::string pod = text(d, "pod");
  const Json& owner = d.contains("owner") ? d["owner"] : Json();
  if (pod.empty() && owner.is_object()) pod = text(owner, "name");
  return pod;
}

// What an outcome says about the decision, for a person.
std::string meaning(const Json& d, const std::string& kind) {
  const bool verdict = d.value("verdict", true);
  if (kind == "node_fine")
    return verdict ? "the node stayed out of trouble over the horizon"
                   : "the node stayed out of trouble: the denial was not needed (a miss)";
  if (kind == "node_trouble")
    return verdict ? "the node went into trouble after the admission (a falsification)"
                   : "the node went into trouble: the denial was right";
  if (kind == "ready") return "the pod became Ready";
  if (kind == "oom_killed") return "a container was OOM-killed";
  if (kind == "evicted") return "the pod was evicted";
  if (kind == "crash_looping") return "a container is crash-looping";
  if (kind == "preempted") return "the pod was preempted";
  if (kind == "failed") return "the pod failed";
  return kind;
}

// YAML: plain scalars where YAML 1.1/1.2 read them back as the same string, quoted otherwise.
void emit(YAML::Emitter& e, const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      e << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        e << YAML::Key << k << YAML::Value;
        emit(e, v);
      }
      e << YAML::EndMap;
      break;
    case Json::value_t::array:
      e << YAML::BeginSeq;
      for (const Json& v : j)
        emit(e, v);
      e << YAML::EndSeq;
      break;
    case Json::value_t::string: {
      const std::string s = j.get<std::string>();
      // yaml-cpp quotes what needs quoting for structure; words YAML 1.1 reads as booleans or
      // null are quoted too, and so is whatever begins as a number, a timestamp or a
      // sexagesimal would ("0.10", "2026-12-07T10:00:00Z", "1:20"), as kubectl's YAML does.
      static const std::set<std::string> kAmbiguous = {
          "y",    "Y",     "yes",   "Yes",   "YES",  "n",    "N",    "no",   "No",
          "NO",   "on",    "On",    "ON",    "off",  "Off",  "OFF",  "true", "True",
          "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~",    ""};
      const bool numberLike = !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) ||
                                             s[0] == '+' || s[0] == '-' || s[0] == '.');
      if (kAmbiguous.contains(s) || numberLike)
        e << YAML::DoubleQuoted << s;
      else
        e << s;
      break;
    }
    case Json::value_t::boolean:
      e << j.get<bool>();
      break;
    case Json::value_t::null:
      e << YAML::Null;
      break;
    default:
      e << j.dump();  // numbers as JSON writes them
  }
}

}  // namespace

Result<Invocation> parseArgs(const std::vector<std::string>& args,
                             const std::function<std::string(const char*)>& env) {
  Invocation inv;
  inv.pi0Namespace = env("PI0_NAMESPACE");
  if (inv.pi0Namespace.empty()) inv.pi0Namespace = "pi0-system";
  inv.service = env("PI0_SERVICE");
  if (inv.service.empty()) inv.service = "pi0-operator";
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      if (inv.command.empty())
        inv.command = arg;
      else
        inv.args.push_back(arg);
      continue;
    }
    std::string name = arg, value;
    bool inlineValue = false;
    if (const auto eq = arg.find('='); eq != std::string::npos && arg.starts_with("--")) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    } else if (arg.size() > 2 && arg[1] != '-' && findFlag(arg.substr(0, 2)) &&
               findFlag(arg.substr(0, 2))->takesValue) {
      name = arg.substr(0, 2);  // -nshop, -ojson
      value = arg.substr(2);
      inlineValue = true;
    }
    if (among(name, kKubectlSwitches)) {
      inv.kubectlFlags.push_back(arg);
      continue;
    }
    const bool kubectlFlag = among(name, kKubectlValueFlags);
    const PluginFlag* flag = findFlag(name);
    if (!kubectlFlag && !flag)
      return fail("unknown flag " + name + " (kubectl pi0 --help lists the flags)");
    const bool takesValue = kubectlFlag || flag->takesValue;
    if (takesValue && !inlineValue) {
      if (i + 1 >= args.size()) return fail(name + " needs a value");
      value = args[++i];
    } else if (!takesValue && inlineValue) {
      return fail(name + " takes no value");
    }
    if (kubectlFlag) {
      inv.kubectlFlags.push_back(name + "=" + value);
      continue;
    }
    const std::string f = flag->name;
    if (f == "--namespace") {
      inv.ns = value;
    } else if (f == "--all-namespaces") {
      inv.allNamespaces = true;
    } else if (f == "--output") {
      if (value == "json")
        inv.output = Output::kJson;
      else if (value == "yaml")
        inv.output = Output::kYaml;
      else if (value == "table" || value == "wide")
        inv.output = Output::kTable;
      else
        return fail("-o " + value + ": use json, yaml or table");
    } else if (f == "--pi0-namespace") {
      inv.pi0Namespace = value;
    } else if (f == "--service") {
      inv.service = value;
    } else if (f == "--since") {
      inv.since = value;
    } else if (f == "--node") {
      inv.node = value;
    } else if (f == "--channel") {
      inv.channel = value;
    } else if (f == "--limit") {
      std::size_t v = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || end != value.data() + value.size() || v < 1 || v > 1000)
        return fail("--limit " + value + ": a whole number in 1..1000");
      inv.limit = v;
    } else if (f == "--actions") {
      inv.actions = true;
    } else if (f == "--help") {
      inv.help = true;
    }
  }
  if (inv.help) return inv;
  if (inv.command.empty() || inv.command == "help") {
    inv.help = true;
    return inv;
  }
  if (!among(inv.command, kCommands) && inv.command != "__complete")
    return fail("unknown command \"" + inv.command +
                "\": use why, ledger, plan, seen, calibration or completion");
  if (inv.allNamespaces && !inv.ns.empty())
    return fail("-A and -n go apart: -A asks about every namespace");
  auto arity = [&](std::size_t min, std::size_t max, const char* what) -> Result<void> {
    if (inv.args.size() < min || inv.args.size() > max) return fail(inv.command + " takes " + what);
    return {};
  };
  Result<void> ok;
  if (inv.command == "why")
    ok = arity(1, 1,
               "one pod or controller: kubectl pi0 why POD, or deployment/NAME, "
               "statefulset/NAME, replicaset/NAME, job/NAME, daemonset/NAME");
  else if (inv.command == "ledger")
    ok = arity(0, 0, "no words, only flags: --since, --node, --channel, -n or -A, --actions");
  else if (inv.command == "plan" || inv.command == "calibration")
    ok = arity(0, 1, "at most one name");
  else if (inv.command == "seen")
    ok = arity(0, 1, "at most one node: kubectl pi0 seen NODE (no node: the archetypes)");
  else if (inv.command == "completion")
    ok = arity(1, 1, "one shell: kubectl pi0 completion bash (or zsh)");
  if (!ok) return fail(ok.error().message);
  if (inv.command == "why") {
    const std::string& target = inv.args[0];
    if (const auto slash = target.find('/'); slash != std::string::npos) {
      const std::string kind = target.substr(0, slash);
      if (kind != "pod" && kind != "pods" && kind != "po" && controllerKind(kind).empty())
        return fail("why " + target + ": \"" + kind +
                    "\" is not a kind Pi0 records: use pod, deployment, statefulset, "
                    "replicaset, job or daemonset");
      if (slash + 1 == target.size()) return fail("why " + target + ": the name is missing");
    }
  }
  if (inv.actions && inv.command != "ledger")
    return fail("--actions belongs to kubectl pi0 ledger");
  return inv;
}

std::string usage() {
  return R"(kubectl pi0: ask Pi0 why it decided what it did.

Usage:
  kubectl pi0 why POD|KIND/NAME [-n NS]     the admission decisions about a pod or a controller's
                                            pods (deployment, statefulset, replicaset, job,
                                            daemonset): the gates, the node, what followed
  kubectl pi0 ledger [--since 1h] [--node NODE] [--channel NS/NAME] [-n NS | -A] [--limit N]
                                            the decisions, newest first
  kubectl pi0 ledger --actions [--since 1h]  the ShutdownMatrices' steps
  kubectl pi0 plan [MATRIX] [-n NS]         what each ShutdownMatrix will do next and why
  kubectl pi0 seen [NODE]                   whether the fingerprint memory has seen the node's
                                            state before, and what followed it then; without a
                                            node, the memory's archetypes
  kubectl pi0 calibration [GATEPOLICY]      the gates' thresholds, their evidence and history
                                            (the GatePolicy "default" unless named)
  kubectl pi0 completion bash|zsh           a completion script for kubectl-pi0

Flags:
  -n, --namespace NS        the namespace asked about (default: the context's)
  -A, --all-namespaces      every namespace (ledger, plan)
  -o, --output FORMAT       table (default), json or yaml
      --since WHEN          decisions at or after WHEN: a duration before now (1h, 30m) or an
                            RFC 3339 time
      --node NODE, --channel NS/NAME, --limit N (1..1000)
      --pi0-namespace NS    where Pi0 runs (default $PI0_NAMESPACE, else pi0-system)
      --service NAME        pi0-operator's Service (default $PI0_SERVICE, else pi0-operator)
  kubectl's own flags (--kubeconfig, --context, --as, --request-timeout, ...) are passed on.

Access: the decisions come from pi0-operator through the apiserver's service proxy; asking needs
`get` on services/proxy of the operator's Service (the chart's Role <release>-query). plan and
calibration read the ShutdownMatrices and the GatePolicy (the chart's ClusterRole
<release>-reader).
)";
}

std::string proxyPath(const Invocation& inv, std::string_view path,
                      const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out = "/api/v1/namespaces/" + urlEncode(inv.pi0Namespace) +
                    "/services/https:" + urlEncode(inv.service) + ":query/proxy" +
                    std::string(path);
  char sep = '?';
  for (const auto& [k, v] : params) {
    out += sep + urlEncode(k) + "=" + urlEncode(v);
    sep = '&';
  }
  return out;
}

std::string controllerKind(std::string_view word) {
  std::string w(word);
  std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
  if (w == "deployment" || w == "deployments" || w == "deploy") return "Deployment";
  if (w == "statefulset" || w == "statefulsets" || w == "sts") return "StatefulSet";
  if (w == "replicaset" || w == "replicasets" || w == "rs") return "ReplicaSet";
  if (w == "job" || w == "jobs") return "Job";
  if (w == "daemonset" || w == "daemonsets" || w == "ds") return "DaemonSet";
  return "";
}

std::string decisionsTable(const Json& list, bool withNamespace) {
  const Json& decisions = items(list, "decisions");
  if (decisions.empty()) return "No decisions found.\n";
  std::vector<std::string> headers = {"TIME",   "POD",    "CHANNEL",      "NODE",
                                      "RESULT", "REASON", "FAILED GATES", "OUTCOMES"};
  if (withNamespace) headers.insert(headers.begin() + 1, "NAMESPACE");
  Table t(headers);
  for (const Json& d : decisions) {
    std::vector<std::string> row = {shortTime(text(d, "at")),
                                    orDash(podOf(d)),
                                    orDash(text(d, "channel")),
                                    orDash(text(d, "node")),
                                    resultOf(d) + (d.value("holdout", false) ? " holdout" : ""),
                                    text(d, "reason"),
                                    orDash(failedGates(d)),
                                    outcomeKinds(d)};
    if (withNamespace) row.insert(row.begin() + 1, text(d, "namespace"));
    t.add(std::move(row));
  }
  return t.str();
}

std::string whyReport(const Json& list, std::string_view target) {
  const Json& decisions = items(list, "decisions");
  if (decisions.empty())
    return "No decisions about " + std::string(target) +
           " in the ledger: its pods were not reviewed by pi0-webhook (their namespace not "
           "selected, or a pod older than the ledger's retention), or the review is still on "
           "its way (a webhook replica sends its decisions within seconds).\n";
  std::string out;
  for (const Json& d : decisions) {
    const Json& owner = d.contains("owner") ? d["owner"] : Json();
    out += shortTime(text(d, "at")) + "  " + text(d, "namespace") + "/" + podOf(d);
    if (owner.is_object() && !text(owner, "kind").empty())
      out += " (" + text(owner, "kind") + " " + text(owner, "name") + ")";
    out += "\n  " + resultOf(d) + " by " + text(d, "mode") + ": " + text(d, "reason");
    if (d.value("holdout", false)) out += " (judged with the fixed thresholds: the holdout)";
    out += "\n";
    const std::string node = text(d, "node");
    out += "  node: " + (node.empty() ? std::string("none could host it") : node) + ", of " +
           text(d, "candidates", "0") + " candidate(s)";
    if (!text(d, "channel").empty()) out += "; channel " + text(d, "channel");
    out += "\n";
    if (!items(d, "gates").empty()) {
      Table t({"    GATE", "VALUE", "THRESHOLD", ""});
      for (const Json& g : items(d, "gates")) {
        const bool minimum = text(g, "gate") == "isolation";
        t.add({"    " + text(g, "resource") + "/" + text(g, "gate"), fixed(number(g, "value")),
               (minimum ? ">= " : "<= ") + fixed(number(g, "threshold")),
               g.value("passed", true) ? "passed" : "FAILED"});
      }
      out += t.str();
    }
    if (items(d, "outcomes").empty()) {
      out += "  then: nothing yet (the node is judged when the horizon has passed)\n";
    } else {
      for (const Json& o : items(d, "outcomes")) {
        out += "  then, " + shortTime(text(o, "at")) + ": " + text(o, "kind") + ": " +
               meaning(d, text(o, "kind"));
        if (!text(o, "detail").empty()) out += " (" + text(o, "detail") + ")";
        out += "\n";
      }
    }
    out += "\n";
  }
  return out;
}

std::string actionsTable(const Json& list) {
  const Json& actions = items(list, "actions");
  if (actions.empty()) return "No steps found.\n";
  Table t({"TIME", "MATRIX", "ACTION", "CHANNEL", "LEVEL", "LOAD", "TARGET"});
  for (const Json& a : actions) {
    const double load = number(a, "load", -1);
    t.add({shortTime(text(a, "at")), text(a, "matrix"), text(a, "action"),
           orDash(text(a, "channel")), orDash(text(a, "level")), load < 0 ? "-" : fixed(load),
           text(a, "target")});
  }
  return t.str();
}

std::string planReport(const Json& matrices) {
  const Json& list = matrices.is_object() && matrices.value("kind", "") == "ShutdownMatrix"
                         ? Json::array({matrices})
                         : items(matrices, "items");
  if (list.empty()) return "No ShutdownMatrices found.\n";
  std::string out;
  for (const Json& m : list) {
    const Json& meta = m.contains("metadata") ? m["metadata"] : Json();
    const Json& s = m.contains("status") ? m["status"] : Json();
    out += "ShutdownMatrix " + text(meta, "namespace") + "/" + text(meta, "name") + "\n";
    if (!s.is_object()) {
      out +=
          "  no status yet: the operator has not reconciled it (is pi0-operator running and "
          "leading?)\n\n";
      continue;
    }
    const double load = number(s, "load"), anticipated = number(s, "anticipatedLoad");
    out += "  level " + text(s, "level", "?");
    if (!text(s, "levelCause").empty()) out += " (" + text(s, "levelCause") + ")";
    out += ", load " + (std::isnan(load) ? std::string("unmeasured") : fixed(load));
    if (!std::isnan(anticipated)) out += ", anticipated " + fixed(anticipated);
    if (!text(s, "systemState").empty()) out += ", system " + text(s, "systemState");
    out += "\n";
    const Json& plan = items(s, "plan");
    if (plan.empty()) {
      out += "  next: nothing: every channel is where the level wants it\n";
    } else {
      out += "  next:\n";
      Table t({"    STEP", "ACTION", "CHANNEL", "TARGETS", "WHY"});
      for (const Json& p : plan) {
        const Json& c = p.contains("channel") ? p["channel"] : Json();
        std::string targets;
        for (const Json& target : items(p, "targets")) {
          if (!targets.empty()) targets += ",";
          targets += target.is_string() ? target.get<std::string>() : target.dump();
        }
        t.add({"    " + text(p, "step"), text(p, "action"),
               text(c, "namespace") + "/" + text(c, "name"), orDash(targets), text(p, "reason")});
      }
      out += t.str();
    }
    if (!items(s, "channels").empty()) {
      out += "  channels:\n";
      Table t({"    CHANNEL", "STATE", "TARGET", "RESTORING"});
      for (const Json& c : items(s, "channels")) {
        const Json& ref = c.contains("channel") ? c["channel"] : Json();
        t.add({"    " + text(ref, "namespace") + "/" + text(ref, "name"), text(c, "state"),
               text(c, "target"), c.value("restoring", false) ? "yes" : "no"});
      }
      out += t.str();
    }
    const Json& progress = s.contains("progress") ? s["progress"] : Json();
    for (const Json& c : items(progress, "cooldowns")) {
      const Json& ref = c.contains("channel") ? c["channel"] : Json();
      out += "  held: " + text(ref, "namespace") + "/" + text(ref, "name") + " until " +
             text(c, "until") + ": " + text(c, "reason") + "\n";
    }
    for (const Json& c : items(s, "conditions"))
      if (text(c, "status") == "True" || text(c, "type") == "StabilityReachable")
        out += "  " + text(c, "type") + "=" + text(c, "status") + " (" + text(c, "reason") +
               "): " + text(c, "message") + "\n";
    out += "\n";
  }
  return out;
}

std::string calibrationReport(const Json& policy) {
  const Json& spec = policy.contains("spec") ? policy["spec"] : Json();
  const Json& s = policy.contains("status") ? policy["status"] : Json();
  const Json& meta = policy.contains("metadata") ? policy["metadata"] : Json();
  std::string out = "GatePolicy " + text(meta, "name") + ": mode " + text(spec, "mode", "?");
  if (!s.is_object()) return out + "\n  no status yet: the operator has not calibrated it\n";
  if (!text(s, "lastCalibrationTime").empty())
    out += ", last round " + text(s, "lastCalibrationTime");
  out += "\n";
  for (const Json& c : items(s, "conditions"))
    out += "  " + text(c, "type") + "=" + text(c, "status") + " (" + text(c, "reason") +
           "): " + text(c, "message") + "\n";
  // One row per gate: fixed, in force, recommended, and the evidence (the calibrated decisions,
  // those admitted near the threshold, and the holdout's apart).
  struct Row {
    std::string fixed = "-", inForce = "-", recommended = "-", admitted = "-", near = "-",
                denied = "-", holdout = "-";
  };
  // The gates in their order; the evidence names them as the ledger does, the thresholds as
  // the API's fields.
  const std::pair<const char*, const char*> gates[] = {{"fit_error", "fitError"},
                                                       {"gluing_delta", "gluingDelta"},
                                                       {"psi", "psi"},
                                                       {"isolation", "isolation"}};
  std::vector<std::pair<std::string, Row>> rows;
  for (const auto& [gate, field] : gates) {
    Row r;
    if (s.contains("fixedThresholds")) r.fixed = fixed(number(s["fixedThresholds"], field));
    if (s.contains("thresholds")) r.inForce = fixed(number(s["thresholds"], field));
    rows.emplace_back(gate, r);
  }
  auto row = [&](const std::string& gate) -> Row& {
    for (auto& [g, r] : rows)
      if (g == gate) return r;
    return rows.emplace_back(gate, Row{}).second;
  };
  std::string reasons;
  for (const Json& rec : items(s, "recommendation")) {
    const std::string g = text(rec, "gate");
    row(g).recommended = fixed(number(rec, "recommended")) + " " + text(rec, "move");
    if (!text(rec, "reason").empty()) reasons += "    " + g + ": " + text(rec, "reason") + "\n";
  }
  const Json& evidence = s.contains("evidence") ? s["evidence"] : Json();
  for (const Json& e : items(evidence, "gates")) {
    Row& r = row(text(e, "gate"));
    auto share = [&](const char* part, const char* whole) {
      return text(e, part, "0") + "/" + text(e, whole, "0");
    };
    r.admitted = share("falsified", "admitted");
    r.near = share("nearFalsified", "nearAdmitted");
    r.denied = share("missed", "denied");
    if (e.contains("holdout") && e["holdout"].is_object()) {
      const Json& h = e["holdout"];
      r.holdout = text(h, "falsified", "0") + "/" + text(h, "admitted", "0") + " " +
                  text(h, "missed", "0") + "/" + text(h, "denied", "0");
    }
  }
  Table t({"  GATE", "FIXED", "IN FORCE", "FALSIFIED/ADMITTED", "NEAR (F/A)", "MISSED/DENIED",
           "HOLDOUT (F/A M/D)", "RECOMMENDED"});
  for (const auto& [gate, r] : rows)
    t.add(
        {"  " + gate, r.fixed, r.inForce, r.admitted, r.near, r.denied, r.holdout, r.recommended});
  out += t.str();
  if (!reasons.empty()) out += "  why:\n" + reasons;
  const Json& history = items(s, "history");
  if (!history.empty()) {
    out += "  history (newest last):\n";
    const std::size_t from = history.size() > 10 ? history.size() - 10 : 0;
    for (std::size_t i = from; i < history.size(); ++i) {
      const Json& h = history[i];
      out += "    " + text(h, "time") + "  " + text(h, "gate") + " " + fixed(number(h, "from")) +
             " -> " + fixed(number(h, "to")) + ": " + text(h, "reason") + "\n";
    }
  }
  return out;
}

std::string seenReport(const Json& a) {
  std::string out = "node " + text(a, "node") + ", its state at " + shortTime(text(a, "at")) +
                    ", against " + text(a, "entries", "0") + " remembered states:\n";
  const int matches = a.value("matches", 0);
  if (matches == 0) {
    out += "  not seen before (no remembered state at least " + fixed(number(a, "minSimilarity")) +
           " similar)\n";
  } else {
    out += "  seen before: " + std::to_string(matches) + " similar state(s), " +
           text(a, "troubleMatches", "0") + " followed by trouble (" +
           fixed(100 * number(a, "troubleShare"), 0) + " % of the time they stand for)" +
           (a.value("troubled", false) ? ": TROUBLE LIKELY" : "") + "\n";
  }
  const Json& nearest = items(a, "nearest");
  if (!nearest.empty()) {
    Table t({"  SIMILARITY", "NODE", "TIME", "LABEL", "FOLLOWED BY TROUBLE", "STANDS FOR"});
    for (const Json& m : nearest)
      t.add({"  " + fixed(number(m, "similarity"), 3), text(m, "node"), shortTime(text(m, "at")),
             text(m, "label"), m.value("followedByTrouble", false) ? "yes" : "no",
             std::isfinite(number(m, "weightSeconds")) ? fixed(number(m, "weightSeconds"), 0) + " s"
                                                       : std::string("-")});
    out += t.str();
  }
  return out;
}

std::string archetypesReport(const Json& list) {
  const Json& archetypes = items(list, "archetypes");
  if (archetypes.empty())
    return "The fingerprint memory is empty: it fills as the leader polls nodes (calm states "
           "after the outcome horizon, states before and at trouble when it comes).\n";
  std::string out = "The fingerprint memory's " + std::to_string(archetypes.size()) +
                    " archetype(s) over " + text(list, "entries", "0") + " states:\n";
  Table t({"  ARCHETYPE", "STATES", "FOLLOWED BY TROUBLE", "STRONGEST FEATURES"});
  for (std::size_t i = 0; i < archetypes.size(); ++i) {
    const Json& a = archetypes[i];
    t.add({"  " + std::to_string(i + 1), text(a, "members", "0"),
           fixed(100 * number(a, "troubleRatio", 0), 0) + " %", orDash(text(a, "features"))});
  }
  return out + t.str();
}

std::string toYaml(const Json& value) {
  YAML::Emitter e;
  emit(e, value);
  return std::string(e.c_str()) + "\n";
}

std::vector<std::string> complete(
    const std::vector<std::string>& words,
    const std::function<std::vector<std::string>(const char*)>& names) {
  const std::string current = words.empty() ? "" : words.back();
  std::vector<std::string> candidates;
  const std::string previous = words.size() >= 2 ? words[words.size() - 2] : "";
  std::string command;
  std::size_t positionals = 0;
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.starts_with("-")) {
      const PluginFlag* f = findFlag(w);
      if ((f && f->takesValue && w.find('=') == std::string::npos) || among(w, kKubectlValueFlags))
        ++i;  // its value
      continue;
    }
    if (command.empty())
      command = w;
    else
      ++positionals;
  }
  if (previous == "-o" || previous == "--output") {
    candidates = {"table", "json", "yaml"};
  } else if (previous == "-n" || previous == "--namespace" || previous == "--pi0-namespace") {
    candidates = names("namespaces");
  } else if (previous == "--node") {
    candidates = names("nodes");
  } else if (current.starts_with("-")) {
    for (const PluginFlag& f : kFlags)
      candidates.push_back(f.name);
  } else if (command.empty()) {
    for (const char* c : kCommands)
      candidates.push_back(c);
  } else if (positionals == 0) {
    if (command == "seen") candidates = names("nodes");
    if (command == "plan") candidates = names("shutdownmatrices");
    if (command == "calibration") candidates = names("gatepolicies");
    if (command == "completion") candidates = {"bash", "zsh"};
    if (command == "why") {
      candidates = names("pods");
      for (const char* k : {"deployment/", "statefulset/", "replicaset/", "job/", "daemonset/"})
        candidates.push_back(k);
    }
  }
  std::erase_if(candidates, [&](const std::string& c) { return !c.starts_with(current); });
  return candidates;
}

Result<std::string> completionScript(std::string_view shell) {
  // Both shells ask kubectl-pi0 itself (`kubectl-pi0 __complete WORDS...`), which prints one
  // candidate per line and then a directive line (":4", no file names), as kubectl's plugin
  // completion (kubectl_complete-pi0) expects.
  const std::string ask = R"(kubectl-pi0 __complete "${words[@]}" 2>/dev/null | sed '/^:/d')";
  if (shell == "bash")
    return std::string(R"(# kubectl-pi0 completion for bash: source <(kubectl-pi0 completion bash)
# (kubectl itself completes `kubectl pi0 ...` through kubectl_complete-pi0, shipped beside it.)
_kubectl_pi0() {
  local words=("${COMP_WORDS[@]:1:COMP_CWORD}")
  COMPREPLY=($()" + ask +
                       R"())
}
complete -F _kubectl_pi0 kubectl-pi0
)");
  if (shell == "zsh")
    return std::string(R"(#compdef kubectl-pi0
# kubectl-pi0 completion for zsh: source <(kubectl-pi0 completion zsh)
_kubectl_pi0() {
  local -a words_=("${(@)words[2,CURRENT]}")
  local -a candidates=("${(@f)$(kubectl-pi0 __complete "${words_[@]}" 2>/dev/null | sed '/^:/d')}")
  compadd -a candidates
}
compdef _kubectl_pi0 kubectl-pi0
)");
  return fail("completion " + std::string(shell) + ": bash or zsh");
}

}  // namespace pi0::kubectl
