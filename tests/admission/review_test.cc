// AdmissionReview on the wire: real request bodies as the apiserver sends them, every malformed
// case answered with its own message (never a throw), and the shape of the response.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admission/pod_decision.h"
#include "admission/review.h"
#include "common/files.h"

using namespace pi0::admission;
using Json = nlohmann::json;

namespace {

// A Pod CREATE as a 1.20 apiserver sends it for a ReplicaSet's pod: generated name (so
// request.name is empty), two containers and an init container, labels, node and pod
// affinity, tolerations, dryRun false and CreateOptions.
const char* const kPodCreate = R"({
  "kind": "AdmissionReview",
  "apiVersion": "admission.k8s.io/v1",
  "request": {
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
    "requestResource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": "shop",
    "operation": "CREATE",
    "userInfo": {
      "username": "system:serviceaccount:kube-system:replicaset-controller",
      "uid": "a1c6e5d2-0b3f-4f7e-9d0a-3c2b1e4f5a6b",
      "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                 "system:authenticated"]
    },
    "object": {
      "kind": "Pod",
      "apiVersion": "v1",
      "metadata": {
        "generateName": "web-7d4b9c8f6-",
        "namespace": "shop",
        "creationTimestamp": null,
        "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6",
                   "stability.pi0.io/channel": "frontend", "tier": "edge"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": "web-7d4b9c8f6", "uid": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
                             "controller": true, "blockOwnerDeletion": true}],
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                           "apiVersion": "v1", "time": "2021-03-04T10:11:12Z",
                           "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:generateName": {},
                                        "f:labels": {".": {}, "f:app": {}}}}}]
      },
      "spec": {
        "volumes": [{"name": "default-token-x7k2p",
                     "secret": {"secretName": "default-token-x7k2p", "defaultMode": 420}},
                    {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
        "initContainers": [{"name": "migrate", "image": "shop/migrate:1.4.2",
                            "command": ["/bin/migrate", "--wait"],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
        "containers": [
          {"name": "web", "image": "shop/web:2.7.0",
           "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
           "env": [{"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef":
                     {"resource": "limits.cpu", "divisor": "0"}}},
                   {"name": "MODE", "value": "[production]"}],
           "resources": {"limits": {"cpu": "2", "memory": "1Gi"},
                         "requests": {"cpu": "500m", "memory": "512Mi"}},
           "volumeMounts": [{"name": "default-token-x7k2p", "readOnly": true,
                             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                            {"name": "cache", "mountPath": "/cache"}],
           "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                              "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1,
                              "failureThreshold": 3},
           "terminationMessagePath": "/dev/termination-log",
           "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"},
          {"name": "envoy", "image": "envoyproxy/envoy:v1.17.1",
           "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
           "resources": {"limits": {"cpu": "1", "memory": "256Mi"},
                         "requests": {"cpu": "250m", "memory": "128Mi"}},
           "terminationMessagePath": "/dev/termination-log",
           "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"},
          {"name": "gpu-infer", "image": "shop/infer:0.9",
           "resources": {"limits": {"nvidia.com/gpu": "1"},
                         "requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}},
           "terminationMessagePath": "/dev/termination-log",
           "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {"runAsNonRoot": true},
        "affinity": {
          "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
              {"key": "node.kubernetes.io/instance-type", "operator": "In",
               "values": ["m5.xlarge", "m5.2xlarge"]},
              {"key": "pool", "operator": "NotIn", "values": ["batch"]}]}]}},
          "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {
              "labelSelector": {"matchLabels": {"app": "web"}},
              "topologyKey": "kubernetes.io/hostname"}}]}
        },
        "schedulerName": "default-scheduler",
        "tolerations": [
          {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 300},
          {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 300},
          {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
      },
      "status": {}
    },
    "oldObject": null,
    "dryRun": false,
    "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
  }
})";

// A Channel UPDATE by kubectl apply, in the v1beta1 envelope an older apiserver (or a webhook
// configuration asking for v1beta1 first) sends.
const char* const kChannelUpdateV1beta1 = R"({
  "kind": "AdmissionReview",
  "apiVersion": "admission.k8s.io/v1beta1",
  "request": {
    "uid": "3b9f1c2e-8d7a-4e6f-b5c4-1a2b3c4d5e6f",
    "kind": {"group": "stability.pi0.io", "version": "v1alpha1", "kind": "Channel"},
    "resource": {"group": "stability.pi0.io", "version": "v1alpha1", "resource": "channels"},
    "name": "frontend",
    "namespace": "shop",
    "operation": "UPDATE",
    "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
    "object": {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
               "metadata": {"name": "frontend", "namespace": "shop", "generation": 3},
               "spec": {"targets": [{"kind": "Deployment", "name": "web"}],
                        "degradedReplicas": 2}},
    "oldObject": {"apiVersion": "stability.pi0.io/v1alpha1", "kind": "Channel",
                  "metadata": {"name": "frontend", "namespace": "shop", "generation": 2},
                  "spec": {"targets": [{"kind": "Deployment", "name": "web"}]}},
    "dryRun": true,
    "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
  }
})";

Json podCreate() {
  return Json::parse(kPodCreate);
}

std::string errorOf(const std::string& body) {
  auto r = parseReview(body);
  REQUIRE_MESSAGE(!r.has_value(), "expected a failure for: " << body.substr(0, 200));
  return r.error().message;
}

// The realistic body with one change applied.
std::string edited(void (*edit)(Json&)) {
  Json j = podCreate();
  edit(j);
  return j.dump();
}

// A body whose request.object holds `arrays` nested arrays; the review, request and object
// are three levels more.
std::string nested(int arrays) {
  return R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",)"
         R"("kind":{"group":"","version":"v1","kind":"Pod"},)"
         R"("resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE",)"
         R"("object":{"x":)" +
         std::string(static_cast<std::size_t>(arrays), '[') +
         std::string(static_cast<std::size_t>(arrays), ']') + "}}}";
}

}  // namespace

TEST_CASE("a Pod CREATE as the apiserver sends it") {
  auto r = parseReview(kPodCreate);
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(r->apiVersion == "admission.k8s.io/v1");
  CHECK(r->uid == "705ab4f5-6393-11e8-b7cc-42010a800002");
  CHECK(r->kind == GroupVersionKind{"", "v1", "Pod"});
  CHECK(r->resource == GroupVersionResource{"", "v1", "pods"});
  CHECK(r->subResource.empty());
  CHECK(r->operation == Operation::kCreate);
  CHECK(r->ns == "shop");
  CHECK(r->name.empty());
  CHECK(r->userInfo.username == "system:serviceaccount:kube-system:replicaset-controller");
  CHECK(r->userInfo.uid == "a1c6e5d2-0b3f-4f7e-9d0a-3c2b1e4f5a6b");
  CHECK(r->userInfo.groups.size() == 3);
  CHECK_FALSE(r->dryRun);
  REQUIRE(r->object.is_object());
  CHECK(r->object["spec"]["containers"].size() == 3);
  CHECK(r->object["metadata"]["labels"]["stability.pi0.io/channel"] == "frontend");
  CHECK(r->oldObject.is_null());
}

TEST_CASE("a Channel UPDATE in the v1beta1 envelope: remembered, echoed") {
  auto r = parseReview(kChannelUpdateV1beta1);
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(r->apiVersion == "admission.k8s.io/v1beta1");
  CHECK(r->kind == GroupVersionKind{"stability.pi0.io", "v1alpha1", "Channel"});
  CHECK(r->operation == Operation::kUpdate);
  CHECK(r->name == "frontend");
  CHECK(r->dryRun);
  CHECK(r->userInfo.uid.empty());
  CHECK(r->object["spec"]["degradedReplicas"] == 2);
  CHECK(r->oldObject["metadata"]["generation"] == 2);

  const Json out = Json::parse(responseBody(*r, Response{}));
  CHECK(out["apiVersion"] == "admission.k8s.io/v1beta1");
  CHECK(out["response"]["uid"] == "3b9f1c2e-8d7a-4e6f-b5c4-1a2b3c4d5e6f");
}

TEST_CASE("DELETE and CONNECT need no object; optional fields may be absent or null") {
  Json j = podCreate();
  j["request"]["operation"] = "DELETE";
  j["request"]["oldObject"] = j["request"]["object"];
  j["request"].erase("object");
  j["request"].erase("userInfo");
  j["request"].erase("dryRun");
  j["request"]["namespace"] = nullptr;
  j["request"]["kind"].erase("group");
  auto r = parseReview(j.dump());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(r->operation == Operation::kDelete);
  CHECK(r->object.is_null());
  CHECK(r->oldObject.is_object());
  CHECK(r->ns.empty());
  CHECK(r->kind.group.empty());
  CHECK(r->userInfo.username.empty());

  j["request"]["operation"] = "CONNECT";
  j["request"]["subResource"] = "exec";
  j["request"].erase("oldObject");
  r = parseReview(j.dump());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(r->operation == Operation::kConnect);
  CHECK(r->subResource == "exec");
}

TEST_CASE("malformed bodies: each answered with what is wrong") {
  struct Case {
    const char* name;
    std::string body;
    std::string message;
  };
  using R = void (*)(Json&);
  const std::vector<Case> cases{
      {"empty", "", "the request body is empty; expected an AdmissionReview"},
      {"blank", " \r\n\t", "the request body is empty; expected an AdmissionReview"},
      {"top level array", "[]", "an AdmissionReview must be a JSON object, not array"},
      {"top level string", R"("AdmissionReview")",
       "an AdmissionReview must be a JSON object, not string"},
      {"no apiVersion", edited(R([](Json& j) { j.erase("apiVersion"); })),
       "apiVersion is missing; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1"},
      {"wrong version", edited(R([](Json& j) { j["apiVersion"] = "admission.k8s.io/v2"; })),
       R"(apiVersion is "admission.k8s.io/v2"; expected admission.k8s.io/v1 or )"
       "admission.k8s.io/v1beta1"},
      {"wrong group", edited(R([](Json& j) { j["apiVersion"] = "v1"; })),
       R"(apiVersion is "v1"; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1)"},
      {"version a number", edited(R([](Json& j) { j["apiVersion"] = 1; })),
       "apiVersion is 1; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1"},
      {"no kind", edited(R([](Json& j) { j.erase("kind"); })),
       "kind is missing; expected AdmissionReview"},
      {"wrong kind", edited(R([](Json& j) { j["kind"] = "Pod"; })),
       R"(kind is "Pod"; expected AdmissionReview)"},
      {"kind in other case", edited(R([](Json& j) { j["kind"] = "admissionreview"; })),
       R"(kind is "admissionreview"; expected AdmissionReview)"},
      {"no request", edited(R([](Json& j) { j.erase("request"); })),
       "request is missing; an AdmissionReview sent to a webhook carries a request"},
      {"null request", edited(R([](Json& j) { j["request"] = nullptr; })),
       "request is missing; an AdmissionReview sent to a webhook carries a request"},
      {"request a string", edited(R([](Json& j) { j["request"] = "x"; })),
       "request must be an object, not string"},
      {"no uid", edited(R([](Json& j) { j["request"].erase("uid"); })),
       "request.uid is missing; the response must echo it"},
      {"empty uid", edited(R([](Json& j) { j["request"]["uid"] = ""; })),
       "request.uid is empty; the response must echo it"},
      {"uid a number", edited(R([](Json& j) { j["request"]["uid"] = 42; })),
       "request.uid must be a string, not number"},
      {"no request kind", edited(R([](Json& j) { j["request"].erase("kind"); })),
       "request.kind is missing; expected {group, version, kind}"},
      {"request kind a string", edited(R([](Json& j) { j["request"]["kind"] = "Pod"; })),
       "request.kind must be an object, not string"},
      {"kind without version", edited(R([](Json& j) { j["request"]["kind"].erase("version"); })),
       "request.kind.version is missing"},
      {"kind with empty kind", edited(R([](Json& j) { j["request"]["kind"]["kind"] = ""; })),
       "request.kind.kind is empty"},
      {"group a number", edited(R([](Json& j) { j["request"]["kind"]["group"] = 0; })),
       "request.kind.group must be a string, not number"},
      {"no resource", edited(R([](Json& j) { j["request"].erase("resource"); })),
       "request.resource is missing; expected {group, version, resource}"},
      {"resource without resource",
       edited(R([](Json& j) { j["request"]["resource"].erase("resource"); })),
       "request.resource.resource is missing"},
      {"no operation", edited(R([](Json& j) { j["request"].erase("operation"); })),
       "request.operation is missing; expected CREATE, UPDATE, DELETE or CONNECT"},
      {"unknown operation", edited(R([](Json& j) { j["request"]["operation"] = "PATCH"; })),
       R"(request.operation is "PATCH"; expected CREATE, UPDATE, DELETE or CONNECT)"},
      {"operation in lower case", edited(R([](Json& j) { j["request"]["operation"] = "create"; })),
       R"(request.operation is "create"; expected CREATE, UPDATE, DELETE or CONNECT)"},
      {"namespace a number", edited(R([](Json& j) { j["request"]["namespace"] = 7; })),
       "request.namespace must be a string, not number"},
      {"name an array", edited(R([](Json& j) { j["request"]["name"] = Json::array(); })),
       "request.name must be a string, not array"},
      {"userInfo a string", edited(R([](Json& j) { j["request"]["userInfo"] = "admin"; })),
       "request.userInfo must be an object, not string"},
      {"username a number", edited(R([](Json& j) { j["request"]["userInfo"]["username"] = 1; })),
       "request.userInfo.username must be a string, not number"},
      {"groups of numbers",
       edited(R([](Json& j) { j["request"]["userInfo"]["groups"] = Json::array({1}); })),
       "request.userInfo.groups must hold strings, not number"},
      {"dryRun a string", edited(R([](Json& j) { j["request"]["dryRun"] = "true"; })),
       "request.dryRun must be a boolean, not string"},
      {"CREATE without object", edited(R([](Json& j) { j["request"].erase("object"); })),
       "request.object is missing; CREATE and UPDATE requests carry the object to admit"},
      {"CREATE with null object", edited(R([](Json& j) { j["request"]["object"] = nullptr; })),
       "request.object is missing; CREATE and UPDATE requests carry the object to admit"},
      {"object a string", edited(R([](Json& j) { j["request"]["object"] = "{}"; })),
       "request.object must be an object, not string"},
      {"UPDATE without oldObject", edited(R([](Json& j) { j["request"]["operation"] = "UPDATE"; })),
       "request.oldObject is missing; UPDATE requests carry the object as it was"},
      {"DELETE with oldObject an array", edited(R([](Json& j) {
         j["request"]["operation"] = "DELETE";
         j["request"]["oldObject"] = Json::array();
       })),
       "request.oldObject must be an object, not array"},
      {"too deep", nested(126),
       "the request body nests deeper than 128 levels (at byte 348); no AdmissionReview does"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    CHECK(errorOf(c.body) == c.message);
  }
}

TEST_CASE("invalid JSON says where it broke") {
  const std::string full = kPodCreate;
  struct Case {
    std::string body;
    std::string where;
  };
  const std::vector<Case> cases{
      {R"({"apiVersion": "admission.k8s.io/v1",)", "line 1, column 38"},
      {"{\"kind\": \"AdmissionReview\"\n  \"request\": {}}", "line 2, column 11"},
      {R"({"kind": 'AdmissionReview'})", "line 1, column 10"},
      {"{\"kind\": \"Admission\xff\"}", "line 1, column 20"},
      {"not json", "line 1, column 2"},
      {full + "}", "line 109, column 2"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    const std::string message = errorOf(c.body);
    const std::string prefix =
        "the request body is not valid JSON: parse error at " + c.where + ":";
    CHECK(message.substr(0, prefix.size()) == prefix);
  }
  // Every cut of a real body fails with a message, and none throws.
  for (std::size_t n = 0; n < full.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(parseReview(std::string_view(full).substr(0, n)).has_value());
  }
}

TEST_CASE("nesting: 128 levels are read, 129 refused; brackets in strings do not count") {
  // 3 levels (review, request, object) + 125 arrays = 128.
  auto r = parseReview(nested(125));
  CHECK_MESSAGE(r.has_value(), (r ? "" : r.error().message));
  CHECK_FALSE(parseReview(nested(126)).has_value());
  CHECK_FALSE(parseReview(nested(100000)).has_value());
  CHECK_FALSE(parseReview(std::string(1000000, '{')).has_value());

  Json j = podCreate();
  j["request"]["object"]["metadata"]["annotations"]["note"] =
      std::string(300, '[') + "\\\"{" + std::string(300, '{');
  r = parseReview(j.dump());
  CHECK_MESSAGE(r.has_value(), (r ? "" : r.error().message));
}

TEST_CASE("response: allowed, with nothing else") {
  const AdmissionRequest request = *parseReview(kPodCreate);
  const Json want = Json::parse(R"({
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "response": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true}
  })");
  CHECK(Json::parse(responseBody(request, Response{})) == want);
}

TEST_CASE("response: denied, with status, warnings and audit annotations") {
  const AdmissionRequest request = *parseReview(kPodCreate);
  Response deny;
  deny.allowed = false;
  deny.message = "channel shop/frontend is Inactive at level high (load 0.91)";
  deny.warnings = {"node n1: data is 45s old", ""};
  deny.auditAnnotations = {{"decision", "deny"}, {"reason", "ChannelInactive"}};
  const Json want = Json::parse(R"json({
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "response": {
      "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
      "allowed": false,
      "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
                 "message": "channel shop/frontend is Inactive at level high (load 0.91)"},
      "warnings": ["node n1: data is 45s old"],
      "auditAnnotations": {"decision": "deny", "reason": "ChannelInactive"}
    }
  })json");
  CHECK(Json::parse(responseBody(request, deny)) == want);
}

TEST_CASE("response: code and reason") {
  const AdmissionRequest request = *parseReview(kPodCreate);
  struct Case {
    int32_t code;
    std::string reason;
    int32_t wantCode;
    std::string wantReason;
  };
  const std::vector<Case> cases{
      {403, "", 403, "Forbidden"},     {0, "", 403, "Forbidden"},
      {-1, "", 403, "Forbidden"},      {400, "", 400, "BadRequest"},
      {422, "", 422, "Invalid"},       {429, "", 429, "TooManyRequests"},
      {500, "", 500, "InternalError"}, {503, "", 503, "ServiceUnavailable"},
      {418, "", 418, "Forbidden"},     {599, "", 599, "InternalError"},
      {403, "Custom", 403, "Custom"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.code);
    Response deny;
    deny.allowed = false;
    deny.code = c.code;
    deny.reason = c.reason;
    deny.message = "no";
    const Json status = Json::parse(responseBody(request, deny))["response"]["status"];
    CHECK(status["code"] == c.wantCode);
    CHECK(status["reason"] == c.wantReason);
  }
  // An allowed answer carries no status, whatever the code says.
  Response allow;
  allow.code = 500;
  allow.message = "ignored";
  CHECK_FALSE(Json::parse(responseBody(request, allow))["response"].contains("status"));
}

TEST_CASE("warnings are cut to 120 characters, counted in code points") {
  const std::string a120(120, 'a');
  const std::string e130 = [] {
    std::string s;
    for (int i = 0; i < 130; ++i)
      s += "\xc3\xa9";  // é, two bytes
    return s;
  }();
  std::string e117;
  for (int i = 0; i < 117; ++i)
    e117 += "\xc3\xa9";
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases{
      {"short", "short"},
      {a120, a120},
      {a120 + "b", std::string(117, 'a') + "..."},
      {std::string(500, 'x'), std::string(117, 'x') + "..."},
      {e130, e117 + "..."},
      {"two\nlines\tand a tab", "two lines and a tab"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(cutWarning(c.in) == c.out);
  }

  const AdmissionRequest request = *parseReview(kPodCreate);
  Response r;
  r.warnings = {std::string(200, 'w'), e130};
  const Json warnings = Json::parse(responseBody(request, r))["response"]["warnings"];
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0] == std::string(117, 'w') + "...");
  CHECK(warnings[1] == e117 + "...");
}

TEST_CASE("response: invalid UTF-8 in a message is replaced, not thrown") {
  const AdmissionRequest request = *parseReview(kPodCreate);
  Response deny;
  deny.allowed = false;
  deny.message = "bad \xff byte";
  deny.auditAnnotations = {{"k", "\xc3"}};
  const Json out = Json::parse(responseBody(request, deny));
  CHECK(out["response"]["status"]["message"] == "bad \xef\xbf\xbd byte");
  CHECK(out["response"]["auditAnnotations"]["k"] == "\xef\xbf\xbd");
}

TEST_CASE("round trip: what responseBody writes reads back as a review answer") {
  for (const char* body : {kPodCreate, kChannelUpdateV1beta1}) {
    const AdmissionRequest request = *parseReview(body);
    Response deny;
    deny.allowed = false;
    deny.message = "denied";
    deny.warnings = {"w"};
    const Json out = Json::parse(responseBody(request, deny));
    CHECK(out["apiVersion"] == request.apiVersion);
    CHECK(out["kind"] == "AdmissionReview");
    CHECK(out["response"]["uid"] == request.uid);
    CHECK(out["response"]["allowed"] == false);
    CHECK(out["response"]["status"]["message"] == "denied");
    CHECK_FALSE(out.contains("request"));
  }
}

TEST_CASE("pods narrowed to podReviewFields() read the same as whole ones (the fuzz corpus)") {
  int pods = 0;
  for (const auto& entry : std::filesystem::directory_iterator(PI0_FIXTURES "/../fuzz/corpus")) {
    auto text = pi0::readFile(entry.path().string());
    REQUIRE(text);
    CAPTURE(entry.path().string());
    const auto whole = parseReview(*text);
    const auto narrowed = parseReview(*text, podReviewFields());
    REQUIRE(whole.has_value() == narrowed.has_value());
    if (!whole) {
      CHECK(whole.error().message == narrowed.error().message);
      continue;
    }
    CHECK(narrowed->uid == whole->uid);
    CHECK(narrowed->operation == whole->operation);
    if (whole->kind.kind != "Pod" || !whole->object.is_object()) continue;
    // Narrowed means smaller: the pod's env, probes, volumes and managedFields are left out.
    CHECK(narrowed->object.dump().size() < whole->object.dump().size());
    const auto a = parsePod(whole->object);
    const auto b = parsePod(narrowed->object);
    REQUIRE(a.has_value() == b.has_value());
    if (a) {
      CHECK(*a == *b);
    } else {
      CHECK(a.error().message == b.error().message);
    }
    ++pods;
  }
  CHECK(pods >= 28);
}
