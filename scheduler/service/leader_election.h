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

class LeaderElector {
 public:
  LeaderElector(kube::KubeClient* client, LeaderElectionOptions options, std::function<void(bool leading)> on_change = {})
      : client_(client), options_(std::move(options)), on_change_(std::move(on_change)) {}

  // Runs until `cancel` fires (then releases the lease if leading and release_on_cancel).
  void Run(kube::CancelFlag* cancel);
  bool leading() const { return leading_.load(); }
  int transitions_seen() const { return transitions_.load(); }

 private:
  // One attempt; true when we hold the lease afterwards.
  bool TryAcquireOrRenew();
  void Release();
  void SetLeading(bool leading);

  kube::KubeClient* client_;
  LeaderElectionOptions options_;
  std::function<void(bool)> on_change_;
  std::atomic<bool> leading_{false};
  std::atomic<int> transitions_{0};
  // What we last saw of the lease and when (our monotonic clock).
  std::string observed_key_;
  std::chrono::steady_clock::time_point observed_at_{};
};

}  // namespace tideslice::service
