// The self-managed certificate mode of pi0-webhook: a CA and a serving certificate kept in a
// Secret, the CA written into the ValidatingWebhookConfiguration's caBundle, the serving
// certificate renewed well before it expires, and the CA rotated without a moment in which the
// apiserver does not trust the certificate the webhook serves.
//
// The Secret (type kubernetes.io/tls, so that a volume mounting it gives the HTTPS server
// tls.crt and tls.key) holds:
//   ca.crt, ca.key            the CA that signed tls.crt and signs the next serving certificate
//   tls.crt, tls.key          the serving certificate and its key
//   next-ca.crt, next-ca.key  during a CA rotation only: the CA that replaces ca.crt
// The converged caBundle of every webhook in the configuration is ca.crt (plus next-ca.crt
// during a rotation).
//
// The rotation of a CA A by a CA B, one step per write, each safe whatever the apiserver and the
// webhook's pods have picked up so far:
//   1. kStageNextCa:     B is made and stored as next-ca.*; nothing trusts it or uses it yet.
//   2. kAddToBundle:     every caBundle becomes A + B. Adding trust is always safe.
//   3. kSwitchToNextCa:  once B has been in the bundle for policy.propagationDelay (measured
//                        from B's issue time), the Secret becomes ca = B and tls = a serving
//                        certificate signed by B; next-ca.* go. Webhook pods that still serve
//                        the old certificate (the kubelet updates Secret volumes with a delay)
//                        are still trusted through A.
//   4. kDropFromBundle:  once the new serving certificate is propagationDelay old, every
//                        caBundle becomes B.
// Any CA found in a bundle that is neither ca.crt nor next-ca.crt is dropped the same way (step
// 4's rule); a missing one is added (step 2's rule) before anything is signed by it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "certs/self_signed.h"
#include "common/result.h"
#include "kube/client.h"

namespace pi0::certs {

struct RotationPolicy {
  std::chrono::seconds servingValidity{std::chrono::hours(24 * 90)};
  std::chrono::seconds servingRenewBefore{std::chrono::hours(24 * 30)};
  std::chrono::seconds caValidity{std::chrono::hours(24 * 365 * 10)};
  std::chrono::seconds caRenewBefore{std::chrono::hours(24 * 365)};
  // How long a change takes to reach everyone who must see it: the apiserver's view of the
  // caBundle, and the kubelet's update of the Secret volume the webhook pods mount (up to its
  // sync period plus the Secret cache's TTL, about two minutes by default).
  std::chrono::seconds propagationDelay{std::chrono::minutes(5)};
  std::string caCommonName = "pi0-webhook-ca";
};

// The Secret's keys.
inline constexpr std::string_view kCaCertKey = "ca.crt";
inline constexpr std::string_view kCaKeyKey = "ca.key";
inline constexpr std::string_view kServingCertKey = "tls.crt";
inline constexpr std::string_view kServingKeyKey = "tls.key";
inline constexpr std::string_view kNextCaCertKey = "next-ca.crt";
inline constexpr std::string_view kNextCaKeyKey = "next-ca.key";

// The Secret's data as PEM text (decoded from base64); nullopt for an absent key. A value that
// is not base64 arrives as an empty string, which no step mistakes for a certificate.
struct SecretPems {
  std::optional<std::string> caCert, caKey, servingCert, servingKey, nextCaCert, nextCaKey;
};

enum class Step {
  kNone,            // converged; look again at Plan::nextCheck
  kWait,            // a rotation waits for propagationDelay; look again at Plan::nextCheck
  kCreate,          // no usable CA: a new CA and serving certificate (next-ca.* removed)
  kRenewServing,    // a new serving certificate from ca.*
  kStageNextCa,     // a new CA stored as next-ca.*
  kDropNextCa,      // next-ca.* is unusable (garbage, expired, key mismatch): removed
  kAddToBundle,     // a caBundle lacks ca.crt or next-ca.crt: appended
  kSwitchToNextCa,  // ca.* := next-ca.*, a serving certificate signed by it; next-ca.* removed
  kDropFromBundle,  // caBundles hold certificates other than ca.crt and next-ca.crt: removed
};

std::string_view stepName(Step step);

struct Plan {
  Step step = Step::kNone;
  std::string reason;   // for logs: why this step (or why nothing)
  TimePoint nextCheck;  // kNone and kWait: when something becomes due
};

// What to do next, a pure function. `bundles` holds every webhook's caBundle as PEM text, in
// the configuration's order (an absent caBundle is ""). `servingNames` are the DNS names and
// IP addresses the serving certificate must carry (one certificate for every webhook).
Plan planCertificates(const SecretPems& secret, const std::vector<std::string>& bundles,
                      const std::vector<std::string>& servingNames, TimePoint now,
                      const RotationPolicy& policy);

// The bundles a kAddToBundle step writes: each bundle's certificates (broken blocks and
// duplicates left out) followed by those of `required` it lacks, in order.
std::vector<std::string> bundlesWith(const std::vector<std::string>& bundles,
                                     const std::vector<std::string>& required);
// The bundles a kDropFromBundle step writes: each bundle's certificates that are in `keep`.
std::vector<std::string> bundlesOnly(const std::vector<std::string>& bundles,
                                     const std::vector<std::string>& keep);

struct Outcome {
  std::vector<Step> steps;  // what was written, in order; empty when nothing was
  Plan last;                // the plan that ended the call (kNone or kWait)
  int conflicts = 0;        // writes refused for a stale resourceVersion, re-planned
  SecretPems secret;        // the Secret as the converged plan read it
};

// One reconcile of the self-managed mode: reads the Secret `ns`/`secretName` (absent: created)
// and the ValidatingWebhookConfiguration `webhookConfigName` (absent: an error; the chart
// creates it), plans, writes the step with the resourceVersion it read (a conflict is
// re-planned from a fresh read, up to 5 times), and plans again, until the plan is kNone or
// kWait (at most 8 writes). `servingNames` as for planCertificates (entries that parse as IP
// addresses become IP SANs). Errors: API failures other than conflicts, a configuration with
// no webhooks, certificate generation failing.
Result<Outcome> reconcileCertificates(kube::Client& client, std::string_view ns,
                                      std::string_view secretName,
                                      std::string_view webhookConfigName,
                                      const std::vector<std::string>& servingNames, TimePoint now,
                                      const RotationPolicy& policy = {});

}  // namespace pi0::certs
