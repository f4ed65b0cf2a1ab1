#include "scheduler/extender/verbs.h"

#include "common/kube/pod_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scheduler/core/test_cluster.h"

namespace tideslice::extender {
namespace {

using ::testing::HasSubstr;
using core::testing::MakeNode;

ExtenderArgs Args(const std::string& pod_json, std::vector<std::string> nodes) {
  std::string names;
  for (const auto& n : nodes) names += (names.empty() ? "\"" : ",\"") + n + "\"";
  auto a = ParseExtenderArgs(R"({"Pod":)" + pod_json + R"(,"Nodes":null,"NodeNames":[)" + names + "]}");
  if (!a.ok()) throw std::runtime_error(a.status().ToString());
  return *a;
}

const char* kSlicePod =
    R"({"metadata":{"name":"p","namespace":"ml","uid":"u-p"},"spec":{"priority":100,"containers":[{"name":"c",
        "resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"60Gi"}}}]}})";

struct Fixture {
  core::ClusterState cluster;
  Verbs verbs{catalog::Catalog::Builtin(), core::Context{core::Policy::kBinpack, nullptr, nullptr}};
  Fixture() {
    cluster.AddNode(MakeNode("free", "H100-80G", 1));
    cluster.AddNode(MakeNode("busy", "H100-80G", 1));
    cluster.AddNode(MakeNode("t4", "T4", 1));
    auto low = core::testing::PodBuilder("low");
    low.Container("c", {{"tideslice.io/vnpu", "1"}, {"tideslice.io/vnpu-memory", "40Gi"}}).Annotate("tideslice.io/card-uuid", "busy-card0");
    core::Reserve(cluster, core::Schedule(cluster, low.MustRequest(), core::Context{}).placement);
  }
};

TEST(ExtenderVerbs, FilterSplitsPassingBusyAndHopelessNodes) {
  Fixture f;
  auto r = f.verbs.Filter(Args(kSlicePod, {"free", "busy", "t4", "ghost"}), f.cluster);
  EXPECT_EQ(r.passed, std::vector<std::string>{"free"});
  EXPECT_THAT(r.failed.at("busy"), HasSubstr("insufficient card share"));
  EXPECT_THAT(r.unresolvable.at("t4"), HasSubstr("eligible"));
  EXPECT_THAT(r.unresolvable.at("ghost"), HasSubstr("no TideSlice inventory"));
  EXPECT_TRUE(r.error.empty());
}

TEST(ExtenderVerbs, PodsWithoutOurResourcesPassAndInvalidOnesSayWhy) {
  Fixture f;
  auto plain = f.verbs.Filter(Args(R"({"metadata":{"name":"web"},"spec":{"containers":[{"name":"nginx"}]}})",
                                   {"free", "ghost"}),
                              f.cluster);
  EXPECT_EQ(plain.passed, (std::vector<std::string>{"free", "ghost"}));
  auto bad = f.verbs.Filter(
      Args(R"({"metadata":{"name":"b"},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-cores":"150"}}}]}})",
           {"free", "busy"}),
      f.cluster);
  EXPECT_TRUE(bad.passed.empty());
  EXPECT_THAT(bad.unresolvable.at("free"), HasSubstr("tideslice.io/vnpu-cores: must be between 1 and 100"));
  auto huge = f.verbs.Filter(
      Args(R"({"metadata":{"name":"h"},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"4"}}}]}})", {"free"}),
      f.cluster);
  EXPECT_THAT(huge.unresolvable.at("free"), HasSubstr("the largest node has 1 card"));
}

TEST(ExtenderVerbs, PrioritizeScoresInTheExtenderRange) {
  Fixture f;
  auto small = R"({"metadata":{"name":"s"},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"8Gi"}}}]}})";
  auto scores = f.verbs.Prioritize(Args(small, {"free", "busy", "t4"}), f.cluster);
  std::map<std::string, int64_t> by_host;
  for (const auto& h : scores) {
    EXPECT_GE(h.score, 0);
    EXPECT_LE(h.score, 10);
    by_host[h.host] = h.score;
  }
  EXPECT_EQ(by_host.size(), 3u);
  EXPECT_EQ(by_host.at("busy"), 10);  // binpack: the fuller card
  EXPECT_EQ(by_host.at("free"), 0);
}

TEST(ExtenderVerbs, PreemptPicksOnlyAmongProposedVictimsAndDropsHopelessNodes) {
  Fixture f;
  PreemptionArgs args;
  auto pod = kube::PodSpecFromJson(std::string(kSlicePod));
  ASSERT_TRUE(pod.ok());
  args.pod = *pod;
  args.node_to_victims["busy"] = {{"uid-low"}, 1};
  args.node_to_victims["t4"] = {{}, 0};
  auto out = f.verbs.Preempt(args, f.cluster);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ(out->at("busy").pod_uids, std::vector<std::string>{"uid-low"});
  // If kube-scheduler did not propose the blocking pod, TideSlice cannot use the node.
  args.node_to_victims["busy"] = {{"someone-else"}, 0};
  EXPECT_TRUE(f.verbs.Preempt(args, f.cluster)->empty());
}

// A filter error quotes the request; it used to do so once per node, so a 250 KB annotation and
// 1,000 nodes made a 250 MB reply. Now the reason is said once per node within a shared budget.
TEST(ExtenderVerbs, InvalidPodRepliesStayBoundedWhateverTheNodeCount) {
  Fixture f;
  const std::string pod = R"({"metadata":{"name":"p","annotations":{"tideslice.io/exclusive":")" +
                          std::string(250 * 1024, 'y') +
                          R"("}},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"1"}}}]}})";
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back("node-" + std::to_string(i));
  ExtenderArgs args = Args(pod, names);
  FilterResult r = f.verbs.Filter(args, f.cluster);
  ASSERT_EQ(r.unresolvable.size(), 1000u);
  const std::string& why = r.unresolvable.at("node-0");
  EXPECT_THAT(why, HasSubstr("tideslice.io/exclusive: must be \"true\" or \"false\""));
  EXPECT_THAT(why, ::testing::EndsWith("..."));
  for (const auto& [node, reason] : r.unresolvable) ASSERT_EQ(reason, why) << node;  // kube-scheduler counts them as one
  EXPECT_LE(why.size(), NodeReasonCap(1000));
  const std::string reply = EncodeFilterResult(r, args);
  EXPECT_LT(reply.size(), 200u * 1024) << "reply of " << reply.size() << " bytes";
  // A small cluster gets the message in full up to 1 KiB.
  FilterResult few = f.verbs.Filter(Args(pod, {"free", "busy"}), f.cluster);
  EXPECT_EQ(few.unresolvable.at("free").size(), kMaxReasonBytes);
  EXPECT_LT(EncodeFilterResult(few, Args(pod, {"free", "busy"})).size(), 4u * 1024);
}

TEST(ExtenderVerbs, NodeReasonCapSharesABudget) {
  EXPECT_EQ(NodeReasonCap(0), kMaxReasonBytes);
  EXPECT_EQ(NodeReasonCap(3), kMaxReasonBytes);
  EXPECT_EQ(NodeReasonCap(1000), kNodeReasonBudgetBytes / 1000);
  EXPECT_EQ(NodeReasonCap(100000), kMinNodeReasonBytes);
}

}  // namespace
}  // namespace tideslice::extender
