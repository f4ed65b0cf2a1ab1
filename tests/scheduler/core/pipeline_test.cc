// The per-pod pipeline: stage order, request stages once per request, gates after fit, the
// verdict memo (warm across names, cold after a change), and the plan-free fit agreeing with
// Filter + Score.
#include "scheduler/core/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace testing;  // NOLINT: test builders

// A gate that closes the nodes it is told to and counts what it saw.
class ListGate final : public NodeGate {
 public:
  explicit ListGate(std::set<std::string> closed) : closed_(std::move(closed)) {}
  const char* name() const override { return "list"; }
  std::string Blocks(const NodeState& node, const PodRequest&) const override {
    seen.push_back(node.name);
    return closed_.count(node.name) ? "closed by the list" : "";
  }
  mutable std::vector<std::string> seen;

 private:
  std::set<std::string> closed_;
};

kube::PodSpec SlicePod(const std::string& name, const std::string& container, const std::string& memory) {
  return PodBuilder(name)
      .Container(container, {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", memory}, {"tideslice.io/vnpu-cores", "30"}})
      .spec;
}

std::vector<const NodeState*> All(const ClusterState& c) {
  std::vector<const NodeState*> v;
  for (const auto& n : c.nodes()) v.push_back(&n);
  return v;
}

struct Fixture {
  ClusterState cluster;
  Fixture() {
    cluster.AddNode(MakeNode("a", "H100-80G", 2));
    cluster.AddNode(MakeNode("b", "H100-80G", 1));
    cluster.AddNode(MakeNode("t4", "T4", 1));
    cluster.AddNode(MakeNode("c", "A100-80G", 2));
  }
};

TEST(Pipeline, StagesRunInTheDocumentedOrder) {
  ListGate gate({});
  Pipeline p(Context{Policy::kFragAware, nullptr, nullptr});
  p.AddGate(&gate);
  EXPECT_THAT(p.StageNames(), ElementsAre("validity", "cluster", "fit", "list", "score:fragaware"));
}

TEST(Pipeline, RequestStagesRunOncePerRequestAndStopAtTheFirstError) {
  Fixture f;
  StageCounts counts;
  Pipeline p(Context{});
  p.CountInto(&counts);
  ASSERT_TRUE(p.PreFilter(SlicePod("p", "c", "8Gi"), f.cluster).ok());
  EXPECT_EQ(counts.validity, 1u);
  EXPECT_EQ(counts.cluster, 1u);
  // Invalid: validity fails, the cluster checks do not run.
  auto bad = PodBuilder("bad").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "150"}}).spec;
  EXPECT_FALSE(p.PreFilter(bad, f.cluster).ok());
  EXPECT_EQ(counts.validity, 2u);
  EXPECT_EQ(counts.cluster, 1u);
  // Valid alone, but more cards in one container than any node has: the cluster stage says so.
  auto wide = PodBuilder("wide").Container("c", {{"tideslice.io/vnpu", "3"}}).spec;
  auto r = p.PreFilter(wide, f.cluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(counts.cluster, 2u);
  EXPECT_THAT(r.status().message(), HasSubstr("largest node has 2 cards"));
}

TEST(Pipeline, GatesSeeOnlyNodesThatFitAndCloseThemAsWaiting) {
  Fixture f;
  ListGate gate({"b", "t4"});
  Pipeline p(Context{Policy::kBinpack, nullptr, nullptr});
  p.AddGate(&gate);
  auto req = p.PreFilter(SlicePod("p", "c", "40Gi"), f.cluster);
  ASSERT_TRUE(req.ok());
  auto nodes = All(f.cluster);
  nodes.push_back(nullptr);  // a name the cluster does not know
  auto out = p.Run(*req, f.cluster, nodes);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].kind, VerdictKind::kFits);
  EXPECT_EQ(out[1].kind, VerdictKind::kNoFit);  // fits, closed by the gate
  EXPECT_EQ(p.Reason(out[1], *nodes[1], *req), "closed by the list");
  EXPECT_EQ(out[2].kind, VerdictKind::kNeverFits);  // T4 has 16 GiB: fit closes it first
  EXPECT_THAT(p.Reason(out[2], *nodes[2], *req), HasSubstr("eligible card"));
  EXPECT_EQ(out[3].kind, VerdictKind::kFits);
  EXPECT_EQ(out[4].kind, VerdictKind::kNeverFits);
  EXPECT_THAT(gate.seen, ElementsAre("a", "b", "c"));
}

TEST(Pipeline, MemoStaysWarmAcrossNamesAndGoesColdOnChange) {
  Fixture f;
  VerdictMemo memo;
  StageCounts counts;
  Pipeline p(Context{Policy::kBinpack, nullptr, nullptr});
  p.UseMemo(&memo, "binpack#").CountInto(&counts);
  auto first = p.PreFilter(SlicePod("p1", "main", "70Gi"), f.cluster);
  ASSERT_TRUE(first.ok());
  auto nodes = All(f.cluster);
  auto out1 = p.Run(*first, f.cluster, nodes);
  EXPECT_EQ(counts.fit_nodes, 4u);
  EXPECT_EQ(counts.fit_memo_hits, 0u);
  // Another replica: other pod and container names, same shape. Every verdict is reused, and
  // the words name this pod's container.
  auto second = p.PreFilter(SlicePod("p2", "server", "70Gi"), f.cluster);
  ASSERT_TRUE(second.ok());
  auto out2 = p.Run(*second, f.cluster, nodes);
  EXPECT_EQ(counts.fit_nodes, 4u);
  EXPECT_EQ(counts.fit_memo_hits, 4u);
  EXPECT_EQ(memo.shapes(), 1u);
  for (size_t i = 0; i < nodes.size(); ++i) {
    EXPECT_EQ(out1[i].kind, out2[i].kind);
    EXPECT_EQ(out1[i].score.primary, out2[i].score.primary);
  }
  EXPECT_THAT(p.Reason(out2[2], *nodes[2], *second), HasSubstr("container server needs 1"));
  EXPECT_THAT(p.Reason(out1[2], *nodes[2], *first), HasSubstr("container main needs 1"));
  // A placement changes node a: only a is judged again.
  NodeVerdict v = Filter(*f.cluster.FindNode("a"), *first, p.context());
  ASSERT_EQ(v.kind, VerdictKind::kFits);
  ASSERT_TRUE(Reserve(f.cluster, v.plan).ok());
  p.Run(*second, f.cluster, All(f.cluster));
  EXPECT_EQ(counts.fit_nodes, 5u);
  EXPECT_EQ(counts.fit_memo_hits, 7u);
  // A node added (positions may move): the shape's verdicts start afresh.
  f.cluster.AddNode(MakeNode("d", "H100-80G", 1));
  p.Run(*second, f.cluster, All(f.cluster));
  EXPECT_EQ(counts.fit_nodes, 10u);
}

TEST(Pipeline, PlanFreeFitAgreesWithFilterAndScoreForEveryPolicy) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("a", "H100-80G", 4, 2, 64000, 0));
  cluster.AddNode(MakeNode("b", "A100-80G", 8, 4, 128000, 0));
  cluster.AddNode(MakeNode("c", "T4", 2, 0, 32000, 0));
  WorkloadModel workload = WorkloadModel::FromTypicalPods({{4000, 300, 1, {}, 2.0, 0}, {8000, 1000, 2, {}, 1.0, 0}});
  workload.Bind(cluster);
  // Some load, so that cards differ.
  Context load{Policy::kBinpack, nullptr, nullptr};
  for (int i = 0; i < 5; ++i) {
    auto r = PodBuilder("load" + std::to_string(i))
                 .Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", std::to_string(20 + 10 * i)}})
                 .MustRequest();
    auto d = Schedule(cluster, r, load);
    ASSERT_TRUE(d.scheduled);
    ASSERT_TRUE(Reserve(cluster, d.placement).ok());
  }
  std::vector<PodRequest> requests = {
      PodBuilder("s").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "30"}, {"cpu", "2"}}).MustRequest(),
      PodBuilder("w").Container("c", {{"tideslice.io/vnpu", "2"}}).MustRequest(),
      PodBuilder("i")
          .Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "10Gi"}})
          .Init("init", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "5Gi"}})
          .MustRequest(),
      PodBuilder("big").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "79Gi"}}).MustRequest(),
  };
  for (Policy policy : AllPolicies())
    for (const auto& req : requests)
      for (const auto& node : cluster.nodes()) {
        Context ctx{policy, &workload, nullptr};
        NodeVerdict full = Filter(node, req, ctx);
        FitVerdict fast = FilterAndScore(node, req, ctx);
        ASSERT_EQ(full.kind, fast.kind) << PolicyName(policy) << " " << req.pod_key << " " << node.name;
        if (full.kind == VerdictKind::kFits) {
          NodeScore s = Score(node, req, full.plan, ctx);
          EXPECT_EQ(s.primary, fast.score.primary) << PolicyName(policy) << " " << req.pod_key << " " << node.name;
          EXPECT_EQ(s.tiebreak, fast.score.tiebreak) << PolicyName(policy) << " " << req.pod_key << " " << node.name;
          for (const auto& c : full.plan.containers)
            for (const auto& g : c.cards) EXPECT_EQ(g.uuid, node.cards[g.card_index].uuid);
        } else {
          EXPECT_EQ(full.reason, DescribeFailure(fast.failure, node, req));
        }
      }
}

TEST(Pipeline, ScheduleWithAGateSkipsTheClosedBestNode) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("best", "H100-80G", 1));
  cluster.AddNode(MakeNode("other", "H100-80G", 2));
  auto req = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "30"}}).MustRequest();
  Pipeline open(Context{Policy::kBinpack, nullptr, nullptr});
  EXPECT_EQ(open.Schedule(cluster, req).placement.node, "best");  // fuller after the pod
  ListGate gate({"best"});
  Pipeline gated(Context{Policy::kBinpack, nullptr, nullptr});
  gated.AddGate(&gate);
  Decision d = gated.Schedule(cluster, req);
  ASSERT_TRUE(d.scheduled);
  EXPECT_EQ(d.placement.node, "other");
  EXPECT_EQ(d.reasons.at("closed by the list"), 1);
}

}  // namespace
}  // namespace tideslice::core
