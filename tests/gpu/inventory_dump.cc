// tideslice-inventory-dump: what a backend reports about this machine's cards, as JSON, for the
// scripts that compare it with the vendors' own tools (nvml_inventory_check.sh: nvidia-smi;
// npu_inventory_check.sh: npu-smi). Runs the same backend code as the node agent.
//
//   tideslice-inventory-dump --backend nvml|dcmi|mock [--library PATH] [--sysfs-root DIR]
//                            [--mock-config FILE]
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/catalog/catalog.h"
#include "common/flags.h"
#include "device-plugin/backends/dcmi_backend.h"
#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/backends/nvml_backend.h"

using namespace tideslice;
using namespace tideslice::deviceplugin;

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tideslice-inventory-dump: %s\n", msg.c_str());
  return 2;
}

nlohmann::json CardJson(const DeviceInfo& c) {
  return {{"uuid", c.uuid},
          {"index", c.index},
          {"model", c.model},
          {"vendor", c.vendor},
          {"memoryMib", c.memory_mib},
          {"healthy", c.healthy},
          {"healthReason", c.health_reason},
          {"numaNode", c.numa_node},
          {"cpuAffinity", c.cpu_affinity},
          {"linkDomain", c.link_domain},
          {"pciBusId", c.pci_bus_id},
          {"computeUnits", c.compute_units},
          {"driverVersion", c.driver_version},
          {"migEnabled", c.mig_enabled},
          {"migResetPending", c.mig_reset_pending},
          {"partitionProfiles", c.partition_profiles}};
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = ParseFlags(argc, argv, {"--backend", "--library", "--sysfs-root", "--mock-config"});
  if (!parsed.ok()) return Fail(parsed.status().message());
  if (parsed->help) {
    std::printf("usage: tideslice-inventory-dump --backend nvml|dcmi|mock [--library PATH] [--sysfs-root DIR] "
                "[--mock-config FILE]\n");
    return 0;
  }
  auto& flags = parsed->values;
  auto get = [&](const char* k, const std::string& def) { return flags.count(k) ? flags[k] : def; };
  const catalog::Catalog& catalog = catalog::Catalog::Builtin();
  const std::string backend = get("--backend", "nvml");
  nlohmann::json out = {{"backend", backend}};
  std::vector<DeviceInfo> cards;
  if (backend == "nvml") {
    auto api = LoadNvml(get("--library", "libnvidia-ml.so.1"));
    if (!api.ok()) return Fail(api.status().message());
    NvmlOptions o;
    o.sysfs_root = get("--sysfs-root", "/sys");
    auto b = NvmlBackend::Create(*api, catalog, o);
    if (!b.ok()) return Fail(b.status().message());
    auto found = (*b)->Discover();
    if (!found.ok()) return Fail(found.status().ToString());
    cards = *found;
    auto links = (*b)->LastNvLinks();
    nlohmann::json nv = nlohmann::json::object();
    for (const auto& [uuid, l] : links) nv[uuid] = {{"active", l.active}, {"toSwitch", l.to_switch}, {"toPeer", l.to_peer}};
    out["nvlinks"] = nv;
  } else if (backend == "dcmi") {
    auto api = LoadDcmi(get("--library", "libdcmi.so"));
    if (!api.ok()) return Fail(api.status().message());
    DcmiOptions o;
    o.sysfs_root = get("--sysfs-root", "/sys");
    auto b = DcmiBackend::Create(*api, catalog, o);
    if (!b.ok()) return Fail(b.status().message());
    auto found = (*b)->Discover();
    if (!found.ok()) return Fail(found.status().ToString());
    cards = *found;
    nlohmann::json codes = nlohmann::json::object();
    for (const auto& [uuid, list] : (*b)->LastFaultCodes()) codes[uuid] = list;
    out["faultCodes"] = codes;
  } else if (backend == "mock") {
    if (!flags.count("--mock-config")) return Fail("--backend mock needs --mock-config FILE");
    auto b = MockBackend::FromFile(flags["--mock-config"], catalog);
    if (!b.ok()) return Fail(b.status().ToString());
    cards = *(*b)->Discover();
  } else {
    return Fail("--backend must be nvml, dcmi or mock");
  }
  out["cards"] = nlohmann::json::array();
  for (const auto& c : cards) out["cards"].push_back(CardJson(c));
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
