// Command-line options of pi0-webhook. parseOptions never exits the process: it returns the
// options, or an error for the caller to print with the usage hint (and exit 2).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "admission/pod_decision.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/result.h"
#include "fleet/polling.h"
#include "reservations.h"
#include "self_managed.h"

namespace pi0::webhook {

// The fleet polling's flags (--agents or --agent-service, --poll-interval, --agent-timeout) are
// fleet::PollingOptions'.
struct Options : fleet::PollingOptions {
  Options() { agentTimeoutSeconds = 1.0; }  // a review cannot wait for a slow agent

  std::string kubeconfig;
  HostPort bindAddress{"0.0.0.0", 8443};
  int serverThreads = 0;  // 0: one per CPU
  std::string certFile, keyFile;
  double shutdownDelaySeconds = 5.0;
  double minimumMargin = 0.05;
  ReservationOptions reservations;
  admission::Policy policy;
  // The GatePolicy (admission/gate_policy.h) whose calibrated thresholds replace
  // policy.thresholds in its Auto mode ("": none is read).
  std::string gatePolicy;
  // Self-managed certificates (self_managed.h) when selfManagedSecret is set.
  std::optional<fleet::ServiceRef> selfManagedSecret;
  SelfManagedOptions selfManaged;
  // The truth ledger: this replica's name in its records, and how many decisions it holds for the
  // leader at most (0: record none). Sent over the fleet feed's link, so only with --fleet-lease.
  std::string replica;  // default: $POD_NAME, else the host name
  std::size_t ledgerQueue = 10000;
  log::Level logLevel = log::Level::kInfo;
  bool help = false;
  bool version = false;
};

// With --help or --version, the other checks (a required flag missing) are skipped.
Result<Options> parseOptions(const std::vector<std::string>& args);
// The --help text, from the same table of flags.
std::string usage();

}  // namespace pi0::webhook
