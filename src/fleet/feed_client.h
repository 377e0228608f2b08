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
#include "fleet/leader_link.h"

namespace pi0::fleet {

// The link's options (leader_link.h: CA, server name, token, timeout of a page, relocation),
// and the pages' period and the fallback.
struct FeedClientOptions : LeaderLinkOptions {
  Clock::duration every = std::chrono::milliseconds(250);  // between pages
  Clock::duration fallbackAfter = std::chrono::seconds(1);
};

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
  FeedClient(FleetView& view, FeedLocator locate, FeedClientOptions options, Clock& clock);
  // One page: asks the publisher, applies. An error says why not.
  Result<void> readPage(std::stop_token st);
  void failed(std::string message);

  FleetView& view_;
  const FeedClientOptions options_;
  Clock& clock_;
  FeedCounters counters_;
  LeaderLink link_;    // the client's thread only
  std::string epoch_;  // of the pages held; "" for none
  std::uint64_t version_ = 0;
  mutable std::mutex mu_;  // guards lastError_
  std::string lastError_;
};

}  // namespace pi0::fleet
