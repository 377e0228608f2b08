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

  // What the store holds of an object once its handlers have seen it.
  enum class Keep {
    kObject,  // the object (after the transform): what get() and list() return
    // Only its reference: apiVersion, kind, metadata.namespace, name, uid and resourceVersion;
    // for a store whose handlers keep what they need of each object (pi0-webhook's Nodes, in its
    // node index), so that the objects are not held twice. A relist then tells a changed object
    // by its resourceVersion; the old object a handler is given is that reference, or on a
    // delete the object the watch sent; and resync() calls no handler.
    kReference,
  };

  Store() = default;
  explicit Store(Transform transform, Keep keep = Keep::kObject)
      : transform_(std::move(transform)), keep_(keep) {}

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
  // nothing changed (none in Keep::kReference). Call it from a timer; not from a handler.
  void resync() const;

  // Drops metadata.managedFields: the transform Pi0's caches use.
  static void dropManagedFields(Json& object);

 private:
  void notify(const std::vector<std::pair<ObjectPtr, ObjectPtr>>& changes);
  // What to hold of `object` (keep_).
  ObjectPtr held(const ObjectPtr& object) const;
  // Whether `now` differs from `before`, as held.
  bool changed(const Json& before, const Json& now) const;

  Transform transform_;
  Keep keep_ = Keep::kObject;
  std::vector<Handler> handlers_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, ObjectPtr> objects_;
  bool synced_ = false;
  mutable std::mutex syncMu_;
  mutable std::condition_variable_any syncCv_;
};

}  // namespace pi0::kube
