// A backend that reads its cards from a JSON file, for tests, demos and development machines
// without accelerators. Health can be flipped at run time (SetHealth), which is how tests drive
// ListAndWatch updates; a backend made from a file also picks up "health" edits to that file.
//
// File format (JSON, or the same in YAML):
//   {"machine": {"name": "...", "interconnect": "nvswitch", "linksPerCard": 18, ...},   (optional)
//    "cards": [{"uuid": "GPU-0", "index": 0, "model": "H100-80G", "memoryMib": 81920,
//               "health": "Healthy", "numaNode": 0, "linkDomain": "nvl0",
//               "pciBusId": "0000:1b:00.0", "cpuAffinity": "0-55", "computeUnits": 132}, ...]}
// "model" must be a catalog model (or alias); vendor, default memory and compute units come
// from the catalog. "machine" describes the real machine a layout copies (deploy/examples/*.json);
// the mock only validates it, the tests build fake drivers from it.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

class MockBackend : public DeviceBackend {
 public:
  static StatusOr<std::unique_ptr<MockBackend>> FromJson(std::string_view json, const catalog::Catalog& catalog);
  static StatusOr<std::unique_ptr<MockBackend>> FromFile(const std::string& path, const catalog::Catalog& catalog);

  std::string Name() const override { return "mock"; }
  StatusOr<std::vector<DeviceInfo>> Discover() override;
  Status SetHealth(const std::string& uuid, bool healthy);

  // Partitions are remembered, not made: MIG-style UUIDs for NVIDIA cards, vNPU IDs from 100 for
  // Ascend. A profile the card's catalog model does not have is refused, as a driver would.
  StatusOr<std::string> CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) override;
  Status DestroyPartition(const DeviceInfo& card, const std::string& partition_id) override;
  StatusOr<std::vector<LivePartition>> ListPartitions(const DeviceInfo& card) override;
  std::vector<std::string> Partitions();  // "card/id", sorted
  void FailNextPartition(const std::string& reason);

 private:
  MockBackend(std::vector<DeviceInfo> devices, const catalog::Catalog& catalog)
      : devices_(std::move(devices)), catalog_(catalog) {}
  std::mutex mu_;
  std::vector<DeviceInfo> devices_;
  const catalog::Catalog& catalog_;
  static std::string FileStamp(const std::string& path);
  std::string path_;        // FromFile: re-read for health changes when it changes
  std::string file_stamp_;
  std::map<std::string, LivePartition> partitions_;  // by "card/id"
  int next_partition_ = 0;
  std::string fail_next_;
};

}  // namespace tideslice::deviceplugin
