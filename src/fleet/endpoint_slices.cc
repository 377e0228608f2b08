#include "fleet/endpoint_slices.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "common/log.h"
#include "kube/rate_limit.h"

namespace pi0::fleet {
namespace {

constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";
constexpr char kHostnameTopology[] = "kubernetes.io/hostname";

std::string stringAt(const kube::Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::string sliceName(const kube::Json& slice) {
  auto metadata = slice.find("metadata");
  if (metadata == slice.end() || !metadata->is_object()) return {};
  return stringAt(*metadata, "name");
}

// The port number to poll in `slice`, if it has one that fits (see agentsFromSlices).
std::optional<int> choosePort(const kube::Json& slice, std::string_view portName) {
  auto ports = slice.find("ports");
  if (ports == slice.end() || !ports->is_array()) return std::nullopt;
  auto numberOf = [](const kube::Json& port) -> std::optional<int> {
    auto number = port.find("port");
    // A null port means "all ports" in the API: nothing to poll.
    if (number == port.end() || !number->is_number_integer()) return std::nullopt;
    const int value = number->get<int>();
    if (value < 1 || value > 65535) return std::nullopt;
    return value;
  };
  auto named = [&](std::string_view name) -> std::optional<int> {
    for (const auto& port : *ports)
      if (port.is_object() && stringAt(port, "name") == name) return numberOf(port);
    return std::nullopt;
  };
  if (!portName.empty()) {
    if (auto p = named(portName)) return p;
  } else {
    if (auto p = named("metrics")) return p;
    if (auto p = named("http")) return p;
  }
  if (ports->size() == 1 && ports->front().is_object()) return numberOf(ports->front());
  return std::nullopt;
}

bool ready(const kube::Json& endpoint) {
  auto conditions = endpoint.find("conditions");
  if (conditions == endpoint.end() || !conditions->is_object()) return true;
  auto value = conditions->find("ready");
  // Absent or null: unknown, which consumers interpret as ready (discovery.k8s.io API docs).
  return value == conditions->end() || !value->is_boolean() || value->get<bool>();
}

std::string nodeOf(const kube::Json& endpoint) {
  std::string node = stringAt(endpoint, "nodeName");
  if (!node.empty()) return node;
  auto topology = endpoint.find("topology");
  if (topology == endpoint.end() || !topology->is_object()) return {};
  return stringAt(*topology, kHostnameTopology);
}

std::string firstAddress(const kube::Json& endpoint) {
  auto addresses = endpoint.find("addresses");
  if (addresses == endpoint.end() || !addresses->is_array() || addresses->empty()) return {};
  const auto& first = addresses->front();
  return first.is_string() ? first.get<std::string>() : std::string();
}

}  // namespace

std::vector<Agent> agentsFromSlices(const std::vector<kube::Json>& slices,
                                    std::string_view portName) {
  std::vector<Agent> agents;
  std::set<std::string> nodes;
  for (const auto& slice : slices) {
    if (!slice.is_object()) continue;
    const auto port = choosePort(slice, portName);
    if (!port) {
      log::debug("EndpointSlice has no port to poll; skipped",
                 {{"slice", sliceName(slice)}, {"portName", std::string(portName)}});
      continue;
    }
    auto endpoints = slice.find("endpoints");
    if (endpoints == slice.end() || !endpoints->is_array()) continue;
    for (const auto& endpoint : *endpoints) {
      if (!endpoint.is_object() || !ready(endpoint)) continue;
      const std::string address = firstAddress(endpoint);
      if (address.empty()) continue;
      std::string node = nodeOf(endpoint);
      if (node.empty()) {
        log::debug("endpoint without a node name; skipped",
                   {{"slice", sliceName(slice)}, {"address", address}});
        continue;
      }
      if (!nodes.insert(node).second) continue;
      const bool ipv6 = address.find(':') != std::string::npos;
      std::string url = "http://";
      url += ipv6 ? "[" + address + "]" : address;
      url += ":" + std::to_string(*port);
      agents.push_back({std::move(node), std::move(url)});
    }
  }
  std::sort(agents.begin(), agents.end(),
            [](const Agent& a, const Agent& b) { return a.node < b.node; });
  return agents;
}

namespace {

kube::ReflectorOptions sliceOptions(const std::string& service) {
  kube::ReflectorOptions options;
  options.labelSelector = std::string(kServiceNameLabel) + "=" + service;
  return options;
}

}  // namespace

kube::ApiResult<kube::ResourceType> endpointSliceType(kube::Client& client, std::stop_token stop) {
  kube::ResourceType type = kube::resources::kEndpointSlices;
  auto served = client.request("GET", "/apis/discovery.k8s.io/v1", {}, {}, {}, std::move(stop));
  if (served) {
    type.version = "v1";
    return type;
  }
  if (served.error().reason == kube::Reason::kNotFound) {
    type.version = "v1beta1";
    return type;
  }
  return std::unexpected(served.error());
}

EndpointSliceAgents::EndpointSliceAgents(kube::Client& client, std::string ns, std::string service,
                                         std::string portName)
    : ns_(std::move(ns)),
      service_(std::move(service)),
      portName_(std::move(portName)),
      client_(client),
      store_(kube::Store::dropManagedFields) {}

void EndpointSliceAgents::start(std::stop_token stop) {
  kube::Backoff backoff;
  for (;;) {
    auto type = endpointSliceType(client_, stop);
    if (type) {
      log::info("reading EndpointSlices", {{"version", type->group + "/" + type->version}});
      kube::Reflector reflector(client_, *type, ns_, store_, sliceOptions(service_));
      reflector.run(std::move(stop));
      return;
    }
    if (type.error().reason == kube::Reason::kCanceled) return;
    const auto delay = backoff.next();
    log::warn("cannot tell which EndpointSlice version the apiserver serves; trying again",
              {{"error", type.error().describe()},
               {"retryInSeconds", std::chrono::duration<double>(delay).count()}});
    if (!systemClock().sleepUntil(systemClock().now() + delay, stop)) return;
  }
}

std::vector<Agent> EndpointSliceAgents::agents() {
  std::vector<kube::ObjectPtr> cached = store_.list();
  std::lock_guard lock(mu_);
  // The poller asks every round; the slices change rarely. The store's objects are immutable,
  // so the same pointers mean the same slices.
  if (cached == listed_) return agents_;
  std::vector<kube::Json> slices;
  slices.reserve(cached.size());
  for (const auto& object : cached)
    if (object) slices.push_back(*object);
  std::sort(slices.begin(), slices.end(),
            [](const kube::Json& a, const kube::Json& b) { return sliceName(a) < sliceName(b); });
  agents_ = agentsFromSlices(slices, portName_);
  listed_ = std::move(cached);
  return agents_;
}

RunningAgentSource startAgentSource(kube::Client& client,
                                    const std::optional<std::vector<Agent>>& agents,
                                    const std::optional<ServiceRef>& service) {
  RunningAgentSource running;
  if (agents || !service) {
    running.source = std::make_unique<StaticAgents>(agents.value_or(std::vector<Agent>{}));
    return running;
  }
  auto slices = std::make_unique<EndpointSliceAgents>(client, service->ns, service->name);
  running.discovery =
      std::jthread([source = slices.get()](std::stop_token stop) { source->start(stop); });
  log::info("discovering agents through EndpointSlices",
            {{"service", service->ns + "/" + service->name}});
  running.source = std::move(slices);
  return running;
}

}  // namespace pi0::fleet
