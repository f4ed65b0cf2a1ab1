// The vNPU templates a chip's driver accepts travel from the backend through the inventory to the
// placement core: a template the catalog model lists but this chip cannot create is never
// offered, so no pod is placed where its Allocate would fail.
#include <gtest/gtest.h>

#include "common/catalog/catalog.h"
#include "device-plugin/plugin/inventory.h"
#include "scheduler/core/placement.h"
#include "scheduler/service/state.h"
#include "tests/scheduler/core/test_cluster.h"

namespace tideslice {
namespace {

deviceplugin::DeviceInfo Chip(const std::string& uuid, int index, std::vector<std::string> accepted) {
  deviceplugin::DeviceInfo c;
  c.uuid = uuid;
  c.index = index;
  c.vendor = "huawei";
  c.model = "Ascend910B2";
  c.memory_mib = 65536;
  c.partition_profiles = std::move(accepted);
  return c;
}

TEST(PartitionOffer, InventoryListsOnlyTheTemplatesTheChipAccepts) {
  auto inv = deviceplugin::BuildInventory("n", "dcmi", {Chip("NPU-0", 0, {"vir06_1c_16g", "vir12_3c_32g"}), Chip("NPU-1", 1, {})},
                                          catalog::Catalog::Builtin(), std::chrono::system_clock::now());
  ASSERT_EQ(inv.cards_size(), 2);
  EXPECT_EQ(std::vector<std::string>(inv.cards(0).profiles().begin(), inv.cards(0).profiles().end()),
            (std::vector<std::string>{"vir06_1c_16g", "vir12_3c_32g"}));
  EXPECT_EQ(inv.cards(1).profiles_size(), 3) << "a backend that does not know: the catalog model's templates";
}

TEST(PartitionOffer, ThePlacementCoreNeverPicksATemplateTheChipCannotCreate) {
  const auto& catalog = catalog::Catalog::Builtin();
  auto inv = deviceplugin::BuildInventory("n", "dcmi", {Chip("NPU-0", 0, {"vir06_1c_16g", "vir12_3c_32g"})}, catalog,
                                          std::chrono::system_clock::now());
  core::ClusterState cluster;
  cluster.AddNode(service::NodeFromInventory(inv, {}, catalog, cluster));
  const core::NodeState& node = *cluster.FindNode("n");
  core::Context ctx;
  ctx.policy = core::Policy::kBinpack;

  core::PodRequest refused =
      core::testing::Req("small", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", "vir03_1c_8g"}});
  core::NodeVerdict no = core::Filter(node, refused, ctx);
  EXPECT_EQ(no.kind, core::VerdictKind::kNeverFits) << no.reason;

  core::PodRequest accepted =
      core::testing::Req("medium", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", "vir06_1c_16g"}});
  core::NodeVerdict yes = core::Filter(node, accepted, ctx);
  ASSERT_EQ(yes.kind, core::VerdictKind::kFits) << yes.reason;
  EXPECT_EQ(yes.plan.containers.at(0).cards.at(0).profile, "vir06_1c_16g");
}

}  // namespace
}  // namespace tideslice
