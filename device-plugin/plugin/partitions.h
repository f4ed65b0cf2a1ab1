// Hard partitions (MIG instances, vNPUs) the agent created for containers, remembered in a small
// JSON file beside the kubelet sockets so that an agent restart does not leak them, and released
// when the kubelet no longer reports the pod (PodResources API).
//
// A partition's ID is known only once the driver made it, so a crash between creating it and
// recording it would leak it. The ledger therefore first records an intent (card, profile, start
// slot, pod) and turns it into a record once the ID is known; an intent still open at start is
// an interrupted creation, resolved by RemoveOrphanPartitions.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "device-plugin/backends/device_backend.h"
#include "device-plugin/plugin/pod_resources.h"

namespace tideslice::deviceplugin {

struct PartitionRecord {
  std::string pod_key;        // namespace/name
  std::string container;
  std::string card_uuid;
  std::string partition_id;
  int64_t created_unix = 0;   // seconds; young records are spared by the reconciler

  bool operator==(const PartitionRecord&) const = default;
};

// "About to create this partition": written before the backend is asked.
struct PartitionIntent {
  uint64_t id = 0;            // assigned by the ledger
  std::string card_uuid;
  std::string kind;           // "mig" or "vnpu"
  std::string profile;        // MIG profile / vNPU template
  int start_slot = -1;        // MIG placement the scheduler chose; -1 = driver's choice
  std::string pod_key;        // namespace/name
  std::string container;
  int64_t created_unix = 0;
  // The partitions on the card just before, when the backend could list them: whatever appears
  // besides these and matches is the one this intent made (a vNPU's ID is the driver's choice).
  std::optional<std::vector<std::string>> existing;

  bool operator==(const PartitionIntent&) const = default;
};

class PartitionLedger {
 public:
  // `path` empty: memory only. A file that exists but does not parse is an error that names it:
  // guessing would leak or destroy partitions.
  static StatusOr<std::unique_ptr<PartitionLedger>> Open(const std::string& path);

  // Every change is on disk (file and directory entry synced) before it returns.
  Status Add(const PartitionRecord& record);
  Status Remove(const PartitionRecord& record);
  std::vector<PartitionRecord> All() const;

  // Records `intent` with a fresh ID, which it returns.
  StatusOr<uint64_t> AddIntent(PartitionIntent intent);
  // Replaces the intent by the record of what it made, in one write.
  Status CompleteIntent(uint64_t intent_id, const PartitionRecord& record);
  Status DropIntent(uint64_t intent_id);
  std::vector<PartitionIntent> Intents() const;

 private:
  explicit PartitionLedger(std::string path) : path_(std::move(path)) {}
  Status Save() const;
  std::string path_;
  mutable std::mutex mu_;
  std::vector<PartitionRecord> records_;
  std::vector<PartitionIntent> intents_;
  uint64_t next_intent_ = 1;
};

// Creates a partition for `pod_key`/`container` the crash-safe way: intent, backend, record.
// On any failure nothing is left behind (the partition destroyed, the intent dropped) as far as
// the driver allows; what a crash leaves is an intent for RemoveOrphanPartitions.
// The intent recorded before creating `profile` on `card`: what to look for after a crash, with
// the partitions already on the card when the backend can list them.
PartitionIntent IntentToCreate(DeviceBackend& backend, const DeviceInfo& card, const std::string& profile,
                               int start_slot, const std::string& pod_key, const std::string& container,
                               int64_t now_unix);

StatusOr<PartitionRecord> CreateRecordedPartition(PartitionLedger& ledger, DeviceBackend& backend,
                                                  const DeviceInfo& card, const std::string& profile, int start_slot,
                                                  const std::string& pod_key, const std::string& container,
                                                  int64_t now_unix);

struct OrphanReport {
  int removed = 0;                  // partitions destroyed
  int dropped = 0;                  // intents resolved (with or without a partition to destroy)
  std::vector<std::string> errors;  // intents kept for the next start, and why
};

// At agent start: every open intent is an interrupted creation. The partition it describes (same
// card and profile; for MIG the same start slot; not one a record or the intent's `existing` list
// names) is destroyed if the driver has it, then the intent is dropped. A partition the ledger
// cannot tell apart from one an administrator made is never destroyed: the intent is dropped
// with a warning naming the candidates. Intents whose card is missing or whose backend cannot
// list partitions stay for the next start. Everything it does or keeps is also logged.
OrphanReport RemoveOrphanPartitions(PartitionLedger& ledger, DeviceBackend& backend,
                                    const std::vector<DeviceInfo>& cards);

struct ReconcileReport {
  int released = 0;
  std::vector<std::string> errors;  // one line per partition that could not be destroyed
};

// Destroys the partitions of pods the kubelet no longer lists (`live`), except records younger
// than `grace` (the kubelet records a pod's devices only after Allocate returns). Records whose
// card is gone from the node are dropped: there is nothing left to destroy.
ReconcileReport ReleaseGonePartitions(PartitionLedger& ledger, DeviceBackend& backend,
                                      const std::vector<DeviceInfo>& cards, const std::vector<ContainerDevices>& live,
                                      std::chrono::system_clock::time_point now, std::chrono::seconds grace);

}  // namespace tideslice::deviceplugin
