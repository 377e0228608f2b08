#include "agent/http_server.h"

#include <httplib.h>

#include "common/log.h"
#include "metrics/exposition.h"

namespace pi0::agent {

Result<std::unique_ptr<HttpServer>> HttpServer::create(const ListenAddress& address,
                                                       const Collector& collector,
                                                       AgentMetrics& metrics,
                                                       std::function<bool()> alive) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  auto server = std::make_unique<httplib::Server>();
  // A small pool keeps the agent's memory small. Every connection is closed after one
  // response: with keep-alive, each poller (Prometheus, the operator, every webhook replica)
  // would pin a worker thread and kubelet's probes would queue behind them.
  server->new_task_queue = [] { return new httplib::ThreadPool(4); };
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_max_count(1);
  // cpp-httplib's default also sets SO_REUSEPORT, which would let a second agent share the
  // port silently; a busy port must be an error.
  server->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  auto registry = metrics.sharedRegistry();
  server->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics::renderText(*registry), std::string(metrics::kTextContentType));
  });
  server->Get("/fingerprint", [&collector](const httplib::Request&, httplib::Response& res) {
    auto snapshot = collector.snapshot();
    res.set_content(toFingerprintJson(*snapshot).dump(), "application/json");
  });
  server->Get("/healthz", [alive](const httplib::Request&, httplib::Response& res) {
    if (alive()) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("sampling loop stalled\n", "text/plain");
    }
  });
  server->Get("/readyz", [&collector](const httplib::Request&, httplib::Response& res) {
    auto snapshot = collector.snapshot();
    if (snapshot->ready) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content(
          "window " + std::to_string(static_cast<int>(snapshot->windowFill * 100)) + "% full\n",
          "text/plain");
    }
  });
  server->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404) {
      res.set_content(
          "not found: " + req.path + " (endpoints: /metrics /fingerprint /healthz /readyz)\n",
          "text/plain");
    }
  });
  server->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("request failed", {{"path", req.path}, {"error", what}});
        res.status = 500;
        res.set_content("internal error\n", "text/plain");
      });

  if (address.port == 0) {
    self->port_ = server->bind_to_any_port(address.host);
  } else {
    self->port_ = server->bind_to_port(address.host, address.port) ? address.port : -1;
  }
  if (self->port_ <= 0) {
    return fail("cannot listen on " + address.host + ":" + std::to_string(address.port) +
                " (address in use, or not an address of this host)");
  }
  self->server_ = std::move(server);
  return self;
}

HttpServer::~HttpServer() = default;

bool HttpServer::run() {
  return server_->listen_after_bind();
}

void HttpServer::stop() {
  server_->stop();
}

}  // namespace pi0::agent
