// Records core/v1 Events about objects, as client-go's EventRecorder does: asynchronously (a
// reconcile never waits on an Event), with repeats of the same event folded into one object
// whose count and lastTimestamp go up (the EventCorrelator), and a per-object spam filter
// (a burst of 25, then one every 5 minutes) so that a hot loop cannot flood the apiserver.
//
// Thread-safety: record() from any thread. Events are sent by one background thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/clock.h"
#include "kube/client.h"
#include "kube/rate_limit.h"

namespace pi0::kube {

struct ObjectReference {
  std::string apiVersion;
  std::string kind;
  std::string ns;
  std::string name;
  std::string uid;
  std::string resourceVersion;

  // The reference to a stored object (its apiVersion, kind and metadata).
  static ObjectReference of(const Json& object);
  Json toJson() const;
};

enum class EventType { kNormal, kWarning };

// What records Events: a role interface, so that controllers are tested with an in-memory sink.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void record(const ObjectReference& object, EventType type, std::string reason,
                      std::string message) = 0;
};

class EventRecorder final : public EventSink {
 public:
  // `component` is the reporting program ("pi0-operator"), `instance` this replica (pod name).
  EventRecorder(Client& client, std::string component, std::string instance,
                Clock& clock = systemClock());
  ~EventRecorder();  // sends what is queued (for at most a few seconds), then stops
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // Queues an Event; `reason` is UpperCamelCase ("ScaledDown"), `message` a sentence for a
  // person. Never blocks on the API; drops (and counts) events when 1000 are already queued.
  void record(const ObjectReference& object, EventType type, std::string reason,
              std::string message) override;

  // Blocks until every event queued so far was sent or dropped (for tests and shutdown).
  void flush();

  struct Counters {
    std::atomic<uint64_t> created{0};
    std::atomic<uint64_t> aggregated{0};  // repeats folded into an existing Event
    std::atomic<uint64_t> dropped{0};     // queue full or spam-filtered
    std::atomic<uint64_t> failed{0};      // the API refused or was unreachable
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Pending {
    ObjectReference object;
    EventType type;
    std::string reason;
    std::string message;
    std::chrono::system_clock::time_point at;
  };
  struct Seen {  // an Event already in the cluster, for folding repeats into it
    std::string name;
    std::string ns;
    int count = 0;
    std::string firstTimestamp;
    std::chrono::system_clock::time_point last;
  };

  void loop(std::stop_token stop);
  void send(const Pending& event);
  bool allowedBySpamFilter(const Pending& event);

  Client& client_;
  std::string component_;
  std::string instance_;
  Clock& clock_;
  Counters counters_;

  std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Pending> queue_;
  uint64_t enqueued_ = 0;
  uint64_t finished_ = 0;
  std::condition_variable flushed_;

  // Touched only by the sending thread.
  std::unordered_map<std::string, Seen> seen_;
  std::unordered_map<std::string, std::unique_ptr<TokenBucket>> spam_;

  std::jthread thread_;
};

}  // namespace pi0::kube
