// The scorer table: every Policy has exactly one scorer, found by its name, and a scorer's
// explained terms never change its score.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "scheduler/core/placement.h"
#include "scheduler/core/scoring/scorer.h"
#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::core {
namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using namespace testing;  // NOLINT: test builders

TEST(ScorerTable, EveryPolicyHasExactlyOneScorer) {
  const auto scorers = AllScorers();
  // kFgd is the last enum value: the enum and the table have the same length and order.
  ASSERT_EQ(scorers.size(), static_cast<size_t>(Policy::kFgd) + 1);
  std::set<Policy> seen;
  std::set<std::string> names;
  for (size_t i = 0; i < scorers.size(); ++i) {
    ASSERT_NE(scorers[i], nullptr);
    EXPECT_EQ(static_cast<size_t>(scorers[i]->policy()), i) << scorers[i]->name();
    EXPECT_TRUE(seen.insert(scorers[i]->policy()).second) << "two scorers for " << scorers[i]->name();
    EXPECT_TRUE(names.insert(scorers[i]->name()).second) << "two scorers named " << scorers[i]->name();
  }
  for (Policy p : AllPolicies()) {
    EXPECT_EQ(ScorerFor(p).policy(), p);
    auto parsed = ParsePolicy(PolicyName(p));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_EQ(AllPolicies().size(), scorers.size());
}

TEST(ScorerTable, UnknownPolicyNamesEveryKnownOne) {
  auto p = ParsePolicy("tetris");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().field(), "policy");
  EXPECT_THAT(p.status().message(), HasSubstr("use fragaware, binpack, spread, random, bestfit, dotprod, gpupacking or fgd"));
}

TEST(ScorerTable, TermsExplainWithoutChangingTheScore) {
  ClusterState cluster;
  cluster.AddNode(MakeNode("n", "A100-80G", 4, 0, 64000, 0));
  WorkloadModel workload = WorkloadModel::FromTypicalPods({{4000, 500, 1, {}, 1.0, 0}, {8000, 1000, 1, {}, 1.0, 0}});
  workload.Bind(cluster);
  auto req = PodBuilder("p").Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-cores", "30"}, {"cpu", "2"}}).MustRequest();
  for (Policy p : AllPolicies()) {
    Context ctx{p, &workload, nullptr};
    NodeVerdict v = Filter(*cluster.FindNode("n"), req, ctx);
    ASSERT_EQ(v.kind, VerdictKind::kFits) << PolicyName(p);
    NodeScore plain = Score(*cluster.FindNode("n"), req, v.plan, ctx);
    ScoreTerms terms;
    NodeScore explained = Score(*cluster.FindNode("n"), req, v.plan, ctx, &terms);
    EXPECT_EQ(plain.primary, explained.primary) << PolicyName(p);
    EXPECT_EQ(plain.tiebreak, explained.tiebreak) << PolicyName(p);
    if (p != Policy::kRandom) {
      EXPECT_FALSE(terms.empty()) << PolicyName(p) << " explains nothing";
    }
    for (const auto& t : terms) EXPECT_FALSE(t.name.empty());
  }
  // fragaware names the fragmentation it removes and its tie-break.
  ScoreTerms terms;
  Context ctx{Policy::kFragAware, &workload, nullptr};
  NodeVerdict v = Filter(*cluster.FindNode("n"), req, ctx);
  NodeScore s = Score(*cluster.FindNode("n"), req, v.plan, ctx, &terms);
  std::set<std::string> names;
  for (const auto& t : terms) names.insert(t.name);
  EXPECT_THAT(names, IsSupersetOf({"fragmentation_removed_permille", "exclusive_unused_permille", "quantum_permille",
                                    "packing_tiebreak"}));
  for (const auto& t : terms) {
    if (t.name == "packing_tiebreak") {
      EXPECT_EQ(t.value, s.tiebreak);
    }
    if (t.name == "quantum_permille") {
      EXPECT_EQ(t.value, 20.0);  // 30 % of a card: 5 % of it is below the floor
    }
  }
}

}  // namespace
}  // namespace tideslice::core
