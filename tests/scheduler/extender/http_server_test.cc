// The extender over real HTTP on 127.0.0.1, with bodies shaped exactly as kube-scheduler sends
// them (KUBE-WIRE.md §3.1b).
#include "scheduler/extender/http_server.h"


#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "scheduler/extender/service.h"
#include "tests/scheduler/core/test_cluster.h"
#include "tests/support/test_support.h"

namespace tideslice::extender {
namespace {

using ::testing::HasSubstr;

class ExtenderHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = std::make_shared<core::ClusterState>();
    cluster->AddNode(core::testing::MakeNode("n1", "H100-80G", 2));
    cluster->AddNode(core::testing::MakeNode("n2", "T4", 1));
    snapshot_ = cluster;
    port_ = testsupport::FreeLoopbackPort();
    auto s = HttpServer::Start("http://127.0.0.1:" + std::to_string(port_) + "/sched",
                               [this](const std::string& verb, const std::string& body) {
                                 return ServeVerb(verbs_, [this] { return snapshot_; }, verb, body);
                               });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  void TearDown() override { server_->Stop(); }

  Verbs verbs_{catalog::Catalog::Builtin(), core::Context{core::Policy::kBinpack, nullptr, nullptr}};
  std::shared_ptr<const core::ClusterState> snapshot_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

const char* kFilterBody =
    R"({"Pod":{"metadata":{"name":"p","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"c","image":"x",)"
    R"("resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"20Gi"},"requests":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"20Gi"}}}]},)"
    R"("status":{"phase":"Pending"}},"Nodes":null,"NodeNames":["n1","n2"]})";

TEST_F(ExtenderHttp, FilterAndPrioritizeAnswerAsKubeSchedulerExpects) {
  auto [status, body] = testsupport::HttpRequest(port_, "POST", "/sched/filter", kFilterBody);
  ASSERT_EQ(status, 200) << body;
  auto j = nlohmann::json::parse(body);
  EXPECT_TRUE(j["Nodes"].is_null());
  EXPECT_EQ(j["NodeNames"], nlohmann::json::array({"n1"}));
  EXPECT_THAT(j["FailedAndUnresolvableNodes"]["n2"].get<std::string>(), HasSubstr("eligible"));
  EXPECT_EQ(j["Error"], "");
  auto [pstatus, pbody] = testsupport::HttpRequest(port_, "POST", "/sched/prioritize", kFilterBody);
  ASSERT_EQ(pstatus, 200);
  auto p = nlohmann::json::parse(pbody);
  ASSERT_TRUE(p.is_array());
  for (const auto& h : p) {
    EXPECT_TRUE(h.contains("Host"));
    EXPECT_GE(h["Score"].get<int>(), 0);
    EXPECT_LE(h["Score"].get<int>(), 10);
  }
}

TEST_F(ExtenderHttp, ErrorsAreTwoHundredWithErrorOrClearStatusCodes) {
  auto [s1, b1] = testsupport::HttpRequest(port_, "POST", "/sched/filter", "{not json");
  EXPECT_EQ(s1, 200);
  EXPECT_THAT(nlohmann::json::parse(b1)["Error"].get<std::string>(), HasSubstr("not a JSON object"));
  auto [s2, b2] = testsupport::HttpRequest(port_, "POST", "/sched/bind", R"({"PodName":"p","PodNamespace":"default","PodUID":"u-1","Node":"n1"})");
  EXPECT_EQ(s2, 200);
  EXPECT_THAT(nlohmann::json::parse(b2)["Error"].get<std::string>(), HasSubstr("bind is not available"));
  EXPECT_EQ(testsupport::HttpRequest(port_, "GET", "/sched/filter", "").first, 405);
  EXPECT_EQ(testsupport::HttpRequest(port_, "POST", "/sched/frobnicate", "{}").first, 404);
  auto [s3, b3] = testsupport::HttpRequest(port_, "POST", "/sched/preempt", R"({"Pod":{"metadata":{"name":"p"}},"NodeNameToMetaVictims":{}})");
  EXPECT_EQ(s3, 200);
  EXPECT_EQ(b3, R"({"NodeNameToMetaVictims":{}})");
}

TEST_F(ExtenderHttp, ConcurrentRequestsAllSucceed) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i)
        if (testsupport::HttpRequest(port_, "POST", "/sched/filter", kFilterBody).first == 200) ok++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

}  // namespace
}  // namespace tideslice::extender
