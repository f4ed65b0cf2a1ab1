// Binds a pod and writes its PodAssignment in one API call (the Binding's annotations are merged
// into the pod), and keeps at most one pod per node in phase ALLOCATING: a bind to a node waits
// until the node agent acknowledged the previous pod there (phase ALLOCATED), the pod is gone,
// or the acknowledgement timeout passes. That invariant is what lets the agent match a kubelet
// Allocate call, which carries no pod identity, to exactly one pod (docs/architecture.md).
//
// The gate state is rebuilt from the pod watch (Replace after every list, Observe per event), so
// a restarted scheduler or a new leader keeps waiting for a pod the old one bound.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/trust/assignment_seal.h"
#include "scheduler/service/leader_election.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::service {

struct BinderOptions {
  // A pod still ALLOCATING this long after its bind is marked FAILED and the node moves on
  // (the kubelet never called Allocate: the pod was rejected on admission, say).
  std::chrono::milliseconds acknowledge_timeout{30000};
  // A bind call waits at most this long for its node, then fails so that kube-scheduler retries
  // the pod later. Keep it below the extender's httpTimeout.
  std::chrono::milliseconds max_wait{20000};
  // Binds waiting for a busy node are capped per node and overall, so that waiting binds never
  // hold every worker of the HTTP server: past the cap a bind fails at once and kube-scheduler
  // retries it, while binds to idle nodes always find a worker (the server's pool is 16).
  int max_waiters_per_node = 2;
  int max_waiters = 8;
  // Fencing: the lease term the bind is made in; nullopt = not leading (the bind is refused).
  // The Binding call is bounded by the term's time left. Unset: no fencing (tests, no election).
  std::function<std::optional<LeaseTerm>()> fence;
  // Signs each assignment (Ed25519); null = unsigned (only for local runs and tests).
  const trust::AssignmentSigner* signer = nullptr;
  // Only a trusted ALLOCATING pod holds a node's gate: one that names itself (UID, node) and, with
  // a verifier, carries the scheduler's signature. A forged one must not block binds to its node.
  std::shared_ptr<const trust::AssignmentVerifier> verifier;
};

class Binder {
 public:
  Binder(kube::KubeClient* client, BinderOptions options) : client_(client), options_(options) {}

  // Binds ns/name (uid) to `node` with `assignment` (phase set to ALLOCATING here).
  Status Bind(const std::string& ns, const std::string& name, const std::string& uid, const std::string& node,
              v1::PodAssignment assignment);

  // A pod that asks for no TideSlice resource: a plain Binding, still only within the lease term
  // and bounded by its time left.
  Status BindPlain(const std::string& ns, const std::string& name, const std::string& uid, const std::string& node);

  // The keys a gate-holding assignment is verified with (see BinderOptions::verifier).
  void set_verifier(std::shared_ptr<const trust::AssignmentVerifier> verifier) {
    std::lock_guard<std::mutex> lock(mu_);
    options_.verifier = std::move(verifier);
  }

  // The fence of every later bind (set once, before binds start).
  void set_fence(std::function<std::optional<LeaseTerm>()> fence) { options_.fence = std::move(fence); }

  // Feed from the pod reflector: the full set after each list, and every event.
  void Replace(const std::vector<kube::json>& pods);
  void Observe(kube::WatchEventType type, const kube::json& pod);

  // The pod holding `node`'s gate, "" if none.
  std::string Holder(const std::string& node) const;

  // Fencing after a change of leader: an ALLOCATING pod bound in another term is re-sealed with
  // `term` (its slices unchanged; the caller checked that they fit), or refused: marked FAILED
  // with `why` so that no Allocate can match it. Both are read-modify-writes that change nothing
  // if the pod moved on (acknowledged, re-sealed, gone).
  // `checked` is the record as the cache verified it: only that exact decision is re-signed (the
  // scheduler must never sign slices it did not choose, whatever the pod carries by now).
  Status Reseal(const std::string& pod_key, const v1::PodAssignment& checked, const LeaseTerm& term);
  Status Refuse(const std::string& pod_key, const std::string& pod_uid, const std::string& why);

 private:
  struct Gate {
    std::string pod_key;
    std::chrono::steady_clock::time_point since;
  };
  void ObserveLocked(kube::WatchEventType type, const kube::json& pod);
  // The term to bind in: nullopt without fencing, an error when the replica cannot prove it leads.
  StatusOr<std::optional<LeaseTerm>> Fence() const;
  static std::chrono::milliseconds CallBound(const std::optional<LeaseTerm>& term);
  Status ExpireHolder(const std::string& node, const std::string& pod_key);
  void RecordApiOutcome(const Status& s) const;

  kube::KubeClient* client_;
  BinderOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Gate> gates_;  // node -> the pod in ALLOCATING there
  std::map<std::string, int> waiting_;  // node -> binds waiting for it
  int waiting_total_ = 0;
  mutable log::ChangeLog log_;   // API outage and lost leadership: once per change, not per bind
};

}  // namespace tideslice::service
