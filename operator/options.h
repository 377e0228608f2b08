// Command-line options of pi0-operator, in controller-runtime's style (--kubeconfig,
// --leader-elect, --metrics-bind-address, --health-probe-bind-address, ...). parseOptions never
// exits the process: it returns the options, or an error for the caller to print with the usage
// hint (and exit 2).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admission/pod_decision.h"
#include "common/log.h"
#include "common/result.h"
#include "fleet/polling.h"

namespace pi0::op {

// A HOST:PORT to serve on, as controller-runtime takes it: ":8080" is every address, port 0
// any free port, and the single word "0" turns the server off.
struct BindAddress {
  bool enabled = true;
  std::string host = "0.0.0.0";
  int port = 0;

  bool operator==(const BindAddress&) const = default;
};

// `flag` names the flag in error messages.
Result<BindAddress> parseBindAddress(std::string_view flag, std::string_view text);

// The fleet polling's flags (--agents or --agent-service, --poll-interval, --agent-timeout) are
// fleet::PollingOptions'.
struct Options : fleet::PollingOptions {
  std::string kubeconfig;  // empty: $KUBECONFIG, in-cluster, ~/.kube/config (resolveConfig)
  bool leaderElect = false;
  std::string leaderElectionNamespace;  // after parsing: never empty
  std::string leaderElectionId = "pi0-operator";
  BindAddress metricsBindAddress{true, "0.0.0.0", 8080};
  BindAddress healthProbeBindAddress{true, "0.0.0.0", 8081};
  log::Level logLevel = log::Level::kInfo;
  std::string prometheusUrl;  // empty: no Prometheus (throughput from replicas, fleet load only)
  double qps = 20;
  int burst = 30;
  std::string identity;  // after parsing: never empty
  // Publishing the fleet feed (fleet/feed.h) while leading: served over HTTPS on this address
  // ("0": not served), to callers whose service-account token TokenReview authenticates for
  // `fleetAudience` as one of `fleetReaders`; the leader writes `fleetAdvertiseUrl` into its
  // Lease, where consumers find it.
  BindAddress fleetBindAddress{false, "0.0.0.0", 9444};
  std::string fleetCertFile, fleetKeyFile;
  std::vector<std::string> fleetReaders;
  std::string fleetAudience = "pi0-fleet";
  std::string fleetAdvertiseUrl;
  // The truth ledger (ledger/ledger.h): the SQLite file the leader keeps ("": none), its
  // retention, and who may write decisions to it (POST /ledger/decisions on the feed's address:
  // user names as TokenReview reports them, the webhook's service account).
  std::string ledgerPath;
  std::chrono::seconds ledgerMaxAge = std::chrono::hours(24 * 7);
  std::size_t ledgerMaxMiB = 1024;
  std::vector<std::string> ledgerWriters;
  // The query API (operator/query_server.h) that `kubectl pi0` reads: served over HTTPS on
  // this address ("0": not served) while leading, with this pair (empty: the feed's).
  BindAddress queryBindAddress{false, "0.0.0.0", 9445};
  std::string queryCertFile, queryKeyFile;
  // How often retention runs and the ledger's figures and the gates' ratios are computed.
  std::chrono::seconds ledgerCheckInterval = std::chrono::minutes(5);
  // How long after a decision its outcomes are joined to it, and its node judged.
  std::chrono::seconds outcomeHorizon = std::chrono::minutes(15);
  // Calibration (operator/gate_policy_reconcile.h): the GatePolicy the leader calibrates ("":
  // none), and the fixed thresholds, the webhook's flags (the chart passes both the same).
  std::string gatePolicy;
  admission::Thresholds fixedThresholds;
  bool help = false;
  bool version = false;
};

// What the defaults depend on, apart from the arguments; tests pass their own.
struct Environment {
  std::string podName;   // $POD_NAME
  std::string podIp;     // $POD_IP: the feed's advertised address by default
  std::string hostname;  // gethostname()
  // The service account's namespace file; read when present (in a pod).
  std::filesystem::path namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  // Six hex digits appended to the identity; empty: random ones.
  std::string identitySuffix;
};

Environment currentEnvironment();

// With --help or --version, the other checks (a required flag missing) are skipped.
Result<Options> parseOptions(const std::vector<std::string>& args,
                             const Environment& env = currentEnvironment());
// The --help text, from the same table of flags.
std::string usage();

}  // namespace pi0::op
