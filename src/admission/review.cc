#include "admission/review.h"

#include <cstddef>
#include <optional>
#include <utility>

#include "common/json_parse.h"
#include "common/json_reader.h"

namespace pi0::admission {
namespace {

using Json = nlohmann::json;

// The deepest nesting of arrays and objects in `body`, stopping as soon as it passes `limit`
// (then the byte offset where it did). Strings are skipped with their escapes, so brackets
// inside them do not count. Malformed JSON gives some depth; the parser then says what is wrong.
// Done before parsing so that no deep input reaches recursive code (nlohmann's parser is
// iterative, but copies and comparisons of its values recurse).
std::optional<std::size_t> tooDeep(std::string_view body, int limit) {
  int depth = 0;
  bool inString = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (inString) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        inString = false;
      }
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::nullopt;
}

using json::member;
using json::Node;

// The checks on one request, each failing with the field's path ("request.uid is missing"). First
// failure wins.
class Check : public json::Reader {
 public:
  Check() : json::Reader(" ") {}

  Error failure() const { return Error{error()}; }

  // A string that must be present; `nonEmpty` also refuses "".
  std::string required(const Node& node, bool nonEmpty, const char* why = nullptr) {
    const std::string because = why ? std::string("; ") + why : std::string();
    if (!node.present()) {
      problem(node, "is missing" + because);
      return {};
    }
    std::string s = string(node);
    if (ok() && nonEmpty && s.empty()) problem(node, "is empty" + because);
    return s;
  }

  // An object, present or not; `required` makes its absence a problem.
  const Json* object(const Node& node, bool required, const char* why = nullptr) {
    if (!node.present()) {
      if (required) problem(node, "is missing" + (why ? std::string("; ") + why : std::string()));
      return nullptr;
    }
    return json::Reader::object(node) ? node.value : nullptr;
  }
};

// request.operation; CREATE when it is missing or unknown (then a problem).
Operation readOperation(Check& c, const Node& node) {
  const std::string operation =
      c.required(node, false, "expected CREATE, UPDATE, DELETE or CONNECT");
  if (!c.ok() || operation == "CREATE") return Operation::kCreate;
  if (operation == "UPDATE") return Operation::kUpdate;
  if (operation == "DELETE") return Operation::kDelete;
  if (operation == "CONNECT") return Operation::kConnect;
  c.problem("request.operation is " +
            Json(operation).dump(-1, ' ', false, Json::error_handler_t::replace) +
            "; expected CREATE, UPDATE, DELETE or CONNECT");
  return Operation::kCreate;
}

// request.userInfo, which may be absent.
void readUserInfo(Check& c, const Node& user, UserInfo& out) {
  if (!c.object(user, false)) return;
  out.username = c.string(user.child("username"));
  out.uid = c.string(user.child("uid"));
  const Node groups = user.child("groups");
  if (!groups.present() || !c.expect(groups, groups.value->is_array(), "an array")) return;
  for (const Json& g : *groups.value) {
    if (!g.is_string()) {
      c.problem(groups, std::string("must hold strings, not ") + g.type_name());
      return;
    }
    out.groups.push_back(g.get<std::string>());
  }
}

// Reads `review`, moving the object and oldObject out of it rather than copying them.
Result<AdmissionRequest> readReview(Json& review) {
  if (!review.is_object()) {
    return fail(std::string("an AdmissionReview must be a JSON object, not ") + review.type_name());
  }
  Check c;
  AdmissionRequest out;

  const Json* apiVersion = member(review, "apiVersion");
  if (apiVersion == nullptr) {
    return fail("apiVersion is missing; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1");
  }
  if (!apiVersion->is_string() ||
      (apiVersion->get_ref<const std::string&>() != kAdmissionV1 &&
       apiVersion->get_ref<const std::string&>() != kAdmissionV1beta1)) {
    return fail("apiVersion is " + apiVersion->dump() +
                "; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1");
  }
  out.apiVersion = apiVersion->get<std::string>();

  const Json* kind = member(review, "kind");
  if (kind == nullptr) return fail("kind is missing; expected AdmissionReview");
  if (!kind->is_string() || kind->get_ref<const std::string&>() != "AdmissionReview") {
    return fail("kind is " + kind->dump() + "; expected AdmissionReview");
  }

  const Node request = Node::root(review).child("request");
  if (!c.object(request, true, "an AdmissionReview sent to a webhook carries a request")) {
    return std::unexpected(c.failure());
  }

  out.uid = c.required(request.child("uid"), true, "the response must echo it");

  const Node k = request.child("kind");
  if (c.object(k, true, "expected {group, version, kind}")) {
    out.kind.group = c.string(k.child("group"));
    out.kind.version = c.required(k.child("version"), true);
    out.kind.kind = c.required(k.child("kind"), true);
  }
  const Node res = request.child("resource");
  if (c.object(res, true, "expected {group, version, resource}")) {
    out.resource.group = c.string(res.child("group"));
    out.resource.version = c.required(res.child("version"), true);
    out.resource.resource = c.required(res.child("resource"), true);
  }
  out.subResource = c.string(request.child("subResource"));

  out.operation = readOperation(c, request.child("operation"));

  out.ns = c.string(request.child("namespace"));
  out.name = c.string(request.child("name"));

  readUserInfo(c, request.child("userInfo"), out.userInfo);
  out.dryRun = c.boolean(request.child("dryRun"), out.dryRun);
  if (!c.ok()) return std::unexpected(c.failure());

  const bool writes = out.operation == Operation::kCreate || out.operation == Operation::kUpdate;
  if (c.object(request.child("object"), writes,
               "CREATE and UPDATE requests carry the object to admit")) {
    out.object = std::move(review["request"]["object"]);
  }
  if (c.object(request.child("oldObject"), out.operation == Operation::kUpdate,
               "UPDATE requests carry the object as it was")) {
    out.oldObject = std::move(review["request"]["oldObject"]);
  }
  if (!c.ok()) return std::unexpected(c.failure());
  return out;
}

// How many bytes the UTF-8 sequence starting with `lead` takes; 1 for a stray byte, which then
// counts as one character (dump() replaces it).
std::size_t sequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

}  // namespace

const char* operationName(Operation operation) {
  switch (operation) {
    case Operation::kCreate:
      return "CREATE";
    case Operation::kUpdate:
      return "UPDATE";
    case Operation::kDelete:
      return "DELETE";
    case Operation::kConnect:
      return "CONNECT";
  }
  return "UNKNOWN";
}

Result<AdmissionRequest> parseReview(std::string_view body, const json::Selection& fields) {
  std::size_t start = 0;
  while (start < body.size() && (body[start] == ' ' || body[start] == '\n' || body[start] == '\r' ||
                                 body[start] == '\t')) {
    ++start;
  }
  if (start == body.size()) return fail("the request body is empty; expected an AdmissionReview");
  if (auto at = tooDeep(body, kMaxDepth)) {
    return fail("the request body nests deeper than " + std::to_string(kMaxDepth) +
                " levels (at byte " + std::to_string(*at + 1) + "); no AdmissionReview does");
  }
  auto review = json::parse(body, fields);
  if (!review) return fail("the request body is not valid JSON: " + review.error().message);
  try {
    return readReview(*review);
  } catch (const std::exception& e) {
    // Every read above checks its type first; this only keeps a missed case (or a bad_alloc)
    // from escaping.
    return fail(std::string("the AdmissionReview cannot be read: ") + e.what());
  }
}

json::Selection reviewFields(const json::Selection& objectFields) {
  json::Selection request;
  for (const char* name : {"uid", "kind", "resource", "subResource", "operation", "namespace",
                           "name", "userInfo", "dryRun"}) {
    request.members.push_back({name, {}});
  }
  request.members.push_back({"object", objectFields});
  request.members.push_back({"oldObject", objectFields});
  json::Selection review;
  review.members.push_back({"apiVersion", {}});
  review.members.push_back({"kind", {}});
  review.members.push_back({"request", std::move(request)});
  return review;
}

const char* reasonForCode(int32_t code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return code >= 500 ? "InternalError" : "Forbidden";
  }
}

std::string cutWarning(std::string_view warning) {
  // Warnings travel in an HTTP Warning header: control characters would break it.
  std::string clean(warning);
  for (char& ch : clean) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7F) ch = ' ';
  }
  // Byte offsets where each character starts, up to one past the limit.
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < clean.size() && starts.size() <= kMaxWarningChars;) {
    starts.push_back(i);
    i += sequenceLength(static_cast<unsigned char>(clean[i]));
  }
  if (starts.size() <= kMaxWarningChars) return clean;
  // More than the limit: keep kMaxWarningChars − 3 characters and "...".
  clean.resize(starts[kMaxWarningChars - 3]);
  clean += "...";
  return clean;
}

std::string responseBody(const AdmissionRequest& request, const Response& response) {
  Json r = Json::object();
  r["uid"] = request.uid;
  r["allowed"] = response.allowed;
  if (!response.allowed) {
    const int32_t code = response.code > 0 ? response.code : 403;
    r["status"] = {{"status", "Failure"},
                   {"code", code},
                   {"reason", response.reason.empty() ? reasonForCode(code) : response.reason},
                   {"message", response.message}};
  }
  if (!response.warnings.empty()) {
    Json warnings = Json::array();
    for (const auto& w : response.warnings) {
      if (!w.empty()) warnings.push_back(cutWarning(w));
    }
    if (!warnings.empty()) r["warnings"] = std::move(warnings);
  }
  if (!response.auditAnnotations.empty()) {
    Json annotations = Json::object();
    for (const auto& [key, value] : response.auditAnnotations)
      annotations[key] = value;
    r["auditAnnotations"] = std::move(annotations);
  }
  Json review = {
      {"apiVersion", request.apiVersion.empty() ? std::string(kAdmissionV1) : request.apiVersion},
      {"kind", "AdmissionReview"},
      {"response", std::move(r)}};
  // Texts come from objects users wrote: replace invalid UTF-8 instead of throwing.
  return review.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace pi0::admission
