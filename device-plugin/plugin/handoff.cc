#include "device-plugin/plugin/handoff.h"

#include <algorithm>
#include <chrono>
#include <map>

namespace tideslice::deviceplugin {

namespace {

struct NextContainer {
  const PendingPod* pod = nullptr;
  const v1::ContainerAssignment* container = nullptr;
};

// The one allocating pod's first unacknowledged container asking for `want` cards, in the order
// the kubelet calls Allocate; or why there is none.
StatusOr<NextContainer> FindNextContainer(const std::vector<PendingPod>& pending_on_node, int want) {
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
  std::string sizes;
  for (bool init : {true, false}) {
    for (const auto& c : pod.assignment.containers()) {
      if (c.init_container() != init || c.device_ids_size() > 0 || c.slices_size() == 0) continue;
      sizes += (sizes.empty() ? "" : ", ") + c.name() + ": " + std::to_string(c.slices_size());
      if (c.slices_size() == want) return NextContainer{&pod, &c};
    }
  }
  return Status::FailedPrecondition("pod " + pod.pod_key + " has no unacknowledged container with " +
                                    std::to_string(want) + " slice(s) (" + (sizes.empty() ? "none left" : sizes) + ")");
}

}  // namespace

StatusOr<HandoffMatch> MatchAllocate(const std::vector<PendingPod>& pending_on_node,
                                     const std::vector<std::string>& device_ids, const std::vector<DeviceInfo>& cards) {
  auto next = FindNextContainer(pending_on_node, static_cast<int>(device_ids.size()));
  if (!next.ok()) return next.status();
  const PendingPod& pod = *next->pod;
  const v1::ContainerAssignment* chosen = next->container;
  std::map<std::string, const DeviceInfo*> by_uuid;
  for (const auto& c : cards) by_uuid[c.uuid] = &c;
  HandoffMatch m;
  m.pod_key = pod.pod_key;
  m.pod_uid = pod.assignment.pod_uid();
  m.container = chosen->name();
  m.init_container = chosen->init_container();
  m.workload_class = pod.workload_class;
  m.work_conserving = pod.work_conserving;
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
    a.start_slot = s.profile().empty() ? -1 : s.start_slot();
    m.slices.push_back(std::move(a));
  }
  return m;
}

Status CheckAgainstHeld(const HandoffMatch& match, bool exclusive, const std::vector<PendingPod>& held) {
  for (const auto& slice : match.slices) {
    if (!slice.profile.empty()) continue;
    int64_t memory = 0;
    int compute = 0;
    for (const auto& other : held) {
      if (other.pod_key == match.pod_key) continue;
      for (const auto& c : other.assignment.containers())
        for (const auto& s : c.slices()) {
          if (s.card_uuid() != slice.card.uuid || !s.profile().empty()) continue;
          if (slice.whole || exclusive || s.whole_card() || other.assignment.exclusive())
            return Status::FailedPrecondition("card " + slice.card.uuid + " is already held by pod " + other.pod_key +
                                              " (whole or exclusive); refusing to hand it to " + match.pod_key +
                                              " as well");
          memory += s.memory_mib();
          compute += s.compute_permille();
        }
    }
    if (slice.card.memory_mib > 0 && memory + slice.memory_mib > slice.card.memory_mib)
      return Status::FailedPrecondition("card " + slice.card.uuid + " has " + std::to_string(memory) +
                                        " MiB handed out already; " + std::to_string(slice.memory_mib) +
                                        " MiB more for " + match.pod_key + " would exceed its " +
                                        std::to_string(slice.card.memory_mib) + " MiB");
    if (compute + slice.compute_permille > 1000)
      return Status::FailedPrecondition("card " + slice.card.uuid + " has " + std::to_string(compute / 10) +
                                        " % of its compute handed out already; refusing " + match.pod_key +
                                        "'s share");
  }
  return Status::Ok();
}

}  // namespace tideslice::deviceplugin

namespace tideslice::deviceplugin {

std::vector<std::string> HandoffHandler::PreferredCards(int count) {
  std::lock_guard<std::mutex> lock(mu_);
  auto pending = store_->PendingOnNode();
  if (!pending.ok()) return {};
  auto next = FindNextContainer(*pending, count);
  if (!next.ok()) return {};
  std::vector<std::string> out;
  for (const auto& s : next->container->slices()) out.push_back(s.card_uuid());
  return out;
}

StatusOr<v1beta1::ContainerAllocateResponse> HandoffHandler::AllocateContainer(
    const std::vector<std::string>& device_ids, const std::vector<DeviceInfo>& cards) {
  std::lock_guard<std::mutex> lock(mu_);
  auto pending = store_->PendingOnNode();
  if (!pending.ok()) return pending.status().WithContext("reading pending assignments");
  auto match = MatchAllocate(*pending, device_ids, cards);
  if (!match.ok()) return match.status();
  bool exclusive = false;
  for (const auto& p : *pending)
    if (p.pod_key == match->pod_key) exclusive = p.assignment.exclusive();
  TS_RETURN_IF_ERROR(CheckAgainstHeld(*match, exclusive, store_->HeldOnNode()));
  // Hard partitions first; any failure below undoes the ones made here, so an Allocate either
  // succeeds completely or leaves nothing behind.
  std::vector<PartitionRecord> made;
  auto undo = [&]() {
    for (const auto& r : made) {
      for (const auto& s : match->slices)
        if (s.card.uuid == r.card_uuid) {
          (void)partitioner_->DestroyPartition(s.card, r.partition_id);
          break;
        }
      (void)ledger_->Remove(r);
    }
  };
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  for (auto& slice : match->slices) {
    if (slice.profile.empty()) continue;
    if (!partitioner_ || !ledger_) {
      undo();
      return Status::FailedPrecondition("pod " + match->pod_key + " needs a " + slice.profile +
                                        " partition, but this agent does not manage partitions");
    }
    // Intent first, then the partition, then the record: a crash in between leaves an intent
    // that the next start resolves (the partition is found and destroyed), never an orphan.
    auto rec = CreateRecordedPartition(*ledger_, *partitioner_, slice.card, slice.profile, slice.start_slot,
                                       match->pod_key, match->container, now);
    if (!rec.ok()) {
      undo();
      return rec.status().WithContext("creating " + slice.profile + " for " + match->pod_key + "/" + match->container);
    }
    made.push_back(*rec);
    slice.partition_id = rec->partition_id;
  }
  auto response = BuildContainerResponse(match->slices);
  if (!response.ok()) {
    undo();
    return response.status();
  }
  (*response->mutable_annotations())["tideslice.io/pod"] = match->pod_key;
  (*response->mutable_annotations())["tideslice.io/container"] = match->container;
  // Soft slices: the limiter's files (and the container's slots in the rosters of the cards where
  // it holds a compute share), then its mounts. A container whose limit cannot be set up does not
  // start without it: the Allocate fails with the reason and leaves nothing behind.
  bool limiter_written = false;
  if (limiter_ && NeedsLimiter(match->slices)) {
    const auto slash = match->pod_key.find('/');
    LimiterPod who{match->pod_key.substr(0, slash), slash == std::string::npos ? "" : match->pod_key.substr(slash + 1),
                   match->pod_uid, match->container, match->workload_class, match->work_conserving};
    auto config = BuildLimiterConfig(who, match->slices, context_reserve_bytes_);
    std::vector<CardSeat> seats = ComputeSeats(match->slices);
    Status written = config.ok() ? limiter_->SetUpContainer(*config, seats) : config.status();
    if (!written.ok()) {
      undo();
      return written.WithContext("setting up the memory limiter of " + match->pod_key + "/" + match->container);
    }
    limiter_written = true;
    AddLimiterToResponse(limiter_->layout(), match->pod_uid, match->container, seats, *response);
  }
  Status acked = store_->Acknowledge(match->pod_key, match->container, device_ids);
  if (!acked.ok()) {
    undo();
    if (limiter_written) (void)limiter_->RemoveContainer(match->pod_uid, match->container);
    return acked.WithContext("acknowledging " + match->pod_key + "/" + match->container);
  }
  return response;
}

}  // namespace tideslice::deviceplugin
