// Errors from the Kubernetes API, typed the way client-go's apierrors package types them.
// The apiserver answers a failed request with a `Status` object (kind Status, reason, code,
// message); ApiError keeps its reason as an enum so callers branch on `isNotFound(e)` rather
// than on strings. Failures that never reached the apiserver (connection refused, TLS
// verification, timeouts) have the reason kTransport.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pi0::kube {

enum class Reason {
  kUnknown,
  kTransport,           // no HTTP answer: connection refused, TLS failure, timeout, reset
  kCanceled,            // the caller's stop token fired
  kBadResponse,         // an answer that is not what the API promises (malformed JSON)
  kBadRequest,          // 400
  kUnauthorized,        // 401
  kForbidden,           // 403
  kNotFound,            // 404
  kMethodNotAllowed,    // 405
  kAlreadyExists,       // 409, reason AlreadyExists
  kConflict,            // 409: the object changed since it was read
  kGone,                // 410 / reason Expired: the resourceVersion is too old
  kInvalid,             // 422: validation failed
  kTooManyRequests,     // 429
  kInternalError,       // 500
  kServiceUnavailable,  // 503
  kTimeout,             // 504 or reason Timeout / ServerTimeout
};

std::string_view reasonName(Reason reason);

struct ApiError {
  Reason reason = Reason::kUnknown;
  int code = 0;               // HTTP status; 0 when there was no answer
  std::string message;        // what went wrong, for a person
  int retryAfterSeconds = 0;  // from the Status details or the Retry-After header, 0 if none

  // "Conflict (409): Operation cannot be fulfilled on ..."; the form used in logs and in
  // pi0::Error messages.
  std::string describe() const;
  Error toError() const { return Error{describe()}; }
};

template <class T>
using ApiResult = std::expected<T, ApiError>;

inline std::unexpected<ApiError> apiFail(Reason reason, std::string message, int code = 0) {
  return std::unexpected<ApiError>(ApiError{reason, code, std::move(message), 0});
}

// Builds the error for an HTTP answer with a status outside 2xx: from the body when it is a
// `Status` object, else from the HTTP code and as much of the body as is readable.
ApiError errorFromResponse(int httpStatus, std::string_view body, std::string_view retryAfter);

// Builds the error from a `Status` object (a watch stream's ERROR event carries one).
ApiError errorFromStatus(const nlohmann::json& status, int httpStatus);

inline bool isNotFound(const ApiError& e) {
  return e.reason == Reason::kNotFound;
}
inline bool isConflict(const ApiError& e) {
  return e.reason == Reason::kConflict;
}
inline bool isAlreadyExists(const ApiError& e) {
  return e.reason == Reason::kAlreadyExists;
}
inline bool isGone(const ApiError& e) {
  return e.reason == Reason::kGone;
}
// Worth trying again later with the same request: transport failures, 429, 5xx, timeouts.
bool isRetriable(const ApiError& e);

}  // namespace pi0::kube
