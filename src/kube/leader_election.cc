#include "kube/leader_election.h"

#include <random>
#include <thread>

#include "common/log.h"
#include "common/timestamp.h"

namespace pi0::kube {
namespace {

constexpr double kJitterFactor = 1.2;  // client-go's JitterFactor for the retry period

std::string microTimeNow() {
  return rfc3339(std::chrono::system_clock::now(), 6);
}

}  // namespace

Result<std::unique_ptr<LeaderElector>> LeaderElector::create(Client& client,
                                                             LeaderElectionConfig config,
                                                             Clock& clock) {
  if (config.leaseName.empty() || config.leaseNamespace.empty())
    return fail("leader election: lease name and namespace are required");
  if (config.identity.empty()) return fail("leader election: identity is required");
  if (config.leaseDuration <= config.renewDeadline)
    return fail("leader election: leaseDuration must be greater than renewDeadline");
  if (std::chrono::duration<double>(config.renewDeadline).count() <=
      kJitterFactor * std::chrono::duration<double>(config.retryPeriod).count()) {
    return fail("leader election: renewDeadline must be greater than retryPeriod*1.2");
  }
  return std::unique_ptr<LeaderElector>(new LeaderElector(client, std::move(config), clock));
}

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig config, Clock& clock)
    : client_(client), config_(std::move(config)), clock_(clock) {}

std::string LeaderElector::observedHolder() const {
  std::lock_guard lock(mu_);
  return observed_ ? stringField(observed_->lease, "/spec/holderIdentity"_json_pointer) : "";
}

Json LeaderElector::leaseSpec(const Json* current) const {
  const std::string now = microTimeNow();
  Json spec = {{"holderIdentity", config_.identity},
               {"leaseDurationSeconds", config_.leaseDuration.count()},
               {"renewTime", now}};
  const std::string oldHolder =
      current != nullptr ? stringField(*current, "/spec/holderIdentity"_json_pointer) : "";
  const int64_t transitions =
      current != nullptr ? field<int64_t>(*current, "/spec/leaseTransitions"_json_pointer, 0) : 0;
  if (current != nullptr && oldHolder == config_.identity) {
    spec["acquireTime"] = field<std::string>(*current, "/spec/acquireTime"_json_pointer, now);
    spec["leaseTransitions"] = transitions;
  } else {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = oldHolder.empty() ? transitions : transitions + 1;
  }
  return spec;
}

bool LeaderElector::tryAcquireOrRenew(std::stop_token stop) {
  auto current = client_.get(resources::kLeases, config_.leaseNamespace, config_.leaseName,
                             Subresource::kNone, stop);
  if (!current) {
    if (!isNotFound(current.error())) {
      log::warn("leader election: cannot read the lease",
                {{"lease", config_.leaseName}, {"error", current.error().describe()}});
      return false;
    }
    Json lease = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", config_.leaseName}, {"namespace", config_.leaseNamespace}}},
        {"spec", leaseSpec(nullptr)}};
    for (const auto& [key, value] : config_.annotations)
      lease["metadata"]["annotations"][key] = value;
    auto created = client_.create(resources::kLeases, config_.leaseNamespace, lease, stop);
    if (!created) {
      log::debug("leader election: cannot create the lease",
                 {{"error", created.error().describe()}});
      return false;
    }
    std::lock_guard lock(mu_);
    observed_ = Observed{std::move(*created), clock_.now()};
    return true;
  }

  const Json spec = field<Json>(*current, "/spec"_json_pointer, Json::object());
  const std::string holder = stringField(*current, "/spec/holderIdentity"_json_pointer);
  {
    std::lock_guard lock(mu_);
    // A first look or a changed record (another renewal, another holder) starts the expiry
    // countdown.
    if (!observed_ || field<Json>(observed_->lease, "/spec"_json_pointer, Json()) != spec)
      observed_ = Observed{*current, clock_.now()};
    const auto duration = std::chrono::seconds(
        field<int64_t>(*current, "/spec/leaseDurationSeconds"_json_pointer, 0));
    if (!holder.empty() && holder != config_.identity &&
        observed_->changedAt + duration > clock_.now()) {
      return false;  // held by someone else, and not expired
    }
  }
  Json lease = *current;
  lease["spec"] = leaseSpec(&*current);
  for (const auto& [key, value] : config_.annotations)
    lease["metadata"]["annotations"][key] = value;
  auto updated = client_.update(resources::kLeases, lease, Subresource::kNone, stop);
  if (!updated) {
    // A conflict means someone else wrote first: they win this round.
    log::debug("leader election: cannot update the lease", {{"error", updated.error().describe()}});
    return false;
  }
  std::lock_guard lock(mu_);
  observed_ = Observed{std::move(*updated), clock_.now()};
  return true;
}

void LeaderElector::release() {
  auto current = client_.get(resources::kLeases, config_.leaseNamespace, config_.leaseName);
  if (!current || stringField(*current, "/spec/holderIdentity"_json_pointer) != config_.identity)
    return;
  Json lease = *current;
  // client-go's release: an empty holder and a lease of 1 s that the next candidate takes at once.
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = microTimeNow();
  if (auto r = client_.update(resources::kLeases, lease); !r) {
    log::warn("leader election: cannot release the lease", {{"error", r.error().describe()}});
  } else {
    log::info("leader election: released the lease",
              {{"lease", config_.leaseName}, {"identity", config_.identity}});
  }
}

bool LeaderElector::run(std::stop_token stop, const std::function<void(std::stop_token)>& lead) {
  std::mt19937 rng{std::random_device{}()};
  auto retryWait = [&] {
    const double base = std::chrono::duration<double>(config_.retryPeriod).count();
    const double jittered =
        base * (1.0 + (kJitterFactor - 1.0) * std::uniform_real_distribution<double>(0, 1)(rng));
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(jittered));
  };

  // Campaign.
  log::info("leader election: campaigning",
            {{"lease", config_.leaseNamespace + "/" + config_.leaseName},
             {"identity", config_.identity}});
  while (!tryAcquireOrRenew(stop)) {
    if (!clock_.sleepUntil(saturatingAdd(clock_.now(), retryWait()), stop)) return true;
  }
  leader_ = true;
  log::info("leader election: became the leader", {{"identity", config_.identity}});

  // Lead on a thread of its own while this one renews. A watchdog ends the leadership the
  // moment renewDeadline passes without a renewal, even while a renewal request still hangs.
  std::stop_source leading;
  std::stop_callback forward(stop, [&leading] { leading.request_stop(); });
  std::atomic<bool> lost{false};
  std::atomic<Clock::duration::rep> deadline{
      (clock_.now() + config_.renewDeadline).time_since_epoch().count()};
  std::jthread watchdog([&](std::stop_token own) {
    while (!own.stop_requested()) {
      const Clock::time_point due{Clock::duration(deadline.load())};
      if (clock_.now() >= due) {
        leader_ = false;
        lost = true;
        leading.request_stop();
        return;
      }
      clock_.sleepUntil(due, own);
    }
  });
  std::jthread work([&lead, token = leading.get_token()] { lead(token); });

  while (!leading.stop_requested()) {
    if (!clock_.sleepUntil(saturatingAdd(clock_.now(), config_.retryPeriod), leading.get_token()))
      break;
    if (tryAcquireOrRenew(leading.get_token())) {
      deadline = (clock_.now() + config_.renewDeadline).time_since_epoch().count();
    } else if (const auto holder = observedHolder();
               !holder.empty() && holder != config_.identity) {
      lost = true;  // someone else holds it: this candidate is no longer the leader
      leading.request_stop();
    }
  }
  leader_ = false;
  leading.request_stop();
  watchdog.request_stop();
  watchdog.join();
  if (lost)
    log::error("leader election: lost the lease, stopping", {{"identity", config_.identity}});
  work.join();
  if (!lost && config_.releaseOnCancel) release();
  return !lost.load();
}

}  // namespace pi0::kube
