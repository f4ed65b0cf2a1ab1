#include "scheduler/core/fragmentation.h"

#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using namespace testing;  // NOLINT

FragView View(std::vector<int> free, int64_t cpu_left = -1, int model_id = 0) {
  FragView v;
  v.cards = static_cast<int>(free.size());
  for (size_t i = 0; i < free.size(); ++i) v.free_permille[i] = free[i];
  v.cpu_tracked = cpu_left >= 0;
  v.cpu_left = cpu_left;
  v.model_id = model_id;
  return v;
}

TEST(Fragmentation, CardsTooSmallForThePodAreFragments) {
  auto m = WorkloadModel::FromTypicalPods({{0, 600, 1, {}, 1}});
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({1000, 500})), 500);  // the half-free card strands 500
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({1000, 1000})), 0);
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({300, 500})), 800);   // nothing fits: everything is a fragment
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({0, 0})), 0);
}

TEST(Fragmentation, MultiCardShapesNeedEnoughFittingCards) {
  auto m = WorkloadModel::FromTypicalPods({{0, 1000, 2, {}, 1}});
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({1000, 1000, 400})), 400);
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({1000, 900, 400})), 2300);
}

TEST(Fragmentation, WeightsAndCpu) {
  // Half the pods need 600 milli and 8 cores, half need no card.
  auto m = WorkloadModel::FromTypicalPods({{8000, 600, 1, {}, 1}, {1000, 0, 0, {}, 1}});
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({1000, 500}, 16000)), 0.5 * 500 + 0.5 * 1500);
  EXPECT_DOUBLE_EQ(m.Fragmentation(View({1000, 500}, 4000)), 0.5 * 1500 + 0.5 * 1500);  // too little CPU left
}

TEST(Fragmentation, CardModelsOutsideAShapesListAreFragmentsForIt) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 1));
  cluster.AddNode(MakeNode("h", "H100-80G", 1));
  auto m = WorkloadModel::FromTypicalPods({{0, 500, 1, {"H100-80G"}, 1}});
  m.Bind(cluster);
  EXPECT_DOUBLE_EQ(m.Fragmentation(MakeFragView(*cluster.FindNode("t4"))), 1000);
  EXPECT_DOUBLE_EQ(m.Fragmentation(MakeFragView(*cluster.FindNode("h"))), 0);
}

TEST(Fragmentation, PopularityKeepsTheCommonShapes) {
  std::vector<TypicalPod> pods;
  for (int i = 0; i < 97; ++i) pods.push_back({0, 500, 1, {}, 1});
  for (int i = 0; i < 3; ++i) pods.push_back({0, 1000, 8, {}, 1});
  EXPECT_EQ(WorkloadModel::FromTypicalPods(pods, 1.0).shape_count(), 2u);
  EXPECT_EQ(WorkloadModel::FromTypicalPods(pods, 0.95).shape_count(), 1u);
  auto common = WorkloadModel::FromTypicalPods(pods, 0.95);
  EXPECT_DOUBLE_EQ(common.Fragmentation(View({1000, 1000})), 0);  // 8-card shapes dropped
}

TEST(Fragmentation, MemoryBoundCardsAreAsFullAsComputeBoundOnes) {
  // Shape: 1 card, 20 % compute, 16 GiB. Card 0 has compute left but only 8 GiB of 80 free.
  auto m = WorkloadModel::FromTypicalPods({{0, 200, 1, {}, 1, 16384}});
  FragView v = View({900, 900});
  v.memory_mib = {81920, 81920};
  v.free_memory_mib = {8192, 81920};
  EXPECT_EQ(v.IdleShare(0), 100);  // 8 / 80 GiB is the binding share
  EXPECT_EQ(v.IdleShare(1), 900);
  EXPECT_DOUBLE_EQ(m.Fragmentation(v), 100);  // card 0 cannot host the shape: its 10 % is stranded
  v.free_memory_mib = {81920, 81920};
  EXPECT_DOUBLE_EQ(m.Fragmentation(v), 0);
}

TEST(Fragmentation, ClusterPercentAndAllocatedCardsDoNotCount) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 2));
  auto m = WorkloadModel::FromTypicalPods({{0, 600, 1, {}, 1}});
  m.Bind(cluster);
  EXPECT_DOUBLE_EQ(ClusterFragmentationPercent(cluster, m), 0);
  Place(cluster, Req("p", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "50"}}));
  EXPECT_DOUBLE_EQ(ClusterFragmentationPercent(cluster, m), 100.0 * 500 / 2000);
  Place(cluster, Req("w", {{"tideslice.io/vnpu", "1"}}));  // the other card, whole
  EXPECT_DOUBLE_EQ(ClusterFragmentationPercent(cluster, m), 100.0 * 500 / 2000);
}

TEST(Fragmentation, FragAwarePlacementAvoidsStrandingCards) {
  // Two half-used cards on two nodes, typical pods of 500: a new 300 slice should go where the
  // remainder is least useful... which is a card that already cannot host 500 after all.
  ClusterState cluster;
  cluster.AddNode(MakeNode("a", "A100-80G", 1));
  cluster.AddNode(MakeNode("b", "A100-80G", 1));
  Place(cluster, Req("x", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "70"}}), Policy::kSpread);  // a: 300 free
  Place(cluster, Req("y", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "40"}}), Policy::kSpread);  // b: 600 free
  auto m = WorkloadModel::FromTypicalPods({{0, 500, 1, {}, 1}});
  m.Bind(cluster);
  Context ctx{Policy::kFragAware, &m, nullptr};
  auto req = Req("z", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "30"}});
  // On a: frag 300 -> 0. On b: 600 -> 300 stranded. fragaware picks a; spread would pick b.
  EXPECT_EQ(Schedule(cluster, req, ctx).placement.node, "a");
  EXPECT_EQ(Schedule(cluster, req, Context{Policy::kSpread, &m, nullptr}).placement.node, "b");
}

}  // namespace
}  // namespace tideslice::core
