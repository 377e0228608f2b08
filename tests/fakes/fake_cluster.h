// FakeCluster: a test stand-in for the Kubernetes API server as Pi0's controllers see it. An
// in-memory object store that code under test writes through kube::ObjectWriter (modify():
// conditional writes with resourceVersion and generation bumps, NotFound, the status
// subresource) and that fills the kube::Store caches reconcilers read (syncTo()). Tests play
// the other writers with put(), script failures and crashes with beforeWrite(), interleave
// other controllers' writes with afterWrite(), and read the order of writes from writes().
//
// What it does not model: validation, defaulting beyond metadata, admission, deletion
// timestamps and finalizers, watches (call syncTo() again to refresh a cache), the scale
// subresource (modify() with Subresource::kScale fails with MethodNotAllowed).
//
// Thread-safety: every method may be called from any thread. Hooks run without the lock held,
// so they may call put(), get() and modify(); writes a hook makes through modify() do not call
// the hooks again and are not counted as attempts, but are logged.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube/client.h"
#include "kube/errors.h"
#include "kube/object_writer.h"
#include "kube/store.h"

namespace pi0::testing {

class FakeCluster final : public kube::ObjectWriter {
 public:
  // One write modify() made (put() is someone else's write and is not logged).
  struct Write {
    kube::ResourceType type;
    std::string ns;
    std::string name;
    kube::Subresource sub = kube::Subresource::kNone;
    kube::Json object;  // as stored
  };
  // Called before each write modify() is about to make (after `mutate` asked for one), with the
  // 1-based number of that attempt among all of this cluster's write attempts. An error returned
  // fails the attempt with it; a Conflict is retried after reading again, as Client::modify
  // retries one, and any other error is returned to the caller.
  using BeforeWrite = std::function<std::optional<kube::ApiError>(
      const kube::ResourceType& type, std::string_view ns, std::string_view name, int attempt)>;
  // Called after each write modify() made, with the object as stored.
  using AfterWrite = std::function<void(const kube::ResourceType& type, const kube::Json& stored)>;

  // A BeforeWrite for a process that dies after `writes` writes: those go through, and every
  // later attempt fails with a transport error (nothing it would have written reaches the API).
  static BeforeWrite crashAfter(int writes) {
    return [writes](const kube::ResourceType&, std::string_view, std::string_view,
                    int attempt) -> std::optional<kube::ApiError> {
      if (attempt <= writes) return std::nullopt;
      return kube::ApiError{kube::Reason::kTransport, 0, "FakeCluster: the writer crashed", 0};
    };
  }

  // Stores `object` unconditionally, as another writer would (a create when it is new): sets
  // metadata.resourceVersion, metadata.generation (1 when new, +1 when anything outside metadata
  // and status changed) and metadata.uid; a namespaced object without metadata.namespace goes to
  // "default". Returns the object as stored.
  kube::Json put(const kube::ResourceType& type, kube::Json object) {
    auto& meta = object["metadata"];
    if (type.namespaced && !meta.contains("namespace")) meta["namespace"] = "default";
    if (!type.namespaced) meta.erase("namespace");
    std::lock_guard lock(mu_);
    auto& objects = objects_[type.qualifiedName()];
    const std::string key = kube::objectKey(object);
    auto it = objects.find(key);
    if (it == objects.end()) {
      meta["uid"] = "fake-uid-" + std::to_string(++uids_);
      meta["generation"] = 1;
    } else {
      meta["uid"] = it->second["metadata"]["uid"];
      meta["generation"] = generationAfter(it->second, object);
    }
    meta["resourceVersion"] = std::to_string(++resourceVersion_);
    objects[key] = object;
    return object;
  }

  std::optional<kube::Json> get(const kube::ResourceType& type, std::string_view ns,
                                std::string_view name) const {
    std::lock_guard lock(mu_);
    const auto* object = find(type, ns, name);
    if (object == nullptr) return std::nullopt;
    return *object;
  }

  // Every stored object of the type, ordered by "namespace/name".
  std::vector<kube::Json> objects(const kube::ResourceType& type) const {
    std::lock_guard lock(mu_);
    std::vector<kube::Json> out;
    if (auto it = objects_.find(type.qualifiedName()); it != objects_.end()) {
      for (const auto& [key, object] : it->second)
        out.push_back(object);
    }
    return out;
  }

  // Deletes the object; false when there was none.
  bool remove(const kube::ResourceType& type, std::string_view ns, std::string_view name) {
    std::lock_guard lock(mu_);
    auto it = objects_.find(type.qualifiedName());
    return it != objects_.end() && it->second.erase(keyOf(type, ns, name)) > 0;
  }

  // Makes `store` hold exactly this type's objects, as a reflector's list would.
  void syncTo(const kube::ResourceType& type, kube::Store& store) const {
    store.replace(objects(type));
  }

  // An empty function removes the hook.
  void beforeWrite(BeforeWrite hook) {
    std::lock_guard lock(mu_);
    beforeWrite_ = std::move(hook);
  }
  void afterWrite(AfterWrite hook) {
    std::lock_guard lock(mu_);
    afterWrite_ = std::move(hook);
  }

  std::vector<Write> writes() const {
    std::lock_guard lock(mu_);
    return writes_;
  }
  void clearWrites() {
    std::lock_guard lock(mu_);
    writes_.clear();
  }

  kube::ApiResult<kube::Json> modify(const kube::ResourceType& type, std::string_view ns,
                                     std::string_view name,
                                     const std::function<bool(kube::Json&)>& mutate,
                                     kube::Subresource sub = kube::Subresource::kNone) override {
    if (sub == kube::Subresource::kScale) {
      return kube::apiFail(kube::Reason::kMethodNotAllowed,
                           "FakeCluster does not model the scale subresource", 405);
    }
    const bool hooked = hookDepth() == 0;
    constexpr int kTries = kube::ConflictRetry{}.tries;
    kube::ApiError conflict{kube::Reason::kConflict, 409, "", 0};
    for (int tries = 0; tries < kTries; ++tries) {
      auto current = get(type, ns, name);
      if (!current) return notFound(type, name);
      kube::Json changed = *current;
      if (!mutate(changed)) return *current;

      BeforeWrite before;
      int attempt = 0;
      {
        std::lock_guard lock(mu_);
        if (hooked) {
          attempt = ++attempts_;
          before = beforeWrite_;
        }
      }
      if (before) {
        std::optional<kube::ApiError> injected;
        {
          HookScope scope;
          injected = before(type, ns, name, attempt);
        }
        if (injected) {
          if (kube::isConflict(*injected)) {
            conflict = *injected;
            continue;
          }
          return std::unexpected(*injected);
        }
      }

      kube::Json stored;
      AfterWrite after;
      {
        std::lock_guard lock(mu_);
        auto* object = find(type, ns, name);
        if (object == nullptr) return notFound(type, name);
        if ((*object)["metadata"]["resourceVersion"] != (*current)["metadata"]["resourceVersion"]) {
          conflict.message = "Operation cannot be fulfilled on " + type.qualifiedName() + " \"" +
                             std::string(name) + "\": the object has been modified";
          continue;
        }
        stored = written(*object, std::move(changed), sub);
        *object = stored;
        writes_.push_back({type, std::string(ns), std::string(name), sub, stored});
        if (hooked) after = afterWrite_;
      }
      if (after) {
        HookScope scope;
        after(type, stored);
      }
      return stored;
    }
    return std::unexpected(conflict);
  }

 private:
  // Marks the calling thread as running a hook, so that its writes are not hooked again.
  struct HookScope {
    HookScope() { ++hookDepth(); }
    ~HookScope() { --hookDepth(); }
  };
  static int& hookDepth() {
    static thread_local int depth = 0;
    return depth;
  }

  static std::string keyOf(const kube::ResourceType& type, std::string_view ns,
                           std::string_view name) {
    return type.namespaced ? std::string(ns) + "/" + std::string(name) : std::string(name);
  }

  static std::unexpected<kube::ApiError> notFound(const kube::ResourceType& type,
                                                  std::string_view name) {
    return kube::apiFail(kube::Reason::kNotFound,
                         type.qualifiedName() + " \"" + std::string(name) + "\" not found", 404);
  }

  // The generation an object gets when `next` replaces `previous`: the apiserver bumps it when
  // anything but metadata and status changes (the spec, for the built-in kinds).
  static int64_t generationAfter(const kube::Json& previous, const kube::Json& next) {
    const auto generation = kube::field<int64_t>(previous, "/metadata/generation"_json_pointer, 1);
    auto body = [](kube::Json object) {
      object.erase("metadata");
      object.erase("status");
      return object;
    };
    return body(previous) == body(next) ? generation : generation + 1;
  }

  // The object stored when a write of `changed` (as the writer mutated it) replaces `previous`:
  // the identity stays; a write of the object keeps the stored status and a status write
  // changes nothing but the status, as with a resource that has a status subresource.
  kube::Json written(const kube::Json& previous, kube::Json changed, kube::Subresource sub) {
    kube::Json out;
    if (sub == kube::Subresource::kStatus) {
      out = previous;
      if (changed.contains("status")) {
        out["status"] = changed["status"];
      } else {
        out.erase("status");
      }
    } else {
      out = std::move(changed);
      if (previous.contains("status")) {
        out["status"] = previous["status"];
      } else {
        out.erase("status");
      }
      for (const char* key : {"name", "namespace", "uid", "creationTimestamp"}) {
        if (previous["metadata"].contains(key)) out["metadata"][key] = previous["metadata"][key];
      }
      out["metadata"]["generation"] = generationAfter(previous, out);
    }
    out["metadata"]["resourceVersion"] = std::to_string(++resourceVersion_);
    return out;
  }

  const kube::Json* find(const kube::ResourceType& type, std::string_view ns,
                         std::string_view name) const {
    auto it = objects_.find(type.qualifiedName());
    if (it == objects_.end()) return nullptr;
    auto object = it->second.find(keyOf(type, ns, name));
    return object == it->second.end() ? nullptr : &object->second;
  }
  kube::Json* find(const kube::ResourceType& type, std::string_view ns, std::string_view name) {
    return const_cast<kube::Json*>(std::as_const(*this).find(type, ns, name));
  }

  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, kube::Json>> objects_;  // by type, then key
  int64_t resourceVersion_ = 0;
  int64_t uids_ = 0;
  int attempts_ = 0;
  BeforeWrite beforeWrite_;
  AfterWrite afterWrite_;
  std::vector<Write> writes_;
};

}  // namespace pi0::testing
