// EndpointSliceAgents on the real control plane: EndpointSlices made by hand (as the
// EndpointSlice controller would make them for the pi0-agent Service) become agents, and
// agents() follows when an endpoint turns not ready and when a slice is deleted. Run by
// endpoint_slices_e2e_test.sh, which starts the control plane and exports KUBECONFIG and
// PI0_E2E_NAMESPACE.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "fleet/endpoint_slices.h"
#include "kube/client.h"
#include "kube_e2e.h"

using namespace pi0;
using namespace pi0::fleet;
using kube::Json;
using pi0::testing::client;
using pi0::testing::eventually;
using pi0::testing::ns;

namespace {

Json endpoint(const std::string& address, const std::string& node, bool ready) {
  return {{"addresses", Json::array({address})},
          {"conditions", {{"ready", ready}}},
          {"topology", {{"kubernetes.io/hostname", node}}}};
}

Json slice(const std::string& name, const std::string& service, Json endpoints, int port = 9560) {
  return {{"apiVersion", "discovery.k8s.io/v1beta1"},
          {"kind", "EndpointSlice"},
          {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/service-name", service}}}}},
          {"addressType", "IPv4"},
          {"ports", Json::array({{{"name", "metrics"}, {"port", port}, {"protocol", "TCP"}}})},
          {"endpoints", std::move(endpoints)}};
}

std::string describe(const std::vector<fleet::Agent>& agents) {
  std::ostringstream out;
  for (const auto& a : agents)
    out << a.node << "=" << a.url << " ";
  return out.str();
}

// Polls agents() until it equals `want`. The guard is generous: the watch delivers in well
// under a second; only a broken watch takes this long.
bool eventuallyAgents(EndpointSliceAgents& source, const std::vector<fleet::Agent>& want) {
  return eventually([&] { return source.agents() == want; });
}

}  // namespace

TEST_CASE("EndpointSliceAgents follows the agent Service's EndpointSlices") {
  auto& c = client();
  // One slice there before the source starts (found by the list), one made after (found by the
  // watch), and one of another Service (never listed).
  REQUIRE_OK(c.create(kube::resources::kEndpointSlices, ns(),
                      slice("pi0-agent-one", "pi0-agent",
                            Json::array({endpoint("10.1.0.1", "node-a", true),
                                         endpoint("10.1.0.2", "node-b", true)}))));
  REQUIRE_OK(
      c.create(kube::resources::kEndpointSlices, ns(),
               slice("other-one", "other", Json::array({endpoint("10.9.0.1", "node-z", true)}))));

  EndpointSliceAgents source(c, ns(), "pi0-agent");
  CHECK_FALSE(source.synced());
  CHECK(source.agents().empty());
  std::jthread running([&source](std::stop_token stop) { source.start(stop); });
  REQUIRE(source.waitForSync({}, std::chrono::seconds(60)));

  std::vector<fleet::Agent> want = {{"node-a", "http://10.1.0.1:9560"},
                                    {"node-b", "http://10.1.0.2:9560"}};
  CHECK_MESSAGE(eventuallyAgents(source, want), "agents: " << describe(source.agents()));

  REQUIRE_OK(c.create(kube::resources::kEndpointSlices, ns(),
                      slice("pi0-agent-two", "pi0-agent",
                            Json::array({endpoint("10.1.0.3", "node-c", true)}), 9561)));
  want = {{"node-a", "http://10.1.0.1:9560"},
          {"node-b", "http://10.1.0.2:9560"},
          {"node-c", "http://10.1.0.3:9561"}};
  CHECK_MESSAGE(eventuallyAgents(source, want), "agents: " << describe(source.agents()));

  // node-b's agent turns not ready.
  REQUIRE_OK(c.modify(kube::resources::kEndpointSlices, ns(), "pi0-agent-one", [](Json& s) {
    for (auto& e : s["endpoints"])
      if (e["topology"]["kubernetes.io/hostname"] == "node-b") e["conditions"]["ready"] = false;
    return true;
  }));
  want = {{"node-a", "http://10.1.0.1:9560"}, {"node-c", "http://10.1.0.3:9561"}};
  CHECK_MESSAGE(eventuallyAgents(source, want), "agents: " << describe(source.agents()));

  // The second slice goes away.
  REQUIRE_OK(c.remove(kube::resources::kEndpointSlices, ns(), "pi0-agent-two"));
  want = {{"node-a", "http://10.1.0.1:9560"}};
  CHECK_MESSAGE(eventuallyAgents(source, want), "agents: " << describe(source.agents()));

  // The other Service's slice was never an agent, and the store holds only this Service's.
  for (const auto& a : source.agents())
    CHECK(a.node != "node-z");

  running.request_stop();
  running.join();
}
