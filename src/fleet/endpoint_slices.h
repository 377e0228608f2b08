// Where pi0-operator and pi0-webhook find their agents: the EndpointSlices of the agent Service.
// Each ready endpoint with a node name is one agent, polled at http://ADDRESS:PORT. A library of
// its own (libpi0_fleet_kube) because it needs the Kubernetes client, and libpi0_fleet does not
// depend on libpi0_kube.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fleet/agent_source.h"
#include "kube/client.h"
#include "kube/reflector.h"
#include "kube/store.h"

namespace pi0::fleet {

// The agents that `slices` (EndpointSlice objects, discovery.k8s.io v1beta1 or v1) list, sorted
// by node. Per endpoint:
//   - conditions.ready false skips it; absent (or null) counts as ready, as the API says;
//   - the node is `nodeName` (v1) when set, else topology["kubernetes.io/hostname"] (v1beta1);
//     an endpoint with neither is skipped (a debug log);
//   - the URL is http://FIRST_ADDRESS:PORT, an IPv6 address in brackets.
// The port is the slice's port named `portName`; with `portName` empty, the one named
// "metrics", else "http"; else, whatever the name, the slice's only port. A slice with no such
// port is skipped (a debug log). A node listed twice keeps its first ready endpoint, in the
// order of `slices` and of their endpoints.
std::vector<Agent> agentsFromSlices(const std::vector<kube::Json>& slices,
                                    std::string_view portName);

// The EndpointSlice version to read: discovery.k8s.io/v1 where the apiserver serves it
// (Kubernetes 1.21 and later; 1.25 removed v1beta1), else v1beta1 (1.20). Asks the apiserver
// (GET /apis/discovery.k8s.io/v1): 404 means v1beta1. Other errors are returned (the caller
// retries); the stop token cancels.
kube::ApiResult<kube::ResourceType> endpointSliceType(kube::Client& client, std::stop_token stop);

// An AgentSource over the agent Service's EndpointSlices, kept current by a Reflector (label
// selector kubernetes.io/service-name=SERVICE in the Service's namespace), of the version
// endpointSliceType() finds when start() begins (retried with backoff until it answers).
//
// Thread-safety: start() on one thread; agents(), synced() and waitForSync() from any thread.
// The client must outlive this object; start() must have returned before it is destroyed.
class EndpointSliceAgents final : public AgentSource {
 public:
  // `portName` empty: "metrics", else "http", else the only port (see agentsFromSlices).
  EndpointSliceAgents(kube::Client& client, std::string ns, std::string service,
                      std::string portName = {});

  // Finds the EndpointSlice version, then lists and watches the slices until `stop` fires.
  void start(std::stop_token stop);

  // The first list is in: until then agents() is empty.
  bool synced() const override { return store_.synced(); }
  bool waitForSync(std::stop_token stop, std::chrono::milliseconds timeout) const {
    return store_.waitForSync(stop, timeout);
  }

  // The agents the cached slices list now (slices taken in name order, so that which of two
  // endpoints of one node wins does not depend on the cache's order).
  std::vector<Agent> agents() override;

  const std::string& ns() const { return ns_; }
  const std::string& service() const { return service_; }

 private:
  std::string ns_;
  std::string service_;
  std::string portName_;
  kube::Client& client_;
  kube::Store store_;
  std::mutex mu_;                        // guards what follows
  std::vector<kube::ObjectPtr> listed_;  // the slices agents_ was made from
  std::vector<Agent> agents_;
};

// The agents a program's flags name: `agents` (--agents) when given, else the EndpointSlices of
// `service` (--agent-service), listed and watched on a thread of its own until this goes.
struct RunningAgentSource {
  std::unique_ptr<AgentSource> source;
  std::jthread discovery;  // declared after `source`: stops and joins before it goes
};
RunningAgentSource startAgentSource(kube::Client& client,
                                    const std::optional<std::vector<Agent>>& agents,
                                    const std::optional<ServiceRef>& service);

}  // namespace pi0::fleet
