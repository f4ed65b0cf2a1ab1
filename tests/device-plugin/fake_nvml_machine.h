// A fake NVML driver holding a whole machine: GPUs with PCI addresses, NVLinks (to NVSwitches or
// to peer GPUs), MIG mode with a pending mode, processes, memory faults waiting for a reset, and
// an event queue; plus a sysfs tree in a temporary directory with each GPU's NUMA node and CPUs.
// It is built from the machine layouts in deploy/examples, so the real NvmlBackend code path
// (NVML calls -> sysfs -> union-find -> DeviceInfo) is what the tests exercise. One machine per
// process at a time (NVML's C API has no user pointer, so the fake's state is global).
#pragma once

#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "device-plugin/backends/nvml_backend.h"
#include "tests/support/test_support.h"

namespace tideslice::testsupport::fakenvml {

namespace nvml = deviceplugin::nvml;

struct Link {
  int type = nvml::kNvLinkDeviceTypeGpu;
  deviceplugin::nvml::PciInfo remote{};
};
struct Gpu {
  std::string uuid, product;
  unsigned long long total = 0, used = 0;
  unsigned int domain = 0, bus = 0, device = 0;
  bool present = true;          // false: the driver no longer lists it
  int memory_rc = nvml::kSuccess;
  std::vector<Link> links;      // empty: no NVLink (NOT_SUPPORTED on link 0)
  bool mig_capable = false;
  unsigned int mig_current = 0, mig_pending = 0;
  int set_mig_activation = nvml::kSuccess;  // what nvmlDeviceSetMigMode reports as activation status
  bool set_mig_needs_reset = false;         // the change only becomes pending
  int retired_pending = 0;
  unsigned int remap_pending = 0, remap_failed = 0;
  std::vector<unsigned int> pids;
};
struct Machine {
  std::vector<Gpu> gpus;
  std::string driver_version = "550.54.15";
  std::mutex mu;  // guards events
  std::deque<nvml::EventData> events;
  int wait_rc_once = nvml::kSuccess;  // returned once by the next wait (e.g. GPU_IS_LOST)
  std::vector<std::pair<unsigned int, unsigned long long>> registered;  // (gpu, types)
  std::vector<std::pair<std::string, unsigned int>> set_mig_calls;      // (uuid, mode)
  int supported_events = -1;  // -1: everything; else the mask returned
};
inline Machine& M() {
  static Machine m;
  return m;
}

inline Gpu* G(nvml::Device d) { return static_cast<Gpu*>(d); }
inline std::vector<Gpu*> Present() {
  std::vector<Gpu*> out;
  for (auto& g : M().gpus)
    if (g.present) out.push_back(&g);
  return out;
}
inline nvml::PciInfo PciOf(unsigned int domain, unsigned int bus, unsigned int device) {
  nvml::PciInfo p{};
  p.domain = domain;
  p.bus = bus;
  p.device = device;
  std::snprintf(p.bus_id, sizeof p.bus_id, "%08X:%02X:%02X.0", domain, bus, device);
  std::snprintf(p.bus_id_legacy, sizeof p.bus_id_legacy, "%04X:%02X:%02X.0", domain, bus, device);
  return p;
}

inline int Ok() { return nvml::kSuccess; }
inline int Count(unsigned int* n) { return *n = static_cast<unsigned int>(Present().size()), nvml::kSuccess; }
inline int Handle(unsigned int i, nvml::Device* d) {
  auto p = Present();
  if (i >= p.size()) return nvml::kErrorInvalidArgument;
  *d = p[i];
  return nvml::kSuccess;
}
inline int Uuid(nvml::Device d, char* buf, unsigned int len) {
  if (G(d)->uuid.size() + 1 > len) return nvml::kErrorInsufficientSize;
  std::strcpy(buf, G(d)->uuid.c_str());
  return nvml::kSuccess;
}
inline int Name(nvml::Device d, char* buf, unsigned int len) {
  std::strncpy(buf, G(d)->product.c_str(), len - 1);
  return nvml::kSuccess;
}
inline int Memory(nvml::Device d, nvml::Memory* m) {
  if (G(d)->memory_rc != nvml::kSuccess) return G(d)->memory_rc;
  *m = {G(d)->total, G(d)->total - G(d)->used, G(d)->used};
  return nvml::kSuccess;
}
inline int Pci(nvml::Device d, nvml::PciInfo* p) { return *p = PciOf(G(d)->domain, G(d)->bus, G(d)->device), nvml::kSuccess; }
inline int DriverVersion(char* buf, unsigned int len) {
  std::strncpy(buf, M().driver_version.c_str(), len - 1);
  return nvml::kSuccess;
}
inline int LinkState(nvml::Device d, unsigned int link, int* active) {
  if (G(d)->links.empty()) return nvml::kErrorNotSupported;
  if (link >= G(d)->links.size()) return nvml::kErrorInvalidArgument;
  *active = nvml::kFeatureEnabled;
  return nvml::kSuccess;
}
inline int LinkRemotePci(nvml::Device d, unsigned int link, nvml::PciInfo* p) {
  if (link >= G(d)->links.size()) return nvml::kErrorInvalidArgument;
  *p = G(d)->links[link].remote;
  return nvml::kSuccess;
}
inline int LinkRemoteType(nvml::Device d, unsigned int link, int* type) {
  if (link >= G(d)->links.size()) return nvml::kErrorInvalidArgument;
  *type = G(d)->links[link].type;
  return nvml::kSuccess;
}
inline int MigMode(nvml::Device d, unsigned int* cur, unsigned int* pending) {
  if (!G(d)->mig_capable) return nvml::kErrorNotSupported;
  *cur = G(d)->mig_current;
  *pending = G(d)->mig_pending;
  return nvml::kSuccess;
}
inline int SetMigMode(nvml::Device d, unsigned int mode, int* activation) {
  M().set_mig_calls.push_back({G(d)->uuid, mode});
  if (!G(d)->mig_capable) return nvml::kErrorNotSupported;
  if (!G(d)->pids.empty()) return *activation = nvml::kErrorInUse, nvml::kSuccess;  // as the driver: processes block it
  G(d)->mig_pending = mode;
  if (G(d)->set_mig_needs_reset) return *activation = nvml::kErrorResetRequired, nvml::kSuccess;
  G(d)->mig_current = mode;
  *activation = G(d)->set_mig_activation;
  return nvml::kSuccess;
}
inline int Procs(nvml::Device d, unsigned int* count, nvml::ProcessInfo* infos) {
  const auto& pids = G(d)->pids;
  if (*count < pids.size()) {
    *count = static_cast<unsigned int>(pids.size());
    return nvml::kErrorInsufficientSize;
  }
  for (size_t i = 0; i < pids.size(); ++i) infos[i] = {pids[i], 1ull << 30, 0xFFFFFFFF, 0xFFFFFFFF};
  *count = static_cast<unsigned int>(pids.size());
  return nvml::kSuccess;
}
inline int RetiredPending(nvml::Device d, int* pending) { return *pending = G(d)->retired_pending, nvml::kSuccess; }
inline int RemappedRows(nvml::Device d, unsigned int* corr, unsigned int* unc, unsigned int* pending, unsigned int* failed) {
  *corr = 0;
  *unc = G(d)->remap_pending + G(d)->remap_failed;
  *pending = G(d)->remap_pending;
  *failed = G(d)->remap_failed;
  return nvml::kSuccess;
}
inline int SupportedEvents(nvml::Device, unsigned long long* types) {
  *types = M().supported_events < 0 ? 0xFFFFull : static_cast<unsigned long long>(M().supported_events);
  return nvml::kSuccess;
}
inline int SetCreate(nvml::EventSet* s) { return *s = &M(), nvml::kSuccess; }
inline int Register(nvml::Device d, unsigned long long types, nvml::EventSet) {
  auto p = Present();
  for (unsigned int i = 0; i < p.size(); ++i)
    if (p[i] == d) M().registered.push_back({i, types});
  return nvml::kSuccess;
}
inline int Wait(nvml::EventSet, nvml::EventData* data, unsigned int timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(M().mu);
    if (M().wait_rc_once != nvml::kSuccess) {
      int rc = M().wait_rc_once;
      M().wait_rc_once = nvml::kSuccess;
      return rc;
    }
    if (!M().events.empty()) {
      *data = M().events.front();
      M().events.pop_front();
      return nvml::kSuccess;
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, 5u)));
  return nvml::kErrorTimeout;
}
inline int SetFree(nvml::EventSet) { return nvml::kSuccess; }
inline void Push(const nvml::EventData& e) {
  std::lock_guard<std::mutex> lock(M().mu);
  M().events.push_back(e);
}
inline size_t Queued() {
  std::lock_guard<std::mutex> lock(M().mu);
  return M().events.size();
}

inline deviceplugin::NvmlApi Api() {
  deviceplugin::NvmlApi a;
  a.init = Ok;
  a.shutdown = Ok;
  a.device_get_count = Count;
  a.device_get_handle_by_index = Handle;
  a.device_get_uuid = Uuid;
  a.device_get_name = Name;
  a.device_get_memory_info = Memory;
  a.device_get_pci_info = Pci;
  a.system_get_driver_version = DriverVersion;
  a.device_get_nvlink_state = LinkState;
  a.device_get_nvlink_remote_pci_info = LinkRemotePci;
  a.device_get_nvlink_remote_device_type = LinkRemoteType;
  a.device_get_mig_mode = MigMode;
  a.device_set_mig_mode = SetMigMode;
  a.device_get_compute_running_processes = Procs;
  a.device_get_retired_pages_pending_status = RetiredPending;
  a.device_get_remapped_rows = RemappedRows;
  a.device_get_supported_event_types = SupportedEvents;
  a.event_set_create = SetCreate;
  a.device_register_events = Register;
  a.event_set_wait = Wait;
  a.event_set_free = SetFree;
  return a;
}

// MIG instance listing for a driver whose cards hold no MIG instances.
inline int MaxMig(nvml::Device, unsigned int* n) { return *n = 7, nvml::kSuccess; }
inline int NoMigDevice(nvml::Device, unsigned int, nvml::Device*) { return nvml::kErrorNotFound; }
inline int NoGiId(nvml::Device, unsigned int*) { return nvml::kErrorInvalidArgument; }
inline int NoGi(nvml::Device, unsigned int, nvml::GpuInstance*) { return nvml::kErrorNotFound; }
inline int NoGiInfo(nvml::GpuInstance, nvml::GpuInstanceInfo*) { return nvml::kErrorInvalidArgument; }
inline int NoProfile(nvml::Device, unsigned int, nvml::GpuInstanceProfileInfo*) { return nvml::kErrorNotSupported; }
inline deviceplugin::NvmlApi ApiListingNoMigInstances() {
  deviceplugin::NvmlApi a = Api();
  a.device_get_max_mig_device_count = MaxMig;
  a.device_get_mig_device_handle_by_index = NoMigDevice;
  a.device_get_gpu_instance_id = NoGiId;
  a.device_get_gpu_instance_by_id = NoGi;
  a.gpu_instance_get_info = NoGiInfo;
  a.device_get_gpu_instance_profile_info = NoProfile;
  return a;
}

// NVML's product names for the catalog models the layouts use (as nvidia-smi prints them).
inline std::string ProductName(const std::string& model) {
  static const std::map<std::string, std::string> names = {{"H100-80G", "NVIDIA H100 80GB HBM3"},
                                                           {"A100-80G", "NVIDIA A100 80GB PCIe"},
                                                           {"T4", "Tesla T4"},
                                                           {"A10", "NVIDIA A10"}};
  auto it = names.find(model);
  return it == names.end() ? model : it->second;
}

// Loads deploy/examples/<file> into the fake driver and writes the sysfs tree under `sysfs`.
inline void LoadLayout(const std::string& file, const std::string& sysfs) {
  std::ifstream in(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/" + file);
  nlohmann::json layout = nlohmann::json::parse(in);
  Machine& m = M();
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.events.clear();
  }
  m.gpus.clear();
  m.registered.clear();
  m.set_mig_calls.clear();
  m.wait_rc_once = nvml::kSuccess;
  m.supported_events = -1;
  const std::string fabric = layout["machine"].value("interconnect", "pcie");
  const int links = layout["machine"].value("linksPerCard", 0);
  const auto& cards = layout["cards"];
  m.gpus.reserve(cards.size());
  for (const auto& c : cards) {
    Gpu g;
    g.uuid = c["uuid"];
    g.product = ProductName(c["model"]);
    g.total = c["memoryMib"].get<unsigned long long>() << 20;
    unsigned int dom = 0, bus = 0, dev = 0, fn = 0;
    std::sscanf(c["pciBusId"].get<std::string>().c_str(), "%x:%x:%x.%x", &dom, &bus, &dev, &fn);
    g.domain = dom;
    g.bus = bus;
    g.device = dev;
    g.mig_capable = c["model"] == "H100-80G" || c["model"] == "A100-80G";
    const std::string dir = sysfs + "/bus/pci/devices/" + c["pciBusId"].get<std::string>();
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/numa_node") << c.value("numaNode", -1) << "\n";
    if (c.contains("cpuAffinity")) std::ofstream(dir + "/local_cpulist") << c["cpuAffinity"].get<std::string>() << "\n";
    m.gpus.push_back(g);
  }
  for (size_t i = 0; i < m.gpus.size(); ++i) {
    Gpu& g = m.gpus[i];
    if (fabric == "nvswitch") {
      // Four switches on the baseboard; links are spread over them.
      for (int l = 0; l < links; ++l) g.links.push_back({nvml::kNvLinkDeviceTypeSwitch, PciOf(0, 0xc0 + l % 4, 0)});
    } else if (fabric == "nvlink-bridge") {
      // Every link of a card goes to the other member(s) of its layout link domain.
      std::vector<size_t> peers;
      for (size_t j = 0; j < m.gpus.size(); ++j)
        if (j != i && cards[j]["linkDomain"] == cards[i]["linkDomain"]) peers.push_back(j);
      for (int l = 0; l < links && !peers.empty(); ++l) {
        const Gpu& p = m.gpus[peers[static_cast<size_t>(l) % peers.size()]];
        g.links.push_back({nvml::kNvLinkDeviceTypeGpu, PciOf(p.domain, p.bus, p.device)});
      }
    }
  }
}

}  // namespace tideslice::testsupport::fakenvml
