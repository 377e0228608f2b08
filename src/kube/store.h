// The cache a Reflector keeps: the objects of one resource type as the watch last showed
// them, keyed by "namespace/name" (or "name"), with a "synced" signal once the first list is
// in. Change handlers see every add, update and delete, including the deletes a relist
// reveals, so a controller never misses that an object is gone.
//
// Thread-safety: any thread may read at any time; one writer (the reflector) calls replace()
// and apply(). Handlers run on the writer's thread, after the store has changed and without
// its lock held, so they may read the store.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube/client.h"

namespace pi0::kube {

using ObjectPtr = std::shared_ptr<const Json>;

class Store {
 public:
  // (old, new): an add has no old, a delete no new.
  using Handler = std::function<void(const ObjectPtr& oldObject, const ObjectPtr& newObject)>;
  // Rewrites an object before it is stored (e.g. drops metadata.managedFields to save memory).
  using Transform = std::function<void(Json&)>;

  Store() = default;
  explicit Store(Transform transform) : transform_(std::move(transform)) {}

  // Register before the reflector starts.
  void addHandler(Handler handler);

  ObjectPtr get(const std::string& key) const;
  std::vector<ObjectPtr> list() const;
  std::vector<std::string> keys() const;
  std::size_t size() const;

  bool synced() const;
  // Blocks until synced, `stop` fires or `timeout` passes; true when synced.
  bool waitForSync(std::stop_token stop, std::chrono::milliseconds timeout) const;

  // Writer side. replace() makes the store exactly `items` (a list's result), telling the
  // handlers what was added, changed and removed, and marks the store synced. `transformed`:
  // the items went through prepare() already (the reflector does it page by page).
  void replace(std::vector<Json> items, bool transformed = false);
  // Applies the store's transform to an object about to be stored.
  void prepare(Json& item) const {
    if (transform_) transform_(item);
  }
  void apply(WatchEventType type, Json object);

  // Calls the handlers with (object, object) for every stored object, as client-go's informers
  // do every resync period, so that a level-based controller revisits every key even when
  // nothing changed. Call it from a timer; not from a handler.
  void resync() const;

  // Drops metadata.managedFields: the transform Pi0's caches use.
  static void dropManagedFields(Json& object);

 private:
  void notify(const std::vector<std::pair<ObjectPtr, ObjectPtr>>& changes);

  Transform transform_;
  std::vector<Handler> handlers_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, ObjectPtr> objects_;
  bool synced_ = false;
  mutable std::mutex syncMu_;
  mutable std::condition_variable_any syncCv_;
};

}  // namespace pi0::kube
