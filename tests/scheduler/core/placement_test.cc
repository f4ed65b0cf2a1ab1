// Filter / Score / Reserve / Unreserve over small clusters, one behaviour per test.
#include "scheduler/core/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // NOLINT: test builders

const CardGrant& OnlyGrant(const PodPlacement& p) { return p.containers.at(0).cards.at(0); }

TEST(Placement, SoftSlicesShareACardUpToItsCompute) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 1));
  auto slice = [](const std::string& name, const std::string& cores) {
    return Req(name, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}, {"tideslice.io/vnpu-cores", cores}});
  };
  EXPECT_EQ(Place(cluster, slice("a", "40")).node, "n");
  EXPECT_EQ(Place(cluster, slice("b", "40")).node, "n");
  EXPECT_TRUE(Place(cluster, slice("c", "30")).node.empty());  // 80 % used, 30 % does not fit
  EXPECT_EQ(Place(cluster, slice("d", "20")).node, "n");
  const auto& card = cluster.FindNode("n")->cards[0];
  EXPECT_EQ(card.usage.used_compute_permille, 1000);
  EXPECT_EQ(card.usage.used_memory_mib, 3 * 8192);
  EXPECT_EQ(card.usage.soft_slices, 3);
  EXPECT_EQ(card.usage.pods, 3);
}

TEST(Placement, MemoryIsAccountedPerCard) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 1));
  auto mem = [](const std::string& name) { return Req(name, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "30Gi"}}); };
  EXPECT_FALSE(Place(cluster, mem("a")).node.empty());
  EXPECT_FALSE(Place(cluster, mem("b")).node.empty());
  Context ctx;
  NodeVerdict v = Filter(*cluster.FindNode("n"), mem("c"), ctx);
  EXPECT_EQ(v.kind, VerdictKind::kNoFit);  // 60 of 80 GiB used: could fit after preemption
  EXPECT_THAT(v.reason, HasSubstr("insufficient card share"));
}

TEST(Placement, CoresWithoutMemoryReserveProportionalMemory) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 1));
  auto p = Place(cluster, Req("a", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "25"}}));
  EXPECT_EQ(OnlyGrant(p).memory_mib, 81920 / 4);
  auto pct = Place(cluster, Req("b", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory-percent", "50"}}));
  EXPECT_EQ(OnlyGrant(pct).memory_mib, 40960);
  EXPECT_EQ(OnlyGrant(pct).compute_permille, 0);  // memory only: best-effort compute
}

TEST(Placement, WholeCardsAreNeverShared) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "T4", 2));
  auto whole = Place(cluster, Req("w", {{"tideslice.io/vnpu", "1"}}));
  EXPECT_TRUE(OnlyGrant(whole).whole);
  auto s1 = Place(cluster, Req("s1", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "1Gi"}}));
  EXPECT_NE(OnlyGrant(s1).card_index, OnlyGrant(whole).card_index);  // not on the whole card
  // The other card now has a soft slice: a second whole card does not fit anywhere.
  EXPECT_TRUE(Place(cluster, Req("w2", {{"tideslice.io/vnpu", "1"}})).node.empty());
}

TEST(Placement, NSlicesGoOnNDistinctCards) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 4));
  auto p = Place(cluster, Req("p", {{"tideslice.io/vnpu", "3"}, {"tideslice.io/vnpu-memory", "8Gi"}}));
  ASSERT_EQ(p.containers[0].cards.size(), 3u);
  std::set<int> cards;
  for (const auto& g : p.containers[0].cards) cards.insert(g.card_index);
  EXPECT_EQ(cards.size(), 3u);
  // Five slices cannot fit on four cards, ever: no preemption helps.
  Context ctx;
  NodeVerdict v = Filter(*cluster.FindNode("n"), Req("q", {{"tideslice.io/vnpu", "5"}, {"tideslice.io/vnpu-memory", "1Gi"}}), ctx);
  EXPECT_EQ(v.kind, VerdictKind::kNeverFits);
  EXPECT_THAT(v.reason, HasSubstr("node has 4 eligible cards"));
}

TEST(Placement, MultiCardPodsStayInOneLinkDomain) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "Ascend910B3", 8, /*per_domain=*/4));
  // Occupy one card of the first HCCS ring.
  auto first = Place(cluster, Req("small", {{"tideslice.io/vnpu", "1"}}));
  ASSERT_EQ(OnlyGrant(first).card_index, 0);
  auto four = Place(cluster, Req("train", {{"tideslice.io/vnpu", "4"}}));
  ASSERT_EQ(four.containers[0].cards.size(), 4u);
  for (const auto& g : four.containers[0].cards) EXPECT_GE(g.card_index, 4) << "all four on the second ring";
  // Three more fit only in the first ring (cards 1-3).
  auto three = Place(cluster, Req("three", {{"tideslice.io/vnpu", "3"}}));
  for (const auto& g : three.containers[0].cards) EXPECT_LT(g.card_index, 4);
}

TEST(Placement, MultiCardPodsPreferOneNumaNodeWithoutLinkDomains) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "T4", 4));  // NUMA 0: cards 0-1, NUMA 1: cards 2-3
  Place(cluster, Req("small", {{"tideslice.io/vnpu", "1"}}));  // takes card 0
  auto two = Place(cluster, Req("two", {{"tideslice.io/vnpu", "2"}}));
  std::vector<int> idx;
  for (const auto& g : two.containers[0].cards) idx.push_back(g.card_index);
  EXPECT_EQ(idx, (std::vector<int>{2, 3}));
}

TEST(Placement, CardTypeAndUuidFilters) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 2));
  cluster.AddNode(MakeNode("h100", "H100-80G", 2));
  EXPECT_EQ(Place(cluster, Req("a", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-type", "H100-80G"}})).node, "h100");
  EXPECT_EQ(Place(cluster, Req("b", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-type-exclude", "H100-80G"}})).node, "t4");
  auto pinned = Place(cluster, Req("c", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-uuid", "t4-card1"}}));
  EXPECT_EQ(OnlyGrant(pinned).uuid, "t4-card1");
  Context ctx;
  auto avoid = Req("d", {{"tideslice.io/vnpu", "2"}}, {{"tideslice.io/card-uuid-exclude", "h100-card0"}});
  EXPECT_EQ(Filter(*cluster.FindNode("h100"), avoid, ctx).kind, VerdictKind::kNeverFits);
}

TEST(Placement, UntypedPodsLandOnAnyModelThatFits) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 1));
  cluster.AddNode(MakeNode("ascend", "Ascend910B3", 1));
  // 40 GiB fits only the 64 GiB Ascend card; no type was named.
  EXPECT_EQ(Place(cluster, Req("big", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "40Gi"}})).node, "ascend");
  EXPECT_EQ(Place(cluster, Req("small", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}})).node.empty(), false);
}

TEST(Placement, NormalisedComputeIsMetByAnyVendor) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 1));           // 65 TFLOPS
  cluster.AddNode(MakeNode("b3", "Ascend910B3", 1));  // 313 TFLOPS
  auto p = Place(cluster, Req("p", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-tflops", "100"}}));
  EXPECT_EQ(p.node, "b3");
  EXPECT_EQ(OnlyGrant(p).compute_permille, 320);             // ceil(100 / 313 * 1000)
  EXPECT_EQ(OnlyGrant(p).memory_mib, (65536 * 320 + 999) / 1000);  // proportional memory
  auto small = Place(cluster, Req("s", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-tflops", "30"}}, {{"tideslice.io/card-type", "T4"}}));
  EXPECT_EQ(OnlyGrant(small).compute_permille, 462);  // ceil(30 / 65 * 1000)
}

TEST(Placement, ExclusivePodsTakeIdleCardsAndKeepThem) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 2));
  Place(cluster, Req("shared", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}}));
  auto ex = Place(cluster, Req("secret", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}},
                              {{"tideslice.io/exclusive", "true"}}));
  ASSERT_FALSE(ex.node.empty());
  const int ex_card = OnlyGrant(ex).card_index;
  EXPECT_TRUE(cluster.FindNode("n")->cards[ex_card].usage.exclusive);
  // Nothing else may join the exclusive card, though it has 72 GiB free.
  auto other = Place(cluster, Req("other", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}}));
  EXPECT_NE(OnlyGrant(other).card_index, ex_card);
  // A second exclusive pod finds no idle card.
  EXPECT_TRUE(Place(cluster, Req("secret2", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "1Gi"}},
                                 {{"tideslice.io/exclusive", "true"}})).node.empty());
  Unreserve(cluster, "default/secret");
  EXPECT_FALSE(cluster.FindNode("n")->cards[ex_card].usage.exclusive);
}

TEST(Placement, InitContainersReuseTheirPodsSlices) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 1));
  auto req = PodBuilder("p")
                 .Init("prep", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}})
                 .Container("app", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "16Gi"}})
                 .MustRequest();
  auto p = Place(cluster, req);
  ASSERT_EQ(p.containers.size(), 2u);
  EXPECT_TRUE(p.containers[1].init);
  EXPECT_TRUE(p.containers[1].cards[0].reuses_pod_share);
  EXPECT_EQ(cluster.FindNode("n")->cards[0].usage.used_memory_mib, 16384);  // not 24 GiB
  // An init container larger than the app's share needs its own.
  ClusterState c2;
  c2.AddNode(MakeNode("n", "A100-80G", 1));
  auto bigger = PodBuilder("q")
                    .Init("prep", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "32Gi"}})
                    .Container("app", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}})
                    .MustRequest();
  auto q = Place(c2, bigger);
  EXPECT_FALSE(q.containers[1].cards[0].reuses_pod_share);
  EXPECT_EQ(c2.FindNode("n")->cards[0].usage.used_memory_mib, 8192 + 32768);
}

TEST(Placement, SeveralContainersEachGetTheirOwnSlices) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 2));
  auto req = PodBuilder("p")
                 .Container("a", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "50Gi"}})
                 .Container("b", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "50Gi"}})
                 .MustRequest();
  auto p = Place(cluster, req);
  ASSERT_EQ(p.containers.size(), 2u);
  EXPECT_NE(p.containers[0].cards[0].card_index, p.containers[1].cards[0].card_index);  // 100 GiB > one card
  EXPECT_EQ(cluster.FindNode("n")->cards[0].usage.pods, 1);
}

TEST(Placement, StaleInventoryAndHostResources) {
  NodeState stale = MakeNode("n", "T4", 1);
  stale.schedulable = false;
  stale.unschedulable_reason = "inventory heartbeat is 5m old";
  Context ctx;
  auto req = Req("p", {{"tideslice.io/vnpu", "1"}, {"cpu", "4"}});
  NodeVerdict v = Filter(stale, req, ctx);
  EXPECT_EQ(v.kind, VerdictKind::kNeverFits);
  EXPECT_EQ(v.reason, "inventory heartbeat is 5m old");
  NodeState small = MakeNode("n", "T4", 1, 0, /*cpu=*/2000, /*mem=*/1024);
  EXPECT_EQ(Filter(small, req, ctx).reason, "insufficient cpu");
}

TEST(Placement, BinpackAndSpreadChooseDifferentNodes) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("a", "H100-80G", 1));
  cluster.AddNode(MakeNode("b", "H100-80G", 1));
  Place(cluster, Req("seed", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}}));  // lands on a
  auto next = Req("x", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}});
  Context pack{Policy::kBinpack, nullptr, nullptr};
  Context spread{Policy::kSpread, nullptr, nullptr};
  EXPECT_EQ(Schedule(cluster, next, pack).placement.node, "a");
  EXPECT_EQ(Schedule(cluster, next, spread).placement.node, "b");
  // The pod's own annotation overrides the cluster policy.
  auto spread_pod = Req("y", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}}, {{"tideslice.io/placement", "spread"}});
  EXPECT_EQ(Schedule(cluster, spread_pod, pack).placement.node, "b");
}

TEST(Placement, BinpackPrefersTheFullestCardOnANode) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 3));
  Place(cluster, Req("a", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "50"}}));
  auto b = Place(cluster, Req("b", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "30"}}));
  EXPECT_EQ(OnlyGrant(b).card_index, 0);
  auto s = Schedule(cluster, Req("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "10"}}, {{"tideslice.io/placement", "spread"}}),
                    Context{});
  EXPECT_NE(s.placement.containers[0].cards[0].card_index, 0);
}

TEST(Placement, VerdictsAndDecisionSummary) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("t4", "T4", 1));
  cluster.AddNode(MakeNode("h100", "H100-80G", 1));
  Place(cluster, Req("w", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-type", "H100-80G"}}));
  Decision d = Schedule(cluster, Req("p", {{"tideslice.io/vnpu", "1"}}, {{"tideslice.io/card-type", "H100-80G"}}), Context{});
  EXPECT_FALSE(d.scheduled);
  EXPECT_FALSE(d.never_fits);  // h100 is only busy
  EXPECT_THAT(d.Summary(), HasSubstr("0/2 nodes fit"));
  EXPECT_THAT(d.Summary(), HasSubstr("insufficient free whole cards"));
  EXPECT_THAT(d.Summary(), HasSubstr("node has 0 eligible cards"));
  Decision never = Schedule(cluster, Req("q", {{"tideslice.io/vnpu", "2"}}), Context{});
  EXPECT_TRUE(never.never_fits);
}

TEST(Placement, MoreSlicesThanAnyNodeHasCardsIsAnInputError) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("big", "H100-80G", 8));
  cluster.AddNode(MakeNode("t4", "T4", 4));
  EXPECT_TRUE(ValidateAgainstCluster(Req("ok", {{"tideslice.io/vnpu", "8"}}), cluster).ok());
  Status st = ValidateAgainstCluster(Req("p", {{"tideslice.io/vnpu", "16"}}), cluster);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "container \"main\" tideslice.io/vnpu");
  EXPECT_THAT(st.message(), HasSubstr("the largest node has 8 cards"));
  // Counting only allowed models: T4 nodes have 4.
  Status typed = ValidateAgainstCluster(Req("q", {{"tideslice.io/vnpu", "6"}}, {{"tideslice.io/card-type", "T4"}}), cluster);
  EXPECT_THAT(typed.message(), HasSubstr("has 4 cards of an allowed type; ask for at most 4"));
}

TEST(Reserve, AppliesOnceAndUnreserveIsIdempotent) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 1));
  auto req = Req("p", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "8Gi"}});
  Decision d = Schedule(cluster, req, Context{});
  ASSERT_TRUE(d.scheduled);
  uint64_t v0 = cluster.FindNode("n")->version;
  ASSERT_TRUE(Reserve(cluster, d.placement).ok());
  EXPECT_GT(cluster.FindNode("n")->version, v0);
  EXPECT_EQ(Reserve(cluster, d.placement).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(cluster.NodeOfPod("default/p")->name, "n");
  Unreserve(cluster, "default/p");
  Unreserve(cluster, "default/p");        // again: nothing happens
  Unreserve(cluster, "default/unknown");  // never reserved: nothing happens
  const auto& card = cluster.FindNode("n")->cards[0];
  EXPECT_EQ(card.usage.used_memory_mib, 0);
  EXPECT_EQ(card.usage.pods, 0);
  EXPECT_EQ(cluster.NodeOfPod("default/p"), nullptr);
}

TEST(Reserve, AStalePlanFailsAndChangesNothing) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "H100-80G", 1));
  auto a = Schedule(cluster, Req("a", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "60Gi"}}), Context{});
  auto b = Schedule(cluster, Req("b", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "60Gi"}}), Context{});
  ASSERT_TRUE(Reserve(cluster, a.placement).ok());
  Status st = Reserve(cluster, b.placement);  // planned against the old state
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("no longer has room"));
  EXPECT_EQ(cluster.FindNode("n")->cards[0].usage.used_memory_mib, 60 * 1024);
  EXPECT_EQ(cluster.FindNode("n")->pods.size(), 1u);
  PodPlacement bogus = b.placement;
  bogus.pod_key = "default/c";
  bogus.containers[0].cards[0].uuid = "not-a-card";
  EXPECT_EQ(Reserve(cluster, bogus).code(), StatusCode::kFailedPrecondition);
  bogus.node = "nowhere";
  EXPECT_EQ(Reserve(cluster, bogus).code(), StatusCode::kNotFound);
}

TEST(Scores, NormalizeOntoTheExtenderRange) {
  std::vector<NodeScore> s = {{1, 0}, {3, 0}, {2, 0}};
  EXPECT_EQ(NormalizeScores(s, 10), (std::vector<int64_t>{0, 10, 5}));
  EXPECT_EQ(NormalizeScores({{4, 0}, {4, 0}}, 10), (std::vector<int64_t>{10, 10}));
  EXPECT_EQ(NormalizeScores({{4, 1}, {4, 0}}, 100), (std::vector<int64_t>{100, 0}));
  EXPECT_TRUE(NormalizeScores({}, 10).empty());
}

TEST(Policies, ParseByName) {
  for (Policy p : AllPolicies()) EXPECT_EQ(*ParsePolicy(PolicyName(p)), p);
  auto bad = ParsePolicy("tetris");
  EXPECT_EQ(bad.status().field(), "policy");
  EXPECT_THAT(bad.status().message(), HasSubstr("fragaware"));
}

TEST(Schedule, DeterministicWithoutRandomness) {
  ClusterState cluster;
  for (int i = 0; i < 5; ++i) cluster.AddNode(MakeNode("n" + std::to_string(i), "T4", 2));
  auto req = Req("p", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "1Gi"}});
  Context ctx{Policy::kFragAware, nullptr, nullptr};
  EXPECT_EQ(Schedule(cluster, req, ctx).placement.node, "n0");
  EXPECT_EQ(Schedule(cluster, req, ctx).placement.node, "n0");
}

TEST(Schedule, CacheGivesTheSameDecisions) {
  ClusterState a, b;
  for (int i = 0; i < 6; ++i) {
    a.AddNode(MakeNode("n" + std::to_string(i), "A100-80G", 2));
    b.AddNode(MakeNode("n" + std::to_string(i), "A100-80G", 2));
  }
  FilterScoreCache cache;
  Context ctx{Policy::kBinpack, nullptr, nullptr};
  for (int i = 0; i < 30; ++i) {
    auto req = Req("p" + std::to_string(i), {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", i % 2 ? "30" : "20"}});
    Decision plain = Schedule(a, req, ctx);
    Decision cached = Schedule(b, req, ctx, &cache, i % 2);
    ASSERT_EQ(plain.scheduled, cached.scheduled) << i;
    if (!plain.scheduled) continue;
    EXPECT_EQ(plain.placement.node, cached.placement.node) << i;
    ASSERT_TRUE(Reserve(a, plain.placement).ok());
    ASSERT_TRUE(Reserve(b, cached.placement).ok());
  }
}

}  // namespace
}  // namespace tideslice::core
