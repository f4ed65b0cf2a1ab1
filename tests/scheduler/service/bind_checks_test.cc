// SchedulerService::Bind refuses what TideSlice's own kube-scheduler profile would never ask it to
// bind. The bind verb is reachable by anyone who can reach the extender's listener, and the tester
// found that it took anything: it bound a kube-system pod meant for the default scheduler, ignored
// the pod's nodeSelector, and bound to a node that does not exist. Over a ClusterCache fed by hand
// and a Binder on the test API server.
#include "scheduler/service/scheduler_service.h"

#include <gtest/gtest.h>

#include "common/codec/annotations.h"
#include "common/kube/objects.h"
#include "scheduler/core/request.h"
#include "tests/support/inventory_node.h"
#include "tests/support/kube_env.h"

namespace tideslice::service {
namespace {

using kube::json;

BinderOptions QuickBinder() {
  BinderOptions o;
  o.max_wait = std::chrono::seconds(1);
  return o;
}

class BindChecksTest : public ::testing::Test {
 protected:
  BindChecksTest()
      : cache_(catalog::Catalog::Builtin()),
        binder_(env_.client.get(), QuickBinder()),
        service_(catalog::Catalog::Builtin(), &cache_, &binder_, env_.client.get(), [] { return true; }) {
    const auto now = std::chrono::system_clock::now();
    cache_.ReplaceNodes({testsupport::InventoryNode("n1", 2, now, true, {{"pool", "a"}, {"zone", "z1"}}),
                         testsupport::InventoryNode("n2", 2, now, true, {{"pool", "b"}, {"zone", "z1"}})});
  }

  // Creates the pod on the API server and lets the cache's pod watch see it; returns its UID.
  std::string AddPod(const std::string& ns, const std::string& name, const std::string& scheduler,
                     const json& node_selector = nullptr, bool accelerator = false, const std::string& node = "") {
    json container = {{"name", "c"}, {"image", "busybox"}};
    if (accelerator)
      container["resources"]["limits"] = {{core::names::kVnpu, "1"}, {core::names::kVnpuMemory, "10240"}};
    json pod = {{"metadata", {{"name", name}, {"namespace", ns}}},
                {"spec", {{"schedulerName", scheduler}, {"containers", json::array({container})}}},
                {"status", {{"phase", "Pending"}}}};
    if (!node_selector.is_null()) pod["spec"]["nodeSelector"] = node_selector;
    if (!node.empty()) pod["spec"]["nodeName"] = node;
    json created = env_.server->Upsert("pods", pod);
    cache_.ReplacePods(env_.server->List("pods"));
    return created["metadata"]["uid"];
  }
  Status Bind(const std::string& ns, const std::string& name, const std::string& uid, const std::string& node) {
    extender::BindingArgs args;
    args.pod_namespace = ns;
    args.pod_name = name;
    args.pod_uid = uid;
    args.node = node;
    return service_.Bind(args);
  }
  std::string NodeOf(const std::string& ns, const std::string& name) {
    auto pod = env_.server->Get("pods", ns, name);
    return pod ? pod->at("spec").value("nodeName", std::string()) : "<gone>";
  }
  int Bindings() const { return env_.server->requests("POST pods/binding"); }

  testsupport::KubeEnv env_;
  ClusterCache cache_;
  Binder binder_;
  SchedulerService service_;
};

TEST_F(BindChecksTest, PodForAnotherSchedulerIsRefusedAndStaysUnbound) {
  std::string uid = AddPod("kube-system", "coredns-7d", "default-scheduler");
  Status s = Bind("kube-system", "coredns-7d", uid, "n1");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("default-scheduler"), std::string::npos) << s.message();
  EXPECT_EQ(NodeOf("kube-system", "coredns-7d"), "");
  EXPECT_EQ(Bindings(), 0);
  // Also without the UID (the verb's PodUID is optional) and for an accelerator pod.
  std::string gpu_uid = AddPod("kube-system", "gpu-job", "default-scheduler", nullptr, /*accelerator=*/true);
  EXPECT_EQ(Bind("kube-system", "coredns-7d", "", "n1").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Bind("kube-system", "gpu-job", gpu_uid, "n1").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(NodeOf("kube-system", "gpu-job"), "");
  EXPECT_EQ(Bindings(), 0);
  EXPECT_EQ(binder_.Holder("n1"), "");
}

TEST_F(BindChecksTest, NodeThatDoesNotExistIsRefused) {
  std::string uid = AddPod("ml", "web", "tideslice-scheduler");
  Status s = Bind("ml", "web", uid, "ghost-node");
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("ghost-node"), std::string::npos) << s.message();
  std::string gpu_uid = AddPod("ml", "train", "tideslice-scheduler", nullptr, /*accelerator=*/true);
  EXPECT_EQ(Bind("ml", "train", gpu_uid, "ghost-node").code(), StatusCode::kNotFound);
  EXPECT_EQ(NodeOf("ml", "web"), "");
  EXPECT_EQ(NodeOf("ml", "train"), "");
  EXPECT_EQ(Bindings(), 0);
}

TEST_F(BindChecksTest, NodeSelectorMismatchIsRefusedAndAMatchBinds) {
  std::string uid = AddPod("ml", "web", "tideslice-scheduler", {{"pool", "b"}, {"zone", "z1"}});
  Status s = Bind("ml", "web", uid, "n1");  // n1 is pool=a
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("nodeSelector"), std::string::npos) << s.message();
  EXPECT_EQ(NodeOf("ml", "web"), "");
  // A label the node lacks altogether.
  std::string other = AddPod("ml", "edge", "tideslice-scheduler", {{"edge", "true"}});
  EXPECT_EQ(Bind("ml", "edge", other, "n2").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(NodeOf("ml", "edge"), "");
  // An accelerator pod is checked before anything is reserved or written.
  std::string gpu_uid = AddPod("ml", "train", "tideslice-scheduler", {{"pool", "b"}}, /*accelerator=*/true);
  EXPECT_EQ(Bind("ml", "train", gpu_uid, "n1").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(binder_.Holder("n1"), "");
  EXPECT_EQ(Bindings(), 0);

  Status ok = Bind("ml", "web", uid, "n2");
  EXPECT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_EQ(NodeOf("ml", "web"), "n2");
  Status gpu_ok = Bind("ml", "train", gpu_uid, "n2");
  ASSERT_TRUE(gpu_ok.ok()) << gpu_ok.ToString();
  EXPECT_EQ(NodeOf("ml", "train"), "n2");
  auto a = kube::AssignmentOf(*env_.server->Get("pods", "ml", "train"));
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->phase(), v1::ASSIGNMENT_PHASE_ALLOCATING);
  EXPECT_EQ((*a)->node_name(), "n2");
  EXPECT_EQ((*a)->pod_uid(), gpu_uid);
}

TEST_F(BindChecksTest, AlreadyBoundPodIsRefusedWithoutABindingCall) {
  std::string uid = AddPod("ml", "running", "tideslice-scheduler", nullptr, /*accelerator=*/true, "n1");
  Status s = Bind("ml", "running", uid, "n2");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("already bound to n1"), std::string::npos) << s.message();
  EXPECT_EQ(NodeOf("ml", "running"), "n1");
  // Refused before the API is asked (the old code reserved slices and posted a Binding).
  EXPECT_EQ(Bindings(), 0);
  EXPECT_EQ(binder_.Holder("n2"), "");
  EXPECT_EQ(cache_.stats().assumed_pods, 0u);
}

TEST_F(BindChecksTest, PlainPodForThisSchedulerBindsToAnExistingNode) {
  std::string uid = AddPod("ml", "web", "tideslice-scheduler");
  Status s = Bind("ml", "web", uid, "n1");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(NodeOf("ml", "web"), "n1");
  EXPECT_EQ(Bindings(), 1);
  // Not an accelerator pod: no assignment, no gate on the node.
  auto a = kube::AssignmentOf(*env_.server->Get("pods", "ml", "web"));
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->has_value());
  EXPECT_EQ(binder_.Holder("n1"), "");
}

}  // namespace
}  // namespace tideslice::service
