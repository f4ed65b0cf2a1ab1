// libnvidia-ml.so.1 stand-in for tideslice-inventory-dump in ctest: the fake NVML machine of
// tests/device-plugin/fake_nvml_machine.h, exported under NVML's symbol names. The layout comes
// from $TIDESLICE_FAKE_NVML_LAYOUT (a file name in deploy/examples) and the sysfs tree it writes
// goes to $TIDESLICE_FAKE_SYSFS, which the dump then reads with --sysfs-root.
#include <cstdlib>

#include "tests/device-plugin/fake_nvml_machine.h"

namespace fake = tideslice::testsupport::fakenvml;
namespace nvml = tideslice::deviceplugin::nvml;

extern "C" {
int nvmlInit_v2() {
  const char* layout = std::getenv("TIDESLICE_FAKE_NVML_LAYOUT");
  const char* sysfs = std::getenv("TIDESLICE_FAKE_SYSFS");
  if (!layout || !sysfs) return nvml::kErrorDriverNotLoaded;
  try {
    fake::LoadLayout(layout, sysfs);
  } catch (...) {
    return 999;  // NVML_ERROR_UNKNOWN
  }
  return nvml::kSuccess;
}
int nvmlShutdown() { return nvml::kSuccess; }
int nvmlDeviceGetCount_v2(unsigned int* n) { return fake::Count(n); }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvml::Device* d) { return fake::Handle(i, d); }
int nvmlDeviceGetUUID(nvml::Device d, char* b, unsigned int n) { return fake::Uuid(d, b, n); }
int nvmlDeviceGetName(nvml::Device d, char* b, unsigned int n) { return fake::Name(d, b, n); }
int nvmlDeviceGetMemoryInfo(nvml::Device d, nvml::Memory* m) { return fake::Memory(d, m); }
int nvmlDeviceGetPciInfo_v3(nvml::Device d, nvml::PciInfo* p) { return fake::Pci(d, p); }
int nvmlSystemGetDriverVersion(char* b, unsigned int n) { return fake::DriverVersion(b, n); }
int nvmlDeviceGetNvLinkState(nvml::Device d, unsigned int l, int* a) { return fake::LinkState(d, l, a); }
int nvmlDeviceGetNvLinkRemotePciInfo_v2(nvml::Device d, unsigned int l, nvml::PciInfo* p) { return fake::LinkRemotePci(d, l, p); }
int nvmlDeviceGetNvLinkRemoteDeviceType(nvml::Device d, unsigned int l, int* t) { return fake::LinkRemoteType(d, l, t); }
int nvmlDeviceGetMigMode(nvml::Device d, unsigned int* c, unsigned int* p) { return fake::MigMode(d, c, p); }
}
