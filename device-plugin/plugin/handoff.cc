#include "device-plugin/plugin/handoff.h"

#include <algorithm>
#include <map>

namespace tideslice::deviceplugin {

StatusOr<HandoffMatch> MatchAllocate(const std::vector<PendingPod>& pending_on_node,
                                     const std::vector<std::string>& device_ids, const std::vector<DeviceInfo>& cards) {
  std::vector<const PendingPod*> allocating;
  for (const auto& p : pending_on_node)
    if (p.assignment.phase() == v1::ASSIGNMENT_PHASE_ALLOCATING) allocating.push_back(&p);
  if (allocating.empty())
    return Status::FailedPrecondition("no pod on this node is waiting for devices (phase ALLOCATING); is the "
                                      "TideSlice scheduler the one that bound this pod?");
  if (allocating.size() > 1) {
    std::string names;
    for (const auto* p : allocating) names += (names.empty() ? "" : ", ") + p->pod_key;
    return Status::FailedPrecondition("refusing to guess: " + std::to_string(allocating.size()) +
                                      " pods are allocating on this node at once (" + names +
                                      "); the scheduler keeps at most one");
  }
  const PendingPod& pod = *allocating.front();
  const int want = static_cast<int>(device_ids.size());
  // Kubelet order: init containers first, then app containers, each in the assignment's order.
  std::vector<const v1::ContainerAssignment*> order;
  for (bool init : {true, false})
    for (const auto& c : pod.assignment.containers())
      if (c.init_container() == init) order.push_back(&c);
  const v1::ContainerAssignment* chosen = nullptr;
  std::string sizes;
  for (const auto* c : order) {
    if (c->device_ids_size() > 0 || c->slices_size() == 0) continue;  // acknowledged, or asks for no card
    sizes += (sizes.empty() ? "" : ", ") + c->name() + ": " + std::to_string(c->slices_size());
    if (c->slices_size() == want) {
      chosen = c;
      break;
    }
  }
  if (!chosen)
    return Status::FailedPrecondition("pod " + pod.pod_key + " has no unacknowledged container with " +
                                      std::to_string(want) + " slice(s) (" + (sizes.empty() ? "none left" : sizes) + ")");
  std::map<std::string, const DeviceInfo*> by_uuid;
  for (const auto& c : cards) by_uuid[c.uuid] = &c;
  HandoffMatch m;
  m.pod_key = pod.pod_key;
  m.container = chosen->name();
  m.init_container = chosen->init_container();
  for (const auto& s : chosen->slices()) {
    auto it = by_uuid.find(s.card_uuid());
    if (it == by_uuid.end())
      return Status::FailedPrecondition("pod " + pod.pod_key + " was assigned card " + s.card_uuid() +
                                        ", which this node does not have");
    if (!it->second->healthy)
      return Status::FailedPrecondition("pod " + pod.pod_key + " was assigned card " + s.card_uuid() +
                                        ", which is unhealthy now");
    AssignedSlice a;
    a.card = *it->second;
    a.memory_mib = s.memory_mib();
    a.compute_permille = s.compute_permille();
    a.whole = s.whole_card();
    a.profile = s.profile();
    m.slices.push_back(std::move(a));
  }
  return m;
}

}  // namespace tideslice::deviceplugin

namespace tideslice::deviceplugin {

StatusOr<v1beta1::ContainerAllocateResponse> HandoffHandler::AllocateContainer(
    const std::vector<std::string>& device_ids, const std::vector<DeviceInfo>& cards) {
  std::lock_guard<std::mutex> lock(mu_);
  auto pending = store_->PendingOnNode();
  if (!pending.ok()) return pending.status().WithContext("reading pending assignments");
  auto match = MatchAllocate(*pending, device_ids, cards);
  if (!match.ok()) return match.status();
  auto response = BuildContainerResponse(match->slices);
  if (!response.ok()) return response.status();
  (*response->mutable_annotations())["tideslice.io/pod"] = match->pod_key;
  (*response->mutable_annotations())["tideslice.io/container"] = match->container;
  TS_RETURN_IF_ERROR(store_->Acknowledge(match->pod_key, match->container, device_ids)
                         .WithContext("acknowledging " + match->pod_key + "/" + match->container));
  return response;
}

}  // namespace tideslice::deviceplugin
