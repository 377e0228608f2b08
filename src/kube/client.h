// A small Kubernetes REST client: typed errors, a client-side rate limit, keep-alive HTTPS
// connections with verification, paged lists, watches, and optimistic-concurrency updates
// that retry on conflict. Objects are nlohmann::json as the API serves them; callers read the
// fields they need.
//
// Thread-safety: every method may be called from any thread at once. Each request takes a
// connection from a small pool (a connection is used by one request at a time); a watch has a
// connection of its own for as long as it runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"
#include "kube/config.h"
#include "kube/errors.h"
#include "kube/json.h"
#include "kube/resource.h"

namespace pi0::kube {

using Query = std::vector<std::pair<std::string, std::string>>;

struct ListOptions {
  std::string labelSelector;
  std::string fieldSelector;
  int64_t limit = 0;            // page size; 0: no paging
  std::string continueToken;    // from the previous page
  std::string resourceVersion;  // "" (a consistent read) or "0" (any, from the watch cache)
  // list() only: applied to every item as its page arrives, so that a cache that keeps a
  // trimmed copy never holds every full object at once (a 1.20 apiserver ignores `limit` when
  // resourceVersion is "0", so that list arrives as one page).
  std::function<void(Json&)> transform;
};

struct ObjectList {
  std::vector<Json> items;
  std::string resourceVersion;  // of the list: where a watch continues from
  std::string continueToken;    // non-empty when more pages follow
};

enum class PatchType { kMerge, kJson, kStrategicMerge };

enum class Subresource { kNone, kStatus, kScale };

struct DeleteOptions {
  std::string preconditionUid;
  std::string preconditionResourceVersion;
  std::string propagationPolicy;  // "Foreground", "Background", "Orphan" or "" (default)
  std::optional<int64_t> gracePeriodSeconds;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark };

struct WatchEvent {
  WatchEventType type;
  Json object;
};

struct WatchOptions {
  std::string resourceVersion;
  std::string labelSelector;
  std::string fieldSelector;
  int timeoutSeconds = 0;  // the server ends the watch after this long; 0: the server's default
  bool allowBookmarks = true;
};

// client-go's retry.DefaultRetry: 5 tries 10 ms apart, with 10 % jitter.
struct ConflictRetry {
  int tries = 5;
  std::chrono::milliseconds interval{10};
  double jitter = 0.1;
};

class Client {
 public:
  // Checks the configuration (parses the CA, the client certificate and key) without
  // connecting; fails naming what is wrong and where it came from. The first call sets SIGPIPE
  // to be ignored in the process, so that writing to a closed connection is an error value.
  // `clock` paces the rate limit, the waits before a retry (Retry-After, a conflict) and the
  // token file's re-reads, and must outlive the client; requests time out on real time.
  static Result<std::unique_ptr<Client>> create(ClientConfig config, Clock& clock = systemClock());
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientConfig& config() const;

  // GET /version: a cheap check that the server answers and accepts the credentials.
  ApiResult<Json> serverVersion(std::stop_token stop = {});

  ApiResult<Json> get(const ResourceType& type, std::string_view ns, std::string_view name,
                      Subresource sub = Subresource::kNone, std::stop_token stop = {});
  // One page (options.limit, options.continueToken).
  ApiResult<ObjectList> listPage(const ResourceType& type, std::string_view ns,
                                 const ListOptions& options, std::stop_token stop = {});
  // Every page (options.limit is the page size). When the continue token expires midway
  // (410), lists again in one unpaged request, as client-go's pager does.
  ApiResult<ObjectList> list(const ResourceType& type, std::string_view ns,
                             const ListOptions& options, std::stop_token stop = {});
  // Namespaced types take the namespace from `ns`, falling back to the object's.
  ApiResult<Json> create(const ResourceType& type, std::string_view ns, const Json& object,
                         std::stop_token stop = {});
  // PUT of the whole object (or of its status); its metadata.resourceVersion makes it
  // conditional, so a stale copy fails with Conflict.
  ApiResult<Json> update(const ResourceType& type, const Json& object,
                         Subresource sub = Subresource::kNone, std::stop_token stop = {});
  ApiResult<Json> patch(const ResourceType& type, std::string_view ns, std::string_view name,
                        PatchType patchType, const Json& patch,
                        Subresource sub = Subresource::kNone, std::stop_token stop = {});
  ApiResult<void> remove(const ResourceType& type, std::string_view ns, std::string_view name,
                         const DeleteOptions& options = {}, std::stop_token stop = {});

  // Read-modify-write with retry on conflict: reads the object (or its status), calls
  // `mutate` on it, and PUTs it back; on 409 it reads again and calls `mutate` again (up to
  // `retry.tries` times). `mutate` returns false when the object needs no change, which ends
  // the call without writing. Returns the object as the server stored it.
  ApiResult<Json> modify(const ResourceType& type, std::string_view ns, std::string_view name,
                         const std::function<bool(Json&)>& mutate,
                         Subresource sub = Subresource::kNone, ConflictRetry retry = {},
                         std::stop_token stop = {});

  // Watches from options.resourceVersion, calling `onEvent` for each event in order until the
  // server ends the watch (a value), `onEvent` returns false (a value), `stop` fires
  // (kCanceled), or the stream fails (kTransport, or the ERROR event's Status, e.g. Gone).
  // The event stream is split into events whatever its chunk boundaries.
  ApiResult<void> watch(const ResourceType& type, std::string_view ns, const WatchOptions& options,
                        const std::function<bool(WatchEvent&&)>& onEvent,
                        std::stop_token stop = {});

  // The path of a resource: "/apis/apps/v1/namespaces/ns/deployments/name/scale".
  static std::string path(const ResourceType& type, std::string_view ns, std::string_view name = {},
                          Subresource sub = Subresource::kNone);

  // Raw request, for what the typed methods do not cover. `body` may be empty.
  ApiResult<Json> request(std::string_view method, const std::string& path, const Query& query,
                          std::string_view body, std::string_view contentType,
                          std::stop_token stop = {});

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Splits a watch response body into its newline-delimited JSON documents, whatever the chunk
// boundaries. Feed each chunk to push(); it calls `onLine` for each complete non-empty line.
class LineSplitter {
 public:
  // Returns false as soon as onLine does (the rest of the chunk is kept for later).
  bool push(std::string_view chunk, const std::function<bool(std::string_view)>& onLine);
  // What is left without a final newline (a stream that ended mid-document).
  std::string_view pending() const { return buffer_; }

 private:
  std::string buffer_;
};

// Parses one line of a watch stream. An ERROR event becomes the error it carries (for example
// Gone after a compaction); an unknown type or malformed JSON is kBadResponse.
ApiResult<WatchEvent> parseWatchEvent(std::string_view line);

// "namespace/name" or "name": the key objects are stored and queued under.
std::string objectKey(const Json& object);

}  // namespace pi0::kube
