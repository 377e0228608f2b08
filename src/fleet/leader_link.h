// LeaderLink: a kept-alive HTTPS connection from a consumer to the replica that publishes the
// fleet feed (the operator leader), found by a locator (the Lease's fleet-url annotation). The
// fleet feed's pages come over it (feed_client.h), and pi0-webhook's decisions go to the truth
// ledger over it (webhook/ledger_sender.h). The server's certificate must chain to `caFile` and
// name `serverName` (a pod's IP is in no certificate, so the client connects to the located
// address and checks the fixed name); the request carries the service-account token of
// `tokenFile`, which the publisher checks with a TokenReview.
//
// After a failed request (unreachable, TLS, a lost connection, an answer too large), or after
// drop(), the next request locates the publisher again, at most once a `relocateEvery`: in
// between it retries the URL it has (the locator reads a Lease from the apiserver, which every
// replica would otherwise ask at every request while the leader is gone).
//
// Thread-safety: one thread uses a link.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace pi0::fleet {

struct LeaderLinkOptions {
  std::filesystem::path caFile;             // PEM: the CA the publisher's certificate chains to
  std::string serverName = "pi0-fleet";     // the name the certificate must carry (a DNS SAN)
  std::filesystem::path tokenFile;          // the bearer token, re-read every minute; empty: none
  std::chrono::milliseconds timeout{2000};  // one request, connect to last byte
  Clock::duration relocateEvery = std::chrono::seconds(1);
  std::size_t maxBodyBytes = 256 << 20;  // of an answer
};

// Where the publisher is now: its base URL ("https://10.0.0.5:9444"), or why none is known.
using FeedLocator = std::function<Result<std::string>(std::stop_token)>;

// Errors: the CA file or the server name missing, a timeout <= 0, no locator.
Result<void> checkLeaderLinkOptions(const LeaderLinkOptions& options, const FeedLocator& locate);

class LeaderLink {
 public:
  // `clock` must outlive the link; the options are checked (checkLeaderLinkOptions).
  LeaderLink(FeedLocator locate, LeaderLinkOptions options, Clock& clock);
  LeaderLink(LeaderLink&&);
  ~LeaderLink();

  // An answer with any HTTP status. Errors (no answer) name the URL and say why.
  struct Answer {
    int status = 0;
    std::string body;
    // "HTTP 503: " and the body's first line (at most 200 bytes), for an error message.
    std::string summary() const;
  };
  Result<Answer> get(std::stop_token st, const std::string& target);
  Result<Answer> post(std::stop_token st, const std::string& target, const std::string& body,
                      const std::string& contentType);

  // Closes the connection: the next request locates the publisher again (an answer that says it
  // no longer publishes, or one that makes no sense).
  void drop();
  // The URL of the connection, "" when there is none.
  std::string url() const;
  const LeaderLinkOptions& options() const { return options_; }

 private:
  struct Connection;
  Result<Connection*> connection(std::stop_token st);
  std::string bearer();

  FeedLocator locate_;
  const LeaderLinkOptions options_;
  Clock& clock_;
  std::unique_ptr<Connection> connection_;
  std::optional<Result<std::string>> located_;  // the last location: a URL, or why none
  Clock::time_point locatedAt_;
  std::string token_;
  std::optional<Clock::time_point> tokenReadAt_;
};

}  // namespace pi0::fleet
