// Component tests: the plugin's real gRPC server on a unix socket in a temp dir, and a fake
// kubelet that behaves as KUBE-WIRE.md §1.4 describes (it serves Registration on kubelet.sock
// and, inside Register, dials the plugin back and asks for its options).
#include "device-plugin/plugin/plugin_server.h"

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "device-plugin/backends/mock_backend.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

class FakeKubelet final : public v1beta1::Registration::Service {
 public:
  explicit FakeKubelet(std::string dir) : dir_(std::move(dir)) {}
  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* req, v1beta1::Empty*) override {
    if (req->version() != "v1beta1") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unsupported version");
    if (req->resource_name().find('/') == std::string::npos)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not an extended resource name");
    // The real kubelet dials the plugin (socket dir + endpoint) and calls GetDevicePluginOptions.
    auto channel = grpc::CreateChannel("unix://" + dir_ + "/" + req->endpoint(), grpc::InsecureChannelCredentials());
    auto stub = v1beta1::DevicePlugin::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1beta1::DevicePluginOptions options;
    grpc::Status st = stub->GetDevicePluginOptions(&ctx, v1beta1::Empty(), &options);
    if (!st.ok()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot reach plugin: " + st.error_message());
    std::lock_guard<std::mutex> lock(mu_);
    registered_.push_back(*req);
    options_ = options;
    return grpc::Status::OK;
  }
  std::vector<v1beta1::RegisterRequest> registered() {
    std::lock_guard<std::mutex> lock(mu_);
    return registered_;
  }
  v1beta1::DevicePluginOptions options() {
    std::lock_guard<std::mutex> lock(mu_);
    return options_;
  }

 private:
  std::string dir_;
  std::mutex mu_;
  std::vector<v1beta1::RegisterRequest> registered_;
  v1beta1::DevicePluginOptions options_;
};

// Gives each container the cards behind its device IDs, NVIDIA style.
class FakeHandler : public AllocationHandler {
 public:
  std::vector<std::string> preferred;
  std::vector<std::string> PreferredCards(int) override { return preferred; }
  StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>& ids,
                                                                const std::vector<DeviceInfo>&) override {
    if (fail) return Status::FailedPrecondition("no pod on this node is waiting for these devices");
    v1beta1::ContainerAllocateResponse r;
    std::string visible;
    for (const auto& id : ids) {
      std::string uuid;
      int replica;
      ParseDeviceId(id, &uuid, &replica);
      visible += (visible.empty() ? "" : ",") + uuid;
    }
    (*r.mutable_envs())["NVIDIA_VISIBLE_DEVICES"] = visible;
    return r;
  }
  bool fail = false;
};

class PluginServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = MockBackend::FromJson(R"({"cards":[{"uuid":"GPU-0","index":0,"model":"H100","numaNode":0},
                                                 {"uuid":"GPU-1","index":1,"model":"H100","numaNode":1}]})",
                                   catalog::Catalog::Builtin());
    ASSERT_TRUE(b.ok());
    backend_ = std::move(*b);
    state_.Set(*backend_->Discover());
    PluginOptions o;
    o.socket_dir = dir_.path();
    o.replicas_per_card = 3;
    plugin_ = std::make_unique<PluginServer>(o, &state_, &handler_);
    ASSERT_TRUE(plugin_->Start().ok());
    channel_ = grpc::CreateChannel("unix://" + plugin_->socket_path(), grpc::InsecureChannelCredentials());
    stub_ = v1beta1::DevicePlugin::NewStub(channel_);
  }
  void TearDown() override {
    plugin_->Stop();
    state_.Shutdown();
  }
  void Refresh() { state_.Set(*backend_->Discover()); }

  testsupport::TempDir dir_{"tsdp"};
  std::unique_ptr<MockBackend> backend_;
  DeviceState state_;
  FakeHandler handler_;
  std::unique_ptr<PluginServer> plugin_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub_;
};

TEST_F(PluginServerTest, ServesFirstThenRegistersAndTheKubeletDialsBack) {
  FakeKubelet kubelet(dir_.path());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + dir_.path() + "/kubelet.sock", grpc::InsecureServerCredentials());
  builder.RegisterService(&kubelet);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  Status st = plugin_->Register(dir_.path() + "/kubelet.sock", std::chrono::seconds(10));
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto regs = kubelet.registered();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_EQ(regs[0].version(), "v1beta1");
  EXPECT_EQ(regs[0].endpoint(), "tideslice-vnpu.sock");  // the file name only
  EXPECT_EQ(regs[0].resource_name(), "tideslice.io/vnpu");
  EXPECT_TRUE(kubelet.options().get_preferred_allocation_available());
  EXPECT_FALSE(kubelet.options().pre_start_required());
  server->Shutdown();
}

TEST_F(PluginServerTest, RegisterFailsClearlyWithoutAKubelet) {
  Status st = plugin_->Register(dir_.path() + "/kubelet.sock", std::chrono::milliseconds(300));
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("registering tideslice.io/vnpu with the kubelet"));
}

TEST_F(PluginServerTest, ListAndWatchSendsEverythingThenEveryHealthChangeBothWays) {
  grpc::ClientContext ctx;
  auto reader = stub_->ListAndWatch(&ctx, v1beta1::Empty());
  v1beta1::ListAndWatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_EQ(resp.devices_size(), 6);  // 2 cards x 3 replicas
  EXPECT_EQ(resp.devices(0).id(), "GPU-0::0");
  EXPECT_EQ(resp.devices(0).health(), "Healthy");
  EXPECT_EQ(resp.devices(3).topology().nodes(0).id(), 1);

  ASSERT_TRUE(backend_->SetHealth("GPU-1", false).ok());
  Refresh();
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_EQ(resp.devices_size(), 6);
  EXPECT_EQ(resp.devices(0).health(), "Healthy");
  for (int i = 3; i < 6; ++i) EXPECT_EQ(resp.devices(i).health(), "Unhealthy") << i;

  ASSERT_TRUE(backend_->SetHealth("GPU-1", true).ok());
  Refresh();
  ASSERT_TRUE(reader->Read(&resp));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(resp.devices(i).health(), "Healthy") << i;

  Refresh();  // nothing changed: no message; cancel ends the stream
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
}

TEST_F(PluginServerTest, PreferredAllocationPutsSlicesOnDistinctCards) {
  grpc::ClientContext ctx;
  v1beta1::PreferredAllocationRequest req;
  auto* c = req.add_container_requests();
  for (const char* id : {"GPU-0::0", "GPU-0::1", "GPU-0::2", "GPU-1::0", "GPU-1::1"}) c->add_available_deviceids(id);
  c->add_must_include_deviceids("GPU-0::2");
  c->set_allocation_size(2);
  v1beta1::PreferredAllocationResponse resp;
  ASSERT_TRUE(stub_->GetPreferredAllocation(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.container_responses_size(), 1);
  EXPECT_THAT(std::vector<std::string>(resp.container_responses(0).deviceids().begin(),
                                       resp.container_responses(0).deviceids().end()),
              ::testing::ElementsAre("GPU-0::2", "GPU-1::0"));
}

TEST_F(PluginServerTest, PreferredAllocationFollowsTheSchedulersCards) {
  handler_.preferred = {"GPU-1"};
  grpc::ClientContext ctx;
  v1beta1::PreferredAllocationRequest req;
  auto* c = req.add_container_requests();
  for (const char* id : {"GPU-0::0", "GPU-0::1", "GPU-1::0", "GPU-1::1"}) c->add_available_deviceids(id);
  c->set_allocation_size(1);
  v1beta1::PreferredAllocationResponse resp;
  ASSERT_TRUE(stub_->GetPreferredAllocation(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.container_responses(0).deviceids(0), "GPU-1::0");
}

TEST_F(PluginServerTest, PreferredAllocationRejectsBadRequests) {
  auto call = [&](std::vector<std::string> available, std::vector<std::string> must, int size) {
    grpc::ClientContext ctx;
    v1beta1::PreferredAllocationRequest req;
    auto* c = req.add_container_requests();
    for (auto& a : available) c->add_available_deviceids(a);
    for (auto& m : must) c->add_must_include_deviceids(m);
    c->set_allocation_size(size);
    v1beta1::PreferredAllocationResponse resp;
    return stub_->GetPreferredAllocation(&ctx, req, &resp);
  };
  EXPECT_EQ(call({"GPU-9::0"}, {}, 1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(call({"GPU-0::0"}, {"GPU-1::0"}, 1).error_message(), HasSubstr("not in available_deviceIDs"));
  EXPECT_THAT(call({"GPU-0::0"}, {}, 2).error_message(), HasSubstr("allocation_size 2 is outside 1..1"));
}

TEST_F(PluginServerTest, AllocateAnswersPerContainer) {
  grpc::ClientContext ctx;
  v1beta1::AllocateRequest req;
  req.add_container_requests()->add_devices_ids("GPU-1::2");
  v1beta1::AllocateResponse resp;
  grpc::Status st = stub_->Allocate(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.container_responses_size(), 1);
  EXPECT_EQ(resp.container_responses(0).envs().at("NVIDIA_VISIBLE_DEVICES"), "GPU-1");
}

TEST_F(PluginServerTest, AllocateRejectsUnknownAndRepeatedIdsAndPassesHandlerErrors) {
  auto call = [&](std::vector<std::string> ids) {
    grpc::ClientContext ctx;
    v1beta1::AllocateRequest req;
    auto* c = req.add_container_requests();
    for (auto& id : ids) c->add_devices_ids(id);
    v1beta1::AllocateResponse resp;
    return stub_->Allocate(&ctx, req, &resp);
  };
  grpc::Status unknown = call({"GPU-7::0"});
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unknown.error_message(), HasSubstr("unknown device ID \"GPU-7::0\""));
  EXPECT_THAT(call({"GPU-0::9"}).error_message(), HasSubstr("<card uuid>::<0..2>"));
  EXPECT_THAT(call({"garbage"}).error_message(), HasSubstr("unknown device ID"));
  EXPECT_THAT(call({"GPU-0::0", "GPU-0::0"}).error_message(), HasSubstr("listed twice"));
  EXPECT_THAT(call({}).error_message(), HasSubstr("lists no device IDs"));
  handler_.fail = true;
  grpc::Status refused = call({"GPU-0::0"});
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("no pod on this node is waiting"));
}

TEST_F(PluginServerTest, StopRemovesTheSocketAndAStaleSocketIsReplaced) {
  const std::string path = plugin_->socket_path();
  EXPECT_TRUE(std::filesystem::exists(path));
  plugin_->Stop();
  EXPECT_FALSE(std::filesystem::exists(path));
  // A leftover file where the socket goes (a crashed earlier run) does not stop a new start.
  { std::ofstream(path) << "stale"; }
  PluginOptions o;
  o.socket_dir = dir_.path();
  PluginServer again(o, &state_, &handler_);
  ASSERT_TRUE(again.Start().ok());
  again.Stop();
}

TEST(DeviceIds, RoundTripAndRejectMalformed) {
  std::string uuid;
  int r;
  EXPECT_TRUE(ParseDeviceId(MakeDeviceId("GPU-a::b", 12), &uuid, &r));
  EXPECT_EQ(uuid, "GPU-a::b");
  EXPECT_EQ(r, 12);
  for (const char* bad : {"", "::1", "GPU-0::", "GPU-0", "GPU-0::x", "GPU-0::12345678"})
    EXPECT_FALSE(ParseDeviceId(bad, &uuid, &r)) << bad;
}

}  // namespace
}  // namespace tideslice::deviceplugin
