#include "scheduler/sim/offline_bound.h"

#include <gtest/gtest.h>

namespace tideslice::sim {
namespace {

// Cards point into the catalog: it outlives every cluster of the test.
const catalog::Catalog& Cat() {
  static const catalog::Catalog cat = TraceCatalog();
  return cat;
}

core::ClusterState Cluster(const std::vector<TraceNode>& nodes) {
  auto c = TraceCluster(nodes, Cat());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : core::ClusterState{};
}

core::PodRequest Pod(int cards, int milli, std::vector<std::string> spec = {}) {
  TracePod t{"p", 1000, 1024, cards, milli, std::move(spec)};
  return TraceRequest(t, Cat(), "p");
}

TEST(OfflineBound, FlowBoundRoutesTypeConstrainedDemandToItsModels) {
  // 2 T4 cards on one node, 8 V100 cards on another.
  auto cluster = Cluster({{"t4", 64000, 262144, 2, "T4"}, {"v100", 96000, 262144, 8, "V100M16"}});
  // Three whole T4-only cards asked: only two exist. A 4-card pod fits the 8-card node only.
  std::vector<core::PodRequest> pods = {Pod(1, 1000, {"T4"}), Pod(1, 1000, {"T4"}), Pod(1, 1000, {"T4"}),
                                        Pod(4, 1000)};
  EXPECT_EQ(FlowUpperBoundMilli(cluster, pods), 2000 + 4000);
  // Fractional pods of any model fill the rest, but never past the capacity of 10 cards.
  for (int i = 0; i < 20; ++i) pods.push_back(Pod(1, 500));
  EXPECT_EQ(FlowUpperBoundMilli(cluster, pods), 10000);
}

TEST(OfflineBound, FlowBoundKeepsMultiCardPodsOffSmallNodes) {
  auto cluster = Cluster({{"a", 32000, 131072, 4, "T4"}, {"b", 32000, 131072, 4, "T4"}});
  EXPECT_EQ(FlowUpperBoundMilli(cluster, {Pod(8, 1000)}), 0);
  EXPECT_EQ(FlowUpperBoundMilli(cluster, {Pod(8, 1000), Pod(4, 1000), Pod(4, 1000), Pod(4, 1000)}), 8000);
  EXPECT_EQ(FlowUpperBoundMilli(cluster, {Pod(1, 300, {"V100M32"})}), 0);  // no such cards here
}

std::vector<TraceNode> Nodes() {
  std::vector<TraceNode> n;
  for (int i = 0; i < 6; ++i) n.push_back({"n" + std::to_string(i), 32000, 131072, i < 2 ? 8 : 2, i < 2 ? "V100M32" : "T4"});
  return n;
}

std::vector<TracePod> Pods() {
  std::vector<TracePod> p;
  for (int i = 0; i < 30; ++i) {
    TracePod t{"p" + std::to_string(100 + i), 2000, 4096, 1, 250 + 50 * (i % 10), {}};
    if (i % 5 == 0) t = {"p" + std::to_string(100 + i), 8000, 8192, 4, 1000, {"V100M32"}};
    if (i % 7 == 0) t.gpu_spec = {"T4"};
    p.push_back(t);
  }
  return p;
}

TEST(OfflineBound, TraceReferencesBracketTheOnlineResult) {
  ReplayOptions o;
  o.seed = 3;
  auto bounds = TraceOfflineBounds(Nodes(), Pods(), o, {100, 130});
  ASSERT_TRUE(bounds.ok()) << bounds.status().ToString();
  ASSERT_EQ(bounds->size(), 2u);
  auto replay = Replay(Nodes(), Pods(), "t", o);
  ASSERT_TRUE(replay.ok());
  for (const auto& b : *bounds) {
    // The online figure is the replay's own point.
    EXPECT_DOUBLE_EQ(b.online_pct, replay->points[b.arrived_pct].allocated_pct);
    // The online run plus 4 orders x 3 policies, all feasible placements.
    EXPECT_EQ(b.heuristics.size(), 13u);  // the online run + 4 orders x 3 policies
    EXPECT_GE(b.offline_best_pct, b.online_pct);
    for (const auto& h : b.heuristics) EXPECT_LE(h.allocated_pct, b.offline_best_pct);
    EXPECT_FALSE(b.offline_best.empty());
    // No packer beats the relaxation, and nothing is allocated beyond what arrived.
    EXPECT_LE(b.offline_best_pct, b.upper_bound_pct + 1e-9);
    EXPECT_LE(b.upper_bound_pct, 100.0 + 1e-9);
  }
  EXPECT_LE((*bounds)[0].upper_bound_pct, (*bounds)[1].upper_bound_pct);
  // Deterministic for a seed.
  auto again = TraceOfflineBounds(Nodes(), Pods(), o, {130});
  ASSERT_TRUE(again.ok());
  EXPECT_DOUBLE_EQ(again->front().offline_best_pct, (*bounds)[1].offline_best_pct);
}

TEST(OfflineBound, PointsOutsideTheReplayAreRefused) {
  ReplayOptions o;
  auto bad = TraceOfflineBounds(Nodes(), Pods(), o, {0});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find("--at"), std::string::npos);
  EXPECT_FALSE(TraceOfflineBounds(Nodes(), Pods(), o, {131}).ok());
}

TEST(OfflineBound, ScenarioOfflinePackersPlaceAtLeastTheOnlineResult) {
  const auto& cat = catalog::Catalog::Builtin();
  auto cluster = DefaultCluster(cat);
  auto pods = DefaultWorkload(cluster, 7, 1.3);
  for (int at : {100, 0}) {
    OfflineBound b = ScenarioOfflineBound(pods, cluster, cat, core::Policy::kFragAware, 7, at);
    EXPECT_EQ(b.heuristics.size(), 13u);  // the online run + 4 orders x 3 policies
    EXPECT_GE(b.offline_best_pct, b.online_pct);
    EXPECT_LE(b.offline_best_pct, 100.0);
    EXPECT_LT(b.upper_bound_pct, 0);  // not computed for scenarios
    if (at == 0) {
      EXPECT_DOUBLE_EQ(b.online_pct, RunScenario(pods, cluster, cat, core::Policy::kFragAware, 7).allocated_pct);
      EXPECT_EQ(b.arrived_pct, 130);
    } else {
      EXPECT_EQ(b.arrived_pct, 100);
    }
  }
}

}  // namespace
}  // namespace tideslice::sim
