// pi0-review-bench: the CPU one pod review costs pi0-webhook in process, without TLS, HTTP or
// the machine's other load: Handlers::pods (parse the AdmissionReview, decide, answer) over a
// table of N nodes, each with the fingerprint of a real agent (the fixture given), for
//   pass  a pod the first node admits (the parse and the answer dominate);
//   deny  a pod every node fails, so that decide() scans them all and writes the message.
// Denials are not logged (log level warn): the figure is the review's, not the log's. Each
// decision goes to a decision log for the truth ledger, as in pi0-webhook (--ledger-queue, the
// webhook's default; 0: none); nothing sends it, so a full log makes room as it does when the
// leader is out of reach. With --calibrated 1 the thresholds come from a GatePolicy in Auto
// mode (the same values as the flags', a holdout share of 0.05), as with --gate-policy.
// Prints CPU microseconds per review (the process's CPU clock), the best of --rounds rounds:
// the figure to compare before and after a change to the review path, on the same machine
// (bench/README.md). End to end figures, wrk through TLS, are bench/webhook_bench.sh's.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/gate_policy.h"
#include "common/files.h"
#include "common/log.h"
#include "fleet/fingerprint.h"
#include "fleet/resource_view.h"
#include "gate_thresholds.h"
#include "handlers.h"

namespace {

using pi0::webhook::ObjectPtr;
using Json = nlohmann::json;

double cpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// A pod as the apiserver hands a ReplicaSet's pod to a webhook: defaulted, with a service
// account volume and the default tolerations.
Json pod(const std::string& cpu) {
  Json p = Json::parse(R"({"apiVersion":"v1","kind":"Pod",
    "metadata":{"generateName":"web-7d9f8c6b5d-","namespace":"shop",
      "labels":{"app":"web","pod-template-hash":"7d9f8c6b5d"},
      "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8c6b5d",
        "uid":"0a1b2c3d-4e5f-6789-abcd-ef0123456789","controller":true,"blockOwnerDeletion":true}]},
    "spec":{"volumes":[{"name":"kube-api-access-abcde","projected":{"sources":[
        {"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
        {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
        {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1",
          "fieldPath":"metadata.namespace"}}]}}],"defaultMode":420}}],
      "containers":[{"name":"app","image":"app:1.2.3",
        "ports":[{"containerPort":8080,"protocol":"TCP"}],
        "env":[{"name":"MODE","value":"prod"}],
        "resources":{"limits":{"memory":"512Mi"},"requests":{"memory":"256Mi"}},
        "volumeMounts":[{"name":"kube-api-access-abcde","readOnly":true,
          "mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",
        "imagePullPolicy":"IfNotPresent"}],
      "restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst",
      "serviceAccountName":"default","securityContext":{},"schedulerName":"default-scheduler",
      "tolerations":[
        {"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute",
         "tolerationSeconds":300},
        {"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute",
         "tolerationSeconds":300}],
      "priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},
    "status":{"phase":"Pending","qosClass":"Burstable"}})");
  p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = cpu;
  return p;
}

std::string review(const Json& object) {
  const Json r = {
      {"apiVersion", "admission.k8s.io/v1"},
      {"kind", "AdmissionReview"},
      {"request",
       {{"uid", "0b6c3f0e-8a1d-4d5e-9c7b-000000000001"},
        {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
        {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
        {"namespace", "shop"},
        {"operation", "CREATE"},
        {"userInfo", {{"username", "system:serviceaccount:kube-system:replicaset-controller"}}},
        {"object", object},
        {"oldObject", nullptr},
        {"dryRun", false}}}};
  return r.dump();
}

Json node(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels", {{"kubernetes.io/hostname", name}, {"kubernetes.io/os", "linux"}}}}},
          {"spec", Json::object()},
          {"status", {{"allocatable", {{"cpu", "8"}, {"memory", "32Gi"}, {"pods", "110"}}}}}};
}

int usage(const char* why) {
  std::fprintf(stderr,
               "pi0-review-bench: %s\n"
               "Usage: pi0-review-bench FINGERPRINT.json [--nodes N] [--reviews N] [--rounds N]\n"
               "                        [--only pass|deny] [--ledger-queue N] [--calibrated 0|1]\n"
               "  FINGERPRINT.json  an agent's /fingerprint body (tests/fixtures/fleet has one)\n"
               "  --only            one of the two reviews (for a profiler's count of one)\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pi0;
  if (argc < 2 || argv[1][0] == '-') return usage("give a fingerprint file");
  int nodes = 1000, reviews = 2000, rounds = 5, ledgerQueue = 10000;
  bool calibrated = false;
  std::string only;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--only") {
      only = argv[i + 1];
      if (only != "pass" && only != "deny") return usage("--only takes pass or deny");
      continue;
    }
    const int v = std::atoi(argv[i + 1]);
    if (flag == "--calibrated") {
      const std::string value = argv[i + 1];
      if (value != "0" && value != "1") return usage("--calibrated takes 0 or 1");
      calibrated = value == "1";
      continue;
    }
    if (flag == "--ledger-queue") {
      if (v < 0 || (v == 0 && std::string(argv[i + 1]) != "0"))
        return usage("--ledger-queue takes a whole number");
      ledgerQueue = v;
      continue;
    }
    if (v <= 0) return usage("counts must be whole numbers above 0");
    if (flag == "--nodes") {
      nodes = v;
    } else if (flag == "--reviews") {
      reviews = v;
    } else if (flag == "--rounds") {
      rounds = v;
    } else {
      return usage("unknown flag");
    }
  }
  if (argc % 2 != 0) return usage("every flag takes a value");
  log::setLevel(log::Level::kWarn);
  auto body = readFile(argv[1]);
  if (!body) return usage(body.error().message.c_str());
  auto fingerprint = fleet::parseFingerprint(*body);
  if (!fingerprint) return usage(fingerprint.error().message.c_str());

  fleet::FleetViewOptions viewOptions;
  viewOptions.staleAfter = std::chrono::hours(1);
  viewOptions.trim = fleet::trimToResourceView;
  fleet::FleetView view(viewOptions);
  webhook::NodeIndex index;
  std::vector<fleet::Agent> agents;
  for (int i = 0; i < nodes; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "node-%05d", i);
    agents.push_back({name, "http://127.0.0.1:1"});
    index.update(nullptr, std::make_shared<const Json>(node(name)));
  }
  view.setAgents(agents);
  for (const auto& a : agents) {
    fleet::NodeFingerprint fp = *fingerprint;
    fp.node = a.node;
    view.recordSuccess(a.node, std::move(fp), systemClock().now());
  }

  webhook::ReservationBook book(webhook::ReservationOptions{}, systemClock());
  webhook::WebhookMetrics metrics;
  webhook::ClusterState state;
  state.nodes = [&index] { return index.snapshot(); };
  state.namespaceNamed = [](const std::string&) -> ObjectPtr { return nullptr; };
  state.channels = [] { return std::vector<ObjectPtr>{}; };
  state.matrices = [] { return std::vector<ObjectPtr>{}; };
  state.fleet = [&view] { return view.snapshot(); };
  admission::Policy policy;
  // The fixture's cpu isolation is 0.30: a margin of 0.05 admits 250m on 8 CPUs, 4 CPUs fail.
  policy.thresholds.isolation = 0.05;
  std::unique_ptr<webhook::DecisionLog> decisions;
  if (ledgerQueue > 0)
    decisions =
        std::make_unique<webhook::DecisionLog>("bench", static_cast<std::size_t>(ledgerQueue));
  std::unique_ptr<webhook::GateThresholds> gates;
  if (calibrated) {
    gates = std::make_unique<webhook::GateThresholds>(policy, &metrics);
    gates->update(std::make_shared<const Json>(
        Json{{"metadata", {{"name", "default"}, {"generation", 1}}},
             {"spec", {{"mode", "Auto"}, {"holdoutShare", 0.05}}},
             {"status", {{"thresholds", admission::thresholdsToJson(policy.thresholds)}}}}));
    state.gates = [g = gates.get()] { return g->current(); };
  }
  webhook::Handlers handlers(state, policy, 0.05, metrics, book, systemClock(), decisions.get());

  std::printf(
      "pi0-review-bench: %d nodes, %d reviews a round, best of %d rounds, ledger queue %d%s\n",
      nodes, reviews, rounds, ledgerQueue, calibrated ? ", calibrated thresholds" : "");
  for (const auto& [name, cpu, allowed] :
       {std::tuple{"pass", "250m", true}, std::tuple{"deny", "4", false}}) {
    if (!only.empty() && only != name) continue;
    const std::string r = review(pod(cpu));
    const auto answer = handlers.pods(r);
    const bool got = answer.status == 200 &&
                     Json::parse(answer.body)["response"]["allowed"].get<bool>() == allowed;
    if (!got) {
      std::fprintf(stderr, "pi0-review-bench: the %s review was answered %d: %s\n", name,
                   answer.status, answer.body.c_str());
      return 1;
    }
    double best = 1e300;
    for (int round = 0; round < rounds; ++round) {
      const double start = cpuSeconds();
      for (int i = 0; i < reviews; ++i)
        handlers.pods(r);
      best = std::min(best, (cpuSeconds() - start) / reviews);
    }
    std::printf("  %s  %8.2f µs CPU per review  (%zu bytes)\n", name, best * 1e6, r.size());
  }
  return 0;
}
