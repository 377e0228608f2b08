// The agent's HTTP endpoints:
//   /metrics      Prometheus text exposition
//   /fingerprint  the latest Snapshot as JSON (docs/fingerprint.schema.json)
//   /healthz      200 while the sampling loop is alive
//   /readyz       200 once every signal's window is full, else 503 with the fill
// The server runs on its own small thread pool; it only reads the Collector's published
// Snapshot and the (thread-safe) metrics registry.
#pragma once

#include <functional>
#include <memory>

#include "agent/agent_metrics.h"
#include "agent/collector.h"
#include "agent/options.h"

namespace httplib {
class Server;
}

namespace pi0::agent {

class HttpServer {
 public:
  // Binds the listening socket (so a busy port fails here, with a clear error). `alive`
  // reports whether the sampling loop is still making progress.
  static Result<std::unique_ptr<HttpServer>> create(const ListenAddress& address,
                                                    const Collector& collector,
                                                    AgentMetrics& metrics,
                                                    std::function<bool()> alive);
  ~HttpServer();

  int port() const { return port_; }
  // Serves until stop() is called from another thread. Returns false when serving ended for
  // any other reason (the listening socket failed).
  bool run();
  void stop();

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
};

}  // namespace pi0::agent
