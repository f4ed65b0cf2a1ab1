#include "tests/fuzz/hardware_targets.h"

#include <string>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/dcmi_backend.h"
#include "device-plugin/backends/host_topology.h"
#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/backends/nvml_backend.h"

namespace tideslice::fuzz {

void Fuzz_hardware_text(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Whatever comes in, what comes out is either refused or well-formed.
  const std::string bus = deviceplugin::CanonicalPciAddress(text);
  if (!bus.empty() && (bus.size() != 12 || deviceplugin::CanonicalPciAddress(bus) != bus)) __builtin_trap();
  std::string cpus;
  std::vector<int> list;
  if (deviceplugin::ParseCpuList(text, &cpus, &list)) {
    std::string again;
    if (!deviceplugin::ParseCpuList(cpus, &again) || again != cpus) __builtin_trap();
    for (size_t i = 1; i < list.size(); ++i)
      if (list[i] <= list[i - 1]) __builtin_trap();
  }
  auto xids = deviceplugin::nvml::ParseXidList(text);
  if (xids.ok())
    for (auto x : *xids)
      if (x == 0 || x > 65535) __builtin_trap();
  (void)deviceplugin::dcmi::VnpuTemplates(deviceplugin::dcmi::Identify(text, size, static_cast<unsigned int>(size)));
  (void)deviceplugin::nvml::ProductNameAliases(text);
  auto mock = deviceplugin::MockBackend::FromJson(text, catalog::Catalog::Builtin());
  if (mock.ok()) (void)(*mock)->Discover();
}

}  // namespace tideslice::fuzz
