#include "kube/connect.h"

#include <utility>

#include "common/log.h"
#include "kube/config.h"

namespace pi0::kube {

std::unique_ptr<Client> connect(const ConnectOptions& options) {
  auto config = resolveConfig(options.kubeconfig);
  if (!config) {
    log::error("cannot load the Kubernetes configuration", {{"error", config.error().message}});
    return nullptr;
  }
  if (options.qps) config->qps = *options.qps;
  if (options.burst) config->burst = *options.burst;
  config->userAgent = options.userAgent;
  const std::string source = config->source;
  const std::string apiServer = config->server;
  auto client = Client::create(std::move(*config));
  if (!client) {
    log::error("invalid Kubernetes configuration", {{"error", client.error().message}});
    return nullptr;
  }
  if (!options.checkServer) return std::move(*client);
  auto version = (*client)->serverVersion();
  if (!version) {
    log::error("cannot reach the API server",
               {{"server", apiServer}, {"config", source}, {"error", version.error().describe()}});
    return nullptr;
  }
  log::info(
      "connected to the API server",
      {{"server", apiServer}, {"config", source}, {"version", version->value("gitVersion", "")}});
  return std::move(*client);
}

}  // namespace pi0::kube
