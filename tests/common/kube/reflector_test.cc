// The reflector against the test API server: initial list, live watch, re-list after 410,
// recovery from failing lists, prompt cancel.
#include "common/kube/reflector.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "tests/support/kube_env.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::kube {
namespace {

using testsupport::WaitFor;

using testsupport::TempDir;
using testsupport::TestApiServer;

// A cache the way the scheduler and agent keep one: name -> object.
struct Cache {
  std::mutex mu;
  std::map<std::string, json> objects;
  Reflector::Handler Handler() {
    return {[this](std::vector<json> items) {
              std::lock_guard<std::mutex> lock(mu);
              objects.clear();
              for (auto& i : items) {
                std::string name = i["metadata"]["name"];
                objects[name] = std::move(i);
              }
            },
            [this](WatchEventType type, const json& obj) {
              std::lock_guard<std::mutex> lock(mu);
              if (type == WatchEventType::kDeleted) objects.erase(obj["metadata"]["name"].get<std::string>());
              else objects[obj["metadata"]["name"]] = obj;
            }};
  }
  std::set<std::string> Names() {
    std::lock_guard<std::mutex> lock(mu);
    std::set<std::string> out;
    for (const auto& [k, v] : objects) out.insert(k);
    return out;
  }
};

json Node(const std::string& name) { return {{"metadata", {{"name", name}}}}; }

class ReflectorTest : public ::testing::Test {
 protected:
  void TearDown() override {
    cancel_.Cancel();
    if (runner_.joinable()) runner_.join();
  }
  void Run(Reflector* r) {
    runner_ = std::thread([this, r] { r->Run(&cancel_); });
  }
  testsupport::KubeEnv env_{testsupport::FastBookmarks()};
  TestApiServer* server_ = env_.server.get();
  KubeClient* client_ = env_.client.get();
  http::CancelFlag cancel_;
  std::thread runner_;
};

TEST_F(ReflectorTest, ListsThenWatchesAndRelistsAfterExpiry) {
  for (int i = 0; i < 5; ++i) server_->Upsert("nodes", Node("n" + std::to_string(i)));
  Cache cache;
  ReflectorOptions opts;
  opts.page_size = 2;
  Reflector r(client_, "/api/v1/nodes", cache.Handler(), opts);
  Run(&r);
  ASSERT_TRUE(WaitFor([&] { return r.synced(); }));
  EXPECT_EQ(cache.Names().size(), 5u);
  ASSERT_TRUE(WaitFor([&] { return server_->open_watches() == 1; }));

  server_->Upsert("nodes", Node("n5"));
  server_->Remove("nodes", "", "n0");
  ASSERT_TRUE(WaitFor([&] { return cache.Names().count("n5") && !cache.Names().count("n0"); }));
  EXPECT_EQ(r.lists(), 1);

  // A gap the watch cannot bridge: the stream drops, the reflector's next watches fail for a
  // moment, and meanwhile nodes change and history is compacted. Whatever resourceVersion it
  // holds (bookmarks may have moved it up to the last write), it is now older than the oldest
  // the server keeps, so it must re-list; the changes (a delete included) show up after that.
  server_->FailNext("GET", "/api/v1/nodes", 503, 2, "ServiceUnavailable");
  server_->CloseWatches();
  server_->Remove("nodes", "", "n1");
  server_->Upsert("nodes", Node("n6"));
  server_->Compact();
  ASSERT_TRUE(WaitFor([&] { return r.lists() >= 2; }));
  ASSERT_TRUE(WaitFor([&] {
    return cache.Names() == std::set<std::string>{"n2", "n3", "n4", "n5", "n6"};
  }));
  // And it keeps watching after the re-list.
  server_->Upsert("nodes", Node("n7"));
  ASSERT_TRUE(WaitFor([&] { return cache.Names().count("n7") > 0; }));
}

TEST_F(ReflectorTest, ReconnectsFromTheLastResourceVersionWithoutRelisting) {
  server_->Upsert("nodes", Node("a"));
  Cache cache;
  Reflector r(client_, "/api/v1/nodes", cache.Handler());
  Run(&r);
  ASSERT_TRUE(WaitFor([&] { return r.synced() && server_->open_watches() == 1; }));
  server_->CloseWatches();          // a clean end, as at the watch timeout
  server_->Upsert("nodes", Node("b"));  // made while no watch was open: replayed from history
  ASSERT_TRUE(WaitFor([&] { return cache.Names().count("b") > 0; }));
  EXPECT_EQ(r.lists(), 1);
}

TEST_F(ReflectorTest, FailingListsBackOffAndRecover) {
  server_->Upsert("nodes", Node("a"));
  server_->FailNext("GET", "/api/v1/nodes", 500, 8);  // beyond the client's own retries
  Cache cache;
  ReflectorOptions opts;
  opts.backoff_initial_ms = 20;
  Reflector r(client_, "/api/v1/nodes", cache.Handler(), opts);
  Run(&r);
  ASSERT_TRUE(WaitFor([&] { return r.synced(); }, 20000));
  EXPECT_EQ(cache.Names(), std::set<std::string>{"a"});
}

TEST_F(ReflectorTest, CancelStopsAWatchingReflector) {
  Cache cache;
  Reflector r(client_, "/api/v1/nodes", cache.Handler());
  Run(&r);
  ASSERT_TRUE(WaitFor([&] { return r.synced() && server_->open_watches() == 1; }));
  cancel_.Cancel();
  runner_.join();  // returns: the stream was torn down, not waited out (watch timeout is 300 s)
}

}  // namespace
}  // namespace tideslice::kube
