// The one small interface between the node agent and a vendor's driver library. Vendor code sees
// our DeviceInfo, never Kubernetes objects; the kubelet side sees only this interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tideslice::deviceplugin {

struct DeviceInfo {
  std::string uuid;
  int index = 0;
  std::string vendor;       // "nvidia", "huawei", ...
  std::string model;        // catalog model name
  int64_t memory_mib = 0;
  bool healthy = true;
  int numa_node = -1;
  std::string link_domain;
  bool mig_enabled = false;   // NVIDIA MIG mode is on: the card is handed out as MIG instances
  // MIG mode changes at the next GPU reset: the driver holds a pending mode that differs from
  // the current one (nvmlDeviceGetMigMode). The card keeps its current mode until then.
  bool mig_reset_pending = false;
  // Why the card is unhealthy, for people ("XID 79", "double-bit ECC error", "fault code
  // 0x40F84E00"); empty when healthy or when the backend cannot tell.
  std::string health_reason;
  // Where the card sits, for topology-aware placement and for DRA ResourceSlices. Empty/0 where
  // the backend cannot tell.
  std::string pci_bus_id;      // "0000:17:00.0": sysfs form (4-digit domain, lower-case hex)
  std::string cpu_affinity;    // the host CPUs near the card, as a Linux cpulist ("0-23,48-71")
  int compute_units = 0;       // streaming multiprocessors (NVIDIA) or AI Cores (Ascend)
  std::string driver_version;  // the vendor driver's version string
  // Hard partition profiles (vNPU templates) this very chip can create, where the backend knows
  // them better than the catalog model does (Ascend boards of one model differ). Empty = the
  // catalog model's profiles.
  std::vector<std::string> partition_profiles;
  // Live telemetry, where the backend can read it (negative = unknown).
  int64_t memory_used_mib = -1;
  double utilization_ratio = -1;   // 0..1
  double temperature_celsius = -1;
  double power_watts = -1;

  bool operator==(const DeviceInfo&) const = default;
};

// Memory one process uses on one card, as the driver reports it.
struct ProcessUsage {
  std::string card_uuid;
  uint32_t pid = 0;
  int64_t memory_bytes = 0;
};

// A hard partition that exists on a card now, whoever made it (the agent or an administrator).
struct LivePartition {
  std::string id;        // as CreatePartition returns it: MIG device UUID, vNPU ID
  std::string profile;   // catalog profile / vNPU template name
  int start_slot = -1;   // MIG placement start; -1 where unknown or not MIG

  bool operator==(const LivePartition&) const = default;
};

// What asking the driver to switch MIG mode did.
enum class MigModeChange {
  kApplied,       // current mode is the requested one now
  kPendingReset,  // the driver accepted it; it takes effect at the next GPU reset or reboot
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual std::string Name() const = 0;
  // The cards on this node now, health included. Errors mean "could not ask", not "no cards".
  virtual StatusOr<std::vector<DeviceInfo>> Discover() = 0;
  // Processes using the cards now, where the driver can tell (empty otherwise). The agent maps
  // PIDs to pods through /proc/<pid>/cgroup, so it needs the host's PID namespace.
  virtual StatusOr<std::vector<ProcessUsage>> Processes() { return std::vector<ProcessUsage>{}; }

  // Hard partitions made for one container at Allocate time: an NVIDIA MIG instance or an Ascend
  // vNPU. `profile` is the catalog's profile/template name; `start_slot` the MIG placement the
  // scheduler chose (-1 = driver's choice). Returns the partition's ID as the container runtime
  // wants it: a MIG device UUID for NVIDIA_VISIBLE_DEVICES, a vNPU ID for ASCEND_VISIBLE_DEVICES.
  // Backends that cannot partition say so rather than hand out a whole card.
  virtual StatusOr<std::string> CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) {
    (void)start_slot;
    return Status::FailedPrecondition("the " + Name() + " backend cannot create " + profile + " partitions on " +
                                      card.uuid);
  }
  virtual Status DestroyPartition(const DeviceInfo& card, const std::string& partition_id) {
    return Status::FailedPrecondition("the " + Name() + " backend cannot destroy partition " + partition_id + " on " +
                                      card.uuid);
  }
  // The partitions on `card` now. The agent asks at start for partitions whose creation was
  // interrupted before their ID reached the ledger; a backend that cannot tell says so, and such
  // partitions are then left alone rather than guessed at.
  virtual StatusOr<std::vector<LivePartition>> ListPartitions(const DeviceInfo& card) {
    return Status::FailedPrecondition("the " + Name() + " backend cannot list the partitions on " + card.uuid);
  }
  // Switches NVIDIA MIG mode on one card. The caller makes sure the card is empty (no processes,
  // no partitions, nothing allocated); the driver may still refuse (FailedPrecondition with its
  // reason, e.g. processes it sees that the caller does not).
  virtual StatusOr<MigModeChange> SetMigMode(const DeviceInfo& card, bool enabled) {
    return Status::FailedPrecondition("the " + Name() + " backend cannot " + (enabled ? "enable" : "disable") +
                                      " MIG mode on " + card.uuid);
  }
};

}  // namespace tideslice::deviceplugin
