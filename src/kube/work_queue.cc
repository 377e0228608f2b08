#include "kube/work_queue.h"

#include <utility>

namespace pi0::kube {

WorkQueue::WorkQueue(Clock& clock, std::unique_ptr<RateLimiter> limiter)
    : clock_(clock), limiter_(std::move(limiter)) {
  if (!limiter_) limiter_ = std::make_unique<ControllerRateLimiter>(clock_);
  timer_ = std::jthread([this](std::stop_token st) { runTimer(st); });
}

WorkQueue::~WorkQueue() {
  shutDown();
  if (timer_.joinable()) timer_.join();
}

void WorkQueue::addLocked(const std::string& key) {
  if (shuttingDown_) return;
  if (!dirty_.insert(key).second) return;
  counters_.addsTotal.fetch_add(1, std::memory_order_relaxed);
  // A key being processed waits in dirty_ for done(); queuing it now would hand it to a second
  // worker.
  if (processing_.contains(key)) return;
  queue_.push_back(key);
  keyQueued_.notify_one();
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  addLocked(key);
}

void WorkQueue::addAfter(const std::string& key, std::chrono::nanoseconds delay) {
  std::lock_guard lock(mu_);
  if (shuttingDown_) return;
  counters_.retriesTotal.fetch_add(1, std::memory_order_relaxed);
  if (delay <= std::chrono::nanoseconds(0)) {
    addLocked(key);
    return;
  }
  const Clock::time_point readyAt = saturatingAdd(clock_.now(), delay);
  if (auto known = waitingByKey_.find(key); known != waitingByKey_.end()) {
    if (readyAt >= known->second->first) return;
    waiting_.erase(known->second);
    known->second = waiting_.emplace(readyAt, key);
  } else {
    waitingByKey_.emplace(key, waiting_.emplace(readyAt, key));
  }
  // Wake the timer thread if it sleeps past the new time, or idles with nothing to wait for.
  if (timerSleep_ && readyAt < timerSleep_->deadline) timerSleep_->wake.request_stop();
  waitingAdded_.notify_one();
}

void WorkQueue::addRateLimited(const std::string& key) {
  if (shuttingDown()) return;  // spares the limiter a failure that leads nowhere
  addAfter(key, limiter_->when(key));
}

void WorkQueue::forget(const std::string& key) {
  limiter_->forget(key);
}

int WorkQueue::numRequeues(const std::string& key) const {
  return limiter_->retries(key);
}

std::optional<std::string> WorkQueue::get(std::stop_token st) {
  std::unique_lock lock(mu_);
  keyQueued_.wait(lock, st, [&] { return !queue_.empty() || shuttingDown_; });
  if (st.stop_requested()) {
    // This getter may have consumed a notify_one meant for a key; pass it on so that the key
    // does not sit queued while other getters sleep.
    if (!queue_.empty()) keyQueued_.notify_one();
    return std::nullopt;
  }
  if (queue_.empty()) return std::nullopt;  // shut down and drained
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  return key;
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  if (processing_.erase(key) == 0) return;
  if (dirty_.contains(key)) {
    queue_.push_back(key);
    keyQueued_.notify_one();
  }
}

std::size_t WorkQueue::len() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void WorkQueue::shutDown() {
  {
    std::lock_guard lock(mu_);
    shuttingDown_ = true;
    waiting_.clear();
    waitingByKey_.clear();
    keyQueued_.notify_all();
  }
  timer_.request_stop();
}

bool WorkQueue::shuttingDown() const {
  std::lock_guard lock(mu_);
  return shuttingDown_;
}

void WorkQueue::runTimer(std::stop_token st) {
  std::unique_lock lock(mu_);
  while (!st.stop_requested()) {
    const Clock::time_point now = clock_.now();
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
      auto due = waiting_.extract(waiting_.begin());
      waitingByKey_.erase(due.mapped());
      addLocked(due.mapped());
    }
    if (waiting_.empty()) {
      waitingAdded_.wait(lock, st, [&] { return !waiting_.empty(); });
      continue;
    }
    // Sleep on the Clock without holding mu_; addAfter() with an earlier time, or shutDown(),
    // wakes the sleep through `wake`.
    std::stop_source wake;
    const Clock::time_point deadline = waiting_.begin()->first;
    timerSleep_ = TimerSleep{deadline, wake};
    lock.unlock();
    {
      std::stop_callback onStop(st, [&wake] { wake.request_stop(); });
      clock_.sleepUntil(deadline, wake.get_token());
    }
    lock.lock();
    timerSleep_.reset();
  }
}

}  // namespace pi0::kube
