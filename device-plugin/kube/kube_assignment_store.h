// The production AssignmentStore: the PodAssignment annotations of the pods bound to this node,
// read and acknowledged through the Kubernetes API.
//
// Reads are a fresh list (fieldSelector spec.nodeName) on every Allocate rather than a watch
// cache: the kubelet calls Allocate moments after it saw the binding, and a cache a few
// milliseconds behind would report "no pod is allocating" for a pod that is. Acknowledgements
// are read-modify-write with the pod's resourceVersion as precondition (409 -> re-read), so a
// concurrent scheduler write is never overwritten.
#pragma once

#include <set>
#include <string>

#include "common/kube/client.h"
#include "common/kube/objects.h"
#include "device-plugin/exporter/allocation_metrics.h"
#include "device-plugin/plugin/handoff.h"

namespace tideslice::deviceplugin {

class KubeAssignmentStore : public AssignmentStore {
 public:
  KubeAssignmentStore(kube::KubeClient* client, std::string node_name)
      : client_(client), node_(std::move(node_name)) {}

  StatusOr<std::vector<PendingPod>> PendingOnNode() override;
  Status Acknowledge(const std::string& pod_key, const std::string& container,
                     const std::vector<std::string>& device_ids) override;
  // Pods on this node whose assignment reached ALLOCATED (for the reconciler).
  StatusOr<std::set<std::string>> AllocatedPods();

 private:
  StatusOr<std::vector<kube::json>> PodsOnNode();
  kube::KubeClient* client_;
  std::string node_;
};

// The slices held on this node according to the pods' assignments (phase ALLOCATING or
// ALLOCATED, pod not finished), one entry per container and card, for the allocation metrics.
std::vector<ContainerAllocation> AllocationsFromPods(const std::vector<kube::json>& pods);

}  // namespace tideslice::deviceplugin
