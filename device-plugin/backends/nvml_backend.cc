#include "device-plugin/backends/nvml_backend.h"

#include <set>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
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
                   sym("nvmlDeviceGetComputeRunningProcesses_v3", api.device_get_compute_running_processes, false),
                   sym("nvmlErrorString", api.error_string, false),
                   sym("nvmlEventSetCreate", api.event_set_create, false),
                   sym("nvmlDeviceRegisterEvents", api.device_register_events, false),
                   sym("nvmlEventSetWait_v2", api.event_set_wait, false),
                   sym("nvmlEventSetFree", api.event_set_free, false),
                   sym("nvmlDeviceGetMigMode", api.device_get_mig_mode, false),
                   sym("nvmlDeviceGetGpuInstanceProfileInfo", api.device_get_gpu_instance_profile_info, false),
                   sym("nvmlDeviceCreateGpuInstance", api.device_create_gpu_instance, false),
                   sym("nvmlDeviceCreateGpuInstanceWithPlacement", api.device_create_gpu_instance_with_placement, false),
                   sym("nvmlGpuInstanceGetInfo", api.gpu_instance_get_info, false),
                   sym("nvmlGpuInstanceGetComputeInstanceProfileInfo", api.gpu_instance_get_compute_instance_profile_info, false),
                   sym("nvmlGpuInstanceCreateComputeInstance", api.gpu_instance_create_compute_instance, false),
                   sym("nvmlComputeInstanceDestroy", api.compute_instance_destroy, false),
                   sym("nvmlGpuInstanceDestroy", api.gpu_instance_destroy, false),
                   sym("nvmlDeviceGetMaxMigDeviceCount", api.device_get_max_mig_device_count, false),
                   sym("nvmlDeviceGetMigDeviceHandleByIndex", api.device_get_mig_device_handle_by_index, false),
                   sym("nvmlDeviceGetGpuInstanceId", api.device_get_gpu_instance_id, false),
                   sym("nvmlDeviceGetComputeInstanceId", api.device_get_compute_instance_id, false),
                   sym("nvmlDeviceGetHandleByUUID", api.device_get_handle_by_uuid, false),
                   sym("nvmlDeviceGetGpuInstanceById", api.device_get_gpu_instance_by_id, false),
                   sym("nvmlGpuInstanceGetComputeInstanceById", api.gpu_instance_get_compute_instance_by_id, false)}) {
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
  stop_events_ = true;
  if (event_thread_.joinable()) event_thread_.join();
  if (events_ && api_.event_set_free) api_.event_set_free(events_);
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
    unsigned int mig_current = 0, mig_pending = 0;
    if (api_.device_get_mig_mode && api_.device_get_mig_mode(dev, &mig_current, &mig_pending) == nvml::kSuccess)
      d.mig_enabled = mig_current == 1;
    {
      std::lock_guard<std::mutex> lock(health_mu_);
      if (xid_failures_.count(d.uuid)) d.healthy = false;
    }
    out.push_back(std::move(d));
  }
  return out;
}

StatusOr<std::vector<ProcessUsage>> NvmlBackend::Processes() {
  std::vector<ProcessUsage> out;
  if (!api_.device_get_compute_running_processes) return out;
  unsigned int count = 0;
  if (api_.device_get_count(&count) != nvml::kSuccess) return Status::Unavailable("nvmlDeviceGetCount failed");
  for (unsigned int i = 0; i < count && i < 64; ++i) {
    nvml::Device dev = nullptr;
    if (api_.device_get_handle_by_index(i, &dev) != nvml::kSuccess) continue;
    char uuid[96] = {};
    if (api_.device_get_uuid(dev, uuid, sizeof uuid) != nvml::kSuccess) continue;
    uuid[sizeof uuid - 1] = '\0';
    // Ask with room for 64; INSUFFICIENT_SIZE says how many there are, then ask again.
    std::vector<nvml::ProcessInfo> infos(64);
    unsigned int n = static_cast<unsigned int>(infos.size());
    int rc = api_.device_get_compute_running_processes(dev, &n, infos.data());
    if (rc == nvml::kErrorInsufficientSize && n > infos.size() && n <= 4096) {
      infos.resize(n);
      rc = api_.device_get_compute_running_processes(dev, &n, infos.data());
    }
    if (rc != nvml::kSuccess) continue;  // NOT_SUPPORTED on some boards: no per-process view
    for (unsigned int k = 0; k < n && k < infos.size(); ++k)
      out.push_back({uuid, infos[k].pid, static_cast<int64_t>(infos[k].used_gpu_memory)});
  }
  return out;
}

namespace nvml {

std::string MigProfileName(const GpuInstanceProfileInfo& info, unsigned int profile_id,
                           unsigned long long total_memory_bytes) {
  constexpr double kMiB = 1024.0 * 1024.0, kGiB = kMiB * 1024.0;
  double share = total_memory_bytes ? info.memory_size_mb * kMiB / static_cast<double>(total_memory_bytes) : 0;
  share = std::ceil(share * 8) / 8;  // MIG hands out memory in eighths
  double card_gb = std::ceil(static_cast<double>(total_memory_bytes) / kGiB);
  std::string name = std::to_string(info.slice_count) + "g." + std::to_string(static_cast<long long>(std::llround(share * card_gb))) + "gb";
  // Profile IDs 7 and 8 are the REV1 variants that also own the media engines.
  if (profile_id == 7 || profile_id == 8) name += "+me";
  return name;
}

bool XidIsApplicationError(unsigned long long xid) {
  // 13 graphics engine exception, 31 GPU memory page fault, 43 GPU stopped processing,
  // 45 preemptive cleanup, 68 video processor exception, 109 context switch timeout.
  return xid == 13 || xid == 31 || xid == 43 || xid == 45 || xid == 68 || xid == 109;
}

}  // namespace nvml

StatusOr<nvml::Device> NvmlBackend::DeviceFor(const DeviceInfo& card) {
  nvml::Device dev = nullptr;
  int rc = api_.device_get_handle_by_index(static_cast<unsigned int>(card.index), &dev);
  if (rc != nvml::kSuccess) return Status::Unavailable("GPU " + std::to_string(card.index) + ": " + Error(rc));
  char buf[96] = {};
  rc = api_.device_get_uuid(dev, buf, sizeof buf);
  buf[sizeof buf - 1] = '\0';
  if (rc != nvml::kSuccess || card.uuid != buf)
    return Status::FailedPrecondition("GPU " + std::to_string(card.index) + " is no longer " + card.uuid);
  return dev;
}

StatusOr<std::string> NvmlBackend::CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) {
  std::lock_guard<std::mutex> lock(mig_mu_);
  if (!api_.device_get_gpu_instance_profile_info || !api_.device_create_gpu_instance || !api_.gpu_instance_get_info ||
      !api_.gpu_instance_get_compute_instance_profile_info || !api_.gpu_instance_create_compute_instance ||
      !api_.gpu_instance_destroy || !api_.compute_instance_destroy || !api_.device_get_max_mig_device_count ||
      !api_.device_get_mig_device_handle_by_index || !api_.device_get_gpu_instance_id)
    return Status::FailedPrecondition("this NVIDIA driver's NVML has no MIG management; " + profile + " on " + card.uuid +
                                      " needs driver R470 or newer");
  auto dev = DeviceFor(card);
  if (!dev.ok()) return dev.status();
  unsigned int current = 0, pending = 0;
  if (!api_.device_get_mig_mode || api_.device_get_mig_mode(*dev, &current, &pending) != nvml::kSuccess || current != 1)
    return Status::FailedPrecondition("MIG mode is off on " + card.uuid + "; enable it with nvidia-smi -i " +
                                      std::to_string(card.index) + " -mig 1 (the node must be drained)");
  nvml::Memory mem{};
  if (api_.device_get_memory_info(*dev, &mem) != nvml::kSuccess)
    return Status::Unavailable("cannot read the memory size of " + card.uuid);
  nvml::GpuInstanceProfileInfo info{};
  unsigned int profile_id = nvml::kGpuInstanceProfileCount;
  std::string offered;
  for (unsigned int p = 0; p < nvml::kGpuInstanceProfileCount; ++p) {
    nvml::GpuInstanceProfileInfo candidate{};
    if (api_.device_get_gpu_instance_profile_info(*dev, p, &candidate) != nvml::kSuccess) continue;
    std::string name = nvml::MigProfileName(candidate, p, mem.total);
    offered += (offered.empty() ? "" : ", ") + name;
    if (name == profile) {
      info = candidate;
      profile_id = p;
      break;
    }
  }
  if (profile_id == nvml::kGpuInstanceProfileCount)
    return Status::InvalidArgument("profile", card.uuid + " has no MIG profile " + profile + " (it offers " + offered + ")");

  nvml::GpuInstance gi = nullptr;
  int rc;
  const auto* model = catalog_.Find(card.model);
  const auto* cat_profile = model ? model->FindProfile(profile) : nullptr;
  if (start_slot >= 0 && api_.device_create_gpu_instance_with_placement && cat_profile) {
    nvml::GpuInstancePlacement placement{static_cast<unsigned int>(start_slot),
                                         static_cast<unsigned int>(cat_profile->slot_size)};
    rc = api_.device_create_gpu_instance_with_placement(*dev, info.id, &placement, &gi);
  } else {
    rc = api_.device_create_gpu_instance(*dev, info.id, &gi);
  }
  if (rc != nvml::kSuccess)
    return Status::ResourceExhausted("creating MIG " + profile + (start_slot >= 0 ? " at slot " + std::to_string(start_slot) : "") +
                                     " on " + card.uuid + " failed: " + Error(rc) + " (slots taken by other instances?)");
  auto undo_gi = [&] { api_.gpu_instance_destroy(gi); };
  // One compute instance spanning the whole GPU instance (compute profile index = slices - 1,
  // except 7 -> 4, 8 -> 5, 6 -> 6 as NVML numbers them).
  static const std::map<unsigned int, unsigned int> ci_profile = {{1, 0}, {2, 1}, {3, 2}, {4, 3}, {7, 4}, {8, 5}, {6, 6}};
  auto ci_it = ci_profile.find(info.slice_count);
  nvml::ComputeInstanceProfileInfo ci_info{};
  nvml::ComputeInstance ci = nullptr;
  if (ci_it == ci_profile.end() ||
      (rc = api_.gpu_instance_get_compute_instance_profile_info(gi, ci_it->second, 0, &ci_info)) != nvml::kSuccess ||
      (rc = api_.gpu_instance_create_compute_instance(gi, ci_info.id, &ci)) != nvml::kSuccess) {
    undo_gi();
    return Status::Unavailable("creating the compute instance of MIG " + profile + " on " + card.uuid + " failed");
  }
  nvml::GpuInstanceInfo gi_info{};
  unsigned int max = 0;
  if (api_.gpu_instance_get_info(gi, &gi_info) == nvml::kSuccess &&
      api_.device_get_max_mig_device_count(*dev, &max) == nvml::kSuccess) {
    for (unsigned int i = 0; i < max; ++i) {
      nvml::Device mig = nullptr;
      unsigned int id = 0;
      if (api_.device_get_mig_device_handle_by_index(*dev, i, &mig) != nvml::kSuccess) continue;
      if (api_.device_get_gpu_instance_id(mig, &id) != nvml::kSuccess || id != gi_info.id) continue;
      char uuid[96] = {};
      if (api_.device_get_uuid(mig, uuid, sizeof uuid) == nvml::kSuccess) {
        uuid[sizeof uuid - 1] = '\0';
        return std::string(uuid);
      }
    }
  }
  api_.compute_instance_destroy(ci);
  undo_gi();
  return Status::Internal("MIG " + profile + " was created on " + card.uuid + " but its device UUID was not found; undone");
}

Status NvmlBackend::DestroyPartition(const DeviceInfo& card, const std::string& partition_id) {
  std::lock_guard<std::mutex> lock(mig_mu_);
  if (!api_.device_get_handle_by_uuid || !api_.device_get_gpu_instance_id || !api_.device_get_compute_instance_id ||
      !api_.device_get_gpu_instance_by_id || !api_.gpu_instance_get_compute_instance_by_id ||
      !api_.compute_instance_destroy || !api_.gpu_instance_destroy)
    return Status::FailedPrecondition("this NVIDIA driver's NVML has no MIG management");
  if (partition_id.rfind("gi:", 0) == 0) {  // a GPU instance without compute instance (ListPartitions)
    unsigned int id = 0;
    try {
      id = static_cast<unsigned int>(std::stoul(partition_id.substr(3)));
    } catch (const std::exception&) {
      return Status::InvalidArgument("partition", "\"" + partition_id + "\" is not gi:<GPU instance ID>");
    }
    auto dev = DeviceFor(card);
    if (!dev.ok()) return dev.status();
    nvml::GpuInstance gi = nullptr;
    int rc = api_.device_get_gpu_instance_by_id(*dev, id, &gi);
    if (rc == nvml::kErrorNotFound) return Status::NotFound("no GPU instance " + partition_id.substr(3) + " on " + card.uuid);
    if (rc != nvml::kSuccess || (rc = api_.gpu_instance_destroy(gi)) != nvml::kSuccess)
      return Status::Unavailable("destroying GPU instance " + partition_id.substr(3) + " on " + card.uuid + ": " + Error(rc));
    return Status::Ok();
  }
  nvml::Device mig = nullptr;
  int rc = api_.device_get_handle_by_uuid(partition_id.c_str(), &mig);
  if (rc == nvml::kErrorNotFound) return Status::NotFound("no MIG device " + partition_id + " on " + card.uuid);
  if (rc != nvml::kSuccess) return Status::Unavailable("looking up " + partition_id + ": " + Error(rc));
  unsigned int gi_id = 0, ci_id = 0;
  if (api_.device_get_gpu_instance_id(mig, &gi_id) != nvml::kSuccess ||
      api_.device_get_compute_instance_id(mig, &ci_id) != nvml::kSuccess)
    return Status::Unavailable(partition_id + " is not a MIG device");
  auto dev = DeviceFor(card);
  if (!dev.ok()) return dev.status();
  nvml::GpuInstance gi = nullptr;
  nvml::ComputeInstance ci = nullptr;
  if ((rc = api_.device_get_gpu_instance_by_id(*dev, gi_id, &gi)) != nvml::kSuccess)
    return Status::Unavailable("GPU instance " + std::to_string(gi_id) + " on " + card.uuid + ": " + Error(rc));
  if (api_.gpu_instance_get_compute_instance_by_id(gi, ci_id, &ci) == nvml::kSuccess &&
      (rc = api_.compute_instance_destroy(ci)) != nvml::kSuccess)
    return Status::Unavailable("destroying the compute instance of " + partition_id + ": " + Error(rc) +
                               " (a process may still use it)");
  if ((rc = api_.gpu_instance_destroy(gi)) != nvml::kSuccess)
    return Status::Unavailable("destroying " + partition_id + ": " + Error(rc));
  return Status::Ok();
}

StatusOr<std::vector<LivePartition>> NvmlBackend::ListPartitions(const DeviceInfo& card) {
  std::lock_guard<std::mutex> lock(mig_mu_);
  if (!api_.device_get_max_mig_device_count || !api_.device_get_mig_device_handle_by_index ||
      !api_.device_get_gpu_instance_id || !api_.device_get_gpu_instance_by_id || !api_.gpu_instance_get_info ||
      !api_.device_get_gpu_instance_profile_info)
    return Status::FailedPrecondition("this NVIDIA driver's NVML cannot list MIG instances");
  auto dev = DeviceFor(card);
  if (!dev.ok()) return dev.status();
  std::vector<LivePartition> out;
  std::set<unsigned int> with_compute;  // GPU instances that have a MIG device
  unsigned int current = 0, pending = 0;
  if (!api_.device_get_mig_mode || api_.device_get_mig_mode(*dev, &current, &pending) != nvml::kSuccess || current != 1)
    return out;  // MIG off: no instances can exist
  nvml::Memory mem{};
  int rc = api_.device_get_memory_info(*dev, &mem);
  if (rc != nvml::kSuccess) return Status::Unavailable("cannot read the memory size of " + card.uuid + ": " + Error(rc));
  // GpuInstanceInfo names the profile by its ID; the name comes from the profile index with that ID.
  auto ProfileName = [&](unsigned int profile_id) {
    for (unsigned int p = 0; p < nvml::kGpuInstanceProfileCount; ++p) {
      nvml::GpuInstanceProfileInfo candidate{};
      if (api_.device_get_gpu_instance_profile_info(*dev, p, &candidate) == nvml::kSuccess && candidate.id == profile_id)
        return nvml::MigProfileName(candidate, p, mem.total);
    }
    return std::string();
  };
  unsigned int max = 0;
  if ((rc = api_.device_get_max_mig_device_count(*dev, &max)) != nvml::kSuccess)
    return Status::Unavailable("cannot count the MIG devices of " + card.uuid + ": " + Error(rc));
  for (unsigned int i = 0; i < max; ++i) {
    nvml::Device mig = nullptr;
    // NOT_FOUND: no MIG device at this index (indices of destroyed instances stay empty).
    if ((rc = api_.device_get_mig_device_handle_by_index(*dev, i, &mig)) == nvml::kErrorNotFound) continue;
    if (rc != nvml::kSuccess) return Status::Unavailable("MIG device " + std::to_string(i) + " of " + card.uuid + ": " + Error(rc));
    unsigned int gi_id = 0;
    nvml::GpuInstance gi = nullptr;
    nvml::GpuInstanceInfo gi_info{};
    char uuid[96] = {};
    if ((rc = api_.device_get_gpu_instance_id(mig, &gi_id)) != nvml::kSuccess ||
        (rc = api_.device_get_gpu_instance_by_id(*dev, gi_id, &gi)) != nvml::kSuccess ||
        (rc = api_.gpu_instance_get_info(gi, &gi_info)) != nvml::kSuccess ||
        (rc = api_.device_get_uuid(mig, uuid, sizeof uuid)) != nvml::kSuccess)
      return Status::Unavailable("MIG device " + std::to_string(i) + " of " + card.uuid + ": " + Error(rc));
    uuid[sizeof uuid - 1] = '\0';
    std::string profile = ProfileName(gi_info.profile_id);
    out.push_back({uuid, profile, static_cast<int>(gi_info.placement.start)});
    with_compute.insert(gi_id);
  }
  // A GPU instance without a compute instance has no MIG device, so the loop above cannot see it:
  // it is what a crash between the two creation steps leaves behind. GPU instance IDs are small
  // (at most one per memory slice), so they are probed by ID; such an instance is listed as
  // "gi:<id>", which DestroyPartition understands.
  for (unsigned int id = 0; id < nvml::kMaxGpuInstanceId; ++id) {
    if (with_compute.count(id)) continue;
    nvml::GpuInstance gi = nullptr;
    nvml::GpuInstanceInfo gi_info{};
    if (api_.device_get_gpu_instance_by_id(*dev, id, &gi) != nvml::kSuccess ||
        api_.gpu_instance_get_info(gi, &gi_info) != nvml::kSuccess)
      continue;
    out.push_back({"gi:" + std::to_string(id), ProfileName(gi_info.profile_id), static_cast<int>(gi_info.placement.start)});
  }
  return out;
}

Status NvmlBackend::StartHealthEvents(std::function<void()> on_change) {
  if (!api_.event_set_create || !api_.device_register_events || !api_.event_set_wait)
    return Status::FailedPrecondition("this NVML has no event API; health is polled only");
  int rc = api_.event_set_create(&events_);
  if (rc != nvml::kSuccess) return Status::Unavailable("nvmlEventSetCreate: " + Error(rc));
  unsigned int count = 0;
  if (api_.device_get_count(&count) != nvml::kSuccess) count = 0;
  int registered = 0;
  for (unsigned int i = 0; i < count && i < 64; ++i) {
    nvml::Device dev = nullptr;
    if (api_.device_get_handle_by_index(i, &dev) != nvml::kSuccess) continue;
    // NOT_SUPPORTED on some boards (and inside some VMs): that card is polled only.
    if (api_.device_register_events(dev, nvml::kEventTypeXidCriticalError, events_) == nvml::kSuccess) ++registered;
  }
  on_health_change_ = std::move(on_change);
  event_thread_ = std::thread([this] { EventLoop(); });
  if (registered == 0) return Status::FailedPrecondition("no GPU accepts XID event registration; health is polled only");
  return Status::Ok();
}

void NvmlBackend::EventLoop() {
  while (!stop_events_) {
    nvml::EventData data{};
    int rc = api_.event_set_wait(events_, &data, 500);
    if (rc == nvml::kErrorTimeout) continue;
    if (rc != nvml::kSuccess) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    if (!(data.event_type & nvml::kEventTypeXidCriticalError) || nvml::XidIsApplicationError(data.event_data)) continue;
    char uuid[96] = {};
    if (api_.device_get_uuid(data.device, uuid, sizeof uuid) != nvml::kSuccess) continue;
    uuid[sizeof uuid - 1] = '\0';
    {
      std::lock_guard<std::mutex> lock(health_mu_);
      xid_failures_[uuid] = data.event_data;
    }
    if (on_health_change_) on_health_change_();
  }
}

std::map<std::string, unsigned long long> NvmlBackend::XidFailures() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  return xid_failures_;
}

}  // namespace tideslice::deviceplugin
