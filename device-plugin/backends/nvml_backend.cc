#include "device-plugin/backends/nvml_backend.h"

#include <set>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/log/log.h"
#include "device-plugin/backends/host_topology.h"
#include "device-plugin/backends/link_domains.h"

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
                   sym("nvmlGpuInstanceGetComputeInstanceById", api.gpu_instance_get_compute_instance_by_id, false),
                   sym("nvmlDeviceSetMigMode", api.device_set_mig_mode, false),
                   sym("nvmlDeviceGetPciInfo_v3", api.device_get_pci_info, false),
                   sym("nvmlSystemGetDriverVersion", api.system_get_driver_version, false),
                   sym("nvmlDeviceGetNvLinkState", api.device_get_nvlink_state, false),
                   sym("nvmlDeviceGetNvLinkRemotePciInfo_v2", api.device_get_nvlink_remote_pci_info, false),
                   sym("nvmlDeviceGetNvLinkRemoteDeviceType", api.device_get_nvlink_remote_device_type, false),
                   sym("nvmlDeviceGetSupportedEventTypes", api.device_get_supported_event_types, false),
                   sym("nvmlDeviceGetRetiredPagesPendingStatus", api.device_get_retired_pages_pending_status, false),
                   sym("nvmlDeviceGetRemappedRows", api.device_get_remapped_rows, false)}) {
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

NvmlBackend::NvmlBackend(NvmlApi api, const catalog::Catalog& catalog, NvmlOptions options)
    : api_(api), catalog_(catalog), options_(std::move(options)) {
  critical_xids_ = nvml::DefaultCriticalXids();
  critical_xids_.insert(options_.extra_critical_xids.begin(), options_.extra_critical_xids.end());
  if (options_.event_wait_ms == 0) options_.event_wait_ms = 1;
}

StatusOr<std::unique_ptr<NvmlBackend>> NvmlBackend::Create(NvmlApi api, const catalog::Catalog& catalog) {
  return Create(api, catalog, NvmlOptions{});
}

StatusOr<std::unique_ptr<NvmlBackend>> NvmlBackend::Create(NvmlApi api, const catalog::Catalog& catalog,
                                                           NvmlOptions options) {
  for (void* required : {reinterpret_cast<void*>(api.init), reinterpret_cast<void*>(api.device_get_count),
                         reinterpret_cast<void*>(api.device_get_handle_by_index),
                         reinterpret_cast<void*>(api.device_get_uuid), reinterpret_cast<void*>(api.device_get_name),
                         reinterpret_cast<void*>(api.device_get_memory_info)})
    if (!required) return Status::InvalidArgument("nvml", "function table is incomplete");
  std::unique_ptr<NvmlBackend> b(new NvmlBackend(api, catalog, std::move(options)));
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
  StopHealthEvents();
  if (api_.shutdown) api_.shutdown();
  if (api_.library) dlclose(api_.library);
}

void NvmlBackend::StopHealthEvents() {
  stop_events_ = true;
  if (event_thread_.joinable()) event_thread_.join();
  if (events_ && api_.event_set_free) api_.event_set_free(events_);
  events_ = nullptr;
}

StatusOr<std::vector<DeviceInfo>> NvmlBackend::Discover() {
  unsigned int count = 0;
  int rc = api_.device_get_count(&count);
  if (rc != nvml::kSuccess) return Status::Unavailable("nvmlDeviceGetCount: " + Error(rc));
  if (count > 64) return Status::Internal("NVML reports " + std::to_string(count) + " GPUs; refusing more than 64");
  std::string driver_version;
  if (api_.system_get_driver_version) {
    char version[96] = {};
    if (api_.system_get_driver_version(version, sizeof version - 1) == nvml::kSuccess) driver_version = version;
  }
  const HostTopology host(options_.sysfs_root);
  std::vector<DeviceInfo> out;
  std::vector<nvml::Device> handles;  // parallel to `out`; null for cards NVML cannot open
  for (unsigned int i = 0; i < count; ++i) {
    nvml::Device dev = nullptr;
    rc = api_.device_get_handle_by_index(i, &dev);
    DeviceInfo d;
    d.index = static_cast<int>(i);
    d.vendor = "nvidia";
    d.driver_version = driver_version;
    if (rc != nvml::kSuccess) {
      // A GPU NVML cannot even open is reported, unhealthy, so that the kubelet sees it go away.
      d.uuid = "nvml-index-" + std::to_string(i);
      d.model = "unknown";
      d.healthy = false;
      d.health_reason = "NVML cannot open GPU " + std::to_string(i) + ": " + Error(rc);
      out.push_back(d);
      handles.push_back(nullptr);
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
    for (const auto& alias : nvml::ProductNameAliases(product)) {
      if (model) break;
      model = catalog_.Find(alias);
    }
    d.model = model ? model->name : (product.empty() ? "unknown" : product);
    if (model) d.compute_units = model->compute_units;
    nvml::Memory mem{};
    rc = api_.device_get_memory_info(dev, &mem);
    if (rc == nvml::kSuccess) {
      d.memory_mib = static_cast<int64_t>(mem.total / (1024 * 1024));
      d.memory_used_mib = static_cast<int64_t>(mem.used / (1024 * 1024));
    } else {
      d.healthy = false;  // GPU_IS_LOST and friends: the card is not usable
      d.health_reason = "NVML cannot read the card's memory: " + Error(rc);
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
    if (api_.device_get_mig_mode && api_.device_get_mig_mode(dev, &mig_current, &mig_pending) == nvml::kSuccess) {
      d.mig_enabled = mig_current == nvml::kMigEnable;
      d.mig_reset_pending = mig_current != mig_pending;
    }
    nvml::PciInfo pci{};
    if (api_.device_get_pci_info && api_.device_get_pci_info(dev, &pci) == nvml::kSuccess) {
      d.pci_bus_id = PciAddress(pci.domain, pci.bus, pci.device, 0);
      d.numa_node = host.NumaNode(d.pci_bus_id);
      d.cpu_affinity = host.CpuAffinity(d.pci_bus_id);
    }
    // Memory faults that wait for a reset: the card works, but the driver asks for a reset before
    // the bad memory is fenced off, so new work should not land on it.
    int pending_pages = 0;
    if (d.healthy && api_.device_get_retired_pages_pending_status &&
        api_.device_get_retired_pages_pending_status(dev, &pending_pages) == nvml::kSuccess &&
        pending_pages == nvml::kFeatureEnabled) {
      d.healthy = false;
      d.health_reason = "retired memory pages wait for a GPU reset (nvidia-smi -q -d PAGE_RETIREMENT)";
    }
    unsigned int corrected = 0, uncorrected = 0, remap_pending = 0, remap_failed = 0;
    if (d.healthy && api_.device_get_remapped_rows &&
        api_.device_get_remapped_rows(dev, &corrected, &uncorrected, &remap_pending, &remap_failed) == nvml::kSuccess &&
        (remap_pending || remap_failed)) {
      d.healthy = false;
      d.health_reason = remap_failed ? "row remapping failed: the card needs service (nvidia-smi -q -d ROW_REMAPPER)"
                                     : "remapped memory rows wait for a GPU reset (nvidia-smi -q -d ROW_REMAPPER)";
    }
    {
      std::lock_guard<std::mutex> lock(health_mu_);
      if (auto it = event_faults_.find(d.uuid); it != event_faults_.end() && d.healthy) {
        d.healthy = false;
        d.health_reason = it->second;
      }
    }
    out.push_back(std::move(d));
    handles.push_back(dev);
  }
  FillTopology(out, handles);
  // A card seen before and missing now has fallen off the bus or been unbound: it stays in the
  // list, unhealthy, so the kubelet marks its devices unhealthy instead of the card silently
  // shrinking the node (and its pods keep a record of what they held).
  std::lock_guard<std::mutex> lock(health_mu_);
  std::set<std::string> present;
  for (const auto& d : out) present.insert(d.uuid);
  for (auto& [uuid, last] : known_) {
    if (present.count(uuid) || uuid.rfind("nvml-index-", 0) == 0) continue;
    DeviceInfo gone = last;
    gone.healthy = false;
    gone.health_reason = "the NVIDIA driver no longer lists this GPU (fallen off the bus or unbound)";
    gone.memory_used_mib = -1;
    gone.utilization_ratio = gone.temperature_celsius = gone.power_watts = -1;
    gone.index = -1 - last.index;  // not an NVML index any more; DeviceFor refuses it
    out.push_back(std::move(gone));
  }
  for (const auto& d : out)
    if (d.index >= 0 && d.uuid.rfind("nvml-index-", 0) != 0) known_[d.uuid] = d;
  return out;
}

void NvmlBackend::FillTopology(std::vector<DeviceInfo>& cards, const std::vector<nvml::Device>& handles) {
  std::map<std::string, NvLinks> links;
  if (!api_.device_get_nvlink_state) {
    std::lock_guard<std::mutex> lock(health_mu_);
    nvlinks_ = links;
    return;
  }
  std::map<std::string, int> by_bus;  // sysfs PCI address -> position in `cards`
  for (size_t i = 0; i < cards.size(); ++i)
    if (!cards[i].pci_bus_id.empty()) by_bus[cards[i].pci_bus_id] = static_cast<int>(i);
  LinkDomains domains(static_cast<int>(cards.size()));
  // Every GPU whose links end on NVSwitches is in one fabric with every other such GPU: the
  // switches route between all of them (NVSwitch systems: HGX/DGX baseboards).
  int fabric = -1;
  for (size_t i = 0; i < cards.size(); ++i) {
    if (!handles[i]) continue;
    NvLinks& mine = links[cards[i].uuid];
    for (unsigned int link = 0; link < nvml::kNvLinkMaxLinks; ++link) {
      int active = 0;
      int rc = api_.device_get_nvlink_state(handles[i], link, &active);
      if (rc == nvml::kErrorInvalidArgument || rc == nvml::kErrorNotSupported) break;  // past the last link
      if (rc != nvml::kSuccess || active != nvml::kFeatureEnabled) continue;
      ++mine.active;
      int type = nvml::kNvLinkDeviceTypeGpu;
      if (api_.device_get_nvlink_remote_device_type &&
          api_.device_get_nvlink_remote_device_type(handles[i], link, &type) != nvml::kSuccess)
        type = -1;
      if (type == nvml::kNvLinkDeviceTypeSwitch) {
        ++mine.to_switch;
        if (fabric < 0) fabric = domains.AddHub();
        domains.Link(static_cast<int>(i), fabric);
        continue;
      }
      nvml::PciInfo remote{};
      if (!api_.device_get_nvlink_remote_pci_info ||
          api_.device_get_nvlink_remote_pci_info(handles[i], link, &remote) != nvml::kSuccess)
        continue;
      // The remote end is a GPU on this node when its bus ID is one of ours (the remote PCI
      // info of a link to an IBM NPU or an unknown device names nothing of ours).
      auto peer = by_bus.find(PciAddress(remote.domain, remote.bus, remote.device, 0));
      if (peer == by_bus.end() || peer->second == static_cast<int>(i)) continue;
      ++mine.to_peer[cards[static_cast<size_t>(peer->second)].uuid];
      domains.Link(static_cast<int>(i), peer->second);
    }
  }
  std::vector<int> keys;
  for (const auto& c : cards) keys.push_back(c.index);
  std::vector<std::string> names = domains.Names("nvlink-", keys, "gpu-");
  for (size_t i = 0; i < cards.size(); ++i)
    if (handles[i]) cards[i].link_domain = names[i];
  std::lock_guard<std::mutex> lock(health_mu_);
  nvlinks_ = std::move(links);
}

std::map<std::string, NvmlBackend::NvLinks> NvmlBackend::LastNvLinks() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  return nvlinks_;
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

std::vector<std::string> ProductNameAliases(const std::string& product) {
  // NVML names PCIe boards "NVIDIA A100 80GB PCIe" and "NVIDIA H100 PCIe"; catalogs (and the
  // Kubernetes GPU feature labels) spell them "A100-PCIE-80GB". Tried only after the name itself.
  std::vector<std::string> out;
  std::string p = product;
  if (p.rfind("NVIDIA ", 0) == 0) {
    p = p.substr(7);
    out.push_back(p);
  }
  const std::string suffix = " PCIe";
  if (p.size() > suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0) {
    std::string base = p.substr(0, p.size() - suffix.size());  // "A100 80GB"
    auto space = base.find(' ');
    if (space != std::string::npos)
      out.push_back(base.substr(0, space) + "-PCIE-" + base.substr(space + 1));  // "A100-PCIE-80GB"
    else
      out.push_back(base + "-PCIE");
  }
  return out;
}

const std::set<unsigned long long>& DefaultCriticalXids() {
  // 48 double-bit ECC error; 63 page retired / row remapped, effective after a reset; 64 page
  // retirement / row remapping failed; 74 NVLink error; 79 GPU fallen off the bus; 92 high
  // single-bit ECC rate; 95 uncontained ECC error; 119 / 120 GSP timeout / error; 154 GPU
  // recovery action changed (reset or reboot required). docs/hardware.md gives the sources.
  static const std::set<unsigned long long> xids = {48, 63, 64, 74, 79, 92, 95, 119, 120, 154};
  return xids;
}

StatusOr<std::set<unsigned long long>> ParseXidList(const std::string& text) {
  std::set<unsigned long long> out;
  std::string item;
  auto flush = [&]() -> Status {
    size_t first = item.find_first_not_of(" \t"), last = item.find_last_not_of(" \t");
    std::string t = first == std::string::npos ? "" : item.substr(first, last - first + 1);
    item.clear();
    if (t.empty()) return Status::Ok();
    if (t.size() > 5 || t.find_first_not_of("0123456789") != std::string::npos || std::stoul(t) == 0 ||
        std::stoul(t) > 65535)
      return Status::InvalidArgument("--critical-xids", "\"" + t + "\" is not an XID (a whole number 1..65535)");
    out.insert(std::stoul(t));
    return Status::Ok();
  };
  for (char c : text) {
    if (c == ',') {
      TS_RETURN_IF_ERROR(flush());
    } else {
      item += c;
    }
  }
  TS_RETURN_IF_ERROR(flush());
  return out;
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

StatusOr<MigModeChange> NvmlBackend::SetMigMode(const DeviceInfo& card, bool enabled) {
  std::lock_guard<std::mutex> lock(mig_mu_);
  if (!api_.device_set_mig_mode || !api_.device_get_mig_mode)
    return Status::FailedPrecondition("this NVIDIA driver's NVML cannot change MIG mode (needs R470 or newer)");
  auto dev = DeviceFor(card);
  if (!dev.ok()) return dev.status();
  const unsigned int want = enabled ? nvml::kMigEnable : nvml::kMigDisable;
  unsigned int current = 0, pending = 0;
  int rc = api_.device_get_mig_mode(*dev, &current, &pending);
  if (rc == nvml::kErrorNotSupported)
    return Status::FailedPrecondition(card.uuid + " (" + card.model + ") does not support MIG");
  if (rc != nvml::kSuccess) return Status::Unavailable("reading the MIG mode of " + card.uuid + ": " + Error(rc));
  if (current == want && pending == want) return MigModeChange::kApplied;
  int activation = nvml::kSuccess;
  rc = api_.device_set_mig_mode(*dev, want, &activation);
  if (rc == nvml::kErrorNoPermission)
    return Status::FailedPrecondition("changing MIG mode on " + card.uuid + " needs root (CAP_SYS_ADMIN): " + Error(rc));
  if (rc == nvml::kErrorNotSupported)
    return Status::FailedPrecondition(card.uuid + " (" + card.model + ") does not support MIG");
  if (rc == nvml::kErrorInUse || (rc == nvml::kSuccess && activation == nvml::kErrorInUse))
    return Status::FailedPrecondition("the driver refused to change MIG mode on " + card.uuid +
                                      ": processes use the card (" + Error(nvml::kErrorInUse) + ")");
  if (rc != nvml::kSuccess) return Status::Unavailable("nvmlDeviceSetMigMode on " + card.uuid + ": " + Error(rc));
  // The function can succeed while activation waits for a reset (RESET_REQUIRED, e.g. in a
  // pass-through VM or with GPU clients the driver cannot stop); read back what holds now.
  if (api_.device_get_mig_mode(*dev, &current, &pending) == nvml::kSuccess && current == want)
    return MigModeChange::kApplied;
  if (activation == nvml::kSuccess || activation == nvml::kErrorResetRequired) return MigModeChange::kPendingReset;
  return Status::Unavailable("MIG mode on " + card.uuid + " did not change: activation " + Error(activation));
}

Status NvmlBackend::StartHealthEvents(std::function<void()> on_change) {
  if (!api_.event_set_create || !api_.device_register_events || !api_.event_set_wait)
    return Status::FailedPrecondition("this NVML has no event API; health is polled only");
  if (event_thread_.joinable()) return Status::FailedPrecondition("health events are already watched");
  int rc = api_.event_set_create(&events_);
  if (rc != nvml::kSuccess) return Status::Unavailable("nvmlEventSetCreate: " + Error(rc));
  unsigned int count = 0;
  if (api_.device_get_count(&count) != nvml::kSuccess) count = 0;
  int registered = 0;
  std::string refused;
  for (unsigned int i = 0; i < count && i < 64; ++i) {
    nvml::Device dev = nullptr;
    if (api_.device_get_handle_by_index(i, &dev) != nvml::kSuccess) continue;
    // Register only what the card supports: asking for an unsupported type fails the whole call.
    unsigned long long supported = nvml::kHealthEventTypes;
    if (api_.device_get_supported_event_types &&
        api_.device_get_supported_event_types(dev, &supported) != nvml::kSuccess)
      supported = nvml::kEventTypeXidCriticalError;
    const unsigned long long types = supported & nvml::kHealthEventTypes;
    // NOT_SUPPORTED on some boards (and inside some VMs): that card is polled only.
    if (types != 0 && (rc = api_.device_register_events(dev, types, events_)) == nvml::kSuccess)
      ++registered;
    else
      refused += (refused.empty() ? "" : ", ") + std::to_string(i);
  }
  on_health_change_ = std::move(on_change);
  stop_events_ = false;
  event_thread_ = std::thread([this] { EventLoop(); });
  if (registered == 0) return Status::FailedPrecondition("no GPU accepts health event registration; health is polled only");
  if (!refused.empty())
    log::Warn("nvml.events_partial", "some GPUs refuse health events; their health is polled only",
              {{"gpus", refused}});
  return Status::Ok();
}

bool NvmlBackend::RecordFault(const std::string& uuid, const std::string& reason, unsigned long long xid) {
  std::lock_guard<std::mutex> lock(health_mu_);
  if (xid) xid_failures_[uuid] = xid;
  return event_faults_.emplace(uuid, reason).second;
}

void NvmlBackend::EventLoop() {
  log::ChangeLog wait_errors;
  bool changed = false;  // a card's health changed since on_change last ran
  std::chrono::steady_clock::time_point report_by{};
  while (!stop_events_) {
    nvml::EventData data{};
    // After an event, drain what is queued without waiting, then report the batch once: a storm
    // of thousands of XIDs costs one refresh of the kubelet's view, not thousands. An endless
    // storm still reports within 100 ms of the first change.
    if (changed && std::chrono::steady_clock::now() >= report_by) {
      if (on_health_change_) on_health_change_();
      changed = false;
    }
    int rc = api_.event_set_wait(events_, &data, changed ? 0 : options_.event_wait_ms);
    if (rc == nvml::kErrorTimeout) {
      if (changed && on_health_change_) on_health_change_();
      changed = false;
      continue;
    }
    if (rc == nvml::kErrorGpuIsLost) {
      // One of the cards is gone; which one, the wait does not say. Discover finds out.
      wait_errors.Record("wait", "lost", log::Level::kError, "nvml.gpu_lost",
                         "NVML reports a lost GPU while waiting for events; re-reading the cards");
      if (on_health_change_) on_health_change_();
      changed = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.event_wait_ms));
      continue;
    }
    if (rc != nvml::kSuccess) {
      wait_errors.Record("wait", Error(rc), log::Level::kWarn, "nvml.event_wait_failed",
                         "nvmlEventSetWait failed; health is polled until it recovers", {{"error", Error(rc)}});
      if (changed && on_health_change_) on_health_change_();
      changed = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.event_wait_ms));
      continue;
    }
    wait_errors.Record("wait", "ok", log::Level::kInfo, "nvml.event_wait_recovered", "nvmlEventSetWait works again");
    events_seen_++;
    std::string reason;
    unsigned long long xid = 0;
    if (data.event_type & nvml::kEventTypeXidCriticalError) {
      xid = data.event_data;
      if (!critical_xids_.count(xid)) {
        std::lock_guard<std::mutex> lock(health_mu_);
        if (ignored_xids_[xid]++ == 0)
          log::Info("nvml.xid_not_critical", "XID not on the critical list; the card stays in service",
                    {{"xid", std::to_string(xid)}});
        continue;
      }
      reason = "critical XID " + std::to_string(xid);
    } else if (data.event_type & nvml::kEventTypeDoubleBitEccError) {
      reason = "double-bit (uncorrectable) ECC error";
    } else if (data.event_type & nvml::kEventTypeDramRetirementFailure) {
      reason = "memory page retirement / row remapping failed";
    } else if (data.event_type & nvml::kEventTypeDramRetirementEvent) {
      reason = "memory page retired / row remapped: effective after a GPU reset";
    } else {
      continue;
    }
    char uuid[96] = {};
    if (!data.device || api_.device_get_uuid(data.device, uuid, sizeof uuid) != nvml::kSuccess) continue;
    uuid[sizeof uuid - 1] = '\0';
    if (RecordFault(uuid, reason, xid)) {
      if (!changed) report_by = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      changed = true;
      log::Error("nvml.card_fault", "card taken out of service", {{"uuid", uuid}, {"reason", reason}});
    }
  }
}

std::map<unsigned long long, uint64_t> NvmlBackend::IgnoredXids() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  return ignored_xids_;
}

std::map<std::string, unsigned long long> NvmlBackend::XidFailures() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  return xid_failures_;
}

}  // namespace tideslice::deviceplugin
