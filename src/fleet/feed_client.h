// FeedClient: keeps a consumer's FleetView current from the fleet feed (feed.h) of the replica
// that reads the agents, over HTTPS: the server's certificate must chain to --fleet-ca-file and
// name --fleet-server-name; the client sends its service-account token, which the publisher
// checks with a TokenReview. Pages come every `every`: a delta since the version held, or every
// node after a change of publisher. After a failed page the publisher is located again (the
// locator reads the Lease), at most once a `relocateEvery`.
//
// When the feed is gone (the publisher died, no leader yet, a network fault), the view keeps
// what it has, and each node's data would go stale staleAfter after it was fetched. After
// `fallbackAfter` without a page, fallback() turns true: the program polls the agents itself
// (FleetPolling) until the feed answers again. The programs' default, one poll interval (data is
// stale after 3), has the first round of polls in well before the data goes stale: a leader's
// death costs no decision on stale data, only the old design's load on the agents until a
// standby takes over (a Lease duration).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "fleet/feed.h"
#include "fleet/fleet_view.h"

namespace pi0::fleet {

struct FeedClientOptions {
  std::filesystem::path caFile;          // PEM: the CA the publisher's certificate chains to
  std::string serverName = "pi0-fleet";  // the name the certificate must carry (a DNS SAN)
  std::filesystem::path tokenFile;       // the bearer token, re-read every minute; empty: none
  Clock::duration every = std::chrono::milliseconds(250);  // between pages
  std::chrono::milliseconds timeout{2000};                 // one page, connect to last byte
  Clock::duration fallbackAfter = std::chrono::seconds(1);
  // After a failed page the publisher is located again (it may have moved), at most this often:
  // between two locations the client retries the URL it has, every `every`. The locator reads a
  // Lease from the apiserver, which every replica would otherwise ask every `every` while the
  // leader is gone.
  Clock::duration relocateEvery = std::chrono::seconds(1);
  std::size_t maxBodyBytes = 256 << 20;
};

// Where the publisher is now: its base URL ("https://10.0.0.5:9444"), or why none is known.
using FeedLocator = std::function<Result<std::string>(std::stop_token)>;

// Written by the client's thread, read from any thread.
struct FeedCounters {
  std::atomic<std::uint64_t> pages{0};      // applied
  std::atomic<std::uint64_t> fullPages{0};  // of which full
  std::atomic<std::uint64_t> errors{0};     // no page: unreachable, refused, malformed
  std::atomic<std::uint64_t> bytes{0};      // bodies received
  std::atomic<std::uint64_t> records{0};    // node records applied
  std::atomic<bool> fallback{false};        // see FeedClient::fallback()
};

class FeedClient {
 public:
  // `view`, `clock` must outlive the client. Errors: options out of range.
  static Result<std::unique_ptr<FeedClient>> create(FleetView& view, FeedLocator locate,
                                                    FeedClientOptions options,
                                                    Clock& clock = systemClock());

  // Reads pages every `every` until `st` stops. While `active` (if given) is false, reads none
  // (the replica publishes the feed itself) and is not in fallback. Blocks.
  void run(std::stop_token st, const std::function<bool()>& active = {});

  // No page has come for fallbackAfter (counted from run()'s start): poll the agents yourself.
  bool fallback() const { return counters_.fallback.load(); }
  // A page has been applied since run() started.
  bool receivedOnce() const { return counters_.pages.load() > 0; }
  // The last failure's message; empty after a good page.
  std::string lastError() const;
  const FeedCounters& counters() const { return counters_; }
  const FeedClientOptions& options() const { return options_; }

  ~FeedClient();

 private:
  struct Connection;
  FeedClient(FleetView& view, FeedLocator locate, FeedClientOptions options, Clock& clock);
  // One page: locates the publisher when needed, asks, applies. An error says why not.
  Result<void> readPage(std::stop_token st);
  std::string bearer();
  void failed(std::string message);

  FleetView& view_;
  FeedLocator locate_;
  const FeedClientOptions options_;
  Clock& clock_;
  FeedCounters counters_;
  std::unique_ptr<Connection> connection_;  // the client's thread only
  // The last location (the client's thread only): its URL, or why none, and when.
  std::optional<Result<std::string>> located_;
  Clock::time_point locatedAt_;
  std::string epoch_;  // of the pages held; "" for none
  std::uint64_t version_ = 0;
  std::string token_;
  std::optional<Clock::time_point> tokenReadAt_;
  mutable std::mutex mu_;  // guards lastError_
  std::string lastError_;
};

}  // namespace pi0::fleet
