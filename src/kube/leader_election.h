// Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm: a candidate
// takes the Lease when it is free or its holder has not renewed it for leaseDuration (measured
// on the candidate's own clock from when it last saw the record change, so clock skew between
// nodes does not matter); the leader renews every retryPeriod; a leader that cannot renew
// within renewDeadline stops leading at once: its work's stop token fires before anyone else
// can take the Lease (renewDeadline < leaseDuration). Writes are conditional on the Lease's
// resourceVersion, so two candidates can never both win.
//
// Thread-safety: run() on one thread; isLeader() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "kube/client.h"

namespace pi0::kube {

struct LeaderElectionConfig {
  std::string leaseNamespace;
  std::string leaseName;
  std::string identity;  // unique per candidate: pod name plus a random suffix
  std::chrono::seconds leaseDuration{15};
  std::chrono::seconds renewDeadline{10};
  std::chrono::seconds retryPeriod{2};
  bool releaseOnCancel =
      true;  // on a clean stop, hand the Lease back so a successor starts at once
  // Written into the Lease's metadata.annotations with every acquire and renewal (the operator
  // says where it serves the fleet feed); other annotations are kept.
  std::map<std::string, std::string> annotations;
};

class LeaderElector {
 public:
  // Fails when the timings are inconsistent (leaseDuration > renewDeadline > retryPeriod·1.2).
  static Result<std::unique_ptr<LeaderElector>> create(Client& client, LeaderElectionConfig config,
                                                       Clock& clock = systemClock());

  // Campaigns until elected, then calls `lead` on a new thread with a stop token that fires
  // the moment leadership is lost or `stop` fires, and keeps renewing. Returns after `lead`
  // has returned: when `stop` fired (the Lease is released), or when leadership was lost
  // (returns false: the caller should exit, as controller-runtime does). True on a clean stop.
  bool run(std::stop_token stop, const std::function<void(std::stop_token)>& lead);

  bool isLeader() const { return leader_.load(); }
  const LeaderElectionConfig& config() const { return config_; }
  // The holder the Lease named at the last look ("" if none): for logs and metrics.
  std::string observedHolder() const;

 private:
  LeaderElector(Client& client, LeaderElectionConfig config, Clock& clock);
  // One attempt to take or renew the Lease; true when this candidate holds it afterwards.
  bool tryAcquireOrRenew(std::stop_token stop);
  void release();
  Json leaseSpec(const Json* current) const;

  Client& client_;
  LeaderElectionConfig config_;
  Clock& clock_;
  std::atomic<bool> leader_{false};

  // The Lease as last read, and when its record last changed, on our clock; nullopt until the
  // first read.
  struct Observed {
    Json lease;
    Clock::time_point changedAt;
  };
  mutable std::mutex mu_;
  std::optional<Observed> observed_;
};

}  // namespace pi0::kube
