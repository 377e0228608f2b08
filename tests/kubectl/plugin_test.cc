// kubectl pi0's pure part: what the arguments mean, the path through the service proxy, and the
// tables made from what the operator answers (ledger::decisionListJson, the encoder the operator
// uses) and what the API holds (the GatePolicy and ShutdownMatrix status fixtures the operator
// writes).
#include <doctest/doctest.h>

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <sstream>

#include "kubectl-pi0/plugin.h"
#include "ledger/records.h"

using namespace pi0;
using namespace pi0::kubectl;

namespace {

Result<Invocation> parse(std::vector<std::string> args,
                         std::map<std::string, std::string> env = {}) {
  return parseArgs(args, [&](const char* name) { return env.count(name) ? env[name] : ""; });
}

Json fixture(const char* name) {
  std::ifstream in(std::string(PI0_FIXTURES_DIR) + "/kube/" + name);
  REQUIRE(in);
  return Json::parse(in);
}

const ledger::Time kT0 = ledger::Time(std::chrono::milliseconds(1'780'000'000'000));

// A denial on node-a by the cpu psi gate, judged: the node stayed fine (a needless denial).
ledger::StoredDecision deniedThenFine() {
  ledger::StoredDecision s;
  s.seq = 7;
  ledger::Decision& d = s.decision;
  d.id = "pi0-webhook-0/e/7";
  d.at = kT0;
  d.replica = "pi0-webhook-0";
  d.ns = "shop";
  d.pod = "web-7d9f-";
  d.podUid = "uid-7";
  d.ownerKind = "ReplicaSet";
  d.ownerName = "web-7d9f";
  d.channel = "shop/web";
  d.mode = "Enforce";
  d.allowed = false;
  d.verdict = false;
  d.reason = "GatesFailed";
  d.node = "node-a";
  d.candidates = 3;
  d.gates = {{"cpu", "fit_error", 0.04, 0.10, 0, true}, {"cpu", "psi", 0.31, 0.24, 0, false}};
  s.outcomes = {{"node_fine", kT0 + std::chrono::minutes(15), "no trouble over 15m"}};
  return s;
}

}  // namespace

TEST_CASE("arguments: commands, flags in every spelling, kubectl's own flags passed on") {
  auto inv = parse({"why", "deployment/web", "-nshop", "--output=yaml", "--context", "prod",
                    "--kubeconfig=/k", "--insecure-skip-tls-verify"});
  REQUIRE(inv);
  CHECK(inv->command == "why");
  CHECK(inv->args == std::vector<std::string>{"deployment/web"});
  CHECK(inv->ns == "shop");
  CHECK(inv->output == Output::kYaml);
  CHECK(inv->kubectlFlags == std::vector<std::string>{"--context=prod", "--kubeconfig=/k",
                                                      "--insecure-skip-tls-verify"});
  CHECK(inv->pi0Namespace == "pi0-system");
  CHECK(inv->service == "pi0-operator");

  auto ledger = parse({"ledger", "-A", "--since", "1h", "--node", "node-a", "--limit", "5",
                       "--pi0-namespace", "ops"},
                      {{"PI0_SERVICE", "stab-operator"}});
  REQUIRE(ledger);
  CHECK(ledger->allNamespaces);
  CHECK(ledger->since == "1h");
  CHECK(ledger->node == "node-a");
  CHECK(ledger->limit == 5);
  CHECK(ledger->pi0Namespace == "ops");
  CHECK(ledger->service == "stab-operator");

  CHECK(parse({})->help);
  CHECK(parse({"ledger", "-h"})->help);
}

TEST_CASE("arguments: mistakes say what to type instead") {
  auto error = [](std::vector<std::string> args) {
    auto inv = parse(std::move(args));
    REQUIRE_FALSE(inv);
    return inv.error().message;
  };
  CHECK(error({"wy", "x"}).find("unknown command \"wy\"") == 0);
  CHECK(error({"why"}).find("why takes one pod or controller") == 0);
  CHECK(error({"why", "cronjob/nightly"}).find("\"cronjob\" is not a kind Pi0 records") !=
        std::string::npos);
  CHECK(error({"why", "deployment/"}) == "why deployment/: the name is missing");
  CHECK(error({"ledger", "-o", "xml"}) == "-o xml: use json, yaml or table");
  CHECK(error({"ledger", "--limit", "0"}) == "--limit 0: a whole number in 1..1000");
  CHECK(error({"ledger", "-A", "-n", "shop"}).find("-A and -n go apart") == 0);
  CHECK(error({"ledger", "--frobnicate"}).find("unknown flag --frobnicate") == 0);
  CHECK(error({"ledger", "--node"}) == "--node needs a value");
  CHECK(error({"plan", "--actions"}) == "--actions belongs to kubectl pi0 ledger");
  CHECK(error({"seen", "a", "b"}).find("seen takes at most one node") == 0);
}

TEST_CASE("the service proxy's path, with the parameters encoded") {
  auto inv = parse({"ledger", "--pi0-namespace", "pi0-system"});
  REQUIRE(inv);
  CHECK(proxyPath(*inv, "/query/decisions", {{"channel", "shop/web"}, {"since", "1h"}}) ==
        "/api/v1/namespaces/pi0-system/services/https:pi0-operator:query/proxy/query/"
        "decisions?channel=shop%2Fweb&since=1h");
  CHECK(controllerKind("deploy") == "Deployment");
  CHECK(controllerKind("StatefulSets") == "StatefulSet");
  CHECK(controllerKind("cronjob").empty());
}

TEST_CASE("ledger and why: the failed gate, the verdict and what the outcome means") {
  const std::vector<ledger::StoredDecision> stored = {deniedThenFine()};
  const Json list = Json::parse(ledger::decisionListJson(stored));

  const std::string table = decisionsTable(list, true);
  INFO(table);
  CHECK(table.find("TIME") == 0);
  CHECK(table.find("NAMESPACE") != std::string::npos);
  CHECK(table.find("cpu/psi 0.31>0.24") != std::string::npos);
  CHECK(table.find("denied") != std::string::npos);
  CHECK(table.find("node_fine") != std::string::npos);
  CHECK(table.find("cpu/fit_error") == std::string::npos);  // it passed

  const std::string why = whyReport(list, "shop/deployment/web");
  INFO(why);
  CHECK(why.find("shop/web-7d9f- (ReplicaSet web-7d9f)") != std::string::npos);
  CHECK(why.find("denied by Enforce: GatesFailed") != std::string::npos);
  CHECK(why.find("node: node-a, of 3 candidate(s); channel shop/web") != std::string::npos);
  CHECK(why.find("FAILED") != std::string::npos);
  CHECK(why.find("the denial was not needed (a miss)") != std::string::npos);

  CHECK(decisionsTable(Json::parse(R"({"decisions": []})"), false) == "No decisions found.\n");
  CHECK(whyReport(Json::parse(R"({"decisions": []})"), "shop/web-1")
            .find("No decisions about shop/web-1") == 0);
}

TEST_CASE("an admission that Warn let through, and one still waiting for its verdict") {
  ledger::StoredDecision s = deniedThenFine();
  s.decision.mode = "Warn";
  s.decision.allowed = true;
  s.outcomes.clear();
  const std::vector<ledger::StoredDecision> stored = {s};
  const Json list = Json::parse(ledger::decisionListJson(stored));
  CHECK(decisionsTable(list, false).find("allowed (Warn: would deny)") != std::string::npos);
  CHECK(decisionsTable(list, false).find("pending") != std::string::npos);
  CHECK(whyReport(list, "x").find("then: nothing yet") != std::string::npos);
}

TEST_CASE("ledger --actions: the matrix's steps") {
  const std::vector<ledger::Action> actions = {
      {"shop/m/3/1", kT0, "shop/m", "shop/batch", "shutdown",
       "scale Deployment shop/batch to 0 replicas", "high", 0.93},
      {"shop/m/3/2", kT0, "shop/m", "shop/batch", "restore", "scale back", "normal", -1}};
  const std::string t = actionsTable(Json::parse(ledger::actionListJson(actions)));
  INFO(t);
  CHECK(t.find("shutdown") != std::string::npos);
  CHECK(t.find("0.93") != std::string::npos);
  CHECK(t.find("scale Deployment shop/batch to 0 replicas") != std::string::npos);
  CHECK(actionsTable(Json::parse(R"({"actions": []})")) == "No steps found.\n");
}

TEST_CASE("calibration: fixed and calibrated thresholds, the evidence and the history") {
  Json policy = fixture("gatepolicy_status.json");
  policy["metadata"] = {{"name", "default"}};
  policy["spec"] = {{"mode", "Auto"}};
  const std::string r = calibrationReport(policy);
  INFO(r);
  CHECK(r.find("GatePolicy default: mode Auto") == 0);
  CHECK(r.find("EnoughEvidence=False (InsufficientEvidence)") != std::string::npos);
  // fit_error: fixed 0.10, in force as the fixture says, 61 of 812 admissions falsified, 2 of 40
  // denials missed, the holdout apart.
  CHECK(r.find("fit_error") != std::string::npos);
  CHECK(r.find("61/812") != std::string::npos);
  CHECK(r.find("NEAR (F/A)") != std::string::npos);
  CHECK(r.find("14/120") != std::string::npos);  // falsified of those admitted near the threshold
  CHECK(r.find("2/40") != std::string::npos);
  CHECK(r.find("4/41 1/2") != std::string::npos);
  CHECK(r.find("0.09 Tighten") != std::string::npos);
  CHECK(r.find("psi 0.25 -> 0.24") != std::string::npos);
  Json empty = {{"metadata", {{"name", "default"}}}, {"spec", {{"mode", "Recommend"}}}};
  CHECK(calibrationReport(empty).find("no status yet") != std::string::npos);
}

TEST_CASE("plan: the level, the next steps and why, the channels") {
  Json matrix = fixture("matrix_status.json");
  matrix["kind"] = "ShutdownMatrix";
  matrix["metadata"] = {{"namespace", "shop"}, {"name", "m"}};
  const std::string r = planReport(matrix);
  INFO(r);
  CHECK(r.find("ShutdownMatrix shop/m") == 0);
  CHECK(r.find("level high (Anticipated), load 0.87, anticipated 0.90") != std::string::npos);
  CHECK(r.find("Shutdown") != std::string::npos);
  CHECK(r.find("Deployment/batch") != std::string::npos);
  CHECK(r.find("level high") != std::string::npos);
  CHECK(r.find("held: shop/batch until") != std::string::npos);
  CHECK(r.find("RolledBack=True (StepMadeThingsWorse)") != std::string::npos);
  CHECK(planReport(Json::parse(R"({"kind": "List", "items": []})")) ==
        "No ShutdownMatrices found.\n");
}

TEST_CASE("seen: the verdict and the nearest remembered states") {
  const Json a = Json::parse(R"({"node": "node-a", "at": "2026-12-07T10:00:00.000Z",
    "entries": 120, "minSimilarity": 0.95, "matches": 4, "troubleMatches": 3,
    "troubleShare": 0.75, "troubled": true,
    "nearest": [{"node": "node-b", "at": "2026-12-06T09:00:00.000Z", "label": "before_trouble",
                 "followedByTrouble": true, "similarity": 0.987, "weightSeconds": 10}]})");
  const std::string r = seenReport(a);
  INFO(r);
  CHECK(r.find("4 similar state(s), 3 followed by trouble (75 % of the time they stand for): "
               "TROUBLE LIKELY") != std::string::npos);
  CHECK(r.find("10 s") != std::string::npos);
  CHECK(r.find("0.987") != std::string::npos);
  CHECK(r.find("before_trouble") != std::string::npos);

  const std::string archetypes = archetypesReport(Json::parse(R"({"entries": 500, "archetypes": [
    {"members": 400, "troubleRatio": 0.0, "features": "cpu_level memory_level cpu_peak"},
    {"members": 100, "troubleRatio": 0.83, "features": "psi_cpu_level cpu_level cpu_peak"}]})"));
  INFO(archetypes);
  CHECK(archetypes.find("2 archetype(s) over 500 states") != std::string::npos);
  CHECK(archetypes.find("83 %") != std::string::npos);
  CHECK(archetypes.find("psi_cpu_level cpu_level cpu_peak") != std::string::npos);
  CHECK(archetypesReport(Json::parse(R"({"archetypes": []})")).find("memory is empty") !=
        std::string::npos);
}

TEST_CASE("-o yaml reads back as the same values, words YAML would misread quoted") {
  const Json value = Json::parse(R"({"mode": "Off", "threshold": "0.10", "n": 0.1, "ok": true,
    "list": ["a", "yes", ""], "none": null, "nested": {"k": "v: w"},
    "at": "2026-12-07T10:00:00.000Z", "sexagesimal": "1:20"})");
  const std::string yaml = toYaml(value);
  INFO(yaml);
  const YAML::Node back = YAML::Load(yaml);
  CHECK(back["mode"].as<std::string>() == "Off");
  CHECK(back["mode"].Tag() == "!");  // quoted: a string, not YAML 1.1's false
  CHECK(back["threshold"].Tag() == "!");
  CHECK(back["n"].as<double>() == 0.1);
  CHECK(back["ok"].as<bool>());
  CHECK(back["list"][1].as<std::string>() == "yes");
  CHECK(back["list"][2].as<std::string>().empty());
  CHECK(back["none"].IsNull());
  CHECK(back["nested"]["k"].as<std::string>() == "v: w");
  CHECK(back["at"].Tag() == "!");  // YAML 1.1 would read a timestamp
  CHECK(back["sexagesimal"].Tag() == "!");
}

TEST_CASE("completion: commands, flags, values, names from the cluster") {
  std::vector<std::string> asked;
  auto names = [&](const char* kind) {
    asked.push_back(kind);
    return std::vector<std::string>{"node-a", "node-b", "other"};
  };
  CHECK(complete({"c"}, names) == std::vector<std::string>{"calibration", "completion"});
  CHECK(complete({"ledger", "--n"}, names) == std::vector<std::string>{"--namespace", "--node"});
  CHECK(complete({"ledger", "-o", ""}, names) == std::vector<std::string>{"table", "json", "yaml"});
  CHECK(complete({"seen", "node-"}, names) == std::vector<std::string>{"node-a", "node-b"});
  CHECK(asked == std::vector<std::string>{"nodes"});
  CHECK(complete({"seen", "node-a", ""}, names).empty());  // one node only
  CHECK(complete({"-n", "shop", "plan", ""}, names).size() == 3);
  CHECK(asked.back() == "shutdownmatrices");
  auto bash = completionScript("bash");
  REQUIRE(bash);
  CHECK(bash->find("complete -F _kubectl_pi0 kubectl-pi0") != std::string::npos);
  CHECK_FALSE(completionScript("fish"));
}
