// HttpsServer: the TLS server pi0-webhook serves on. cpp-httplib's SSLServer underneath, with
// the certificate and key read from files and picked up again when they change on disk, without
// closing the listening socket or any open connection.
//
// Reload: a watcher thread reads both files every `reloadCheckInterval` and compares a SHA-256
// of their contents with what it saw last (a Kubernetes Secret volume swaps a `..data`
// symlink, so the content, not the mtime, says whether something changed). A new pair that
// parses and whose key matches its certificate replaces the served pair; TLS handshakes pick
// the pair current at that moment (an OpenSSL certificate callback), so connections already
// open keep the pair they shook hands with. A pair that does not load (a half-written file, a
// key of another certificate, a missing file) leaves the served pair as it was, counts one
// reload failure and logs one warning per change of the files' contents.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <httplib.h>

#include "common/result.h"

namespace pi0::net {

struct HttpsServerOptions {
  std::string host = "0.0.0.0";
  int port = 8443;  // 0: any free port (see HttpsServer::port())
  // PEM files. The certificate file holds the serving certificate first, then any intermediate
  // certificates, which are sent along as the chain.
  std::filesystem::path certFile, keyFile;
  // Requests whose Content-Length is larger are answered 413 and never reach a handler.
  // Requests with a body but without a Content-Length (chunked, or none at all) are answered
  // 411 and the connection is closed, so that no body is ever read without a known bound.
  std::size_t maxBodyBytes = 3 << 20;
  // A client that sends nothing (mid-handshake, mid-request) for this long is disconnected;
  // a client that does not take the response for writeTimeout likewise.
  std::chrono::seconds readTimeout{10}, writeTimeout{10};
  // How long an idle keep-alive connection is kept open, and how many requests one connection
  // may carry. Each open connection holds one of the `threads` while it lasts.
  std::chrono::seconds keepAliveTimeout{5};
  std::size_t keepAliveMaxRequests = 100;
  // How often the watcher checks the certificate and key files.
  std::chrono::milliseconds reloadCheckInterval{2000};
  // Connections served at once; more wait in the accept queue. The apiserver keeps a pool of
  // connections to a webhook, about one per concurrent admission.
  int threads = 64;
};

// Thread safety: create(), start(), stop() and the destructor from one owner thread;
// port(), certificateSha256() and counters() from any thread. Handlers registered by `routes`
// run on the server's threads, several at once.
class HttpsServer {
 public:
  // Loads the key pair and checks it (both files readable, PEM, the key matches the
  // certificate; otherwise an error that names the file), sets up TLS (1.2 minimum) and binds
  // (an address in use is an error: SO_REUSEPORT is not set). `routes` registers the handlers
  // on the underlying httplib::Server (an httplib::SSLServer); it runs once, before create()
  // returns. The server sets its own pre-routing handler, logger and exception handler after
  // `routes` (they enforce the body and connection rules above); `routes` must not rely on
  // setting them. The first call sets SIGPIPE to be ignored: a write to a connection the client
  // closed must be an error, not the end of the process.
  static Result<std::unique_ptr<HttpsServer>> create(
      HttpsServerOptions options, const std::function<void(httplib::Server&)>& routes);

  ~HttpsServer();  // stop()
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // The bound port (the chosen one when options.port was 0).
  int port() const;

  // Serves on the server's own threads and starts the reload watcher; returns at once.
  // At most once.
  void start();

  // Stops accepting, lets requests in flight finish (an idle keep-alive connection ends within
  // keepAliveTimeout), joins every thread. Idempotent.
  void stop();

  // Whether the listening loop is up (start() called, stop() not, the socket did not fail).
  bool serving() const;

  // SHA-256 (lowercase hex) of the DER encoding of the certificate new handshakes get now.
  std::string certificateSha256() const;

  struct Counters {
    std::atomic<uint64_t> reloads{0};         // a changed pair was loaded and is served
    std::atomic<uint64_t> reloadFailures{0};  // a changed pair did not load; the old one stays
  };
  const Counters& counters() const;

  class Impl;

 private:
  explicit HttpsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pi0::net
