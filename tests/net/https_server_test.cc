#include "net/https_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "certs/openssl.h"
#include "common/digest.h"
#include "common/log.h"
#include "temp_dir.h"

namespace pi0::net {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using certs::PkeyPtr;
using certs::X509Ptr;

PkeyPtr newKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  REQUIRE(key);
  return key;
}

// A certificate for `key`, signed by `issuer`/`issuerKey` (self-signed when they are null):
// a CA when `ca`, else a serving certificate for 127.0.0.1 and localhost.
X509Ptr newCert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuerKey, bool ca) {
  static long serial = 1;
  X509Ptr cert(X509_new());
  REQUIRE(cert);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    REQUIRE(ext != nullptr);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_subject_key_identifier, "hash");
  if (ca) {
    add(NID_basic_constraints, "critical,CA:TRUE");
    add(NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add(NID_basic_constraints, "CA:FALSE");
    add(NID_key_usage, "critical,digitalSignature");
    add(NID_ext_key_usage, "serverAuth");
    add(NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  }
  if (issuer != nullptr) add(NID_authority_key_identifier, "keyid");
  REQUIRE(X509_sign(cert.get(), issuerKey != nullptr ? issuerKey : key, EVP_sha256()) > 0);
  return cert;
}

std::string pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string derSha256(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  std::string out = sha256Hex(std::string_view(reinterpret_cast<char*>(der), n));
  OPENSSL_free(der);
  return out;
}

// The test's PKI, made once: a root CA; pair A signed by the root; pair B signed by an
// intermediate CA, whose file holds the chain (leaf, then intermediate); a key of neither.
struct Pki {
  std::string caPem;
  std::string certA, keyA, shaA;
  std::string certB, keyB, shaB;
  std::string strayKey;
};

const Pki& pki() {
  static const Pki made = [] {
    Pki p;
    PkeyPtr caKey = newKey(), midKey = newKey(), keyA = newKey(), keyB = newKey();
    X509Ptr ca = newCert("pi0 test root", caKey.get(), nullptr, nullptr, true);
    X509Ptr mid = newCert("pi0 test intermediate", midKey.get(), ca.get(), caKey.get(), true);
    X509Ptr a = newCert("pi0 serving A", keyA.get(), ca.get(), caKey.get(), false);
    X509Ptr b = newCert("pi0 serving B", keyB.get(), mid.get(), midKey.get(), false);
    p.caPem = pem(ca.get());
    p.certA = pem(a.get());
    p.keyA = pem(keyA.get());
    p.shaA = derSha256(a.get());
    p.certB = pem(b.get()) + pem(mid.get());
    p.keyB = pem(keyB.get());
    p.shaB = derSha256(b.get());
    p.strayKey = pem(newKey().get());
    return p;
  }();
  return made;
}

// Replaces `path` the way Kubernetes' atomic writer does: a complete file under a temporary
// name, renamed over.
void replaceFile(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  fs::rename(tmp, path);
}

// Captures the log lines (from any thread) while it lives.
class LogCapture {
 public:
  LogCapture() {
    log::setSink([this](std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::setSink({}); }
  int count(std::string_view needle) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& line : lines_)
      n += line.find(needle) != std::string::npos;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

// A TLS connection made with OpenSSL directly, for what httplib's client cannot show: the
// peer's certificate, old protocol versions, half-sent requests.
struct TlsConnection {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  bool handshaken = false;
  unsigned long error = 0;  // the first OpenSSL error of a failed handshake

  ~TlsConnection() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }

  std::string peerSha256() const {
    X509Ptr peer(SSL_get1_peer_certificate(ssl));
    return peer ? derSha256(peer.get()) : "";
  }

  void send(const std::string& text) const {
    REQUIRE(SSL_write(ssl, text.data(), static_cast<int>(text.size())) ==
            static_cast<int>(text.size()));
  }

  // Reads until the server closes the connection (or 5 s pass); returns what came.
  std::string readToEnd() const {
    std::string out;
    char buf[4096];
    while (true) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ERR_clear_error();
    return out;
  }
};

int tcpConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Connects and shakes hands verifying against `caFile` and the name 127.0.0.1. With
// `maxVersion`, the client offers only versions up to it (and allows old ones at all).
std::unique_ptr<TlsConnection> connectTls(int port, const fs::path& caFile, int maxVersion = 0) {
  auto c = std::make_unique<TlsConnection>();
  c->fd = tcpConnect(port);
  c->ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(SSL_CTX_load_verify_locations(c->ctx, caFile.c_str(), nullptr) == 1);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, nullptr);
  if (maxVersion != 0) {
    // OpenSSL 3 refuses TLS 1.0/1.1 itself above security level 0: lower it, so that a refusal
    // comes from the server.
    SSL_CTX_set_security_level(c->ctx, 0);
    REQUIRE(SSL_CTX_set_cipher_list(c->ctx, "DEFAULT:@SECLEVEL=0") == 1);
    REQUIRE(SSL_CTX_set_min_proto_version(c->ctx, TLS1_VERSION) == 1);
    REQUIRE(SSL_CTX_set_max_proto_version(c->ctx, maxVersion) == 1);
  }
  c->ssl = SSL_new(c->ctx);
  SSL_set_fd(c->ssl, c->fd);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1");
  ERR_clear_error();
  c->handshaken = SSL_connect(c->ssl) == 1;
  if (!c->handshaken) c->error = ERR_peek_error();
  ERR_clear_error();
  return c;
}

// A running server with pair A in a Kubernetes-style Secret volume (tls.crt and tls.key are
// links through `..data` to a timestamped directory), GET /hello (answers the client's port,
// which tells connections apart) and POST /echo.
struct Fixture {
  testing::TempDir dir;
  fs::path caFile;
  fs::path certFile, keyFile;
  std::atomic<int> echoed{0};
  std::unique_ptr<HttpsServer> server;
  int generation = 0;

  explicit Fixture(HttpsServerOptions options = {}) {
    caFile = dir.write("ca.crt", pki().caPem);
    fs::create_directory(dir.path() / "secret");
    publish(pki().certA, pki().keyA);
    fs::create_symlink("..data/tls.crt", dir.path() / "secret" / "tls.crt");
    fs::create_symlink("..data/tls.key", dir.path() / "secret" / "tls.key");
    certFile = dir.path() / "secret" / "tls.crt";
    keyFile = dir.path() / "secret" / "tls.key";

    options.host = "127.0.0.1";
    options.port = 0;
    options.certFile = certFile;
    options.keyFile = keyFile;
    auto created = HttpsServer::create(options, [this](Routes& r) {
      r.get("/hello", [](const HttpRequest& req) {
        return HttpResponse{200, std::to_string(req.remotePort)};
      });
      r.post("/echo", [this](const HttpRequest& req) {
        ++echoed;
        return HttpResponse{200, std::string(req.body)};
      });
      r.get("/boom", [](const HttpRequest&) -> HttpResponse {
        throw std::runtime_error("the handler failed");
      });
    });
    REQUIRE_MESSAGE(created.has_value(), (created ? "" : created.error().message));
    server = std::move(*created);
    server->start();
  }

  // Writes a new pair as Kubernetes updates a Secret volume: a new directory, then the
  // `..data` link swapped to it by a rename.
  void publish(const std::string& cert, const std::string& key) {
    fs::path secret = dir.path() / "secret";
    std::string name = "..gen" + std::to_string(++generation);
    fs::create_directory(secret / name);
    std::ofstream(secret / name / "tls.crt") << cert;
    std::ofstream(secret / name / "tls.key") << key;
    fs::create_directory_symlink(name, secret / "..data_tmp");
    fs::rename(secret / "..data_tmp", secret / "..data");
  }

  std::unique_ptr<httplib::SSLClient> client() const {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server->port());
    c->set_ca_cert_path(caFile.c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(2, 0);
    c->set_read_timeout(5, 0);
    return c;
  }

  // Waits (up to 5 s) for `done`.
  template <class F>
  static bool eventually(F done) {
    auto deadline = Clock::now() + 5s;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }
};

HttpsServerOptions fast() {
  HttpsServerOptions o;
  o.reloadCheckInterval = 50ms;
  o.idleTimeout = 2s;
  o.threads = 2;
  return o;
}

TEST_CASE("serves GET and POST over TLS to a client that verifies against the CA") {
  Fixture f(fast());
  CHECK(f.server->certificateSha256() == pki().shaA);
  auto cli = f.client();
  auto get = cli->Get("/hello");
  REQUIRE_MESSAGE(get, httplib::to_string(get.error()));
  CHECK(get->status == 200);
  auto post = cli->Post("/echo", "ping pong", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 200);
  CHECK(post->body == "ping pong");
  CHECK(f.echoed == 1);

  auto raw = connectTls(f.server->port(), f.caFile);
  REQUIRE(raw->handshaken);
  CHECK(raw->peerSha256() == pki().shaA);
  CHECK(SSL_version(raw->ssl) >= TLS1_2_VERSION);

  // A client that trusts another CA does not get through.
  testing::TempDir other;
  fs::path strangerCa = other.write("ca.crt", pki().certA);  // not a CA certificate
  auto stranger = connectTls(f.server->port(), strangerCa);
  CHECK_FALSE(stranger->handshaken);
}

TEST_CASE("a client that offers at most TLS 1.1 is refused") {
  Fixture f(fast());
  auto old = connectTls(f.server->port(), f.caFile, TLS1_1_VERSION);
  CHECK_FALSE(old->handshaken);
  // The server's protocol_version alert, not a refusal of the client's own.
  CHECK(ERR_GET_REASON(old->error) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
  // The same client offering TLS 1.2 gets through.
  auto current = connectTls(f.server->port(), f.caFile, TLS1_2_VERSION);
  CHECK(current->handshaken);
}

TEST_CASE("a body over maxBodyBytes is answered 413 and the handler does not run") {
  HttpsServerOptions o = fast();
  o.maxBodyBytes = 1000;
  Fixture f(o);
  auto cli = f.client();
  auto fits = cli->Post("/echo", std::string(1000, 'x'), "text/plain");
  REQUIRE(fits);
  CHECK(fits->status == 200);
  CHECK(f.echoed == 1);

  auto tooLarge = cli->Post("/echo", std::string(1001, 'x'), "text/plain");
  REQUIRE(tooLarge);
  CHECK(tooLarge->status == 413);
  auto muchTooLarge = f.client()->Post("/echo", std::string(4 << 20, 'x'), "text/plain");
  REQUIRE(muchTooLarge);
  CHECK(muchTooLarge->status == 413);

  // A chunked body is counted as it arrives: within the bound it is served, past it the
  // answer is 413 and the connection is closed (what follows on it is body).
  auto chunked = connectTls(f.server->port(), f.caFile);
  REQUIRE(chunked->handshaken);
  chunked->send(
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
  chunked->send(
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3e8\r\n" +
      std::string(1000, 'y') + "\r\n1\r\nz\r\n");
  auto chunkedStart = Clock::now();
  std::string answers = chunked->readToEnd();
  CHECK_MESSAGE(answers.find("HTTP/1.1 200") == 0, answers);
  CHECK(answers.find("hello") != std::string::npos);
  CHECK_MESSAGE(answers.find("HTTP/1.1 413") != std::string::npos, answers);
  CHECK(Clock::now() - chunkedStart < 2s);  // closed, not left to time out
  CHECK(f.echoed == 2);

  // The server still serves.
  auto after = f.client()->Post("/echo", "ok", "text/plain");
  REQUIRE(after);
  CHECK(after->body == "ok");
  CHECK(f.server->counters().malformed == 3);
}

TEST_CASE("a client that stalls mid-request is cut off at its deadline; others are served") {
  HttpsServerOptions o = fast();
  o.requestTimeout = 1s;
  o.handshakeTimeout = 1s;
  Fixture f(o);

  auto start = Clock::now();
  // Stalls in the headers, in the body, and before the TLS handshake.
  auto inHeaders = connectTls(f.server->port(), f.caFile);
  REQUIRE(inHeaders->handshaken);
  inHeaders->send("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ");
  auto inBody = connectTls(f.server->port(), f.caFile);
  REQUIRE(inBody->handshaken);
  inBody->send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nhalf");
  int plainTcp = tcpConnect(f.server->port());

  // Meanwhile another client is served at once.
  auto cli = f.client();
  auto served = cli->Get("/hello");
  REQUIRE(served);
  CHECK(served->status == 200);
  CHECK(Clock::now() - start < 900ms);

  // Each stalled connection is watched at the same time: when does the server close it?
  auto cutAfter = [&](auto read) {
    return std::async(std::launch::async, [&, read] {
      std::string answer = read();
      return std::pair(answer, Clock::now() - start);
    });
  };
  auto headers = cutAfter([&] { return inHeaders->readToEnd(); });
  auto body = cutAfter([&] { return inBody->readToEnd(); });
  auto tcp = cutAfter([&] {
    char byte;
    return ::recv(plainTcp, &byte, 1, 0) <= 0 ? std::string() : std::string("data");
  });
  auto [headersAnswer, headersCut] = headers.get();
  auto [bodyAnswer, bodyCut] = body.get();
  auto [tcpAnswer, tcpCut] = tcp.get();
  ::close(plainTcp);

  // A client that stopped sending gets no answer: the connection ends at the deadline.
  CHECK_MESSAGE(headersAnswer.empty(), headersAnswer);
  CHECK(headersCut >= 900ms);
  CHECK(headersCut < 1800ms);
  CHECK_MESSAGE(bodyAnswer.empty(), bodyAnswer);
  CHECK(bodyCut >= 900ms);
  CHECK(bodyCut < 1800ms);
  CHECK(tcpAnswer.empty());
  CHECK(tcpCut >= 900ms);
  CHECK(tcpCut < 1800ms);
  CHECK(f.echoed == 0);
  CHECK(Fixture::eventually([&] { return f.server->counters().timeouts == 3; }));
}

// Whether the peer of `fd` has closed (a FIN) or reset the connection within `wait`. Data it
// sent (a TLS session ticket, say) does not count.
bool peerClosed(int fd, std::chrono::milliseconds wait) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, static_cast<int>(wait.count())) > 0 &&
         (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Sends `bytes` one at a time every 100 ms through `send` until the server closes the
// connection or 4 s pass; returns how long after the first byte the server closed it (nullopt:
// it never did).
template <class Send>
std::optional<Clock::duration> trickle(int fd, const std::string& bytes, Send send) {
  const auto start = Clock::now();
  for (std::size_t i = 0; Clock::now() - start < 4s; ++i) {
    if (peerClosed(fd, 100ms)) return Clock::now() - start;
    if (!send(bytes.substr(i % bytes.size(), 1))) return Clock::now() - start;
  }
  return std::nullopt;
}

TEST_CASE("a request or handshake trickled a byte at a time is cut off at its deadline") {
  HttpsServerOptions o = fast();
  o.requestTimeout = 1s;
  o.handshakeTimeout = 1s;
  Fixture f(o);
  auto sendTls = [](TlsConnection& c) {
    return [&c](const std::string& b) {
      return SSL_write(c.ssl, b.data(), static_cast<int>(b.size())) == 1;
    };
  };

  SUBCASE("headers") {
    auto c = connectTls(f.server->port(), f.caFile);
    REQUIRE(c->handshaken);
    c->send("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    auto cut = trickle(c->fd, "abcdefgh", sendTls(*c));
    REQUIRE_MESSAGE(cut.has_value(), "still connected after 4 s of one byte per 100 ms");
    CHECK(*cut < 2s);
  }
  SUBCASE("body") {
    auto c = connectTls(f.server->port(), f.caFile);
    REQUIRE(c->handshaken);
    c->send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n");
    auto cut = trickle(c->fd, "abcdefgh", sendTls(*c));
    REQUIRE_MESSAGE(cut.has_value(), "still connected after 4 s of one byte per 100 ms");
    CHECK(*cut < 2s);
    CHECK(f.echoed == 0);
  }
  SUBCASE("TLS handshake") {
    // A TLS record header announcing a 512-byte ClientHello, whose bytes then trickle in.
    int fd = tcpConnect(f.server->port());
    const std::string header("\x16\x03\x01\x02\x00", 5);
    REQUIRE(::send(fd, header.data(), header.size(), 0) == 5);
    auto cut = trickle(fd, std::string(1, '\0'), [fd](const std::string& b) {
      return ::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == 1;
    });
    ::close(fd);
    REQUIRE_MESSAGE(cut.has_value(), "still connected after 4 s of one byte per 100 ms");
    CHECK(*cut < 2s);
  }
  // Counted once the server has seen its own deadline pass (the close comes first).
  CHECK(Fixture::eventually([&] { return f.server->counters().timeouts == 1; }));
  // The server is not worse for it.
  auto res = f.client()->Get("/hello");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("hundreds of idle and stalled connections do not hold up a request") {
  HttpsServerOptions o = fast();
  o.handshakeTimeout = o.requestTimeout = o.idleTimeout = 30s;
  Fixture f(o);
  std::vector<int> plain;
  std::vector<std::unique_ptr<TlsConnection>> idle, stalled;
  for (int i = 0; i < 100; ++i)
    plain.push_back(tcpConnect(f.server->port()));
  for (int i = 0; i < 100; ++i) {
    idle.push_back(connectTls(f.server->port(), f.caFile));
    REQUIRE(idle.back()->handshaken);
  }
  for (int i = 0; i < 20; ++i) {
    stalled.push_back(connectTls(f.server->port(), f.caFile));
    REQUIRE(stalled.back()->handshaken);
    stalled.back()->send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nab");
  }
  CHECK(Fixture::eventually([&] { return f.server->counters().open >= 220; }));

  // Answered at once: nothing waits for the 30 s deadlines of the others.
  const auto start = Clock::now();
  auto res = f.client()->Post("/echo", "review", "text/plain");
  const auto took = Clock::now() - start;
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "review");
  CHECK(took < 3s);
  for (int fd : plain)
    ::close(fd);
}

// A request sent raw on a fresh TLS connection; everything the server wrote until it closed
// (or 5 s passed).
std::string roundTrip(const Fixture& f, const std::string& request) {
  auto c = connectTls(f.server->port(), f.caFile);
  REQUIRE(c->handshaken);
  c->send(request);
  return c->readToEnd();
}

TEST_CASE("HTTP framing as RFC 9112 says") {
  HttpsServerOptions o = fast();
  o.requestTimeout = 30s;  // an answer that waited for the deadline would show
  Fixture f(o);

  SUBCASE("pipelined requests are answered in order") {
    std::string all = roundTrip(
        f,
        "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nping"
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
        "pong");
    const auto first = all.find("HTTP/1.1 200");
    const auto second = all.find("HTTP/1.1 200", first + 1);
    const auto third = all.find("HTTP/1.1 200", second + 1);
    REQUIRE_MESSAGE(third != std::string::npos, all);
    CHECK(all.find("ping") > second);
    CHECK(all.find("ping") < third);
    CHECK(all.find("pong") > third);
    CHECK(f.echoed == 2);
  }

  SUBCASE("a bad or conflicting Content-Length is answered 400 at once") {
    for (const char* lengths :
         {"Content-Length: -1", "Content-Length: abc", "Content-Length: 4\r\nContent-Length: 5",
          "Content-Length: 4, 5", "Content-Length: 4\r\nTransfer-Encoding: chunked",
          "Content-Length: 99999999999999999999999"}) {
      const std::string framing = lengths;
      CAPTURE(framing);
      const auto start = Clock::now();
      std::string answer = roundTrip(
          f, std::string("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n") + lengths + "\r\n\r\nping");
      CHECK_MESSAGE(answer.find("HTTP/1.1 400") == 0, answer);
      CHECK(answer.find("Connection: close") != std::string::npos);
      CHECK(Clock::now() - start < 5s);
    }
    CHECK(f.echoed == 0);
    // The same value twice is one length (RFC 9110, 8.6).
    std::string same = roundTrip(f,
                                 "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
                                 "Content-Length: 4\r\nConnection: close\r\n\r\nping");
    CHECK_MESSAGE(same.find("HTTP/1.1 200") == 0, same);
  }

  SUBCASE("HTTP/1.1 without Host is answered 400; HTTP/1.0 needs none") {
    CHECK(roundTrip(f, "GET /hello HTTP/1.1\r\n\r\n").find("HTTP/1.1 400") == 0);
    CHECK(roundTrip(f, "GET /hello HTTP/1.0\r\n\r\n").find("HTTP/1.0 200") == 0);
  }

  SUBCASE("Expect: 100-continue gets its interim answer before the body is sent") {
    auto c = connectTls(f.server->port(), f.caFile);
    REQUIRE(c->handshaken);
    c->send(
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n");
    char buf[256];
    const int n = SSL_read(c->ssl, buf, sizeof buf);
    REQUIRE(n > 0);
    CHECK(std::string(buf, n).find("HTTP/1.1 100 Continue") == 0);
    c->send("ping");
    std::string answer = c->readToEnd();
    CHECK_MESSAGE(answer.find("HTTP/1.1 200") == 0, answer);
    CHECK(answer.find("ping") != std::string::npos);
  }

  SUBCASE("unknown paths, other methods and failing handlers") {
    auto cli = f.client();
    auto missing = cli->Get("/nowhere");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    auto wrongMethod = cli->Get("/echo");
    REQUIRE(wrongMethod);
    CHECK(wrongMethod->status == 405);
    CHECK(wrongMethod->get_header_value("Allow") == "POST");
    auto boom = cli->Get("/boom");
    REQUIRE(boom);
    CHECK(boom->status == 500);
    CHECK(boom->body == "internal error\n");
    auto query = cli->Get("/hello?x=1");  // the query is not part of the path
    REQUIRE(query);
    CHECK(query->status == 200);
  }
}

TEST_CASE("a new certificate in the files is served to new connections; no request fails") {
  LogCapture logs;
  Fixture f(fast());
  auto keepAlive = f.client();
  keepAlive->set_keep_alive(true);
  auto first = keepAlive->Get("/hello");
  REQUIRE(first);
  const std::string keptPort = first->body;

  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  // Fresh connections (each a handshake) throughout the swap.
  std::thread load([&] {
    while (!done) {
      auto res = f.client()->Get("/hello");
      (res && res->status == 200 ? ok : failed)++;
    }
  });
  std::this_thread::sleep_for(100ms);
  f.publish(pki().certB, pki().keyB);
  bool reloaded = Fixture::eventually([&] { return f.server->certificateSha256() == pki().shaB; });
  std::this_thread::sleep_for(100ms);
  // The keep-alive connection from before the swap still answers.
  auto during = keepAlive->Get("/hello");
  done = true;
  load.join();

  CHECK(reloaded);
  CHECK(failed == 0);
  CHECK(ok > 5);
  REQUIRE(during);
  CHECK(during->status == 200);
  CHECK(during->body == keptPort);  // the same connection
  CHECK(f.server->counters().reloads == 1);
  CHECK(f.server->counters().reloadFailures == 0);
  CHECK(logs.count("serving a reloaded certificate") == 1);

  // New connections see B, whose chain (through the intermediate) the server sends.
  auto raw = connectTls(f.server->port(), f.caFile);
  REQUIRE(raw->handshaken);
  CHECK(raw->peerSha256() == pki().shaB);
  auto fresh = f.client()->Get("/hello");
  REQUIRE(fresh);
  CHECK(fresh->status == 200);
}

TEST_CASE("a key that does not match keeps the old pair and counts one failure per change") {
  LogCapture logs;
  HttpsServerOptions o = fast();
  Fixture f(o);
  // Plain files this time, replaced by a rename over each.
  fs::path cert = f.dir.path() / "plain.crt", key = f.dir.path() / "plain.key";
  std::ofstream(cert) << pki().certA;
  std::ofstream(key) << pki().keyA;
  o.host = "127.0.0.1";
  o.port = 0;
  o.certFile = cert;
  o.keyFile = key;
  auto created = HttpsServer::create(o, [](Routes&) {});
  REQUIRE(created);
  auto& server = **created;
  server.start();

  replaceFile(key, pki().strayKey);
  REQUIRE(Fixture::eventually([&] { return server.counters().reloadFailures >= 1; }));
  std::this_thread::sleep_for(300ms);  // several more checks of the same, unchanged files
  CHECK(server.counters().reloadFailures == 1);
  CHECK(logs.count("do not load") == 1);
  CHECK(server.counters().reloads == 0);
  CHECK(server.certificateSha256() == pki().shaA);
  auto raw = connectTls(server.port(), f.caFile);
  REQUIRE(raw->handshaken);
  CHECK(raw->peerSha256() == pki().shaA);

  // A half-written certificate: the same.
  replaceFile(cert, pki().certB.substr(0, pki().certB.size() / 3));
  REQUIRE(Fixture::eventually([&] { return server.counters().reloadFailures >= 2; }));
  CHECK(server.certificateSha256() == pki().shaA);

  // A missing file: the same, and the server keeps serving.
  fs::remove(cert);
  REQUIRE(Fixture::eventually([&] { return server.counters().reloadFailures >= 3; }));
  CHECK(connectTls(server.port(), f.caFile)->handshaken);

  // A matching pair again is taken up.
  replaceFile(key, pki().keyB);
  replaceFile(cert, pki().certB);
  REQUIRE(Fixture::eventually([&] { return server.certificateSha256() == pki().shaB; }));
  CHECK(server.counters().reloads == 1);
  CHECK(connectTls(server.port(), f.caFile)->peerSha256() == pki().shaB);
  server.stop();
}

TEST_CASE("create() fails naming the file when the pair cannot be loaded") {
  testing::TempDir dir;
  fs::path cert = dir.write("tls.crt", pki().certA);
  fs::path key = dir.write("tls.key", pki().keyA);
  fs::path junk = dir.write("junk.pem", "not a certificate\n");
  fs::path stray = dir.write("stray.key", pki().strayKey);
  auto attempt = [](fs::path c, fs::path k) {
    HttpsServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.certFile = std::move(c);
    o.keyFile = std::move(k);
    return HttpsServer::create(o, [](Routes&) {});
  };
  struct Case {
    const char* what;
    fs::path cert, key, named;
  };
  for (const Case& c :
       {Case{"missing certificate", dir.path() / "absent.crt", key, dir.path() / "absent.crt"},
        Case{"missing key", cert, dir.path() / "absent.key", dir.path() / "absent.key"},
        Case{"certificate not PEM", junk, key, junk}, Case{"key not PEM", cert, junk, junk},
        Case{"key of another certificate", cert, stray, stray},
        Case{"a directory", dir.path(), key, dir.path()}}) {
    CAPTURE(c.what);
    auto result = attempt(c.cert, c.key);
    REQUIRE_FALSE(result);
    CHECK(result.error().message.find(c.named.string()) != std::string::npos);
  }
  CHECK(attempt(cert, key).has_value());
}

TEST_CASE("a busy port is an error") {
  Fixture f(fast());
  HttpsServerOptions o;
  o.host = "127.0.0.1";
  o.port = f.server->port();
  o.certFile = f.certFile;
  o.keyFile = f.keyFile;
  auto second = HttpsServer::create(o, [](Routes&) {});
  REQUIRE_FALSE(second);
  CHECK(second.error().message.find(std::to_string(f.server->port())) != std::string::npos);
  // The first still serves.
  auto res = f.client()->Get("/hello");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("stop() ends serving and may be called twice; a server never started is released") {
  HttpsServerOptions fastStop = fast();
  fastStop.idleTimeout = 30s;
  Fixture f(fastStop);
  int port = f.server->port();
  CHECK(f.server->serving());
  // An idle keep-alive connection is closed at once, not after idleTimeout.
  auto idle = connectTls(port, f.caFile);
  REQUIRE(idle->handshaken);
  idle->send("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  char buf[512];
  REQUIRE(SSL_read(idle->ssl, buf, sizeof buf) > 0);
  const auto stopping = Clock::now();
  f.server->stop();
  CHECK(Clock::now() - stopping < 5s);
  CHECK_FALSE(f.server->serving());
  f.server->stop();
  httplib::SSLClient cli("127.0.0.1", port);
  cli.set_connection_timeout(1, 0);
  CHECK_FALSE(cli.Get("/hello"));

  HttpsServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.certFile = f.certFile;
  o.keyFile = f.keyFile;
  int unstartedPort = 0;
  {
    auto unstarted = HttpsServer::create(o, [](Routes&) {});
    REQUIRE(unstarted);
    unstartedPort = (*unstarted)->port();
  }
  o.port = unstartedPort;  // free again
  CHECK(HttpsServer::create(o, [](Routes&) {}).has_value());
}

}  // namespace
}  // namespace pi0::net
