// How a Pi0 program reaches its API server at start: the configuration the --kubeconfig flag
// names (resolveConfig's order), the program's user agent and rate limit, and, when asked, a
// first request that proves the server answers. The operator and the webhook both start here.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "kube/client.h"

namespace pi0::kube {

struct ConnectOptions {
  std::string kubeconfig;     // the --kubeconfig flag; empty: $KUBECONFIG, in-cluster, ~/.kube
  std::string userAgent;      // "pi0-operator/1.4.0"
  std::optional<double> qps;  // absent: ClientConfig's default
  std::optional<int> burst;   // absent: ClientConfig's default
  bool checkServer = false;   // ask the server's version before returning (and log it)
};

// A client for the API server, or null when there is none to be had: the configuration does not
// load or is invalid, or (with checkServer) the server does not answer. Every failure is logged
// with its reason, so a caller only has to exit. Call it from the thread that starts the program.
std::unique_ptr<Client> connect(const ConnectOptions& options);

}  // namespace pi0::kube
