#include "fleet/feed_client.h"

#include <httplib.h>

#include <map>
#include <utility>

#include "common/files.h"
#include "common/log.h"
#include "fleet/agent_source.h"

namespace pi0::fleet {
namespace {

constexpr auto kTokenRereadEvery = std::chrono::minutes(1);

std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "the server's certificate is not signed by the fleet CA, or does not name the "
             "expected server name";
    case httplib::Error::Read:
      return "connection lost while reading the answer";
    case httplib::Error::Write:
      return "connection lost while sending the request";
    default:
      return "request failed (" + httplib::to_string(error) + ")";
  }
}

std::string firstLine(std::string_view body) {
  const auto end = body.find('\n');
  std::string_view line = body.substr(0, std::min<std::size_t>(end, 200));
  return std::string(line);
}

}  // namespace

// A kept-alive TLS connection to one publisher URL.
struct FeedClient::Connection {
  std::string url;
  std::unique_ptr<httplib::SSLClient> client;
};

Result<std::unique_ptr<FeedClient>> FeedClient::create(FleetView& view, FeedLocator locate,
                                                       FeedClientOptions options, Clock& clock) {
  if (options.caFile.empty()) return fail("the fleet feed needs a CA file (--fleet-ca-file)");
  if (options.serverName.empty()) return fail("the fleet feed needs a server name");
  if (options.every <= Clock::duration::zero()) return fail("the page period must be > 0");
  if (options.timeout <= std::chrono::milliseconds::zero()) return fail("the timeout must be > 0");
  if (!locate) return fail("the fleet feed needs a locator");
  return std::unique_ptr<FeedClient>(
      new FeedClient(view, std::move(locate), std::move(options), clock));
}

FeedClient::FeedClient(FleetView& view, FeedLocator locate, FeedClientOptions options, Clock& clock)
    : view_(view), locate_(std::move(locate)), options_(std::move(options)), clock_(clock) {}

FeedClient::~FeedClient() = default;

std::string FeedClient::lastError() const {
  std::lock_guard lock(mu_);
  return lastError_;
}

std::string FeedClient::bearer() {
  if (options_.tokenFile.empty()) return {};
  const auto now = clock_.now();
  if (!tokenReadAt_ || now - *tokenReadAt_ >= kTokenRereadEvery) {
    if (auto text = readFile(options_.tokenFile)) {
      std::string token = std::move(*text);
      while (!token.empty() &&
             (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
        token.pop_back();
      token_ = std::move(token);
      tokenReadAt_ = now;
    } else if (token_.empty()) {
      log::warn("fleet feed: cannot read the token file",
                {{"file", options_.tokenFile.string()}, {"error", text.error().message}});
    }
  }
  return token_;
}

Result<void> FeedClient::readPage(std::stop_token st) {
  if (!connection_) {
    const Clock::time_point now = clock_.now();
    if (!located_ || now - locatedAt_ >= options_.relocateEvery) {
      located_ = locate_(st);
      locatedAt_ = now;
    }
    const Result<std::string>& url = *located_;
    if (!url) return fail(url.error().message);
    auto address = parseFeedUrl(*url);
    if (!address) return fail(address.error().message);
    auto c = std::make_unique<Connection>();
    c->url = *url;
    // Connect to the address the locator gave, but check the certificate against the fixed
    // server name: a pod's IP is in no certificate.
    c->client = std::make_unique<httplib::SSLClient>(options_.serverName, address->port);
    c->client->set_hostname_addr_map({{options_.serverName, address->host}});
    c->client->set_ca_cert_path(options_.caFile.string());
    c->client->enable_server_certificate_verification(true);
    c->client->set_connection_timeout(options_.timeout);
    c->client->set_read_timeout(options_.timeout);
    c->client->set_write_timeout(options_.timeout);
    c->client->set_keep_alive(true);
    connection_ = std::move(c);
  }
  httplib::Headers headers{{"Accept", "application/json"}};
  if (const std::string token = bearer(); !token.empty())
    headers.emplace("Authorization", "Bearer " + token);
  const std::string target =
      "/fleet?epoch=" + (epoch_.empty() ? std::string() : epoch_) +
      (epoch_.empty() ? std::string() : "&since=" + std::to_string(version_));
  std::string body;
  bool tooLarge = false;
  auto result = connection_->client->Get(
      target, headers, [](const httplib::Response&) { return true; },
      [&](const char* data, std::size_t length) {
        if (body.size() + length > options_.maxBodyBytes) {
          tooLarge = true;
          return false;
        }
        body.append(data, length);
        return true;
      });
  const std::string where = "fleet feed " + connection_->url + ": ";
  auto drop = [&](std::string message) -> Result<void> {
    connection_.reset();  // locate again: the publisher may have moved
    return fail(where + message);
  };
  if (tooLarge)
    return drop("answer larger than " + std::to_string(options_.maxBodyBytes) + " bytes");
  if (!result) {
    if (result.error() == httplib::Error::SSLServerVerification)
      return drop(describe(result.error()) + " (" + options_.serverName + ", " +
                  options_.caFile.string() + ")");
    return drop(describe(result.error()));
  }
  counters_.bytes += body.size();
  if (result->status != 200)
    return drop("HTTP " + std::to_string(result->status) + ": " + firstLine(body));
  auto page = parseFeedPage(body);
  if (!page) return drop("invalid page: " + page.error().message);
  if (!page->full && page->epoch != epoch_)
    return drop("a delta of epoch " + page->epoch + " for a view of epoch " + epoch_);
  applyFeedPage(view_, *page, clock_.now());
  epoch_ = page->epoch;
  version_ = page->version;
  ++counters_.pages;
  if (page->full) ++counters_.fullPages;
  counters_.records += page->nodes.size();
  return {};
}

void FeedClient::failed(std::string message) {
  ++counters_.errors;
  std::lock_guard lock(mu_);
  if (message != lastError_) log::warn("fleet feed: no page", {{"error", message}});
  lastError_ = std::move(message);
}

void FeedClient::run(std::stop_token st, const std::function<bool()>& active) {
  Clock::time_point lastGood = clock_.now();
  bool wasActive = true;
  while (!st.stop_requested()) {
    const Clock::time_point started = clock_.now();
    if (active && !active()) {
      // This replica publishes: nothing to read, and no fallback.
      wasActive = false;
      connection_.reset();
      counters_.fallback = false;
      lastGood = started;
    } else {
      if (!wasActive) {
        // Back to reading (leadership lost): start over with a full page.
        epoch_.clear();
        wasActive = true;
      }
      if (auto r = readPage(st); r) {
        lastGood = clock_.now();
        std::lock_guard lock(mu_);
        if (!lastError_.empty()) log::info("fleet feed: pages again");
        lastError_.clear();
      } else if (!st.stop_requested()) {
        failed(r.error().message);
      }
      const bool fallback = clock_.now() - lastGood >= options_.fallbackAfter;
      if (fallback != counters_.fallback.exchange(fallback)) {
        if (fallback) {
          log::warn("fleet feed: none for the fallback time; polling the agents directly",
                    {{"fallbackAfterSeconds",
                      std::chrono::duration<double>(options_.fallbackAfter).count()},
                     {"error", lastError()}});
        } else {
          log::info("fleet feed: back; no longer polling the agents directly");
        }
      }
    }
    clock_.sleepUntil(started + options_.every, st);
  }
}

}  // namespace pi0::fleet
