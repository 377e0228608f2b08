#include "kube/client.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/json_parse.h"
#include "common/log.h"
#include "common/url.h"
#include "kube/rate_limit.h"

namespace pi0::kube {
namespace {

// How long a plain request may wait for the answer; watches set their own.
constexpr std::chrono::seconds kConnectTimeout{10};
constexpr std::chrono::seconds kRequestTimeout{60};
constexpr std::size_t kMaxIdleConnections = 8;
constexpr int kMaxRetryAfterAttempts = 10;  // client-go's maxRetries for Retry-After answers
constexpr std::chrono::seconds kTokenRefresh{60};

struct ServerUrl {
  bool tls = true;
  std::string host;
  int port = 443;
  std::string prefix;  // path prefix, without a trailing slash
};

Result<ServerUrl> parseServer(const std::string& server) {
  ServerUrl url;
  std::string_view rest(server);
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    url.tls = false;
    url.port = 80;
    rest.remove_prefix(7);
  } else {
    return fail("server \"" + server + "\" is not an http(s) URL");
  }
  const auto slash = rest.find('/');
  std::string_view hostPort = rest.substr(0, slash);
  if (slash != std::string_view::npos) url.prefix = std::string(rest.substr(slash));
  while (url.prefix.ends_with('/'))
    url.prefix.pop_back();
  std::string_view portText;
  if (hostPort.starts_with('[')) {  // [::1]:6443
    const auto close = hostPort.find(']');
    if (close == std::string_view::npos) return fail("server \"" + server + "\": unclosed '['");
    url.host = std::string(hostPort.substr(1, close - 1));
    if (close + 1 < hostPort.size() && hostPort[close + 1] == ':')
      portText = hostPort.substr(close + 2);
  } else {
    const auto colon = hostPort.rfind(':');
    url.host = std::string(hostPort.substr(0, colon));
    if (colon != std::string_view::npos) portText = hostPort.substr(colon + 1);
  }
  if (url.host.empty()) return fail("server \"" + server + "\" has no host");
  if (!portText.empty()) {
    int port = 0;
    auto [p, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (ec != std::errc{} || p != portText.data() + portText.size() || port <= 0 || port > 65535) {
      return fail("server \"" + server + "\" has an invalid port");
    }
    url.port = port;
  }
  return url;
}

// The certificates of a PEM bundle; fails when there is none or one is malformed.
Result<int> countPemCertificates(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++count;
  }
  BIO_free(bio);
  if (count == 0) return fail("no PEM certificate in it");
  return count;
}

std::string transportMessage(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::ConnectionTimeout:
      return "connection timed out";
    case httplib::Error::Read:
      return "the connection broke while reading the answer";
    case httplib::Error::Write:
      return "the connection broke while sending the request";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the CA certificates";
    case httplib::Error::SSLServerVerification:
      return "the server's certificate is not signed by a trusted CA, or does not name the host";
    case httplib::Error::Canceled:
      return "canceled";
    default:
      return "HTTP failure (" + httplib::to_string(error) + ")";
  }
}

std::string_view subresourceName(Subresource sub) {
  switch (sub) {
    case Subresource::kNone:
      return "";
    case Subresource::kStatus:
      return "status";
    case Subresource::kScale:
      return "scale";
  }
  return "";
}

std::string_view patchContentType(PatchType type) {
  switch (type) {
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kJson:
      return "application/json-patch+json";
    case PatchType::kStrategicMerge:
      return "application/strategic-merge-patch+json";
  }
  return "application/merge-patch+json";
}

std::string withQuery(std::string path, const Query& query) {
  char sep = '?';
  for (const auto& [k, v] : query) {
    path += sep;
    path += k;
    path += '=';
    path += urlEncode(v);
    sep = '&';
  }
  return path;
}

}  // namespace

struct Client::Impl {
  ClientConfig config;
  Clock& clock;
  ServerUrl url;
  int caFd = -1;  // a memfd holding the CA bundle, so OpenSSL trusts exactly it
  X509* clientCert = nullptr;
  EVP_PKEY* clientKey = nullptr;
  TokenBucket limiter;

  std::mutex poolMutex;
  std::vector<std::unique_ptr<httplib::ClientImpl>> idle;

  std::mutex tokenMutex;
  std::string token;
  std::optional<Clock::time_point> tokenReadAt;  // on `clock`; never read: nullopt

  std::mutex rngMutex;
  std::mt19937 rng{std::random_device{}()};

  Impl(ClientConfig c, Clock& clk, ServerUrl u)
      : config(std::move(c)),
        clock(clk),
        url(std::move(u)),
        limiter(config.qps, config.burst, clk) {}

  ~Impl() {
    idle.clear();
    if (caFd >= 0) ::close(caFd);
    X509_free(clientCert);
    EVP_PKEY_free(clientKey);
  }

  // Sleeps on `clock` for `d` or until `stop` fires; false when stopped.
  bool sleepFor(Clock::duration d, std::stop_token stop) {
    return clock.sleepUntil(saturatingAdd(clock.now(), d), stop) && !stop.stop_requested();
  }

  double jitter() {
    std::lock_guard lock(rngMutex);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  // The token to send; the token file is read again at most every minute, on every new
  // connection, and after a 401 (`force`).
  Result<std::string> bearer(bool force) {
    if (config.tokenFile.empty()) return config.bearerToken;
    std::lock_guard lock(tokenMutex);
    const auto now = clock.now();
    if (force || token.empty() || !tokenReadAt || now - *tokenReadAt > kTokenRefresh) {
      auto t = currentToken(config);
      if (!t) return std::unexpected(t.error());
      token = std::move(*t);
      tokenReadAt = now;
    }
    return token;
  }

  std::unique_ptr<httplib::ClientImpl> connect(std::chrono::seconds readTimeout) {
    std::unique_ptr<httplib::ClientImpl> conn;
    if (url.tls) {
      auto ssl = clientCert != nullptr ? std::make_unique<httplib::SSLClient>(url.host, url.port,
                                                                              clientCert, clientKey)
                                       : std::make_unique<httplib::SSLClient>(url.host, url.port);
      if (caFd >= 0) ssl->set_ca_cert_path(("/proc/self/fd/" + std::to_string(caFd)).c_str());
      ssl->enable_server_certificate_verification(!config.insecureSkipTlsVerify);
      conn = std::move(ssl);
    } else {
      conn = std::make_unique<httplib::ClientImpl>(url.host, url.port);
    }
    conn->set_connection_timeout(kConnectTimeout);
    conn->set_read_timeout(readTimeout);
    conn->set_write_timeout(kRequestTimeout);
    conn->set_keep_alive(true);
    conn->set_url_encode(false);  // paths and queries are encoded here
    if (!config.tokenFile.empty()) (void)bearer(/*force=*/true);
    return conn;
  }

  std::unique_ptr<httplib::ClientImpl> take() {
    {
      std::lock_guard lock(poolMutex);
      if (!idle.empty()) {
        auto conn = std::move(idle.back());
        idle.pop_back();
        return conn;
      }
    }
    return connect(kRequestTimeout);
  }

  void giveBack(std::unique_ptr<httplib::ClientImpl> conn) {
    std::lock_guard lock(poolMutex);
    if (idle.size() < kMaxIdleConnections) idle.push_back(std::move(conn));
  }

  Result<httplib::Headers> headers(bool forceToken) {
    httplib::Headers h{{"Accept", "application/json"}, {"User-Agent", config.userAgent}};
    auto t = bearer(forceToken);
    if (!t) return std::unexpected(t.error());
    if (!t->empty()) h.emplace("Authorization", "Bearer " + *t);
    return h;
  }

  // The transport error, naming where the trusted CA came from when verification failed.
  std::string transportFailure(httplib::Error error) const {
    std::string message = transportMessage(error);
    if (error == httplib::Error::SSLServerVerification) {
      message += config.caOrigin.empty() ? ", trusting the system's roots"
                                         : ", trusting the CA of " + config.caOrigin;
    }
    return message;
  }

  std::string describeRequest(std::string_view method, const std::string& path) const {
    return std::string(method) + " " + config.server + path;
  }

  struct Answer {
    int status = 0;
    std::string body;
  };

  ApiResult<Answer> send(std::string_view method, const std::string& path, std::string_view body,
                         std::string_view contentType, std::stop_token stop) {
    bool retriedUnauthorized = false;
    for (int attempt = 0;; ++attempt) {
      if (!limiter.wait(stop))
        return apiFail(Reason::kCanceled, describeRequest(method, path) + ": canceled");
      auto h = headers(retriedUnauthorized);
      if (!h) return apiFail(Reason::kUnauthorized, h.error().message);
      httplib::Request req;
      req.method = std::string(method);
      req.path = url.prefix + path;
      req.headers = std::move(*h);
      if (!body.empty()) {
        req.body = std::string(body);
        req.headers.emplace("Content-Type", std::string(contentType));
      }
      auto conn = take();
      httplib::Result result = [&] {
        std::stop_callback onStop(stop, [&conn] { conn->stop(); });
        return conn->send(req);
      }();
      if (stop.stop_requested())
        return apiFail(Reason::kCanceled, describeRequest(method, path) + ": canceled");
      if (!result) {
        return apiFail(Reason::kTransport,
                       describeRequest(method, path) + ": " + transportFailure(result.error()));
      }
      const int status = result->status;
      std::string retryAfter = result->get_header_value("Retry-After");
      std::string responseBody = std::move(result->body);
      giveBack(std::move(conn));
      if (status >= 200 && status < 300) return Answer{status, std::move(responseBody)};

      ApiError error = errorFromResponse(status, responseBody, retryAfter);
      if (status == 401 && !config.tokenFile.empty() && !retriedUnauthorized) {
        retriedUnauthorized = true;  // the token may have been rotated: read it again once
        continue;
      }
      if ((status == 429 || status >= 500) && error.retryAfterSeconds > 0 &&
          attempt + 1 < kMaxRetryAfterAttempts) {
        const auto wait = std::chrono::seconds(std::min(error.retryAfterSeconds, 10));
        log::debug("kube: server asked to retry", {{"request", describeRequest(method, path)},
                                                   {"status", status},
                                                   {"after_s", wait.count()}});
        if (!sleepFor(wait, stop))
          return apiFail(Reason::kCanceled, describeRequest(method, path) + ": canceled");
        continue;
      }
      if (error.message.empty()) error.message = describeRequest(method, path);
      return std::unexpected(std::move(error));
    }
  }

  ApiResult<Json> sendJson(std::string_view method, const std::string& path, std::string_view body,
                           std::string_view contentType, std::stop_token stop) {
    auto answer = send(method, path, body, contentType, stop);
    if (!answer) return std::unexpected(answer.error());
    if (answer->body.empty()) return Json::object();
    auto parsed = json::parse(answer->body);
    if (!parsed) {
      return apiFail(Reason::kBadResponse,
                     describeRequest(method, path) + ": the answer is not JSON", answer->status);
    }
    return std::move(*parsed);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const ClientConfig& Client::config() const {
  return impl_->config;
}

Result<std::unique_ptr<Client>> Client::create(ClientConfig config, Clock& clock) {
  // A write to a connection the server already closed (an idle keep-alive connection, a TLS
  // close) must be an error value, not SIGPIPE ending the process.
  static std::once_flag ignoreSigpipe;
  std::call_once(ignoreSigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  auto url = parseServer(config.server);
  if (!url) return fail(config.source + ": " + url.error().message);
  if (!(config.qps > 0) || config.burst < 1)
    return fail("client rate limit must be positive (qps > 0, burst >= 1)");
  if (!config.tlsServerName.empty() && config.tlsServerName != url->host) {
    return fail(config.source +
                ": tls-server-name is not supported; connect by the name the certificate carries");
  }
  if (!url->tls && (!config.bearerToken.empty() || !config.tokenFile.empty())) {
    log::warn("kube: sending a bearer token over plain HTTP", {{"server", config.server}});
  }
  auto impl = std::make_unique<Impl>(std::move(config), clock, std::move(*url));
  auto& c = impl->config;
  if (!c.caPem.empty()) {
    if (auto n = countPemCertificates(c.caPem); !n)
      return fail(c.caOrigin + ": " + n.error().message);
    impl->caFd = ::memfd_create("pi0-kube-ca", MFD_CLOEXEC);
    if (impl->caFd < 0 || ::write(impl->caFd, c.caPem.data(), c.caPem.size()) !=
                              static_cast<ssize_t>(c.caPem.size())) {
      return fail("cannot hold the CA bundle in memory");
    }
  }
  if (!c.clientCertPem.empty()) {
    BIO* bio = BIO_new_mem_buf(c.clientCertPem.data(), static_cast<int>(c.clientCertPem.size()));
    impl->clientCert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (impl->clientCert == nullptr) return fail(c.clientCertOrigin + ": not a PEM certificate");
    bio = BIO_new_mem_buf(c.clientKeyPem.data(), static_cast<int>(c.clientKeyPem.size()));
    impl->clientKey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (impl->clientKey == nullptr) return fail(c.clientKeyOrigin + ": not a PEM private key");
    if (X509_check_private_key(impl->clientCert, impl->clientKey) != 1) {
      return fail(c.clientKeyOrigin + ": does not match the client certificate");
    }
  }
  if (c.insecureSkipTlsVerify) {
    log::warn("kube: server certificate verification is off (insecure-skip-tls-verify)",
              {{"server", c.server}});
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

std::string Client::path(const ResourceType& type, std::string_view ns, std::string_view name,
                         Subresource sub) {
  std::string p =
      type.group.empty() ? "/api/" + type.version : "/apis/" + type.group + "/" + type.version;
  if (type.namespaced && !ns.empty()) {
    p += "/namespaces/";
    p += ns;
  }
  p += "/";
  p += type.plural;
  if (!name.empty()) {
    p += "/";
    p += name;
    if (sub != Subresource::kNone) {
      p += "/";
      p += subresourceName(sub);
    }
  }
  return p;
}

ApiResult<Json> Client::request(std::string_view method, const std::string& path,
                                const Query& query, std::string_view body,
                                std::string_view contentType, std::stop_token stop) {
  return impl_->sendJson(method, withQuery(path, query), body, contentType, stop);
}

ApiResult<Json> Client::serverVersion(std::stop_token stop) {
  return impl_->sendJson("GET", "/version", {}, {}, stop);
}

ApiResult<Json> Client::get(const ResourceType& type, std::string_view ns, std::string_view name,
                            Subresource sub, std::stop_token stop) {
  return impl_->sendJson("GET", path(type, ns, name, sub), {}, {}, stop);
}

ApiResult<ObjectList> Client::listPage(const ResourceType& type, std::string_view ns,
                                       const ListOptions& options, std::stop_token stop) {
  Query q;
  if (!options.labelSelector.empty()) q.emplace_back("labelSelector", options.labelSelector);
  if (!options.fieldSelector.empty()) q.emplace_back("fieldSelector", options.fieldSelector);
  if (options.limit > 0) q.emplace_back("limit", std::to_string(options.limit));
  if (!options.continueToken.empty()) q.emplace_back("continue", options.continueToken);
  if (!options.resourceVersion.empty()) q.emplace_back("resourceVersion", options.resourceVersion);
  auto body = impl_->sendJson("GET", withQuery(path(type, ns), q), {}, {}, stop);
  if (!body) return std::unexpected(body.error());
  ObjectList list;
  auto items = body->find("items");
  if (items == body->end() || !(items->is_array() || items->is_null())) {
    return apiFail(Reason::kBadResponse,
                   "list of " + type.qualifiedName() + ": the answer has no items");
  }
  if (items->is_array()) {
    list.items.reserve(items->size());
    for (auto& item : *items)
      list.items.push_back(std::move(item));
  }
  if (auto meta = body->find("metadata"); meta != body->end() && meta->is_object()) {
    list.resourceVersion = meta->value("resourceVersion", "");
    list.continueToken = meta->value("continue", "");
  }
  return list;
}

ApiResult<ObjectList> Client::list(const ResourceType& type, std::string_view ns,
                                   const ListOptions& options, std::stop_token stop) {
  ListOptions page = options;
  ObjectList all;
  for (;;) {
    auto result = listPage(type, ns, page, stop);
    if (!result && isGone(result.error()) && !page.continueToken.empty()) {
      // The continue token expired between pages: one unpaged consistent list instead.
      log::info("kube: list continuation expired, listing again in one request",
                {{"resource", type.qualifiedName()}});
      ListOptions full = options;
      full.limit = 0;
      full.continueToken.clear();
      full.resourceVersion.clear();
      auto whole = listPage(type, ns, full, stop);
      if (whole && options.transform) {
        for (auto& item : whole->items)
          options.transform(item);
      }
      return whole;
    }
    if (!result) return std::unexpected(result.error());
    if (options.transform) {
      for (auto& item : result->items)
        options.transform(item);
    }
    if (all.items.empty()) {
      all.items = std::move(result->items);
    } else {
      all.items.insert(all.items.end(), std::make_move_iterator(result->items.begin()),
                       std::make_move_iterator(result->items.end()));
    }
    all.resourceVersion = result->resourceVersion;
    if (result->continueToken.empty()) return all;
    page.continueToken = result->continueToken;
    page.resourceVersion.clear();  // a continued list must not name a resourceVersion
  }
}

ApiResult<Json> Client::create(const ResourceType& type, std::string_view ns, const Json& object,
                               std::stop_token stop) {
  std::string n(ns);
  if (n.empty() && type.namespaced) n = stringField(object, "/metadata/namespace"_json_pointer);
  if (type.namespaced && n.empty())
    return apiFail(Reason::kBadRequest, "create " + type.qualifiedName() + ": no namespace");
  return impl_->sendJson("POST", path(type, n), object.dump(), "application/json", stop);
}

ApiResult<Json> Client::update(const ResourceType& type, const Json& object, Subresource sub,
                               std::stop_token stop) {
  const std::string ns = stringField(object, "/metadata/namespace"_json_pointer);
  const std::string name = stringField(object, "/metadata/name"_json_pointer);
  if (name.empty())
    return apiFail(Reason::kBadRequest,
                   "update " + type.qualifiedName() + ": the object has no name");
  return impl_->sendJson("PUT", path(type, ns, name, sub), object.dump(), "application/json", stop);
}

ApiResult<Json> Client::patch(const ResourceType& type, std::string_view ns, std::string_view name,
                              PatchType patchType, const Json& patchBody, Subresource sub,
                              std::stop_token stop) {
  return impl_->sendJson("PATCH", path(type, ns, name, sub), patchBody.dump(),
                         patchContentType(patchType), stop);
}

ApiResult<void> Client::remove(const ResourceType& type, std::string_view ns, std::string_view name,
                               const DeleteOptions& options, std::stop_token stop) {
  Json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.preconditionUid.empty()) body["preconditions"]["uid"] = options.preconditionUid;
  if (!options.preconditionResourceVersion.empty()) {
    body["preconditions"]["resourceVersion"] = options.preconditionResourceVersion;
  }
  if (!options.propagationPolicy.empty()) body["propagationPolicy"] = options.propagationPolicy;
  if (options.gracePeriodSeconds) body["gracePeriodSeconds"] = *options.gracePeriodSeconds;
  auto result =
      impl_->sendJson("DELETE", path(type, ns, name), body.dump(), "application/json", stop);
  if (!result) return std::unexpected(result.error());
  return {};
}

ApiResult<Json> Client::modify(const ResourceType& type, std::string_view ns, std::string_view name,
                               const std::function<bool(Json&)>& mutate, Subresource sub,
                               ConflictRetry retry, std::stop_token stop) {
  for (int attempt = 1;; ++attempt) {
    auto current = get(type, ns, name, sub == Subresource::kScale ? sub : Subresource::kNone, stop);
    if (!current) return current;
    if (!mutate(*current)) return current;
    auto written = update(type, *current, sub, stop);
    if (written || !isConflict(written.error()) || attempt >= retry.tries) return written;
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(
        retry.interval * (1.0 + retry.jitter * impl_->jitter()));
    log::debug(
        "kube: conflict, reading again",
        {{"resource", type.qualifiedName()}, {"name", std::string(name)}, {"attempt", attempt}});
    if (!impl_->sleepFor(wait, stop)) return apiFail(Reason::kCanceled, "update canceled");
  }
}

ApiResult<void> Client::watch(const ResourceType& type, std::string_view ns,
                              const WatchOptions& options,
                              const std::function<bool(WatchEvent&&)>& onEvent,
                              std::stop_token stop) {
  Query q{{"watch", "true"}};
  if (!options.resourceVersion.empty()) q.emplace_back("resourceVersion", options.resourceVersion);
  if (!options.labelSelector.empty()) q.emplace_back("labelSelector", options.labelSelector);
  if (!options.fieldSelector.empty()) q.emplace_back("fieldSelector", options.fieldSelector);
  if (options.timeoutSeconds > 0)
    q.emplace_back("timeoutSeconds", std::to_string(options.timeoutSeconds));
  if (options.allowBookmarks) q.emplace_back("allowWatchBookmarks", "true");
  const std::string target = withQuery(path(type, ns), q);

  auto& impl = *impl_;
  if (!impl.limiter.wait(stop)) return apiFail(Reason::kCanceled, "watch canceled");
  auto headers = impl.headers(false);
  if (!headers) return apiFail(Reason::kUnauthorized, headers.error().message);
  // The server ends the watch after timeoutSeconds; reading waits a little longer than that.
  const auto readTimeout =
      std::chrono::seconds(options.timeoutSeconds > 0 ? options.timeoutSeconds + 30 : 3700);
  auto conn = impl.connect(readTimeout);

  int status = 0;
  std::string errorBody;
  std::optional<ApiError> streamError;
  bool stoppedByCaller = false;
  LineSplitter splitter;
  httplib::Result result = [&] {
    std::stop_callback onStop(stop, [&conn] { conn->stop(); });
    return conn->Get((impl.url.prefix + target).c_str(), *headers,
                     [&](const httplib::Response& response) {
                       status = response.status;
                       return true;
                     },
                     [&](const char* data, size_t size) {
                       if (status != 200) {
                         if (errorBody.size() < 65536) errorBody.append(data, size);
                         return true;
                       }
                       return splitter.push(std::string_view(data, size),
                                            [&](std::string_view line) {
                                              auto event = parseWatchEvent(line);
                                              if (!event) {
                                                streamError = event.error();
                                                return false;
                                              }
                                              if (!onEvent(std::move(*event))) {
                                                stoppedByCaller = true;
                                                return false;
                                              }
                                              return true;
                                            });
                     });
  }();
  if (stop.stop_requested()) return apiFail(Reason::kCanceled, "watch canceled");
  if (streamError) return std::unexpected(*streamError);
  if (stoppedByCaller) return {};
  if (status != 0 && status != 200) {
    return std::unexpected(errorFromResponse(
        status, errorBody, result ? result->get_header_value("Retry-After") : ""));
  }
  if (!result) {
    return apiFail(Reason::kTransport,
                   "watch " + type.qualifiedName() + ": " + impl.transportFailure(result.error()));
  }
  return {};
}

bool LineSplitter::push(std::string_view chunk,
                        const std::function<bool(std::string_view)>& onLine) {
  // Complete lines inside the chunk go straight to onLine; only a line that spans chunks is
  // copied into buffer_.
  while (!chunk.empty()) {
    const auto nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      buffer_.append(chunk);
      return true;
    }
    std::string_view line;
    if (buffer_.empty()) {
      line = chunk.substr(0, nl);
    } else {
      buffer_.append(chunk.substr(0, nl));
      line = buffer_;
    }
    chunk.remove_prefix(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
      line.remove_suffix(1);
    bool keepGoing = true;
    if (!line.empty()) keepGoing = onLine(line);
    buffer_.clear();
    if (!keepGoing) {
      buffer_.assign(chunk);
      return false;
    }
  }
  return true;
}

ApiResult<WatchEvent> parseWatchEvent(std::string_view line) {
  auto parsed = json::parse(line);
  if (!parsed || !parsed->is_object()) {
    return apiFail(Reason::kBadResponse,
                   "watch: an event is not JSON: " + std::string(line.substr(0, 120)));
  }
  Json& doc = *parsed;
  auto type = doc.find("type");
  auto object = doc.find("object");
  if (type == doc.end() || !type->is_string() || object == doc.end() || !object->is_object()) {
    return apiFail(Reason::kBadResponse, "watch: an event lacks type or object");
  }
  const auto& t = type->get_ref<const std::string&>();
  WatchEvent event;
  if (t == "ADDED") {
    event.type = WatchEventType::kAdded;
  } else if (t == "MODIFIED") {
    event.type = WatchEventType::kModified;
  } else if (t == "DELETED") {
    event.type = WatchEventType::kDeleted;
  } else if (t == "BOOKMARK") {
    event.type = WatchEventType::kBookmark;
  } else if (t == "ERROR") {
    return std::unexpected(errorFromStatus(*object, 0));
  } else {
    return apiFail(Reason::kBadResponse, "watch: unknown event type \"" + t + "\"");
  }
  event.object = std::move(*object);
  return event;
}

std::string objectKey(const Json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  const std::string name = meta->value("name", "");
  const std::string ns = meta->value("namespace", "");
  return ns.empty() ? name : ns + "/" + name;
}

}  // namespace pi0::kube
