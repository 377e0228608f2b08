#include "net/http_server.h"

#include <sys/socket.h>

#include <thread>

#include <httplib.h>

#include "common/log.h"

namespace pi0::net {

Result<std::unique_ptr<HttpServer>> HttpServer::create(HttpServerOptions options,
                                                       const std::function<void(Routes&)>& routes) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  auto server = std::make_unique<httplib::Server>();
  const int threads = std::max(1, options.threads);
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_max_count(1);
  server->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  routes(self->routes_);
  std::string endpoints;
  self->routes_.forEach(
      [&](std::string_view method, const std::string& path, const HttpHandler& handler) {
        auto serve = [&handler](const httplib::Request& req, httplib::Response& res) {
          const std::string_view target = req.target;
          const auto mark = target.find('?');
          // A copy (httplib returns one): it must outlive the handler's call, which sees a view.
          const std::string authorization = req.get_header_value("Authorization");
          const HttpRequest request{req.method,
                                    req.path,
                                    req.body,
                                    req.remote_port,
                                    mark == target.npos ? "" : target.substr(mark + 1),
                                    authorization};
          HttpResponse response = handler(request);
          res.status = response.status;
          res.set_content(std::move(response.body), response.contentType);
        };
        if (method == "GET") server->Get(path, serve);
        if (method == "POST") server->Post(path, serve);
        if (!endpoints.ends_with(" " + path)) endpoints += " " + path;  // paths come in order
      });
  server->set_error_handler([endpoints](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404) {
      res.set_content("not found: " + req.path + " (endpoints:" + endpoints + ")\n", "text/plain");
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

  const auto& a = options.address;
  self->port_ = a.port == 0 ? server->bind_to_any_port(a.host)
                            : (server->bind_to_port(a.host, a.port) ? a.port : -1);
  if (self->port_ <= 0) {
    return fail("cannot listen on " + a.host + ":" + std::to_string(a.port) + " for " +
                options.what + " (address in use, or not an address of this host)");
  }
  self->server_ = std::move(server);
  return self;
}

HttpServer::~HttpServer() {
  stop();
}

bool HttpServer::run() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return true;
    running_ = true;
  }
  const bool clean = server_->listen_after_bind();
  done_ = true;
  std::lock_guard lock(mu_);
  return clean || stopping_;
}

void HttpServer::stop() {
  bool running = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    running = running_;
  }
  if (!running) return;
  // cpp-httplib's stop() does nothing until listen has begun: wait for it (or for its end).
  while (!server_->is_running() && !done_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
}

}  // namespace pi0::net
