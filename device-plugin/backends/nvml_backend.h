// NVIDIA backend: NVML loaded with dlopen at run time (no build-time NVIDIA dependency), behind a
// table of function pointers so that tests can drive every parsing and error path with fakes.
// Signatures follow the NVML C API (nvml.h): return codes are nvmlReturn_t (0 = NVML_SUCCESS),
// device handles are opaque pointers.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

namespace nvml {
inline constexpr int kSuccess = 0;
inline constexpr int kErrorInvalidArgument = 2;
inline constexpr int kErrorNotSupported = 3;
inline constexpr int kErrorNoPermission = 4;
inline constexpr int kErrorInsufficientSize = 7;
inline constexpr int kErrorDriverNotLoaded = 9;
inline constexpr int kErrorGpuIsLost = 15;
inline constexpr int kErrorResetRequired = 16;
inline constexpr int kErrorInUse = 19;
inline constexpr int kErrorNotFound = 6;
inline constexpr int kErrorTimeout = 10;
// nvmlEventType* bits (nvml.h); see docs/hardware.md for which ones the agent watches.
inline constexpr unsigned long long kEventTypeSingleBitEccError = 0x1;
inline constexpr unsigned long long kEventTypeDoubleBitEccError = 0x2;
inline constexpr unsigned long long kEventTypeXidCriticalError = 0x8;
inline constexpr unsigned long long kEventTypeDramRetirementEvent = 0x400;
inline constexpr unsigned long long kEventTypeDramRetirementFailure = 0x800;
inline constexpr unsigned long long kHealthEventTypes = kEventTypeDoubleBitEccError | kEventTypeXidCriticalError |
                                                        kEventTypeDramRetirementEvent | kEventTypeDramRetirementFailure;
inline constexpr int kFeatureEnabled = 1;  // nvmlEnableState_t NVML_FEATURE_ENABLED
// nvmlIntNvLinkDeviceType_t
inline constexpr int kNvLinkDeviceTypeGpu = 0;
inline constexpr int kNvLinkDeviceTypeSwitch = 2;
// NVML_NVLINK_MAX_LINKS is 12, 18 or 36 depending on the header; links are probed up to the
// largest and the probe stops at the first INVALID_ARGUMENT / NOT_SUPPORTED.
inline constexpr unsigned int kNvLinkMaxLinks = 36;
inline constexpr unsigned int kMigDisable = 0, kMigEnable = 1;  // NVML_DEVICE_MIG_DISABLE / _ENABLE
struct PciInfo {  // nvmlPciInfo_t (68 bytes)
  char bus_id_legacy[16];
  unsigned int domain, bus, device, pci_device_id, pci_sub_system_id;
  char bus_id[32];
};
static_assert(sizeof(PciInfo) == 68, "nvmlPciInfo_t is 68 bytes");
// GPU instance IDs are probed below this bound when listing instances without a MIG device
// (at most one GPU instance per memory slice: 7 or 8 on today's cards).
inline constexpr unsigned int kMaxGpuInstanceId = 32;
inline constexpr unsigned int kGpuInstanceProfileCount = 10;         // NVML_GPU_INSTANCE_PROFILE_1_SLICE .. _1_SLICE_REV2
inline constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
struct Memory {                            // nvmlMemory_t
  unsigned long long total, free, used;
};
struct Utilization {  // nvmlUtilization_t
  unsigned int gpu, memory;
};
using Device = void*;         // nvmlDevice_t
using EventSet = void*;       // nvmlEventSet_t
using GpuInstance = void*;    // nvmlGpuInstance_t
using ComputeInstance = void*;  // nvmlComputeInstance_t
struct EventData {            // nvmlEventData_t
  Device device;
  unsigned long long event_type, event_data;
  unsigned int gpu_instance_id, compute_instance_id;
};
struct ProcessInfo {  // nvmlProcessInfo_t (v2 layout, used by nvmlDeviceGetComputeRunningProcesses_v3)
  unsigned int pid;
  unsigned long long used_gpu_memory;
  unsigned int gpu_instance_id, compute_instance_id;
};
struct GpuInstanceProfileInfo {  // nvmlGpuInstanceProfileInfo_t
  unsigned int id, is_p2p_supported, slice_count, instance_count, multiprocessor_count, copy_engine_count,
      decoder_count, encoder_count, jpeg_count, ofa_count;
  unsigned long long memory_size_mb;
};
struct ComputeInstanceProfileInfo {  // nvmlComputeInstanceProfileInfo_t
  unsigned int id, slice_count, instance_count, multiprocessor_count, shared_copy_engine_count,
      shared_decoder_count, shared_encoder_count, shared_jpeg_count, shared_ofa_count;
};
struct GpuInstancePlacement {  // nvmlGpuInstancePlacement_t
  unsigned int start, size;
};
struct GpuInstanceInfo {  // nvmlGpuInstanceInfo_t
  Device device;
  unsigned int id, profile_id;
  GpuInstancePlacement placement;
};
// "<compute slices>g.<memory GB>gb", the name nvidia-smi shows; GB from the profile's share of
// the card's memory in eighths (MIG memory slices), times the card's memory in whole GB.
std::string MigProfileName(const GpuInstanceProfileInfo& info, unsigned int profile_id,
                           unsigned long long total_memory_bytes);
// Other spellings of an NVML product name to look up in the catalog ("NVIDIA A100 80GB PCIe" ->
// "A100 80GB PCIe", "A100-PCIE-80GB").
std::vector<std::string> ProductNameAliases(const std::string& product);
// XIDs caused by applications, not by the card (NVIDIA's device plugin skips the same ones).
bool XidIsApplicationError(unsigned long long xid);
// XIDs that take a card out of service by default: hardware faults whose remedy in NVIDIA's XID
// catalog is a GPU reset, a node reboot or service (docs/hardware.md lists each and why). The
// admin adds more with --critical-xids; an XID on neither list is logged and counted only.
const std::set<unsigned long long>& DefaultCriticalXids();
// "48,79, 94" -> {48, 79, 94}; each a whole number 1..65535.
StatusOr<std::set<unsigned long long>> ParseXidList(const std::string& text);
}  // namespace nvml

struct NvmlOptions {
  std::string sysfs_root = "/sys";                   // where NUMA node and CPU affinity are read
  std::set<unsigned long long> extra_critical_xids;  // added to nvml::DefaultCriticalXids()
  unsigned int event_wait_ms = 200;                  // one nvmlEventSetWait; bounds Stop's delay
};

struct NvmlApi {
  int (*init)() = nullptr;                                   // nvmlInit_v2
  int (*shutdown)() = nullptr;                               // nvmlShutdown
  int (*device_get_count)(unsigned int*) = nullptr;          // nvmlDeviceGetCount_v2
  int (*device_get_handle_by_index)(unsigned int, nvml::Device*) = nullptr;  // nvmlDeviceGetHandleByIndex_v2
  int (*device_get_uuid)(nvml::Device, char*, unsigned int) = nullptr;       // nvmlDeviceGetUUID
  int (*device_get_name)(nvml::Device, char*, unsigned int) = nullptr;       // nvmlDeviceGetName
  int (*device_get_memory_info)(nvml::Device, nvml::Memory*) = nullptr;      // nvmlDeviceGetMemoryInfo
  // Optional telemetry: a missing symbol or NOT_SUPPORTED leaves the value unknown.
  int (*device_get_utilization_rates)(nvml::Device, nvml::Utilization*) = nullptr;
  int (*device_get_temperature)(nvml::Device, int, unsigned int*) = nullptr;
  int (*device_get_power_usage)(nvml::Device, unsigned int*) = nullptr;      // milliwatts
  int (*device_get_compute_running_processes)(nvml::Device, unsigned int*, nvml::ProcessInfo*) = nullptr;  // _v3
  const char* (*error_string)(int) = nullptr;                               // nvmlErrorString
  // Health events (optional: without them health is polled only).
  int (*event_set_create)(nvml::EventSet*) = nullptr;                                 // nvmlEventSetCreate
  int (*device_register_events)(nvml::Device, unsigned long long, nvml::EventSet) = nullptr;  // nvmlDeviceRegisterEvents
  int (*event_set_wait)(nvml::EventSet, nvml::EventData*, unsigned int) = nullptr;    // nvmlEventSetWait_v2
  int (*event_set_free)(nvml::EventSet) = nullptr;                                    // nvmlEventSetFree
  // MIG (optional: without them MIG slices are refused with a reason).
  int (*device_get_mig_mode)(nvml::Device, unsigned int*, unsigned int*) = nullptr;   // nvmlDeviceGetMigMode
  int (*device_get_gpu_instance_profile_info)(nvml::Device, unsigned int, nvml::GpuInstanceProfileInfo*) = nullptr;
  int (*device_create_gpu_instance)(nvml::Device, unsigned int, nvml::GpuInstance*) = nullptr;
  int (*device_create_gpu_instance_with_placement)(nvml::Device, unsigned int, const nvml::GpuInstancePlacement*,
                                                   nvml::GpuInstance*) = nullptr;
  int (*gpu_instance_get_info)(nvml::GpuInstance, nvml::GpuInstanceInfo*) = nullptr;
  int (*gpu_instance_get_compute_instance_profile_info)(nvml::GpuInstance, unsigned int, unsigned int,
                                                        nvml::ComputeInstanceProfileInfo*) = nullptr;
  int (*gpu_instance_create_compute_instance)(nvml::GpuInstance, unsigned int, nvml::ComputeInstance*) = nullptr;
  int (*compute_instance_destroy)(nvml::ComputeInstance) = nullptr;
  int (*gpu_instance_destroy)(nvml::GpuInstance) = nullptr;
  int (*device_get_max_mig_device_count)(nvml::Device, unsigned int*) = nullptr;
  int (*device_get_mig_device_handle_by_index)(nvml::Device, unsigned int, nvml::Device*) = nullptr;
  int (*device_get_gpu_instance_id)(nvml::Device, unsigned int*) = nullptr;
  int (*device_get_compute_instance_id)(nvml::Device, unsigned int*) = nullptr;
  int (*device_get_handle_by_uuid)(const char*, nvml::Device*) = nullptr;
  int (*device_get_gpu_instance_by_id)(nvml::Device, unsigned int, nvml::GpuInstance*) = nullptr;
  int (*gpu_instance_get_compute_instance_by_id)(nvml::GpuInstance, unsigned int, nvml::ComputeInstance*) = nullptr;
  int (*device_set_mig_mode)(nvml::Device, unsigned int, int* activation_status) = nullptr;  // nvmlDeviceSetMigMode
  // Topology and identity (optional: without them NUMA, links and bus IDs stay unknown).
  int (*device_get_pci_info)(nvml::Device, nvml::PciInfo*) = nullptr;                        // nvmlDeviceGetPciInfo_v3
  int (*system_get_driver_version)(char*, unsigned int) = nullptr;                          // nvmlSystemGetDriverVersion
  int (*device_get_nvlink_state)(nvml::Device, unsigned int, int*) = nullptr;               // nvmlDeviceGetNvLinkState
  int (*device_get_nvlink_remote_pci_info)(nvml::Device, unsigned int, nvml::PciInfo*) = nullptr;  // ..._v2
  int (*device_get_nvlink_remote_device_type)(nvml::Device, unsigned int, int*) = nullptr;  // nvmlDeviceGetNvLinkRemoteDeviceType
  // Health beyond events (optional).
  int (*device_get_supported_event_types)(nvml::Device, unsigned long long*) = nullptr;     // nvmlDeviceGetSupportedEventTypes
  int (*device_get_retired_pages_pending_status)(nvml::Device, int*) = nullptr;             // nvmlDeviceGetRetiredPagesPendingStatus
  int (*device_get_remapped_rows)(nvml::Device, unsigned int*, unsigned int*, unsigned int*,
                                  unsigned int*) = nullptr;                                  // nvmlDeviceGetRemappedRows
  void* library = nullptr;                                                  // dlopen handle, if any
};

// dlopen + dlsym. A machine without the driver gets "no NVIDIA driver found" and the reason.
StatusOr<NvmlApi> LoadNvml(const std::string& library = "libnvidia-ml.so.1");

class NvmlBackend : public DeviceBackend {
 public:
  // Calls nvmlInit; fails with the NVML error string if the driver does not answer.
  static StatusOr<std::unique_ptr<NvmlBackend>> Create(NvmlApi api, const catalog::Catalog& catalog);
  static StatusOr<std::unique_ptr<NvmlBackend>> Create(NvmlApi api, const catalog::Catalog& catalog, NvmlOptions options);
  ~NvmlBackend() override;
  std::string Name() const override { return "nvml"; }
  StatusOr<std::vector<DeviceInfo>> Discover() override;
  StatusOr<std::vector<ProcessUsage>> Processes() override;

  // MIG: a GPU instance of `profile` (at `start_slot` when >= 0) with one compute instance
  // spanning it; returns the MIG device UUID. Needs MIG mode on (nvidia-smi -mig 1).
  StatusOr<std::string> CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) override;
  Status DestroyPartition(const DeviceInfo& card, const std::string& partition_id) override;
  // The MIG devices on the card (GPU instance with its compute instance), with profile name and
  // start slot. A GPU instance without a compute instance has no MIG device and is not listed.
  StatusOr<std::vector<LivePartition>> ListPartitions(const DeviceInfo& card) override;
  // nvmlDeviceSetMigMode. kPendingReset when the driver accepted the change for the next reset
  // (activation status RESET_REQUIRED); FailedPrecondition when it refused (IN_USE: processes).
  StatusOr<MigModeChange> SetMigMode(const DeviceInfo& card, bool enabled) override;

  // Health events on a thread of their own: critical XIDs (DefaultCriticalXids + the admin's),
  // double-bit ECC errors, page retirement / row remapping events. A card with such an event is
  // unhealthy from then on (until the agent restarts: the remedy is a reset of a drained card).
  // `on_change` runs on the event thread once per batch of events that changed a card's health,
  // so a storm of events costs one refresh, not one per event. A lost GPU (GPU_IS_LOST from the
  // wait) triggers `on_change` too: the next Discover reports the card as the driver sees it.
  Status StartHealthEvents(std::function<void()> on_change);
  // Stops and joins the event thread (also done by the destructor). Idempotent.
  void StopHealthEvents();
  std::map<std::string, unsigned long long> XidFailures() const;  // uuid -> last critical XID
  // Every event the thread has taken off the queue, and XIDs seen that are not critical.
  uint64_t EventsSeen() const { return events_seen_.load(); }
  std::map<unsigned long long, uint64_t> IgnoredXids() const;

  // NVLink as the driver reports it, for the inventory dump and for tests: per card (in
  // Discover's order) the active links, how many end on an NVSwitch, and how many on each peer
  // card (by UUID).
  struct NvLinks {
    int active = 0;
    int to_switch = 0;
    std::map<std::string, int> to_peer;
  };
  std::map<std::string, NvLinks> LastNvLinks() const;

 private:
  NvmlBackend(NvmlApi api, const catalog::Catalog& catalog, NvmlOptions options);
  std::string Error(int code) const;
  StatusOr<nvml::Device> DeviceFor(const DeviceInfo& card);
  void EventLoop();
  // Marks a card unhealthy for `reason`; true if this changed its state.
  bool RecordFault(const std::string& uuid, const std::string& reason, unsigned long long xid);
  void FillTopology(std::vector<DeviceInfo>& cards, const std::vector<nvml::Device>& handles);
  NvmlApi api_;
  const catalog::Catalog& catalog_;
  NvmlOptions options_;
  std::set<unsigned long long> critical_xids_;
  std::mutex mig_mu_;  // one MIG reconfiguration at a time
  mutable std::mutex health_mu_;
  std::map<std::string, unsigned long long> xid_failures_;
  std::map<std::string, std::string> event_faults_;       // uuid -> why (first fault wins)
  std::map<unsigned long long, uint64_t> ignored_xids_;  // xid -> times seen
  std::map<std::string, DeviceInfo> known_;              // every card seen since start, by uuid
  std::map<std::string, NvLinks> nvlinks_;
  std::function<void()> on_health_change_;
  nvml::EventSet events_ = nullptr;
  std::atomic<bool> stop_events_{false};
  std::atomic<uint64_t> events_seen_{0};
  std::thread event_thread_;
};

}  // namespace tideslice::deviceplugin
