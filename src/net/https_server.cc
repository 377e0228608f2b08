#include "net/https_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/digest.h"
#include "common/files.h"
#include "common/log.h"

namespace pi0::net {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using ChainPtr = std::unique_ptr<STACK_OF(X509), ChainFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// A certificate (with the rest of its chain) and its key, immutable once loaded; shared between
// the handshakes that use it and the server, which may replace it at any time.
struct KeyPair {
  X509Ptr cert;
  ChainPtr chain;  // intermediates after the serving certificate; may be empty
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

// What OpenSSL's error queue of this thread says (then empties it), for messages.
std::string takeOpensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out.empty() ? "" : " (" + out + ")";
}

BioPtr memoryBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// An encrypted key would make OpenSSL prompt on the terminal; refuse it instead.
int noPassword(char*, int, int, void*) {
  return -1;
}

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

// SSLServer with access to the listening socket, so that a server bound but never started
// gives its socket back.
class TlsServer : public httplib::SSLServer {
 public:
  using httplib::SSLServer::SSLServer;

  void closeUnstarted() {
    socket_t sock = svr_sock_.exchange(INVALID_SOCKET);
    if (sock != INVALID_SOCKET) ::close(sock);
  }
};

bool expectsBody(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE" ||
         method == "PRI";
}

// cpp-httplib serves a connection, from the handshake to the close, on one thread. What the
// logger needs to know about the connection and the request it just answered:
// the connection's socket (recorded when its handshake starts) ...
thread_local int connectionFd = -1;
// ... and the request that reached routing (the pre-routing handler), if it was this one.
thread_local const httplib::Request* routedRequest = nullptr;

// After this answer, the rest of the connection is not the start of a request, so it must be
// closed rather than read on (or waited on for keepAliveTimeout): a request cpp-httplib could
// not parse or read in time (it answers 400 and would keep the connection), a body refused
// unread (411), a body too large (413; cpp-httplib skipped it, but a client that sends one is
// not one to keep), a body cut short by the read timeout (400 with less body than announced).
bool streamOutOfStep(const httplib::Request& req, const httplib::Response& res, bool routed) {
  if (res.status == 411 || res.status == 413) return true;
  if (res.status >= 400 && !routed) return true;
  if (res.status == 400 && expectsBody(req.method) && req.has_header("Content-Length")) {
    return req.body.size() < req.get_header_value<uint64_t>("Content-Length");
  }
  return false;
}

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

  HttpsServerOptions options;
  std::unique_ptr<TlsServer> server;
  int port = 0;
  Counters counters;

  mutable std::mutex pairMutex;
  std::shared_ptr<const KeyPair> pair;  // never null once create() returns

  std::string lastSeen;  // the watcher's: the Snapshot::state acted on last
  std::mutex wakeMutex;
  std::condition_variable_any wake;

  std::thread listener;
  std::jthread watcher;
  std::atomic<bool> listenEnded{false};
  bool started = false;
  std::atomic<bool> stopped{false};
};

Result<std::unique_ptr<HttpsServer>> HttpsServer::create(
    HttpsServerOptions options, const std::function<void(httplib::Server&)>& routes) {
  static std::once_flag ignoreSigpipe;
  std::call_once(ignoreSigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });

  if (options.threads < 1) return fail("the HTTPS server needs at least one thread");
  if (options.reloadCheckInterval <= std::chrono::milliseconds(0))
    return fail("the certificate reload interval must be positive");
  auto impl = std::make_unique<Impl>(std::move(options));
  const HttpsServerOptions& o = impl->options;

  Snapshot files = impl->readFiles();
  auto pair = impl->load(files);
  if (!pair) return fail(pair.error().message);
  impl->pair = *pair;
  impl->lastSeen = files.state;

  Impl* raw = impl.get();
  impl->server = std::make_unique<TlsServer>([raw](SSL_CTX& ctx) {
    if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) return false;
    SSL_CTX_set_options(
        &ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // TLS 1.2: forward secrecy and AEAD only (TLS 1.3's suites are all of that kind).
    if (SSL_CTX_set_cipher_list(&ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) return false;
    SSL_CTX_set_cert_cb(&ctx, &Impl::selectCertificate, raw);
    SSL_CTX_set_info_callback(&ctx, [](const SSL* ssl, int where, int) {
      if ((where & SSL_CB_HANDSHAKE_START) != 0) connectionFd = SSL_get_fd(ssl);
    });
    return true;
  });
  if (!impl->server->is_valid()) {
    return fail("cannot set up TLS" + takeOpensslErrors());
  }
  httplib::Server& server = *impl->server;
  const int threads = o.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(o.readTimeout);
  server.set_write_timeout(o.writeTimeout);
  server.set_keep_alive_timeout(o.keepAliveTimeout.count());
  server.set_keep_alive_max_count(o.keepAliveMaxRequests);
  server.set_payload_max_length(o.maxBodyBytes);
  // cpp-httplib's default also sets SO_REUSEPORT, which would let two servers share a port
  // silently; a busy port must be an error.
  // TCP_NODELAY (inherited by the accepted connections): an answer goes out as two TLS
  // records, and with Nagle's algorithm the second waits for the client's delayed ACK, 40 ms.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  });
  server.set_tcp_nodelay(true);
  // Without this, cpp-httplib answers 500 with the exception's text in a header.
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("request handler failed", {{"path", req.path}, {"error", what}});
        res.status = 500;
        res.set_content("internal error\n", "text/plain");
      });

  routes(server);

  // After `routes`, so that these stay the server's own. cpp-httplib limits a body only by its
  // Content-Length (larger: 413 before the handler, the body skipped); a chunked body, or one
  // that runs to the end of the connection, it would read without limit. Such requests are
  // refused before any of the body is read, and their connection is closed after the answer,
  // since what follows on it is body, not a request.
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    routedRequest = &req;
    if (!expectsBody(req.method)) return httplib::Server::HandlerResponse::Unhandled;
    if (req.has_header("Transfer-Encoding") || !req.has_header("Content-Length")) {
      res.status = 411;
      res.set_header("Connection", "close");
      res.set_content("a request body needs a Content-Length\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Runs after each answer is written.
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    bool routed = routedRequest == &req;
    routedRequest = nullptr;
    if (connectionFd >= 0 && streamOutOfStep(req, res, routed)) {
      // The read side ends at once; what was written still goes out before the FIN.
      ::shutdown(connectionFd, SHUT_RDWR);
    }
  });

  int port = o.port == 0 ? server.bind_to_any_port(o.host)
                         : (server.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0) {
    return fail("cannot serve HTTPS on " + o.host + ":" + std::to_string(o.port) +
                " (address in use, or not an address of this host)");
  }
  impl->port = port;
  log::info("HTTPS server bound", {{"host", o.host},
                                   {"port", port},
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
  impl.listener = std::thread([&impl] {
    bool ok = impl.server->listen_after_bind();
    impl.listenEnded = true;
    if (!ok && !impl.stopped) {
      log::error("the HTTPS server stopped serving: its listening socket failed",
                 {{"port", impl.port}});
    }
  });
  // httplib's stop() does nothing before the loop runs; wait for it, so that a stop() right
  // after start() is not lost.
  while (!impl.server->is_running() && !impl.listenEnded) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
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
  if (impl.started) {
    impl.server->stop();
    if (impl.listener.joinable()) impl.listener.join();
  } else {
    impl.server->closeUnstarted();
  }
}

bool HttpsServer::serving() const {
  return impl_->server->is_running();
}

std::string HttpsServer::certificateSha256() const {
  return impl_->current()->sha256;
}

const HttpsServer::Counters& HttpsServer::counters() const {
  return impl_->counters;
}

}  // namespace pi0::net
