#include "device-plugin/dra/driver.h"

#include <chrono>
#include <filesystem>
#include <set>

#include "common/log/log.h"

namespace tideslice::dra {
namespace {

using deviceplugin::AssignedSlice;
using deviceplugin::DeviceInfo;

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "; ") + s;
  return out;
}

}  // namespace

std::string LedgerOwner(const std::string& claim_uid) { return "dra/" + claim_uid; }

DraDriver::DraDriver(DriverOptions options, deviceplugin::DeviceBackend& backend, const catalog::Catalog& catalog,
                     ClaimFetcher fetch, deviceplugin::PartitionLedger* ledger, deviceplugin::LimiterFiles* limiter)
    : options_(std::move(options)),
      backend_(backend),
      catalog_(catalog),
      fetch_(std::move(fetch)),
      ledger_(ledger),
      limiter_(limiter) {}

Status DraDriver::RebuildLocked(const std::vector<DeviceInfo>& cards) {
  auto inv = BuildNodeInventory(cards, catalog_, options_.layout);
  if (!inv.ok()) return inv.status();
  cards_ = cards;
  inventory_ = std::move(*inv);
  inventory_version_++;
  return Status::Ok();
}

Status DraDriver::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!options_.checkpoint_path.empty()) {
    auto cp = LoadCheckpoint(options_.checkpoint_path);
    if (!cp.ok()) return cp.status();
    checkpoint_ = std::move(*cp);
  }
  auto cards = backend_.Discover();
  if (!cards.ok()) return cards.status().WithContext("discovering the cards");
  TS_RETURN_IF_ERROR(RebuildLocked(*cards));

  // Partitions whose creation was interrupted, then partitions made for claims that never
  // reached the checkpoint (a crash between creating them and saving it).
  if (ledger_) {
    auto orphans = deviceplugin::RemoveOrphanPartitions(*ledger_, backend_, cards_);
    for (const auto& e : orphans.errors) log::Warn("dra_orphan_partition", e);
    for (const auto& r : ledger_->All()) {
      if (r.pod_key.rfind("dra/", 0) != 0) continue;
      if (checkpoint_.count(r.pod_key.substr(4))) continue;
      const DeviceInfo* card = CardByUuid(r.card_uuid);
      Status s = card ? backend_.DestroyPartition(*card, r.partition_id) : Status::Ok();
      if (s.ok()) (void)ledger_->Remove(r);
      log::Info("dra_unrecorded_partition", s.ok() ? "destroyed" : "could not destroy: " + s.ToString(),
                {{"claim", r.pod_key.substr(4)}, {"partition", r.partition_id}});
    }
  }
  // CDI files of claims the checkpoint does not list.
  std::error_code ec;
  const std::string prefix = "k8s." + options_.driver + "-card_";
  for (const auto& e : std::filesystem::directory_iterator(options_.cdi_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() < prefix.size() + 6 || name.substr(name.size() - 5) != ".json") continue;
    const std::string uid = name.substr(prefix.size(), name.size() - prefix.size() - 5);
    if (checkpoint_.count(uid)) continue;
    Status s = RemoveCdiSpec(options_.cdi_dir, name);
    log::Info("dra_unrecorded_cdi_spec", s.ok() ? "removed" : s.ToString(), {{"file", name}});
  }
  // Limiter directories of claims the checkpoint does not list.
  if (limiter_) {
    std::set<std::string> live;
    for (const auto& [uid, c] : checkpoint_) live.insert(uid);
    auto gc = limiter_->RemoveGonePods(live, std::chrono::system_clock::now(), std::chrono::seconds(0));
    for (const auto& e : gc.errors) log::Warn("dra_limiter_cleanup", e);
  }
  log::Info("dra_driver_started", "checkpoint read and reconciled",
            {{"claims", std::to_string(checkpoint_.size())}, {"cards", std::to_string(cards_.size())},
             {"devices", std::to_string(inventory_.devices.size())}});
  return Status::Ok();
}

const DeviceInfo* DraDriver::CardByUuid(const std::string& uuid) const {
  for (const auto& c : cards_)
    if (c.uuid == uuid) return &c;
  return nullptr;
}

Status DraDriver::SaveLocked() {
  if (options_.checkpoint_path.empty()) return Status::Ok();
  return SaveCheckpoint(options_.checkpoint_path, checkpoint_);
}

std::map<std::string, ClaimOutcome> DraDriver::Prepare(const std::vector<ClaimRef>& claims) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, ClaimOutcome> out;
  for (const auto& ref : claims) {
    if (out.count(ref.uid)) continue;
    out[ref.uid] = PrepareOne(ref);
    if (out[ref.uid].error.empty()) counters_.prepared++;
    else {
      counters_.prepare_errors++;
      log::Warn("dra_prepare_failed", out[ref.uid].error, {{"claim", ref.ns + "/" + ref.name}, {"uid", ref.uid}});
    }
  }
  return out;
}

ClaimOutcome DraDriver::PrepareOne(const ClaimRef& ref) {
  if (auto it = checkpoint_.find(ref.uid); it != checkpoint_.end()) return {it->second.devices, ""};
  if (ref.uid.empty() || !deviceplugin::IsLimiterPathSegment(ref.uid))
    return {{}, "claim UID \"" + ref.uid + "\" is not a UID"};
  auto text = fetch_(ref);
  if (!text.ok()) return {{}, "reading ResourceClaim " + ref.ns + "/" + ref.name + ": " + text.status().ToString()};
  auto claim = ParseAllocatedClaim(*text, options_.driver, ref);
  if (!claim.ok()) return {{}, claim.status().ToString()};
  auto plan = PlanClaim(*claim, inventory_, options_.node_name);
  if (!plan.ok()) return {{}, plan.status().ToString()};

  // Last line of defence against a double allocation: a dedicated device (or a share) that
  // another prepared claim holds.
  for (const auto& req : *plan)
    for (size_t i = 0; i < req.devices.size(); ++i)
      for (const auto& [uid, other] : checkpoint_)
        for (const auto& d : other.devices)
          if (d.device == req.devices[i]->name && (req.devices[i]->kind != DeviceKind::kShared ||
                                                   d.share_id == req.results[i]->share_id))
            return {{}, "device " + d.device + " is already prepared for ResourceClaim " + other.ns + "/" + other.name};

  PreparedClaim prepared{ref.ns, ref.name, ref.uid};
  auto fail = [&](const std::string& why) {
    std::vector<std::string> left = Undo(prepared);
    if (!left.empty()) {
      // Keep what could not be undone, so that unprepare (or the next start) tries again.
      checkpoint_[ref.uid] = prepared;
      (void)SaveLocked();
      return ClaimOutcome{{}, why + " (and undoing failed: " + Join(left) + ")"};
    }
    return ClaimOutcome{{}, why};
  };

  std::vector<CdiRequestEdits> edits;
  for (auto& req : *plan) {
    for (auto& slice : req.slices) {
      if (slice.profile.empty()) continue;
      if (!ledger_) return fail("request " + req.base_request + " needs a " + slice.profile +
                                " partition, but this driver does not manage partitions");
      auto rec = deviceplugin::CreateRecordedPartition(*ledger_, backend_, slice.card, slice.profile, slice.start_slot,
                                                       LedgerOwner(ref.uid), req.base_request, NowUnix());
      if (!rec.ok())
        return fail("creating " + slice.profile + " on card " + slice.card.uuid + " for request " + req.base_request +
                    ": " + rec.status().ToString());
      slice.partition_id = rec->partition_id;
      prepared.partitions.push_back({slice.card.uuid, rec->partition_id});
    }
    auto response = deviceplugin::BuildContainerResponse(req.slices);
    if (!response.ok()) return fail("request " + req.base_request + ": " + response.status().ToString());
    response->clear_annotations();
    if (deviceplugin::NeedsLimiter(req.slices)) {
      if (!limiter_) return fail("request " + req.base_request + " is a soft share, but the limiter is off on this node");
      deviceplugin::LimiterPod who{ref.ns, ref.name, ref.uid, req.base_request, claim->workload_class,
                                   claim->work_conserving};
      auto config = deviceplugin::BuildLimiterConfig(who, req.slices, options_.context_reserve_bytes);
      if (!config.ok()) return fail("request " + req.base_request + ": " + config.status().ToString());
      std::vector<deviceplugin::CardSeat> seats = deviceplugin::ComputeSeats(req.slices);
      Status written = limiter_->SetUpContainer(*config, seats);
      if (!written.ok()) return fail("setting up the limiter for request " + req.base_request + ": " + written.ToString());
      prepared.limiter_requests.push_back(req.base_request);
      deviceplugin::AddLimiterToResponse(limiter_->layout(), ref.uid, req.base_request, seats, *response);
    }
    edits.push_back({req.base_request, std::move(*response)});
    for (size_t i = 0; i < req.devices.size(); ++i) {
      PreparedDevice d{{req.base_request}, req.results[i]->pool, req.results[i]->device, req.results[i]->share_id, {}};
      // The request's CDI device carries all of its cards (one visible-devices list), so it is
      // handed out once, with the request's first device.
      if (i == 0) d.cdi_ids.push_back(CdiDeviceId(options_.driver, ref.uid, req.base_request));
      prepared.devices.push_back(std::move(d));
    }
  }
  if (!edits.empty()) {
    auto spec = BuildCdiSpec(options_.driver, ref.uid, edits);
    if (!spec.ok()) return fail(spec.status().ToString());
    const std::string file = CdiSpecFileName(options_.driver, ref.uid);
    Status w = WriteCdiSpec(options_.cdi_dir, file, *spec);
    if (!w.ok()) return fail("writing the CDI spec: " + w.ToString());
    prepared.cdi_file = file;
  }
  checkpoint_[ref.uid] = prepared;
  Status saved = SaveLocked();
  if (!saved.ok()) {
    checkpoint_.erase(ref.uid);
    return fail("saving the checkpoint: " + saved.ToString());
  }
  log::Info("dra_claim_prepared", "claim prepared",
            {{"claim", ref.ns + "/" + ref.name}, {"uid", ref.uid}, {"devices", std::to_string(prepared.devices.size())},
             {"partitions", std::to_string(prepared.partitions.size())}});
  return {prepared.devices, ""};
}

std::vector<std::string> DraDriver::Undo(PreparedClaim& claim) {
  std::vector<std::string> errors;
  if (!claim.cdi_file.empty()) {
    Status s = RemoveCdiSpec(options_.cdi_dir, claim.cdi_file);
    if (s.ok()) claim.cdi_file.clear();
    else errors.push_back(s.ToString());
  }
  std::vector<std::string> lim_left;
  for (const auto& r : claim.limiter_requests) {
    Status s = limiter_ ? limiter_->RemoveContainer(claim.uid, r) : Status::Ok();
    if (!s.ok()) {
      errors.push_back(s.ToString());
      lim_left.push_back(r);
    }
  }
  claim.limiter_requests = lim_left;
  std::vector<PreparedPartition> part_left;
  for (const auto& p : claim.partitions) {
    const DeviceInfo* card = CardByUuid(p.card_uuid);
    Status s = card ? backend_.DestroyPartition(*card, p.partition_id) : Status::Ok();  // a gone card took it along
    if (!s.ok()) {
      errors.push_back("destroying " + p.partition_id + ": " + s.ToString());
      part_left.push_back(p);
      continue;
    }
    if (ledger_)
      for (const auto& r : ledger_->All())
        if (r.pod_key == LedgerOwner(claim.uid) && r.partition_id == p.partition_id) (void)ledger_->Remove(r);
  }
  claim.partitions = part_left;
  return errors;
}

std::map<std::string, std::string> DraDriver::Unprepare(const std::vector<ClaimRef>& claims) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& ref : claims) {
    if (out.count(ref.uid)) continue;
    out[ref.uid] = UnprepareOne(ref);
    if (out[ref.uid].empty()) counters_.unprepared++;
    else {
      counters_.unprepare_errors++;
      log::Warn("dra_unprepare_failed", out[ref.uid], {{"claim", ref.ns + "/" + ref.name}, {"uid", ref.uid}});
    }
  }
  return out;
}

std::string DraDriver::UnprepareOne(const ClaimRef& ref) {
  auto it = checkpoint_.find(ref.uid);
  if (it == checkpoint_.end()) return "";  // never prepared here, or already undone: success
  PreparedClaim claim = it->second;
  std::vector<std::string> errors = Undo(claim);
  if (errors.empty()) checkpoint_.erase(it);
  else it->second = claim;
  Status saved = SaveLocked();
  if (!saved.ok()) errors.push_back("saving the checkpoint: " + saved.ToString());
  if (errors.empty())
    log::Info("dra_claim_unprepared", "claim unprepared", {{"claim", ref.ns + "/" + ref.name}, {"uid", ref.uid}});
  return Join(errors);
}

StatusOr<bool> DraDriver::RefreshCards() {
  auto cards = backend_.Discover();
  if (!cards.ok()) return cards.status();
  std::lock_guard<std::mutex> lock(mu_);
  auto inv = BuildNodeInventory(*cards, catalog_, options_.layout);
  if (!inv.ok()) return inv.status();
  bool changed = inv->devices.size() != inventory_.devices.size() || inv->counter_sets != inventory_.counter_sets;
  for (size_t i = 0; !changed && i < inv->devices.size(); ++i)
    changed = inv->devices[i].entry != inventory_.devices[i].entry;
  cards_ = *cards;
  inventory_ = std::move(*inv);
  if (changed) inventory_version_++;
  return changed;
}

NodeInventory DraDriver::Inventory() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inventory_;
}
std::vector<DeviceInfo> DraDriver::Cards() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cards_;
}
Checkpoint DraDriver::Prepared() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoint_;
}
DriverCounters DraDriver::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace tideslice::dra
