#include "device-plugin/dra/resource_slices.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace tideslice::dra {
namespace {

using nlohmann::json;
using deviceplugin::DeviceInfo;

json Str(const std::string& s) { return {{"string", s}}; }
json Int(int64_t v) { return {{"int", v}}; }
json Cap(const std::string& value) { return {{"value", value}}; }

bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return s.front() != '-' && s.back() != '-';
}

bool IsDnsSubdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find('.', i);
    if (j == std::string::npos) j = s.size();
    if (!IsDnsLabel(s.substr(i, j - i))) return false;
    i = j + 1;
  }
  return true;
}

bool IsCIdentifier(const std::string& s) {
  if (s.empty() || s.size() > 32) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// An attribute or capacity key: a C identifier, or <domain>/<C identifier>.
bool IsQualifiedName(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return IsCIdentifier(s);
  std::string domain = s.substr(0, slash);
  return domain.size() <= 63 && IsDnsSubdomain(domain) && IsCIdentifier(s.substr(slash + 1));
}

struct Counters {
  std::string set;
  json values = json::object();  // counter name -> {"value": q}
};

// The counter set of one card: what every device of the card consumes from.
Counters CardCounters(const DeviceInfo& card, const catalog::AcceleratorModel* model) {
  Counters c{"card-" + std::to_string(card.index)};
  c.values["memory"] = Cap(MiB(card.memory_mib));
  if (model && model->partitioning == catalog::Partitioning::kMig && card.mig_enabled) {
    c.values["compute-slices"] = Cap(std::to_string(model->mig_compute_slices));
    for (int i = 0; i < model->mig_memory_slices; ++i) c.values["memory-slice-" + std::to_string(i)] = Cap("1");
  } else if (model && model->partitioning == catalog::Partitioning::kAscendVnpu) {
    c.values["aicore"] = Cap(std::to_string(model->compute_units));
    if (model->aicpu_units > 0) c.values["aicpu"] = Cap(std::to_string(model->aicpu_units));
  }
  return c;
}

json CommonAttributes(const DeviceInfo& card, const catalog::AcceleratorModel* model, DeviceKind kind) {
  json a = json::object();
  a["type"] = Str(DeviceKindName(kind));
  a["vendor"] = Str(card.vendor.substr(0, kMaxAttributeStringLength));
  a["model"] = Str((model ? model->name : card.model).substr(0, kMaxAttributeStringLength));
  a["uuid"] = Str(card.uuid.substr(0, kMaxAttributeStringLength));
  a["index"] = Int(card.index);
  if (model) {
    a["computeUnits"] = Int(model->compute_units);
    a["fp16Tflops"] = Int(static_cast<int64_t>(model->fp16_tflops));
    a["partitioning"] = Str(catalog::PartitioningName(model->partitioning));
  }
  if (card.numa_node >= 0) a["numaNode"] = Int(card.numa_node);
  if (!card.link_domain.empty()) a["linkDomain"] = Str(card.link_domain.substr(0, kMaxAttributeStringLength));
  // As the driver library reports it ("550.54.15", "24.1.rc2"): a string, since vendors' version
  // strings are not all semantic versions.
  if (!card.driver_version.empty())
    a["driverVersion"] = Str(card.driver_version.substr(0, kMaxAttributeStringLength));
  a["healthy"] = json{{"bool", card.healthy}};
  return a;
}

void Taint(json& entry, const DeviceInfo& card) {
  if (card.healthy) return;
  entry["taints"] = json::array({{{"key", kUnhealthyTaintKey}, {"value", "true"}, {"effect", "NoSchedule"}}});
}

int64_t Percent(int64_t part, int64_t whole) { return whole > 0 ? (part * 100) / whole : 0; }

}  // namespace

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kWhole: return "card";
    case DeviceKind::kShared: return "shared";
    case DeviceKind::kMig: return "mig";
    case DeviceKind::kVnpu: return "vnpu";
  }
  return "card";
}

StatusOr<SliceLayout> ParseSliceLayout(const std::string& text) {
  if (text == "partitionable") return SliceLayout::kPartitionable;
  if (text == "basic") return SliceLayout::kBasic;
  if (text == "partitionable-combined") return SliceLayout::kPartitionableCombined;
  return Status::InvalidArgument("slice-layout",
                                 "must be partitionable, partitionable-combined or basic, got \"" + text + "\"");
}

std::string MiB(int64_t mib) { return std::to_string(mib) + "Mi"; }

const PublishedDevice* NodeInventory::Find(const std::string& device_name) const {
  for (const auto& d : devices)
    if (d.name == device_name) return &d;
  return nullptr;
}

StatusOr<NodeInventory> BuildNodeInventory(const std::vector<DeviceInfo>& cards, const catalog::Catalog& catalog,
                                           SliceLayout layout) {
  NodeInventory inv;
  inv.layout = layout;
  std::set<int> indexes;
  for (const auto& card : cards) {
    if (card.index < 0) return Status::InvalidArgument("cards", "card " + card.uuid + " has a negative index");
    if (!indexes.insert(card.index).second)
      return Status::InvalidArgument("cards", "two cards have index " + std::to_string(card.index));
    if (card.memory_mib <= 0) return Status::InvalidArgument("cards", "card " + card.uuid + " reports no memory");
    const catalog::AcceleratorModel* model = catalog.Find(card.model);
    const std::string base = "card-" + std::to_string(card.index);
    const Counters counters = CardCounters(card, model);
    const bool partitionable = layout != SliceLayout::kBasic;
    auto consume_all = [&](json& entry) {
      if (partitionable)
        entry["consumesCounters"] = json::array({{{"counterSet", counters.set}, {"counters", counters.values}}});
    };
    const bool mig_mode = model && model->partitioning == catalog::Partitioning::kMig && card.mig_enabled;
    if (partitionable) inv.counter_sets.push_back({{"name", counters.set}, {"counters", counters.values}});

    // A MIG-enabled card is handed out as MIG instances only (the device plugin does the same).
    if (!mig_mode) {
      PublishedDevice whole{base, DeviceKind::kWhole, card};
      whole.entry = {{"name", base},
                     {"attributes", CommonAttributes(card, model, DeviceKind::kWhole)},
                     {"capacity", {{"memory", Cap(MiB(card.memory_mib))}, {"cores", Cap("100")}}}};
      consume_all(whole.entry);
      Taint(whole.entry, card);
      inv.devices.push_back(std::move(whole));
    }
    if (!partitionable) continue;

    if (!mig_mode) {
      // Soft sharing: the policies are what the limiter enforces. Memory in whole MiB (the
      // limiter's memory_limit_bytes is MiB * 2^20), at least 1Mi, by default the whole card's
      // memory; cores in percent (the limiter's compute_permille / 10), 0 = best effort (not
      // limited, as a device-plugin soft slice without tideslice.io/vnpu-cores), by default 0.
      PublishedDevice shared{base + "-shared", DeviceKind::kShared, card};
      shared.entry = {
          {"name", shared.name},
          {"attributes", CommonAttributes(card, model, DeviceKind::kShared)},
          {"allowMultipleAllocations", true},
          {"capacity",
           {{"memory",
             {{"value", MiB(card.memory_mib)},
              {"requestPolicy",
               {{"default", MiB(card.memory_mib)}, {"validRange", {{"min", "1Mi"}, {"step", "1Mi"}}}}}}},
            {"cores",
             {{"value", "100"},
              {"requestPolicy", {{"default", "0"}, {"validRange", {{"min", "0"}, {"max", "100"}, {"step", "1"}}}}}}}}}};
      consume_all(shared.entry);
      Taint(shared.entry, card);
      inv.devices.push_back(std::move(shared));
    }

    if (mig_mode) {
      for (const auto& p : model->profiles) {
        for (int start : p.start_slots) {
          if (start < 0 || start + p.slot_size > model->mig_memory_slices) continue;
          PublishedDevice d{base + "-mig-" + catalog::ProfileLabel(p.name) + "-" + std::to_string(start), DeviceKind::kMig, card,
                            p.name, start};
          json attrs = CommonAttributes(card, model, DeviceKind::kMig);
          attrs["profile"] = Str(p.name);
          attrs["migStartSlot"] = Int(start);
          json used = {{"memory", Cap(MiB(p.memory_mib))}, {"compute-slices", Cap(std::to_string(p.compute))}};
          for (int s = start; s < start + p.slot_size; ++s) used["memory-slice-" + std::to_string(s)] = Cap("1");
          d.entry = {{"name", d.name},
                     {"attributes", attrs},
                     {"capacity",
                      {{"memory", Cap(MiB(p.memory_mib))},
                       {"cores", Cap(std::to_string(Percent(p.compute, model->mig_compute_slices)))}}},
                     {"consumesCounters", json::array({{{"counterSet", counters.set}, {"counters", used}}})}};
          Taint(d.entry, card);
          inv.devices.push_back(std::move(d));
        }
      }
    } else if (model && model->partitioning == catalog::Partitioning::kAscendVnpu) {
      for (const auto& p : model->profiles) {
        if (p.compute <= 0 || p.memory_mib <= 0) continue;
        // As many devices per template as could exist at once on an empty card: the counters
        // stop any mix from over-committing it.
        int64_t n = std::min<int64_t>(model->compute_units / p.compute, card.memory_mib / p.memory_mib);
        if (p.aicpu > 0) n = std::min<int64_t>(n, model->aicpu_units / p.aicpu);
        if (p.max_instances > 0) n = std::min<int64_t>(n, p.max_instances);
        for (int64_t k = 0; k < n; ++k) {
          PublishedDevice d{base + "-vnpu-" + catalog::ProfileLabel(p.name) + "-" + std::to_string(k), DeviceKind::kVnpu, card,
                            p.name, -1};
          json attrs = CommonAttributes(card, model, DeviceKind::kVnpu);
          attrs["profile"] = Str(p.name);
          json used = {{"memory", Cap(MiB(p.memory_mib))}, {"aicore", Cap(std::to_string(p.compute))}};
          if (model->aicpu_units > 0) used["aicpu"] = Cap(std::to_string(p.aicpu));
          d.entry = {{"name", d.name},
                     {"attributes", attrs},
                     {"capacity",
                      {{"memory", Cap(MiB(p.memory_mib))},
                       {"cores", Cap(std::to_string(Percent(p.compute, model->compute_units)))}}},
                     {"consumesCounters", json::array({{{"counterSet", counters.set}, {"counters", used}}})}};
          Taint(d.entry, card);
          inv.devices.push_back(std::move(d));
        }
      }
    }
  }
  for (const auto& d : inv.devices)
    if (!IsDnsLabel(d.name)) return Status::Internal("device name \"" + d.name + "\" is not a DNS label");
  return inv;
}

namespace {

// The counter set a device consumes ("" for none).
std::string CounterSetOf(const json& device) {
  if (!device.contains("consumesCounters") || device["consumesCounters"].empty()) return "";
  return device["consumesCounters"][0].value("counterSet", "");
}

size_t CounterReferences(const json& device) {
  size_t n = 0;
  if (device.contains("consumesCounters"))
    for (const auto& c : device["consumesCounters"]) n += c.contains("counters") ? c["counters"].size() : 0;
  return n;
}

// 1.34: each card's counter set goes with the devices that consume it; whole groups are packed
// into slices in card order while the slice stays within 1.34's limits. Devices of no set (none
// today) go in groups of their own. One group over the limits by itself becomes one slice, which
// ValidateResourceSlice then refuses with the reason.
std::vector<json> CombinedSliceSpecs(const NodeInventory& inventory) {
  struct Group {
    json sets = json::array();
    json devices = json::array();
    size_t counters = 0, references = 0;
  };
  std::vector<Group> groups;
  std::map<std::string, size_t> group_of_set;
  for (const auto& set : inventory.counter_sets) {
    group_of_set[set.value("name", "")] = groups.size();
    Group g;
    g.counters = set.contains("counters") ? set["counters"].size() : 0;
    g.sets.push_back(set);
    groups.push_back(std::move(g));
  }
  for (const auto& d : inventory.devices) {
    auto it = group_of_set.find(CounterSetOf(d.entry));
    if (it == group_of_set.end()) {
      it = group_of_set.emplace(CounterSetOf(d.entry), groups.size()).first;
      groups.emplace_back();
    }
    Group& g = groups[it->second];
    g.references += CounterReferences(d.entry);
    g.devices.push_back(d.entry);
  }
  std::vector<json> specs;
  Group open;
  auto flush = [&] {
    if (open.sets.empty() && open.devices.empty()) return;
    json spec = {{"devices", open.devices}};
    if (!open.sets.empty()) spec["sharedCounters"] = open.sets;
    specs.push_back(std::move(spec));
    open = Group{};
  };
  for (auto& g : groups) {
    if (open.counters + g.counters > kMaxCountersPerSlice134 ||
        open.devices.size() + g.devices.size() > static_cast<size_t>(kMaxDevicesPerSlice) ||
        open.references + g.references > static_cast<size_t>(kMaxCounterConsumptionsPerSlice134))
      flush();
    for (auto& x : g.sets) open.sets.push_back(std::move(x));
    for (auto& x : g.devices) open.devices.push_back(std::move(x));
    open.counters += g.counters;
    open.references += g.references;
  }
  flush();
  return specs;
}

}  // namespace

StatusOr<std::vector<json>> BuildResourceSlices(const NodeInventory& inventory, const SliceTarget& target) {
  if (!IsDnsSubdomain(target.driver) || target.driver.size() > 63)
    return Status::InvalidArgument("driver", "\"" + target.driver + "\" is not a DNS subdomain of at most 63 characters");
  if (!IsDnsSubdomain(target.node_name))
    return Status::InvalidArgument("node", "\"" + target.node_name + "\" is not a node name");
  if (target.generation < 0) return Status::InvalidArgument("generation", "must be >= 0");
  const bool combined = inventory.layout == SliceLayout::kPartitionableCombined;
  std::vector<json> specs = combined ? CombinedSliceSpecs(inventory) : std::vector<json>{};
  for (size_t i = 0; !combined && i < inventory.counter_sets.size(); i += kMaxCounterSetsPerSlice) {
    json sets = json::array();
    for (size_t j = i; j < std::min(inventory.counter_sets.size(), i + kMaxCounterSetsPerSlice); ++j)
      sets.push_back(inventory.counter_sets[j]);
    specs.push_back({{"sharedCounters", sets}});
  }
  for (size_t i = 0; !combined && i < inventory.devices.size(); i += kMaxDevicesPerSliceWithTaintsOrCounters) {
    json devices = json::array();
    for (size_t j = i; j < std::min(inventory.devices.size(), i + kMaxDevicesPerSliceWithTaintsOrCounters); ++j)
      devices.push_back(inventory.devices[j].entry);
    specs.push_back({{"devices", devices}});
  }
  // A node without cards still publishes one empty slice: the pool exists and is complete.
  if (specs.empty()) specs.push_back({{"devices", json::array()}});
  std::vector<json> slices;
  for (size_t n = 0; n < specs.size(); ++n) {
    json spec = specs[n];
    spec["driver"] = target.driver;
    spec["nodeName"] = target.node_name;
    spec["pool"] = {{"name", target.node_name},
                    {"generation", target.generation},
                    {"resourceSliceCount", static_cast<int64_t>(specs.size())}};
    json meta = {{"name", target.node_name + "-" + target.driver + "-" + std::to_string(n)},
                 {"labels", {{"app.kubernetes.io/managed-by", "tideslice-dra-driver"}}}};
    if (meta["name"].get<std::string>().size() > 253)
      return Status::InvalidArgument("node", "node name \"" + target.node_name + "\" is too long for slice names");
    if (!target.node_uid.empty())
      meta["ownerReferences"] = json::array(
          {{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", target.node_name}, {"uid", target.node_uid}, {"controller", true}}});
    json slice = {{"apiVersion", "resource.k8s.io/v1"}, {"kind", "ResourceSlice"}, {"metadata", meta}, {"spec", spec}};
    Status valid = ValidateResourceSlice(slice, combined ? SliceRules::kCombined134 : SliceRules::kSplit135);
    if (!valid.ok()) return valid.WithContext("slice " + meta["name"].get<std::string>());
    slices.push_back(std::move(slice));
  }
  return slices;
}

Status ValidateResourceSlice(const json& slice, SliceRules rules) {
  const bool v134 = rules == SliceRules::kCombined134;
  auto bad = [](const std::string& field, const std::string& msg) { return Status::InvalidArgument(field, msg); };
  if (!slice.is_object() || !slice.contains("spec") || !slice["spec"].is_object()) return bad("spec", "missing");
  const json& spec = slice["spec"];
  const std::string driver = spec.value("driver", "");
  if (driver.size() > 63 || !IsDnsSubdomain(driver)) return bad("spec.driver", "\"" + driver + "\" is not a valid driver name");
  if (!spec.contains("pool") || !spec["pool"].is_object()) return bad("spec.pool", "missing");
  const json& pool = spec["pool"];
  const std::string pool_name = pool.value("name", "");
  if (pool_name.empty() || pool_name.size() > 253) return bad("spec.pool.name", "must be 1..253 characters");
  if (!pool.contains("generation") || !pool["generation"].is_number_integer() || pool["generation"].get<int64_t>() < 0)
    return bad("spec.pool.generation", "must be an integer >= 0");
  if (!pool.contains("resourceSliceCount") || !pool["resourceSliceCount"].is_number_integer() ||
      pool["resourceSliceCount"].get<int64_t>() <= 0)
    return bad("spec.pool.resourceSliceCount", "must be an integer > 0");
  if (!IsDnsSubdomain(spec.value("nodeName", ""))) return bad("spec.nodeName", "must be a node name");
  const bool has_devices = spec.contains("devices") && !spec["devices"].empty();
  const bool has_sets = spec.contains("sharedCounters") && !spec["sharedCounters"].empty();
  if (has_devices && has_sets && !v134)
    return bad("spec", "a slice carries either devices or sharedCounters, not both (1.35+)");
  std::set<std::string> set_names;
  size_t counters_in_slice = 0;
  if (has_sets) {
    const json& sets = spec["sharedCounters"];
    if (!v134 && sets.size() > kMaxCounterSetsPerSlice) return bad("spec.sharedCounters", "more than 8 counter sets");
    for (const auto& s : sets) {
      if (!IsDnsLabel(s.value("name", ""))) return bad("spec.sharedCounters[].name", "must be a DNS label");
      if (!set_names.insert(s.value("name", "")).second)
        return bad("spec.sharedCounters[].name", "\"" + s.value("name", "") + "\" twice");
      if (!s.contains("counters") || s["counters"].size() > kMaxCountersPerSet || s["counters"].empty())
        return bad("spec.sharedCounters[].counters", "needs 1..32 counters");
      for (const auto& [k, v] : s["counters"].items())
        if (!IsDnsLabel(k)) return bad("spec.sharedCounters[].counters", "counter \"" + k + "\" is not a DNS label");
      counters_in_slice += s["counters"].size();
    }
    if (v134 && counters_in_slice > kMaxCountersPerSlice134)
      return bad("spec.sharedCounters", std::to_string(counters_in_slice) +
                                            " counters in all sets of the slice, more than 32 (1.34)");
  }
  if (!spec.contains("devices")) return Status::Ok();
  const json& devices = spec["devices"];
  if (!devices.is_array()) return bad("spec.devices", "must be a list");
  bool any_taints_or_counters = false;
  size_t counter_references = 0;
  std::set<std::string> names;
  for (const auto& d : devices) {
    const std::string name = d.value("name", "");
    if (!IsDnsLabel(name)) return bad("spec.devices[].name", "\"" + name + "\" is not a DNS label");
    if (!names.insert(name).second) return bad("spec.devices[].name", "\"" + name + "\" twice");
    size_t keys = 0;
    for (const char* map : {"attributes", "capacity"}) {
      if (!d.contains(map)) continue;
      keys += d[map].size();
      for (const auto& [k, v] : d[map].items())
        if (!IsQualifiedName(k)) return bad(std::string("spec.devices[].") + map, "\"" + k + "\" is not a qualified name");
    }
    if (keys > kMaxAttributesAndCapacitiesPerDevice)
      return bad("spec.devices[" + name + "]", "more than 32 attributes and capacities");
    if (d.contains("attributes"))
      for (const auto& [k, v] : d["attributes"].items()) {
        if (!v.is_object() || v.size() != 1) return bad("attributes." + k, "needs exactly one of int, bool, string, version");
        if (v.contains("string") && v["string"].get<std::string>().size() > kMaxAttributeStringLength)
          return bad("attributes." + k, "longer than 64 characters");
      }
    const bool multi = d.value("allowMultipleAllocations", false);
    if (d.contains("capacity"))
      for (const auto& [k, v] : d["capacity"].items())
        if (v.contains("requestPolicy") && !multi)
          return bad("capacity." + k, "requestPolicy needs allowMultipleAllocations");
    if (d.contains("taints")) {
      any_taints_or_counters = true;
      if (d["taints"].size() > static_cast<size_t>(v134 ? kMaxTaintsPerDevice134 : kMaxTaintsPerDevice))
        return bad("spec.devices[].taints", v134 ? "more than 4 taints (1.34)" : "more than 16 taints");
    }
    if (d.contains("consumesCounters")) {
      any_taints_or_counters = true;
      if (d["consumesCounters"].size() > kMaxConsumesCountersPerDevice)
        return bad("spec.devices[].consumesCounters", "more than 2 entries");
      for (const auto& c : d["consumesCounters"]) {
        if (!IsDnsLabel(c.value("counterSet", ""))) return bad("consumesCounters[].counterSet", "must be a DNS label");
        if (!c.contains("counters") || c["counters"].size() > kMaxCountersPerSet)
          return bad("consumesCounters[].counters", "more than 32 counters");
        // 1.34 resolves a device's counter sets within its own slice only.
        if (v134 && !set_names.count(c.value("counterSet", "")))
          return bad("consumesCounters[].counterSet", "\"" + c.value("counterSet", "") + "\" of device \"" + name +
                                                          "\" is not in the same slice (1.34)");
        counter_references += c["counters"].size();
      }
    }
  }
  if (v134 && counter_references > static_cast<size_t>(kMaxCounterConsumptionsPerSlice134))
    return bad("spec.devices", std::to_string(counter_references) + " counter references, more than 1024 (1.34)");
  const size_t limit =
      any_taints_or_counters && !v134 ? kMaxDevicesPerSliceWithTaintsOrCounters : kMaxDevicesPerSlice;
  if (devices.size() > limit)
    return bad("spec.devices", std::to_string(devices.size()) + " devices, more than " + std::to_string(limit));
  return Status::Ok();
}

}  // namespace tideslice::dra
