// HttpServer: Pi0's plain-HTTP server (cpp-httplib), for the agent's endpoints and the
// operator's metrics and probes. Hardened once, here, for servers that kubelet probes and
// Prometheus scrapes:
// - a small pool of worker threads, and every connection closed after one response: a client
//   that keeps its connection open (every poller, every scraper) would otherwise pin a worker
//   and the probes would queue behind it;
// - 5 s to read a request and 5 s to write an answer;
// - SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, which would let a second
//   process share the port silently; a busy port is an error at create();
// - an unknown path answers 404 with the list of endpoints; a handler that throws, 500 (logged).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/flags.h"
#include "common/result.h"
#include "net/routes.h"

namespace httplib {
class Server;
}

namespace pi0::net {

struct HttpServerOptions {
  std::string what = "HTTP";  // what it serves, for errors: "cannot listen on ... for metrics"
  HostPort address;           // port 0: any free port (see port())
  int threads = 2;            // workers; each serves one request at a time
};

// Thread safety: run() on one thread; stop() and port() from any thread.
class HttpServer {
 public:
  // Binds the listening socket (a busy port fails here: "cannot listen on HOST:PORT ...") and
  // routes what `routes` registers (GET and POST; other methods answer 404).
  static Result<std::unique_ptr<HttpServer>> create(HttpServerOptions options,
                                                    const std::function<void(Routes&)>& routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

  // Serves until stop(); false when serving ended otherwise (the listening socket failed).
  bool run();
  // Ends run(), or makes a later run() return at once. Idempotent.
  void stop();

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  Routes routes_;
  int port_ = 0;
  std::mutex mu_;
  bool stopping_ = false;          // guarded by mu_
  bool running_ = false;           // run() is in listen; guarded by mu_
  std::atomic<bool> done_{false};  // run()'s listen has returned
};

}  // namespace pi0::net
