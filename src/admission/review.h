// AdmissionReview (admission.k8s.io/v1, and v1beta1 as older apiservers send it) on the wire:
// the request the apiserver POSTs to a validating webhook, read into a typed value, and the
// AdmissionReview answered to it. Pure functions, no I/O; any thread may call them.
//
// parseReview() is the only place a webhook body is read. It never throws and never aborts,
// whatever the bytes: every failure is a value whose message says what is wrong and where, for
// a 400 answer ("request.uid is missing; the apiserver always sends one"). The HTTP server
// bounds the body's size; nesting deeper than kMaxDepth is refused here before parsing.
//
// responseBody() writes the answer: the request's apiVersion, kind AdmissionReview, and a
// response echoing the request's uid (the apiserver drops an answer whose uid does not match).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json_parse.h"
#include "common/result.h"

namespace pi0::admission {

inline constexpr std::string_view kAdmissionV1 = "admission.k8s.io/v1";
inline constexpr std::string_view kAdmissionV1beta1 = "admission.k8s.io/v1beta1";
// Deeper JSON is refused: no Kubernetes object comes close (a Pod with affinity is about 12).
inline constexpr int kMaxDepth = 128;
// A warning longer than this is cut, ending in "..." (the apiserver's advice for warnings).
inline constexpr std::size_t kMaxWarningChars = 120;

enum class Operation { kCreate, kUpdate, kDelete, kConnect };
// "CREATE", "UPDATE", "DELETE", "CONNECT".
const char* operationName(Operation operation);

struct GroupVersionKind {
  std::string group;  // "" for the core group
  std::string version;
  std::string kind;
  friend bool operator==(const GroupVersionKind&, const GroupVersionKind&) = default;
};

struct GroupVersionResource {
  std::string group;
  std::string version;
  std::string resource;
  friend bool operator==(const GroupVersionResource&, const GroupVersionResource&) = default;
};

struct UserInfo {
  std::string username;  // empty when the apiserver leaves it out
  std::string uid;
  std::vector<std::string> groups;
};

struct AdmissionRequest {
  std::string apiVersion;  // kAdmissionV1 or kAdmissionV1beta1; the response echoes it
  std::string uid;         // non-empty
  GroupVersionKind kind;   // of the object ("", "v1", "Pod")
  GroupVersionResource resource;
  std::string subResource;  // "" unless a subresource ("status", "exec") is reviewed
  Operation operation = Operation::kCreate;
  std::string ns;    // "" for cluster-scoped objects
  std::string name;  // "" when the apiserver leaves it out
  UserInfo userInfo;
  bool dryRun = false;
  // The object as sent: always a JSON object for CREATE and UPDATE, null when absent (DELETE
  // and CONNECT may leave it out). oldObject: always an object for UPDATE; DELETE usually
  // carries the deleted object there; null when absent.
  nlohmann::json object;
  nlohmann::json oldObject;
};

// Reads an AdmissionReview. Fails, with one message, on: an empty body, invalid JSON (saying at
// which line and column it broke), nesting deeper than kMaxDepth, a top level that is not an
// object, an apiVersion other than v1 or v1beta1, a kind other than AdmissionReview, a missing
// request, and in the request: a missing or empty uid, a kind without version or kind, a missing
// resource, an operation that is not CREATE/UPDATE/DELETE/CONNECT, a namespace, name, username
// or dryRun of the wrong type, a missing object on CREATE or UPDATE, a missing oldObject on
// UPDATE. Fields the API marks optional may be absent. Unknown fields are ignored.
//
// `fields` (reviewFields()) lets a caller that reads only some of the object's fields skip
// building the rest (the pod handler: a pod's env, probes, volumes and managedFields are most of
// its bytes); the JSON is still validated whole. The default keeps everything.
Result<AdmissionRequest> parseReview(std::string_view body, const json::Selection& fields = {});

// The fields of an AdmissionReview that parseReview() reads, with request.object and
// request.oldObject narrowed to `objectFields`.
json::Selection reviewFields(const json::Selection& objectFields);

struct Response {
  bool allowed = true;
  int32_t code = 403;  // on deny; 0 or less means 403
  // On deny, the status reason ("Forbidden"); empty gives the reason named by code.
  std::string reason;
  std::string message;                                  // on deny, what the user sees
  std::vector<std::string> warnings;                    // each cut to kMaxWarningChars
  std::map<std::string, std::string> auditAnnotations;  // the apiserver prefixes the keys
};

// The metav1.Status reason for an HTTP code: 400 "BadRequest", 403 "Forbidden", 404 "NotFound",
// 409 "Conflict", 422 "Invalid", 429 "TooManyRequests", 500 "InternalError",
// 503 "ServiceUnavailable", 504 "Timeout"; anything else "Forbidden" below 500 and
// "InternalError" from 500.
const char* reasonForCode(int32_t code);

// The AdmissionReview answering `request`: apiVersion as the request's, kind AdmissionReview,
// response.uid the request's uid, response.allowed; response.status {status "Failure", code,
// reason, message} only when denied; warnings (empty ones dropped, control characters turned
// into spaces, each at most kMaxWarningChars characters, counted in UTF-8 code points, cut ones
// ending in "...") and auditAnnotations only when there are any. Invalid UTF-8 in any text is
// replaced by U+FFFD rather than failing. Never throws.
std::string responseBody(const AdmissionRequest& request, const Response& response);

// A warning cut as responseBody() cuts it.
std::string cutWarning(std::string_view warning);

}  // namespace pi0::admission
