// The self-managed certificate mode against the real apiserver of the test bed: a Secret and a
// ValidatingWebhookConfiguration written by reconcileCertificates, with `now` moved forward to
// walk a serving renewal and a CA rotation. Run by rotation_e2e_test.sh, which starts the
// control plane and exports KUBECONFIG and PI0_E2E_NAMESPACE.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "certs/rotation.h"
#include "certs/self_signed.h"
#include "common/base64.h"
#include "kube_e2e.h"

using namespace pi0;
using namespace pi0::certs;
using pi0::testing::client;
using pi0::testing::ns;

namespace {

using namespace std::chrono_literals;
using std::chrono::hours;

const kube::ResourceType kWebhookConfigs{"admissionregistration.k8s.io", "v1",
                                         "validatingwebhookconfigurations",
                                         "ValidatingWebhookConfiguration", false};

// Two webhooks by URL, without a caBundle, for a resource that does not exist: the
// configuration is real but intercepts nothing, so the test's own writes never call it.
kube::Json webhookConfig(const std::string& name) {
  auto webhook = [](const std::string& hookName) {
    return kube::Json{{"name", hookName},
                      {"clientConfig", {{"url", "https://127.0.0.1:9443/validate"}}},
                      {"rules", kube::Json::array({{{"apiGroups", {"certs-e2e.pi0.io"}},
                                                    {"apiVersions", {"v1"}},
                                                    {"operations", {"CREATE"}},
                                                    {"resources", {"widgets"}}}})},
                      {"failurePolicy", "Ignore"},
                      {"sideEffects", "None"},
                      {"admissionReviewVersions", {"v1"}},
                      {"timeoutSeconds", 2}};
  };
  return {{"apiVersion", "admissionregistration.k8s.io/v1"},
          {"kind", "ValidatingWebhookConfiguration"},
          {"metadata", {{"name", name}}},
          {"webhooks", kube::Json::array({webhook("pods.certs-e2e.pi0.io"),
                                          webhook("channels.certs-e2e.pi0.io")})}};
}

struct Seen {
  std::string secretVersion, configVersion;
  std::string caCert, caKey, servingCert, servingKey;
  bool hasNext = false;
  std::string secretType;
  std::vector<std::vector<std::string>> bundles;  // per webhook, the certificates
};

std::string value(const kube::Json& secret, const char* key) {
  if (!secret["data"].contains(key)) return "";
  auto decoded = base64Decode(secret["data"][key].get<std::string>());
  REQUIRE(decoded);
  return *decoded;
}

Seen look(const std::string& secretName, const std::string& configName) {
  Seen seen;
  auto secret = client().get(kube::resources::kSecrets, ns(), secretName);
  REQUIRE_OK(secret);
  seen.secretVersion = (*secret)["metadata"]["resourceVersion"];
  seen.secretType = (*secret)["type"];
  seen.caCert = value(*secret, "ca.crt");
  seen.caKey = value(*secret, "ca.key");
  seen.servingCert = value(*secret, "tls.crt");
  seen.servingKey = value(*secret, "tls.key");
  seen.hasNext = (*secret)["data"].contains("next-ca.crt");
  auto config = client().get(kWebhookConfigs, "", configName);
  REQUIRE_OK(config);
  seen.configVersion = (*config)["metadata"]["resourceVersion"];
  for (const auto& webhook : (*config)["webhooks"]) {
    std::string bundle;
    if (webhook["clientConfig"].contains("caBundle")) {
      auto decoded = base64Decode(webhook["clientConfig"]["caBundle"].get<std::string>());
      REQUIRE(decoded);
      bundle = *decoded;
    }
    seen.bundles.push_back(certificatesIn(bundle));
  }
  return seen;
}

std::vector<Step> steps(std::initializer_list<Step> list) {
  return list;
}

std::string names(const std::vector<Step>& list) {
  std::string out;
  for (Step s : list)
    out += std::string(out.empty() ? "" : ",") + std::string(stepName(s));
  return out;
}

}  // namespace

TEST_CASE("self-managed certificates: create, idle, renew, and rotate the CA in the safe order") {
  auto& c = client();
  const std::string configName = "certs-e2e-" + ns();
  const std::string secretName = "pi0-webhook-tls";
  REQUIRE_OK(c.create(kWebhookConfigs, "", webhookConfig(configName)));
  const std::vector<std::string> servingNames{"pi0-webhook." + ns() + ".svc", "127.0.0.1"};
  const RotationPolicy policy;  // the defaults: 90 days, renewed 30 before; CA 10 years, 1 before
  const auto t0 = std::chrono::system_clock::now();
  auto reconcile = [&](TimePoint now) {
    auto outcome =
        reconcileCertificates(c, ns(), secretName, configName, servingNames, now, policy);
    if (!outcome) FAIL(outcome.error().message);
    return *outcome;
  };

  // Fresh: a CA and a serving certificate in a Secret, the CA in both bundles.
  auto start = std::chrono::steady_clock::now();
  Outcome first = reconcile(t0);
  MESSAGE("first reconcile: " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - start)
                                     .count()
                              << " ms");
  CHECK(names(first.steps) == names(steps({Step::kCreate, Step::kAddToBundle})));
  CHECK(first.last.step == Step::kNone);
  Seen created = look(secretName, configName);
  CHECK(created.secretType == "kubernetes.io/tls");
  CHECK(signedBy(created.servingCert, created.caCert));
  CHECK(keyMatches(created.servingCert, created.servingKey));
  CHECK(keyMatches(created.caCert, created.caKey));
  auto servingInfo = inspect(created.servingCert);
  REQUIRE(servingInfo);
  CHECK(servingInfo->dnsNames == std::vector<std::string>{servingNames[0]});
  CHECK(servingInfo->ipAddresses == std::vector<std::string>{"127.0.0.1"});
  REQUIRE(created.bundles.size() == 2);
  for (const auto& bundle : created.bundles) {
    REQUIRE(bundle.size() == 1);
    CHECK(inspect(bundle[0])->sha256 == inspect(created.caCert)->sha256);
  }
  const std::string caA = created.caCert;

  // Converged: nothing is written.
  Outcome idle = reconcile(t0 + 1min);
  CHECK(idle.steps.empty());
  CHECK(idle.last.step == Step::kNone);
  Seen unchanged = look(secretName, configName);
  CHECK(unchanged.secretVersion == created.secretVersion);
  CHECK(unchanged.configVersion == created.configVersion);

  // Past the serving renewal point (60 days): a new serving certificate from the same CA; the
  // bundles stay as they are.
  Outcome renewed = reconcile(t0 + hours(24 * 61));
  CHECK(names(renewed.steps) == names(steps({Step::kRenewServing})));
  Seen afterRenewal = look(secretName, configName);
  CHECK(afterRenewal.servingCert != created.servingCert);
  CHECK(afterRenewal.caCert == caA);
  CHECK(signedBy(afterRenewal.servingCert, caA));
  CHECK(afterRenewal.configVersion == created.configVersion);

  // Shortly before the CA's renewal point (9 years in): the serving certificate renews, the CA
  // does not rotate yet.
  const TimePoint caDue = t0 + hours(24 * 365 * 9);
  Outcome beforeDue = reconcile(caDue - hours(24));
  CHECK(names(beforeDue.steps) == names(steps({Step::kRenewServing})));
  Seen servedByA = look(secretName, configName);
  CHECK(servedByA.caCert == caA);

  // Past it: B is staged and trusted next to A, and the serving certificate is still A's.
  const TimePoint t1 = caDue + hours(24);
  Outcome staged = reconcile(t1);
  CHECK(names(staged.steps) == names(steps({Step::kStageNextCa, Step::kAddToBundle})));
  CHECK(staged.last.step == Step::kWait);
  Seen trusting = look(secretName, configName);
  CHECK(trusting.hasNext);
  CHECK(trusting.caCert == caA);
  CHECK(trusting.servingCert == servedByA.servingCert);
  std::string caB;
  for (const auto& bundle : trusting.bundles) {
    REQUIRE(bundle.size() == 2);
    CHECK(bundle[0] == caA);  // old first, then new
    caB = bundle[1];
  }
  CHECK(inspect(caB)->isCa);
  CHECK_FALSE(signedBy(servedByA.servingCert, caB));

  // Within the propagation delay: nothing changes.
  Outcome waiting = reconcile(t1 + 2min);
  CHECK(waiting.steps.empty());
  CHECK(waiting.last.step == Step::kWait);
  Seen still = look(secretName, configName);
  CHECK(still.secretVersion == trusting.secretVersion);
  CHECK(still.configVersion == trusting.configVersion);

  // After it: the serving certificate switches to B; A stays in the bundles.
  Outcome switched = reconcile(t1 + 6min);
  CHECK(names(switched.steps) == names(steps({Step::kSwitchToNextCa})));
  CHECK(switched.last.step == Step::kWait);
  Seen servedByB = look(secretName, configName);
  CHECK(servedByB.caCert == caB);
  CHECK_FALSE(servedByB.hasNext);
  CHECK(signedBy(servedByB.servingCert, caB));
  CHECK(keyMatches(servedByB.servingCert, servedByB.servingKey));
  CHECK(servedByB.configVersion == trusting.configVersion);
  for (const auto& bundle : servedByB.bundles)
    CHECK(bundle.size() == 2);

  // Once the new certificate has propagated: A leaves the bundles.
  Outcome dropped = reconcile(t1 + 12min);
  CHECK(names(dropped.steps) == names(steps({Step::kDropFromBundle})));
  CHECK(dropped.last.step == Step::kNone);
  Seen rotated = look(secretName, configName);
  for (const auto& bundle : rotated.bundles)
    CHECK(bundle == std::vector<std::string>{caB});
  CHECK(rotated.secretVersion == servedByB.secretVersion);

  Outcome settled = reconcile(t1 + 13min);
  CHECK(settled.steps.empty());
  CHECK(look(secretName, configName).configVersion == rotated.configVersion);

  REQUIRE_OK(c.remove(kWebhookConfigs, "", configName));
}

TEST_CASE("self-managed certificates: a bundle someone overwrote is fixed; writers race safely") {
  auto& c = client();
  const std::string configName = "certs-e2e-race-" + ns();
  const std::string secretName = "pi0-webhook-race-tls";
  REQUIRE_OK(c.create(kWebhookConfigs, "", webhookConfig(configName)));
  const std::vector<std::string> servingNames{"pi0-webhook." + ns() + ".svc"};
  const auto t0 = std::chrono::system_clock::now();

  // Four reconcilers at once on a fresh state: conflicts are re-planned, and one CA wins.
  std::vector<std::thread> threads;
  std::vector<Result<Outcome>> outcomes(4, fail("not run"));
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = reconcileCertificates(c, ns(), secretName, configName, servingNames, t0);
    });
  }
  for (auto& t : threads)
    t.join();
  int conflicts = 0;
  for (const auto& outcome : outcomes) {
    if (!outcome) FAIL(outcome.error().message);
    conflicts += outcome->conflicts;
  }
  MESSAGE("conflicts re-planned: " << conflicts);
  Seen seen = look(secretName, configName);
  CHECK(signedBy(seen.servingCert, seen.caCert));
  for (const auto& bundle : seen.bundles)
    CHECK(bundle == std::vector<std::string>{seen.caCert});

  // Someone writes another CA into the first webhook's bundle: the Secret's CA comes back at
  // once, the stranger goes once the serving certificate is older than the propagation delay.
  auto stranger = makeCa("stranger", hours(24), t0);
  REQUIRE(stranger);
  REQUIRE_OK(c.patch(kWebhookConfigs, "", configName, kube::PatchType::kJson,
                     kube::Json::array({{{"op", "replace"},
                                         {"path", "/webhooks/0/clientConfig/caBundle"},
                                         {"value", base64Encode(stranger->certificate)}}})));
  Outcome fixed = reconcileCertificates(c, ns(), secretName, configName, servingNames, t0 + 1min)
                      .value_or(Outcome{});
  CHECK(names(fixed.steps) == names(steps({Step::kAddToBundle})));
  CHECK(fixed.last.step == Step::kWait);
  Seen both = look(secretName, configName);
  CHECK(both.bundles[0] == std::vector<std::string>{stranger->certificate, seen.caCert});
  Outcome cleaned = reconcileCertificates(c, ns(), secretName, configName, servingNames, t0 + 10min)
                        .value_or(Outcome{});
  CHECK(names(cleaned.steps) == names(steps({Step::kDropFromBundle})));
  CHECK(look(secretName, configName).bundles[0] == std::vector<std::string>{seen.caCert});

  // A configuration that does not exist is an error that names it.
  auto missing = reconcileCertificates(c, ns(), secretName, "no-such-config", servingNames, t0);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("no-such-config") != std::string::npos);

  REQUIRE_OK(c.remove(kWebhookConfigs, "", configName));
}
