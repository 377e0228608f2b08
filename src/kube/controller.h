// A controller in controller-runtime's sense: keys of changed objects go into a WorkQueue, and
// workers call a level-based reconcile function with one key at a time (never the same key on
// two workers at once). A failed reconcile is retried with the queue's per-key backoff; a
// reconcile may ask to be called again after a while. Every `resyncPeriod` every key of the
// primary store is queued again, so a missed event costs at most one period.
//
// The controller owns the queue and the workers, not the stores: the caller runs the
// reflectors and wires their stores in with watch() before start().
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "kube/store.h"
#include "kube/work_queue.h"

namespace pi0::kube {

struct ReconcileResult {
  std::optional<std::chrono::nanoseconds> requeueAfter;  // call again after this long
};

class Controller {
 public:
  using Reconcile =
      std::function<Result<ReconcileResult>(const std::string& key, std::stop_token stop)>;
  // Maps a changed object to the keys to reconcile (for a secondary store: a Deployment to the
  // Channels that name it). The primary store's objects map to their own key.
  using Mapper = std::function<std::vector<std::string>(const Json& object)>;

  struct Options {
    std::string name;  // for logs and metrics: "channel", "matrix"
    int workers = 2;
    std::chrono::nanoseconds resyncPeriod = std::chrono::minutes(5);
  };

  Controller(Options options, Reconcile reconcile, Clock& clock = systemClock());
  ~Controller();

  // Before start(): every change in `primary` queues the object's key; resync() covers it.
  void watchPrimary(Store& primary);
  // Before start(): every change in `secondary` queues the keys `mapper` returns.
  void watchSecondary(Store& secondary, Mapper mapper);

  // Runs the workers and the resync timer until `stop`; returns when all workers are done.
  void start(std::stop_token stop);

  WorkQueue& queue() { return queue_; }

 private:
  void work(std::stop_token stop);

  Options options_;
  Reconcile reconcile_;
  Clock& clock_;
  WorkQueue queue_;
  Store* primary_ = nullptr;
};

}  // namespace pi0::kube
