#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using namespace testing;  // NOLINT

PodRequest Mem(const std::string& name, const std::string& mem, int32_t priority) {
  PodBuilder b(name);
  b.Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", mem}}).Priority(priority);
  return b.MustRequest();
}

TEST(Preempt, FewestLowestPriorityVictims) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 1));
  Place(cluster, Mem("low1", "20Gi", 1));
  Place(cluster, Mem("low2", "20Gi", 1));
  Place(cluster, Mem("mid", "20Gi", 5));
  Place(cluster, Mem("high", "15Gi", 100));
  Context ctx;
  auto victims = SelectVictims(*cluster.FindNode("n"), Mem("urgent", "40Gi", 50), ctx);
  ASSERT_TRUE(victims.ok());
  // 5 GiB free; 40 GiB needs two 20 GiB pods out: the two lowest-priority ones.
  EXPECT_EQ(*victims, (std::vector<std::string>{"default/low1", "default/low2"}));
}

TEST(Preempt, ReprievesVictimsThatAreNotNeeded) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 1));
  Place(cluster, Mem("tiny", "4Gi", 1));   // lowest priority, but too small to matter alone
  Place(cluster, Mem("big", "60Gi", 2));
  Context ctx;
  auto victims = SelectVictims(*cluster.FindNode("n"), Mem("urgent", "30Gi", 50), ctx);
  ASSERT_TRUE(victims.ok());
  EXPECT_EQ(*victims, std::vector<std::string>{"default/big"});
}

TEST(Preempt, FreedSlicesMustFitOnOneCard) {
  // Two cards, each with 40 GiB used by two low-priority pods. The preemptor needs 60 GiB on
  // one card: the victim must come from the card the preemptor will use, and one is enough.
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 2));
  for (const char* name : {"a1", "a2"}) {
    auto p = Place(cluster, Mem(name, "20Gi", 1));
    ASSERT_EQ(p.containers[0].cards[0].card_index, 0);
  }
  PodBuilder b1("b1"), b2("b2");
  b1.Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "20Gi"}}).Annotate("tideslice.io/card-uuid", "n-card1").Priority(1);
  b2.Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "20Gi"}}).Annotate("tideslice.io/card-uuid", "n-card1").Priority(1);
  Place(cluster, b1.MustRequest());
  Place(cluster, b2.MustRequest());
  Context ctx;
  auto victims = SelectVictims(*cluster.FindNode("n"), Mem("urgent", "60Gi", 50), ctx);
  ASSERT_TRUE(victims.ok());
  ASSERT_EQ(victims->size(), 1u);  // 40 free on a card + 20 from one victim on that same card
  NodeState after = *cluster.FindNode("n");
  const auto& holder = after.pods.at((*victims)[0]);
  const int card = holder.containers[0].cards[0].card_index;
  // Check by replaying: without that victim the urgent pod fits on its card.
  ClusterState check = cluster;
  Unreserve(check, (*victims)[0]);
  auto fit = Filter(*check.FindNode("n"), Mem("urgent", "60Gi", 50), ctx);
  ASSERT_EQ(fit.kind, VerdictKind::kFits);
  EXPECT_EQ(fit.plan.containers[0].cards[0].card_index, card);
}

TEST(Preempt, NothingToPreempt) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 1));
  Place(cluster, Mem("high", "70Gi", 100));
  Context ctx;
  EXPECT_TRUE(SelectVictims(*cluster.FindNode("n"), Mem("p", "40Gi", 50), ctx)->empty());  // only higher priority
  EXPECT_TRUE(SelectVictims(*cluster.FindNode("n"), Mem("p", "5Gi", 50), ctx)->empty());   // fits already
  EXPECT_TRUE(SelectVictims(*cluster.FindNode("n"), Mem("p", "70Gi", 500), ctx)->size() == 1);
}

}  // namespace
}  // namespace tideslice::core
