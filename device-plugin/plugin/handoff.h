// The Allocate hand-off, decided purely from data: which pod and container a kubelet Allocate
// call is for, and which slices that container gets. Kubelet's Allocate carries device IDs but no
// pod identity, so correctness rests on the scheduler's invariant that at most one pod per node
// is in phase ALLOCATING (docs/architecture.md). The matcher never guesses: no pending pod, more
// than one, or no container of the right size is an error that says so.
//
// The kubelet calls Allocate once per container and resource, init containers first, then app
// containers, in spec order; the first container not yet acknowledged whose slice count equals
// the number of device IDs is the one. The slices are those the scheduler assigned (the device
// IDs only say how many; GetPreferredAllocation steers the kubelet to the assigned cards).
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "device-plugin/plugin/container_response.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "device-plugin/plugin/partitions.h"
#include "device-plugin/plugin/plugin_server.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::deviceplugin {

struct PendingPod {
  std::string pod_key;                        // namespace/name
  v1::PodAssignment assignment;               // phase must be ALLOCATING
  // Read from the pod itself, not the assignment (the scheduler does not seal them): its
  // workload class ("inference", "training", "" = unspecified; the label tideslice.io/workload,
  // else its owner's kind, as the scheduler reads it) and tideslice.io/compute-mode.
  std::string workload_class{};
  bool work_conserving = false;
};

struct HandoffMatch {
  std::string pod_key;
  std::string pod_uid;                        // the assignment's (checked against the pod's own)
  std::string container;
  bool init_container = false;
  std::vector<AssignedSlice> slices;
  std::string workload_class;                 // the pod's (PendingPod)
  bool work_conserving = false;
};

// Ok when every slice of `match` fits on its card beside `held` (other pods' acknowledged
// slices): no whole or exclusive card shared, memory and compute shares within the card.
// Hard-partition slices are left to the driver, which refuses an occupied placement itself.
Status CheckAgainstHeld(const HandoffMatch& match, bool exclusive, const std::vector<PendingPod>& held);

StatusOr<HandoffMatch> MatchAllocate(const std::vector<PendingPod>& pending_on_node,
                                     const std::vector<std::string>& device_ids, const std::vector<DeviceInfo>& cards);

}  // namespace tideslice::deviceplugin

namespace tideslice::deviceplugin {

// Where the agent reads pending assignments and writes acknowledgements. Production: the pods
// of this node through the Kubernetes API (PodAssignment annotation); tests: in memory.
class AssignmentStore {
 public:
  virtual ~AssignmentStore() = default;
  virtual StatusOr<std::vector<PendingPod>> PendingOnNode() = 0;
  // The trusted assignments already handed out on this node (phase ALLOCATED), as of the last
  // PendingOnNode: Allocate refuses a slice that does not fit beside them, whatever put two
  // claims on one card (a bind that landed after its scheduler gave up on it). Empty: unknown.
  virtual std::vector<PendingPod> HeldOnNode() { return {}; }
  // Records the device IDs kubelet gave this container; the store moves the pod to ALLOCATED
  // once every container that asked for cards is acknowledged.
  virtual Status Acknowledge(const std::string& pod_key, const std::string& container,
                             const std::vector<std::string>& device_ids) = 0;
};

// The production AllocationHandler: match, build the container response, acknowledge. A failed
// acknowledgement fails the Allocate, so the kubelet retries rather than starting a container
// whose slice the scheduler does not know was handed out.
class HandoffHandler : public AllocationHandler {
 public:
  explicit HandoffHandler(AssignmentStore* store) : store_(store) {}
  // Slices with a profile (MIG, vNPU) get a partition from `partitioner`, recorded in `ledger`.
  // Without these, such slices are refused with a reason.
  HandoffHandler(AssignmentStore* store, DeviceBackend* partitioner, PartitionLedger* ledger)
      : store_(store), partitioner_(partitioner), ledger_(ledger) {}
  StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>& device_ids,
                                                                const std::vector<DeviceInfo>& cards) override;
  std::vector<std::string> PreferredCards(int count) override;

  // Containers holding a soft slice get the in-container limiter: their files are written under
  // `files` and mounted (limiter_setup.h), and a slot in the roster of every card where they hold
  // a compute share. Without this call (a node group that opted out with --limiter off) soft
  // slices are accounting only. Call before serving.
  void EnableLimiter(LimiterFiles* files, uint64_t context_reserve_bytes) {
    limiter_ = files;
    context_reserve_bytes_ = context_reserve_bytes;
  }

 private:
  AssignmentStore* store_;
  DeviceBackend* partitioner_ = nullptr;
  PartitionLedger* ledger_ = nullptr;
  LimiterFiles* limiter_ = nullptr;
  uint64_t context_reserve_bytes_ = 0;
  std::mutex mu_;  // one Allocate at a time: match and acknowledge must not interleave
};

}  // namespace tideslice::deviceplugin
