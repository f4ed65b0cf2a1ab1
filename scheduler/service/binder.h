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
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/kube/client.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::service {

struct BinderOptions {
  // A pod still ALLOCATING this long after its bind is marked FAILED and the node moves on
  // (the kubelet never called Allocate: the pod was rejected on admission, say).
  std::chrono::milliseconds acknowledge_timeout{30000};
  // A bind call waits at most this long for its node, then fails so that kube-scheduler retries
  // the pod later. Keep it below the extender's httpTimeout.
  std::chrono::milliseconds max_wait{20000};
};

class Binder {
 public:
  Binder(kube::KubeClient* client, BinderOptions options) : client_(client), options_(options) {}

  // Binds ns/name (uid) to `node` with `assignment` (phase set to ALLOCATING here).
  Status Bind(const std::string& ns, const std::string& name, const std::string& uid, const std::string& node,
              v1::PodAssignment assignment);

  // Feed from the pod reflector: the full set after each list, and every event.
  void Replace(const std::vector<kube::json>& pods);
  void Observe(kube::WatchEventType type, const kube::json& pod);

  // The pod holding `node`'s gate, "" if none.
  std::string Holder(const std::string& node) const;

 private:
  struct Gate {
    std::string pod_key;
    std::chrono::steady_clock::time_point since;
  };
  void ObserveLocked(kube::WatchEventType type, const kube::json& pod);
  Status ExpireHolder(const std::string& node, const std::string& pod_key);

  kube::KubeClient* client_;
  BinderOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Gate> gates_;  // node -> the pod in ALLOCATING there
};

}  // namespace tideslice::service
