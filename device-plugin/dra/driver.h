// The DRA driver's node side, without gRPC or HTTP: prepares and unprepares claims on this node's
// cards and keeps the inventory that the slices are built from. The gRPC services
// (dra_server.*) and the slice publisher (slice_publisher.*) sit on top; the backend, the
// partition ledger and the limiter files are the device plugin's own.
//
// Prepare of one claim: read it (ClaimFetcher), check and plan it (claim.h), create its hard
// partitions through the ledger (intent, partition, record), write the limiter's files for its
// soft shares (one limiter directory per claim and request: containers/<claim uid>/<request>/,
// shared by every container that uses that request), write its CDI spec, then the checkpoint.
// Any failure undoes what this claim made and becomes the claim's error. Everything is
// serialized (one mutex), as the kubelet expects of a driver.
//
// At start (Start): the checkpoint is read, interrupted partition creations resolved
// (RemoveOrphanPartitions), and whatever a crash left outside the checkpoint removed: ledger
// records, CDI files and limiter directories of claims the checkpoint does not list.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "common/status.h"
#include "device-plugin/backends/device_backend.h"
#include "device-plugin/dra/cdi_spec.h"
#include "device-plugin/dra/checkpoint.h"
#include "device-plugin/dra/claim.h"
#include "device-plugin/dra/resource_slices.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "device-plugin/plugin/partitions.h"

namespace tideslice::dra {

// The ResourceClaim's JSON, as the API server returns it for GET.
using ClaimFetcher = std::function<StatusOr<std::string>(const ClaimRef&)>;

struct DriverOptions {
  std::string driver = kDefaultDriverName;
  std::string node_name;
  std::string cdi_dir = kDefaultCdiDir;
  std::string checkpoint_path;                 // <plugin data dir>/checkpoint.json
  SliceLayout layout = SliceLayout::kPartitionable;
  uint64_t context_reserve_bytes = 0;          // the limiter's per-context reserve, as for the device plugin
};

struct ClaimOutcome {
  std::vector<PreparedDevice> devices;
  std::string error;                           // non-empty: the claim failed, and why
};

struct DriverCounters {
  uint64_t prepared = 0, prepare_errors = 0, unprepared = 0, unprepare_errors = 0;
};

class DraDriver {
 public:
  // `ledger` and `limiter` may be null: then claims that need partitions (resp. soft shares) fail
  // with a reason instead of being handed out unenforced.
  DraDriver(DriverOptions options, deviceplugin::DeviceBackend& backend, const catalog::Catalog& catalog,
            ClaimFetcher fetch, deviceplugin::PartitionLedger* ledger, deviceplugin::LimiterFiles* limiter);

  // Reads the checkpoint, discovers the cards and cleans up after a crash. Fails on an
  // unreadable checkpoint or when the backend cannot list the cards.
  Status Start();

  std::map<std::string, ClaimOutcome> Prepare(const std::vector<ClaimRef>& claims);
  std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims);

  // Asks the backend for the cards again; true when what the slices show changed (health,
  // cards, partition modes), and the inventory version moved on.
  StatusOr<bool> RefreshCards();

  NodeInventory Inventory() const;
  std::vector<deviceplugin::DeviceInfo> Cards() const;
  uint64_t inventory_version() const { return inventory_version_.load(); }
  Checkpoint Prepared() const;
  DriverCounters counters() const;
  const DriverOptions& options() const { return options_; }

 private:
  ClaimOutcome PrepareOne(const ClaimRef& ref);
  std::string UnprepareOne(const ClaimRef& ref);
  // Undoes what `claim` lists; what could not be undone stays in it. Returns the errors.
  std::vector<std::string> Undo(PreparedClaim& claim);
  Status SaveLocked();
  const deviceplugin::DeviceInfo* CardByUuid(const std::string& uuid) const;
  Status RebuildLocked(const std::vector<deviceplugin::DeviceInfo>& cards);

  DriverOptions options_;
  deviceplugin::DeviceBackend& backend_;
  const catalog::Catalog& catalog_;
  ClaimFetcher fetch_;
  deviceplugin::PartitionLedger* ledger_;
  deviceplugin::LimiterFiles* limiter_;

  mutable std::mutex mu_;
  std::vector<deviceplugin::DeviceInfo> cards_;
  NodeInventory inventory_;
  Checkpoint checkpoint_;
  DriverCounters counters_;
  std::atomic<uint64_t> inventory_version_{0};
};

// "dra/<claim uid>": the owner of a claim's partitions in the partition ledger.
std::string LedgerOwner(const std::string& claim_uid);

}  // namespace tideslice::dra
