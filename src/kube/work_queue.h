// WorkQueue: the queue of object keys ("namespace/name") between Pi0's informers and its
// reconcilers, with client-go's workqueue semantics (queue.go, delaying_queue.go,
// rate_limiting_queue.go):
//
//   - A key is queued at most once: adding a key that is already queued does nothing.
//   - A key is never handed to two workers at once. Adding a key while a worker processes it
//     marks it dirty; done() then queues it again, so the change is seen by a fresh pass.
//   - Keys come out in the order they were first queued (FIFO).
//   - addAfter() holds a key back until a time on the Clock; addRateLimited() asks the
//     RateLimiter how long (exponential per-key backoff by default).
//
// Worker loop:
//   while (auto key = queue.get(st)) {
//     Result<...> r = reconcile(*key);
//     if (r) queue.forget(*key); else queue.addRateLimited(*key);
//     queue.done(*key);
//   }
//
// Resync: the queue never resyncs by itself. The informer/controller adds every key it knows
// each resync period; those adds collapse with keys already queued like any other add.
//
// Thread-safety: every method may be called from any thread. One internal thread moves delayed
// keys into the queue when their time comes; it sleeps on the Clock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/clock.h"
#include "kube/rate_limit.h"

namespace pi0::kube {

// Monotonic counters for the operator to export (as pi0_workqueue_adds_total and
// pi0_workqueue_retries_total). Read them with load() from any thread.
struct WorkQueueCounters {
  // Adds (direct, or delayed ones coming due) that marked a key as needing processing; adds of a
  // key already marked, queued or not, collapse and do not count (client-go's adds metric).
  std::atomic<std::uint64_t> addsTotal{0};
  // Calls of addAfter() and addRateLimited() made before shutdown (client-go's retries metric).
  std::atomic<std::uint64_t> retriesTotal{0};
};

class WorkQueue {
 public:
  // `clock` must outlive the queue. `limiter` decides addRateLimited()'s delays; null means a
  // ControllerRateLimiter on `clock` (5 ms·2ⁿ up to 1000 s per key, 10 QPS burst 100 overall).
  explicit WorkQueue(Clock& clock = systemClock(), std::unique_ptr<RateLimiter> limiter = nullptr);
  // Shuts the queue down and joins its timer thread. No other thread may still be using it.
  ~WorkQueue();

  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Marks `key` as needing processing. No-op when it is already queued, or after shutDown().
  // When a worker is processing it, it is queued again only by that worker's done().
  void add(const std::string& key);

  // add(key) once `delay` has passed on the Clock (at once when delay <= 0). While the key waits,
  // another addAfter() of it keeps whichever time is earlier. A key waiting here may also be
  // add()ed; the delayed add still happens later (and collapses if the key is still queued).
  // Delayed keys that have not come due by shutDown() are dropped.
  void addAfter(const std::string& key, std::chrono::nanoseconds delay);

  // addAfter(key, limiter.when(key)): the retry path after a failed reconcile.
  void addRateLimited(const std::string& key);
  // Clears the limiter's failure count for `key` (after a successful reconcile). Does not touch
  // the queue: a key waiting from addAfter() still comes.
  void forget(const std::string& key);
  // The limiter's failure count for `key`.
  int numRequeues(const std::string& key) const;

  // Blocks until a key is queued, then hands it to the caller, who owns it until done(key).
  // Returns nullopt when `st` is stopped, or when the queue is shut down and empty. After
  // shutDown(), keys still queued are handed out first (client-go's Get drains likewise);
  // a worker that gets nullopt should exit.
  std::optional<std::string> get(std::stop_token st = {});

  // Ends the processing of `key` that get() handed out. If it was added meanwhile, it is queued
  // again (even after shutDown(), so that the work is not lost to a draining worker). A key
  // that is not being processed is ignored.
  void done(const std::string& key);

  // Number of keys queued and not handed out (neither in processing nor waiting in addAfter).
  std::size_t len() const;
  // The same number, under the name of the metric (pi0_workqueue_depth).
  std::size_t depth() const { return len(); }

  // Makes add()/addAfter() no-ops from now on, drops the delayed keys, and wakes every blocked
  // get(). Idempotent.
  void shutDown();
  bool shuttingDown() const;

  const WorkQueueCounters& counters() const { return counters_; }

 private:
  using Waiting = std::multimap<Clock::time_point, std::string>;

  void addLocked(const std::string& key);  // caller holds mu_
  void runTimer(std::stop_token st);

  Clock& clock_;
  std::unique_ptr<RateLimiter> limiter_;
  WorkQueueCounters counters_;

  mutable std::mutex mu_;
  std::condition_variable_any keyQueued_;       // get() waits on it
  std::condition_variable_any waitingAdded_;    // the timer thread waits on it while idle
  std::deque<std::string> queue_;               // every key here is in dirty_, none in processing_
  std::unordered_set<std::string> dirty_;       // keys that need processing
  std::unordered_set<std::string> processing_;  // keys handed out and not yet done
  Waiting waiting_;                             // delayed keys by the time they come due
  std::unordered_map<std::string, Waiting::iterator> waitingByKey_;
  bool shuttingDown_ = false;
  // Set while the timer thread sleeps: until when, and the source that wakes it early.
  struct TimerSleep {
    Clock::time_point deadline;
    std::stop_source wake;
  };
  std::optional<TimerSleep> timerSleep_;

  std::jthread timer_;  // last: started after everything above exists, joined first
};

}  // namespace pi0::kube
