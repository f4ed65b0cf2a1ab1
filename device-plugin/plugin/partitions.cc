#include "device-plugin/plugin/partitions.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/log/log.h"

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
  // Ledgers written before intents existed have none.
  if (root.contains("intents")) {
    if (!root["intents"].is_array()) return bad("has \"intents\" that is not an array");
    for (const auto& r : root["intents"]) {
      if (!r.is_object()) return bad("has an intent that is not an object");
      PartitionIntent in;
      try {
        in.id = r.at("id").get<uint64_t>();
        in.card_uuid = r.at("card").get<std::string>();
        in.kind = r.at("kind").get<std::string>();
        in.profile = r.at("profile").get<std::string>();
        in.start_slot = r.at("slot").get<int>();
        in.pod_key = r.at("pod").get<std::string>();
        in.container = r.at("container").get<std::string>();
        in.created_unix = r.at("created").get<int64_t>();
        if (r.contains("existing")) in.existing = r.at("existing").get<std::vector<std::string>>();
      } catch (const std::exception& e) {
        return bad(std::string("has a malformed intent: ") + e.what());
      }
      ledger->next_intent_ = std::max(ledger->next_intent_, in.id + 1);
      ledger->intents_.push_back(std::move(in));
    }
  }
  return ledger;
}

namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Temp file, fsync, rename, fsync of the directory: after a crash (of the agent or the node) the
// ledger is the old one or the new one, never half a file, and a change reported done is on
// disk. Without the syncs a power loss could undo the rename or leave an empty file behind it.
Status WriteDurably(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unavailable(Errno("cannot write the partition ledger " + tmp));
  auto fail = [&](const std::string& what) {
    Status s = Status::Unavailable(Errno(what + " " + tmp));
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write the partition ledger");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot sync the partition ledger");
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0) return fail("cannot close the partition ledger");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot replace the partition ledger with");
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::Unavailable(Errno("cannot open the partition ledger's directory " + dir));
  int synced = ::fsync(dfd);
  Status s = synced == 0 ? Status::Ok() : Status::Unavailable(Errno("cannot sync the directory " + dir));
  ::close(dfd);
  return s;
}

}  // namespace

Status PartitionLedger::Save() const {
  if (path_.empty()) return Status::Ok();
  json arr = json::array();
  for (const auto& r : records_)
    arr.push_back({{"pod", r.pod_key}, {"container", r.container}, {"card", r.card_uuid},
                   {"partition", r.partition_id}, {"created", r.created_unix}});
  json intents = json::array();
  for (const auto& in : intents_) {
    json j = {{"id", in.id},           {"card", in.card_uuid}, {"kind", in.kind},
              {"profile", in.profile}, {"slot", in.start_slot}, {"pod", in.pod_key},
              {"container", in.container}, {"created", in.created_unix}};
    if (in.existing) j["existing"] = *in.existing;
    intents.push_back(std::move(j));
  }
  return WriteDurably(path_, json{{"partitions", arr}, {"intents", intents}}.dump(1) + "\n");
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

StatusOr<uint64_t> PartitionLedger::AddIntent(PartitionIntent intent) {
  std::lock_guard<std::mutex> lock(mu_);
  intent.id = next_intent_;
  intents_.push_back(std::move(intent));
  Status s = Save();
  if (!s.ok()) {
    intents_.pop_back();
    return s;
  }
  return next_intent_++;
}

Status PartitionLedger::CompleteIntent(uint64_t intent_id, const PartitionRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  auto saved_intents = intents_;
  std::erase_if(intents_, [&](const PartitionIntent& in) { return in.id == intent_id; });
  records_.push_back(record);
  Status s = Save();
  if (!s.ok()) {
    records_.pop_back();
    intents_ = std::move(saved_intents);
  }
  return s;
}

Status PartitionLedger::DropIntent(uint64_t intent_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto saved_intents = intents_;
  if (std::erase_if(intents_, [&](const PartitionIntent& in) { return in.id == intent_id; }) == 0) return Status::Ok();
  Status s = Save();
  if (!s.ok()) intents_ = std::move(saved_intents);
  return s;
}

std::vector<PartitionIntent> PartitionLedger::Intents() const {
  std::lock_guard<std::mutex> lock(mu_);
  return intents_;
}

PartitionIntent IntentToCreate(DeviceBackend& backend, const DeviceInfo& card, const std::string& profile,
                               int start_slot, const std::string& pod_key, const std::string& container,
                               int64_t now_unix) {
  PartitionIntent intent;
  intent.card_uuid = card.uuid;
  intent.kind = card.vendor == "huawei" ? "vnpu" : "mig";
  intent.profile = profile;
  intent.start_slot = start_slot;
  intent.pod_key = pod_key;
  intent.container = container;
  intent.created_unix = now_unix;
  if (auto live = backend.ListPartitions(card); live.ok()) {
    intent.existing.emplace();
    for (const auto& p : *live) intent.existing->push_back(p.id);
  }
  return intent;
}

StatusOr<PartitionRecord> CreateRecordedPartition(PartitionLedger& ledger, DeviceBackend& backend,
                                                  const DeviceInfo& card, const std::string& profile, int start_slot,
                                                  const std::string& pod_key, const std::string& container,
                                                  int64_t now_unix) {
  const PartitionIntent intent = IntentToCreate(backend, card, profile, start_slot, pod_key, container, now_unix);
  auto intent_id = ledger.AddIntent(intent);
  if (!intent_id.ok()) return intent_id.status().WithContext("recording the intent to create " + profile + " on " + card.uuid);
  auto id = backend.CreatePartition(card, profile, start_slot);
  if (!id.ok()) {
    (void)ledger.DropIntent(*intent_id);  // if this fails, the start-up reconcile finds nothing and drops it
    return id.status();
  }
  PartitionRecord record{pod_key, container, card.uuid, *id, now_unix};
  Status recorded = ledger.CompleteIntent(*intent_id, record);
  if (!recorded.ok()) {
    // Without a record nothing would ever release it; the intent stays if the destroy fails,
    // so the next start tries again.
    if (backend.DestroyPartition(card, *id).ok()) (void)ledger.DropIntent(*intent_id);
    return recorded;
  }
  return record;
}

OrphanReport RemoveOrphanPartitions(PartitionLedger& ledger, DeviceBackend& backend,
                                    const std::vector<DeviceInfo>& cards) {
  OrphanReport report;
  std::map<std::string, const DeviceInfo*> by_uuid;
  for (const auto& c : cards) by_uuid[c.uuid] = &c;
  std::map<std::string, std::set<std::string>> recorded;  // card -> partition IDs in records
  for (const auto& r : ledger.All()) recorded[r.card_uuid].insert(r.partition_id);
  // Logged as well as returned: at start-up nobody else reads the report.
  auto kept = [&](const std::string& why) {
    log::Warn("partition.orphan_kept", why);
    report.errors.push_back(why);
  };
  auto resolved = [&](const PartitionIntent& in) {
    Status s = ledger.DropIntent(in.id);
    if (s.ok()) report.dropped++;
    else kept(s.ToString());
  };
  for (const auto& in : ledger.Intents()) {
    const std::string what = in.profile + " on " + in.card_uuid + " for " + in.pod_key + "/" + in.container;
    auto card = by_uuid.find(in.card_uuid);
    if (card == by_uuid.end()) {
      kept("interrupted creation of " + what + ": the card is not on the node now; kept for the next start");
      continue;
    }
    auto live = backend.ListPartitions(*card->second);
    if (!live.ok()) {
      kept("interrupted creation of " + what + ": " + live.status().ToString() + "; kept for the next start");
      continue;
    }
    const bool by_slot = in.kind == "mig" && in.start_slot >= 0;
    std::set<std::string> before;
    if (in.existing) before.insert(in.existing->begin(), in.existing->end());
    std::vector<LivePartition> candidates;
    for (const auto& p : *live) {
      if (p.profile != in.profile || recorded[in.card_uuid].count(p.id) || before.count(p.id)) continue;
      if (by_slot && p.start_slot != in.start_slot) continue;
      candidates.push_back(p);
    }
    if (candidates.empty()) {  // the driver never made it (or it is gone already)
      resolved(in);
      continue;
    }
    // One candidate identifies the partition when the slot pins it down (two MIG instances cannot
    // share a start slot) or when it appeared after the intent's list of what was there. Anything
    // else could be an administrator's and is left alone.
    if (candidates.size() > 1 || (!by_slot && !in.existing)) {
      std::string ids;
      for (const auto& p : candidates) ids += (ids.empty() ? "" : ", ") + p.id;
      log::Warn("partition.orphan_ambiguous",
                "an interrupted partition creation cannot be told apart from partitions it may not have made; "
                "none destroyed, check them by hand",
                {{"card", in.card_uuid}, {"profile", in.profile}, {"pod", in.pod_key}, {"candidates", ids}});
      resolved(in);
      continue;
    }
    const LivePartition& orphan = candidates.front();
    Status s = backend.DestroyPartition(*card->second, orphan.id);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      kept("orphan " + orphan.id + " (" + what + "): " + s.ToString() + "; kept for the next start");
      continue;
    }
    log::Warn("partition.orphan_removed", "destroyed a partition whose creation the agent did not finish recording",
              {{"card", in.card_uuid}, {"partition", orphan.id}, {"profile", in.profile},
               {"slot", std::to_string(in.start_slot)}, {"pod", in.pod_key}, {"container", in.container}});
    report.removed++;
    resolved(in);
  }
  return report;
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
