#include "device-plugin/plugin/partitions.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace tideslice::deviceplugin {

using nlohmann::json;

StatusOr<std::unique_ptr<PartitionLedger>> PartitionLedger::Open(const std::string& path) {
  std::unique_ptr<PartitionLedger> ledger(new PartitionLedger(path));
  if (path.empty() || !std::filesystem::exists(path)) return ledger;
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  json root = json::parse(ss.str(), nullptr, false);
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("partition ledger", path + " " + why +
                                                           "; fix or remove it after checking which partitions exist "
                                                           "(nvidia-smi mig -lgi / npu-smi info)");
  };
  if (!root.is_object() || !root.contains("partitions") || !root["partitions"].is_array())
    return bad("is not {\"partitions\": [...]}");
  for (const auto& r : root["partitions"]) {
    if (!r.is_object()) return bad("has an entry that is not an object");
    PartitionRecord rec;
    try {
      rec.pod_key = r.at("pod").get<std::string>();
      rec.container = r.at("container").get<std::string>();
      rec.card_uuid = r.at("card").get<std::string>();
      rec.partition_id = r.at("partition").get<std::string>();
      rec.created_unix = r.at("created").get<int64_t>();
    } catch (const std::exception& e) {
      return bad(std::string("has a malformed entry: ") + e.what());
    }
    ledger->records_.push_back(std::move(rec));
  }
  return ledger;
}

Status PartitionLedger::Save() const {
  if (path_.empty()) return Status::Ok();
  json arr = json::array();
  for (const auto& r : records_)
    arr.push_back({{"pod", r.pod_key}, {"container", r.container}, {"card", r.card_uuid},
                   {"partition", r.partition_id}, {"created", r.created_unix}});
  // Write a temp file and rename: a crash mid-write leaves the old ledger, never half a file.
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json{{"partitions", arr}}.dump(1) << "\n";
    out.flush();
    if (!out) return Status::Unavailable("cannot write the partition ledger " + tmp);
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0)
    return Status::Unavailable("cannot replace the partition ledger " + path_);
  return Status::Ok();
}

Status PartitionLedger::Add(const PartitionRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  records_.push_back(record);
  Status s = Save();
  if (!s.ok()) records_.pop_back();
  return s;
}

Status PartitionLedger::Remove(const PartitionRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(records_.begin(), records_.end(), record);
  if (it == records_.end()) return Status::Ok();
  PartitionRecord saved = *it;
  records_.erase(it);
  Status s = Save();
  if (!s.ok()) records_.push_back(saved);
  return s;
}

std::vector<PartitionRecord> PartitionLedger::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_;
}

ReconcileReport ReleaseGonePartitions(PartitionLedger& ledger, DeviceBackend& backend,
                                      const std::vector<DeviceInfo>& cards, const std::vector<ContainerDevices>& live,
                                      std::chrono::system_clock::time_point now, std::chrono::seconds grace) {
  ReconcileReport report;
  auto records = ledger.All();
  std::set<std::string> owners;
  for (const auto& r : records) owners.insert(r.pod_key);
  auto gone_list = PodsGone(owners, live);
  std::set<std::string> gone(gone_list.begin(), gone_list.end());
  std::map<std::string, const DeviceInfo*> by_uuid;
  for (const auto& c : cards) by_uuid[c.uuid] = &c;
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  for (const auto& r : records) {
    if (!gone.count(r.pod_key) || now_s - r.created_unix < grace.count()) continue;
    auto card = by_uuid.find(r.card_uuid);
    if (card != by_uuid.end()) {
      Status s = backend.DestroyPartition(*card->second, r.partition_id);
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        report.errors.push_back(r.pod_key + " " + r.partition_id + ": " + s.ToString());
        continue;  // keep the record; try again next round
      }
    }
    Status s = ledger.Remove(r);
    if (!s.ok()) report.errors.push_back(s.ToString());
    else report.released++;
  }
  return report;
}

}  // namespace tideslice::deviceplugin
