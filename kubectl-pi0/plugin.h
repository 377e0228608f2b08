// kubectl pi0: asks Pi0 why it decided what it did (DESIGN.md "The learning loop"). A kubectl
// plugin: kubectl runs the binary kubectl-pi0 for `kubectl pi0 ...`, and kubectl-pi0 runs
// kubectl in turn for every request, so that the user's kubeconfig, context and credentials
// (certificates, tokens, exec plugins) apply as they do to kubectl itself:
//
//   why TARGET       the admission decisions about a pod (NAME, pod/NAME) or about the pods of a
//                    controller (deployment/NAME, statefulset/NAME, replicaset/NAME, job/NAME,
//                    daemonset/NAME), the gates and the node they were about, and what followed
//   ledger           the decisions (--since, --node, --channel, -n or -A, --limit), or with
//                    --actions the ShutdownMatrices' steps
//   plan [MATRIX]    what each ShutdownMatrix will do next and why (its status)
//   seen [NODE]      whether the node's state now is one the fingerprint memory has seen before;
//                    without a node, the memory's archetypes
//   calibration      the GatePolicy's thresholds, their evidence and history
//
// The decisions, the steps and `seen` come from pi0-operator's query API
// (operator/query_server.h) through the apiserver's service proxy; `plan` and `calibration`
// read the resources' status. This file is the pure part: the arguments, the requests and the
// tables, from JSON to text; main.cc runs kubectl.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pi0::kubectl {

using Json = nlohmann::json;

enum class Output { kTable, kJson, kYaml };

struct Invocation {
  std::string command;             // why, ledger, plan, seen, calibration, completion, version
  std::vector<std::string> args;   // the words after the command
  std::string ns;                  // -n: the namespace asked about ("": the context's)
  bool allNamespaces = false;      // -A
  std::string pi0Namespace;        // where Pi0 runs (--pi0-namespace, $PI0_NAMESPACE)
  std::string service;             // the operator's Service (--service, $PI0_SERVICE)
  Output output = Output::kTable;  // -o
  std::string since;               // --since: an RFC 3339 time or a duration before now
  std::string node, channel;       // --node, --channel
  std::size_t limit = 0;           // --limit; 0: the command's own
  bool actions = false;            // ledger --actions
  // Flags kubectl itself takes, passed on as they came: --kubeconfig, --context, --cluster,
  // --user, --as, --token, --server, --request-timeout, ...
  std::vector<std::string> kubectlFlags;
  bool help = false;
};

// Reads the arguments after "kubectl pi0". `env` looks up an environment variable ("" when
// unset). Errors say what is wrong and what to type instead.
Result<Invocation> parseArgs(const std::vector<std::string>& args,
                             const std::function<std::string(const char*)>& env);

std::string usage();

// The apiserver path that reaches `path` ("/query/decisions") on the operator's query port
// through the service proxy, with the query parameters (percent-encoded, in order).
std::string proxyPath(const Invocation& invocation, std::string_view path,
                      const std::vector<std::pair<std::string, std::string>>& params);

// A controller kind as `why` takes it ("deploy", "deployments", "Deployment" all give
// "Deployment"); "" for a kind it does not know.
std::string controllerKind(std::string_view word);

// The tables. Each takes what the API answered (the operator's DecisionList or ActionList, a
// list of ShutdownMatrices, a GatePolicy, a SeenAnswer) and says "No ... found." for none.
std::string decisionsTable(const Json& list, bool withNamespace);
std::string whyReport(const Json& list, std::string_view target);
std::string actionsTable(const Json& list);
std::string planReport(const Json& matrices);
std::string calibrationReport(const Json& policy);
std::string seenReport(const Json& answer);
std::string archetypesReport(const Json& list);

// `value` as YAML (block style; strings quoted where YAML would read them otherwise).
std::string toYaml(const Json& value);

// The completions for the words typed so far (`words`, the last one being completed, maybe
// empty), as kubectl's plugin completion and `completion bash` ask for them: commands, flags,
// -o's values; `names` lists what a position takes ("nodes", "shutdownmatrices",
// "namespaces", "pods").
std::vector<std::string> complete(
    const std::vector<std::string>& words,
    const std::function<std::vector<std::string>(const char*)>& names);

// The shell completion script for `kubectl-pi0` run by name ("bash" or "zsh").
Result<std::string> completionScript(std::string_view shell);

}  // namespace pi0::kubectl
