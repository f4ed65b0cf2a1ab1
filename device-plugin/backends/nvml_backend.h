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
#include <string>
#include <thread>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

namespace nvml {
inline constexpr int kSuccess = 0;
inline constexpr int kErrorNotSupported = 3;
inline constexpr int kErrorInsufficientSize = 7;
inline constexpr int kErrorDriverNotLoaded = 9;
inline constexpr int kErrorGpuIsLost = 15;
inline constexpr int kErrorNotFound = 6;
inline constexpr int kErrorTimeout = 10;
inline constexpr unsigned long long kEventTypeXidCriticalError = 0x8;  // nvmlEventTypeXidCriticalError
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
// XIDs caused by applications, not by the card (NVIDIA's device plugin skips the same ones).
bool XidIsApplicationError(unsigned long long xid);
}  // namespace nvml

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
  void* library = nullptr;                                                  // dlopen handle, if any
};

// dlopen + dlsym. A machine without the driver gets "no NVIDIA driver found" and the reason.
StatusOr<NvmlApi> LoadNvml(const std::string& library = "libnvidia-ml.so.1");

class NvmlBackend : public DeviceBackend {
 public:
  // Calls nvmlInit; fails with the NVML error string if the driver does not answer.
  static StatusOr<std::unique_ptr<NvmlBackend>> Create(NvmlApi api, const catalog::Catalog& catalog);
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

  // Watches XID critical errors; a card with an XID that is not an application error is
  // unhealthy from then on (until the agent restarts, as a reset needs a drained node anyway).
  // `on_change` runs on the event thread after a card turns unhealthy.
  Status StartHealthEvents(std::function<void()> on_change);
  std::map<std::string, unsigned long long> XidFailures() const;  // uuid -> last fatal XID

 private:
  NvmlBackend(NvmlApi api, const catalog::Catalog& catalog) : api_(api), catalog_(catalog) {}
  std::string Error(int code) const;
  StatusOr<nvml::Device> DeviceFor(const DeviceInfo& card);
  void EventLoop();
  NvmlApi api_;
  const catalog::Catalog& catalog_;
  std::mutex mig_mu_;  // one MIG reconfiguration at a time
  mutable std::mutex health_mu_;
  std::map<std::string, unsigned long long> xid_failures_;
  std::function<void()> on_health_change_;
  nvml::EventSet events_ = nullptr;
  std::atomic<bool> stop_events_{false};
  std::thread event_thread_;
};

}  // namespace tideslice::deviceplugin
