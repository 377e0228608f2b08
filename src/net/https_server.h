// HttpsServer: the TLS server pi0-webhook serves on. An event-driven HTTP/1.1 server
// (Boost.Beast over Boost.Asio): a few threads, each running its own event loop, serve every
// connection, so a connection that is idle or slow costs a socket and a few kilobytes, never a
// thread. The certificate and key are read from files and picked up again when they change on
// disk, without closing the listening socket or any open connection.
//
// Deadlines (none can be extended by a client that trickles bytes):
// - the TLS handshake must end within handshakeTimeout of the accept;
// - a request's headers and body must arrive within requestTimeout of its first byte;
// - a connection may wait idleTimeout for the first byte of its next request (keep-alive);
// - an answer must be taken by the client within writeTimeout.
// A connection whose deadline passes is closed. Requests are read as RFC 9112 says: pipelined
// requests on one connection are answered in order; a Content-Length that is not a number, is
// negative or is given twice with different values is answered 400 at once, then the
// connection is closed; a body larger than maxBodyBytes is answered 413 before any of it is
// read (chunked bodies are counted as they arrive); headers larger than maxHeaderBytes, 431;
// an HTTP/1.1 request without Host, 400; `Expect: 100-continue` gets its interim answer.
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
#include <string_view>

#include "common/result.h"
#include "net/routes.h"

namespace pi0::net {

struct HttpsServerOptions {
  std::string host = "0.0.0.0";
  int port = 8443;  // 0: any free port (see HttpsServer::port())
  // PEM files. The certificate file holds the serving certificate first, then any intermediate
  // certificates, which are sent along as the chain.
  std::filesystem::path certFile, keyFile;
  // Bodies larger than this are answered 413 and never reach a handler.
  std::size_t maxBodyBytes = 3 << 20;
  // The request line and headers together; larger: 431.
  std::size_t maxHeaderBytes = 64 << 10;
  // The deadlines described above.
  std::chrono::milliseconds handshakeTimeout{5000}, requestTimeout{10000}, idleTimeout{5000},
      writeTimeout{10000};
  // Requests one connection may carry; the answer to the last says `Connection: close`.
  std::size_t keepAliveMaxRequests = 1000;
  // Connections open at once; a connection over the limit is closed as soon as it is accepted.
  std::size_t maxConnections = 10000;
  // How often the watcher checks the certificate and key files.
  std::chrono::milliseconds reloadCheckInterval{2000};
  // Event loops (threads) serving the connections; 0: one per CPU.
  int threads = 0;
};

// Thread safety: create(), start(), stop() and the destructor from one owner thread;
// port(), serving(), certificateSha256() and counters() from any thread. Handlers run on the
// server's threads, several at once, and should not block: a handler holds its event loop.
class HttpsServer {
 public:
  // Loads the key pair and checks it (both files readable, PEM, the key matches the
  // certificate; otherwise an error that names the file), sets up TLS (1.2 minimum) and binds
  // (an address in use is an error: SO_REUSEPORT is not set). `routes` registers the handlers;
  // it runs once, before create() returns. The first call sets SIGPIPE to be ignored: a write
  // to a connection the client closed must be an error, not the end of the process.
  static Result<std::unique_ptr<HttpsServer>> create(HttpsServerOptions options,
                                                     const std::function<void(Routes&)>& routes);

  ~HttpsServer();  // stop()
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // The bound port (the chosen one when options.port was 0).
  int port() const;

  // Serves on the server's own threads and starts the reload watcher; returns at once.
  // At most once.
  void start();

  // Stops accepting, closes idle connections, lets requests in flight finish (their answers
  // say `Connection: close`), joins every thread. Idempotent.
  void stop();

  // Whether the server accepts connections (start() called, stop() not, the socket did not
  // fail).
  bool serving() const;

  // SHA-256 (lowercase hex) of the DER encoding of the certificate new handshakes get now.
  std::string certificateSha256() const;

  struct Counters {
    std::atomic<uint64_t> reloads{0};            // a changed pair was loaded and is served
    std::atomic<uint64_t> reloadFailures{0};     // a changed pair did not load; the old one stays
    std::atomic<uint64_t> connections{0};        // accepted
    std::atomic<int64_t> open{0};                // open now
    std::atomic<uint64_t> refused{0};            // closed at once: maxConnections were open
    std::atomic<uint64_t> timeouts{0};           // closed by the handshake or request deadline
    std::atomic<uint64_t> handshakeFailures{0};  // the TLS handshake failed
    std::atomic<uint64_t> malformed{0};          // answered 400, 413 or 431 without routing
  };
  const Counters& counters() const;

  class Impl;

 private:
  explicit HttpsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pi0::net
