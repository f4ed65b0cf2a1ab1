#include "device-plugin/kube/kube_assignment_store.h"

#include <chrono>

#include "common/codec/annotations.h"

namespace tideslice::deviceplugin {

using kube::AssignmentOf;
using kube::PodKey;

StatusOr<std::vector<kube::json>> KubeAssignmentStore::PodsOnNode() {
  auto list = client_->List("/api/v1/pods", "fieldSelector=" + kube::QueryEscape("spec.nodeName=" + node_));
  if (!list.ok()) return list.status();
  return std::move(list->items);
}

StatusOr<std::vector<PendingPod>> KubeAssignmentStore::PendingOnNode() {
  auto pods = PodsOnNode();
  if (!pods.ok()) return pods.status();
  std::vector<PendingPod> out;
  for (const auto& pod : *pods) {
    auto a = AssignmentOf(pod);
    // One bad annotation must not block every other pod's Allocate; the matcher only needs the
    // pending ones, and a broken one cannot be matched anyway.
    if (!a.ok() || !a->has_value()) continue;
    if ((*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATING) continue;
    if (kube::PodIsFinished(pod)) continue;
    out.push_back({PodKey(pod), std::move(**a)});
  }
  return out;
}

StatusOr<std::set<std::string>> KubeAssignmentStore::AllocatedPods() {
  auto pods = PodsOnNode();
  if (!pods.ok()) return pods.status();
  std::set<std::string> out;
  for (const auto& pod : *pods) {
    auto a = AssignmentOf(pod);
    if (a.ok() && a->has_value() && (*a)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATED) out.insert(PodKey(pod));
  }
  return out;
}

Status KubeAssignmentStore::Acknowledge(const std::string& pod_key, const std::string& container,
                                        const std::vector<std::string>& device_ids) {
  auto slash = pod_key.find('/');
  if (slash == std::string::npos) return Status::InvalidArgument("pod", "\"" + pod_key + "\" is not namespace/name");
  const std::string path = kube::PodPath(pod_key.substr(0, slash), pod_key.substr(slash + 1));
  auto written = client_->ReadModifyWrite(path, [&](kube::json& pod, bool*) -> Status {
    auto a = AssignmentOf(pod);
    if (!a.ok()) return a.status();
    if (!a->has_value()) return Status::FailedPrecondition("pod " + pod_key + " has no TideSlice assignment any more");
    v1::PodAssignment& assignment = **a;
    if (assignment.phase() != v1::ASSIGNMENT_PHASE_ALLOCATING)
      return Status::FailedPrecondition("pod " + pod_key + " is no longer waiting for devices (the scheduler moved it to " +
                                        v1::AssignmentPhase_Name(assignment.phase()) + ")");
    bool found = false, all_done = true;
    for (auto& c : *assignment.mutable_containers()) {
      if (c.name() == container && !found) {
        found = true;
        c.clear_device_ids();
        for (const auto& id : device_ids) c.add_device_ids(id);
      }
      if (c.slices_size() > 0 && c.device_ids_size() == 0) all_done = false;
    }
    if (!found) return Status::FailedPrecondition("pod " + pod_key + " has no container \"" + container + "\"");
    if (all_done) {
      assignment.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
      auto now = std::chrono::system_clock::now().time_since_epoch();
      assignment.mutable_allocated_at()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(now).count());
    }
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(assignment);
    return Status::Ok();
  });
  return written.status();
}

std::vector<ContainerAllocation> AllocationsFromPods(const std::vector<kube::json>& pods) {
  std::vector<ContainerAllocation> out;
  for (const auto& pod : pods) {
    if (kube::PodIsFinished(pod)) continue;
    auto a = AssignmentOf(pod);
    if (!a.ok() || !a->has_value()) continue;
    auto phase = (*a)->phase();
    if (phase != v1::ASSIGNMENT_PHASE_ALLOCATING && phase != v1::ASSIGNMENT_PHASE_ALLOCATED) continue;
    std::string key = PodKey(pod);
    auto slash = key.find('/');
    std::string uid = pod.value("metadata", kube::json::object()).value("uid", std::string());
    for (const auto& c : (*a)->containers())
      for (const auto& s : c.slices())
        out.push_back({key.substr(0, slash), key.substr(slash + 1), c.name(), uid, s.card_uuid(), s.memory_mib(),
                       s.compute_permille(), s.whole_card()});
  }
  return out;
}

}  // namespace tideslice::deviceplugin
