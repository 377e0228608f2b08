// What the kube tests against FakeApiServer (a stand-in server, named as such) share: a client
// for it, and the bodies and options they build.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "fakes/fake_apiserver.h"
#include "kube/client.h"

namespace pi0::testing {

using kube::Json;

inline std::unique_ptr<kube::Client> clientFor(const FakeApiServer& server) {
  auto client = kube::Client::create(server.config());
  REQUIRE(client);
  return std::move(*client);
}

inline Json configMap(const std::string& name, const std::string& rv) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"namespace", "ns"}, {"name", name}, {"resourceVersion", rv}}}};
}

inline std::string listBody(const std::vector<Json>& items, const std::string& rv,
                            const std::string& next = "") {
  Json list = {{"kind", "ConfigMapList"},
               {"apiVersion", "v1"},
               {"metadata", {{"resourceVersion", rv}}},
               {"items", items}};
  if (!next.empty()) list["metadata"]["continue"] = next;
  return list.dump();
}

inline void status(httplib::Response& res, int code, const std::string& reason,
                   const std::string& message) {
  res.status = code;
  res.set_content(Json{{"kind", "Status"},
                       {"apiVersion", "v1"},
                       {"status", "Failure"},
                       {"reason", reason},
                       {"code", code},
                       {"message", message}}
                      .dump(),
                  "application/json");
}

inline kube::ListOptions paged(int64_t limit) {
  kube::ListOptions options;
  options.limit = limit;
  return options;
}

inline kube::WatchOptions watchFrom(const std::string& rv, int timeoutSeconds) {
  kube::WatchOptions options;
  options.resourceVersion = rv;
  options.timeoutSeconds = timeoutSeconds;
  return options;
}

}  // namespace pi0::testing
