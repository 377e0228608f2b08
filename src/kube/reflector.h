// Keeps a Store in step with the apiserver, as client-go's Reflector does: list, then watch
// from the list's resourceVersion (with bookmarks, and a timeout drawn from [5, 10) minutes so
// that many watchers do not reconnect at once); after a dropped connection, watch again from the
// last resourceVersion seen; when that version is too old (410 Gone), list again; after other
// failures wait with exponential backoff and jitter (0.8 s to 30 s, back to 0.8 s after 2
// minutes without failure).
//
// Thread-safety: run() on one thread; the counters may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "kube/client.h"
#include "kube/rate_limit.h"
#include "kube/store.h"

namespace pi0::kube {

struct ReflectorOptions {
  std::string labelSelector;
  std::string fieldSelector;
  int64_t pageSize = 500;
  // List from the apiserver's watch cache (resourceVersion "0": cheap for the apiserver, but a
  // 1.20 apiserver then sends every object in one response). False: consistent reads from
  // etcd in pages of pageSize, for resources with many objects (Pods), so that memory peaks
  // at one page rather than at the whole list.
  bool listFromWatchCache = true;
  std::chrono::seconds minWatchTimeout{300};  // a watch lasts [min, 2·min)
};

class Reflector {
 public:
  // `ns` empty watches all namespaces. The client, store and clock must outlive the reflector.
  Reflector(Client& client, ResourceType type, std::string ns, Store& store,
            ReflectorOptions options = {}, Clock& clock = systemClock());

  // Lists and watches until `stop` fires.
  void run(std::stop_token stop);

  std::string lastResourceVersion() const;
  const ResourceType& type() const { return type_; }

  // What happened so far: for metrics, logs and tests.
  struct Counters {
    std::atomic<uint64_t> lists{0};
    std::atomic<uint64_t> watches{0};
    std::atomic<uint64_t> events{0};
    std::atomic<uint64_t> relistsAfterGone{0};
    std::atomic<uint64_t> failures{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  // The result of one list or watch attempt, for the loop in run().
  enum class Next { kWatch, kList, kBackoffThenWatch, kBackoffThenList, kStop };
  Next listOnce(std::stop_token stop);
  Next watchOnce(std::stop_token stop);
  void setResourceVersion(std::string rv);

  Client& client_;
  ResourceType type_;
  std::string ns_;
  Store& store_;
  ReflectorOptions options_;
  Clock& clock_;
  Backoff backoff_;
  bool listFromCache_ = true;  // "0": any version the watch cache has; "" after a 410
  mutable std::mutex rvMu_;
  std::string resourceVersion_;
  Counters counters_;
};

}  // namespace pi0::kube
