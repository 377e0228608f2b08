// FakeApiServer: a plain-HTTP stand-in for kube-apiserver on 127.0.0.1, for the client tests
// that need answers a real apiserver cannot be made to give on demand (a 429 with Retry-After,
// a stream cut at chosen byte boundaries, an expired continue token, a conflict on the first
// write). Each test installs the handlers it needs; every request is recorded. The real
// apiserver is exercised by the end-to-end tests.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "kube/config.h"

namespace pi0::testing {

class FakeApiServer {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::string query;  // "a=1&b=2" as received (decoded by httplib into params; kept raw here)
    std::string body;
    std::string authorization;
  };

  FakeApiServer() {
    server_.set_logger([this](const httplib::Request& req, const httplib::Response&) {
      std::lock_guard lock(mu_);
      std::string query;
      for (const auto& [k, v] : req.params)
        query += (query.empty() ? "" : "&") + k + "=" + v;
      requests_.push_back(
          {req.method, req.path, query, req.body, req.get_header_value("Authorization")});
    });
  }
  ~FakeApiServer() { stop(); }

  httplib::Server& server() { return server_; }

  // Starts serving on a free port; call after installing handlers.
  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void stop() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }

  int port() const { return port_; }

  kube::ClientConfig config() const {
    kube::ClientConfig c;
    c.server = "http://127.0.0.1:" + std::to_string(port_);
    c.source = "fake apiserver";
    c.qps = 1000;
    c.burst = 1000;
    return c;
  }

  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::vector<Request> requests_;
};

}  // namespace pi0::testing
