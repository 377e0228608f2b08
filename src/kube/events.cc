#include "kube/events.h"

#include "common/log.h"
#include "common/timestamp.h"

namespace pi0::kube {
namespace {

constexpr std::size_t kMaxQueued = 1000;
constexpr std::size_t kMaxRemembered = 4096;
constexpr auto kAggregationWindow =
    std::chrono::minutes(10);           // client-go's maxLruCacheEntries window
constexpr double kSpamQps = 1.0 / 300;  // one event per object every 5 minutes after the burst
constexpr int kSpamBurst = 25;

std::string typeName(EventType type) {
  return type == EventType::kWarning ? "Warning" : "Normal";
}

}  // namespace

ObjectReference ObjectReference::of(const Json& object) {
  ObjectReference ref;
  ref.apiVersion = stringField(object, "/apiVersion"_json_pointer);
  ref.kind = stringField(object, "/kind"_json_pointer);
  if (auto meta = object.find("metadata"); meta != object.end() && meta->is_object()) {
    ref.ns = meta->value("namespace", "");
    ref.name = meta->value("name", "");
    ref.uid = meta->value("uid", "");
    ref.resourceVersion = meta->value("resourceVersion", "");
  }
  return ref;
}

Json ObjectReference::toJson() const {
  Json j = {{"apiVersion", apiVersion}, {"kind", kind}, {"name", name}};
  if (!ns.empty()) j["namespace"] = ns;
  if (!uid.empty()) j["uid"] = uid;
  if (!resourceVersion.empty()) j["resourceVersion"] = resourceVersion;
  return j;
}

EventRecorder::EventRecorder(Client& client, std::string component, std::string instance,
                             Clock& clock)
    : client_(client),
      component_(std::move(component)),
      instance_(std::move(instance)),
      clock_(clock) {
  thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

EventRecorder::~EventRecorder() {
  {
    std::unique_lock lock(mu_);
    flushed_.wait_for(lock, std::chrono::seconds(5), [this] { return finished_ == enqueued_; });
  }
  thread_.request_stop();
  cv_.notify_all();
}

void EventRecorder::record(const ObjectReference& object, EventType type, std::string reason,
                           std::string message) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      ++counters_.dropped;
      return;
    }
    queue_.push_back(
        {object, type, std::move(reason), std::move(message), std::chrono::system_clock::now()});
    ++enqueued_;
  }
  cv_.notify_one();
}

void EventRecorder::flush() {
  std::unique_lock lock(mu_);
  flushed_.wait(lock, [this] { return finished_ == enqueued_; });
}

void EventRecorder::loop(std::stop_token stop) {
  for (;;) {
    Pending event;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait(lock, stop, [this] { return !queue_.empty(); })) return;
      event = std::move(queue_.front());
      queue_.pop_front();
    }
    if (allowedBySpamFilter(event)) {
      send(event);
    } else {
      ++counters_.dropped;
    }
    {
      std::lock_guard lock(mu_);
      ++finished_;
    }
    flushed_.notify_all();
  }
}

bool EventRecorder::allowedBySpamFilter(const Pending& event) {
  const std::string key =
      event.object.kind + "/" + event.object.ns + "/" + event.object.name + "/" + event.object.uid;
  auto it = spam_.find(key);
  if (it == spam_.end()) {
    if (spam_.size() >= kMaxRemembered) spam_.clear();
    it = spam_.emplace(key, std::make_unique<TokenBucket>(kSpamQps, kSpamBurst, clock_)).first;
  }
  return it->second->tryAccept();
}

void EventRecorder::send(const Pending& event) {
  const auto& ref = event.object;
  // Events of cluster-scoped objects live in "default", as client-go puts them.
  const std::string ns = ref.ns.empty() ? "default" : ref.ns;
  const std::string key = ref.kind + "\x1f" + ns + "\x1f" + ref.name + "\x1f" + ref.uid + "\x1f" +
                          typeName(event.type) + "\x1f" + event.reason + "\x1f" + event.message;
  const std::string now = rfc3339(event.at, 0);

  if (auto it = seen_.find(key);
      it != seen_.end() && event.at - it->second.last < kAggregationWindow) {
    Seen& seen = it->second;
    Json patch = {{"count", seen.count + 1}, {"lastTimestamp", now}};
    auto result = client_.patch(resources::kEvents, seen.ns, seen.name, PatchType::kMerge, patch);
    if (result) {
      ++seen.count;
      seen.last = event.at;
      ++counters_.aggregated;
      return;
    }
    if (!isNotFound(result.error())) {
      ++counters_.failed;
      log::warn("events: cannot update event",
                {{"event", seen.name}, {"error", result.error().describe()}});
      return;
    }
    seen_.erase(it);  // the Event expired from the cluster: create it anew
  }

  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(event.at.time_since_epoch()).count();
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%llx", static_cast<unsigned long long>(nanos));
  Json body = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", ref.name + suffix}, {"namespace", ns}}},
      {"involvedObject", ref.toJson()},
      {"reason", event.reason},
      {"message", event.message},
      {"type", typeName(event.type)},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", {{"component", component_}}},
      {"reportingComponent", component_},
      {"reportingInstance", instance_},
  };
  auto created = client_.create(resources::kEvents, ns, body);
  if (!created) {
    ++counters_.failed;
    log::warn("events: cannot create event", {{"object", ref.kind + " " + ns + "/" + ref.name},
                                              {"reason", event.reason},
                                              {"error", created.error().describe()}});
    return;
  }
  ++counters_.created;
  if (seen_.size() >= kMaxRemembered) seen_.clear();
  seen_[key] = Seen{body["metadata"]["name"], ns, 1, now, event.at};
}

}  // namespace pi0::kube
