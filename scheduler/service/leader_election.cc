#include "scheduler/service/leader_election.h"

#include <random>
#include <thread>

namespace tideslice::service {

using Clock = std::chrono::steady_clock;
using kube::json;

Status ValidateLeaderElection(const LeaderElectionOptions& o) {
  if (o.identity.empty()) return Status::InvalidArgument("--leader-elect-identity", "must not be empty");
  if (o.lease_name.empty()) return Status::InvalidArgument("--lease-name", "must not be empty");
  if (o.lease_namespace.empty()) return Status::InvalidArgument("--lease-namespace", "must not be empty");
  if (o.lease_duration <= o.renew_deadline)
    return Status::InvalidArgument("--leader-elect-lease-duration", "must be longer than the renew deadline");
  if (o.renew_deadline.count() * 10 <= o.retry_period.count() * 12)
    return Status::InvalidArgument("--leader-elect-renew-deadline", "must be longer than 1.2 x the retry period");
  if (o.retry_period.count() <= 0) return Status::InvalidArgument("--leader-elect-retry-period", "must be positive");
  return Status::Ok();
}

void LeaderElector::SetLeading(bool leading) {
  if (leading_.exchange(leading) == leading) return;
  transitions_++;
  if (on_change_) on_change_(leading);
}

bool LeaderElector::TryAcquireOrRenew() {
  const std::string path = kube::LeasePath(options_.lease_namespace, options_.lease_name);
  const std::string now = kube::MicroTimeNow();
  const int duration_s = static_cast<int>(std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.lease_duration).count()));
  auto current = client_->Get(path);
  if (!current.ok()) {
    if (current.status().code() != StatusCode::kNotFound) return false;
    json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", options_.lease_name}, {"namespace", options_.lease_namespace}}},
                  {"spec",
                   {{"holderIdentity", options_.identity},
                    {"leaseDurationSeconds", duration_s},
                    {"acquireTime", now},
                    {"renewTime", now},
                    {"leaseTransitions", 0}}}};
    auto created = client_->Create("/apis/coordination.k8s.io/v1/namespaces/" + options_.lease_namespace + "/leases", lease);
    return created.ok();
  }
  json lease = *current;
  json spec = lease.value("spec", json::object());
  const std::string holder = spec.value("holderIdentity", std::string());
  const std::string key = holder + "|" + spec.value("renewTime", std::string()) + "|" +
                          lease["metadata"].value("resourceVersion", std::string());
  if (key != observed_key_) {
    observed_key_ = key;
    observed_at_ = Clock::now();
  }
  const auto their_duration = std::chrono::seconds(std::max(1, spec.value("leaseDurationSeconds", duration_s)));
  if (!holder.empty() && holder != options_.identity && Clock::now() < observed_at_ + their_duration)
    return false;  // someone else holds a lease we saw renewed less than its duration ago
  const int transitions = spec.value("leaseTransitions", 0);
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = duration_s;
  spec["renewTime"] = now;
  if (holder != options_.identity) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = transitions + 1;
  }
  lease["spec"] = spec;
  // PUT with the resourceVersion we read: 409 means another replica won this round.
  return client_->Replace(path, lease).ok();
}

void LeaderElector::Release() {
  const std::string path = kube::LeasePath(options_.lease_namespace, options_.lease_name);
  (void)client_->ReadModifyWrite(path, [&](json& lease, bool* changed) -> Status {
    json& spec = lease["spec"];
    if (spec.value("holderIdentity", std::string()) != options_.identity) {
      *changed = false;
      return Status::Ok();
    }
    const std::string now = kube::MicroTimeNow();
    spec["holderIdentity"] = "";
    spec["leaseDurationSeconds"] = 1;
    spec["renewTime"] = now;
    spec["acquireTime"] = now;
    return Status::Ok();
  });
}

void LeaderElector::Run(kube::CancelFlag* cancel) {
  std::mt19937 rng(std::random_device{}());
  auto last_renew = Clock::now();
  while (!cancel->cancelled()) {
    bool held = TryAcquireOrRenew();
    if (held) {
      last_renew = Clock::now();
      SetLeading(true);
    } else if (leading_ && Clock::now() - last_renew > options_.renew_deadline) {
      SetLeading(false);  // could not renew in time: someone else may lead already
    }
    // client-go's JitterUntil: retry period times a random factor in [1, 1.2).
    std::uniform_real_distribution<double> jitter(1.0, 1.2);
    int wait_ms = static_cast<int>(options_.retry_period.count() * (leading_ ? 1.0 : jitter(rng)));
    if (!cancel->SleepFor(wait_ms)) break;
  }
  if (leading_ && options_.release_on_cancel) Release();
  SetLeading(false);
}

}  // namespace tideslice::service
