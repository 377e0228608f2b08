#include "self_managed.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "common/files.h"
#include "common/log.h"

namespace pi0::webhook {

SelfManagedCertificates::SelfManagedCertificates(kube::Client& client, SelfManagedOptions options)
    : client_(client), options_(std::move(options)) {}

Result<certs::TimePoint> SelfManagedCertificates::reconcileOnce(certs::TimePoint now) {
  auto outcome = certs::reconcileCertificates(client_, options_.ns, options_.secret,
                                              options_.webhookConfiguration, options_.servingNames,
                                              now, options_.policy);
  if (!outcome) {
    ++counters_.errors;
    return fail(outcome.error().message);
  }
  counters_.steps += outcome->steps.size();
  for (const auto step : outcome->steps) {
    log::info("certificates: step written", {{"step", std::string(certs::stepName(step))},
                                             {"secret", options_.ns + "/" + options_.secret}});
  }
  const auto& secret = outcome->secret;
  if (!secret.servingCert || !secret.servingKey || secret.servingCert->empty() ||
      secret.servingKey->empty()) {
    ++counters_.errors;
    return fail("the Secret " + options_.ns + "/" + options_.secret +
                " has no serving certificate after the reconcile");
  }
  const auto currentCert = readFile(options_.certFile);
  const auto currentKey = readFile(options_.keyFile);
  if (!currentCert || *currentCert != *secret.servingCert || !currentKey ||
      *currentKey != *secret.servingKey) {
    // The key first: until the certificate follows, the server keeps serving the old pair.
    for (const auto& [path, text] : {std::pair{options_.keyFile, *secret.servingKey},
                                     std::pair{options_.certFile, *secret.servingCert}}) {
      if (auto written = writeFileAtomic(path, text); !written) {
        ++counters_.errors;
        return fail("writing " + path.string() + ": " + written.error().message);
      }
    }
    log::info("certificates: serving pair written",
              {{"certFile", options_.certFile.string()}, {"keyFile", options_.keyFile.string()}});
  }
  const auto interval =
      std::chrono::duration_cast<certs::TimePoint::duration>(options_.checkInterval);
  ++counters_.ok;
  certs::TimePoint next = now + interval;
  if (outcome->last.nextCheck > now) next = std::min(next, outcome->last.nextCheck);
  return next;
}

void SelfManagedCertificates::run(std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  auto sleepUntil = [&](certs::TimePoint until) {
    std::unique_lock lock(mu);
    cv.wait_until(lock, stop, until, [] { return false; });
  };
  std::chrono::seconds backoff{5};
  while (!stop.stop_requested()) {
    const auto now = std::chrono::system_clock::now();
    auto next = reconcileOnce(now);
    if (next) {
      backoff = std::chrono::seconds(5);
      sleepUntil(*next);
      continue;
    }
    log::warn("certificates: reconcile failed; retrying",
              {{"error", next.error().message}, {"retryInSeconds", backoff.count()}});
    sleepUntil(now + backoff);
    backoff = std::min(backoff * 2, options_.checkInterval);
  }
}

}  // namespace pi0::webhook
