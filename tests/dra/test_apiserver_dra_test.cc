// The test API server's resource.k8s.io/v1 resources, through the real client over loopback:
// what the DRA driver and its tests rely on.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/kube_env.h"

namespace tideslice::testsupport {
namespace {

using nlohmann::json;

const std::string kSlices = "/apis/resource.k8s.io/v1/resourceslices";

json Slice(const std::string& node, const std::string& driver, const std::string& pool) {
  return {{"metadata", {{"name", node + "-" + driver}}},
          {"spec", {{"driver", driver}, {"nodeName", node}, {"pool", {{"name", pool}, {"generation", 1}, {"resourceSliceCount", 1}}}}}};
}

TEST(TestApiServerDra, ResourceSlicesCrudAndFieldSelectors) {
  KubeEnv env;
  auto& c = *env.client;
  ASSERT_TRUE(c.Create(kSlices, Slice("node-a", "tideslice.io", "node-a")).ok());
  ASSERT_TRUE(c.Create(kSlices, Slice("node-b", "tideslice.io", "node-b")).ok());
  auto other = c.Create(kSlices, Slice("node-a", "gpu.example.com", "node-a"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ((*other)["kind"], "ResourceSlice");
  EXPECT_FALSE((*other)["metadata"].contains("namespace"));  // cluster-scoped

  auto mine = c.List(kSlices, "fieldSelector=" + kube::QueryEscape("spec.driver=tideslice.io,spec.nodeName=node-a"));
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->items.size(), 1u);
  EXPECT_EQ(mine->items[0]["metadata"]["name"], "node-a-tideslice.io");
  auto by_pool = c.List(kSlices, "fieldSelector=" + kube::QueryEscape("spec.pool.name=node-b"));
  ASSERT_TRUE(by_pool.ok());
  ASSERT_EQ(by_pool->items.size(), 1u);

  json updated = mine->items[0];
  updated["spec"]["pool"]["generation"] = 2;
  auto put = c.Replace(kSlices + "/node-a-tideslice.io", updated);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ((*put)["spec"]["pool"]["generation"], 2);
  // A stale resourceVersion is refused (optimistic concurrency).
  EXPECT_FALSE(c.Replace(kSlices + "/node-a-tideslice.io", updated).ok());

  // The kubelet's wipe: DELETE on the collection with a field selector.
  ASSERT_TRUE(c.Delete(kSlices + "?fieldSelector=" + kube::QueryEscape("spec.nodeName=node-a")).ok());
  auto left = c.List(kSlices);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->items.size(), 1u);
  EXPECT_EQ(left->items[0]["spec"]["nodeName"], "node-b");
  EXPECT_EQ(env.server->requests("DELETE resourceslices"), 1);
}

TEST(TestApiServerDra, WatchSeesOnlySelectedSlices) {
  KubeEnv env(FastBookmarks());
  auto& c = *env.client;
  auto list = c.List(kSlices);
  ASSERT_TRUE(list.ok());
  std::atomic<int> added{0}, deleted{0}, foreign{0};
  http::CancelFlag cancel;
  std::thread watcher([&] {
    (void)c.Watch(kSlices, "fieldSelector=" + kube::QueryEscape("spec.driver=tideslice.io"), list->resource_version, 30,
                  [&](const kube::WatchEvent& e) {
                    if (e.type == kube::WatchEventType::kBookmark) return true;
                    if (e.object["spec"]["driver"] != "tideslice.io") foreign++;
                    if (e.type == kube::WatchEventType::kAdded) added++;
                    if (e.type == kube::WatchEventType::kDeleted) deleted++;
                    return true;
                  },
                  &cancel);
  });
  ASSERT_TRUE(WaitFor([&] { return env.server->open_watches() == 1; }));
  ASSERT_TRUE(c.Create(kSlices, Slice("node-a", "gpu.example.com", "node-a")).ok());
  ASSERT_TRUE(c.Create(kSlices, Slice("node-a", "tideslice.io", "node-a")).ok());
  ASSERT_TRUE(c.Delete(kSlices + "?fieldSelector=" + kube::QueryEscape("spec.nodeName=node-a")).ok());
  EXPECT_TRUE(WaitFor([&] { return added == 1 && deleted == 1; }));
  cancel.Cancel();
  env.server->CloseWatches();
  watcher.join();
  EXPECT_EQ(foreign, 0);
}

TEST(TestApiServerDra, ResourceClaimsAreNamespacedWithStatus) {
  KubeEnv env;
  auto& c = *env.client;
  const std::string claims = "/apis/resource.k8s.io/v1/namespaces/team/resourceclaims";
  json claim = {{"metadata", {{"name", "c1"}}},
                {"spec", {{"devices", {{"requests", json::array({{{"name", "gpu"}, {"exactly", {{"deviceClassName", "tideslice.io"}}}}})}}}}}};
  auto created = c.Create(claims, claim);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ((*created)["metadata"]["namespace"], "team");
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  json status = *created;
  status["status"] = {{"allocation", {{"devices", {{"results", json::array({{{"request", "gpu"}, {"driver", "tideslice.io"},
                                                                               {"pool", "node-a"}, {"device", "card-0"}}})}}}}}};
  ASSERT_TRUE(c.Replace(claims + "/c1/status", status).ok());
  auto got = c.Get(claims + "/c1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["status"]["allocation"]["devices"]["results"][0]["device"], "card-0");
  EXPECT_EQ((*got)["apiVersion"], "resource.k8s.io/v1");
  EXPECT_FALSE(c.Get("/apis/resource.k8s.io/v1/namespaces/other/resourceclaims/c1").ok());
  ASSERT_TRUE(c.Delete(claims + "/c1").ok());
  EXPECT_EQ(c.Get(claims + "/c1").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tideslice::testsupport
