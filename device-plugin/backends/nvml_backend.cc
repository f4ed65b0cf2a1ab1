#include "device-plugin/backends/nvml_backend.h"

#include <dlfcn.h>

#include <cstring>

namespace tideslice::deviceplugin {

StatusOr<NvmlApi> LoadNvml(const std::string& library) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return Status::Unavailable("no NVIDIA driver found: cannot load " + library + " (" + (why ? why : "unknown") +
                               "); install the driver or pick another --backend");
  }
  NvmlApi api;
  api.library = handle;
  auto sym = [&](const char* name, auto& slot, bool required) -> Status {
    void* p = dlsym(handle, name);
    if (!p && required) return Status::Unavailable(library + " lacks " + name + "; the driver is too old");
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(p);
    return Status::Ok();
  };
  Status st;
  for (Status s : {sym("nvmlInit_v2", api.init, true), sym("nvmlShutdown", api.shutdown, true),
                   sym("nvmlDeviceGetCount_v2", api.device_get_count, true),
                   sym("nvmlDeviceGetHandleByIndex_v2", api.device_get_handle_by_index, true),
                   sym("nvmlDeviceGetUUID", api.device_get_uuid, true), sym("nvmlDeviceGetName", api.device_get_name, true),
                   sym("nvmlDeviceGetMemoryInfo", api.device_get_memory_info, true),
                   sym("nvmlDeviceGetUtilizationRates", api.device_get_utilization_rates, false),
                   sym("nvmlDeviceGetTemperature", api.device_get_temperature, false),
                   sym("nvmlDeviceGetPowerUsage", api.device_get_power_usage, false),
                   sym("nvmlErrorString", api.error_string, false)}) {
    if (!s.ok() && st.ok()) st = s;
  }
  if (!st.ok()) {
    dlclose(handle);
    return st;
  }
  return api;
}

std::string NvmlBackend::Error(int code) const {
  const char* s = api_.error_string ? api_.error_string(code) : nullptr;
  return "NVML error " + std::to_string(code) + (s ? std::string(" (") + s + ")" : "");
}

StatusOr<std::unique_ptr<NvmlBackend>> NvmlBackend::Create(NvmlApi api, const catalog::Catalog& catalog) {
  for (void* required : {reinterpret_cast<void*>(api.init), reinterpret_cast<void*>(api.device_get_count),
                         reinterpret_cast<void*>(api.device_get_handle_by_index),
                         reinterpret_cast<void*>(api.device_get_uuid), reinterpret_cast<void*>(api.device_get_name),
                         reinterpret_cast<void*>(api.device_get_memory_info)})
    if (!required) return Status::InvalidArgument("nvml", "function table is incomplete");
  std::unique_ptr<NvmlBackend> b(new NvmlBackend(api, catalog));
  int rc = api.init();
  if (rc != nvml::kSuccess) {
    std::string msg = rc == nvml::kErrorDriverNotLoaded ? "no NVIDIA driver found: the kernel driver is not loaded"
                                                        : "nvmlInit failed: " + b->Error(rc);
    b->api_.shutdown = nullptr;  // nothing to shut down
    return Status::Unavailable(msg);
  }
  return b;
}

NvmlBackend::~NvmlBackend() {
  if (api_.shutdown) api_.shutdown();
  if (api_.library) dlclose(api_.library);
}

StatusOr<std::vector<DeviceInfo>> NvmlBackend::Discover() {
  unsigned int count = 0;
  int rc = api_.device_get_count(&count);
  if (rc != nvml::kSuccess) return Status::Unavailable("nvmlDeviceGetCount: " + Error(rc));
  if (count > 64) return Status::Internal("NVML reports " + std::to_string(count) + " GPUs; refusing more than 64");
  std::vector<DeviceInfo> out;
  for (unsigned int i = 0; i < count; ++i) {
    nvml::Device dev = nullptr;
    rc = api_.device_get_handle_by_index(i, &dev);
    DeviceInfo d;
    d.index = static_cast<int>(i);
    d.vendor = "nvidia";
    if (rc != nvml::kSuccess) {
      // A GPU NVML cannot even open is reported, unhealthy, so that the kubelet sees it go away.
      d.uuid = "nvml-index-" + std::to_string(i);
      d.model = "unknown";
      d.healthy = false;
      out.push_back(d);
      continue;
    }
    char buf[96] = {};
    rc = api_.device_get_uuid(dev, buf, sizeof buf);
    if (rc != nvml::kSuccess) return Status::Unavailable("nvmlDeviceGetUUID(" + std::to_string(i) + "): " + Error(rc));
    buf[sizeof buf - 1] = '\0';
    d.uuid = buf;
    if (d.uuid.empty()) return Status::Internal("NVML returned an empty UUID for GPU " + std::to_string(i));
    char name[96] = {};
    rc = api_.device_get_name(dev, name, sizeof name);
    name[sizeof name - 1] = '\0';
    std::string product = rc == nvml::kSuccess ? name : "";
    const auto* model = catalog_.Find(product);
    d.model = model ? model->name : (product.empty() ? "unknown" : product);
    nvml::Memory mem{};
    rc = api_.device_get_memory_info(dev, &mem);
    if (rc == nvml::kSuccess) {
      d.memory_mib = static_cast<int64_t>(mem.total / (1024 * 1024));
      d.memory_used_mib = static_cast<int64_t>(mem.used / (1024 * 1024));
    } else {
      d.healthy = false;  // GPU_IS_LOST and friends: the card is not usable
      d.memory_mib = model ? model->memory_mib : 0;
    }
    if (d.memory_mib <= 0) d.memory_mib = model ? model->memory_mib : 1;
    nvml::Utilization util{};
    if (api_.device_get_utilization_rates && api_.device_get_utilization_rates(dev, &util) == nvml::kSuccess)
      d.utilization_ratio = util.gpu / 100.0;
    unsigned int value = 0;
    if (api_.device_get_temperature && api_.device_get_temperature(dev, nvml::kTemperatureGpu, &value) == nvml::kSuccess)
      d.temperature_celsius = value;
    if (api_.device_get_power_usage && api_.device_get_power_usage(dev, &value) == nvml::kSuccess)
      d.power_watts = value / 1000.0;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace tideslice::deviceplugin
