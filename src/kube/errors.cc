#include "kube/errors.h"

#include <charconv>

namespace pi0::kube {

std::string_view reasonName(Reason reason) {
  switch (reason) {
    case Reason::kUnknown:
      return "Unknown";
    case Reason::kTransport:
      return "Transport";
    case Reason::kCanceled:
      return "Canceled";
    case Reason::kBadResponse:
      return "BadResponse";
    case Reason::kBadRequest:
      return "BadRequest";
    case Reason::kUnauthorized:
      return "Unauthorized";
    case Reason::kForbidden:
      return "Forbidden";
    case Reason::kNotFound:
      return "NotFound";
    case Reason::kMethodNotAllowed:
      return "MethodNotAllowed";
    case Reason::kAlreadyExists:
      return "AlreadyExists";
    case Reason::kConflict:
      return "Conflict";
    case Reason::kGone:
      return "Gone";
    case Reason::kInvalid:
      return "Invalid";
    case Reason::kTooManyRequests:
      return "TooManyRequests";
    case Reason::kInternalError:
      return "InternalError";
    case Reason::kServiceUnavailable:
      return "ServiceUnavailable";
    case Reason::kTimeout:
      return "Timeout";
  }
  return "Unknown";
}

std::string ApiError::describe() const {
  std::string out(reasonName(reason));
  if (code != 0) out += " (" + std::to_string(code) + ")";
  if (!message.empty()) out += ": " + message;
  return out;
}

namespace {

Reason reasonFromCode(int code) {
  switch (code) {
    case 400:
      return Reason::kBadRequest;
    case 401:
      return Reason::kUnauthorized;
    case 403:
      return Reason::kForbidden;
    case 404:
      return Reason::kNotFound;
    case 405:
      return Reason::kMethodNotAllowed;
    case 409:
      return Reason::kConflict;
    case 410:
      return Reason::kGone;
    case 422:
      return Reason::kInvalid;
    case 429:
      return Reason::kTooManyRequests;
    case 500:
      return Reason::kInternalError;
    case 503:
      return Reason::kServiceUnavailable;
    case 504:
      return Reason::kTimeout;
    default:
      return Reason::kUnknown;
  }
}

// The Status `reason` field is more precise than the code where both exist (409 is either
// AlreadyExists or Conflict; an Expired list answers 410).
Reason reasonFromStatusReason(std::string_view r, Reason fallback) {
  if (r == "NotFound") return Reason::kNotFound;
  if (r == "AlreadyExists") return Reason::kAlreadyExists;
  if (r == "Conflict") return Reason::kConflict;
  if (r == "Gone" || r == "Expired") return Reason::kGone;
  if (r == "Invalid") return Reason::kInvalid;
  if (r == "Forbidden") return Reason::kForbidden;
  if (r == "Unauthorized") return Reason::kUnauthorized;
  if (r == "BadRequest") return Reason::kBadRequest;
  if (r == "MethodNotAllowed") return Reason::kMethodNotAllowed;
  if (r == "TooManyRequests") return Reason::kTooManyRequests;
  if (r == "InternalError") return Reason::kInternalError;
  if (r == "ServiceUnavailable") return Reason::kServiceUnavailable;
  if (r == "Timeout" || r == "ServerTimeout") return Reason::kTimeout;
  return fallback;
}

}  // namespace

ApiError errorFromStatus(const nlohmann::json& status, int httpStatus) {
  ApiError e;
  int code = httpStatus;
  if (auto it = status.find("code"); it != status.end() && it->is_number_integer()) {
    code = it->get<int>();
  }
  e.code = code;
  e.reason = reasonFromCode(code);
  if (auto it = status.find("reason"); it != status.end() && it->is_string()) {
    e.reason = reasonFromStatusReason(it->get<std::string>(), e.reason);
  }
  if (auto it = status.find("message"); it != status.end() && it->is_string()) {
    e.message = it->get<std::string>();
  }
  if (e.message.empty()) e.message = std::string(reasonName(e.reason));
  if (auto d = status.find("details"); d != status.end() && d->is_object()) {
    if (auto r = d->find("retryAfterSeconds"); r != d->end() && r->is_number_integer()) {
      e.retryAfterSeconds = r->get<int>();
    }
  }
  return e;
}

ApiError errorFromResponse(int httpStatus, std::string_view body, std::string_view retryAfter) {
  ApiError e;
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.value("kind", "") == "Status") {
    e = errorFromStatus(parsed, httpStatus);
    e.code = httpStatus;  // the transport's code wins over the body's
  } else {
    e.code = httpStatus;
    e.reason = reasonFromCode(httpStatus);
    constexpr std::size_t kMaxBody = 200;
    e.message = std::string(body.substr(0, kMaxBody));
    while (!e.message.empty() && (e.message.back() == '\n' || e.message.back() == ' ')) {
      e.message.pop_back();
    }
    if (e.message.empty()) e.message = "HTTP " + std::to_string(httpStatus);
  }
  if (e.retryAfterSeconds == 0 && !retryAfter.empty()) {
    int seconds = 0;
    auto [ptr, ec] =
        std::from_chars(retryAfter.data(), retryAfter.data() + retryAfter.size(), seconds);
    if (ec == std::errc{} && seconds > 0) e.retryAfterSeconds = seconds;
  }
  return e;
}

bool isRetriable(const ApiError& e) {
  switch (e.reason) {
    case Reason::kTransport:
    case Reason::kTooManyRequests:
    case Reason::kInternalError:
    case Reason::kServiceUnavailable:
    case Reason::kTimeout:
      return true;
    default:
      return e.code >= 500;
  }
}

}  // namespace pi0::kube
