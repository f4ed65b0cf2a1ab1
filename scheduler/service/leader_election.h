// Lease-based leader election (coordination.k8s.io/v1 Lease), client-go's algorithm
// (KUBE-WIRE §5.6): try to acquire or renew every retry period; a lease held by someone else is
// taken over only after it went unrenewed for leaseDurationSeconds as measured by *this*
// replica's clock since it last saw the record change (no clock-skew assumptions); a leader that
// cannot renew within the renew deadline stops leading. Times are MicroTime with exactly six
// fractional digits. On shutdown the leader releases the lease so a standby takes over at once.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/kube/client.h"

namespace tideslice::service {

struct LeaderElectionOptions {
  std::string lease_namespace = "tideslice-system";
  std::string lease_name = "tideslice-scheduler";
  std::string identity;                                  // unique per replica (pod name + random)
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_cancel = true;
};

// leaseDuration > renewDeadline > 1.2 x retryPeriod, identity set; errors name the flag.
Status ValidateLeaderElection(const LeaderElectionOptions& options);

// The lease as held: the fencing token every bind carries. `term` is the Lease's
// leaseTransitions, which changes whenever another replica takes the lease over.
struct LeaseTerm {
  std::string holder;
  int64_t term = -1;
  // How long this replica may still act on it: until its renew deadline, measured on the local
  // monotonic clock from the start of the last successful renewal.
  std::chrono::milliseconds time_left{0};
};

class LeaderElector {
 public:
  LeaderElector(kube::KubeClient* client, LeaderElectionOptions options, std::function<void(bool leading)> on_change = {})
      : client_(client), options_(std::move(options)), on_change_(std::move(on_change)) {}

  // Runs until `cancel` fires (then releases the lease if leading and release_on_cancel).
  void Run(http::CancelFlag* cancel);
  // True only while the lease is provably ours: judged against the monotonic clock at the moment
  // of the call, not when a blocked renewal returns. A renewal that hangs cannot keep us leading.
  bool leading() const;
  // The term we lead in, with the time left; nullopt when not leading.
  std::optional<LeaseTerm> Term() const;

 private:
  using Clock = std::chrono::steady_clock;
  // One attempt; true when we hold the lease afterwards. Every API call is bounded by `budget`.
  bool TryAcquireOrRenew(std::chrono::milliseconds budget);
  void Release();
  void SetLeading(bool leading);

  kube::KubeClient* client_;
  LeaderElectionOptions options_;
  std::function<void(bool)> on_change_;
  std::atomic<bool> leading_{false};
  mutable std::mutex mu_;
  Clock::time_point valid_until_{};   // guarded by mu_
  int64_t term_ = -1;                 // guarded by mu_
  int64_t last_seen_term_ = -1;       // what TryAcquireOrRenew read or wrote
  // What we last saw of the lease and when (our monotonic clock).
  std::string observed_key_;
  Clock::time_point observed_at_{};
};
}  // namespace tideslice::service
