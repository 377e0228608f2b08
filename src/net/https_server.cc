#include "net/https_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <csignal>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "certs/openssl.h"
#include "common/digest.h"
#include "common/files.h"
#include "common/log.h"

namespace pi0::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;

namespace {

using certs::BioPtr;
using certs::memoryBio;
using certs::noPassword;
using certs::PkeyPtr;
using certs::takeOpensslErrors;
using certs::X509Ptr;
using certs::X509StackPtr;

// A certificate (with the rest of its chain) and its key, immutable once loaded; shared between
// the handshakes that use it and the server, which may replace it at any time.
struct KeyPair {
  X509Ptr cert;
  X509StackPtr chain;  // intermediates after the serving certificate; may be empty
  PkeyPtr key;
  std::string sha256;    // of the serving certificate's DER
  std::string notAfter;  // for logs
};

// The files as read at one moment: their contents, or why they could not be read. `state`
// identifies it, so that one change is acted on (and warned about) once.
struct Snapshot {
  std::string state;
  Result<std::string> cert = fail("");
  Result<std::string> key = fail("");
};

Result<std::shared_ptr<const KeyPair>> parseKeyPair(const std::string& certPem,
                                                    const std::filesystem::path& certFile,
                                                    const std::string& keyPem,
                                                    const std::filesystem::path& keyFile) {
  ERR_clear_error();
  auto pair = std::make_shared<KeyPair>();
  {
    BioPtr bio = memoryBio(certPem);
    if (!bio) return fail("out of memory reading certificate file " + certFile.string());
    pair->cert.reset(PEM_read_bio_X509(bio.get(), nullptr, noPassword, nullptr));
    if (!pair->cert) {
      return fail("certificate file " + certFile.string() + " holds no PEM certificate" +
                  takeOpensslErrors());
    }
    pair->chain.reset(sk_X509_new_null());
    while (X509Ptr next{PEM_read_bio_X509(bio.get(), nullptr, noPassword, nullptr)}) {
      sk_X509_push(pair->chain.get(), next.release());
    }
    // The loop ends at the end of the text (no further BEGIN line) or at a broken certificate,
    // which must not be served as a silently shorter chain.
    unsigned long last = ERR_peek_last_error();
    if (last != 0 &&
        !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
      return fail("certificate file " + certFile.string() +
                  ": a certificate after the first does not parse" + takeOpensslErrors());
    }
    ERR_clear_error();
  }
  {
    BioPtr bio = memoryBio(keyPem);
    if (!bio) return fail("out of memory reading key file " + keyFile.string());
    pair->key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassword, nullptr));
    if (!pair->key) {
      return fail("key file " + keyFile.string() +
                  " holds no PEM private key (encrypted keys are not supported)" +
                  takeOpensslErrors());
    }
  }
  if (X509_check_private_key(pair->cert.get(), pair->key.get()) != 1) {
    ERR_clear_error();
    return fail("the key in " + keyFile.string() + " does not match the certificate in " +
                certFile.string());
  }
  unsigned char* der = nullptr;
  int derLength = i2d_X509(pair->cert.get(), &der);
  if (derLength <= 0) {
    return fail("certificate file " + certFile.string() + ": cannot encode the certificate" +
                takeOpensslErrors());
  }
  pair->sha256 = sha256Hex(std::string_view(reinterpret_cast<char*>(der), derLength));
  OPENSSL_free(der);
  if (BioPtr out{BIO_new(BIO_s_mem())}) {
    if (ASN1_TIME_print(out.get(), X509_get0_notAfter(pair->cert.get())) == 1) {
      char* text = nullptr;
      long length = BIO_get_mem_data(out.get(), &text);
      pair->notAfter.assign(text, static_cast<std::size_t>(length));
    }
  }
  ERR_clear_error();
  return std::shared_ptr<const KeyPair>(std::move(pair));
}

std::string_view view(beast::string_view s) {
  return {s.data(), s.size()};
}

class Worker;

// How long, and how many bytes, a connection closed after an error answer is read and dropped.
constexpr std::chrono::seconds kLinger{2};
constexpr std::size_t kLingerBytes = 16 << 20;

// One connection: the TLS handshake, then requests read and answered one after the other, each
// step under its deadline (the tcp_stream's timer: one absolute expiry for every read and write
// of a step, so a trickle of bytes cannot move it). Lives on one Worker's thread only.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, asio::ssl::context& tls, Worker& worker);
  void start();
  // The server is stopping: an idle connection closes now; one inside a request answers it
  // with `Connection: close`.
  void drain();

 private:
  void onHandshake(ErrorCode ec);
  void awaitRequest();
  void onFirstBytes(ErrorCode ec, std::size_t n);
  void readHeader();
  void onHeader(ErrorCode ec);
  void onBody(ErrorCode ec);
  void answerError(http::status status, std::string_view message);
  void lingerThenClose();
  void discard(std::size_t dropped);
  void respond();
  void onWritten(ErrorCode ec, bool keepAlive);
  void close();
  void finish();

  beast::ssl_stream<beast::tcp_stream> stream_;
  Worker& worker_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::size_t served_ = 0;
  int remotePort_ = 0;
  bool idle_ = false;    // waiting for the first byte of a request
  bool closed_ = false;  // close() ran
  std::list<std::weak_ptr<Connection>>::iterator self_;
  friend class Worker;
};

}  // namespace

class HttpsServer::Impl {
 public:
  explicit Impl(HttpsServerOptions o) : options(std::move(o)) {}

  Snapshot readFiles() const {
    Snapshot s;
    s.cert = readFile(options.certFile);
    s.key = readFile(options.keyFile);
    if (!s.cert) {
      s.state = "error: " + s.cert.error().message;
    } else if (!s.key) {
      s.state = "error: " + s.key.error().message;
    } else {
      s.state = sha256Hex(*s.cert) + sha256Hex(*s.key);
    }
    return s;
  }

  Result<std::shared_ptr<const KeyPair>> load(const Snapshot& s) const {
    if (!s.cert) return fail(s.cert.error().message);
    if (!s.key) return fail(s.key.error().message);
    return parseKeyPair(*s.cert, options.certFile, *s.key, options.keyFile);
  }

  std::shared_ptr<const KeyPair> current() const {
    std::lock_guard lock(pairMutex);
    return pair;
  }

  void serve(std::shared_ptr<const KeyPair> next) {
    std::lock_guard lock(pairMutex);
    pair = std::move(next);
  }

  // Called by OpenSSL in every handshake, on the server's threads, before the certificate is
  // chosen: hands the handshake the pair current now. The SSL object keeps its own references,
  // so a reload during the handshake does not pull the pair from under it.
  static int selectCertificate(SSL* ssl, void* arg) {
    auto pair = static_cast<const Impl*>(arg)->current();
    if (SSL_use_certificate(ssl, pair->cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl, pair->key.get()) != 1 ||
        SSL_set1_chain(ssl, pair->chain.get()) != 1) {
      ERR_clear_error();
      return 0;  // fails this handshake only
    }
    return 1;
  }

  // One check of the files; see the header for what a change does.
  void checkFiles(std::stop_token stop) {
    Snapshot s = readFiles();
    if (s.state == lastSeen) return;
    auto next = load(s);
    if (!next) {
      // Kubernetes swaps both files at once, but reading one and then the other may straddle
      // the swap: look again before calling it a failure.
      std::unique_lock lock(wakeMutex);
      wake.wait_for(lock, stop, std::chrono::milliseconds(50), [] { return false; });
      lock.unlock();
      Snapshot again = readFiles();
      if (again.state != s.state) {
        s = std::move(again);
        if (s.state == lastSeen) return;
        next = load(s);
      }
    }
    lastSeen = s.state;
    if (!next) {
      ++counters.reloadFailures;
      log::warn("the certificate files changed but do not load; still serving the previous pair",
                {{"error", next.error().message}, {"sha256", current()->sha256}});
      return;
    }
    std::string previous = current()->sha256;
    serve(*next);
    ++counters.reloads;
    log::info(
        "serving a reloaded certificate",
        {{"sha256", (*next)->sha256}, {"previous", previous}, {"notAfter", (*next)->notAfter}});
  }

  void watch(std::stop_token stop) {
    while (!stop.stop_requested()) {
      {
        std::unique_lock lock(wakeMutex);
        if (wake.wait_for(lock, stop, options.reloadCheckInterval,
                          [&] { return stop.stop_requested(); })) {
          return;
        }
      }
      checkFiles(stop);
    }
  }

  void accept();

  HttpsServerOptions options;
  Routes routes;
  int port = 0;
  Counters counters;

  mutable std::mutex pairMutex;
  std::shared_ptr<const KeyPair> pair;  // never null once create() returns

  std::string lastSeen;  // the watcher's: the Snapshot::state acted on last
  std::mutex wakeMutex;
  std::condition_variable_any wake;

  std::unique_ptr<asio::ssl::context> tls;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;  // on workers[0]'s loop
  std::size_t nextWorker = 0;               // the acceptor's: round robin
  std::optional<asio::steady_timer> acceptRetry;
  std::atomic<bool> accepting{false};
  std::atomic<bool> draining{false};
  std::jthread watcher;
  bool started = false;
  bool stopped = false;
};

namespace {

// One event loop on one thread, and the connections it serves. Everything of a connection
// happens on its worker's thread, so nothing of it needs a lock.
class Worker {
 public:
  explicit Worker(HttpsServer::Impl& server) : server_(server), guard_(loop_.get_executor()) {}

  asio::io_context& loop() { return loop_; }
  HttpsServer::Impl& server() { return server_; }

  void run() {
    thread_ = std::thread([this] {
      for (;;) {
        try {
          loop_.run();
          return;
        } catch (const std::exception& e) {
          // A handler's exception is answered inside the connection; anything reaching here
          // is a bug of the server's own, and the loop must go on serving the others.
          log::error("HTTPS server: unexpected exception in an event loop", {{"error", e.what()}});
        }
      }
    });
  }

  // On this worker's thread: closes idle connections, marks the others to close after their
  // answer, and lets the loop end once they are gone.
  void drain() {
    asio::post(loop_, [this] {
      // Closing a connection takes it off the list: walk a copy.
      std::vector<std::shared_ptr<Connection>> open;
      for (auto& weak : connections_) {
        if (auto c = weak.lock()) open.push_back(std::move(c));
      }
      for (auto& c : open)
        c->drain();
      guard_.reset();
    });
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // On this worker's thread.
  void adopt(const std::shared_ptr<Connection>& c) {
    c->self_ = connections_.insert(connections_.end(), c);
  }
  void forget(Connection& c) { connections_.erase(c.self_); }

 private:
  HttpsServer::Impl& server_;
  asio::io_context loop_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::list<std::weak_ptr<Connection>> connections_;
  std::thread thread_;
};

Connection::Connection(tcp::socket socket, asio::ssl::context& tls, Worker& worker)
    : stream_(std::move(socket), tls), worker_(worker) {
  ErrorCode ignored;
  remotePort_ = beast::get_lowest_layer(stream_).socket().remote_endpoint(ignored).port();
}

void Connection::start() {
  worker_.adopt(shared_from_this());
  auto& counters = worker_.server().counters;
  ++counters.open;
  beast::get_lowest_layer(stream_).expires_after(worker_.server().options.handshakeTimeout);
  stream_.async_handshake(asio::ssl::stream_base::server,
                          [self = shared_from_this()](ErrorCode ec) { self->onHandshake(ec); });
}

void Connection::drain() {
  if (idle_) close();
}

void Connection::onHandshake(ErrorCode ec) {
  if (ec) {
    auto& counters = worker_.server().counters;
    ++(ec == beast::error::timeout ? counters.timeouts : counters.handshakeFailures);
    return close();
  }
  awaitRequest();
}

void Connection::awaitRequest() {
  const auto& options = worker_.server().options;
  if (worker_.server().draining.load(std::memory_order_relaxed)) return close();
  if (buffer_.size() > 0) return readHeader();  // a pipelined request is here already
  idle_ = true;
  beast::get_lowest_layer(stream_).expires_after(options.idleTimeout);
  stream_.async_read_some(
      buffer_.prepare(4096),
      [self = shared_from_this()](ErrorCode ec, std::size_t n) { self->onFirstBytes(ec, n); });
}

void Connection::onFirstBytes(ErrorCode ec, std::size_t n) {
  idle_ = false;
  if (ec) return close();  // the client left, or stayed idle past idleTimeout
  buffer_.commit(n);
  readHeader();
}

void Connection::readHeader() {
  const auto& options = worker_.server().options;
  // From the request's first byte on, one deadline for its headers and body.
  beast::get_lowest_layer(stream_).expires_after(options.requestTimeout);
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(options.maxHeaderBytes, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(options.maxBodyBytes);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](ErrorCode ec, std::size_t) { self->onHeader(ec); });
}

void Connection::onHeader(ErrorCode ec) {
  auto& counters = worker_.server().counters;
  if (ec == http::error::body_limit)
    return answerError(http::status::payload_too_large, "the request body is too large");
  if (ec == http::error::header_limit)
    return answerError(http::status::request_header_fields_too_large,
                       "the request headers are too large");
  if (ec == beast::error::timeout) {
    ++counters.timeouts;
    return close();
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::ssl::error::stream_truncated || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset) {
    return close();
  }
  if (ec) return answerError(http::status::bad_request, "malformed request: " + ec.message());
  const auto& request = parser_->get();
  if (request.version() == 11 && request.find(http::field::host) == request.end())
    return answerError(http::status::bad_request, "an HTTP/1.1 request needs a Host header");
  if (beast::iequals(request[http::field::expect], "100-continue") && !parser_->is_done()) {
    // The client waits for this before it sends the body.
    auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                      request.version());
    http::async_write(
        stream_, *interim, [self = shared_from_this(), interim](ErrorCode written, std::size_t) {
          if (written) return self->close();
          http::async_read(self->stream_, self->buffer_, *self->parser_,
                           [self](ErrorCode read, std::size_t) { self->onBody(read); });
        });
    return;
  }
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](ErrorCode read, std::size_t) { self->onBody(read); });
}

void Connection::onBody(ErrorCode ec) {
  if (ec == http::error::body_limit)
    return answerError(http::status::payload_too_large, "the request body is too large");
  if (ec == beast::error::timeout) {
    ++worker_.server().counters.timeouts;
    return close();
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::ssl::error::stream_truncated || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset || ec == http::error::partial_message) {
    return close();
  }
  if (ec) return answerError(http::status::bad_request, "malformed request: " + ec.message());
  respond();
}

// An answer after which the connection is closed: what follows on it is not the start of a
// request (an unparsed or refused body), or the client is not one to keep.
void Connection::answerError(http::status status, std::string_view message) {
  ++worker_.server().counters.malformed;
  response_ = {};
  response_.version(11);
  response_.result(status);
  response_.set(http::field::content_type, "text/plain");
  response_.body() = std::string(message) + "\n";
  response_.keep_alive(false);
  response_.prepare_payload();
  beast::get_lowest_layer(stream_).expires_after(worker_.server().options.writeTimeout);
  http::async_write(stream_, response_, [self = shared_from_this()](ErrorCode ec, std::size_t) {
    if (ec) return self->close();
    self->lingerThenClose();
  });
}

// After an error answer the client may still be sending (a body refused unread): closing with
// its bytes unread would reset the connection and could destroy the answer before the client
// reads it. So the server ends its side (a FIN after the answer, which carries its length, so
// no TLS close_notify is needed) and reads and drops what still comes, for a short while.
void Connection::lingerThenClose() {
  auto& tcpStream = beast::get_lowest_layer(stream_);
  ErrorCode ignored;
  tcpStream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  tcpStream.expires_after(kLinger);
  discard(0);
}

void Connection::discard(std::size_t dropped) {
  // Whatever arrives is dropped, so every connection of the thread may share one buffer.
  thread_local std::array<char, 16 << 10> sink;
  beast::get_lowest_layer(stream_).async_read_some(
      asio::buffer(sink), [self = shared_from_this(), dropped](ErrorCode ec, std::size_t n) {
        if (ec || dropped + n > kLingerBytes) return self->close();
        self->discard(dropped + n);
      });
}

void Connection::respond() {
  HttpsServer::Impl& server = worker_.server();
  const auto& request = parser_->get();
  ++served_;
  const bool keepAlive = request.keep_alive() && served_ < server.options.keepAliveMaxRequests &&
                         !server.draining.load(std::memory_order_relaxed);
  HttpResponse answer;
  std::string allow;
  const std::string_view target = view(request.target());
  const std::string_view path = target.substr(0, target.find('?'));
  if (const HttpHandler* handler =
          server.routes.find(view(request.method_string()), path, &allow)) {
    HttpRequest r;
    r.method = view(request.method_string());
    r.path = path;
    r.body = request.body();
    r.remotePort = remotePort_;
    if (const auto mark = target.find('?'); mark != target.npos) r.query = target.substr(mark + 1);
    r.authorization = view(request[http::field::authorization]);
    try {
      answer = (*handler)(r);
    } catch (const std::exception& e) {
      log::error("request handler failed", {{"path", std::string(path)}, {"error", e.what()}});
      answer = {500, "internal error\n"};
    } catch (...) {
      log::error("request handler failed", {{"path", std::string(path)}, {"error", "unknown"}});
      answer = {500, "internal error\n"};
    }
  } else if (!allow.empty()) {
    answer = {405, "method not allowed\n"};
  } else {
    answer = {404, "not found\n"};
  }
  response_ = {};
  response_.version(request.version());
  response_.result(static_cast<unsigned>(answer.status));
  response_.set(http::field::content_type, answer.contentType);
  if (!allow.empty()) response_.set(http::field::allow, allow);
  response_.body() = std::move(answer.body);
  response_.keep_alive(keepAlive);
  response_.prepare_payload();
  parser_.reset();
  beast::get_lowest_layer(stream_).expires_after(server.options.writeTimeout);
  http::async_write(stream_, response_,
                    [self = shared_from_this(), keepAlive](ErrorCode ec, std::size_t) {
                      self->onWritten(ec, keepAlive);
                    });
}

void Connection::onWritten(ErrorCode ec, bool keepAlive) {
  if (ec) return close();
  response_ = {};
  if (keepAlive) return awaitRequest();
  // TLS close_notify, then the socket, within a short deadline: the client need not answer.
  beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(1));
  stream_.async_shutdown([self = shared_from_this()](ErrorCode) { self->close(); });
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  idle_ = false;
  ErrorCode ignored;
  auto& socket = beast::get_lowest_layer(stream_).socket();
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(stream_).close();
  // Destroyed when the last handler holding it returns.
  finish();
}

void Connection::finish() {
  --worker_.server().counters.open;
  worker_.forget(*this);
}

}  // namespace

void HttpsServer::Impl::accept() {
  Worker& target = *workers[nextWorker];
  nextWorker = (nextWorker + 1) % workers.size();
  acceptor->async_accept(target.loop(), [this, &target](ErrorCode ec, tcp::socket socket) {
    if (!accepting.load()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors or memory, for instance: wait a little rather than spin.
      log::warn("HTTPS server: cannot accept a connection", {{"error", ec.message()}});
      acceptRetry->expires_after(std::chrono::milliseconds(100));
      acceptRetry->async_wait([this](ErrorCode e) {
        if (!e && accepting.load()) accept();
      });
      return;
    }
    ++counters.connections;
    if (counters.open.load() >= static_cast<int64_t>(options.maxConnections)) {
      ++counters.refused;
      ErrorCode ignored;
      socket.close(ignored);
    } else {
      ErrorCode ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      // Made on the worker's own loop: everything of the connection happens there.
      asio::post(target.loop(), [this, &target, s = std::move(socket)]() mutable {
        std::make_shared<Connection>(std::move(s), *tls, target)->start();
      });
    }
    accept();
  });
}

Result<std::unique_ptr<HttpsServer>> HttpsServer::create(
    HttpsServerOptions options, const std::function<void(Routes&)>& routes) {
  static std::once_flag ignoreSigpipe;
  std::call_once(ignoreSigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });

  if (options.threads < 0) return fail("the HTTPS server's thread count cannot be negative");
  if (options.threads == 0)
    options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (options.reloadCheckInterval <= std::chrono::milliseconds(0))
    return fail("the certificate reload interval must be positive");
  for (auto t : {options.handshakeTimeout, options.requestTimeout, options.idleTimeout,
                 options.writeTimeout}) {
    if (t <= std::chrono::milliseconds(0))
      return fail("the HTTPS server's timeouts must be positive");
  }
  if (options.keepAliveMaxRequests < 1 || options.maxConnections < 1)
    return fail("the HTTPS server's request and connection limits must be at least 1");
  auto impl = std::make_unique<Impl>(std::move(options));
  const HttpsServerOptions& o = impl->options;

  Snapshot files = impl->readFiles();
  auto pair = impl->load(files);
  if (!pair) return fail(pair.error().message);
  impl->pair = *pair;
  impl->lastSeen = files.state;

  impl->tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* ctx = impl->tls->native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return fail("cannot set up TLS" + takeOpensslErrors());
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // TLS 1.2: forward secrecy and AEAD only (TLS 1.3's suites are all of that kind).
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
    return fail("cannot set up TLS" + takeOpensslErrors());
  SSL_CTX_set_cert_cb(ctx, &Impl::selectCertificate, impl.get());

  routes(impl->routes);

  for (int i = 0; i < o.threads; ++i)
    impl->workers.push_back(std::make_unique<Worker>(*impl));
  try {
    auto address = asio::ip::make_address(o.host);
    tcp::endpoint endpoint(address, static_cast<unsigned short>(o.port));
    impl->acceptor = std::make_unique<tcp::acceptor>(impl->workers[0]->loop());
    impl->acceptor->open(endpoint.protocol());
    // SO_REUSEADDR only: SO_REUSEPORT would let two servers share a port silently.
    impl->acceptor->set_option(tcp::acceptor::reuse_address(true));
    impl->acceptor->bind(endpoint);
    impl->acceptor->listen(asio::socket_base::max_listen_connections);
    impl->port = impl->acceptor->local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    return fail("cannot serve HTTPS on " + o.host + ":" + std::to_string(o.port) + ": " +
                e.code().message());
  }
  impl->acceptRetry.emplace(impl->workers[0]->loop());
  log::info("HTTPS server bound", {{"host", o.host},
                                   {"port", impl->port},
                                   {"threads", o.threads},
                                   {"certificate", o.certFile.string()},
                                   {"sha256", impl->pair->sha256},
                                   {"notAfter", impl->pair->notAfter}});
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

HttpsServer::HttpsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpsServer::~HttpsServer() {
  stop();
}

int HttpsServer::port() const {
  return impl_->port;
}

void HttpsServer::start() {
  Impl& impl = *impl_;
  if (impl.started || impl.stopped) return;
  impl.started = true;
  impl.accepting = true;
  asio::post(impl.workers[0]->loop(), [&impl] { impl.accept(); });
  for (auto& w : impl.workers)
    w->run();
  impl.watcher = std::jthread([&impl](std::stop_token stop) { impl.watch(stop); });
}

void HttpsServer::stop() {
  Impl& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  if (impl.watcher.joinable()) {
    impl.watcher.request_stop();
    impl.watcher.join();
  }
  if (!impl.started) {
    ErrorCode ignored;
    impl.acceptor->close(ignored);
    return;
  }
  impl.draining = true;
  // On the acceptor's loop: no new connections.
  asio::post(impl.workers[0]->loop(), [&impl] {
    impl.accepting = false;
    ErrorCode ignored;
    impl.acceptor->close(ignored);
    impl.acceptRetry->cancel();
  });
  // Each loop ends when its last connection has closed (every step has a deadline).
  for (auto& w : impl.workers)
    w->drain();
  for (auto& w : impl.workers)
    w->join();
}

bool HttpsServer::serving() const {
  return impl_->accepting.load();
}

std::string HttpsServer::certificateSha256() const {
  return impl_->current()->sha256;
}

const HttpsServer::Counters& HttpsServer::counters() const {
  return impl_->counters;
}

}  // namespace pi0::net
