// The operator's queries: what `kubectl pi0` asks the leader about its truth ledger (DESIGN.md
// "The learning loop"), served over HTTPS on --query-bind-address and reached through the
// apiserver's service proxy, so that RBAC decides who may ask (`get` on the operator Service's
// `services/proxy`; the chart's Role `<release>-query` grants it).
//
//   GET /query/decisions   the admission decisions, newest first, with their outcomes
//                          (ledger::toJson DecisionList). Parameters, each narrowing:
//                            namespace, pod (a name or a generateName; needs namespace),
//                            podUid, owner (the controller that made the pod, a ReplicaSet's
//                            or a Job's name; needs namespace), node, channel ("ns/name"),
//                            since and until (RFC 3339 times, or a duration before now: "1h"),
//                            limit (1..1000, default 100).
//   GET /query/actions     the ShutdownMatrices' steps, newest first (ActionList): since, limit.
//   GET /query/seen        node=NAME: whether the fingerprint memory has seen the node's state
//                          now before, and what followed it then (SeenAnswer: the verdict, the
//                          k = 10 nearest remembered states; 404 for a node without a state).
//   GET /query/archetypes  the memory's archetypes (k-means, k=8): members, trouble ratio,
//                          strongest features (ArchetypeList).
//
// Only the leader keeps the ledger: another replica answers 503 and says who leads, and the
// caller asks again (the service proxy picks a replica at random). A parameter that is unknown
// or malformed is a 400 that names it.
//
// Who may read: the answers name pods of every namespace. The service proxy does not pass the
// caller's identity on, so the operator cannot narrow an answer per caller: grant the Role only
// to those who may read pods cluster-wide, and turn on networkPolicy (queryFrom) so that the
// port is reached only through the apiserver (README "Asking Pi0").
#pragma once

#include <functional>
#include <string>

#include "common/result.h"
#include "ledger/ledger.h"
#include "net/routes.h"
#include "operator/operator_metrics.h"

namespace pi0::op {

class MemoryRecorder;

struct QueryContext {
  ledger::Ledger* ledger = nullptr;  // null: every query answers 503 "no ledger"
  std::function<bool()> leading;     // whether this replica leads now
  std::string notLeader;             // the 503's body when it does not
  OperatorMetrics* metrics = nullptr;
  MemoryRecorder* memory = nullptr;  // null: seen and archetypes answer 503
  std::function<ledger::Time()> now = [] { return std::chrono::system_clock::now(); };
};

// The ledger query a GET /query/decisions asks for, or why it is malformed.
Result<ledger::Query> parseDecisionQuery(std::string_view queryString, ledger::Time now);

// The memory's archetypes as the metrics show them (the same k and iterations as
// GET /query/archetypes).
std::vector<OperatorMetrics::ArchetypeFigures> archetypeFigures(const MemoryRecorder& memory);

// Registers the routes above; `context` must outlive the server.
void addQueryRoutes(net::Routes& routes, const QueryContext& context);

}  // namespace pi0::op
