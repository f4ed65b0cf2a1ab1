#include "device-plugin/backends/mock_backend.h"

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/codec/yaml_json.h"
#include "device-plugin/backends/host_topology.h"

namespace tideslice::deviceplugin {

StatusOr<std::unique_ptr<MockBackend>> MockBackend::FromJson(std::string_view text, const catalog::Catalog& catalog) {
  using nlohmann::json;
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (root.is_discarded() || !root.is_object())
    return Status::InvalidArgument("mock config", "is not a JSON object with \"cards\"");
  for (auto it = root.begin(); it != root.end(); ++it)
    if (it.key() != "cards" && it.key() != "machine")
      return Status::InvalidArgument("mock config." + it.key(), "unknown key; only \"cards\" and \"machine\"");
  // "machine" describes the real machine a layout copies (deploy/examples): read by people and by
  // the tests that build a fake driver from the layout; the mock itself uses none of it.
  if (auto m = root.find("machine"); m != root.end()) {
    if (!m->is_object()) return Status::InvalidArgument("mock config.machine", "must be an object");
    for (auto it = m->begin(); it != m->end(); ++it) {
      const std::string at = "mock config.machine." + it.key();
      if (it.key() == "name" || it.key() == "description") {
        if (!it->is_string()) return Status::InvalidArgument(at, "must be a string");
      } else if (it.key() == "interconnect") {
        static const std::set<std::string> kinds = {"nvswitch", "nvlink-bridge", "pcie", "hccs"};
        if (!it->is_string() || !kinds.count(it->get<std::string>()))
          return Status::InvalidArgument(at, "must be nvswitch, nvlink-bridge, pcie or hccs");
      } else if (it.key() == "linksPerCard") {
        if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 36)
          return Status::InvalidArgument(at, "must be a whole number 0..36");
      } else if (it.key() == "sources") {
        if (!it->is_array()) return Status::InvalidArgument(at, "must be a list of strings");
        for (const auto& x : *it)
          if (!x.is_string()) return Status::InvalidArgument(at, "must be a list of strings");
      } else {
        return Status::InvalidArgument(at, "unknown key; machine has name, description, interconnect, linksPerCard, sources");
      }
    }
  }
  auto cards = root.find("cards");
  if (cards == root.end() || !cards->is_array() || cards->empty())
    return Status::InvalidArgument("mock config.cards", "must be a non-empty list of cards");
  std::vector<DeviceInfo> devices;
  std::set<std::string> uuids;
  std::set<int> indexes;
  const std::set<std::string> allowed = {"uuid",     "index",      "model",      "memoryMib",   "health",
                                         "numaNode", "linkDomain", "pciBusId",   "cpuAffinity", "computeUnits"};
  for (size_t i = 0; i < cards->size(); ++i) {
    const json& c = (*cards)[i];
    const std::string at = "mock config.cards[" + std::to_string(i) + "]";
    if (!c.is_object()) return Status::InvalidArgument(at, "must be an object");
    for (auto it = c.begin(); it != c.end(); ++it)
      if (!allowed.count(it.key())) return Status::InvalidArgument(at + "." + it.key(), "unknown key");
    DeviceInfo d;
    auto str = [&](const char* key, std::string& out, bool required) -> Status {
      auto f = c.find(key);
      if (f == c.end()) return required ? Status::InvalidArgument(at + "." + key, "is required") : Status::Ok();
      if (!f->is_string() || f->get<std::string>().empty())
        return Status::InvalidArgument(at + "." + key, "must be a non-empty string");
      out = f->get<std::string>();
      return Status::Ok();
    };
    auto num = [&](const char* key, int64_t& out, int64_t lo, int64_t hi) -> Status {
      auto f = c.find(key);
      if (f == c.end()) return Status::Ok();
      if (!f->is_number_integer() || f->get<int64_t>() < lo || f->get<int64_t>() > hi)
        return Status::InvalidArgument(at + "." + key, "must be a whole number in " + std::to_string(lo) + ".." +
                                                           std::to_string(hi));
      out = f->get<int64_t>();
      return Status::Ok();
    };
    TS_RETURN_IF_ERROR(str("uuid", d.uuid, true));
    std::string model_name, health = "Healthy";
    TS_RETURN_IF_ERROR(str("model", model_name, true));
    TS_RETURN_IF_ERROR(str("health", health, false));
    TS_RETURN_IF_ERROR(str("linkDomain", d.link_domain, false));
    std::string bus, cpus;
    TS_RETURN_IF_ERROR(str("pciBusId", bus, false));
    TS_RETURN_IF_ERROR(str("cpuAffinity", cpus, false));
    if (!bus.empty()) {
      d.pci_bus_id = CanonicalPciAddress(bus);
      if (d.pci_bus_id.empty())
        return Status::InvalidArgument(at + ".pciBusId", "\"" + bus + "\" is not a PCI address such as 0000:17:00.0");
    }
    if (!cpus.empty() && !ParseCpuList(cpus, &d.cpu_affinity))
      return Status::InvalidArgument(at + ".cpuAffinity", "\"" + cpus + "\" is not a CPU list such as 0-23,48-71");
    int64_t index = static_cast<int64_t>(i), numa = -1, memory = 0, units = 0;
    TS_RETURN_IF_ERROR(num("index", index, 0, 1023));
    TS_RETURN_IF_ERROR(num("numaNode", numa, -1, 1023));
    TS_RETURN_IF_ERROR(num("memoryMib", memory, 1, int64_t{1} << 30));
    TS_RETURN_IF_ERROR(num("computeUnits", units, 0, 100000));
    const auto* model = catalog.Find(model_name);
    if (!model) return Status::InvalidArgument(at + ".model", "unknown card model \"" + model_name + "\"; see docs/catalog.md");
    if (health != "Healthy" && health != "Unhealthy")
      return Status::InvalidArgument(at + ".health", "must be \"Healthy\" or \"Unhealthy\"");
    if (!uuids.insert(d.uuid).second) return Status::InvalidArgument(at + ".uuid", "duplicates " + d.uuid);
    if (!indexes.insert(static_cast<int>(index)).second)
      return Status::InvalidArgument(at + ".index", "duplicates index " + std::to_string(index));
    d.index = static_cast<int>(index);
    d.numa_node = static_cast<int>(numa);
    d.model = model->name;
    d.vendor = model->vendor;
    d.memory_mib = memory > 0 ? memory : model->memory_mib;
    d.compute_units = units > 0 ? static_cast<int>(units) : model->compute_units;
    d.healthy = health == "Healthy";
    devices.push_back(std::move(d));
  }
  return std::unique_ptr<MockBackend>(new MockBackend(std::move(devices), catalog));
}

StatusOr<std::unique_ptr<MockBackend>> MockBackend::FromFile(const std::string& path, const catalog::Catalog& catalog) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("--mock-config: cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  // JSON or YAML (YAML is read into the same JSON form, then validated the same way).
  std::string text = ss.str();
  if (nlohmann::json::parse(text, nullptr, false, true).is_discarded()) {
    auto converted = codec::YamlToJson(text, "--mock-config " + path);
    if (!converted.ok()) return converted.status();
    text = converted->dump();
  }
  auto b = FromJson(text, catalog);
  if (!b.ok()) return b.status().WithContext(path);
  (*b)->path_ = path;
  (*b)->file_stamp_ = FileStamp(path);
  return b;
}

std::string MockBackend::FileStamp(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" + std::to_string(st.st_size);
}

StatusOr<std::vector<DeviceInfo>> MockBackend::Discover() {
  std::lock_guard<std::mutex> lock(mu_);
  // Editing the file flips health at run time (for demos): only "health" is taken from the new
  // version; a file that no longer parses is ignored and the last good state kept.
  if (!path_.empty()) {
    std::string stamp = FileStamp(path_);
    if (!stamp.empty() && stamp != file_stamp_) {
      file_stamp_ = stamp;
      std::ifstream in(path_);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      if (nlohmann::json::parse(text, nullptr, false, true).is_discarded()) {
        auto converted = codec::YamlToJson(text, path_);
        text = converted.ok() ? converted->dump() : "";
      }
      auto fresh = FromJson(text, catalog_);
      if (fresh.ok())
        for (const auto& f : (*fresh)->devices_)
          for (auto& d : devices_)
            if (d.uuid == f.uuid) d.healthy = f.healthy;
    }
  }
  return devices_;
}

Status MockBackend::SetHealth(const std::string& uuid, bool healthy) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& d : devices_) {
    if (d.uuid == uuid) {
      d.healthy = healthy;
      return Status::Ok();
    }
  }
  return Status::NotFound("no card with uuid " + uuid);
}

StatusOr<std::string> MockBackend::CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_next_.empty()) {
    std::string why = fail_next_;
    fail_next_.clear();
    return Status::ResourceExhausted("creating " + profile + " on " + card.uuid + " failed: " + why);
  }
  const auto* model = catalog_.Find(card.model);
  if (!model || !model->FindProfile(profile))
    return Status::InvalidArgument("profile", "card " + card.uuid + " (" + card.model + ") has no profile \"" + profile + "\"");
  int n = next_partition_++;
  std::string id = card.vendor == "huawei" ? std::to_string(100 + n)
                                           : "MIG-" + card.uuid + "-" + std::to_string(start_slot) + "-" + std::to_string(n);
  partitions_[card.uuid + "/" + id] = LivePartition{id, profile, start_slot};
  return id;
}

Status MockBackend::DestroyPartition(const DeviceInfo& card, const std::string& partition_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!partitions_.erase(card.uuid + "/" + partition_id))
    return Status::NotFound("card " + card.uuid + " has no partition " + partition_id);
  return Status::Ok();
}

StatusOr<std::vector<LivePartition>> MockBackend::ListPartitions(const DeviceInfo& card) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LivePartition> out;
  const std::string prefix = card.uuid + "/";
  for (const auto& [key, p] : partitions_)
    if (key.compare(0, prefix.size(), prefix) == 0) out.push_back(p);
  return out;
}

std::vector<std::string> MockBackend::Partitions() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, p] : partitions_) out.push_back(key);
  return out;
}

void MockBackend::FailNextPartition(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_next_ = reason;
}

}  // namespace tideslice::deviceplugin
