// agentsFromSlices: which endpoints of the agent Service's EndpointSlices become agents, and
// at which URL. The slices are written as the apiserver serves them (v1beta1, and v1 where
// noted).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "fakes/fake_apiserver.h"
#include "fleet/endpoint_slices.h"

using namespace pi0;
using namespace pi0::fleet;
using kube::Json;

namespace {

Json port(const std::string& name, int number) {
  Json p = {{"port", number}, {"protocol", "TCP"}};
  if (!name.empty()) p["name"] = name;
  return p;
}

// A v1beta1 endpoint: the node in topology; `ready` null leaves the condition out.
Json endpoint(const std::string& address, const std::string& node, const Json& ready = true) {
  Json e = {{"addresses", Json::array({address})}};
  if (!node.empty()) e["topology"] = {{"kubernetes.io/hostname", node}};
  if (!ready.is_null()) e["conditions"] = {{"ready", ready}};
  return e;
}

Json slice(const std::string& name, Json ports, Json endpoints,
           const std::string& addressType = "IPv4") {
  return {{"apiVersion", "discovery.k8s.io/v1beta1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"name", name},
            {"namespace", "pi0-system"},
            {"labels", {{"kubernetes.io/service-name", "pi0-agent"}}}}},
          {"addressType", addressType},
          {"ports", std::move(ports)},
          {"endpoints", std::move(endpoints)}};
}

using Agents = std::vector<fleet::Agent>;

}  // namespace

TEST_CASE("agentsFromSlices: conditions, node names, ports, addresses") {
  struct Case {
    const char* name;
    std::vector<Json> slices;
    std::string portName;
    Agents want;
  };
  const Json metrics = Json::array({port("metrics", 9560)});
  const std::vector<Case> cases = {
      {"no slices", {}, "", {}},
      {"ready true, false and absent",
       {slice("s", metrics,
              {endpoint("10.0.0.1", "node-a", true), endpoint("10.0.0.2", "node-b", false),
               endpoint("10.0.0.3", "node-c", nullptr)})},
       "",
       {{"node-a", "http://10.0.0.1:9560"}, {"node-c", "http://10.0.0.3:9560"}}},
      {"conditions present but ready absent, and ready null, count as ready",
       {slice("s", metrics,
              {Json{{"addresses", {"10.0.0.1"}},
                    {"topology", {{"kubernetes.io/hostname", "node-a"}}},
                    {"conditions", Json::object()}},
               Json{{"addresses", {"10.0.0.2"}},
                    {"topology", {{"kubernetes.io/hostname", "node-b"}}},
                    {"conditions", {{"ready", nullptr}}}}})},
       "",
       {{"node-a", "http://10.0.0.1:9560"}, {"node-b", "http://10.0.0.2:9560"}}},
      {"v1 nodeName is taken, and wins over topology",
       {slice("s", metrics,
              {Json{{"addresses", {"10.0.0.1"}}, {"nodeName", "node-v1"}},
               Json{{"addresses", {"10.0.0.2"}},
                    {"nodeName", "node-name"},
                    {"topology", {{"kubernetes.io/hostname", "node-topology"}}}}})},
       "",
       {{"node-name", "http://10.0.0.2:9560"}, {"node-v1", "http://10.0.0.1:9560"}}},
      {"no node name: skipped",
       {slice("s", metrics,
              {endpoint("10.0.0.1", ""),
               Json{{"addresses", {"10.0.0.2"}}, {"topology", {{"zone", "z1"}}}},
               endpoint("10.0.0.3", "node-c")})},
       "",
       {{"node-c", "http://10.0.0.3:9560"}}},
      {"no address: skipped",
       {slice("s", metrics,
              {Json{{"addresses", Json::array()},
                    {"topology", {{"kubernetes.io/hostname", "node-a"}}}},
               endpoint("10.0.0.2", "node-b")})},
       "",
       {{"node-b", "http://10.0.0.2:9560"}}},
      {"the first address of several",
       {slice("s", metrics,
              {Json{{"addresses", {"10.0.0.7", "10.0.0.8"}},
                    {"topology", {{"kubernetes.io/hostname", "node-a"}}}}})},
       "",
       {{"node-a", "http://10.0.0.7:9560"}}},
      {"the port named metrics among several",
       {slice("s", Json::array({port("grpc", 9000), port("metrics", 9560), port("http", 8080)}),
              {endpoint("10.0.0.1", "node-a")})},
       "",
       {{"node-a", "http://10.0.0.1:9560"}}},
      {"else the port named http",
       {slice("s", Json::array({port("grpc", 9000), port("http", 8080)}),
              {endpoint("10.0.0.1", "node-a")})},
       "",
       {{"node-a", "http://10.0.0.1:8080"}}},
      {"else the only port, named or not",
       {slice("a", Json::array({port("", 9561)}), {endpoint("10.0.0.1", "node-a")}),
        slice("b", Json::array({port("other", 9562)}), {endpoint("10.0.0.2", "node-b")})},
       "",
       {{"node-a", "http://10.0.0.1:9561"}, {"node-b", "http://10.0.0.2:9562"}}},
      {"several ports, none fitting: the slice is skipped",
       {slice("a", Json::array({port("grpc", 9000), port("admin", 9001)}),
              {endpoint("10.0.0.1", "node-a")}),
        slice("b", metrics, {endpoint("10.0.0.2", "node-b")})},
       "",
       {{"node-b", "http://10.0.0.2:9560"}}},
      {"no ports, or a port without a number (all ports): skipped",
       {slice("a", Json::array(), {endpoint("10.0.0.1", "node-a")}),
        slice("b", Json::array({Json{{"name", "metrics"}, {"port", nullptr}}}),
              {endpoint("10.0.0.2", "node-b")})},
       "",
       {}},
      {"a port name given: that port, not metrics",
       {slice("s", Json::array({port("metrics", 9560), port("probe", 9570)}),
              {endpoint("10.0.0.1", "node-a")})},
       "probe",
       {{"node-a", "http://10.0.0.1:9570"}}},
      {"a port name given but absent: the only port still serves",
       {slice("s", Json::array({port("metrics", 9560)}), {endpoint("10.0.0.1", "node-a")})},
       "probe",
       {{"node-a", "http://10.0.0.1:9560"}}},
      {"IPv6 addresses in brackets",
       {slice("s", metrics, {endpoint("fd00::7", "node-a"), endpoint("2001:db8::1", "node-b")},
              "IPv6")},
       "",
       {{"node-a", "http://[fd00::7]:9560"}, {"node-b", "http://[2001:db8::1]:9560"}}},
      {"several slices, each with its own port; sorted by node",
       {slice("s1", metrics, {endpoint("10.0.0.3", "node-c"), endpoint("10.0.0.1", "node-a")}),
        slice("s2", Json::array({port("metrics", 9999)}), {endpoint("10.0.0.2", "node-b")})},
       "",
       {{"node-a", "http://10.0.0.1:9560"},
        {"node-b", "http://10.0.0.2:9999"},
        {"node-c", "http://10.0.0.3:9560"}}},
      {"a node twice: the first ready endpoint wins, across slices",
       {slice("s1", metrics,
              {endpoint("10.0.0.1", "node-a", false), endpoint("10.0.0.2", "node-a"),
               endpoint("10.0.0.3", "node-a")}),
        slice("s2", metrics, {endpoint("10.0.0.4", "node-a"), endpoint("10.0.0.5", "node-b")})},
       "",
       {{"node-a", "http://10.0.0.2:9560"}, {"node-b", "http://10.0.0.5:9560"}}},
      {"a node twice, the first only in a later slice",
       {slice("s1", metrics, {endpoint("10.0.0.1", "node-a", false)}),
        slice("s2", metrics, {endpoint("10.0.0.4", "node-a")})},
       "",
       {{"node-a", "http://10.0.0.4:9560"}}},
      {"malformed pieces are skipped, not fatal",
       {Json("not a slice"),
        Json{{"metadata", {{"name", "x"}}}, {"ports", metrics}, {"endpoints", "nope"}},
        slice("s", metrics, {Json(42), endpoint("10.0.0.1", "node-a")})},
       "",
       {{"node-a", "http://10.0.0.1:9560"}}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(agentsFromSlices(c.slices, c.portName) == c.want);
  }
}

// endpointSliceType against FakeApiServer (a stand-in: the test bed's 1.20 apiserver serves only
// v1beta1, so only a stand-in can answer as 1.21 and later do).
TEST_CASE("endpointSliceType: v1 where served, v1beta1 on 404, the error otherwise") {
  for (int answer : {200, 404, 500}) {
    CAPTURE(answer);
    testing::FakeApiServer server;
    server.server().Get(
        "/apis/discovery.k8s.io/v1", [&](const httplib::Request&, httplib::Response& res) {
          res.status = answer;
          res.set_content(answer == 200
                              ? R"({"kind":"APIResourceList","groupVersion":"discovery.k8s.io/v1"})"
                              : R"({"kind":"Status","apiVersion":"v1","status":"Failure","code":)" +
                                    std::to_string(answer) + "}",
                          "application/json");
        });
    server.start();
    auto client = kube::Client::create(server.config());
    REQUIRE(client);
    const auto type = endpointSliceType(**client, {});
    if (answer == 500) {
      REQUIRE_FALSE(type);
      CHECK(type.error().reason == kube::Reason::kInternalError);
      continue;
    }
    REQUIRE(type);
    CHECK(type->group == "discovery.k8s.io");
    CHECK(type->plural == "endpointslices");
    CHECK(type->version == (answer == 200 ? "v1" : "v1beta1"));
  }
}
