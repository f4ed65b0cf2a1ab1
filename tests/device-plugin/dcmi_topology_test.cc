// The DCMI backend on Ascend machines (deploy/examples layouts and other server models): HCCS
// link domains (from the driver's pair topology, or per model where it cannot answer), NUMA and
// CPUs from the chip's PCI address, health alarms and fault codes, and which vNPU templates each
// chip can create.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "device-plugin/backends/dcmi_backend.h"
#include "device-plugin/backends/mock_backend.h"
#include "tests/device-plugin/fake_dcmi_machine.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using namespace testsupport::fakedcmi;

const catalog::Catalog& Cat() { return catalog::Catalog::Builtin(); }

std::unique_ptr<DcmiBackend> Backend(const std::string& sysfs, DcmiApi api = Api()) {
  DcmiOptions o;
  o.sysfs_root = sysfs;
  auto b = DcmiBackend::Create(api, Cat(), o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(*b);
}

void ExpectMatchesLayout(const std::vector<DeviceInfo>& got, const std::string& file) {
  auto mock = MockBackend::FromFile(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/" + file, Cat());
  ASSERT_TRUE(mock.ok());
  auto want = *(*mock)->Discover();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].uuid);
    EXPECT_EQ(got[i].uuid, want[i].uuid);
    EXPECT_EQ(got[i].model, want[i].model);
    EXPECT_EQ(got[i].memory_mib, want[i].memory_mib);
    EXPECT_EQ(got[i].pci_bus_id, want[i].pci_bus_id);
    EXPECT_EQ(got[i].numa_node, want[i].numa_node);
    EXPECT_EQ(got[i].cpu_affinity, want[i].cpu_affinity);
    EXPECT_EQ(got[i].link_domain, want[i].link_domain);
    EXPECT_EQ(got[i].compute_units, want[i].compute_units);
    EXPECT_EQ(got[i].driver_version, "24.1.rc2");
    EXPECT_TRUE(got[i].healthy);
  }
}

std::vector<std::string> Domains(const std::vector<DeviceInfo>& cards) {
  std::vector<std::string> out;
  for (const auto& c : cards) out.push_back(c.link_domain);
  return out;
}

TEST(DcmiTopologyTest, Atlas800TA2IsOneHccsDomainFromTheDriverOrByModel) {
  testsupport::TempDir sysfs("tssys");
  LoadLayout("atlas-800t-a2.json", sysfs.path(), 1, "910B3", 0x32);
  auto cards = Backend(sysfs.path())->Discover();
  ASSERT_TRUE(cards.ok()) << cards.status().ToString();
  ExpectMatchesLayout(*cards, "atlas-800t-a2.json");
  // The driver cannot answer (older driver, or the pair query fails behind a 0): the model's rule.
  for (int mode : {1, 2}) {
    m.topo_mode = mode;
    auto by_model = Backend(sysfs.path())->Discover();
    ExpectMatchesLayout(*by_model, "atlas-800t-a2.json");
  }
  DcmiApi no_topo = Api();
  no_topo.get_topo_info_by_device_id = nullptr;
  ExpectMatchesLayout(*Backend(sysfs.path(), no_topo)->Discover(), "atlas-800t-a2.json");
  // The driver's answer wins over the rule: a chip whose HCCS links are down is on its own.
  m.topo_mode = 0;
  m.hccs_group[7] = 99;
  auto split = Backend(sysfs.path())->Discover();
  EXPECT_EQ((*split)[6].link_domain, "hccs-0");
  EXPECT_EQ((*split)[7].link_domain, "npu-7");
}

TEST(DcmiTopologyTest, Atlas300IDuoPairsTheTwoChipsOfEachCard) {
  testsupport::TempDir sysfs("tssys");
  LoadLayout("atlas-300i-duo.json", sysfs.path(), 2, "310P3", 0xFFFFFFFF);
  auto cards = Backend(sysfs.path())->Discover();
  ASSERT_TRUE(cards.ok());
  ExpectMatchesLayout(*cards, "atlas-300i-duo.json");
  EXPECT_THAT((*cards)[0].partition_profiles,
              ElementsAre("vir01", "vir02", "vir02_1c", "vir04", "vir04_3c", "vir04_3c_ndvpp", "vir04_4c_dvpp"));
}

TEST(DcmiTopologyTest, OtherServerModelsByTheirRules) {
  testsupport::TempDir sysfs("tssys");
  m = Machine{};
  m.topo_mode = 1;
  // Atlas 800 9000 (910 A1): two full-mesh groups of 4 by physical ID, whatever the logic IDs.
  for (int i = 0; i < 8; ++i) m.chips.push_back(MakeChip(i, 0, i, static_cast<unsigned int>(7 - i), "910ProB", 0xFFFFFFFF, 32));
  EXPECT_THAT(Domains(*Backend(sysfs.path())->Discover()),
              ElementsAre("hccs-0", "hccs-0", "hccs-0", "hccs-0", "hccs-4", "hccs-4", "hccs-4", "hccs-4"));
  // Atlas 200T A2 Box16 (16x 910B): two HCCS rings of 8.
  m.chips.clear();
  for (int i = 0; i < 16; ++i) m.chips.push_back(MakeChip(i, 0, i, static_cast<unsigned int>(i), "910B4", 0x33, 20, 32768));
  auto box = *Backend(sysfs.path())->Discover();
  EXPECT_EQ(box[7].link_domain, "hccs-0");
  EXPECT_EQ(box[8].link_domain, "hccs-8");
  EXPECT_EQ(box[15].link_domain, "hccs-8");
  // Atlas 800T A3 (910C): 8 modules x 2 dies, all one domain; no catalog model yet.
  m.chips.clear();
  for (int i = 0; i < 16; ++i) m.chips.push_back(MakeChip(i / 2, i % 2, i, static_cast<unsigned int>(i), "Ascend910", 0xB1, 24));
  auto a3 = *Backend(sysfs.path())->Discover();
  for (const auto& c : a3) EXPECT_EQ(c.link_domain, "hccs-0");
  EXPECT_EQ(a3[0].model, "Ascend910C") << "not mistaken for the 910A the catalog's alias names";
  EXPECT_THAT(a3[0].partition_profiles, ElementsAre("vir06_1c_16g", "vir12_3c_32g"));
  // No topology, unknown chips: every chip on its own.
  m.chips.clear();
  m.chips.push_back(MakeChip(0, 0, 0, 0, "310B1"));
  m.chips.push_back(MakeChip(1, 0, 1, 1, "310B1"));
  EXPECT_THAT(Domains(*Backend(sysfs.path())->Discover()), ElementsAre("npu-0", "npu-1"));
}

TEST(DcmiHealthTest, AlarmsAndFaultCodes) {
  testsupport::TempDir sysfs("tssys");
  LoadLayout("atlas-800t-a2.json", sysfs.path(), 1, "910B3", 0x32);
  m.chips[0].health = 1;  // minor alarm: stays in service, codes kept for people
  m.chips[0].codes = {0x80E18402};
  m.chips[1].health = 3;
  m.chips[1].codes = {0x80CB8009, 0x80E18402};
  m.chips[2].codes = {dcmi::kFaultCardDrop};  // health still says normal
  m.chips[3].health_rc = -8005;
  m.chips[4].health = dcmi::kHealthAbsent;
  m.chips[5].codes = {0x81078603};
  auto b = Backend(sysfs.path());
  auto cards = *b->Discover();
  EXPECT_TRUE(cards[0].healthy);
  EXPECT_FALSE(cards[1].healthy);
  EXPECT_EQ(cards[1].health_reason, "critical alarm (fault codes 0x80CB8009 0x80E18402)");
  EXPECT_FALSE(cards[2].healthy);
  EXPECT_THAT(cards[2].health_reason, HasSubstr("0x40F84E00"));
  EXPECT_EQ(cards[3].health_reason, "dcmi_get_device_health failed with code -8005");
  EXPECT_EQ(cards[4].health_reason, "device absent");
  EXPECT_TRUE(cards[5].healthy) << "not on the critical list by default";
  EXPECT_EQ(b->LastFaultCodes().at("Ascend910B3-0"), std::vector<unsigned int>{0x80E18402});
  DcmiOptions o;
  o.sysfs_root = sysfs.path();
  o.extra_critical_fault_codes = {0x81078603};
  auto strict = DcmiBackend::Create(Api(), Cat(), o);
  EXPECT_FALSE((*(*strict)->Discover())[5].healthy);
  // A chip DCMI stops listing stays, unhealthy.
  m.chips[6].present = false;
  auto after = *b->Discover();
  ASSERT_EQ(after.size(), 8u);
  EXPECT_EQ(after.back().uuid, "Ascend910B3-6");
  EXPECT_EQ(after.back().health_reason, "DCMI no longer lists this chip");
}

TEST(DcmiTemplatesTest, EachChipOffersOnlyWhatItsDriverCreates) {
  using dcmi::Identify;
  using dcmi::VnpuTemplates;
  EXPECT_THAT(VnpuTemplates(Identify("910B3", 0x32, 20)), ElementsAre("vir05_1c_16g", "vir10_3c_32g"));
  EXPECT_THAT(VnpuTemplates(Identify("910B4", 0x33, 20)),
              ElementsAre("vir05_1c_8g", "vir10_3c_16g", "vir10_3c_16g_nm", "vir10_4c_16g_m"));
  // 910B4-1 boards: 64 GB chips with the 32 GB/16 GB templates, whatever the chip name says.
  EXPECT_THAT(VnpuTemplates(Identify("910B4", 0x38, 20)), ElementsAre("vir05_1c_16g", "vir10_3c_32g"));
  EXPECT_THAT(VnpuTemplates(Identify("910B2", 0x30, 24)), ElementsAre("vir06_1c_16g", "vir12_3c_32g"));
  EXPECT_THAT(VnpuTemplates(Identify("910B2", 0xFFFFFFFF, 24)), ElementsAre("vir06_1c_16g", "vir12_3c_32g"));
  EXPECT_THAT(VnpuTemplates(Identify("A2G3", 0xFFFFFFFF, 20)), ElementsAre("vir05_1c_16g", "vir10_3c_32g"));
  EXPECT_THAT(VnpuTemplates(Identify("910ProB", 0xFFFFFFFF, 32)), ElementsAre("vir02", "vir04", "vir08", "vir16"));
  EXPECT_THAT(VnpuTemplates(Identify("Ascend910", 0xB0, 20)), ElementsAre("vir05_1c_16g", "vir10_3c_32g"));
  EXPECT_TRUE(VnpuTemplates(Identify("910B9", 0xFFFFFFFF, 20)).empty());
  EXPECT_TRUE(VnpuTemplates(Identify("310B1", 0xFFFFFFFF, 8)).empty());
}

TEST(DcmiTemplatesTest, ATemplateTheChipCannotCreateIsRefusedBeforeTheDriver) {
  testsupport::TempDir sysfs("tssys");
  m = Machine{};
  m.chips.push_back(MakeChip(0, 0, 0, 0, "910B2", 0x30, 24));
  m.chips.push_back(MakeChip(1, 0, 1, 1, "910B4", 0x38, 20));  // a 910B4-1 board
  auto b = Backend(sysfs.path());
  auto cards = *b->Discover();
  // The catalog's 910B2 lists vir03_1c_8g; this board's libdcmi does not create it.
  EXPECT_TRUE(Cat().Find("Ascend910B2")->FindProfile("vir03_1c_8g"));
  auto refused = b->CreatePartition(cards[0], "vir03_1c_8g", -1);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("(chip 910B2, board 0x30) cannot create vNPU template vir03_1c_8g; it can create "
                        "vir06_1c_16g, vir12_3c_32g"));
  EXPECT_TRUE(m.created.empty());
  EXPECT_THAT(cards[0].partition_profiles, ElementsAre("vir06_1c_16g", "vir12_3c_32g"));
  // 910B4-1 on a driver from before the fix knows the 32 GB template only by its 910B4 name.
  m.known_templates = {"vir10_3c_16g", "vir05_1c_8g"};
  auto id = b->CreatePartition(cards[1], "vir10_3c_32g", -1);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(m.created.back(), "1:vir10_3c_16g");
  m.known_templates.clear();
  ASSERT_TRUE(b->CreatePartition(cards[1], "vir05_1c_16g", -1).ok());
  EXPECT_EQ(m.created.back(), "1:vir05_1c_16g");
  EXPECT_EQ(b->CreatePartition(cards[1], "vir10_3c_16g", -1).status().code(), StatusCode::kInvalidArgument)
      << "the 910B4 name is not offered for a 910B4-1 board";
}

}  // namespace
}  // namespace tideslice::deviceplugin
