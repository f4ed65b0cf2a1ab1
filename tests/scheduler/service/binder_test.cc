// The binder against the test API server: bind + assignment in one call, the one-allocating-pod
// gate (timeouts, waits, failures), and rebuilding the gate after a restart.
#include "scheduler/service/binder.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "tests/support/kube_env.h"
#include "tests/support/test_support.h"

namespace tideslice::service {
namespace {

using kube::json;

class BinderTest : public ::testing::Test {
 protected:
  testsupport::KubeEnv env_;
  std::unique_ptr<testsupport::TestApiServer>& server_ = env_.server;
  std::unique_ptr<kube::KubeClient>& client_ = env_.client;
  std::string AddPod(const std::string& name) {
    json p = server_->Upsert("pods", {{"metadata", {{"name", name}, {"namespace", "ml"}}}, {"spec", json::object()}});
    return p["metadata"]["uid"];
  }
  static v1::PodAssignment OneSlice() {
    v1::PodAssignment a;
    auto* c = a.add_containers();
    c->set_name("main");
    c->add_slices()->set_card_uuid("GPU-0");
    return a;
  }
  v1::PodAssignment AssignmentIn(const std::string& name) {
    auto a = kube::AssignmentOf(*server_->Get("pods", "ml", name));
    EXPECT_TRUE(a.ok() && a->has_value());
    return a.ok() && a->has_value() ? **a : v1::PodAssignment();
  }
  // What the agent does on acknowledgement.
  void Acknowledge(Binder& b, const std::string& name) {
    json pod = *server_->Get("pods", "ml", name);
    v1::PodAssignment a = AssignmentIn(name);
    a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
    pod["metadata"]["annotations"][std::string(codec::kAssignmentAnnotation)] = codec::EncodeAssignment(a);
    b.Observe(kube::WatchEventType::kModified, server_->Upsert("pods", pod));
  }
};

TEST_F(BinderTest, BindWritesTheAssignmentAndHoldsTheNodeUntilAcknowledged) {
  Binder b(client_.get(), {std::chrono::seconds(30), std::chrono::seconds(30)});
  std::string uid = AddPod("a");
  AddPod("b");
  ASSERT_TRUE(b.Bind("ml", "a", uid, "n1", OneSlice()).ok());
  json pod = *server_->Get("pods", "ml", "a");
  EXPECT_EQ(pod["spec"]["nodeName"], "n1");
  v1::PodAssignment a = AssignmentIn("a");
  EXPECT_EQ(a.phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ(a.node_name(), "n1");
  EXPECT_EQ(a.pod_uid(), uid);
  EXPECT_EQ(b.Holder("n1"), "ml/a");

  std::atomic<bool> b_bound{false};
  std::thread second([&] { b_bound = b.Bind("ml", "b", "", "n1", OneSlice()).ok(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(b_bound.load()) << "the second pod must wait for the first one's acknowledgement";
  EXPECT_FALSE(server_->Get("pods", "ml", "b")->at("spec").contains("nodeName"));
  Acknowledge(b, "a");
  second.join();
  EXPECT_TRUE(b_bound.load());
  EXPECT_EQ(b.Holder("n1"), "ml/b");
  // Other nodes are not held up by n1.
  std::string c_uid = AddPod("c");
  EXPECT_TRUE(b.Bind("ml", "c", c_uid, "n2", OneSlice()).ok());
}

TEST_F(BinderTest, UnacknowledgedPodIsMarkedFailedAfterTheTimeout) {
  Binder b(client_.get(), {std::chrono::milliseconds(200), std::chrono::seconds(10)});
  AddPod("a");
  AddPod("b");
  ASSERT_TRUE(b.Bind("ml", "a", "", "n1", OneSlice()).ok());
  ASSERT_TRUE(b.Bind("ml", "b", "", "n1", OneSlice()).ok());  // waits ~200 ms, then expires a
  v1::PodAssignment a = AssignmentIn("a");
  EXPECT_EQ(a.phase(), v1::ASSIGNMENT_PHASE_FAILED);
  EXPECT_NE(a.message().find("did not acknowledge"), std::string::npos);
  EXPECT_EQ(AssignmentIn("b").phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ(b.Holder("n1"), "ml/b");
}

TEST_F(BinderTest, WaitBudgetRunsOutWithAnErrorNamingTheHolder) {
  Binder b(client_.get(), {std::chrono::seconds(60), std::chrono::milliseconds(100)});
  AddPod("a");
  AddPod("b");
  ASSERT_TRUE(b.Bind("ml", "a", "", "n1", OneSlice()).ok());
  Status s = b.Bind("ml", "b", "", "n1", OneSlice());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("ml/a"), std::string::npos) << s.message();
  EXPECT_FALSE(server_->Get("pods", "ml", "b")->at("spec").contains("nodeName"));
}

TEST_F(BinderTest, FailedBindReleasesTheNodeAndDeletionFreesIt) {
  Binder b(client_.get(), {std::chrono::seconds(60), std::chrono::milliseconds(200)});
  std::string uid = AddPod("a");
  Status wrong = b.Bind("ml", "a", "not-" + uid, "n1", OneSlice());
  EXPECT_EQ(wrong.code(), StatusCode::kAborted);
  EXPECT_EQ(b.Holder("n1"), "");
  ASSERT_TRUE(b.Bind("ml", "a", uid, "n1", OneSlice()).ok());
  json gone = *server_->Get("pods", "ml", "a");
  server_->Remove("pods", "ml", "a");
  b.Observe(kube::WatchEventType::kDeleted, gone);
  EXPECT_EQ(b.Holder("n1"), "");
}

TEST_F(BinderTest, RestartedBinderAdoptsTheAllocatingPodFromTheList) {
  AddPod("a");
  AddPod("b");
  {
    Binder first(client_.get(), {std::chrono::seconds(60), std::chrono::seconds(1)});
    ASSERT_TRUE(first.Bind("ml", "a", "", "n1", OneSlice()).ok());
  }  // the scheduler restarts (or another replica becomes leader)
  Binder second(client_.get(), {std::chrono::seconds(60), std::chrono::milliseconds(100)});
  second.Replace(server_->List("pods"));
  EXPECT_EQ(second.Holder("n1"), "ml/a");
  EXPECT_EQ(second.Bind("ml", "b", "", "n1", OneSlice()).code(), StatusCode::kUnavailable);
  Acknowledge(second, "a");
  EXPECT_TRUE(second.Bind("ml", "b", "", "n1", OneSlice()).ok());
}

}  // namespace
}  // namespace tideslice::service
