#include "scheduler/sim/scenario.h"

#include <gtest/gtest.h>

namespace tideslice::sim {
namespace {

TEST(Scenario, DefaultClusterIsMixedAscendAndNvidia) {
  const auto& cat = catalog::Catalog::Builtin();
  auto cluster = DefaultCluster(cat);
  std::set<std::string> vendors, models;
  int cards = 0;
  for (const auto& n : cluster.nodes())
    for (const auto& c : n.cards) {
      vendors.insert(c.model->vendor);
      models.insert(c.model->name);
      cards++;
    }
  EXPECT_EQ(vendors, (std::set<std::string>{"huawei", "nvidia"}));
  EXPECT_GE(models.size(), 5u);
  EXPECT_EQ(cards, 128);
}

TEST(Scenario, EveryGeneratedPodPassesPreFilterAndPoliciesDiffer) {
  const auto& cat = catalog::Catalog::Builtin();
  auto cluster = DefaultCluster(cat);
  auto pods = DefaultWorkload(cluster, 7, 1.3);
  ASSERT_GT(pods.size(), 50u);
  std::set<std::string> kinds;
  for (const auto& p : pods) kinds.insert(p.kind);
  EXPECT_EQ(kinds, (std::set<std::string>{"exclusive", "fractional", "multi-card", "profile", "tflops", "whole"}));
  auto frag = RunScenario(pods, cluster, cat, core::Policy::kFragAware, 7);
  auto spread = RunScenario(pods, cluster, cat, core::Policy::kSpread, 7);
  EXPECT_EQ(frag.rejected_at_prefilter, 0);
  EXPECT_GT(frag.placed, 0);
  EXPECT_LT(frag.placed, frag.pods);  // 130 % demand cannot all fit
  EXPECT_GT(frag.allocated_pct, spread.allocated_pct);
  EXPECT_EQ(frag.curve.size(), pods.size());
  EXPECT_LE(frag.allocated_pct, 100.0);
  // Deterministic for a seed.
  auto again = RunScenario(pods, cluster, cat, core::Policy::kFragAware, 7);
  EXPECT_EQ(again.placed, frag.placed);
  EXPECT_DOUBLE_EQ(again.allocated_pct, frag.allocated_pct);
}

}  // namespace
}  // namespace tideslice::sim
