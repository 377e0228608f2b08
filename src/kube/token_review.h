// Who is calling: bearer tokens checked with the apiserver's TokenReview
// (authentication.k8s.io/v1), the way kube-rbac-proxy and the aggregated apiservers check their
// callers. A caller of one of Pi0's internal endpoints sends a projected service-account token
// made for an audience of ours ("pi0-fleet"); the apiserver says whether it is valid for that
// audience and whose it is, and BearerAuthorizer admits the users on its list.
//
// The reviewing identity needs `create` on tokenreviews.authentication.k8s.io (the ClusterRole
// system:auth-delegator grants it).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "kube/client.h"

namespace pi0::kube {

enum class TokenVerdict {
  kAuthenticated,  // the apiserver vouches for the token: `user` says whose it is
  kRejected,       // the apiserver looked and refused it (expired, wrong audience, garbage)
  kUnavailable,    // no answer: the apiserver is unreachable or refused the review itself
};

struct TokenReviewAnswer {
  TokenVerdict verdict = TokenVerdict::kUnavailable;
  std::string user;    // kAuthenticated: "system:serviceaccount:NS:NAME"
  std::string reason;  // kRejected, kUnavailable: why, for a person (the apiserver's words)
};

// Reviews bearer tokens for `audiences` and remembers the answers.
//
// Caching: answers are kept per SHA-256 of the token (the token itself is never kept): an
// authenticated one for `ttl`, a rejection for min(ttl, kRejectedTtl), so that a caller whose
// token was fixed is let in soon. kUnavailable (the apiserver unreachable, an error answer, a
// canceled call) is never kept. At most `capacity` answers are kept: when full, the expired
// ones go, then the oldest. A token that expires within the TTL is still taken until its entry
// does (as the apiserver's own token cache does).
//
// Thread-safety: review() and authenticate() may be called from any number of threads at once.
// The apiserver is called without holding the cache's lock, so two calls for the same new
// token may both review it. `client` and `clock` must outlive the reviewer.
class TokenReviewer {
 public:
  static constexpr std::chrono::seconds kRejectedTtl{5};
  static constexpr std::size_t kCacheCapacity = 1024;

  // `audiences`: the audiences the token must be valid for (at least one of them); the answer
  // must name one of them too, so an apiserver that ignored them is not believed. Empty: the
  // apiserver's own audiences (a token made for the apiserver; not what a Pi0 endpoint wants).
  // `capacity`: how many answers the cache holds (at least 1).
  TokenReviewer(Client& client, std::vector<std::string> audiences,
                std::chrono::seconds ttl = std::chrono::seconds(60), Clock& clock = systemClock(),
                std::size_t capacity = kCacheCapacity);

  // The apiserver's verdict on `token`, from the cache while it is fresh. An empty token is
  // rejected without asking.
  TokenReviewAnswer review(std::string_view token, std::stop_token stop = {});

  // The user `token` authenticates as, or why not: "token not authenticated: <the apiserver's
  // status.error>" or "cannot review the token: <the API error>".
  Result<std::string> authenticate(std::string_view token, std::stop_token stop = {});

  // How many times the apiserver was asked (cache misses, failed calls included).
  std::size_t reviews() const;

 private:
  struct Entry {
    TokenReviewAnswer answer;
    Clock::time_point stored;
    Clock::time_point expires;
  };

  TokenReviewAnswer ask(std::string_view token, std::stop_token stop);
  void remember(std::string key, const TokenReviewAnswer& answer);

  Client& client_;
  const std::vector<std::string> audiences_;
  const std::chrono::seconds ttl_;
  Clock& clock_;
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> cache_;  // by sha256Hex(token); guarded by mu_
  std::size_t reviews_ = 0;                       // guarded by mu_
};

// What BearerAuthorizer says about a request: the HTTP status to answer with and why.
struct BearerCheck {
  int status = 401;     // 200 admitted; 401 no valid token; 403 not on the list; 503 cannot tell
  std::string message;  // empty when admitted; otherwise the answer's body, for a person
  std::string user;     // who the token belongs to (200 and 403); empty otherwise
};

// Admits requests whose `Authorization: Bearer <token>` header carries a token that the
// reviewer authenticates as one of `allowedUsers` (exact names, e.g.
// "system:serviceaccount:pi0-system:pi0-webhook"; an empty list admits nobody).
//   no header, another scheme, no token, a token with spaces  401 "missing bearer token"
//   the apiserver rejects the token                            401 "token not authenticated: ..."
//   authenticated, not on the list                             403 "user U may not <what>"
//   the token cannot be reviewed (apiserver unreachable)       503 "cannot review the token: ..."
//   authenticated and on the list                              200, user
// The scheme is matched without regard to case ("bearer" too), as RFC 9110 says.
//
// Thread-safety: check() may be called from any number of threads at once. `reviewer` must
// outlive the authorizer. check() may block for one apiserver call on a cache miss.
class BearerAuthorizer {
 public:
  // `what`: what an admitted caller may do, for the 403 message ("read the fleet view").
  BearerAuthorizer(TokenReviewer& reviewer, std::vector<std::string> allowedUsers,
                   std::string what = "read the fleet view");

  BearerCheck check(std::string_view authorizationHeader, std::stop_token stop = {});

 private:
  TokenReviewer& reviewer_;
  const std::vector<std::string> allowedUsers_;
  const std::string what_;
};

// The token of an `Authorization` header value "Bearer <token>" (scheme in any case, spaces
// around the token ignored); empty when the value has another scheme, no token, or a token
// with spaces in it.
std::string_view bearerToken(std::string_view authorizationHeader);

}  // namespace pi0::kube
