// What a controller writes with: a read-modify-write of one object. A role interface, so that
// code that changes objects (operator/workload_scaler.h) is tested against an in-memory
// cluster (tests/fakes/fake_cluster.h) and runs against the API through ClientWriter.
//
// Thread-safety: as thread-safe as the implementation; ClientWriter is as thread-safe as its
// Client (any thread).
#pragma once

#include <functional>
#include <string_view>

#include "kube/client.h"

namespace pi0::kube {

class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;

  // Client::modify's contract: reads the object (or, with Subresource::kStatus, writes only its
  // status), calls `mutate` on it and writes it back conditionally on the resourceVersion it
  // read; on Conflict reads again and calls `mutate` again. `mutate` returns false when the
  // object needs no change, which ends the call without writing. Returns the object as stored
  // (as read, when nothing was written); a missing object is NotFound.
  virtual ApiResult<Json> modify(const ResourceType& type, std::string_view ns,
                                 std::string_view name, const std::function<bool(Json&)>& mutate,
                                 Subresource sub = Subresource::kNone) = 0;
};

// The real one: kube::Client::modify with client-go's default conflict retry. `client` must
// outlive the writer.
class ClientWriter final : public ObjectWriter {
 public:
  explicit ClientWriter(Client& client) : client_(client) {}

  ApiResult<Json> modify(const ResourceType& type, std::string_view ns, std::string_view name,
                         const std::function<bool(Json&)>& mutate,
                         Subresource sub = Subresource::kNone) override {
    return client_.modify(type, ns, name, mutate, sub);
  }

 private:
  Client& client_;
};

}  // namespace pi0::kube
