// pi0-webhook's endpoints as functions of a body and the caches (no server): what each answers,
// what it counts in its metrics, and the node index that replaces a parse of every Node per
// review.
#include "handlers.h"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/timestamp.h"
#include "fakes/fake_clock.h"
#include "metrics/exposition.h"
#include "node_index.h"

using namespace pi0;
using namespace pi0::webhook;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

// PREFIX followed by N, built by appending: GCC 12 warns (-Wrestrict, falsely) on "u" + ....
std::string numbered(const char* prefix, int n) {
  std::string out = prefix;
  out += std::to_string(n);
  return out;
}

ObjectPtr ptr(Json j) {
  return std::make_shared<const Json>(std::move(j));
}

Json nodeObject(const std::string& name, const std::string& cpu = "4") {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/hostname", name}}}}},
          {"spec", Json::object()},
          {"status", {{"allocatable", {{"cpu", cpu}, {"memory", "16Gi"}}}}}};
}

// A fingerprint whose cpu and memory signals have isolation `iso`, PSI zero.
fleet::NodeFingerprint fingerprint(const std::string& node, double iso) {
  fleet::NodeFingerprint fp;
  fp.node = node;
  fp.ready = true;
  fp.windowFill = 1;
  for (const char* name : {"cpu", "memory", "psi_cpu", "psi_memory"}) {
    fleet::SignalFingerprint s;
    s.samples = 64;
    s.gates = fleet::SignalGates{};
    const bool isPsi = std::string(name).starts_with("psi");
    s.gates->isolation = isPsi ? 1.0 : iso;
    s.projectedPeak = isPsi ? 0.0 : 1 - iso;
    s.current = isPsi ? 0.0 : 1 - iso;
    fp.signals.emplace(name, s);
  }
  return fp;
}

Json podReview(const std::string& uid, const std::string& ns, Json labels,
               const std::string& cpu = "500m", const std::string& operation = "CREATE") {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"generateName", "web-"}, {"labels", std::move(labels)}}},
              {"spec",
               {{"containers", Json::array({{{"name", "app"},
                                             {"image", "app:1"},
                                             {"resources", {{"requests", {{"cpu", cpu}}}}}}})}}}};
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", uid},
            {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
            {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
            {"namespace", ns},
            {"operation", operation},
            {"userInfo", {{"username", "tester"}}},
            {"object", pod},
            {"oldObject", operation == "UPDATE" ? pod : Json(nullptr)}}}};
}

Json objectReview(const std::string& uid, const std::string& resource, const Json& object,
                  const std::string& operation = "CREATE") {
  const std::string kind = object.value("kind", "");
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", uid},
            {"kind", {{"group", "stability.pi0.io"}, {"version", "v1alpha1"}, {"kind", kind}}},
            {"resource",
             {{"group", "stability.pi0.io"}, {"version", "v1alpha1"}, {"resource", resource}}},
            {"namespace", object["metadata"].value("namespace", "")},
            {"name", object["metadata"].value("name", "")},
            {"operation", operation},
            {"userInfo", {{"username", "tester"}}},
            {"object", object},
            {"oldObject", operation == "UPDATE" ? object : Json(nullptr)}}}};
}

Json channelObject(const std::string& ns, const std::string& name, Json spec = Json::object()) {
  spec["targets"] = Json::array({{{"kind", "Deployment"}, {"name", name}}});
  return {{"apiVersion", "stability.pi0.io/v1alpha1"},
          {"kind", "Channel"},
          {"metadata", {{"namespace", ns}, {"name", name}, {"uid", ns + "-" + name}}},
          {"spec", std::move(spec)}};
}

Json matrixObject(double firstBound) {
  return {
      {"apiVersion", "stability.pi0.io/v1alpha1"},
      {"kind", "ShutdownMatrix"},
      {"metadata", {{"name", "default"}, {"creationTimestamp", "2026-11-20T10:00:00Z"}}},
      {"spec",
       {{"levels", Json::array({{{"name", "normal"}, {"upperBound", firstBound}},
                                {{"name", "high"}, {"upperBound", 0.9}},
                                {{"name", "critical"}}})},
        {"rows",
         Json::array({{{"channel", {{"namespace", "shop"}, {"name", "batch"}}},
                       {"cells", Json::array({{{"level", "high"}, {"action", "Shutdown"}}})}}})}}}};
}

// A webhook's world: nodes in an index, a fleet view, namespaces, channels and matrices.
struct World {
  testing::FakeClock clock;
  // Wall time moves with the fake clock, from 2026-11-22T10:00:00Z.
  WallClock::time_point wall() const {
    return WallClock::time_point{} + std::chrono::seconds(1795341600) +
           std::chrono::duration_cast<WallClock::duration>(clock.now() - Clock::time_point{});
  }
  ReservationBook reservations{ReservationOptions{}, clock, [this] { return wall(); }};
  NodeIndex index;
  fleet::FleetView view;
  std::map<std::string, ObjectPtr> namespaces;
  std::vector<ObjectPtr> channels, matrices;
  WebhookMetrics metrics;
  admission::Policy policy;

  World() {
    policy.thresholds.isolation = 0.05;
    view.setAgents({{"node-a", "http://127.0.0.1:1"}});
    index.update(nullptr, ptr(nodeObject("node-a")));
  }

  void load(double iso) { view.recordSuccess("node-a", fingerprint("node-a", iso), clock.now()); }

  Handlers handlers(DecisionLog* decisions = nullptr, GateThresholds* gates = nullptr) {
    ClusterState state;
    if (gates) state.gates = [gates] { return gates->current(); };
    state.nodes = [this] { return index.snapshot(); };
    state.namespaceNamed = [this](const std::string& name) -> ObjectPtr {
      auto it = namespaces.find(name);
      return it == namespaces.end() ? nullptr : it->second;
    };
    state.channels = [this] { return channels; };
    state.matrices = [this] { return matrices; };
    state.fleet = [this] { return view.snapshot(); };
    return Handlers(state, policy, 0.05, metrics, reservations, clock, decisions);
  }

  std::string metricsText() { return metrics::renderText(*metrics.registry()); }
};

Json response(const HttpAnswer& a) {
  REQUIRE(a.status == 200);
  REQUIRE(a.contentType == "application/json");
  const Json body = Json::parse(a.body);
  CHECK(body["apiVersion"] == "admission.k8s.io/v1");
  CHECK(body["kind"] == "AdmissionReview");
  return body["response"];
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

}  // namespace

TEST_CASE("pods: the decision for the review, its uid echoed, counted by result and reason") {
  World w;
  w.load(0.8);
  auto h = w.handlers();

  auto r = response(h.pods(podReview("uid-1", "shop", {{"app", "web"}}).dump()));
  CHECK(r["uid"] == "uid-1");
  CHECK(r["allowed"] == true);

  w.load(0.02);  // node-a busy: isolation 0.02 < 500m/4 + 0.05
  r = response(h.pods(podReview("uid-2", "shop", {{"app", "web"}}).dump()));
  CHECK(r["uid"] == "uid-2");
  CHECK(r["allowed"] == false);
  const std::string message = r["status"]["message"];
  CHECK(has(message, "closest node-a"));
  CHECK(has(message, "isolation"));
  CHECK(r["auditAnnotations"]["reason"] == "GatesFailed");

  const std::string text = w.metricsText();
  CHECK(has(text,
            R"(pi0_webhook_decisions_total{endpoint="pods",reason="Passed",result="allowed"} 1)"));
  CHECK(has(text, R"(pi0_webhook_decisions_total{endpoint="pods",reason="GatesFailed",)"
                  R"(result="denied"} 1)"));
  CHECK(has(text, R"(pi0_webhook_request_duration_seconds_count{endpoint="pods"} 2)"));
}

TEST_CASE("pods: every pod decision goes to the decision log, the denied ones too") {
  World w;
  DecisionLog log("pi0-webhook-0", 100);
  auto h = w.handlers(&log);
  w.load(0.8);
  CHECK(response(h.pods(podReview("uid-1", "shop", {{"app", "web"}}).dump()))["allowed"] == true);
  w.load(0.02);
  CHECK(response(h.pods(podReview("uid-2", "shop", {{"app", "web"}}).dump()))["allowed"] == false);
  // Not a pod CREATE, and a pod that cannot be read: no decision of admission's.
  h.pods(podReview("u", "shop", Json::object(), "500m", "UPDATE").dump());
  h.pods(podReview("u", "shop", Json::object(), "5x").dump());

  auto batch = log.peek(10);
  REQUIRE(batch);
  REQUIRE(batch->decisions.size() == 2);
  const ledger::Decision& allowed = batch->decisions[0];
  const ledger::Decision& denied = batch->decisions[1];
  CHECK(allowed.id.starts_with("pi0-webhook-0/"));
  CHECK(allowed.ns == "shop");
  CHECK(allowed.reason == "Passed");
  CHECK(allowed.allowed);
  CHECK(allowed.node == "node-a");
  CHECK(denied.reason == "GatesFailed");
  CHECK_FALSE(denied.allowed);
  CHECK_FALSE(denied.verdict);
  CHECK(denied.mode == "Enforce");
  CHECK(denied.node == "node-a");
  bool isolationFailed = false;
  for (const auto& g : denied.gates)
    if (g.gate == "isolation" && !g.passed) isolationFailed = g.value == doctest::Approx(0.02);
  CHECK(isolationFailed);
}

// A GatePolicy in Auto mode whose status holds isolation's margin at `isolation`.
ObjectPtr gatePolicy(double isolation, double holdoutShare) {
  return ptr(
      {{"apiVersion", "stability.pi0.io/v1alpha1"},
       {"kind", "GatePolicy"},
       {"metadata", {{"name", "default"}, {"generation", 2}}},
       {"spec", {{"mode", "Auto"}, {"holdoutShare", holdoutShare}}},
       {"status",
        {{"thresholds",
          {{"fitError", 0.1}, {"gluingDelta", 0.15}, {"psi", 0.25}, {"isolation", isolation}}}}}});
}

TEST_CASE("pods: the GatePolicy's calibrated thresholds apply at once, the flags' to the holdout") {
  World w;
  w.load(0.3);  // isolation 0.30: passes 500m/4 + 0.05 (the flags'), fails 500m/4 + 0.30
  DecisionLog log("pi0-webhook-0", 1000);
  GateThresholds gates(w.policy, &w.metrics);
  auto h = w.handlers(&log, &gates);
  CHECK(response(h.pods(podReview("u-0", "shop", {{"app", "web"}}).dump()))["allowed"] == true);

  gates.update(gatePolicy(0.30, 0));  // no holdout: every review by the calibrated thresholds
  CHECK(response(h.pods(podReview("u-1", "shop", {{"app", "web"}}).dump()))["allowed"] == false);
  std::string text = w.metricsText();
  CHECK(has(text, R"(pi0_webhook_gate_threshold{gate="isolation"} 0.3)"));
  CHECK(has(text, "pi0_webhook_gate_calibrated 1"));
  CHECK(has(text, "pi0_webhook_gate_threshold_changes_total 1"));

  // Half the reviews judged with the flags' thresholds, marked in the ledger.
  gates.update(gatePolicy(0.30, 0.5));
  int holdout = 0;
  const int reviews = 400;
  for (int i = 0; i < reviews; ++i)
    h.pods(podReview(numbered("h-", i), "shop", {{"app", "web"}}).dump());
  auto batch = log.peek(1000);
  REQUIRE(batch);
  REQUIRE(batch->decisions.size() == 2 + reviews);
  for (std::size_t i = 2; i < batch->decisions.size(); ++i) {
    const ledger::Decision& d = batch->decisions[i];
    // A holdout review is judged by the flags (admitted here), the others by the policy.
    CHECK(d.allowed == d.holdout);
    for (const auto& g : d.gates)
      if (g.gate == "isolation")
        CHECK(g.threshold == doctest::Approx(g.requestShare + (d.holdout ? 0.05 : 0.30)));
    holdout += d.holdout ? 1 : 0;
  }
  // Binomial(400, 0.5): outside [140, 260] with a probability under 1e-9.
  CHECK(holdout > 140);
  CHECK(holdout < 260);
  CHECK(has(w.metricsText(), "pi0_webhook_holdout_decisions_total " + std::to_string(holdout)));

  // The policy gone: the flags again, no holdout.
  gates.update(nullptr);
  CHECK(response(h.pods(podReview("u-2", "shop", {{"app", "web"}}).dump()))["allowed"] == true);
  CHECK(has(w.metricsText(), "pi0_webhook_gate_calibrated 0"));
}

TEST_CASE("pods: what the history gate did is counted by effect, from 0") {
  World w;
  for (const char* effect : {"warned", "steered", "denied"}) {
    CHECK(has(w.metricsText(),
              std::string(R"(pi0_webhook_history_gate_total{effect=")") + effect + R"("} 0)"));
  }
  auto troubled = fingerprint("node-a", 0.9);
  troubled.history = fleet::HistoryVerdict{true, 9, 7, "node-a", {}, "before_trouble", 0.98};
  w.view.recordSuccess("node-a", troubled, w.clock.now());
  // Warn (the default): admitted with the warning, counted as warned.
  auto h = w.handlers();
  auto r = response(h.pods(podReview("u-1", "shop", {{"app", "web"}}).dump()));
  CHECK(r["allowed"] == true);
  CHECK(has(w.metricsText(), R"(pi0_webhook_history_gate_total{effect="warned"} 1)"));
  // Enforce, and the only node troubled: denied, counted as denied.
  w.policy.history = admission::HistoryGate::kEnforce;
  auto enforcing = w.handlers();
  r = response(enforcing.pods(podReview("u-2", "shop", {{"app", "web"}}).dump()));
  CHECK(r["allowed"] == false);
  CHECK(has(w.metricsText(), R"(pi0_webhook_history_gate_total{effect="denied"} 1)"));
  // A calm node: nothing counted.
  w.load(0.9);
  r = response(enforcing.pods(podReview("u-3", "shop", {{"app", "web"}}).dump()));
  CHECK(r["allowed"] == true);
  const std::string text = w.metricsText();
  CHECK(has(text, R"(pi0_webhook_history_gate_total{effect="warned"} 1)"));
  CHECK(has(text, R"(pi0_webhook_history_gate_total{effect="denied"} 1)"));
  CHECK(has(text, R"(pi0_webhook_history_gate_total{effect="steered"} 0)"));
}

TEST_CASE("pods: a namespace's mode label turns a denial into a warning") {
  World w;
  w.load(0.02);
  w.namespaces["lab"] = ptr({{"metadata", {{"name", "lab"}, {"labels", {{kModeLabel, "Warn"}}}}}});
  auto h = w.handlers();
  auto r = response(h.pods(podReview("u", "lab", Json::object()).dump()));
  CHECK(r["allowed"] == true);
  REQUIRE(r["warnings"].size() == 1);
  const std::string warning = r["warnings"][0];
  CHECK(warning.starts_with("pi0 would deny (GatesFailed)"));
  CHECK(warning.size() <= admission::kMaxWarningChars);
  CHECK(has(w.metricsText(), R"(reason="GatesFailed",result="warned"} 1)"));
  // Another namespace keeps the webhook's mode (Enforce).
  CHECK(response(h.pods(podReview("u", "shop", Json::object()).dump()))["allowed"] == false);
}

TEST_CASE("pods: what is not a pod CREATE, or cannot be read, is allowed and says why") {
  World w;
  w.load(0.02);
  auto h = w.handlers();
  auto r = response(h.pods(podReview("u", "shop", Json::object(), "500m", "UPDATE").dump()));
  CHECK(r["allowed"] == true);
  CHECK(has(w.metricsText(), R"(reason="NotAPodCreate",result="allowed"} 1)"));

  r = response(h.pods(podReview("u", "shop", Json::object(), "5x").dump()));
  CHECK(r["allowed"] == true);
  REQUIRE(r["warnings"].size() == 1);
  CHECK(has(r["warnings"][0].get<std::string>(), "pi0: cannot read the pod"));
  CHECK(has(w.metricsText(), R"(reason="Unreadable",result="warned"} 1)"));
}

TEST_CASE("pods: a shut-down channel denies with its level, load and way back") {
  World w;
  w.load(0.8);
  Json batch = channelObject("shop", "batch");
  batch["status"] = {{"state", "Inactive"}};
  w.channels.push_back(ptr(batch));
  Json matrix = matrixObject(0.7);
  matrix["status"] = {{"level", "critical"}, {"levelIndex", 2}, {"load", 0.95}};
  w.matrices.push_back(ptr(matrix));
  auto h = w.handlers();
  auto r = response(h.pods(podReview("u", "shop", {{"stability.pi0.io/channel", "batch"}}).dump()));
  CHECK(r["allowed"] == false);
  const std::string message = r["status"]["message"];
  CHECK(has(message, "channel shop/batch is shut down at level critical (load 0.95)"));
  // A pod of another channel (none) on a quiet node passes.
  CHECK(response(h.pods(podReview("u", "shop", {{"app", "web"}}).dump()))["allowed"] == true);
}

// The channel shop/web at level high with 500m of its buffer left (allocated 1, used `used`), as
// the operator counted it at `observedAt`.
Json bufferedChannel(const std::string& used, WallClock::time_point observedAt) {
  Json web = channelObject("shop", "web");
  web["status"] = {{"state", "Active"},
                   {"buffer",
                    {{"allocated", {{"cpu", "1"}}},
                     {"used", {{"cpu", used}}},
                     {"observedAt", rfc3339Millis(observedAt)}}}};
  return web;
}

Json elevatedMatrix() {
  Json matrix = matrixObject(0.7);
  matrix["status"] = {{"level", "high"}, {"levelIndex", 1}, {"load", 0.82}};
  return matrix;
}

TEST_CASE("pods: a burst against a channel's buffer is admitted up to the remainder") {
  World w;
  w.load(0.8);  // node-a quiet: every pod of 100m passes the gates
  const WallClock::time_point counted = w.wall();
  w.channels = {ptr(bufferedChannel("500m", counted))};
  w.matrices = {ptr(elevatedMatrix())};
  auto h = w.handlers();
  const Json web = {{"stability.pi0.io/channel", "web"}};
  int n = 0;
  auto review = [&] {
    return response(h.pods(podReview(numbered("u", ++n), "shop", web, "100m").dump()));
  };

  // 20 pods of 100m against 500m: the first 5 reserve it all, the other 15 find nothing left.
  const WallClock::time_point admittedAt = w.wall();
  int allowed = 0, denied = 0;
  std::string message;
  for (int i = 0; i < 20; ++i) {
    const Json r = review();
    if (r["allowed"] == true) {
      ++allowed;
      CHECK(denied == 0);  // in order: the first five
    } else {
      ++denied;
      CHECK(r["auditAnnotations"]["reason"] == "BufferExhausted");
      message = r["status"]["message"];
    }
  }
  CHECK(allowed == 5);
  CHECK(denied == 15);
  CHECK(message ==
        "channel shop/web's buffer is exhausted at level high (load 0.82): cpu 100m > 0 remaining "
        "(by 100m); 5 pods admitted but not yet counted by the operator hold cpu 500m, memory 0");
  w.metrics.reservations(h.reservations());
  std::string text = w.metricsText();
  CHECK(has(text, R"(pi0_webhook_buffer_reservations{channel="shop/web"} 5)"));
  CHECK(has(text, R"(pi0_webhook_decisions_total{endpoint="pods",reason="BufferExhausted",)"
                  R"(result="denied"} 15)"));

  // The operator counts the five pods 2 s after they were admitted (its cache's lag): used rises
  // by 500m and the reservations end. The buffer is full by the count itself now: still denied,
  // and the message names no reservation.
  w.clock.advance(2s);
  w.load(0.8);
  w.channels = {ptr(bufferedChannel("1", admittedAt + 2s))};
  Json r = review();
  CHECK(r["allowed"] == false);
  CHECK(r["status"]["message"] ==
        "channel shop/web's buffer is exhausted at level high (load 0.82): cpu 100m > 0 remaining "
        "(by 100m)");
  w.metrics.reservations(h.reservations());
  text = w.metricsText();
  CHECK(has(text, R"(pi0_webhook_buffer_reservations{channel="shop/web"} 0)"));
  CHECK(has(text, R"(pi0_webhook_buffer_reservations_ended_total{reason="counted"} 5)"));
  CHECK(has(text, R"(pi0_webhook_buffer_reservations_ended_total{reason="timeout"} 0)"));
}

TEST_CASE("pods: reservations the operator never counts end at the timeout") {
  World w;
  w.load(0.8);
  const WallClock::time_point counted = w.wall();  // the operator's count never moves after this
  w.channels = {ptr(bufferedChannel("500m", counted))};
  w.matrices = {ptr(elevatedMatrix())};
  auto h = w.handlers();
  const Json web = {{"stability.pi0.io/channel", "web"}};
  int n = 0;
  auto review = [&] {
    return response(h.pods(podReview(numbered("u", ++n), "shop", web, "100m").dump()));
  };
  for (int i = 0; i < 5; ++i)
    CHECK(review()["allowed"] == true);
  CHECK(review()["allowed"] == false);

  w.clock.advance(29s);
  w.load(0.8);
  CHECK(review()["allowed"] == false);  // 29 s: still held
  w.clock.advance(1s);
  w.load(0.8);
  // 30 s: released; the status (500m left) is all there is to go by again.
  CHECK(review()["allowed"] == true);
  w.metrics.reservations(h.reservations());
  const std::string text = w.metricsText();
  CHECK(has(text, R"(pi0_webhook_buffer_reservations_ended_total{reason="timeout"} 5)"));
  CHECK(has(text, R"(pi0_webhook_buffer_reservations{channel="shop/web"} 1)"));
}

TEST_CASE("pods: a restoring channel's pods neither check nor take its buffer") {
  World w;
  w.load(0.8);
  w.channels = {ptr(bufferedChannel("1", w.wall()))};  // nothing left
  Json matrix = elevatedMatrix();
  matrix["status"]["channels"] =
      Json::array({{{"channel", {{"namespace", "shop"}, {"name", "web"}}},
                    {"state", "Inactive"},
                    {"target", "Active"},
                    {"restoring", true}}});
  w.matrices = {ptr(matrix)};
  auto h = w.handlers();
  const Json web = {{"stability.pi0.io/channel", "web"}};
  for (int i = 0; i < 3; ++i)
    CHECK(response(h.pods(podReview(numbered("r", i), "shop", web, "100m").dump()))["allowed"] ==
          true);
  CHECK(h.reservations().live.empty());
}

TEST_CASE("a body that is not an AdmissionReview is a 400 with the parser's message") {
  World w;
  auto h = w.handlers();
  for (const std::string& body : {std::string("{"), std::string(R"({"kind":"Pod"})"),
                                  std::string(R"({"apiVersion":"admission.k8s.io/v1",)"
                                              R"("kind":"AdmissionReview","request":{}})")}) {
    CAPTURE(body);
    const HttpAnswer a = h.pods(body);
    CHECK(a.status == 400);
    CHECK(a.contentType == "text/plain");
    CHECK_FALSE(a.body.empty());
  }
  CHECK(h.channels("[]").status == 400);
  CHECK(h.matrices("").status == 400);
  const std::string text = w.metricsText();
  CHECK(has(text, R"(pi0_webhook_bad_requests_total{endpoint="pods"} 3)"));
  CHECK(has(text, R"(pi0_webhook_bad_requests_total{endpoint="channels"} 1)"));
  CHECK(has(text, R"(pi0_webhook_bad_requests_total{endpoint="shutdownmatrices"} 1)"));
}

// The label sets of a counter's series in an exposition, e.g. {endpoint="pods",reason=...}.
std::set<std::string> seriesOf(const std::string& text, const std::string& name) {
  std::set<std::string> out;
  std::string start = "\n";  // appended: GCC 12 warns (-Wrestrict) on "\n" + name
  start.append(name).append("{");
  for (auto at = text.find(start); at != std::string::npos; at = text.find(start, at + 1)) {
    const auto begin = at + start.size() - 1;
    out.insert(text.substr(begin, text.find('}', begin) - begin + 1));
  }
  return out;
}

TEST_CASE("bad requests and the pods endpoint's decisions are counted from 0 at the start") {
  World w;
  const std::string text = w.metricsText();
  for (const char* endpoint : {"pods", "channels", "shutdownmatrices"}) {
    CAPTURE(endpoint);
    CHECK(has(text,
              std::string(R"(pi0_webhook_bad_requests_total{endpoint=")") + endpoint + R"("} 0)"));
  }
  CHECK(has(text,
            R"(pi0_webhook_decisions_total{endpoint="pods",reason="Passed",result="allowed"} 0)"));
  CHECK(has(text, R"(pi0_webhook_decisions_total{endpoint="pods",reason="GatesFailed",)"
                  R"(result="denied"} 0)"));
  CHECK(has(text, R"(pi0_webhook_decisions_total{endpoint="pods",reason="StaleData",)"
                  R"(result="warned"} 0)"));
  CHECK(has(text, R"(pi0_webhook_decisions_total{endpoint="pods",reason="Unreadable",)"
                  R"(result="warned"} 0)"));
  // Only what can happen: a pod that passes is never denied, an excluded one never warned.
  CHECK_FALSE(has(text, R"(reason="Passed",result="denied")"));
  CHECK_FALSE(has(text, R"(reason="Excluded",result="warned")"));
  const auto created = seriesOf(text, "pi0_webhook_decisions_total");
  CHECK(created.size() == 19);
  CHECK_FALSE(has(text, R"(endpoint="channels",reason=)"));

  // Decisions of every kind, in every mode: each lands on a series that was there already.
  w.namespaces["lab"] = ptr({{"metadata", {{"name", "lab"}, {"labels", {{kModeLabel, "Warn"}}}}}});
  w.namespaces["try"] =
      ptr({{"metadata", {{"name", "try"}, {"labels", {{kModeLabel, "DryRun"}}}}}});
  for (const char* ns : {"shop", "lab", "try"}) {
    Json batch = channelObject(ns, "batch");
    batch["status"] = {{"state", "Inactive"}};
    w.channels.push_back(ptr(batch));
  }
  Json matrix = matrixObject(0.7);
  matrix["status"] = {{"level", "critical"}, {"levelIndex", 2}, {"load", 0.95}};
  w.matrices.push_back(ptr(matrix));
  auto h = w.handlers();
  int n = 0;
  auto review = [&](const std::string& ns, Json labels, const std::string& cpu = "500m",
                    const std::string& operation = "CREATE") {
    CHECK(h.pods(podReview(numbered("u", ++n), ns, std::move(labels), cpu, operation).dump())
              .status == 200);
  };
  for (const char* ns : {"shop", "lab", "try"}) {
    w.load(0.8);
    review(ns, {{"app", "web"}});                         // Passed
    review(ns, {{"stability.pi0.io/channel", "batch"}});  // ChannelInactive
    w.load(0.02);
    review(ns, {{"app", "web"}});                    // GatesFailed
    review(ns, {{"app", "web"}}, "5x");              // Unreadable
    review(ns, {{"app", "web"}}, "500m", "UPDATE");  // NotAPodCreate
  }
  review("kube-system", {{"app", "web"}});  // Excluded
  w.clock.advance(std::chrono::hours(1));   // the fleet's data is stale
  review("shop", {{"app", "web"}});         // StaleData, allowed with a warning
  h.pods("{");
  const std::string after = w.metricsText();
  CHECK(seriesOf(after, "pi0_webhook_decisions_total") == created);
  for (const char* line :
       {R"(reason="Passed",result="allowed"} 3)", R"(reason="GatesFailed",result="denied"} 1)",
        R"(reason="GatesFailed",result="warned"} 1)", R"(reason="GatesFailed",result="allowed"} 1)",
        R"(reason="ChannelInactive",result="denied"} 1)",
        R"(reason="ChannelInactive",result="warned"} 1)",
        R"(reason="ChannelInactive",result="allowed"} 1)",
        R"(reason="Excluded",result="allowed"} 1)", R"(reason="StaleData",result="warned"} 1)",
        R"(reason="Unreadable",result="warned"} 3)",
        R"(reason="NotAPodCreate",result="allowed"} 3)"}) {
    const std::string expected = line;
    CAPTURE(expected);
    CHECK(has(after, line));
  }
  CHECK(has(after, R"(pi0_webhook_bad_requests_total{endpoint="pods"} 1)"));
  CHECK(has(after, R"(pi0_webhook_bad_requests_total{endpoint="channels"} 0)"));
}

TEST_CASE("channels: refused with the problems, compared with the others but not its old self") {
  World w;
  auto h = w.handlers();
  auto r = response(
      h.channels(objectReview("c1", "channels",
                              channelObject("shop", "web", {{"weights", {{"throughput", 2}}}}))
                     .dump()));
  CHECK(r["allowed"] == false);
  CHECK(r["status"]["code"] == 422);
  CHECK(has(r["status"]["message"].get<std::string>(), "weights.throughput is 2"));

  // search depends on web; web's UPDATE that depends on search closes a cycle.
  Json search = channelObject("shop", "search", {{"dependsOn", Json::array({{{"name", "web"}}})}});
  w.channels.push_back(ptr(search));
  Json web = channelObject("shop", "web");
  w.channels.push_back(ptr(web));
  auto h2 = w.handlers();
  Json webUpdate =
      channelObject("shop", "web", {{"dependsOn", Json::array({{{"name", "search"}}})}});
  r = response(h2.channels(objectReview("c2", "channels", webUpdate, "UPDATE").dump()));
  CHECK(r["allowed"] == false);
  CHECK(has(r["status"]["message"].get<std::string>(), "cycle"));
  // The same UPDATE without the dependency is fine, though web's old copy is in the cache.
  r = response(h2.channels(objectReview("c3", "channels", web, "UPDATE").dump()));
  CHECK(r["allowed"] == true);
  CHECK(has(w.metricsText(), R"(endpoint="channels",reason="Invalid",result="denied"} 2)"));
}

TEST_CASE("matrices: the margin below the first level, and warnings for unknown channels") {
  World w;                               // θ_iso 0.05: admission admits up to 0.95
  w.policy.thresholds.isolation = 0.35;  // admits up to 0.65: the first level must be >= 0.70
  auto h = w.handlers();
  auto r = response(h.matrices(objectReview("m1", "shutdownmatrices", matrixObject(0.68)).dump()));
  CHECK(r["allowed"] == false);
  CHECK(has(r["status"]["message"].get<std::string>(), "the first level \"normal\" ends at"));

  r = response(h.matrices(objectReview("m2", "shutdownmatrices", matrixObject(0.7)).dump()));
  CHECK(r["allowed"] == true);
  REQUIRE(r["warnings"].size() == 1);  // shop/batch does not exist
  CHECK(has(r["warnings"][0].get<std::string>(), "shop/batch"));
}

TEST_CASE("NodeIndex: parsed once per change, in name order, unreadable Nodes left out") {
  NodeIndex index;
  index.update(nullptr, ptr(nodeObject("node-b")));
  index.update(nullptr, ptr(nodeObject("node-a")));
  auto snap = index.snapshot();
  REQUIRE(snap->size() == 2);
  CHECK((*snap)[0].name == "node-a");
  CHECK((*snap)[1].name == "node-b");
  CHECK((*snap)[0].cpuMilli == 4000);
  // Unchanged: the same snapshot.
  CHECK(index.snapshot() == snap);
  CHECK(index.changes() == 2);
  // A status update that changes nothing admission reads (a heartbeat): the same table.
  Json heartbeat = nodeObject("node-b");
  heartbeat["metadata"]["resourceVersion"] = "7";
  heartbeat["status"]["conditions"] = Json::array({{{"type", "Ready"}, {"status", "True"}}});
  index.update(ptr(nodeObject("node-b")), ptr(heartbeat));
  CHECK(index.snapshot() == snap);
  CHECK(index.unchanged() == 1);
  CHECK(index.changes() == 2);

  // node-a turns unreadable: left out, counted; a held snapshot still reads as before.
  index.update(ptr(nodeObject("node-a")), ptr(nodeObject("node-a", "lots")));
  auto next = index.snapshot();
  REQUIRE(next->size() == 1);
  CHECK((*next)[0].name == "node-b");
  CHECK(index.unreadable() == 1);
  CHECK((*snap)[0].name == "node-a");

  // Fixed, then deleted.
  index.update(ptr(nodeObject("node-a", "lots")), ptr(nodeObject("node-a", "8")));
  CHECK(index.unreadable() == 0);
  REQUIRE(index.snapshot()->size() == 2);
  CHECK((*index.snapshot())[0].cpuMilli == 8000);
  index.update(ptr(nodeObject("node-a", "8")), nullptr);
  CHECK(index.size() == 1);
  CHECK((*index.snapshot())[0].name == "node-b");
}

TEST_CASE("NodeIndex::trim keeps what admission reads and nothing else") {
  Json node = nodeObject("node-a");
  node["metadata"]["resourceVersion"] = "42";
  node["metadata"]["managedFields"] = Json::array({{{"manager", "kubelet"}}});
  node["metadata"]["annotations"] = {{"a", "b"}};
  node["spec"]["taints"] = Json::array({{{"key", "gpu"}, {"effect", "NoSchedule"}}});
  node["spec"]["podCIDR"] = "10.0.0.0/24";
  node["status"]["images"] = Json::array({{{"names", {"app:1"}}, {"sizeBytes", 1}}});
  node["status"]["conditions"] = Json::array({{{"type", "Ready"}, {"status", "True"}}});
  const auto before = admission::parseNode(node);
  NodeIndex::trim(node);
  CHECK(node["metadata"] == Json({{"name", "node-a"},
                                  {"labels", {{"kubernetes.io/hostname", "node-a"}}},
                                  {"resourceVersion", "42"}}));
  CHECK(node["spec"] ==
        Json({{"taints", Json::array({{{"key", "gpu"}, {"effect", "NoSchedule"}}})}}));
  CHECK(node["status"] == Json({{"allocatable", {{"cpu", "4"}, {"memory", "16Gi"}}}}));
  const auto after = admission::parseNode(node);
  REQUIRE(before);
  REQUIRE(after);
  CHECK(after->name == before->name);
  CHECK(after->labels == before->labels);
  CHECK(after->taints.size() == 1);
  CHECK(after->cpuMilli == before->cpuMilli);
  CHECK(after->memoryBytes == before->memoryBytes);
}
