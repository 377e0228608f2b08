// The fleet feed: how one reader of the agents serves the fleet to every other consumer, so that
// each agent is read once per interval per cluster, not once per consumer (README.md, "The fleet
// path"). The operator leader polls the agents (FleetPoller) and publishes its FleetView here
// (FeedPublisher, behind GET /fleet); the webhook replicas and the standby operator read it
// (FeedClient, feed_client.h) into their own FleetView, on which they decide as before.
//
// The wire: one JSON document per answer,
//   {"apiVersion":"stability.pi0.io/v1alpha1","kind":"FleetFeed","epoch":"9f0c…","version":42,
//    "full":false,"sentAt":1765000000123,"nodes":[RECORD,…],"removed":["node-9"]}
// `epoch` names the publisher's life (versions of another epoch mean nothing); `version` grows
// with every change published; a consumer asks for what changed after the version it holds
// (GET /fleet?epoch=E&since=V) and gets either the nodes changed since (`full` false, plus the
// nodes `removed`) or, when it holds nothing of this epoch or its version is too old, every node
// (`full` true). `sentAt` and every record's `fetchedAt` are the publisher's wall clock in Unix
// milliseconds: a consumer takes a record's age as sentAt − fetchedAt, so the two machines'
// clocks never meet.
//
// A RECORD is what the consumers read of a node, and nothing else (resourceView's signals:
// fleet/resource_view.h):
//   {"node":"node-a","url":"http://10.0.0.7:9560","health":"Healthy","failures":0,"error":"",
//    "fetchedAt":1765000000001,"sampledAt":1765000000000,"interval":1,"ready":true,"fill":1,
//    "signals":{"cpu":[CURRENT,GATES,FORECAST],…}}
// with GATES = [lambda_int,lambda1,fit_error,gluing_delta,isolation] or null and FORECAST =
// [horizonSeconds,base,trendStart,trendPerSecond,noise,troubleLine,secondsToTrouble,stallRate]
// (the last two nullable) or null. fetchedAt and sampledAt (the agent's sample time) are null
// for a node never fetched, and then `signals` is empty. A record whose fingerprint carries the
// leader's memory verdict (HistoryVerdict) ends with
//   "history":[TROUBLED,MATCHES,TROUBLE_MATCHES,SIMILARITY,"match-node",MATCH_AT_MS,"label"]
// (TROUBLED 0 or 1); without one, there is no "history". Numbers carry 6 significant digits
// (a relative error under 1e-6, far below any threshold's resolution).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "fleet/fleet_view.h"

namespace pi0::fleet {

// One answer of the feed, parsed.
struct FeedPage {
  std::string epoch;
  std::uint64_t version = 0;
  bool full = false;
  std::chrono::system_clock::time_point sentAt;
  // fetchedAt is stated as an age at sentAt (see above): the consumer places it on its clock.
  struct Node {
    NodeStatus status;  // status.fetchedAt unset; fingerprint set when fetched
    std::optional<std::chrono::system_clock::duration> age;
  };
  std::vector<Node> nodes;
  std::vector<std::string> removed;
};

// Parses an answer of GET /fleet. Checks the envelope, every record's fields, types and ranges
// (ratios in [0,1], counts >= 0, a known health); the error names the node and the field
// ("nodes[3] (node-b): signals.cpu[1][4]: 1.5 is out of range"). Never throws.
Result<FeedPage> parseFeedPage(std::string_view body);

// Writes `page` as GET /fleet answers it (for tests and FeedPublisher's pieces).
std::string toJson(const FeedPage& page);

// Applies a page to `view` at `now` (the consumer's clock): a full page makes the view's nodes
// exactly the page's; otherwise the page's nodes replace theirs and the removed ones go. A
// record's fetchedAt becomes now − age.
void applyFeedPage(FleetView& view, const FeedPage& page, Clock::time_point now);

struct FeedPublisherOptions {
  // Changes are taken from the view at most this often (a request finds them): a consumer
  // polling more often gets the same version.
  Clock::duration refreshEvery = std::chrono::milliseconds(50);
  // How many versions of removals are kept to answer deltas; a consumer further behind gets a
  // full page.
  std::size_t removalsKept = 4096;
};

// The publishing side: answers GET /fleet from `view`. Thread-safe.
class FeedPublisher {
 public:
  // `view` and `clock` must outlive the publisher. The epoch is random.
  FeedPublisher(FleetView& view, Clock& clock, FeedPublisherOptions options = {});

  struct Answer {
    int status = 200;
    std::string body;
    bool full = false;
    std::size_t nodes = 0;  // records in the body
  };
  // The answer to the query ("epoch=E&since=V", either may be missing: a full page). A
  // malformed query is a 400 that says what is wrong.
  Answer answer(std::string_view query);

  const std::string& epoch() const { return epoch_; }

 private:
  struct Published {
    std::shared_ptr<const NodeStatus> status;  // what the record was written from
    std::string record;                        // its JSON
    std::uint64_t version = 0;                 // when it last changed
  };
  // Takes the view's changes into nodes_ (when refreshEvery has passed). Caller holds mu_.
  void refreshLocked();

  FleetView& view_;
  Clock& clock_;
  const FeedPublisherOptions options_;
  const std::string epoch_;
  std::mutex mu_;                               // guards what follows
  std::shared_ptr<const FleetSnapshot> taken_;  // the snapshot nodes_ reflects
  std::optional<Clock::time_point> refreshedAt_;
  std::uint64_t version_ = 0;
  std::map<std::string, Published, std::less<>> nodes_;  // in name order
  // Removals in version order; a delta since a version older than the first kept is full.
  std::vector<std::pair<std::uint64_t, std::string>> removed_;
  std::uint64_t removalsFrom_ = 0;  // versions below this may have lost removals
};

// The record of one node status (see above), at the publisher: `wallAt` converts the
// status's fetchedAt (on `clock`) to the wall clock.
std::string feedRecord(const NodeStatus& status, Clock::time_point clockNow,
                       std::chrono::system_clock::time_point wallNow);

}  // namespace pi0::fleet
