#include "ledger/records.h"

#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json_parse.h"
#include "common/json_reader.h"
#include "common/timestamp.h"

namespace pi0::ledger {
namespace {

using Json = nlohmann::json;
using json::Node;
using json::Reader;

constexpr const char* kApiVersion = "stability.pi0.io/v1alpha1";
constexpr const char* kKind = "DecisionBatch";

// A present `node`; "missing" otherwise. Returns whether it is there.
bool required(Reader& r, const Node& node) {
  if (!node.present() && r.ok()) r.problem(node, "missing");
  return node.present();
}

std::string text(Reader& r, const Node& node) {
  return required(r, node) ? r.string(node) : std::string();
}

bool flag(Reader& r, const Node& node) {
  return required(r, node) && r.boolean(node, false);
}

double finite(Reader& r, const Node& node) {
  if (!required(r, node)) return 0;
  const double v = r.number(node, 0);
  if (r.ok() && !std::isfinite(v)) r.problem(node, "not a finite number");
  return v;
}

Json decisionJson(const Decision& d) {
  Json gates = Json::array();
  for (const GateRecord& g : d.gates)
    gates.push_back({{"resource", g.resource},
                     {"gate", g.gate},
                     {"value", g.value},
                     {"threshold", g.threshold},
                     {"requestShare", g.requestShare},
                     {"passed", g.passed}});
  return Json{{"id", d.id},
              {"at", rfc3339Millis(d.at)},
              {"replica", d.replica},
              {"namespace", d.ns},
              {"pod", d.pod},
              {"podUid", d.podUid},
              {"owner", {{"kind", d.ownerKind}, {"name", d.ownerName}}},
              {"channel", d.channel},
              {"mode", d.mode},
              {"allowed", d.allowed},
              {"verdict", d.verdict},
              {"reason", d.reason},
              {"node", d.node},
              {"candidates", d.candidates},
              {"gates", std::move(gates)},
              {"holdout", d.holdout}};
}

}  // namespace

std::string toJson(std::span<const Decision> decisions) {
  Json list = Json::array();
  for (const Decision& d : decisions)
    list.push_back(decisionJson(d));
  return Json{{"apiVersion", kApiVersion}, {"kind", kKind}, {"decisions", std::move(list)}}.dump();
}

std::string decisionListJson(std::span<const StoredDecision> decisions) {
  Json list = Json::array();
  for (const StoredDecision& stored : decisions) {
    Json item = decisionJson(stored.decision);
    item["seq"] = stored.seq;
    Json outcomes = Json::array();
    for (const Outcome& o : stored.outcomes)
      outcomes.push_back({{"kind", o.kind}, {"at", rfc3339Millis(o.at)}, {"detail", o.detail}});
    item["outcomes"] = std::move(outcomes);
    list.push_back(std::move(item));
  }
  return Json{{"apiVersion", kApiVersion}, {"kind", "DecisionList"}, {"decisions", std::move(list)}}
      .dump();
}

std::string actionListJson(std::span<const Action> actions) {
  Json list = Json::array();
  for (const Action& a : actions)
    list.push_back({{"id", a.id},
                    {"at", rfc3339Millis(a.at)},
                    {"matrix", a.matrix},
                    {"channel", a.channel},
                    {"action", a.action},
                    {"target", a.target},
                    {"level", a.level},
                    {"load", a.load}});
  return Json{{"apiVersion", kApiVersion}, {"kind", "ActionList"}, {"actions", std::move(list)}}
      .dump();
}

Result<std::vector<Decision>> parseDecisions(std::string_view body) {
  auto doc = json::parse(body);
  if (!doc) return fail("decision batch: not JSON: " + doc.error().message);
  Reader r;
  const Node root = Node::root(*doc, "batch");
  if (!r.object(root) || !root.present()) return fail("decision batch: not a JSON object");
  const std::string apiVersion = text(r, root.child("apiVersion"));
  const std::string kind = text(r, root.child("kind"));
  if (r.ok() && (apiVersion != kApiVersion || kind != kKind))
    return fail("decision batch: " + apiVersion + " " + kind + ", expected " + kApiVersion + " " +
                kKind);
  std::vector<Decision> out;
  required(r, root.child("decisions"));
  for (const Node& item : r.items(root.child("decisions"))) {
    if (!r.object(item)) break;
    Decision d;
    d.id = text(r, item.child("id"));
    const Node at = item.child("at");
    const std::string when = text(r, at);
    if (r.ok()) {
      if (auto t = parseRfc3339(when)) {
        d.at = *t;
      } else {
        r.problem(at, "not an RFC 3339 time");
      }
    }
    d.replica = text(r, item.child("replica"));
    d.ns = text(r, item.child("namespace"));
    d.pod = text(r, item.child("pod"));
    d.podUid = text(r, item.child("podUid"));
    const Node owner = item.child("owner");
    if (required(r, owner) && r.object(owner)) {
      d.ownerKind = text(r, owner.child("kind"));
      d.ownerName = text(r, owner.child("name"));
    }
    d.channel = text(r, item.child("channel"));
    d.mode = text(r, item.child("mode"));
    d.allowed = flag(r, item.child("allowed"));
    d.verdict = flag(r, item.child("verdict"));
    d.reason = text(r, item.child("reason"));
    d.node = text(r, item.child("node"));
    if (required(r, item.child("candidates")))
      d.candidates = r.integer(item.child("candidates"), 0, 0, INT64_MAX);
    required(r, item.child("gates"));
    for (const Node& g : r.items(item.child("gates"))) {
      if (!r.object(g)) break;
      GateRecord gate;
      gate.resource = text(r, g.child("resource"));
      gate.gate = text(r, g.child("gate"));
      gate.value = finite(r, g.child("value"));
      gate.threshold = finite(r, g.child("threshold"));
      gate.requestShare = finite(r, g.child("requestShare"));
      gate.passed = flag(r, g.child("passed"));
      if (!r.ok()) break;
      d.gates.push_back(std::move(gate));
    }
    d.holdout = flag(r, item.child("holdout"));
    if (r.ok() && d.id.empty()) r.problem(item.child("id"), "empty");
    if (!r.ok()) break;
    out.push_back(std::move(d));
  }
  if (!r.ok()) return fail("decision batch: " + r.error());
  return out;
}

}  // namespace pi0::ledger
