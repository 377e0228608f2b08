#include "fleet/feed_client.h"

#include <utility>

#include "common/log.h"

namespace pi0::fleet {
Result<std::unique_ptr<FeedClient>> FeedClient::create(FleetView& view, FeedLocator locate,
                                                       FeedClientOptions options, Clock& clock) {
  if (auto checked = checkLeaderLinkOptions(options, locate); !checked)
    return fail(checked.error().message);
  if (options.every <= Clock::duration::zero()) return fail("the page period must be > 0");
  return std::unique_ptr<FeedClient>(
      new FeedClient(view, std::move(locate), std::move(options), clock));
}

FeedClient::FeedClient(FleetView& view, FeedLocator locate, FeedClientOptions options, Clock& clock)
    : view_(view),
      options_(std::move(options)),
      clock_(clock),
      link_(std::move(locate), options_, clock) {}

FeedClient::~FeedClient() = default;

std::string FeedClient::lastError() const {
  std::lock_guard lock(mu_);
  return lastError_;
}

Result<void> FeedClient::readPage(std::stop_token st) {
  const std::string target =
      "/fleet?epoch=" + (epoch_.empty() ? std::string() : epoch_) +
      (epoch_.empty() ? std::string() : "&since=" + std::to_string(version_));
  auto answer = link_.get(st, target);
  if (!answer) return fail(answer.error().message);  // says where, when it got that far
  const std::string where = link_.url() + ": ";
  auto drop = [&](std::string message) -> Result<void> {
    link_.drop();  // locate again: the publisher may have moved
    return fail(where + message);
  };
  counters_.bytes += answer->body.size();
  if (answer->status != 200) return drop(answer->summary());
  auto page = parseFeedPage(answer->body);
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
      link_.drop();
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
