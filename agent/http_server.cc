#include "agent/http_server.h"

#include "metrics/exposition.h"

namespace pi0::agent {

Result<std::unique_ptr<HttpServer>> HttpServer::create(const ListenAddress& address,
                                                       const Collector& collector,
                                                       AgentMetrics& metrics,
                                                       std::function<bool()> alive) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->probes_.addLiveness(
      [alive = std::move(alive)] { return alive() ? "" : "sampling loop stalled"; });
  self->probes_.addReadiness([&collector]() -> std::string {
    auto snapshot = collector.snapshot();
    if (snapshot->ready) return "";
    return "window " + std::to_string(static_cast<int>(snapshot->windowFill * 100)) + "% full";
  });

  auto registry = metrics.sharedRegistry();
  auto routes = [&](net::Routes& r) {
    r.get("/metrics", [registry](const net::HttpRequest&) {
      return net::HttpResponse{200, metrics::renderText(*registry),
                               std::string(metrics::kTextContentType)};
    });
    r.get("/fingerprint", [&collector](const net::HttpRequest&) {
      auto snapshot = collector.snapshot();
      return net::HttpResponse{200, toFingerprintJson(*snapshot).dump(), "application/json"};
    });
    net::addProbes(r, self->probes_);
  };
  // A small pool keeps the agent's memory small; every poller (Prometheus, the operator, every
  // webhook replica) and kubelet's probes share it, one request per connection.
  auto server = net::HttpServer::create({"HTTP", address, 4}, routes);
  if (!server) return fail(server.error().message);
  self->server_ = std::move(*server);
  return self;
}

}  // namespace pi0::agent
