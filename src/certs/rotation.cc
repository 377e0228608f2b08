#include "certs/rotation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <utility>

#include "common/base64.h"

namespace pi0::certs {
namespace {

// Not in kube/resource.h: only the self-managed certificate mode writes it.
const kube::ResourceType kValidatingWebhookConfigurations{"admissionregistration.k8s.io", "v1",
                                                          "validatingwebhookconfigurations",
                                                          "ValidatingWebhookConfiguration", false};

constexpr int kMaxWrites = 8;
constexpr int kMaxConflicts = 5;

std::string fingerprintOf(const std::string& pem) {
  auto info = inspect(pem);
  return info ? info->sha256 : std::string();
}

// The CA in `cert`/`key` when it can sign: both present and parsing, a CA, the key its own,
// valid at `now`. Otherwise nullopt and `why` says what is wrong.
std::optional<CertInfo> usableCa(const std::optional<std::string>& cert,
                                 const std::optional<std::string>& key, TimePoint now,
                                 std::string_view what, std::string* why) {
  const std::string name(what);
  if (!cert) return *why = name + ".crt is missing", std::nullopt;
  if (!key) return *why = name + ".key is missing", std::nullopt;
  auto info = inspect(*cert);
  if (!info) return *why = name + ".crt is not a PEM certificate", std::nullopt;
  if (!info->isCa) return *why = name + ".crt is not a CA", std::nullopt;
  if (!keyMatches(*cert, *key))
    return *why = name + ".key does not match " + name + ".crt", std::nullopt;
  if (now < info->notBefore) return *why = name + ".crt is not valid yet", std::nullopt;
  if (now >= info->notAfter) return *why = name + ".crt has expired", std::nullopt;
  return std::move(*info);
}

bool isIpAddress(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// Why the serving certificate must be replaced now, or "" when it need not.
std::string servingProblem(const SecretPems& secret, const CertInfo& ca,
                           const std::vector<std::string>& servingNames, TimePoint now,
                           const RotationPolicy& policy, std::optional<CertInfo>* serving) {
  if (!secret.servingCert) return "tls.crt is missing";
  if (!secret.servingKey) return "tls.key is missing";
  auto info = inspect(*secret.servingCert);
  if (!info) return "tls.crt is not a PEM certificate";
  if (!keyMatches(*secret.servingCert, *secret.servingKey)) return "tls.key does not match tls.crt";
  if (!signedBy(*secret.servingCert, *secret.caCert)) return "tls.crt is not signed by ca.crt";
  if (now < info->notBefore) return "tls.crt is not valid yet";
  if (now >= info->notAfter) return "tls.crt has expired";
  for (const auto& name : servingNames) {
    const auto& sans = isIpAddress(name) ? info->ipAddresses : info->dnsNames;
    if (std::find(sans.begin(), sans.end(), name) == sans.end())
      return "tls.crt does not name " + name;
  }
  // A certificate cut short by its CA's end would only be renewed into the same end again.
  if (now >= info->notAfter - policy.servingRenewBefore && info->notAfter < ca.notAfter) {
    return "tls.crt expires within " + std::to_string(policy.servingRenewBefore.count()) + "h";
  }
  *serving = std::move(*info);
  return "";
}

Plan plan(Step step, std::string reason, TimePoint nextCheck = {}) {
  return Plan{step, std::move(reason), nextCheck};
}

}  // namespace

std::string_view stepName(Step step) {
  switch (step) {
    case Step::kNone:
      return "None";
    case Step::kWait:
      return "Wait";
    case Step::kCreate:
      return "Create";
    case Step::kRenewServing:
      return "RenewServing";
    case Step::kStageNextCa:
      return "StageNextCa";
    case Step::kDropNextCa:
      return "DropNextCa";
    case Step::kAddToBundle:
      return "AddToBundle";
    case Step::kSwitchToNextCa:
      return "SwitchToNextCa";
    case Step::kDropFromBundle:
      return "DropFromBundle";
  }
  return "Unknown";
}

Plan planCertificates(const SecretPems& secret, const std::vector<std::string>& bundles,
                      const std::vector<std::string>& servingNames, TimePoint now,
                      const RotationPolicy& policy) {
  std::string why;
  auto ca = usableCa(secret.caCert, secret.caKey, now, "ca", &why);
  if (!ca) return plan(Step::kCreate, why);
  std::optional<CertInfo> next;
  if (secret.nextCaCert || secret.nextCaKey) {
    next = usableCa(secret.nextCaCert, secret.nextCaKey, now, "next-ca", &why);
    if (!next) return plan(Step::kDropNextCa, why);
  }

  // Trust comes first: nothing is served that a bundle does not trust.
  for (std::size_t i = 0; i < bundles.size(); ++i) {
    std::set<std::string> held;
    for (const auto& cert : certificatesIn(bundles[i]))
      held.insert(fingerprintOf(cert));
    if (!held.contains(ca->sha256)) {
      return plan(Step::kAddToBundle, "caBundle " + std::to_string(i) + " lacks ca.crt");
    }
    if (next && !held.contains(next->sha256)) {
      return plan(Step::kAddToBundle, "caBundle " + std::to_string(i) + " lacks next-ca.crt");
    }
  }

  std::optional<CertInfo> serving;
  if (auto problem = servingProblem(secret, *ca, servingNames, now, policy, &serving);
      !problem.empty()) {
    return plan(Step::kRenewServing, problem);
  }

  const TimePoint caRenewal = ca->notAfter - policy.caRenewBefore;
  if (next || now >= caRenewal) {
    if (!next)
      return plan(Step::kStageNextCa,
                  "ca.crt expires within " + std::to_string(policy.caRenewBefore.count()) + "h");
    const TimePoint trustedEverywhere = next->notBefore + kBackdate + policy.propagationDelay;
    if (now < trustedEverywhere) {
      return plan(Step::kWait, "next-ca.crt is in every caBundle; waiting for it to propagate",
                  trustedEverywhere);
    }
    return plan(Step::kSwitchToNextCa, "next-ca.crt has been trusted for the propagation delay");
  }

  bool extra = false;
  for (const auto& bundle : bundles) {
    int broken = 0;
    for (const auto& cert : certificatesIn(bundle, &broken)) {
      if (fingerprintOf(cert) != ca->sha256) extra = true;
    }
    if (broken > 0) extra = true;
  }
  if (extra) {
    const TimePoint servedEverywhere = serving->notBefore + kBackdate + policy.propagationDelay;
    if (now < servedEverywhere) {
      return plan(Step::kWait, "a caBundle holds other CAs; waiting for tls.crt to propagate",
                  servedEverywhere);
    }
    return plan(Step::kDropFromBundle, "a caBundle holds certificates other than ca.crt");
  }
  return plan(Step::kNone, "converged",
              std::min(serving->notAfter - policy.servingRenewBefore, caRenewal));
}

std::vector<std::string> bundlesWith(const std::vector<std::string>& bundles,
                                     const std::vector<std::string>& required) {
  std::vector<std::string> out;
  for (const auto& bundle : bundles) {
    std::set<std::string> held;
    std::string text;
    for (const auto& cert : certificatesIn(bundle)) {
      if (held.insert(fingerprintOf(cert)).second) text += cert;
    }
    for (const auto& cert : required) {
      for (const auto& one : certificatesIn(cert)) {
        if (held.insert(fingerprintOf(one)).second) text += one;
      }
    }
    out.push_back(std::move(text));
  }
  return out;
}

std::vector<std::string> bundlesOnly(const std::vector<std::string>& bundles,
                                     const std::vector<std::string>& keep) {
  std::set<std::string> wanted;
  for (const auto& cert : keep)
    wanted.insert(fingerprintOf(cert));
  std::vector<std::string> out;
  for (const auto& bundle : bundles) {
    std::set<std::string> held;
    std::string text;
    for (const auto& cert : certificatesIn(bundle)) {
      const std::string fingerprint = fingerprintOf(cert);
      if (wanted.contains(fingerprint) && held.insert(fingerprint).second) text += cert;
    }
    out.push_back(std::move(text));
  }
  return out;
}

namespace {

struct Observed {
  std::optional<kube::Json> secret;  // nullopt: absent
  kube::Json config;
  SecretPems pems;
  std::vector<std::string> bundles;
};

std::optional<std::string> secretValue(const kube::Json& secret, std::string_view key) {
  auto data = secret.find("data");
  if (data == secret.end() || !data->is_object()) return std::nullopt;
  auto value = data->find(std::string(key));
  if (value == data->end()) return std::nullopt;
  if (!value->is_string()) return std::string();
  return base64Decode(value->get<std::string>()).value_or(std::string());
}

kube::ApiResult<Observed> observe(kube::Client& client, std::string_view ns,
                                  std::string_view secretName, std::string_view webhookConfigName) {
  Observed seen;
  auto secret = client.get(kube::resources::kSecrets, ns, secretName);
  if (secret) {
    seen.secret = std::move(*secret);
    const auto& s = *seen.secret;
    seen.pems = {secretValue(s, kCaCertKey),      secretValue(s, kCaKeyKey),
                 secretValue(s, kServingCertKey), secretValue(s, kServingKeyKey),
                 secretValue(s, kNextCaCertKey),  secretValue(s, kNextCaKeyKey)};
  } else if (!kube::isNotFound(secret.error())) {
    return std::unexpected(secret.error());
  }
  auto config = client.get(kValidatingWebhookConfigurations, "", webhookConfigName);
  if (!config) return std::unexpected(config.error());
  seen.config = std::move(*config);
  if (seen.config.contains("webhooks") && seen.config["webhooks"].is_array()) {
    for (const auto& webhook : seen.config["webhooks"]) {
      std::string bundle;
      if (auto cc = webhook.find("clientConfig"); cc != webhook.end() && cc->is_object()) {
        if (auto ca = cc->find("caBundle"); ca != cc->end() && ca->is_string()) {
          bundle = base64Decode(ca->get<std::string>()).value_or(std::string());
        }
      }
      seen.bundles.push_back(std::move(bundle));
    }
  }
  return seen;
}

// The Secret with `data` changed as `edit` says: a create when it does not exist, otherwise
// an update conditional on the resourceVersion read.
kube::ApiResult<kube::Json> writeSecret(
    kube::Client& client, std::string_view ns, std::string_view name, const Observed& seen,
    const std::vector<std::pair<std::string_view, const std::string*>>& edit) {
  kube::Json secret =
      seen.secret ? *seen.secret
                  : kube::Json{{"apiVersion", "v1"},
                               {"kind", "Secret"},
                               {"metadata",
                                {{"name", std::string(name)},
                                 {"namespace", std::string(ns)},
                                 {"labels", {{"app.kubernetes.io/managed-by", "pi0-webhook"}}}}},
                               {"type", "kubernetes.io/tls"},
                               {"data", kube::Json::object()}};
  if (!secret.contains("data") || !secret["data"].is_object())
    secret["data"] = kube::Json::object();
  for (const auto& [key, value] : edit) {
    if (value == nullptr) {
      secret["data"].erase(std::string(key));
    } else {
      secret["data"][std::string(key)] = base64Encode(*value);
    }
  }
  if (!seen.secret) return client.create(kube::resources::kSecrets, ns, secret);
  return client.update(kube::resources::kSecrets, secret);
}

kube::ApiResult<kube::Json> writeBundles(kube::Client& client, const Observed& seen,
                                         const std::vector<std::string>& bundles) {
  kube::Json config = seen.config;
  for (std::size_t i = 0; i < bundles.size(); ++i) {
    config["webhooks"][i]["clientConfig"]["caBundle"] = base64Encode(bundles[i]);
  }
  return client.update(kValidatingWebhookConfigurations, config);
}

std::string caName(const RotationPolicy& policy, TimePoint now) {
  // "name@unix-seconds", as Kubernetes names its own self-signed CAs: two generations differ.
  return policy.caCommonName + "@" +
         std::to_string(
             std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
}

}  // namespace

Result<Outcome> reconcileCertificates(kube::Client& client, std::string_view ns,
                                      std::string_view secretName,
                                      std::string_view webhookConfigName,
                                      const std::vector<std::string>& servingNames, TimePoint now,
                                      const RotationPolicy& policy) {
  std::vector<std::string> dnsNames, ipAddresses;
  for (const auto& name : servingNames)
    (isIpAddress(name) ? ipAddresses : dnsNames).push_back(name);
  if (dnsNames.empty() && ipAddresses.empty()) return fail("no serving names given");

  Outcome outcome;
  while (true) {
    auto seen = observe(client, ns, secretName, webhookConfigName);
    if (!seen) return fail("reading the certificates' state: " + seen.error().describe());
    if (seen->bundles.empty()) {
      return fail("ValidatingWebhookConfiguration " + std::string(webhookConfigName) +
                  " has no webhooks to give a caBundle");
    }
    Plan next = planCertificates(seen->pems, seen->bundles, servingNames, now, policy);
    if (next.step == Step::kNone || next.step == Step::kWait) {
      outcome.last = std::move(next);
      outcome.secret = std::move(seen->pems);
      return outcome;
    }
    if (static_cast<int>(outcome.steps.size()) >= kMaxWrites) {
      return fail("no convergence after " + std::to_string(kMaxWrites) +
                  " writes; next: " + std::string(stepName(next.step)) + " (" + next.reason + ")");
    }

    const SecretPems& pems = seen->pems;
    kube::ApiResult<kube::Json> written = kube::Json();
    switch (next.step) {
      case Step::kCreate: {
        auto ca = makeCa(caName(policy, now), policy.caValidity, now);
        if (!ca) return fail("making a CA: " + ca.error().message);
        auto serving = makeServing(*ca, dnsNames, ipAddresses, policy.servingValidity, now);
        if (!serving) return fail("making a serving certificate: " + serving.error().message);
        written = writeSecret(client, ns, secretName, *seen,
                              {{kCaCertKey, &ca->certificate},
                               {kCaKeyKey, &ca->key},
                               {kServingCertKey, &serving->certificate},
                               {kServingKeyKey, &serving->key},
                               {kNextCaCertKey, nullptr},
                               {kNextCaKeyKey, nullptr}});
        break;
      }
      case Step::kRenewServing: {
        auto serving = makeServing({*pems.caCert, *pems.caKey}, dnsNames, ipAddresses,
                                   policy.servingValidity, now);
        if (!serving) return fail("making a serving certificate: " + serving.error().message);
        written = writeSecret(
            client, ns, secretName, *seen,
            {{kServingCertKey, &serving->certificate}, {kServingKeyKey, &serving->key}});
        break;
      }
      case Step::kStageNextCa: {
        auto ca = makeCa(caName(policy, now), policy.caValidity, now);
        if (!ca) return fail("making a CA: " + ca.error().message);
        written = writeSecret(client, ns, secretName, *seen,
                              {{kNextCaCertKey, &ca->certificate}, {kNextCaKeyKey, &ca->key}});
        break;
      }
      case Step::kDropNextCa:
        written = writeSecret(client, ns, secretName, *seen,
                              {{kNextCaCertKey, nullptr}, {kNextCaKeyKey, nullptr}});
        break;
      case Step::kSwitchToNextCa: {
        auto serving = makeServing({*pems.nextCaCert, *pems.nextCaKey}, dnsNames, ipAddresses,
                                   policy.servingValidity, now);
        if (!serving) return fail("making a serving certificate: " + serving.error().message);
        written = writeSecret(client, ns, secretName, *seen,
                              {{kCaCertKey, &*pems.nextCaCert},
                               {kCaKeyKey, &*pems.nextCaKey},
                               {kServingCertKey, &serving->certificate},
                               {kServingKeyKey, &serving->key},
                               {kNextCaCertKey, nullptr},
                               {kNextCaKeyKey, nullptr}});
        break;
      }
      case Step::kAddToBundle:
      case Step::kDropFromBundle: {
        std::vector<std::string> cas{*pems.caCert};
        if (pems.nextCaCert) cas.push_back(*pems.nextCaCert);
        written = writeBundles(client, *seen,
                               next.step == Step::kAddToBundle ? bundlesWith(seen->bundles, cas)
                                                               : bundlesOnly(seen->bundles, cas));
        break;
      }
      case Step::kNone:
      case Step::kWait:
        break;
    }
    if (!written) {
      const auto& error = written.error();
      if ((kube::isConflict(error) || kube::isAlreadyExists(error)) &&
          ++outcome.conflicts <= kMaxConflicts) {
        continue;  // someone else wrote in between: plan again from what is there now
      }
      return fail(std::string(stepName(next.step)) + " (" + next.reason + "): " + error.describe());
    }
    outcome.steps.push_back(next.step);
  }
}

}  // namespace pi0::certs
