#include "scheduler/service/dra_claims.h"

#include <cctype>
#include <cmath>

#include "common/kube/json_fields.h"
#include "common/quantity.h"

namespace tideslice::service {

using nlohmann::json;
using kube::Child;
using kube::ReadString;

namespace {

// A capacity quantity: memory in bytes (the API's unit) rounded up to MiB.
StatusOr<int64_t> MemoryMiB(const json& q, const std::string& where) {
  if (!q.is_string()) return Status::InvalidArgument(where, "must be a quantity string");
  auto bytes = ParseQuantity(q.get<std::string>());
  if (!bytes.ok() || *bytes < 0 || *bytes > 1e18L)
    return Status::InvalidArgument(where, "\"" + q.get<std::string>().substr(0, 64) + "\" is not a memory quantity");
  return static_cast<int64_t>(std::ceil(static_cast<double>(*bytes / (1024.0L * 1024.0L)) - 1e-9));
}

StatusOr<int> Percent(const json& q, const std::string& where) {
  if (!q.is_string() && !q.is_number()) return Status::InvalidArgument(where, "must be a quantity");
  auto v = ParseQuantity(q.is_string() ? q.get<std::string>() : q.dump());
  if (!v.ok() || *v < 0 || *v > 100) return Status::InvalidArgument(where, "must be a percentage 0..100");
  return static_cast<int>(std::ceil(static_cast<double>(*v)));
}

bool AllDigits(const std::string& s) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

StatusOr<std::optional<ClaimAllocation>> ClaimAllocationOf(const json& claim) {
  if (!claim.is_object()) return Status::InvalidArgument("resourceclaim", "must be an object");
  ClaimAllocation out;
  const json* meta = Child(claim, "metadata");
  if (!meta || !meta->is_object()) return Status::InvalidArgument("metadata", "is missing");
  std::string ns, name;
  TS_RETURN_IF_ERROR(ReadString(*meta, "uid", out.uid, "metadata"));
  TS_RETURN_IF_ERROR(ReadString(*meta, "namespace", ns, "metadata"));
  TS_RETURN_IF_ERROR(ReadString(*meta, "name", name, "metadata"));
  if (out.uid.empty() || name.empty()) return Status::InvalidArgument("metadata", "needs a uid and a name");
  out.key = ns + "/" + name;
  const json* status = Child(claim, "status");
  const json* allocation = status ? Child(*status, "allocation") : nullptr;
  if (!allocation) return std::optional<ClaimAllocation>();
  const json* devices = Child(*allocation, "devices");
  const json* results = devices ? Child(*devices, "results") : nullptr;
  if (!results) return std::optional<ClaimAllocation>(std::move(out));
  if (!results->is_array()) return Status::InvalidArgument("status.allocation.devices.results", "must be a list");
  for (size_t i = 0; i < results->size(); ++i) {
    const json& r = (*results)[i];
    const std::string where = "status.allocation.devices.results[" + std::to_string(i) + "]";
    if (!r.is_object()) return Status::InvalidArgument(where, "must be an object");
    ClaimResult result;
    TS_RETURN_IF_ERROR(ReadString(r, "request", result.request, where));
    TS_RETURN_IF_ERROR(ReadString(r, "driver", result.driver, where));
    TS_RETURN_IF_ERROR(ReadString(r, "pool", result.pool, where));
    TS_RETURN_IF_ERROR(ReadString(r, "device", result.device, where));
    if (result.driver.empty() || result.pool.empty() || result.device.empty())
      return Status::InvalidArgument(where, "needs driver, pool and device");
    if (const json* consumed = Child(r, "consumedCapacity")) {
      if (!consumed->is_object()) return Status::InvalidArgument(where + ".consumedCapacity", "must be an object");
      if (const json* m = Child(*consumed, "memory")) {
        auto mib = MemoryMiB(*m, where + ".consumedCapacity.memory");
        if (!mib.ok()) return mib.status();
        result.memory_mib = *mib;
      }
      if (const json* c = Child(*consumed, "cores")) {
        auto pct = Percent(*c, where + ".consumedCapacity.cores");
        if (!pct.ok()) return pct.status();
        result.cores_percent = *pct;
      }
    }
    out.results.push_back(std::move(result));
  }
  return std::optional<ClaimAllocation>(std::move(out));
}

StatusOr<core::PodPlacement> PlacementFromClaim(const ClaimAllocation& claim, const std::string& driver,
                                                const core::NodeState& node) {
  core::PodPlacement p;
  p.pod_key = ClaimHolderKey(claim.uid);
  p.pod_uid = claim.uid;
  p.node = node.name;
  for (const auto& r : claim.results) {
    if (r.driver != driver || r.pool != node.name) continue;
    const std::string& name = r.device;
    const auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("status.allocation.devices.results",
                                     "device \"" + name.substr(0, 128) + "\" on " + node.name + ": " + why);
    };
    if (name.rfind("card-", 0) != 0) return bad("is not a TideSlice device name (card-<index>...)");
    size_t end = 5;
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
    const std::string index_text = name.substr(5, end - 5);
    if (!AllDigits(index_text)) return bad("has no card index");
    const int index = std::stoi(index_text);
    int position = -1;
    for (size_t i = 0; i < node.cards.size(); ++i)
      if (node.cards[i].index == index) position = static_cast<int>(i);
    if (position < 0) return bad("names card index " + index_text + ", which the node's inventory does not list");
    const core::CardState& card = node.cards[position];
    const std::string rest = name.substr(end);
    core::CardGrant g;
    g.card_index = position;
    g.uuid = card.uuid;
    if (rest.empty()) {
      g.whole = true;
      g.memory_mib = card.memory_mib;
      g.compute_permille = core::kWholeCardPermille;
    } else if (rest == "-shared") {
      // The published request policy's defaults: the whole card's memory, cores 0 (best effort).
      g.memory_mib = std::min(r.memory_mib.value_or(card.memory_mib), card.memory_mib);
      g.compute_permille = r.cores_percent.value_or(0) * 10;
    } else if (rest.rfind("-mig-", 0) == 0 || rest.rfind("-vnpu-", 0) == 0) {
      const bool mig = rest[1] == 'm';
      const std::string body = rest.substr(mig ? 5 : 6);  // <profile label>-<start or k>
      const size_t dash = body.rfind('-');
      if (dash == std::string::npos || dash == 0 || !AllDigits(body.substr(dash + 1)))
        return bad("has no partition number");
      const std::string label = body.substr(0, dash);
      if (!card.model) return bad("is on a card whose model is not in the catalog");
      const catalog::AcceleratorModel& model = *card.model;
      if ((model.partitioning == catalog::Partitioning::kMig) != mig)
        return bad(std::string("is a ") + (mig ? "MIG" : "vNPU") + " device on a " + model.name + " card");
      const catalog::PartitionProfile* profile = nullptr;
      for (const auto& candidate : model.profiles)
        if (catalog::ProfileLabel(candidate.name) == label) profile = &candidate;
      if (!profile) return bad("names a profile the catalog's " + model.name + " does not have");
      g.profile = profile->name;
      g.memory_mib = profile->memory_mib;
      if (mig) {
        g.start_slot = std::stoi(body.substr(dash + 1));
        if (g.start_slot + profile->slot_size > model.mig_memory_slices) return bad("starts past the card's memory slices");
        g.mig_compute_slices = profile->compute;
        g.compute_permille = model.mig_compute_slices > 0 ? profile->compute * 1000 / model.mig_compute_slices : 0;
      } else {
        g.aicore = profile->compute;
        g.aicpu = profile->aicpu;
        g.compute_permille = model.compute_units > 0 ? profile->compute * 1000 / model.compute_units : 0;
      }
    } else {
      return bad("is not a TideSlice device name (card-<index>[-shared|-mig-...|-vnpu-...])");
    }
    core::ContainerGrant c;
    c.name = r.request;
    c.cards.push_back(std::move(g));
    p.containers.push_back(std::move(c));
  }
  return p;
}

StatusOr<std::vector<core::ContainerRequest>> ClaimedSlices(const json& claim_spec, const std::string& claim_name,
                                                            const DraClasses& classes) {
  std::vector<core::ContainerRequest> out;
  const json* devices = Child(claim_spec, "devices");
  const json* requests = devices ? Child(*devices, "requests") : nullptr;
  if (!requests) return out;
  if (!requests->is_array()) return Status::InvalidArgument("spec.devices.requests", "must be a list");
  for (size_t i = 0; i < requests->size(); ++i) {
    const json& r = (*requests)[i];
    const std::string where = "spec.devices.requests[" + std::to_string(i) + "]";
    if (!r.is_object()) return Status::InvalidArgument(where, "must be an object");
    std::string name;
    TS_RETURN_IF_ERROR(ReadString(r, "name", name, where));
    // exactly, or the first choice of firstAvailable: what the allocator tries first.
    const json* exact = Child(r, "exactly");
    std::string at = where + ".exactly";
    if (!exact) {
      const json* first = Child(r, "firstAvailable");
      if (!first) continue;
      if (!first->is_array()) return Status::InvalidArgument(where + ".firstAvailable", "must be a list");
      if (first->empty()) continue;
      exact = &(*first)[0];
      at = where + ".firstAvailable[0]";
      if (!exact->is_object()) return Status::InvalidArgument(at, "must be an object");
    }
    std::string device_class, mode;
    TS_RETURN_IF_ERROR(ReadString(*exact, "deviceClassName", device_class, at));
    TS_RETURN_IF_ERROR(ReadString(*exact, "allocationMode", mode, at));
    const bool whole = device_class == classes.whole, shared = device_class == classes.shared,
               mig = device_class == classes.mig, vnpu = device_class == classes.vnpu;
    if (!whole && !shared && !mig && !vnpu) continue;
    int64_t count = 1;
    if (const json* c = Child(*exact, "count"); c && mode != "All") {
      if (!c->is_number_integer() || c->get<int64_t>() < 1 || c->get<int64_t>() > 128)
        return Status::InvalidArgument(at + ".count", "must be an integer from 1 to 128");
      count = c->get<int64_t>();
    }
    core::ContainerRequest cr;
    cr.name = claim_name + "/" + name;
    cr.slice.count = static_cast<int>(count);
    if (whole) {
      cr.slice.whole = true;
    } else {
      const json* capacity = Child(*exact, "capacity");
      const json* wanted = capacity ? Child(*capacity, "requests") : nullptr;
      if (wanted && !wanted->is_object()) return Status::InvalidArgument(at + ".capacity.requests", "must be an object");
      if (const json* m = wanted ? Child(*wanted, "memory") : nullptr) {
        auto mib = MemoryMiB(*m, at + ".capacity.requests.memory");
        if (!mib.ok()) return mib.status();
        cr.slice.memory_mib = std::max<int64_t>(*mib, 1);
      } else if (shared) {
        cr.slice.memory_percent = 100;  // the shared device's default: the whole card's memory
      }
      if (const json* c = wanted ? Child(*wanted, "cores") : nullptr) {
        auto pct = Percent(*c, at + ".capacity.requests.cores");
        if (!pct.ok()) return pct.status();
        cr.slice.compute_permille = *pct * 10;
      }
      cr.slice.partition_class = mig || vnpu;
    }
    out.push_back(std::move(cr));
  }
  return out;
}

}  // namespace tideslice::service
