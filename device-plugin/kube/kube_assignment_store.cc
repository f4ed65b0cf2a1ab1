#include "device-plugin/kube/kube_assignment_store.h"

#include <chrono>
#include <optional>

#include "common/codec/annotations.h"
#include "common/kube/workload_class.h"

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
  std::shared_ptr<const trust::AssignmentVerifier> verifier;
  if (trust_.verifier) {
    auto v = trust_.verifier->Get();
    // Without the key nothing can be trusted: refuse rather than hand out cards on faith.
    if (!v.ok()) return v.status().WithContext("cannot check the scheduler's signatures");
    verifier = *v;
  }
  std::vector<PendingPod> candidates;  // trusted ALLOCATING assignments, before the term check
  held_.clear();
  for (const auto& pod : *pods) {
    auto a = AssignmentOf(pod);
    // One bad annotation must not block every other pod's Allocate; the matcher only needs the
    // pending ones, and a broken one cannot be matched anyway.
    if (!a.ok() || !a->has_value()) continue;
    if (kube::PodIsFinished(pod)) continue;
    if ((*a)->phase() == v1::ASSIGNMENT_PHASE_ALLOCATED) {
      // What is handed out already, for the capacity check. An acknowledged record counts when it
      // names this pod and node even if its signature is unknown (signed by an earlier key): its
      // container may be running on the card, and counting it can only make Allocate stricter.
      if (trust::CheckAssignmentOwner(nullptr, pod, **a).ok()) {
        PendingPod held;
        held.pod_key = PodKey(pod);
        held.assignment = std::move(**a);
        held_.push_back(std::move(held));
      }
      continue;
    }
    if ((*a)->phase() != v1::ASSIGNMENT_PHASE_ALLOCATING) continue;
    Status trusted = trust::CheckAssignmentOwner(verifier.get(), pod, **a);
    if (!trusted.ok()) {
      refusals_.Record(PodKey(pod), "forged:" + trusted.message(), log::Level::kWarn, "assignment.forged",
                       "ignoring a pod's assignment that TideSlice's scheduler did not write: " + trusted.message(),
                       {{"pod", PodKey(pod)}, {"node", node_}}, /*log_first=*/true);
      continue;
    }
    PendingPod pending;
    pending.pod_key = PodKey(pod);
    pending.assignment = std::move(**a);
    ReadComputeTraits(pod, &pending);
    candidates.push_back(std::move(pending));
  }
  if (candidates.empty() || trust_.lease_name.empty()) return candidates;
  auto lease = client_->Get(kube::LeasePath(trust_.lease_namespace, trust_.lease_name), trust_.lease_timeout);
  if (!lease.ok()) return lease.status().WithContext("cannot read the scheduler's lease to check the bind's term");
  std::string holder;
  int64_t term = -1;
  if (auto spec = lease->find("spec"); spec != lease->end() && spec->is_object()) {
    if (auto h = spec->find("holderIdentity"); h != spec->end() && h->is_string()) holder = h->get<std::string>();
    if (auto t = spec->find("leaseTransitions"); t != spec->end() && t->is_number_integer()) term = t->get<int64_t>();
    else term = 0;  // the API server omits a zero leaseTransitions
  }
  std::vector<PendingPod> out;
  for (auto& c : candidates) {
    const v1::PodAssignment& a = c.assignment;
    // A lease released on shutdown keeps its term with an empty holder: nobody has taken over, so
    // the term's binds still stand until another replica acquires it (which bumps the term).
    if (a.lease_term() != term || (a.lease_holder() != holder && !holder.empty())) {
      refusals_.Record(c.pod_key, "stale:" + std::to_string(a.lease_term()) + "/" + std::to_string(term),
                       log::Level::kWarn, "assignment.stale_term",
                       "ignoring an assignment sealed in lease term " + std::to_string(a.lease_term()) + " by \"" +
                           a.lease_holder() + "\"; the scheduler's lease is in term " + std::to_string(term) +
                           " held by \"" + holder + "\" (the new leader re-seals it if it still fits)",
                       {{"pod", c.pod_key}, {"node", node_}}, /*log_first=*/true);
      continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

StatusOr<std::set<std::string>> KubeAssignmentStore::PodUidsOnNode() {
  auto pods = PodsOnNode();
  if (!pods.ok()) return pods.status();
  std::set<std::string> out;
  for (const auto& pod : *pods) {
    if (kube::PodIsFinished(pod)) continue;
    std::string uid = kube::UidOf(pod);
    if (!uid.empty()) out.insert(std::move(uid));
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

void ReadComputeTraits(const kube::json& pod, PendingPod* out) {
  out->workload_class.clear();
  out->work_conserving = false;
  auto meta = pod.find("metadata");
  if (meta == pod.end() || !meta->is_object()) return;
  auto string_at = [&](const char* map, const char* key) -> std::optional<std::string> {
    auto m = meta->find(map);
    if (m == meta->end() || !m->is_object()) return std::nullopt;
    auto v = m->find(key);
    if (v == m->end()) return std::nullopt;
    return v->is_string() ? v->get<std::string>() : std::string();  // present but not text: no valid value
  };
  if (auto label = string_at("labels", kube::kWorkloadLabel)) {
    if (*label == kube::kWorkloadInference || *label == kube::kWorkloadTraining) out->workload_class = *label;
  } else if (auto owners = meta->find("ownerReferences"); owners != meta->end() && owners->is_array()) {
    for (const auto& o : *owners) {
      if (!o.is_object()) continue;
      auto kind = o.find("kind");
      if (kind == o.end() || !kind->is_string()) continue;
      const std::string_view cls = kube::WorkloadOfOwnerKind(kind->get<std::string>());
      if (cls.empty()) continue;
      out->workload_class = std::string(cls);
      break;
    }
  }
  out->work_conserving = string_at("annotations", kube::kComputeModeAnnotation) ==
                         std::string(kube::kComputeModeWorkConserving);
}

std::vector<ContainerAllocation> AllocationsFromPods(const std::vector<kube::json>& pods) {
  std::vector<ContainerAllocation> out;
  for (const auto& pod : pods) {
    if (kube::PodIsFinished(pod)) continue;
    auto a = AssignmentOf(pod);
    if (!a.ok() || !a->has_value()) continue;
    // A record that names another pod or node is not this pod's (forged or copied): not shown.
    if (!trust::CheckAssignmentOwner(nullptr, pod, **a).ok()) continue;
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
