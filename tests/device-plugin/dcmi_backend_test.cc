// The DCMI backend against a fake libdcmi function table: discovery, health codes, HBM, vNPU
// create/destroy, and error paths, without an Ascend card.
#include "device-plugin/backends/dcmi_backend.h"

#include <cstring>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

struct FakeNpu {
  int logic;
  std::string chip;
  unsigned int health = 0;
  unsigned long long hbm_mb = 65536, used_mb = 2048;
  int free_aicore = 20;
};
struct FakeDcmi {
  int init_rc = 0;
  std::vector<int> cards = {0, 1};
  std::map<int, std::vector<FakeNpu>> devices;  // card -> devices
  unsigned int next_vnpu = 100;
  std::vector<std::pair<int, unsigned int>> destroyed;
} g;

int Init() { return g.init_rc; }
int CardList(int* n, int* list, int len) {
  *n = static_cast<int>(g.cards.size());
  for (int i = 0; i < *n && i < len; ++i) list[i] = g.cards[i];
  return 0;
}
int NumInCard(int card, int* n) {
  *n = static_cast<int>(g.devices[card].size());
  return 0;
}
FakeNpu* Npu(int card, int dev) { return &g.devices[card].at(static_cast<size_t>(dev)); }
int LogicId(int* logic, int card, int dev) {
  *logic = Npu(card, dev)->logic;
  return 0;
}
int Chip(int card, int dev, dcmi::ChipInfo* info) {
  std::memset(info, 0, sizeof *info);
  std::strcpy(reinterpret_cast<char*>(info->chip_type), "Ascend");
  std::strcpy(reinterpret_cast<char*>(info->chip_name), Npu(card, dev)->chip.c_str());
  info->aicore_cnt = 20;
  return 0;
}
int Health(int card, int dev, unsigned int* h) {
  *h = Npu(card, dev)->health;
  return 0;
}
int Hbm(int card, int dev, dcmi::HbmInfo* hbm) {
  *hbm = {};
  hbm->memory_size = Npu(card, dev)->hbm_mb;
  hbm->memory_usage = Npu(card, dev)->used_mb;
  return 0;
}
int Temp(int, int, int* t) { return *t = 48, 0; }
int Power(int, int, int* p) { return *p = 1235, 0; }
int Create(int card, int dev, dcmi::CreateVdevRes* res, dcmi::CreateVdevOut* out) {
  if (res->vdev_id != 0xFFFFFFFF || res->vfg_id != 0xFFFFFFFF) return -8001;  // the driver chooses both
  const std::string tmpl(res->template_name, strnlen(res->template_name, sizeof res->template_name));
  int need = tmpl.rfind("vir10", 0) == 0 ? 10 : 5;
  if (Npu(card, dev)->free_aicore < need) return 8;
  Npu(card, dev)->free_aicore -= need;
  out->vdev_id = g.next_vnpu++;
  return 0;
}
int Destroy(int card, int dev, unsigned int id) {
  g.destroyed.push_back({Npu(card, dev)->logic, id});
  return 0;
}

DcmiApi FakeApi() {
  DcmiApi api;
  api.init = Init;
  api.get_card_list = CardList;
  api.get_device_num_in_card = NumInCard;
  api.get_device_logic_id = LogicId;
  api.get_device_chip_info = Chip;
  api.get_device_health = Health;
  api.get_device_hbm_info = Hbm;
  api.get_device_temperature = Temp;
  api.get_device_power_info = Power;
  api.create_vdevice = Create;
  api.set_destroy_vdevice = Destroy;
  return api;
}

class DcmiBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g = FakeDcmi{};
    g.devices[0] = {{0, "910B3"}, {1, "910B3"}};
    g.devices[1] = {{2, "310P3", 0, 24576, 0, 8}};
  }
};

TEST_F(DcmiBackendTest, DiscoversEveryDeviceOfEveryCard) {
  auto b = DcmiBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto cards = (*b)->Discover();
  ASSERT_TRUE(cards.ok()) << cards.status().ToString();
  ASSERT_EQ(cards->size(), 3u);
  EXPECT_EQ((*cards)[0].model, "Ascend910B3");
  EXPECT_EQ((*cards)[0].vendor, "huawei");
  EXPECT_EQ((*cards)[0].uuid, "Ascend910B3-0");
  EXPECT_EQ((*cards)[2].model, "Ascend310P3");
  EXPECT_EQ((*cards)[2].index, 2);
  EXPECT_EQ((*cards)[0].memory_mib, 65536);
  EXPECT_EQ((*cards)[0].memory_used_mib, 2048);
  EXPECT_DOUBLE_EQ((*cards)[0].temperature_celsius, 48);
  EXPECT_DOUBLE_EQ((*cards)[0].power_watts, 123.5);  // DCMI reports tenths of a watt
}

TEST_F(DcmiBackendTest, MajorAndCriticalAlarmsAreUnhealthyMinorIsNot) {
  g.devices[0][0].health = 1;  // minor alarm
  g.devices[0][1].health = 3;  // critical alarm
  auto b = DcmiBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  auto cards = (*b)->Discover();
  EXPECT_TRUE((*cards)[0].healthy);
  EXPECT_FALSE((*cards)[1].healthy);
  g.devices[0][1].health = 0;
  EXPECT_TRUE((*(*b)->Discover())[1].healthy);
}

TEST_F(DcmiBackendTest, CreatesAndDestroysVnpusFromTemplates) {
  auto b = DcmiBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  auto first = (*b)->CreateVnpu(1, "vir10_3c_32g");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, 100u);
  auto second = (*b)->CreateVnpu(1, "vir10_3c_32g");
  ASSERT_TRUE(second.ok());
  auto third = (*b)->CreateVnpu(1, "vir05_1c_16g");  // AI Cores exhausted on the fake card
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("vir05_1c_16g on Ascend device 1"));
  ASSERT_TRUE((*b)->DestroyVnpu(1, *first).ok());
  EXPECT_EQ(g.destroyed.back(), (std::pair<int, unsigned int>{1, 100u}));
  EXPECT_EQ((*b)->CreateVnpu(7, "vir05_1c_16g").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*b)->CreateVnpu(0, "").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DcmiBackendTest, PartitionsAreVnpusAddressedByLogicId) {
  auto b = DcmiBackend::Create(FakeApi(), catalog::Catalog::Builtin());
  ASSERT_TRUE(b.ok());
  auto cards = (*b)->Discover();
  ASSERT_TRUE(cards.ok());
  const DeviceInfo& card = cards->at(1);
  auto id = (*b)->CreatePartition(card, "vir10_3c_32g", -1);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE((*b)->DestroyPartition(card, *id).ok());
  EXPECT_EQ((*b)->DestroyPartition(card, "12abc").code(), StatusCode::kInvalidArgument);
}

TEST_F(DcmiBackendTest, ErrorsAreClear) {
  g.init_rc = -8005;
  EXPECT_THAT(DcmiBackend::Create(FakeApi(), catalog::Catalog::Builtin()).status().message(), HasSubstr("dcmi_init failed"));
  g.init_rc = 0;
  DcmiApi partial = FakeApi();
  partial.get_device_health = nullptr;
  EXPECT_THAT(DcmiBackend::Create(partial, catalog::Catalog::Builtin()).status().message(), HasSubstr("incomplete"));
  DcmiApi no_vnpu = FakeApi();
  no_vnpu.create_vdevice = nullptr;
  auto b = DcmiBackend::Create(no_vnpu, catalog::Catalog::Builtin());
  EXPECT_EQ((*b)->CreateVnpu(0, "vir05_1c_16g").status().code(), StatusCode::kFailedPrecondition);
  auto missing = LoadDcmi("libtideslice-no-such-dcmi.so");
  EXPECT_THAT(missing.status().message(), HasSubstr("no Ascend driver found"));
}

}  // namespace
}  // namespace tideslice::deviceplugin
