// The NVML backend against a fake function table: every parsing and error path without a GPU.
#include "device-plugin/backends/nvml_backend.h"

#include <cstring>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

// The fake driver's state; the static functions below read it.
struct FakeGpu {
  std::string uuid, name;
  unsigned long long total = 0, used = 0;
  int memory_rc = nvml::kSuccess;
  int handle_rc = nvml::kSuccess;
  unsigned int util = 0, temp = 0, milliwatts = 0;
};
struct FakeDriver {
  int init_rc = nvml::kSuccess;
  int count_rc = nvml::kSuccess;
  std::vector<FakeGpu> gpus;
  int shutdowns = 0;
} g_driver;

FakeGpu* Gpu(nvml::Device d) { return static_cast<FakeGpu*>(d); }
int Init() { return g_driver.init_rc; }
int Shutdown() { return ++g_driver.shutdowns, nvml::kSuccess; }
int Count(unsigned int* n) {
  *n = static_cast<unsigned int>(g_driver.gpus.size());
  return g_driver.count_rc;
}
int Handle(unsigned int i, nvml::Device* d) {
  if (i >= g_driver.gpus.size()) return 2;
  *d = &g_driver.gpus[i];
  return g_driver.gpus[i].handle_rc;
}
int Uuid(nvml::Device d, char* buf, unsigned int len) {
  if (Gpu(d)->uuid.size() + 1 > len) return nvml::kErrorInsufficientSize;
  std::strcpy(buf, Gpu(d)->uuid.c_str());
  return nvml::kSuccess;
}
int Name(nvml::Device d, char* buf, unsigned int len) {
  std::strncpy(buf, Gpu(d)->name.c_str(), len - 1);
  return nvml::kSuccess;
}
int Memory(nvml::Device d, nvml::Memory* m) {
  if (Gpu(d)->memory_rc != nvml::kSuccess) return Gpu(d)->memory_rc;
  *m = {Gpu(d)->total, Gpu(d)->total - Gpu(d)->used, Gpu(d)->used};
  return nvml::kSuccess;
}
int Util(nvml::Device d, nvml::Utilization* u) {
  *u = {Gpu(d)->util, 0};
  return nvml::kSuccess;
}
int Temp(nvml::Device d, int sensor, unsigned int* t) {
  if (sensor != nvml::kTemperatureGpu) return 2;
  *t = Gpu(d)->temp;
  return nvml::kSuccess;
}
int Power(nvml::Device, unsigned int*) { return nvml::kErrorNotSupported; }
const char* ErrorString(int rc) { return rc == nvml::kErrorGpuIsLost ? "GPU is lost" : "some NVML error"; }

NvmlApi FakeApi() {
  NvmlApi api;
  api.init = Init;
  api.shutdown = Shutdown;
  api.device_get_count = Count;
  api.device_get_handle_by_index = Handle;
  api.device_get_uuid = Uuid;
  api.device_get_name = Name;
  api.device_get_memory_info = Memory;
  api.device_get_utilization_rates = Util;
  api.device_get_temperature = Temp;
  api.device_get_power_usage = Power;
  api.error_string = ErrorString;
  return api;
}

class NvmlBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_driver = FakeDriver{};
    g_driver.gpus = {{"GPU-11111111-2222", "NVIDIA H100 80GB HBM3", 85520809984ull, 1073741824ull},
                     {"GPU-33333333-4444", "Tesla T4", 15843721216ull, 0}};
    g_driver.gpus[0].util = 37;
    g_driver.gpus[0].temp = 55;
  }
};

TEST_F(NvmlBackendTest, DiscoversCardsAndTelemetry) {
  auto b = NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto cards = (*b)->Discover();
  ASSERT_TRUE(cards.ok()) << cards.status().ToString();
  ASSERT_EQ(cards->size(), 2u);
  const auto& h = (*cards)[0];
  EXPECT_EQ(h.uuid, "GPU-11111111-2222");
  EXPECT_EQ(h.model, "H100-80G");  // NVML's product name resolved through catalog aliases
  EXPECT_EQ(h.vendor, "nvidia");
  EXPECT_EQ(h.memory_mib, 81559);  // what the driver reports, not the marketed size
  EXPECT_EQ(h.memory_used_mib, 1024);
  EXPECT_DOUBLE_EQ(h.utilization_ratio, 0.37);
  EXPECT_DOUBLE_EQ(h.temperature_celsius, 55);
  EXPECT_LT(h.power_watts, 0);  // NOT_SUPPORTED: unknown, not zero
  EXPECT_TRUE(h.healthy);
  EXPECT_EQ((*cards)[1].model, "T4");
  b->reset();
  EXPECT_EQ(g_driver.shutdowns, 1);
}

TEST_F(NvmlBackendTest, LostGpusAreUnhealthyNotFatal) {
  g_driver.gpus[1].memory_rc = nvml::kErrorGpuIsLost;
  auto b = NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  ASSERT_TRUE(b.ok());
  auto cards = (*b)->Discover();
  ASSERT_TRUE(cards.ok());
  EXPECT_TRUE((*cards)[0].healthy);
  EXPECT_FALSE((*cards)[1].healthy);
  EXPECT_EQ((*cards)[1].memory_mib, 16384);  // catalog size when the driver cannot say
  g_driver.gpus[1].memory_rc = nvml::kSuccess;
  EXPECT_TRUE((*(*b)->Discover())[1].healthy);  // and back
  g_driver.gpus[0].handle_rc = nvml::kErrorGpuIsLost;
  auto again = (*b)->Discover();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE((*again)[0].healthy);
}

TEST_F(NvmlBackendTest, UnknownProductsKeepTheirName) {
  g_driver.gpus[0].name = "NVIDIA B200";
  auto b = NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  EXPECT_EQ((*(*b)->Discover())[0].model, "NVIDIA B200");
}

TEST_F(NvmlBackendTest, DriverErrorsAreClear) {
  g_driver.init_rc = nvml::kErrorDriverNotLoaded;
  auto b = NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("no NVIDIA driver found"));
  EXPECT_EQ(g_driver.shutdowns, 0);
  g_driver.init_rc = 999;
  EXPECT_THAT(NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin()).status().message(),
              HasSubstr("nvmlInit failed: NVML error 999 (some NVML error)"));
  g_driver.init_rc = nvml::kSuccess;
  g_driver.count_rc = 12;
  auto ok = NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  ASSERT_TRUE(ok.ok());
  EXPECT_THAT((*ok)->Discover().status().message(), HasSubstr("nvmlDeviceGetCount"));
  g_driver.count_rc = nvml::kSuccess;
  g_driver.gpus[0].uuid = std::string(200, 'x');
  EXPECT_THAT((*ok)->Discover().status().message(), HasSubstr("nvmlDeviceGetUUID(0)"));
  NvmlApi incomplete = FakeApi();
  incomplete.device_get_uuid = nullptr;
  EXPECT_THAT(NvmlBackend::Create(incomplete, catalog::Catalog::Builtin()).status().message(), HasSubstr("incomplete"));
}

TEST(NvmlLoader, SaysNoDriverWhenTheLibraryIsAbsent) {
  auto api = LoadNvml("libtideslice-no-such-nvml.so.1");
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(api.status().message(), HasSubstr("no NVIDIA driver found"));
  EXPECT_THAT(api.status().message(), HasSubstr("--backend"));
}

}  // namespace
}  // namespace tideslice::deviceplugin
