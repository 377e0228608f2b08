#include "fleet/leader_link.h"

#include <httplib.h>

#include "common/files.h"
#include "common/log.h"
#include "fleet/agent_source.h"

namespace pi0::fleet {
namespace {

constexpr auto kTokenRereadEvery = std::chrono::minutes(1);

std::string describe(httplib::Error error, const LeaderLinkOptions& options) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "the server's certificate is not signed by the fleet CA, or does not name the "
             "expected server name (" +
             options.serverName + ", " + options.caFile.string() + ")";
    case httplib::Error::Read:
      return "connection lost while reading the answer";
    case httplib::Error::Write:
      return "connection lost while sending the request";
    default:
      return "request failed (" + httplib::to_string(error) + ")";
  }
}

httplib::Headers requestHeaders(const std::string& token) {
  httplib::Headers headers{{"Accept", "application/json"}};
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  return headers;
}

}  // namespace

std::string LeaderLink::Answer::summary() const {
  const std::string_view line = std::string_view(body).substr(0, std::min(body.find('\n'), 200ul));
  return "HTTP " + std::to_string(status) + ": " + std::string(line);
}

struct LeaderLink::Connection {
  std::string url;
  std::unique_ptr<httplib::SSLClient> client;
};

Result<void> checkLeaderLinkOptions(const LeaderLinkOptions& options, const FeedLocator& locate) {
  if (options.caFile.empty()) return fail("the fleet link needs a CA file (--fleet-ca-file)");
  if (options.serverName.empty()) return fail("the fleet link needs a server name");
  if (options.timeout <= std::chrono::milliseconds::zero()) return fail("the timeout must be > 0");
  if (!locate) return fail("the fleet link needs a locator");
  return {};
}

LeaderLink::LeaderLink(FeedLocator locate, LeaderLinkOptions options, Clock& clock)
    : locate_(std::move(locate)), options_(std::move(options)), clock_(clock) {}

LeaderLink::LeaderLink(LeaderLink&&) = default;
LeaderLink::~LeaderLink() = default;

void LeaderLink::drop() {
  connection_.reset();
}

std::string LeaderLink::url() const {
  return connection_ ? connection_->url : std::string();
}

std::string LeaderLink::bearer() {
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
      log::warn("fleet link: cannot read the token file",
                {{"file", options_.tokenFile.string()}, {"error", text.error().message}});
    }
  }
  return token_;
}

Result<LeaderLink::Connection*> LeaderLink::connection(std::stop_token st) {
  if (connection_) return connection_.get();
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
  c->client = std::make_unique<httplib::SSLClient>(options_.serverName, address->port);
  c->client->set_hostname_addr_map({{options_.serverName, address->host}});
  c->client->set_ca_cert_path(options_.caFile.string());
  c->client->enable_server_certificate_verification(true);
  c->client->set_connection_timeout(options_.timeout);
  c->client->set_read_timeout(options_.timeout);
  c->client->set_write_timeout(options_.timeout);
  c->client->set_keep_alive(true);
  connection_ = std::move(c);
  return connection_.get();
}

Result<LeaderLink::Answer> LeaderLink::get(std::stop_token st, const std::string& target) {
  auto c = connection(st);
  if (!c) return fail(c.error().message);
  const httplib::Headers headers = requestHeaders(bearer());
  Answer answer;
  bool tooLarge = false;
  auto result = (*c)->client->Get(
      target, headers, [](const httplib::Response&) { return true; },
      [&](const char* data, std::size_t length) {
        if (answer.body.size() + length > options_.maxBodyBytes) {
          tooLarge = true;
          return false;
        }
        answer.body.append(data, length);
        return true;
      });
  const std::string where = (*c)->url + ": ";
  if (tooLarge) {
    drop();
    return fail(where + "answer larger than " + std::to_string(options_.maxBodyBytes) + " bytes");
  }
  if (!result) {
    drop();
    return fail(where + describe(result.error(), options_));
  }
  answer.status = result->status;
  return answer;
}

Result<LeaderLink::Answer> LeaderLink::post(std::stop_token st, const std::string& target,
                                            const std::string& body,
                                            const std::string& contentType) {
  auto c = connection(st);
  if (!c) return fail(c.error().message);
  const httplib::Headers headers = requestHeaders(bearer());
  auto result = (*c)->client->Post(target, headers, body, contentType);
  const std::string where = (*c)->url + ": ";
  if (!result) {
    drop();
    return fail(where + describe(result.error(), options_));
  }
  if (result->body.size() > options_.maxBodyBytes) {
    drop();
    return fail(where + "answer larger than " + std::to_string(options_.maxBodyBytes) + " bytes");
  }
  return Answer{result->status, std::move(result->body)};
}

}  // namespace pi0::fleet
