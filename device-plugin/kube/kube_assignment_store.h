// The production AssignmentStore: the PodAssignment annotations of the pods bound to this node,
// read and acknowledged through the Kubernetes API.
//
// Reads are a fresh list (fieldSelector spec.nodeName) on every Allocate rather than a watch
// cache: the kubelet calls Allocate moments after it saw the binding, and a cache a few
// milliseconds behind would report "no pod is allocating" for a pod that is. Acknowledgements
// are read-modify-write with the pod's resourceVersion as precondition (409 -> re-read), so a
// concurrent scheduler write is never overwritten.
#pragma once

#include <chrono>
#include <set>
#include <string>

#include "common/kube/client.h"
#include "common/kube/objects.h"
#include "common/log/log.h"
#include "common/trust/assignment_seal.h"
#include "device-plugin/plugin/container_allocation.h"
#include "device-plugin/plugin/handoff.h"

namespace tideslice::deviceplugin {

// What makes an assignment trustworthy to the agent before it hands a card out.
struct AssignmentTrust {
  // The scheduler's public key; null: signatures are not required (local runs and tests; the
  // chart always mounts the key). The pod's UID and node are checked either way.
  trust::VerifierFile* verifier = nullptr;
  // The scheduler's Lease (fencing): an assignment is honoured only if it was sealed in the term
  // the Lease is in now, so a bind from a deposed leader that lands late is refused. Empty: off.
  std::string lease_namespace, lease_name;
  std::chrono::milliseconds lease_timeout{5000};
};

class KubeAssignmentStore : public AssignmentStore {
 public:
  KubeAssignmentStore(kube::KubeClient* client, std::string node_name, AssignmentTrust trust = {})
      : client_(client), node_(std::move(node_name)), trust_(std::move(trust)) {}

  StatusOr<std::vector<PendingPod>> PendingOnNode() override;
  std::vector<PendingPod> HeldOnNode() override { return held_; }
  Status Acknowledge(const std::string& pod_key, const std::string& container,
                     const std::vector<std::string>& device_ids) override;
  // UIDs of the pods bound to this node that have not finished, from a fresh list: whatever the
  // limiter's per-container directories of other pods are, those pods are gone.
  StatusOr<std::set<std::string>> PodUidsOnNode();

 private:
  StatusOr<std::vector<kube::json>> PodsOnNode();
  kube::KubeClient* client_;
  std::string node_;
  AssignmentTrust trust_;
  std::vector<PendingPod> held_;  // trusted ALLOCATED assignments seen by the last PendingOnNode
  log::ChangeLog refusals_;   // one log line per refused pod and reason, not per Allocate
};

// The pod's workload class and compute mode, as PendingPod carries them to the limiter: the label
// tideslice.io/workload when it is "inference" or "training" (any other value: unspecified, as the
// scheduler reads it), else the first owner whose kind implies a class (common/kube/
// workload_class.h); work_conserving only for the annotation value "work-conserving" (admission
// refuses other values at CREATE; whatever a later update wrote reads as capped). Read with type
// checks: metadata is what any pod author wrote.
void ReadComputeTraits(const kube::json& pod, PendingPod* out);

// The slices held on this node according to the pods' assignments (phase ALLOCATING or
// ALLOCATED, pod not finished), one entry per container and card, for the allocation metrics.
std::vector<ContainerAllocation> AllocationsFromPods(const std::vector<kube::json>& pods);

}  // namespace tideslice::deviceplugin
