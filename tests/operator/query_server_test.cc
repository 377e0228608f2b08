// The operator's query API (operator/query_server.h) over a real SQLite ledger: the parameters
// and their errors, the filters reaching the ledger (a Deployment's pods by their ReplicaSet),
// and the refusals as Kubernetes Status bodies that kubectl prints: not leading, no ledger.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "ledger/ledger.h"
#include "operator/memory_recorder.h"
#include "operator/query_server.h"
#include "temp_dir.h"

using namespace pi0;
using namespace pi0::op;
using Json = nlohmann::json;

namespace {

const ledger::Time kNow = ledger::Time(std::chrono::milliseconds(1'780'000'000'000));

ledger::Decision decision(const std::string& id, const std::string& owner, ledger::Time at) {
  ledger::Decision d;
  d.id = id;
  d.at = at;
  d.replica = "pi0-webhook-0";
  d.ns = "shop";
  d.pod = owner + "-";
  d.podUid = "uid-" + id;
  d.ownerKind = "ReplicaSet";
  d.ownerName = owner;
  d.channel = "shop/web";
  d.mode = "Enforce";
  d.allowed = false;
  d.verdict = false;
  d.reason = "GatesFailed";
  d.node = "node-a";
  d.candidates = 2;
  d.gates = {{"cpu", "psi", 0.31, 0.24, 0, false}};
  return d;
}

net::HttpResponse get(const net::Routes& routes, std::string_view path, std::string_view query) {
  const net::HttpHandler* h = routes.find("GET", path, nullptr);
  REQUIRE(h != nullptr);
  return (*h)(net::HttpRequest{"GET", path, "", 0, query, ""});
}

}  // namespace

TEST_CASE("parameters: each one narrows; mistakes are named") {
  auto q = parseDecisionQuery("namespace=shop&owner=web-7d9f&since=1h&limit=20&node=node-a", kNow);
  REQUIRE(q);
  CHECK(q->ns == "shop");
  CHECK(q->ownerName == "web-7d9f");
  CHECK(q->node == "node-a");
  CHECK(q->limit == 20);
  CHECK(*q->since == kNow - std::chrono::hours(1));
  auto t = parseDecisionQuery("channel=shop%2Fweb&since=2026-12-07T10%3A00%3A00Z", kNow);
  REQUIRE(t);
  CHECK(t->channel == "shop/web");
  CHECK(t->since.has_value());

  auto error = [](std::string_view query) {
    auto r = parseDecisionQuery(query, kNow);
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(error("pod=web-1") == "pod needs namespace");
  CHECK(error("namespace=shop&owner=") == "owner: empty");
  CHECK(error("limit=0") == "limit: \"0\" is not a whole number in 1..1000");
  CHECK(error("since=yesterday").find("since: \"yesterday\" is neither an RFC 3339 time") == 0);
  CHECK(error("nmespace=shop").find("unknown parameter \"nmespace\"") == 0);
  CHECK(error("node=%zz").find("a '%' that is not followed by two hex digits") !=
        std::string::npos);
}

TEST_CASE("GET /query/decisions and /query/actions answer from the ledger while leading") {
  testing::TempDir dir;
  ledger::Options options;
  options.path = dir.path() / "ledger.db";
  auto opened = ledger::Ledger::open(options);
  REQUIRE(opened);
  ledger::Ledger& l = **opened;
  const std::vector<ledger::Decision> decisions = {
      decision("a", "web-7d9f", kNow - std::chrono::minutes(90)),
      decision("b", "web-7d9f", kNow - std::chrono::minutes(10)),
      decision("c", "api-55c8", kNow - std::chrono::minutes(5))};
  REQUIRE(l.record(decisions));
  REQUIRE(l.addOutcome("b", {"node_fine", kNow, "no trouble"}));
  const std::vector<ledger::Action> actions = {
      {"shop/m/1/1", kNow, "shop/m", "shop/batch", "shutdown", "scale", "high", 0.9}};
  REQUIRE(l.record(actions));

  bool leading = true;
  QueryContext context;
  context.ledger = &l;
  context.leading = [&] { return leading; };
  context.notLeader = "this replica does not lead\n";
  context.now = [] { return kNow; };
  net::Routes routes;
  addQueryRoutes(routes, context);

  // A Deployment's pods by their ReplicaSet, in the last hour: only "b", with its outcome.
  auto r = get(routes, "/query/decisions", "namespace=shop&owner=web-7d9f&since=1h");
  REQUIRE(r.status == 200);
  CHECK(r.contentType == "application/json");
  Json body = Json::parse(r.body);
  CHECK(body["kind"] == "DecisionList");
  REQUIRE(body["decisions"].size() == 1);
  CHECK(body["decisions"][0]["id"] == "b");
  CHECK(body["decisions"][0]["outcomes"][0]["kind"] == "node_fine");
  CHECK(body["decisions"][0]["gates"][0]["gate"] == "psi");

  // Everything, newest first, bounded by limit.
  body = Json::parse(get(routes, "/query/decisions", "limit=2").body);
  REQUIRE(body["decisions"].size() == 2);
  CHECK(body["decisions"][0]["id"] == "c");
  CHECK(body["decisions"][1]["id"] == "b");

  body = Json::parse(get(routes, "/query/actions", "since=1h").body);
  REQUIRE(body["actions"].size() == 1);
  CHECK(body["actions"][0]["action"] == "shutdown");

  // Mistakes and refusals are Status objects, so that kubectl prints their message.
  r = get(routes, "/query/decisions", "pod=web");
  CHECK(r.status == 400);
  body = Json::parse(r.body);
  CHECK(body["kind"] == "Status");
  CHECK(body["reason"] == "BadRequest");
  CHECK(body["message"] == "pod needs namespace");
  CHECK(get(routes, "/query/actions", "node=x").status == 400);

  leading = false;
  r = get(routes, "/query/decisions", "");
  CHECK(r.status == 503);
  body = Json::parse(r.body);
  CHECK(body["reason"] == "ServiceUnavailable");
  CHECK(body["message"] == "this replica does not lead");

  QueryContext none = context;
  none.ledger = nullptr;
  net::Routes noLedger;
  addQueryRoutes(noLedger, none);
  r = get(noLedger, "/query/actions", "");
  CHECK(r.status == 503);
  CHECK(Json::parse(r.body)["message"].get<std::string>().find("keeps no truth ledger") !=
        std::string::npos);
}

TEST_CASE("GET /query/seen and /query/archetypes: the memory's answers and refusals") {
  bool leading = true;
  MemoryRecorder recorder;
  // Two states seen twenty times each: calm at a low cpu level, before trouble under cpu
  // pressure (k-means stops seeding once every state is a centroid: two archetypes).
  std::vector<memory::Entry> entries;
  for (int i = 0; i < 20; ++i) {
    std::vector<float> calm(memory::kFeatureDimensions, 0.f), hot(memory::kFeatureDimensions, 0.f);
    calm[memory::featureIndex(memory::Feature::kCpuLevel)] = 0.3f;
    calm[memory::featureIndex(memory::Feature::kMemoryLevel)] = 0.4f;
    hot[memory::featureIndex(memory::Feature::kCpuLevel)] = 0.95f;
    hot[memory::featureIndex(memory::Feature::kPsiCpuLevel)] = 0.5f;
    entries.push_back(
        {"node-a", kNow + std::chrono::seconds(i), memory::Label::kCalm, false, calm});
    entries.push_back(
        {"node-b", kNow + std::chrono::seconds(i), memory::Label::kBeforeTrouble, true, hot});
  }
  REQUIRE(recorder.load(entries) == 40);
  QueryContext context;
  context.leading = [&] { return leading; };
  context.notLeader = "this replica does not lead\n";
  context.memory = &recorder;
  net::Routes routes;
  addQueryRoutes(routes, context);

  auto r = get(routes, "/query/archetypes", "");
  REQUIRE(r.status == 200);
  Json body = Json::parse(r.body);
  CHECK(body["entries"] == 40);
  REQUIRE(body["archetypes"].size() == 2);
  // Each archetype gathers one kind: one all calm, one all followed by trouble.
  std::vector<double> ratios = {body["archetypes"][0]["troubleRatio"],
                                body["archetypes"][1]["troubleRatio"]};
  std::sort(ratios.begin(), ratios.end());
  CHECK(ratios == std::vector<double>{0.0, 1.0});
  for (const Json& a : body["archetypes"]) {
    CHECK(a["members"] == 20);
    const std::string features = a["features"];
    CHECK(features.find(a["troubleRatio"] == 1.0 ? "psi_cpu_level" : "memory_level") !=
          std::string::npos);
  }
  const auto figures = archetypeFigures(recorder);
  REQUIRE(figures.size() == 2);
  CHECK(figures[0].members == 20);

  // A node the recorder has not observed: 404 that says why; no node: 400.
  r = get(routes, "/query/seen", "node=node-z");
  CHECK(r.status == 404);
  CHECK(Json::parse(r.body)["message"].get<std::string>().find("no state of node node-z") == 0);
  CHECK(get(routes, "/query/seen", "").status == 400);
  CHECK(get(routes, "/query/seen", "nod=a").status == 400);

  leading = false;
  CHECK(get(routes, "/query/archetypes", "").status == 503);
  QueryContext none = context;
  none.memory = nullptr;
  net::Routes noMemory;
  addQueryRoutes(noMemory, none);
  r = get(noMemory, "/query/seen", "node=node-a");
  CHECK(r.status == 503);
  CHECK(Json::parse(r.body)["message"].get<std::string>().find("keeps no fingerprint memory") !=
        std::string::npos);
}
