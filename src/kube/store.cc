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
  if (keep_ == Keep::kReference) return;
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
        } else if (changed(*old->second, *object)) {
          changes.emplace_back(old->second, object);
        }
      }
      for (const auto& [key, object] : objects_) {
        if (!next.contains(key)) changes.emplace_back(object, nullptr);
      }
    }
    if (keep_ == Keep::kReference) {
      for (auto& [key, object] : next)
        object = held(object);  // what changed lives on in `changes` until the handlers ran
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
      change = {
          old && keep_ == Keep::kObject ? old : std::make_shared<const Json>(std::move(object)),
          nullptr};
    } else {
      auto now = std::make_shared<const Json>(std::move(object));
      objects_[key] = held(now);
      change = {old, now};
    }
  }
  notify({change});
}

ObjectPtr Store::held(const ObjectPtr& object) const {
  if (keep_ == Keep::kObject || !object->is_object()) return object;
  Json reference = Json::object();
  for (const char* key : {"apiVersion", "kind"}) {
    if (auto it = object->find(key); it != object->end()) reference[key] = *it;
  }
  if (auto meta = object->find("metadata"); meta != object->end() && meta->is_object()) {
    Json& kept = reference["metadata"] = Json::object();
    for (const char* key : {"namespace", "name", "uid", "resourceVersion"}) {
      if (auto it = meta->find(key); it != meta->end()) kept[key] = *it;
    }
  }
  return std::make_shared<const Json>(std::move(reference));
}

bool Store::changed(const Json& before, const Json& now) const {
  if (keep_ == Keep::kObject) return before != now;
  static const Json::json_pointer kVersion("/metadata/resourceVersion");
  const Json* a = before.contains(kVersion) ? &before.at(kVersion) : nullptr;
  const Json* b = now.contains(kVersion) ? &now.at(kVersion) : nullptr;
  // Without a resourceVersion on either side there is no telling: changed.
  return !a || !b || !a->is_string() || a->get_ref<const std::string&>().empty() || *a != *b;
}

void Store::notify(const std::vector<std::pair<ObjectPtr, ObjectPtr>>& changes) {
  for (const auto& handler : handlers_) {
    for (const auto& [oldObject, newObject] : changes)
      handler(oldObject, newObject);
  }
}

}  // namespace pi0::kube
