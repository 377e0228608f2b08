#include "kube/store.h"

namespace pi0::kube {

void Store::addHandler(Handler handler) {
  handlers_.push_back(std::move(handler));
}

ObjectPtr Store::get(const std::string& key) const {
  std::shared_lock lock(mu_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Store::list() const {
  std::shared_lock lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_)
    out.push_back(object);
  return out;
}

std::vector<std::string> Store::keys() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_)
    out.push_back(key);
  return out;
}

std::size_t Store::size() const {
  std::shared_lock lock(mu_);
  return objects_.size();
}

bool Store::synced() const {
  std::lock_guard lock(syncMu_);
  return synced_;
}

bool Store::waitForSync(std::stop_token stop, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(syncMu_);
  return syncCv_.wait_for(lock, stop, timeout, [this] { return synced_; });
}

void Store::resync() const {
  for (const auto& object : list()) {
    for (const auto& handler : handlers_)
      handler(object, object);
  }
}

void Store::dropManagedFields(Json& object) {
  if (auto meta = object.find("metadata"); meta != object.end() && meta->is_object()) {
    meta->erase("managedFields");
  }
}

void Store::replace(std::vector<Json> items, bool transformed) {
  std::vector<std::pair<ObjectPtr, ObjectPtr>> changes;
  {
    std::unordered_map<std::string, ObjectPtr> next;
    next.reserve(items.size());
    for (auto& item : items) {
      if (!transformed) prepare(item);
      std::string key = objectKey(item);
      next.emplace(std::move(key), std::make_shared<const Json>(std::move(item)));
    }
    std::unique_lock lock(mu_);
    if (!handlers_.empty()) {
      for (const auto& [key, object] : next) {
        auto old = objects_.find(key);
        if (old == objects_.end()) {
          changes.emplace_back(nullptr, object);
        } else if (*old->second != *object) {
          changes.emplace_back(old->second, object);
        }
      }
      for (const auto& [key, object] : objects_) {
        if (!next.contains(key)) changes.emplace_back(object, nullptr);
      }
    }
    objects_ = std::move(next);
  }
  {
    std::lock_guard lock(syncMu_);
    synced_ = true;
  }
  syncCv_.notify_all();
  notify(changes);
}

void Store::apply(WatchEventType type, Json object) {
  if (type == WatchEventType::kBookmark) return;
  if (transform_) transform_(object);
  std::string key = objectKey(object);
  std::pair<ObjectPtr, ObjectPtr> change;
  {
    std::unique_lock lock(mu_);
    auto it = objects_.find(key);
    ObjectPtr old = it == objects_.end() ? nullptr : it->second;
    if (type == WatchEventType::kDeleted) {
      if (it != objects_.end()) objects_.erase(it);
      change = {old ? old : std::make_shared<const Json>(std::move(object)), nullptr};
    } else {
      auto now = std::make_shared<const Json>(std::move(object));
      objects_[key] = now;
      change = {old, now};
    }
  }
  notify({change});
}

void Store::notify(const std::vector<std::pair<ObjectPtr, ObjectPtr>>& changes) {
  for (const auto& handler : handlers_) {
    for (const auto& [oldObject, newObject] : changes)
      handler(oldObject, newObject);
  }
}

}  // namespace pi0::kube
