#include "operator/query_server.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "common/duration.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "common/url.h"
#include "operator/memory_recorder.h"
#include "operator/operator_metrics.h"

namespace pi0::op {
namespace {

constexpr std::size_t kMaxLimit = 1000;

// A time parameter: an RFC 3339 time, or a duration before `now` ("90m").
Result<ledger::Time> timeParam(const std::string& name, const std::string& value,
                               ledger::Time now) {
  if (auto t = parseRfc3339(value)) return *t;
  if (auto d = parseDuration(value); d && d->count() >= 0)
    return now - std::chrono::duration_cast<ledger::Time::duration>(*d);
  return fail(name + ": \"" + value +
              "\" is neither an RFC 3339 time (2026-12-07T10:00:00Z) nor a duration (1h, 30m)");
}

Result<std::size_t> limitParam(const std::string& value) {
  std::size_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || v < 1 || v > kMaxLimit)
    return fail("limit: \"" + value + "\" is not a whole number in 1.." +
                std::to_string(kMaxLimit));
  return v;
}

// What GET /query/actions asks for.
struct ActionQuery {
  std::optional<ledger::Time> since;
  std::size_t limit = 100;
};

Result<ActionQuery> parseActionQuery(std::string_view queryString, ledger::Time now) {
  auto params = queryParams(queryString);
  if (!params) return fail(params.error().message);
  ActionQuery q;
  for (const auto& [key, value] : *params) {
    if (key == "since") {
      auto t = timeParam(key, value, now);
      if (!t) return fail(t.error().message);
      q.since = *t;
    } else if (key == "limit") {
      auto l = limitParam(value);
      if (!l) return fail(l.error().message);
      q.limit = *l;
    } else {
      return fail("unknown parameter \"" + key + "\" (since and limit are known)");
    }
  }
  return q;
}

// An error as a Kubernetes Status, so that kubectl (`kubectl get --raw`, which `kubectl pi0`
// runs) prints its message: "Error from server (ServiceUnavailable): <message>".
net::HttpResponse status(int code, const char* reason, std::string message) {
  while (!message.empty() && message.back() == '\n')
    message.pop_back();
  nlohmann::json body = {
      {"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()},
      {"status", "Failure"}, {"message", message}, {"reason", reason},
      {"code", code}};
  return net::HttpResponse{code, body.dump(), "application/json"};
}

void count(const QueryContext& c, std::string_view query, std::string_view result) {
  if (c.metrics) c.metrics->countQuery(query, result);
}

// The checks every query begins with: a ledger, and this replica leading. nullopt: go on.
std::optional<net::HttpResponse> refuse(const QueryContext& c, std::string_view query) {
  if (!c.ledger) {
    count(c, query, "no_ledger");
    return status(503, "ServiceUnavailable",
                  "this pi0-operator keeps no truth ledger (--ledger-path; chart: ledger.enabled)");
  }
  if (!c.leading()) {
    count(c, query, "not_leader");
    return status(503, "ServiceUnavailable", c.notLeader);
  }
  return std::nullopt;
}

net::HttpResponse failed(const QueryContext& c, std::string_view query, const Error& error) {
  count(c, query, "error");
  log::warn("query failed", {{"query", query}, {"error", error.message}});
  return status(500, "InternalError", "the ledger cannot answer: " + error.message);
}

nlohmann::json matchJson(const memory::Match& m) {
  return {{"node", m.node},
          {"at", rfc3339Millis(m.time)},
          {"label", memory::labelName(m.label)},
          {"followedByTrouble", m.followedByTrouble},
          {"similarity", m.similarity},
          {"weightSeconds", m.weight}};
}

// The archetypes FingerprintMemory::archetypes finds with these; as the metrics show them.
constexpr int kArchetypes = 8;
constexpr int kArchetypeIterations = 20;

net::HttpResponse seen(const QueryContext& c, std::string_view queryString) {
  auto params = queryParams(queryString);
  std::string node;
  if (params)
    for (const auto& [key, value] : *params) {
      if (key != "node") {
        count(c, "seen", "bad_request");
        return status(400, "BadRequest", "unknown parameter \"" + key + "\" (node is known)");
      }
      node = value;
    }
  if (!params || node.empty()) {
    count(c, "seen", "bad_request");
    return status(400, "BadRequest", params ? "node: missing" : params.error().message);
  }
  const memory::SeenOptions options;
  auto answer = c.memory->seen(node, options);
  if (!answer) {
    count(c, "seen", "not_found");
    return status(404, "NotFound",
                  "no state of node " + node +
                      " in the fingerprint memory: its agent is not polled by this leader, or its "
                      "window is not full yet");
  }
  nlohmann::json nearest = nlohmann::json::array();
  for (const memory::Match& m : c.memory->nearest(node, options.k))
    nearest.push_back(matchJson(m));
  const memory::SeenBefore& s = answer->seen;
  nlohmann::json body = {{"apiVersion", "stability.pi0.io/v1alpha1"},
                         {"kind", "SeenAnswer"},
                         {"node", node},
                         {"at", rfc3339Millis(answer->at)},
                         {"entries", c.memory->memory().size()},
                         {"minSimilarity", options.minSimilarity},
                         {"matches", s.matches},
                         {"troubleMatches", s.troubleMatches},
                         {"troubleShare", s.troubleShare},
                         {"troubled", s.troubled},
                         {"nearest", std::move(nearest)}};
  count(c, "seen", "ok");
  return net::HttpResponse{200, body.dump(), "application/json"};
}

net::HttpResponse archetypes(const QueryContext& c) {
  nlohmann::json list = nlohmann::json::array();
  for (const memory::Archetype& a : c.memory->archetypes(kArchetypes, kArchetypeIterations))
    list.push_back({{"members", a.members},
                    {"troubleRatio", a.troubleRate},
                    {"features", memory::strongestFeatures(a.centroid, 3)}});
  count(c, "archetypes", "ok");
  return net::HttpResponse{200,
                           nlohmann::json{{"apiVersion", "stability.pi0.io/v1alpha1"},
                                          {"kind", "ArchetypeList"},
                                          {"entries", c.memory->memory().size()},
                                          {"archetypes", std::move(list)}}
                               .dump(),
                           "application/json"};
}

}  // namespace

std::vector<OperatorMetrics::ArchetypeFigures> archetypeFigures(const MemoryRecorder& memory) {
  std::vector<OperatorMetrics::ArchetypeFigures> out;
  for (const memory::Archetype& a : memory.archetypes(kArchetypes, kArchetypeIterations))
    out.push_back({a.members, a.troubleRate, memory::strongestFeatures(a.centroid, 3)});
  return out;
}

Result<ledger::Query> parseDecisionQuery(std::string_view queryString, ledger::Time now) {
  auto params = queryParams(queryString);
  if (!params) return fail(params.error().message);
  ledger::Query q;
  for (const auto& [key, value] : *params) {
    std::string* text = key == "namespace" ? &q.ns
                        : key == "pod"     ? &q.pod
                        : key == "podUid"  ? &q.podUid
                        : key == "owner"   ? &q.ownerName
                        : key == "node"    ? &q.node
                        : key == "channel" ? &q.channel
                                           : nullptr;
    if (text) {
      if (value.empty()) return fail(key + ": empty");
      *text = value;
    } else if (key == "since" || key == "until") {
      auto t = timeParam(key, value, now);
      if (!t) return fail(t.error().message);
      (key == "since" ? q.since : q.until) = *t;
    } else if (key == "limit") {
      auto l = limitParam(value);
      if (!l) return fail(l.error().message);
      q.limit = *l;
    } else {
      return fail("unknown parameter \"" + key +
                  "\" (namespace, pod, podUid, owner, node, channel, since, until and limit are "
                  "known)");
    }
  }
  if ((!q.pod.empty() || !q.ownerName.empty()) && q.ns.empty())
    return fail(std::string(q.pod.empty() ? "owner" : "pod") + " needs namespace");
  return q;
}

void addQueryRoutes(net::Routes& routes, const QueryContext& context) {
  routes.get("/query/decisions", [&c = context](const net::HttpRequest& req) {
    if (auto no = refuse(c, "decisions")) return *no;
    auto query = parseDecisionQuery(req.query, c.now());
    if (!query) {
      count(c, "decisions", "bad_request");
      return status(400, "BadRequest", query.error().message);
    }
    auto found = c.ledger->decisions(*query);
    if (!found) return failed(c, "decisions", found.error());
    count(c, "decisions", "ok");
    return net::HttpResponse{200, ledger::decisionListJson(*found), "application/json"};
  });
  for (const char* path : {"/query/seen", "/query/archetypes"}) {
    routes.get(path, [&c = context, path](const net::HttpRequest& req) {
      const char* query = path + std::string_view("/query/").size();
      if (!c.memory) {
        count(c, query, "no_ledger");
        return status(503, "ServiceUnavailable",
                      "this pi0-operator keeps no fingerprint memory (it keeps one with its "
                      "truth ledger: --ledger-path)");
      }
      if (!c.leading()) {
        count(c, query, "not_leader");
        return status(503, "ServiceUnavailable", c.notLeader);
      }
      return std::string_view(query) == "seen" ? seen(c, req.query) : archetypes(c);
    });
  }
  routes.get("/query/actions", [&c = context](const net::HttpRequest& req) {
    if (auto no = refuse(c, "actions")) return *no;
    auto query = parseActionQuery(req.query, c.now());
    if (!query) {
      count(c, "actions", "bad_request");
      return status(400, "BadRequest", query.error().message);
    }
    auto found = c.ledger->actions(query->since, query->limit);
    if (!found) return failed(c, "actions", found.error());
    count(c, "actions", "ok");
    return net::HttpResponse{200, ledger::actionListJson(*found), "application/json"};
  });
}

}  // namespace pi0::op
