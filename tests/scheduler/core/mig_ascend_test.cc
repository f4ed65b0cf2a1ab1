// Hard partitions: NVIDIA MIG placement rules and Ascend vNPU template budgets, per model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using namespace testing;  // NOLINT

PodRequest Profile(const std::string& name, const std::string& profile) {
  return Req(name, {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", profile}});
}

struct OneCard {
  ClusterState cluster;
  explicit OneCard(const std::string& model) { cluster.AddNode(MakeNode("n", model, 1)); }
  // Returns the MIG start slot, or -2 if the profile did not fit.
  int Mig(const std::string& name, const std::string& profile) {
    auto p = Place(cluster, Profile(name, profile));
    return p.node.empty() ? -2 : p.containers[0].cards[0].start_slot;
  }
  bool Fits(const std::string& name, const std::string& profile) { return !Place(cluster, Profile(name, profile)).node.empty(); }
  const CardUsage& usage() { return cluster.FindNode("n")->cards[0].usage; }
};

TEST(Mig, FourGAndThreeGCoexist) {
  OneCard c("H100-80G");
  EXPECT_EQ(c.Mig("a", "4g.40gb"), 0);
  EXPECT_EQ(c.Mig("b", "3g.40gb"), 4);
  EXPECT_EQ(c.usage().mig_slot_mask, 0xFFu);
  EXPECT_EQ(c.usage().mig_compute_used, 7);
}

TEST(Mig, ThreeGFirstBlocksFourG) {
  // 3g.40gb takes slot 0 first; 4g.40gb may only start at 0, so it no longer fits, although
  // 4 compute slices and half the memory are still free.
  OneCard c("A100-80G");
  EXPECT_EQ(c.Mig("a", "3g.40gb"), 0);
  EXPECT_EQ(c.Mig("b", "4g.40gb"), -2);
  EXPECT_EQ(c.Mig("c", "3g.40gb"), 4);
}

TEST(Mig, TwoThreeGsLeaveNoRoomForOneG) {
  OneCard c("A100-40G");
  EXPECT_EQ(c.Mig("a", "3g.20gb"), 0);
  EXPECT_EQ(c.Mig("b", "3g.20gb"), 4);
  EXPECT_EQ(c.Mig("c", "1g.5gb"), -2);  // 6 of 7 compute slices used, but no memory slot left
}

TEST(Mig, SevenOneGsThenFull) {
  OneCard c("H100-80G");
  for (int i = 0; i < 7; ++i) EXPECT_EQ(c.Mig("p" + std::to_string(i), "1g.10gb"), i);
  EXPECT_EQ(c.Mig("p7", "1g.10gb"), -2);
  EXPECT_EQ(c.usage().hard_instances, 7);
}

TEST(Mig, TwoGsUseEvenSlotsThenOneGTakesSlotSix) {
  OneCard c("A100-80G");
  EXPECT_EQ(c.Mig("a", "2g.20gb"), 0);
  EXPECT_EQ(c.Mig("b", "2g.20gb"), 2);
  EXPECT_EQ(c.Mig("c", "2g.20gb"), 4);
  EXPECT_EQ(c.Mig("d", "2g.20gb"), -2);  // 2g may not start at 6
  EXPECT_EQ(c.Mig("e", "1g.10gb"), 6);
}

TEST(Mig, OneGTwentyUsesPairsOfSlots) {
  OneCard c("H100-80G");
  EXPECT_EQ(c.Mig("a", "1g.10gb"), 0);
  EXPECT_EQ(c.Mig("b", "1g.20gb"), 2);  // 0-1 is partly used
  EXPECT_EQ(c.Mig("c", "7g.80gb"), -2);
}

TEST(Mig, ReleasingFreesTheSlots) {
  OneCard c("H100-80G");
  EXPECT_EQ(c.Mig("a", "7g.80gb"), 0);
  EXPECT_EQ(c.Mig("b", "1g.10gb"), -2);
  Unreserve(c.cluster, "default/a");
  EXPECT_EQ(c.usage().mig_slot_mask, 0u);
  EXPECT_EQ(c.Mig("b", "1g.10gb"), 0);
}

TEST(Mig, HardPartitionsAndSoftSlicesNeverShareACard) {
  OneCard c("A100-80G");
  ASSERT_TRUE(c.Fits("mig", "1g.10gb"));
  EXPECT_TRUE(Place(c.cluster, Req("soft", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "1Gi"}})).node.empty());
  OneCard d("A100-80G");
  ASSERT_FALSE(Place(d.cluster, Req("soft", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "1Gi"}})).node.empty());
  EXPECT_FALSE(d.Fits("mig", "1g.10gb"));
}

TEST(Mig, ProfilesOnlyOnModelsThatOfferThem) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 1));
  cluster.AddNode(MakeNode("a40", "A100-40G", 1));
  Context ctx;
  EXPECT_EQ(Filter(*cluster.FindNode("t4"), Profile("p", "3g.20gb"), ctx).kind, VerdictKind::kNeverFits);
  EXPECT_EQ(Schedule(cluster, Profile("p", "3g.20gb"), ctx).placement.node, "a40");
  // 3g.40gb exists only on 80 GB cards.
  EXPECT_EQ(Filter(*cluster.FindNode("a40"), Profile("q", "3g.40gb"), ctx).kind, VerdictKind::kNeverFits);
}

TEST(Ascend, Ascend910B3TemplatesFillTwentyAICores) {
  OneCard c("Ascend910B3");
  EXPECT_TRUE(c.Fits("a", "vir10_3c_32g"));
  EXPECT_TRUE(c.Fits("b", "vir05_1c_16g"));
  EXPECT_TRUE(c.Fits("d", "vir05_1c_16g"));
  EXPECT_EQ(c.usage().used_aicore, 20);
  EXPECT_EQ(c.usage().used_aicpu, 5);
  EXPECT_EQ(c.usage().used_memory_mib, 65536);
  EXPECT_FALSE(c.Fits("e", "vir05_1c_16g"));
}

TEST(Ascend, Ascend910B3FourSmallTemplates) {
  OneCard c("Ascend910B3");
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(c.Fits("p" + std::to_string(i), "vir05_1c_16g")) << i;
  EXPECT_FALSE(c.Fits("p4", "vir05_1c_16g"));
}

TEST(Ascend, Ascend910B4HasHalfTheMemoryOf910B4dash1) {
  OneCard b4("Ascend910B4");
  EXPECT_TRUE(b4.Fits("a", "vir10_3c_16g"));
  EXPECT_TRUE(b4.Fits("b", "vir10_3c_16g"));
  EXPECT_EQ(b4.usage().used_memory_mib, 32768);
  EXPECT_FALSE(b4.Fits("c", "vir05_1c_8g"));  // cores exhausted
  OneCard b41("Ascend910B4-1");
  EXPECT_TRUE(b41.Fits("a", "vir10_3c_32g"));
  EXPECT_TRUE(b41.Fits("b", "vir10_3c_32g"));
  EXPECT_EQ(b41.usage().used_memory_mib, 65536);
}

TEST(Ascend, Ascend310P3IsLimitedByAICpus) {
  // 8 AI Cores but 7 AI CPUs: two vir04 (4 AI CPUs each) do not fit, vir04 + vir04_3c do.
  OneCard c("Ascend310P3");
  EXPECT_TRUE(c.Fits("a", "vir04"));
  EXPECT_FALSE(c.Fits("b", "vir04"));
  EXPECT_TRUE(c.Fits("c", "vir04_3c"));
  EXPECT_EQ(c.usage().used_aicpu, 7);
  EXPECT_EQ(c.usage().used_aicore, 8);
}

TEST(Ascend, Ascend310P3EightVir01) {
  OneCard c("Ascend310P3");
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(c.Fits("p" + std::to_string(i), "vir01")) << i;
  EXPECT_FALSE(c.Fits("p7", "vir01"));  // the 8th would need an 8th AI CPU
}

TEST(Ascend, Ascend910B2Templates) {
  OneCard c("Ascend910B2");
  EXPECT_TRUE(c.Fits("a", "vir12_3c_32g"));
  EXPECT_TRUE(c.Fits("b", "vir06_1c_16g"));
  EXPECT_TRUE(c.Fits("c", "vir03_1c_8g"));
  EXPECT_TRUE(c.Fits("d", "vir03_1c_8g"));  // 24 AI Cores, 6 AI CPUs, 64 GiB: exactly full
  EXPECT_FALSE(c.Fits("e", "vir03_1c_8g"));
}

TEST(Ascend, Ascend910ATemplates) {
  OneCard c("Ascend910A");
  EXPECT_TRUE(c.Fits("a", "vir16"));
  EXPECT_TRUE(c.Fits("b", "vir08"));
  EXPECT_TRUE(c.Fits("c", "vir04"));
  EXPECT_TRUE(c.Fits("d", "vir02"));  // 30 AI Cores and 32767 of 32768 MiB: exactly full
  EXPECT_EQ(c.usage().used_aicore, 30);
  EXPECT_FALSE(c.Fits("e", "vir02"));
}

}  // namespace
}  // namespace tideslice::core
