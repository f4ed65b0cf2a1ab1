// The PodResources client against a fake kubelet PodResources server on a unix socket.
#include "device-plugin/plugin/pod_resources.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "podresources/v1/api.grpc.pb.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

class FakePodResources final : public ::v1::PodResourcesLister::Service {
 public:
  grpc::Status List(grpc::ServerContext*, const ::v1::ListPodResourcesRequest*,
                    ::v1::ListPodResourcesResponse* out) override {
    auto* pod = out->add_pod_resources();
    pod->set_name("train");
    pod->set_namespace_("ml");
    auto* c = pod->add_containers();
    c->set_name("main");
    auto* ours = c->add_devices();
    ours->set_resource_name("tideslice.io/vnpu");
    ours->add_device_ids("GPU-0::1");
    ours->add_device_ids("GPU-1::1");
    auto* other = c->add_devices();
    other->set_resource_name("example.com/nic");
    other->add_device_ids("nic0");
    auto* cpu_only = out->add_pod_resources();
    cpu_only->set_name("web");
    cpu_only->set_namespace_("default");
    cpu_only->add_containers()->set_name("nginx");
    return grpc::Status::OK;
  }
};

TEST(PodResources, ListsOurDevicesPerContainerAndFindsGonePods) {
  testsupport::TempDir tmp("tspr");
  const std::string& dir = tmp.path();
  FakePodResources service;
  grpc::ServerBuilder b;
  b.AddListeningPort("unix://" + dir + "/kubelet.sock", grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  ASSERT_TRUE(server);
  PodResourcesClient client(dir + "/kubelet.sock");
  auto live = client.List("tideslice.io/vnpu", std::chrono::seconds(5));
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  ASSERT_EQ(live->size(), 1u);  // the CPU-only pod and the NIC do not count
  EXPECT_EQ((*live)[0].pod_key, "ml/train");
  EXPECT_EQ((*live)[0].device_ids, (std::vector<std::string>{"GPU-0::1", "GPU-1::1"}));
  EXPECT_EQ(PodsGone({"ml/train", "ml/finished", "a/b"}, *live), (std::vector<std::string>{"a/b", "ml/finished"}));
  server->Shutdown();
  auto down = client.List("tideslice.io/vnpu", std::chrono::milliseconds(200));
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(down.status().message(), HasSubstr("--pod-resources-socket"));
}

}  // namespace
}  // namespace tideslice::deviceplugin
