// TokenReviewer and BearerAuthorizer against the real apiserver of the test bed, with real
// service-account tokens from the TokenRequest API (what a projected volume of audience
// "pi0-fleet" holds). Run by token_review_e2e_test.sh, which starts the control plane and
// exports KUBECONFIG, PI0_E2E_NAMESPACE and PI0_TOKEN (the admin's static token).
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "kube/client.h"
#include "kube/config.h"
#include "kube/token_review.h"
#include "kube_e2e.h"

using namespace pi0;
using namespace pi0::kube;
using pi0::testing::client;
using pi0::testing::eventually;
using pi0::testing::ns;

namespace {

constexpr const char* kAudience = "pi0-fleet";

// Creates the ServiceAccount `name` in ns() unless it exists.
void serviceAccount(const std::string& name) {
  const ResourceType serviceAccounts{"", "v1", "serviceaccounts", "ServiceAccount", true};
  auto created = client().create(
      serviceAccounts, ns(),
      {{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", {{"name", name}}}});
  if (!created && !isAlreadyExists(created.error())) REQUIRE_OK(created);
}

// A token of ServiceAccount `name` for `audiences` (none: the apiserver's own), valid 10
// minutes: POST .../serviceaccounts/NAME/token, as `kubectl create token` and the kubelet ask.
std::string tokenFor(const std::string& name, const std::vector<std::string>& audiences) {
  serviceAccount(name);
  Json request = {{"apiVersion", "authentication.k8s.io/v1"},
                  {"kind", "TokenRequest"},
                  {"spec", {{"expirationSeconds", 600}}}};
  if (!audiences.empty()) request["spec"]["audiences"] = audiences;
  auto answer =
      client().request("POST", "/api/v1/namespaces/" + ns() + "/serviceaccounts/" + name + "/token",
                       {}, request.dump(), "application/json");
  REQUIRE_OK(answer);
  const std::string token = stringField(*answer, "/status/token"_json_pointer);
  REQUIRE_FALSE(token.empty());
  return token;
}

std::string userOf(const std::string& serviceAccountName) {
  return "system:serviceaccount:" + ns() + ":" + serviceAccountName;
}

}  // namespace

TEST_CASE("a token for pi0-fleet authenticates as its ServiceAccount; others are rejected") {
  TokenReviewer reviewer(client(), {kAudience});

  const std::string token = tokenFor("pi0-webhook", {kAudience});
  auto user = reviewer.authenticate(token);
  REQUIRE_MESSAGE(user.has_value(), (user ? "" : user.error().message));
  CHECK(*user == userOf("pi0-webhook"));
  CHECK(reviewer.reviews() == 1);
  CHECK(reviewer.authenticate(token).value_or("") == userOf("pi0-webhook"));
  CHECK(reviewer.reviews() == 1);  // the second answer came from the cache

  // A token of the same ServiceAccount for another audience.
  auto elsewhere = reviewer.authenticate(tokenFor("pi0-webhook", {"elsewhere"}));
  REQUIRE_FALSE(elsewhere);
  MESSAGE("another audience: ", elsewhere.error().message);
  CHECK(elsewhere.error().message.starts_with("token not authenticated: "));
  CHECK(elsewhere.error().message.find("audience") != std::string::npos);

  // A token for the apiserver itself (the default audience, what a pod's automounted token is).
  auto forApiserver = reviewer.authenticate(tokenFor("pi0-webhook", {}));
  REQUIRE_FALSE(forApiserver);
  MESSAGE("the apiserver's audience: ", forApiserver.error().message);
  CHECK(forApiserver.error().message.starts_with("token not authenticated: "));

  // Garbage, and a real token of another kind (the admin's static token, not audience-bound).
  auto garbage = reviewer.authenticate("not-a-token");
  REQUIRE_FALSE(garbage);
  MESSAGE("garbage: ", garbage.error().message);
  CHECK(garbage.error().message.starts_with("token not authenticated: "));
  const char* admin = std::getenv("PI0_TOKEN");
  REQUIRE(admin != nullptr);
  auto adminToken = reviewer.authenticate(admin);
  REQUIRE_FALSE(adminToken);
  MESSAGE("the admin's static token: ", adminToken.error().message);
  CHECK(adminToken.error().message.starts_with("token not authenticated: "));
  // ... which the apiserver does take for its own audience: the rejection above is the
  // audience's doing.
  TokenReviewer forItself(client(), {});
  CHECK(forItself.authenticate(admin).value_or("") == "pi0-e2e-admin");
}

TEST_CASE("BearerAuthorizer: the listed ServiceAccount is admitted, another is refused") {
  TokenReviewer reviewer(client(), {kAudience});
  const std::string webhook = tokenFor("pi0-webhook", {kAudience});
  const std::string stranger = tokenFor("stranger", {kAudience});

  BearerAuthorizer listed(reviewer, {userOf("pi0-webhook")});
  const BearerCheck admitted = listed.check("Bearer " + webhook);
  CHECK(admitted.status == 200);
  CHECK(admitted.message == "");
  CHECK(admitted.user == userOf("pi0-webhook"));
  const BearerCheck refused = listed.check("Bearer " + stranger);
  CHECK(refused.status == 403);
  CHECK(refused.message == "user " + userOf("stranger") + " may not read the fleet view");
  CHECK(listed.check("Bearer not-a-token").status == 401);
  CHECK(listed.check(webhook).status == 401);  // no scheme
  CHECK(listed.check("").message == "missing bearer token");

  BearerAuthorizer others(reviewer, {userOf("stranger")});
  const BearerCheck unlisted = others.check("Bearer " + webhook);
  CHECK(unlisted.status == 403);
  CHECK(unlisted.message == "user " + userOf("pi0-webhook") + " may not read the fleet view");
}

TEST_CASE("a reviewer without RBAC for TokenReviews cannot tell (503) until it is granted") {
  // The reviewing identity: a ServiceAccount of its own, as pi0-operator runs, with a token for
  // the apiserver.
  auto config = resolveConfig("");
  REQUIRE(config);
  config->bearerToken = tokenFor("reviewer", {});
  config->tokenFile.clear();
  config->clientCertPem.clear();
  config->clientKeyPem.clear();
  auto reviewerClient = Client::create(*config);
  REQUIRE(reviewerClient);
  const std::string webhook = tokenFor("pi0-webhook", {kAudience});

  {
    TokenReviewer reviewer(**reviewerClient, {kAudience});
    BearerAuthorizer authorizer(reviewer, {userOf("pi0-webhook")});
    const BearerCheck denied = authorizer.check("Bearer " + webhook);
    MESSAGE("without RBAC: ", denied.message);
    CHECK(denied.status == 503);
    CHECK(denied.message.starts_with("cannot review the token: Forbidden (403)"));
  }

  // system:auth-delegator grants `create` on tokenreviews (and subjectaccessreviews).
  const ResourceType bindings{"rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                              "ClusterRoleBinding", false};
  const std::string name = "pi0-e2e-" + ns() + "-reviewer";
  auto bound = client().create(
      bindings, "",
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "ClusterRoleBinding"},
       {"metadata", {{"name", name}}},
       {"roleRef",
        {{"apiGroup", "rbac.authorization.k8s.io"},
         {"kind", "ClusterRole"},
         {"name", "system:auth-delegator"}}},
       {"subjects", {{{"kind", "ServiceAccount"}, {"name", "reviewer"}, {"namespace", ns()}}}}});
  if (!bound && !isAlreadyExists(bound.error())) REQUIRE_OK(bound);
  // RBAC reads its bindings from an informer: the grant takes effect within moments.
  TokenReviewer reviewer(**reviewerClient, {kAudience});
  BearerAuthorizer authorizer(reviewer, {userOf("pi0-webhook")});
  CHECK(eventually([&] { return authorizer.check("Bearer " + webhook).status == 200; }));
  CHECK(authorizer.check("Bearer " + webhook).user == userOf("pi0-webhook"));
  REQUIRE_OK(client().remove(bindings, "", name));
}
