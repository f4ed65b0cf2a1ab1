#include "scheduler/service/leader_election.h"

#include <random>
#include <thread>

#include "common/log/log.h"

namespace tideslice::service {

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
  int64_t term;
  {
    std::lock_guard<std::mutex> lock(mu_);
    term = term_;
  }
  if (leading)
    log::Info("leader.elected", "this replica leads", {{"identity", options_.identity}, {"lease", options_.lease_name},
                                                        {"term", std::to_string(term)}});
  else
    log::Warn("leader.lost", "this replica no longer leads: it stops binding and deciding",
              {{"identity", options_.identity}, {"lease", options_.lease_name}, {"term", std::to_string(term)}});
  if (on_change_) on_change_(leading);
}

bool LeaderElector::leading() const {
  if (!leading_.load()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return Clock::now() < valid_until_;
}

std::optional<LeaseTerm> LeaderElector::Term() const {
  if (!leading_.load()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  if (now >= valid_until_) return std::nullopt;
  return LeaseTerm{options_.identity, term_, std::chrono::duration_cast<std::chrono::milliseconds>(valid_until_ - now)};
}

bool LeaderElector::TryAcquireOrRenew(std::chrono::milliseconds budget) {
  const std::string path = kube::LeasePath(options_.lease_namespace, options_.lease_name);
  const std::string now = kube::MicroTimeNow();
  const auto started = Clock::now();
  auto left = [&] {
    auto l = budget - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    return std::max(std::chrono::milliseconds(1), l);
  };
  const int duration_s = static_cast<int>(std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.lease_duration).count()));
  auto current = client_->Get(path, left());
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
    auto created = client_->Create(
        "/apis/coordination.k8s.io/v1/namespaces/" + kube::PathSegment(options_.lease_namespace) + "/leases", lease,
        left());
    if (created.ok()) last_seen_term_ = 0;
    return created.ok();
  }
  json lease = *current;
  if (!lease.is_object() || !lease.contains("metadata") || !lease["metadata"].is_object()) return false;
  json spec = lease.contains("spec") && lease["spec"].is_object() ? lease["spec"] : json::object();
  auto str = [&](const char* k) { return spec.contains(k) && spec[k].is_string() ? spec[k].get<std::string>() : std::string(); };
  auto num = [&](const char* k, int64_t d) { return spec.contains(k) && spec[k].is_number_integer() ? spec[k].get<int64_t>() : d; };
  const std::string holder = str("holderIdentity");
  const std::string rv = lease["metadata"].contains("resourceVersion") && lease["metadata"]["resourceVersion"].is_string()
                             ? lease["metadata"]["resourceVersion"].get<std::string>()
                             : "";
  const std::string key = holder + "|" + str("renewTime") + "|" + rv;
  if (key != observed_key_) {
    observed_key_ = key;
    observed_at_ = Clock::now();
  }
  const auto their_duration = std::chrono::seconds(std::max<int64_t>(1, num("leaseDurationSeconds", duration_s)));
  if (!holder.empty() && holder != options_.identity && Clock::now() < observed_at_ + their_duration)
    return false;  // someone else holds a lease we saw renewed less than its duration ago
  int64_t transitions = num("leaseTransitions", 0);
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = duration_s;
  spec["renewTime"] = now;
  if (holder != options_.identity) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = ++transitions;
  }
  lease["spec"] = spec;
  // PUT with the resourceVersion we read: 409 means another replica won this round.
  if (!client_->Replace(path, lease, left()).ok()) return false;
  last_seen_term_ = transitions;
  return true;
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

void LeaderElector::Run(http::CancelFlag* cancel) {
  std::mt19937 rng(std::random_device{}());
  log::ChangeLog changes;
  while (!cancel->cancelled()) {
    // The renewal is measured from its start: the lease we write is valid from no earlier than
    // that instant, so acting until start + renew deadline is safe (others wait a full lease
    // duration, which is longer, after they saw our last renewal). No call may outlast a retry
    // period, and none may outlast what is left of our lease: a hung API cannot stall us.
    const auto started = Clock::now();
    std::chrono::milliseconds budget = options_.retry_period;
    if (auto t = Term()) budget = std::min(budget, t->time_left);
    bool held = TryAcquireOrRenew(std::max(budget, std::chrono::milliseconds(1)));
    if (held) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        term_ = last_seen_term_;
        valid_until_ = started + options_.renew_deadline;
      }
      SetLeading(true);
      changes.Record("renew", "ok", log::Level::kInfo, "leader.renewed", "lease renewals succeed again",
                     {{"identity", options_.identity}});
    } else {
      if (leading_.load())
        changes.Record("renew", "failing", log::Level::kWarn, "leader.renew_failed",
                       "cannot renew the lease; still leading until the renew deadline",
                       {{"identity", options_.identity}});
      if (leading_.load() && !leading()) SetLeading(false);  // could not renew in time: someone else may lead
    }
    // client-go's JitterUntil: retry period times a random factor in [1, 1.2).
    std::uniform_real_distribution<double> jitter(1.0, 1.2);
    int wait_ms = static_cast<int>(options_.retry_period.count() * (leading_ ? 1.0 : jitter(rng)));
    if (leading_.load()) {
      // Wake no later than the moment the lease stops being provably ours, so that the
      // leadership callback fires on time even when nothing else happens.
      if (auto t = Term()) wait_ms = static_cast<int>(std::min<int64_t>(wait_ms, t->time_left.count() + 1));
      else SetLeading(false);
    }
    if (!cancel->SleepFor(std::max(1, wait_ms))) break;
  }
  if (leading() && options_.release_on_cancel) Release();
  SetLeading(false);
}

}  // namespace tideslice::service
