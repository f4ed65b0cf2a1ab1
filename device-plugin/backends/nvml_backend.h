// NVIDIA backend: NVML loaded with dlopen at run time (no build-time NVIDIA dependency), behind a
// table of function pointers so that tests can drive every parsing and error path with fakes.
// Signatures follow the NVML C API (nvml.h): return codes are nvmlReturn_t (0 = NVML_SUCCESS),
// device handles are opaque pointers.
#pragma once

#include <memory>
#include <string>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

namespace nvml {
inline constexpr int kSuccess = 0;
inline constexpr int kErrorNotSupported = 3;
inline constexpr int kErrorInsufficientSize = 7;
inline constexpr int kErrorDriverNotLoaded = 9;
inline constexpr int kErrorGpuIsLost = 15;
inline constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
struct Memory {                            // nvmlMemory_t
  unsigned long long total, free, used;
};
struct Utilization {  // nvmlUtilization_t
  unsigned int gpu, memory;
};
using Device = void*;  // nvmlDevice_t
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
  const char* (*error_string)(int) = nullptr;                               // nvmlErrorString
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

 private:
  NvmlBackend(NvmlApi api, const catalog::Catalog& catalog) : api_(api), catalog_(catalog) {}
  std::string Error(int code) const;
  NvmlApi api_;
  const catalog::Catalog& catalog_;
};

}  // namespace tideslice::deviceplugin
