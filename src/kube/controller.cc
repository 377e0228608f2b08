#include "kube/controller.h"

#include <thread>

#include "common/log.h"

namespace pi0::kube {

Controller::Controller(Options options, Reconcile reconcile, Clock& clock)
    : options_(std::move(options)),
      reconcile_(std::move(reconcile)),
      clock_(clock),
      queue_(clock) {}

Controller::~Controller() {
  queue_.shutDown();
}

void Controller::watchPrimary(Store& primary) {
  primary_ = &primary;
  primary.addHandler([this](const ObjectPtr& before, const ObjectPtr& after) {
    const auto& object = after ? after : before;
    queue_.add(objectKey(*object));
  });
}

void Controller::watchSecondary(Store& secondary, Mapper mapper) {
  secondary.addHandler(
      [this, mapper = std::move(mapper)](const ObjectPtr& before, const ObjectPtr& after) {
        // Both the old and the new object: a change may move it from one owner to another.
        for (const auto& object : {before, after}) {
          if (!object) continue;
          for (const auto& key : mapper(*object))
            queue_.add(key);
        }
      });
}

void Controller::start(std::stop_token stop) {
  std::vector<std::jthread> workers;
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers.emplace_back([this, stop] { work(stop); });
  }
  std::stop_callback onStop(stop, [this] { queue_.shutDown(); });
  while (!stop.stop_requested()) {
    if (!clock_.sleepUntil(saturatingAdd(clock_.now(), options_.resyncPeriod), stop)) break;
    if (primary_ != nullptr) {
      for (const auto& key : primary_->keys())
        queue_.add(key);
    }
  }
  queue_.shutDown();
}

void Controller::work(std::stop_token stop) {
  while (auto key = queue_.get(stop)) {
    Result<ReconcileResult> result = fail("not run");
    try {
      result = reconcile_(*key, stop);
    } catch (const std::exception& e) {
      // A reconcile must not throw; if one does, the key is retried instead of the process dying.
      result = fail(std::string("reconcile threw: ") + e.what());
    }
    if (!result) {
      log::warn("reconcile failed", {{"controller", options_.name},
                                     {"key", *key},
                                     {"error", result.error().message},
                                     {"retries", queue_.numRequeues(*key)}});
      queue_.addRateLimited(*key);
    } else {
      queue_.forget(*key);
      if (result->requeueAfter) queue_.addAfter(*key, *result->requeueAfter);
    }
    queue_.done(*key);
  }
}

}  // namespace pi0::kube
