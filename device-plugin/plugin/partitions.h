// Hard partitions (MIG instances, vNPUs) the agent created for containers, remembered in a small
// JSON file beside the kubelet sockets so that an agent restart does not leak them, and released
// when the kubelet no longer reports the pod (PodResources API).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
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

class PartitionLedger {
 public:
  // `path` empty: memory only. A file that exists but does not parse is an error that names it:
  // guessing would leak or destroy partitions.
  static StatusOr<std::unique_ptr<PartitionLedger>> Open(const std::string& path);

  Status Add(const PartitionRecord& record);     // written through before returning
  Status Remove(const PartitionRecord& record);
  std::vector<PartitionRecord> All() const;

 private:
  explicit PartitionLedger(std::string path) : path_(std::move(path)) {}
  Status Save() const;
  std::string path_;
  mutable std::mutex mu_;
  std::vector<PartitionRecord> records_;
};

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
