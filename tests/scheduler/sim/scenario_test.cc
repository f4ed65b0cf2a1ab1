#include "scheduler/sim/scenario.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>

#include "scheduler/core/request.h"

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

TEST(Scenario, ScaledClusterIsCopiesOfTheSameMix) {
  const auto& cat = catalog::Catalog::Builtin();
  auto one = DefaultCluster(cat);
  auto ten = DefaultCluster(cat, 10);
  EXPECT_EQ(ten.nodes().size(), 10 * one.nodes().size());
  std::map<std::string, int> per_model_one, per_model_ten;
  std::set<std::string> names;
  for (const auto& n : one.nodes())
    for (const auto& c : n.cards) per_model_one[c.model->name]++;
  for (const auto& n : ten.nodes()) {
    EXPECT_TRUE(names.insert(n.name).second) << "duplicate node " << n.name;
    for (const auto& c : n.cards) per_model_ten[c.model->name]++;
  }
  for (const auto& [model, count] : per_model_one) EXPECT_EQ(per_model_ten[model], 10 * count) << model;
  // The workload follows the cluster: the same demand ratio of ten times the cards.
  double demand_one = 0, demand_ten = 0;
  for (const auto& p : DefaultWorkload(one, 7, 1.3)) demand_one += p.card_equivalents;
  for (const auto& p : DefaultWorkload(ten, 7, 1.3)) demand_ten += p.card_equivalents;
  EXPECT_NEAR(demand_ten / demand_one, 10.0, 0.2);
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


std::vector<TraceNode> OpenbNodes() {
  std::vector<TraceNode> n;
  const char* models[] = {"G2", "T4", "P100", "G3", "V100M32", "V100M16", "A10"};
  const int gpus[] = {8, 2, 2, 8, 8, 4, 1};
  for (int i = 0; i < 70; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "openb-node-%04d", i);
    n.push_back({name, 96000, 393216, gpus[i % 7], models[i % 7]});
  }
  n.push_back({"openb-node-cpu", 96000, 393216, 0, ""});  // no GPU: not in the fleet
  return n;
}

TEST(Scenario, OpenbMixedFleetSamplesEveryTenthGpuNodeAndMapsModels) {
  const auto& cat = catalog::Catalog::Builtin();
  auto cluster = OpenbMixedCluster(OpenbNodes(), cat, 10);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  ASSERT_EQ(cluster->nodes().size(), 7u);  // nodes 0, 10, ..., 60
  std::set<std::string> vendors;
  for (const auto& n : cluster->nodes()) {
    ASSERT_FALSE(n.cards.empty());
    for (const auto& c : n.cards) vendors.insert(c.model->vendor);
  }
  EXPECT_EQ(vendors, (std::set<std::string>{"huawei", "nvidia"}));
  // node 0 is a G2 server: eight Ascend 910B3 in two rings of four.
  const auto& first = cluster->nodes().front();
  EXPECT_EQ(first.cards.front().model->name, "Ascend910B3");
  EXPECT_EQ(first.cards.size(), 8u);
  EXPECT_NE(first.cards[0].link_domain, first.cards[4].link_domain);
  EXPECT_EQ(first.cards[0].link_domain, first.cards[3].link_domain);
  EXPECT_EQ(OpenbFleetModel("V100M32"), "A100-80G");
  EXPECT_EQ(OpenbFleetModel("nope"), "");

  auto bad = OpenbMixedCluster({{"x", 8000, 1024, 1, "K80"}}, cat, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find("K80"), std::string::npos);
  EXPECT_FALSE(OpenbMixedCluster({{"x", 8000, 1024, 0, ""}}, cat, 1).ok());
}

TEST(Scenario, OpenbMixedWorkloadKeepsTheTraceShapes) {
  const auto& cat = catalog::Catalog::Builtin();
  auto cluster = OpenbMixedCluster(OpenbNodes(), cat, 1);
  ASSERT_TRUE(cluster.ok());
  std::vector<TracePod> trace = {{"a", 4000, 8192, 1, 470, {}},
                                 {"b", 16000, 32768, 1, 1000, {}},
                                 {"c", 32000, 65536, 4, 1000, {"V100M32", "G3"}},
                                 {"d", 2000, 4096, 0, 0, {}}};
  auto pods = OpenbMixedWorkload(*cluster, trace, 5, 1.3);
  int cards = 0;
  for (const auto& n : cluster->nodes()) cards += static_cast<int>(n.cards.size());
  double demand = 0;
  std::set<std::string> kinds;
  for (const auto& p : pods) {
    demand += p.card_equivalents;
    kinds.insert(p.kind);
    auto req = core::PreFilter(p.spec, cat);
    ASSERT_TRUE(req.ok()) << p.kind << ": " << req.status().ToString();
    if (p.kind == "fractional") {
      EXPECT_EQ(req->containers.front().slice.compute_permille, 470);
      EXPECT_EQ(req->cpu_milli, 4000);
    } else if (p.kind == "multi-card") {
      EXPECT_EQ(req->containers.front().slice.count, 4);
      EXPECT_TRUE(req->containers.front().slice.whole);
      EXPECT_EQ(req->type_include, (std::set<std::string>{"A100-80G", "H100-80G"}));
    } else if (p.kind == "cpu-only") {
      EXPECT_FALSE(req->WantsAccelerators());
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"cpu-only", "fractional", "multi-card", "whole"}));
  EXPECT_GE(demand, 1.3 * cards);
  EXPECT_LT(demand, 1.3 * cards + 4.0);  // stops at the pod that reaches the demand
  auto r = RunScenario(pods, *cluster, cat, core::Policy::kFragAware, 5);
  EXPECT_EQ(r.rejected_at_prefilter, 0);
  EXPECT_GT(r.allocated_pct, 50.0);
  // A list without GPU requests ends instead of looping.
  EXPECT_FALSE(OpenbMixedWorkload(*cluster, {{"d", 2000, 4096, 0, 0, {}}}, 5, 1.3).empty());
}

TEST(Scenario, ExplainShowsTheScorersTermsForTheNodesAPodMet) {
  const auto& cat = catalog::Catalog::Builtin();
  auto cluster = DefaultCluster(cat);
  auto pods = DefaultWorkload(cluster, 7, 1.3);
  auto e = ExplainScenarioPod(pods, cluster, cat, core::Policy::kFragAware, 7, "pod-40", 3);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->pod, "pod-40");
  EXPECT_EQ(e->policy, "fragaware");
  ASSERT_FALSE(e->feasible.empty());
  EXPECT_LE(e->feasible.size(), 3u);
  EXPECT_GE(e->feasible_nodes, static_cast<int>(e->feasible.size()));
  // Best first, and the node Schedule picks has the best score.
  for (size_t i = 1; i < e->feasible.size(); ++i)
    EXPECT_GE(e->feasible[i - 1].score.primary, e->feasible[i].score.primary);
  ASSERT_FALSE(e->chosen.empty());
  bool chosen_is_best = false;
  for (const auto& n : e->feasible)
    if (n.node == e->chosen) chosen_is_best = n.score.primary == e->feasible.front().score.primary;
  EXPECT_TRUE(chosen_is_best) << e->chosen;
  std::set<std::string> names;
  for (const auto& t : e->feasible.front().terms) names.insert(t.name);
  EXPECT_TRUE(names.count("fragmentation_removed_permille"));
  EXPECT_TRUE(names.count("scarcity_charge_permille"));
  EXPECT_FALSE(e->feasible.front().cards.empty());
  EXPECT_EQ(e->other_choices.size(), 2u);  // bestfit and binpack

  auto missing = ExplainScenarioPod(pods, cluster, cat, core::Policy::kFragAware, 7, "pod-99999");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().ToString().find("--explain"), std::string::npos);
}

}  // namespace
}  // namespace tideslice::sim
