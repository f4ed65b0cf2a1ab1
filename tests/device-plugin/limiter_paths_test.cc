// The limiter's directories and Kubernetes: the names they accept are single path segments by
// the same rule the Kubernetes client uses for URL paths (kube::PathSegment), and the agent's
// cleanup keeps exactly the directories (and card roster slots) of the pods a fresh list shows on
// its node, unfinished.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/kube/client.h"
#include "device-plugin/kube/kube_assignment_store.h"
#include "device-plugin/plugin/limiter_paths.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "tests/support/fake_cards.h"
#include "tests/support/kube_env.h"

namespace tideslice::deviceplugin {
namespace {

TEST(AgentLimiterPaths, AcceptedNamesAreTheirOwnEscapedPathSegment) {
  const std::vector<std::string> names = {"0b7c1d9e-4a5f-4c1e-9d7a-3b2f1e0c9a8d", "main", "my-container.v2", "a_b~c", "x",
                                          "..", ".", "", "a/b", "../etc", "%2e%2e", "a b", "a?b", "a#b", "é", ".hidden",
                                          std::string(253, 'a'), std::string(254, 'a'), std::string("a\0b", 3)};
  for (const std::string& name : names) {
    if (IsLimiterPathSegment(name)) {
      EXPECT_EQ(kube::PathSegment(name), name) << name;
      EXPECT_EQ(name.find('/'), std::string::npos);
      EXPECT_NE(name, "..");
    }
  }
  EXPECT_TRUE(IsLimiterPathSegment("0b7c1d9e-4a5f-4c1e-9d7a-3b2f1e0c9a8d"));
  EXPECT_FALSE(IsLimiterPathSegment(".."));
  EXPECT_FALSE(IsLimiterPathSegment("%2e%2e"));
}

// The reconcile step of the agent's 30 s loop (device-plugin/main.cc), on the test API server:
// running and pending pods of this node keep their directories, a finished pod and a deleted
// one lose theirs, another node's pod of the same UID is not this node's to keep.
TEST(AgentLimiterPaths, CleanupKeepsThePodsAFreshListShowsOnThisNodeUnfinished) {
  testsupport::KubeEnv k;
  auto pod = [&](const std::string& name, const std::string& node, const std::string& phase) {
    auto p = k.server->Upsert("pods", {{"metadata", {{"name", name}, {"namespace", "ml"}}},
                                       {"spec", {{"nodeName", node}, {"containers", kube::json::array()}}},
                                       {"status", {{"phase", phase}}}});
    return kube::UidOf(p);
  };
  const std::string running = pod("running", "node-a", "Running"), pending = pod("pending", "node-a", "Pending"),
                    done = pod("done", "node-a", "Succeeded"), elsewhere = pod("elsewhere", "node-b", "Running");
  ASSERT_FALSE(running.empty());
  KubeAssignmentStore store(k.client.get(), "node-a");
  auto live = store.PodUidsOnNode();
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(*live, (std::set<std::string>{running, pending}));

  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const auto card = testsupport::FakeH100s(1)[0];
  for (const auto& uid : {running, pending, done, elsewhere, std::string("uid-deleted")}) {
    // Each with a compute share of the card: a slot in its roster.
    const std::vector<AssignedSlice> slices = {{card, 1024, 100, false, "", ""}};
    auto config = BuildLimiterConfig({"ml", "x", uid, "main"}, slices, 0);
    auto seats = ComputeSeats(slices);
    ASSERT_TRUE(files.SetUpContainer(*config, seats).ok()) << uid;
  }
  auto report = files.RemoveGonePods(*live, std::chrono::system_clock::now() + std::chrono::hours(1),
                                     std::chrono::seconds(120));
  EXPECT_EQ(report.removed.size(), 3u);
  EXPECT_TRUE(report.errors.empty());
  auto left = files.PodUids();
  EXPECT_EQ(std::set<std::string>(left.begin(), left.end()), (std::set<std::string>{running, pending}));
  // Their roster slots went with their directories: the card lists the two that are left.
  std::set<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(files.layout().CardDir(card.uuid)))
    entries.insert(e.path().filename().string());
  EXPECT_EQ(entries, (std::set<std::string>{"entry-0", "entry-1", "roster"}));
  // The API server cannot be asked: nothing is known, so nothing is removed (the agent skips).
  k.server.reset();
  EXPECT_FALSE(store.PodUidsOnNode().ok());
}

}  // namespace
}  // namespace tideslice::deviceplugin
