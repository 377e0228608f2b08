#include "kube/reflector.h"

#include <random>

#include "common/log.h"

namespace pi0::kube {
namespace {
// resourceVersion "0": any version, served from the apiserver's watch cache.
constexpr std::string_view kAnyVersion = "0";
}  // namespace

Reflector::Reflector(Client& client, ResourceType type, std::string ns, Store& store,
                     ReflectorOptions options, Clock& clock)
    : client_(client),
      type_(std::move(type)),
      ns_(std::move(ns)),
      store_(store),
      options_(std::move(options)),
      clock_(clock),
      backoff_(clock) {}

std::string Reflector::lastResourceVersion() const {
  std::lock_guard lock(rvMu_);
  return resourceVersion_;
}

void Reflector::setResourceVersion(std::string rv) {
  std::lock_guard lock(rvMu_);
  resourceVersion_ = std::move(rv);
}

void Reflector::run(std::stop_token stop) {
  Next next = Next::kList;
  while (!stop.stop_requested() && next != Next::kStop) {
    switch (next) {
      case Next::kList:
        next = listOnce(stop);
        break;
      case Next::kWatch:
        next = watchOnce(stop);
        break;
      case Next::kBackoffThenWatch:
      case Next::kBackoffThenList: {
        const auto delay = backoff_.next();
        if (!clock_.sleepUntil(saturatingAdd(clock_.now(), delay), stop)) return;
        next = next == Next::kBackoffThenWatch ? Next::kWatch : Next::kList;
        break;
      }
      case Next::kStop:
        break;
    }
  }
}

Reflector::Next Reflector::listOnce(std::stop_token stop) {
  ListOptions options;
  options.labelSelector = options_.labelSelector;
  options.fieldSelector = options_.fieldSelector;
  options.limit = options_.pageSize;
  if (listFromCache_ && options_.listFromWatchCache)
    options.resourceVersion = std::string(kAnyVersion);  // else "": a consistent read
  options.transform = [this](Json& item) {
    // A list's items of built-in types carry no apiVersion and kind (watch events do); a
    // cached object names its type, so that an Event's reference to it is complete.
    if (item.is_object()) {
      if (!item.contains("apiVersion")) item["apiVersion"] = type_.apiVersion();
      if (!item.contains("kind")) item["kind"] = type_.kind;
    }
    store_.prepare(item);
  };
  auto list = client_.list(type_, ns_, options, stop);
  if (!list) {
    if (list.error().reason == Reason::kCanceled) return Next::kStop;
    ++counters_.failures;
    if (isGone(list.error())) listFromCache_ = false;
    log::warn("kube: list failed",
              {{"resource", type_.qualifiedName()}, {"error", list.error().describe()}});
    return Next::kBackoffThenList;
  }
  ++counters_.lists;
  log::debug("kube: listed", {{"resource", type_.qualifiedName()},
                              {"items", list->items.size()},
                              {"resourceVersion", list->resourceVersion}});
  setResourceVersion(list->resourceVersion);
  store_.replace(std::move(list->items), /*transformed=*/true);
  listFromCache_ = true;
  return Next::kWatch;
}

Reflector::Next Reflector::watchOnce(std::stop_token stop) {
  WatchOptions options;
  options.resourceVersion = lastResourceVersion();
  options.labelSelector = options_.labelSelector;
  options.fieldSelector = options_.fieldSelector;
  options.allowBookmarks = true;
  {
    thread_local std::mt19937 rng{std::random_device{}()};
    const auto min = options_.minWatchTimeout.count();
    options.timeoutSeconds =
        static_cast<int>(std::uniform_int_distribution<long>(min, 2 * min - 1)(rng));
  }
  ++counters_.watches;
  auto result = client_.watch(
      type_, ns_, options,
      [&](WatchEvent&& event) {
        auto rv = stringField(event.object, "/metadata/resourceVersion"_json_pointer);
        if (event.type != WatchEventType::kBookmark) {
          ++counters_.events;
          store_.apply(event.type, std::move(event.object));
        }
        if (!rv.empty()) setResourceVersion(std::move(rv));
        return !stop.stop_requested();
      },
      stop);
  if (result) return Next::kWatch;  // the server ended the watch: go on from where it was
  const auto& error = result.error();
  if (error.reason == Reason::kCanceled) return Next::kStop;
  if (isGone(error)) {
    // The version is older than what the apiserver keeps: only a new list shows what changed.
    ++counters_.relistsAfterGone;
    log::info("kube: watch expired, listing again",
              {{"resource", type_.qualifiedName()}, {"error", error.describe()}});
    listFromCache_ = false;
    return Next::kList;
  }
  ++counters_.failures;
  log::warn("kube: watch failed",
            {{"resource", type_.qualifiedName()}, {"error", error.describe()}});
  // A broken connection resumes from the last version seen; any other failure lists again.
  return error.reason == Reason::kTransport ? Next::kBackoffThenWatch : Next::kBackoffThenList;
}

}  // namespace pi0::kube
