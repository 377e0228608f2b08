// The self-managed certificate mode of pi0-webhook (src/certs/rotation.h): every replica
// reconciles the Secret and the ValidatingWebhookConfiguration's caBundle (writes are
// conditional, so replicas that race re-plan instead of overwriting each other), and writes the
// serving certificate and key it finds in the Secret to the files the HTTPS server serves and
// reloads. Writing the files itself, rather than mounting the Secret, lets the first start
// serve at once (the Secret does not exist before it) and spares the kubelet's delay in
// updating a Secret volume.
//
// Thread-safety: reconcileOnce() and run() from one thread; counters from any.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include "certs/rotation.h"
#include "common/result.h"
#include "kube/client.h"

namespace pi0::webhook {

struct SelfManagedOptions {
  std::string ns;                    // the Secret's namespace
  std::string secret;                // its name
  std::string webhookConfiguration;  // the ValidatingWebhookConfiguration to keep the caBundle of
  std::vector<std::string> servingNames;  // DNS names and IP addresses of the serving certificate
  certs::RotationPolicy policy;
  // Reconciled at least this often (a plan that waits is looked at again when it is due), so
  // that a caBundle someone else changed is put back within it.
  std::chrono::seconds checkInterval{60};
  std::filesystem::path certFile, keyFile;  // written when the Secret's pair differs
};

class SelfManagedCertificates {
 public:
  SelfManagedCertificates(kube::Client& client, SelfManagedOptions options);

  // One reconcile at `now`, then the Secret's serving pair written to the files when they
  // differ (the key first, each file replaced atomically). Returns when the next reconcile is
  // due. Errors: the reconcile's, and files that cannot be written.
  Result<certs::TimePoint> reconcileOnce(certs::TimePoint now);

  // Reconciles until `stop`: when due, else every checkInterval; after an error, again after
  // 5 s, doubling up to checkInterval.
  void run(std::stop_token stop);

  struct Counters {
    std::atomic<uint64_t> ok{0};      // reconciles that converged and left the files current
    std::atomic<uint64_t> errors{0};  // reconciles that failed
    std::atomic<uint64_t> steps{0};   // writes to the Secret or the caBundle
  };
  const Counters& counters() const { return counters_; }

 private:
  kube::Client& client_;
  SelfManagedOptions options_;
  Counters counters_;
};

}  // namespace pi0::webhook
