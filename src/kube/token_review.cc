#include "kube/token_review.h"

#include <algorithm>
#include <utility>

#include "common/digest.h"

namespace pi0::kube {

namespace {

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && isSpace(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

TokenReviewAnswer rejected(std::string reason) {
  return {TokenVerdict::kRejected, "", std::move(reason)};
}

TokenReviewAnswer unavailable(std::string reason) {
  return {TokenVerdict::kUnavailable, "", std::move(reason)};
}

// Why an answer other than kAuthenticated lets nobody in, in the words the header promises.
std::string refusal(const TokenReviewAnswer& answer) {
  return (answer.verdict == TokenVerdict::kRejected ? "token not authenticated: "
                                                    : "cannot review the token: ") +
         answer.reason;
}

}  // namespace

std::string_view bearerToken(std::string_view header) {
  header = trimmed(header);
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size() || !isSpace(header[kScheme.size()]) ||
      !equalsIgnoringCase(header.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  const std::string_view token = trimmed(header.substr(kScheme.size()));
  if (std::ranges::any_of(token, isSpace)) return {};
  return token;
}

TokenReviewer::TokenReviewer(Client& client, std::vector<std::string> audiences,
                             std::chrono::seconds ttl, Clock& clock, std::size_t capacity)
    : client_(client),
      audiences_(std::move(audiences)),
      ttl_(ttl),
      clock_(clock),
      capacity_(std::max<std::size_t>(capacity, 1)) {}

TokenReviewAnswer TokenReviewer::review(std::string_view token, std::stop_token stop) {
  // The apiserver refuses to review an empty token (400); no token is simply not authenticated.
  if (token.empty()) return rejected("no token");
  std::string key = sha256Hex(token);
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      if (clock_.now() < it->second.expires) return it->second.answer;
      cache_.erase(it);
    }
    ++reviews_;
  }
  TokenReviewAnswer answer = ask(token, stop);
  if (answer.verdict != TokenVerdict::kUnavailable) remember(std::move(key), answer);
  return answer;
}

Result<std::string> TokenReviewer::authenticate(std::string_view token, std::stop_token stop) {
  TokenReviewAnswer answer = review(token, stop);
  if (answer.verdict != TokenVerdict::kAuthenticated) return fail(refusal(answer));
  return std::move(answer.user);
}

std::size_t TokenReviewer::reviews() const {
  std::lock_guard lock(mu_);
  return reviews_;
}

TokenReviewAnswer TokenReviewer::ask(std::string_view token, std::stop_token stop) {
  Json review = {{"apiVersion", resources::kTokenReviews.apiVersion()},
                 {"kind", resources::kTokenReviews.kind},
                 {"spec", {{"token", std::string(token)}}}};
  if (!audiences_.empty()) review["spec"]["audiences"] = audiences_;
  auto answered = client_.create(resources::kTokenReviews, "", review, stop);
  if (!answered) return unavailable(answered.error().describe());

  const Json status = field<Json>(*answered, "/status"_json_pointer, Json::object());
  if (!field<bool>(status, "/authenticated"_json_pointer, false)) {
    std::string error = stringField(status, "/error"_json_pointer);
    return rejected(error.empty() ? "the apiserver gave no reason" : std::move(error));
  }
  std::string user = stringField(status, "/user/username"_json_pointer);
  if (user.empty()) return unavailable("the TokenReview says authenticated but names no user");
  if (!audiences_.empty()) {
    // An apiserver that did not check the audiences answers without them (the API's advice:
    // check that status.audiences names one of those asked for).
    const Json given = field<Json>(status, "/audiences"_json_pointer, Json::array());
    const bool confirmed =
        given.is_array() && std::ranges::any_of(given, [&](const Json& a) {
          return a.is_string() &&
                 std::ranges::find(audiences_, a.get<std::string>()) != audiences_.end();
        });
    if (!confirmed) {
      return rejected("the apiserver did not confirm the token's audience (asked for " +
                      joined(audiences_) + ", answered " + given.dump() + ")");
    }
  }
  return {TokenVerdict::kAuthenticated, std::move(user), ""};
}

void TokenReviewer::remember(std::string key, const TokenReviewAnswer& answer) {
  const auto now = clock_.now();
  const auto ttl =
      answer.verdict == TokenVerdict::kAuthenticated ? ttl_ : std::min(ttl_, kRejectedTtl);
  std::lock_guard lock(mu_);
  if (cache_.size() >= capacity_ && !cache_.contains(key)) {
    std::erase_if(cache_, [now](const auto& item) { return item.second.expires <= now; });
  }
  if (cache_.size() >= capacity_ && !cache_.contains(key)) {
    // A linear scan, only when the cache is full of live answers: each insert costs an
    // apiserver call anyway, which dwarfs it.
    cache_.erase(std::ranges::min_element(
        cache_, [](const auto& a, const auto& b) { return a.second.stored < b.second.stored; }));
  }
  cache_[std::move(key)] = Entry{answer, now, saturatingAdd(now, ttl)};
}

BearerAuthorizer::BearerAuthorizer(TokenReviewer& reviewer, std::vector<std::string> allowedUsers,
                                   std::string what)
    : reviewer_(reviewer), allowedUsers_(std::move(allowedUsers)), what_(std::move(what)) {}

BearerCheck BearerAuthorizer::check(std::string_view authorizationHeader, std::stop_token stop) {
  const std::string_view token = bearerToken(authorizationHeader);
  if (token.empty()) return {401, "missing bearer token", ""};
  TokenReviewAnswer answer = reviewer_.review(token, stop);
  if (answer.verdict != TokenVerdict::kAuthenticated) {
    return {answer.verdict == TokenVerdict::kRejected ? 401 : 503, refusal(answer), ""};
  }
  if (std::ranges::find(allowedUsers_, answer.user) == allowedUsers_.end()) {
    return {403, "user " + answer.user + " may not " + what_, std::move(answer.user)};
  }
  return {200, "", std::move(answer.user)};
}

}  // namespace pi0::kube
