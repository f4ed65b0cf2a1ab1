#include "device-plugin/dra/claim.h"

#include <cmath>
#include <map>

#include "common/quantity.h"

namespace tideslice::dra {
namespace {

using nlohmann::json;

constexpr size_t kMaxResults = 32;
constexpr size_t kMaxName = 253;

Status Bad(const std::string& field, const std::string& msg) { return Status::InvalidArgument(field, msg); }

// A string field of `obj`, required or not, bounded.
StatusOr<std::string> StringField(const json& obj, const std::string& key, const std::string& where, bool required) {
  if (!obj.contains(key) || obj[key].is_null()) {
    if (required) return Bad(where + "." + key, "is required");
    return std::string();
  }
  if (!obj[key].is_string()) return Bad(where + "." + key, "must be a string");
  std::string s = obj[key].get<std::string>();
  if (s.size() > kMaxName) return Bad(where + "." + key, "is longer than 253 characters");
  if (required && s.empty()) return Bad(where + "." + key, "is empty");
  return s;
}

StatusOr<int64_t> QuantityCeil(const json& v, const std::string& where, long double unit) {
  if (!v.is_string()) return Bad(where, "must be a quantity string");
  auto q = ParseQuantity(v.get<std::string>());
  if (!q.ok()) return q.status().WithContext(where);
  if (*q < 0) return Bad(where, "is negative");
  long double units = std::ceil(*q / unit);
  if (units > 9.2e18L) return Bad(where, "is too large");
  return static_cast<int64_t>(units);
}

Status ApplyOpaque(const json& params, AllocatedClaim& out) {
  if (!params.is_object()) return Bad("opaque.parameters", "must be a JSON object");
  for (const auto& [k, v] : params.items()) {
    if (k == "apiVersion" || k == "kind") {
      if (!v.is_string()) return Bad("opaque.parameters." + k, "must be a string");
    } else if (k == "workloadClass") {
      if (!v.is_string() || (v != "inference" && v != "training"))
        return Bad("opaque.parameters.workloadClass", "must be \"inference\" or \"training\"");
      out.workload_class = v.get<std::string>();
    } else if (k == "computeMode") {
      if (!v.is_string() || (v != "capped" && v != "work-conserving"))
        return Bad("opaque.parameters.computeMode", "must be \"capped\" or \"work-conserving\"");
      out.work_conserving = v == "work-conserving";
    } else {
      return Bad("opaque.parameters." + k,
                 "is not a TideSlice parameter (known: apiVersion, kind, workloadClass, computeMode)");
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<AllocatedClaim> ParseAllocatedClaim(std::string_view claim_text, const std::string& driver,
                                             const ClaimRef& expected) {
  json claim = json::parse(claim_text, nullptr, false);
  if (claim.is_discarded() || !claim.is_object()) return Bad("claim", "is not a JSON object");
  if (claim.contains("kind") && claim["kind"] != "ResourceClaim") return Bad("kind", "is not ResourceClaim");
  if (!claim.contains("metadata") || !claim["metadata"].is_object()) return Bad("metadata", "is missing");
  const json& meta = claim["metadata"];
  AllocatedClaim out;
  auto uid = StringField(meta, "uid", "metadata", true);
  if (!uid.ok()) return uid.status();
  if (*uid != expected.uid)
    return Status::FailedPrecondition("ResourceClaim " + expected.ns + "/" + expected.name + " has UID " + *uid +
                                      ", the kubelet asked for " + expected.uid + ": the claim was replaced");
  auto name = StringField(meta, "name", "metadata", false);
  auto ns = StringField(meta, "namespace", "metadata", false);
  if (!name.ok()) return name.status();
  if (!ns.ok()) return ns.status();
  out.ref = {ns->empty() ? expected.ns : *ns, name->empty() ? expected.name : *name, *uid};
  const json* alloc = nullptr;
  if (claim.contains("status") && claim["status"].is_object() && claim["status"].contains("allocation") &&
      claim["status"]["allocation"].is_object())
    alloc = &claim["status"]["allocation"];
  if (!alloc)
    return Status::FailedPrecondition("ResourceClaim " + out.ref.ns + "/" + out.ref.name + " is not allocated");
  if (!alloc->contains("devices") || !(*alloc)["devices"].is_object()) return out;
  const json& devices = (*alloc)["devices"];
  if (devices.contains("results") && !devices["results"].is_null()) {
    const json& results = devices["results"];
    if (!results.is_array()) return Bad("status.allocation.devices.results", "must be a list");
    if (results.size() > kMaxResults) return Bad("status.allocation.devices.results", "has more than 32 entries");
    for (size_t i = 0; i < results.size(); ++i) {
      const json& r = results[i];
      const std::string where = "status.allocation.devices.results[" + std::to_string(i) + "]";
      if (!r.is_object()) return Bad(where, "must be an object");
      auto drv = StringField(r, "driver", where, true);
      if (!drv.ok()) return drv.status();
      if (*drv != driver) continue;
      AllocatedDevice d;
      auto req = StringField(r, "request", where, true);
      auto pool = StringField(r, "pool", where, true);
      auto dev = StringField(r, "device", where, true);
      auto share = StringField(r, "shareID", where, false);
      for (const auto* s : {&req, &pool, &dev, &share})
        if (!s->ok()) return s->status();
      d.request = *req;
      d.base_request = req->substr(0, req->find('/'));
      if (d.base_request.empty()) return Bad(where + ".request", "has an empty request name");
      d.pool = *pool;
      d.device = *dev;
      d.share_id = *share;
      if (r.contains("consumedCapacity") && !r["consumedCapacity"].is_null()) {
        const json& cc = r["consumedCapacity"];
        if (!cc.is_object()) return Bad(where + ".consumedCapacity", "must be an object");
        if (cc.contains("memory")) {
          auto m = QuantityCeil(cc["memory"], where + ".consumedCapacity.memory", 1024.0L * 1024.0L);
          if (!m.ok()) return m.status();
          d.memory_mib = *m;
        }
        if (cc.contains("cores")) {
          auto c = QuantityCeil(cc["cores"], where + ".consumedCapacity.cores", 1.0L);
          if (!c.ok()) return c.status();
          if (*c > 100) return Bad(where + ".consumedCapacity.cores", "is more than 100 percent");
          d.cores_percent = *c;
        }
      }
      out.devices.push_back(std::move(d));
    }
  }
  if (devices.contains("config") && !devices["config"].is_null()) {
    const json& config = devices["config"];
    if (!config.is_array()) return Bad("status.allocation.devices.config", "must be a list");
    if (config.size() > 64) return Bad("status.allocation.devices.config", "has more than 64 entries");
    // Class entries come first, then the claim's: the claim's win.
    for (const auto& c : config) {
      if (!c.is_object() || !c.contains("opaque") || !c["opaque"].is_object()) continue;
      if (c["opaque"].value("driver", "") != driver) continue;
      const json params = c["opaque"].contains("parameters") ? c["opaque"]["parameters"] : json();
      Status s = ApplyOpaque(params, out);
      if (!s.ok()) return s;
    }
  }
  return out;
}

StatusOr<std::vector<PreparedRequest>> PlanClaim(const AllocatedClaim& claim, const NodeInventory& inventory,
                                                 const std::string& pool) {
  std::vector<PreparedRequest> plan;
  std::map<std::string, size_t> by_request;
  for (const auto& r : claim.devices) {
    const std::string what = "device " + r.pool + "/" + r.device + " (request " + r.request + ")";
    if (r.pool != pool) return Status::FailedPrecondition(what + " is in pool " + r.pool + ", this node's pool is " + pool);
    const PublishedDevice* d = inventory.Find(r.device);
    if (!d) return Status::NotFound(what + " is not a device this driver publishes on this node now");
    if (!d->card.healthy)
      return Status::Unavailable(what + ": card " + d->card.uuid + " is unhealthy");
    deviceplugin::AssignedSlice slice;
    slice.card = d->card;
    switch (d->kind) {
      case DeviceKind::kWhole:
        slice.whole = true;
        break;
      case DeviceKind::kShared:
        if (r.share_id.empty())
          return Status::FailedPrecondition(what + " is a shared card but the allocation has no shareID");
        if (!r.memory_mib || *r.memory_mib <= 0)
          return Status::FailedPrecondition(what + " is a shared card but the allocation has no consumed memory");
        if (*r.memory_mib > d->card.memory_mib)
          return Status::FailedPrecondition(what + " consumes more memory than the card has");
        slice.memory_mib = *r.memory_mib;
        slice.compute_permille = static_cast<int>(r.cores_percent.value_or(0) * 10);
        break;
      case DeviceKind::kMig:
      case DeviceKind::kVnpu:
        slice.profile = d->profile;
        slice.start_slot = d->start_slot;
        break;
    }
    auto [it, fresh] = by_request.emplace(r.base_request, plan.size());
    if (fresh) plan.push_back(PreparedRequest{r.base_request});
    PreparedRequest& p = plan[it->second];
    for (const auto* other : p.results)
      if (other->device == r.device && other->share_id == r.share_id)
        return Status::InvalidArgument("status.allocation.devices.results", what + " is listed twice");
    p.devices.push_back(d);
    p.results.push_back(&r);
    p.slices.push_back(slice);
  }
  return plan;
}

}  // namespace tideslice::dra
