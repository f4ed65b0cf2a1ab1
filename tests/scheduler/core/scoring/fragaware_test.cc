// The default policy's departures from FGD's measure: a scarcity charge for cards of a model
// constrained shapes need, a charge for what an exclusive pod holds and does not use,
// hard-partitioned cards that keep their free share, and a resolution that grows with the pod.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "scheduler/core/fragmentation.h"
#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using namespace testing;  // NOLINT

// One T4 node and one V100 node of four cards each.
ClusterState TwoModels() {
  ClusterState c;
  c.AddNode(MakeNode("t4", "T4", 4));
  c.AddNode(MakeNode("v100", "V100-16G", 4));
  return c;
}

TEST(FragAware, ModelPressureFollowsTheShapesThatNeedAModel) {
  ClusterState cluster = TwoModels();
  const int t4 = cluster.ModelIdIfKnown("T4"), v100 = cluster.ModelIdIfKnown("V100-16G");
  // Half the demand may use any card, half only T4: T4 cards carry 3/4 of it, V100 cards 1/4.
  auto m = WorkloadModel::FromTypicalPods({{0, 1000, 1, {}, 1}, {0, 1000, 1, {"T4"}, 1}});
  m.Bind(cluster);
  EXPECT_DOUBLE_EQ(m.ModelPressure(t4), 1.5);
  EXPECT_DOUBLE_EQ(m.ModelPressure(v100), 0.5);
  EXPECT_DOUBLE_EQ(m.ModelPressure(99), 1.0);  // unknown id
  // Without constrained shapes every model is at the average, exactly.
  auto free = WorkloadModel::FromTypicalPods({{0, 300, 1, {}, 3}, {0, 1000, 2, {}, 1}});
  free.Bind(cluster);
  EXPECT_EQ(free.ModelPressure(t4), 1.0);
  EXPECT_EQ(free.ModelPressure(v100), 1.0);
}

// The named terms of one node's score for `req`.
std::map<std::string, double> TermsOn(const ClusterState& cluster, const std::string& node, const PodRequest& req,
                                      const Context& ctx, NodeScore* score) {
  const NodeState& n = *cluster.FindNode(node);
  NodeVerdict v = Filter(n, req, ctx);
  EXPECT_EQ(v.kind, VerdictKind::kFits) << v.reason;
  ScoreTerms terms;
  *score = Score(n, req, v.plan, ctx, &terms);
  std::map<std::string, double> out;
  for (const auto& t : terms) out[t.name] = t.value;
  return out;
}

// The default policy with `model` as the expected workload.
Context FragAwareWith(const WorkloadModel& model) {
  Context ctx;
  ctx.policy = Policy::kFragAware;
  ctx.workload = &model;
  return ctx;
}

// Where Schedule puts `req` ("" when nowhere).
std::string ChosenNode(const ClusterState& cluster, const PodRequest& req, const Context& ctx) {
  Decision d = Schedule(cluster, req, ctx);
  EXPECT_TRUE(d.scheduled) << d.Summary();
  return d.scheduled ? d.placement.node : "";
}

TEST(FragAware, TakingCardsOfAPressedModelIsCharged) {
  ClusterState cluster = TwoModels();
  // Most expected pods may only run on T4; some run anywhere.
  auto model = WorkloadModel::FromTypicalPods({{0, 1000, 1, {"T4"}, 3}, {0, 500, 1, {}, 1}});
  model.Bind(cluster);
  const Context ctx = FragAwareWith(model);
  PodRequest any = Req("any", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "50"}});
  NodeScore on_t4, on_v100;
  auto t4 = TermsOn(cluster, "t4", any, ctx, &on_t4);
  auto v100 = TermsOn(cluster, "v100", any, ctx, &on_v100);
  // Half a card on a model at pressure p costs (p - 1) x 500 permille.
  const double p_t4 = model.ModelPressure(cluster.ModelIdIfKnown("T4"));
  const double p_v100 = model.ModelPressure(cluster.ModelIdIfKnown("V100-16G"));
  EXPECT_GT(p_t4, 1.0);
  EXPECT_LT(p_v100, 1.0);
  EXPECT_DOUBLE_EQ(t4["scarcity_charge_permille"], (p_t4 - 1.0) * 500);
  EXPECT_DOUBLE_EQ(v100["scarcity_charge_permille"], (p_v100 - 1.0) * 500);
  // The score is the fragmentation removed less the charge, in quanta of 5 % of the pod's
  // compute (half a card: 25 permille).
  EXPECT_EQ(t4["exclusive_unused_permille"], 0.0);  // a shared slice holds only what it uses
  EXPECT_DOUBLE_EQ(t4["quantum_permille"], 25.0);
  EXPECT_EQ(on_t4.primary, std::round((t4["fragmentation_removed_permille"] - t4["scarcity_charge_permille"]) / 25.0));
  EXPECT_EQ(t4["score_quanta"], on_t4.primary);
  EXPECT_LT(on_t4.primary, on_v100.primary);
  EXPECT_EQ(ChosenNode(cluster, any, ctx), "v100");
}

TEST(FragAware, PartitionsJoinCardsThatAlreadyHaveThem) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("a", "A100-80G", 2));
  cluster.AddNode(MakeNode("b", "A100-80G", 2));
  // Whole cards are expected, and pods for a model this cluster lacks (so all idle share is
  // a fragment to them, as in FGD's measure).
  auto model = WorkloadModel::FromTypicalPods({{0, 1000, 1, {}, 2}, {0, 500, 1, {"T4"}, 1}});
  model.Bind(cluster);
  const Context ctx = FragAwareWith(model);
  auto place = [&](const std::string& name) {
    Decision d = Schedule(cluster, Req(name, {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", "1g.10gb"}}), ctx);
    EXPECT_TRUE(d.scheduled) << d.Summary();
    EXPECT_TRUE(Reserve(cluster, d.placement).ok());
    return d.placement.containers.at(0).cards.at(0).uuid;
  };
  {
    // FGD's own card choice, on a scratch copy: the fresh card.
    ClusterState scratch = cluster;
    Context fgd = ctx;
    fgd.policy = Policy::kFgd;
    auto profile = [](const std::string& name) {
      return Req(name, {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/profile", "1g.10gb"}});
    };
    Decision a = Schedule(scratch, profile("f1"), fgd);
    ASSERT_TRUE(a.scheduled && Reserve(scratch, a.placement).ok());
    Decision b = Schedule(scratch, profile("f2"), fgd);
    ASSERT_TRUE(b.scheduled);
    EXPECT_NE(b.placement.containers.at(0).cards.at(0).uuid, a.placement.containers.at(0).cards.at(0).uuid);
  }
  const std::string first = place("p1");
  // FGD's view calls a card with one 1g.10gb full, so a fresh card looks like a gain; ours
  // keeps 6/7 of it free and sends the next partitions to the same card.
  EXPECT_EQ(place("p2"), first);
  EXPECT_EQ(place("p3"), first);
  int idle = 0;
  for (const auto& n : cluster.nodes())
    for (const auto& c : n.cards) idle += c.usage.Idle() && c.usage.hard_instances == 0 ? 1 : 0;
  EXPECT_EQ(idle, 3);  // three whole cards stay free for the whole-card pods
}

TEST(FragAware, ExclusivePodsTakeTheCardTheyUseMost) {
  // An 8 GiB exclusive pod uses half of a 16 GB T4 and a tenth of an 80 GB A100, and holds the
  // whole card either way. Both models are open to every expected pod (pressure 1).
  ClusterState cluster;
  cluster.AddNode(MakeNode("a100", "A100-80G", 1));
  cluster.AddNode(MakeNode("t4", "T4", 1));
  auto model = WorkloadModel::FromTypicalPods({{0, 1000, 1, {}, 1}, {0, 250, 1, {}, 1}});
  model.Bind(cluster);
  const Context ctx = FragAwareWith(model);
  PodRequest pod = Req("secret", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}},
                       {{"tideslice.io/exclusive", "true"}});
  NodeScore on_a100, on_t4;
  auto a100 = TermsOn(cluster, "a100", pod, ctx, &on_a100);
  auto t4 = TermsOn(cluster, "t4", pod, ctx, &on_t4);
  EXPECT_DOUBLE_EQ(a100["exclusive_unused_permille"], 900);  // 8 of 80 GiB used
  EXPECT_DOUBLE_EQ(t4["exclusive_unused_permille"], 500);    // 8 of 16 GiB used
  // FGD's measure alone cannot tell the two apart: either way a whole idle card leaves.
  EXPECT_DOUBLE_EQ(a100["fragmentation_removed_permille"], t4["fragmentation_removed_permille"]);
  EXPECT_GT(on_t4.primary, on_a100.primary);
  EXPECT_EQ(ChosenNode(cluster, pod, ctx), "t4");
}

TEST(FragAware, AnExclusiveCardIsChargedOnceHoweverManyContainersShareIt) {
  // Two 4 GiB containers of one exclusive pod on a node with a single 16 GB card: the pod holds
  // the card once and uses half of it.
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 1));
  auto model = WorkloadModel::FromTypicalPods({{0, 1000, 1, {}, 1}});
  model.Bind(cluster);
  const Context ctx = FragAwareWith(model);
  PodRequest pod = PodBuilder("two")
                       .Container("a", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "4Gi"}})
                       .Container("b", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "4Gi"}})
                       .Annotate("tideslice.io/exclusive", "true")
                       .MustRequest();
  NodeScore s;
  auto terms = TermsOn(cluster, "t4", pod, ctx, &s);
  EXPECT_DOUBLE_EQ(terms["exclusive_unused_permille"], 500);
}

TEST(FragAware, TieBreakWeighsCpuHalfAsMuchAsCards) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 8, 0, /*cpu_milli=*/64000, /*memory_mib=*/1 << 20));
  auto model = WorkloadModel::FromTypicalPods({{0, 1000, 1, {}, 1}});
  model.Bind(cluster);
  const Context ctx = FragAwareWith(model);
  NodeScore s;
  TermsOn(cluster, "n", Req("p", {{"tideslice.io/vnpu", "1"}, {"cpu", "4"}}), ctx, &s);
  // Cards left 7 of FGD's 8-card normaliser, CPU left 60 of its 128 cores, the CPU at half weight.
  EXPECT_DOUBLE_EQ(s.tiebreak, -(7000.0 / 8000.0 + 0.5 * 60000.0 / 128000.0));
}

TEST(FragAware, ResolutionGrowsWithThePod) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 8));
  auto model = WorkloadModel::FromTypicalPods({{0, 1000, 8, {}, 1}, {0, 300, 1, {}, 1}});
  model.Bind(cluster);
  const Context ctx = FragAwareWith(model);
  NodeScore s;
  // 5 % of the compute the pod takes, never below 2 % of one card.
  EXPECT_DOUBLE_EQ(TermsOn(cluster, "n", Req("small", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "10"}}),
                           ctx, &s)["quantum_permille"], 20);
  EXPECT_DOUBLE_EQ(TermsOn(cluster, "n", Req("one", {{"tideslice.io/vnpu", "1"}}), ctx, &s)["quantum_permille"], 50);
  auto eight = TermsOn(cluster, "n", Req("eight", {{"tideslice.io/vnpu", "8"}}), ctx, &s);
  EXPECT_DOUBLE_EQ(eight["quantum_permille"], 400);
  EXPECT_EQ(s.primary, std::round((eight["fragmentation_removed_permille"] - eight["scarcity_charge_permille"] -
                                   eight["exclusive_unused_permille"]) / 400.0));
}

}  // namespace
}  // namespace tideslice::core
