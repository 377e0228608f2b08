// The agent's HTTP endpoints:
//   /metrics      Prometheus text exposition
//   /fingerprint  the latest Snapshot as JSON (docs/fingerprint.schema.json), without spectra
//                 and entropy; /fingerprint?detail=spectra with them; ?detail=resources only
//                 the signals admission reads (what the operator and the webhook poll). Each
//                 body is built once per snapshot (Snapshot::body); 400 for another detail.
//   /healthz      200 while the sampling loop is alive
//   /readyz       200 once every signal's window is full, else 503 with the fill
// served by net::HttpServer (hardened there) on a pool of 4 threads; it only reads the
// Collector's published Snapshot and the (thread-safe) metrics registry.
#pragma once

#include <functional>
#include <memory>

#include "agent/agent_metrics.h"
#include "agent/collector.h"
#include "agent/options.h"
#include "common/runner.h"
#include "net/http_server.h"

namespace pi0::agent {

class HttpServer {
 public:
  // Binds the listening socket (so a busy port fails here, with a clear error). `alive`
  // reports whether the sampling loop is still making progress. `collector` and `metrics`
  // must outlive the server.
  static Result<std::unique_ptr<HttpServer>> create(const ListenAddress& address,
                                                    const Collector& collector,
                                                    AgentMetrics& metrics,
                                                    std::function<bool()> alive);

  int port() const { return server_->port(); }
  // Serves until stop() is called from another thread. Returns false when serving ended for
  // any other reason (the listening socket failed).
  bool run() { return server_->run(); }
  void stop() { server_->stop(); }

 private:
  HttpServer() = default;
  Probes probes_;  // the agent's own: it has no drain, and serves them on its only port
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace pi0::agent
