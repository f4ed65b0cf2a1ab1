// The agent against a fake kubelet that can "restart": registration with retries, and
// re-registration when the kubelet deletes the plugin socket or re-creates kubelet.sock.
#include "device-plugin/plugin/agent.h"

#include <filesystem>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <unistd.h>

#include "device-plugin/backends/mock_backend.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using namespace std::chrono_literals;

class CountingKubelet final : public v1beta1::Registration::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* req, v1beta1::Empty*) override {
    std::lock_guard<std::mutex> lock(mu_);
    endpoints_.push_back(req->endpoint());
    return grpc::Status::OK;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return endpoints_.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> endpoints_;
};

struct Kubelet {
  CountingKubelet service;
  std::unique_ptr<grpc::Server> server;
  void Start(const std::string& dir) {
    grpc::ServerBuilder b;
    b.AddListeningPort("unix://" + dir + "/kubelet.sock", grpc::InsecureServerCredentials());
    b.RegisterService(&service);
    server = b.BuildAndStart();
    ASSERT_TRUE(server);
  }
  void Stop(const std::string& dir) {
    server->Shutdown();
    server.reset();
    std::filesystem::remove(dir + "/kubelet.sock");
  }
};

class NoHandler : public AllocationHandler {
 public:
  StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>&,
                                                                const std::vector<DeviceInfo>&) override {
    return Status::FailedPrecondition("not in this test");
  }
};

bool WaitFor(std::function<bool()> cond, std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    auto b = MockBackend::FromJson(R"({"cards":[{"uuid":"NPU-0","model":"Ascend910B3"}]})", catalog::Catalog::Builtin());
    ASSERT_TRUE(b.ok());
    backend_ = std::move(*b);
    AgentOptions o;
    o.plugin.socket_dir = dir_;
    o.plugin.replicas_per_card = 2;
    o.retry_backoff = 50ms;
    o.register_timeout = 500ms;
    agent_ = std::make_unique<Agent>(o, backend_.get(), &handler_);
  }
  void TearDown() override {
    agent_->Stop();
  }
  testsupport::TempDir tmp_{"tsagent"};
  std::string dir_;
  std::unique_ptr<MockBackend> backend_;
  NoHandler handler_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, RegistersOnceTheKubeletAppears) {
  ASSERT_TRUE(agent_->Start().ok());
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(agent_->registrations(), 0);  // no kubelet yet: retrying
  Kubelet kubelet;
  kubelet.Start(dir_);
  EXPECT_TRUE(WaitFor([&] { return kubelet.service.count() >= 1; }));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/tideslice-vnpu.sock"));
  kubelet.Stop(dir_);
}

TEST_F(AgentTest, ReRegistersAfterAKubeletRestartWithinASecondOrTwo) {
  Kubelet kubelet;
  kubelet.Start(dir_);
  ASSERT_TRUE(agent_->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return kubelet.service.count() == 1; }));

  // A new kubelet: it deletes the plugin sockets and creates a fresh kubelet.sock.
  auto restarted = std::chrono::steady_clock::now();
  kubelet.Stop(dir_);
  std::filesystem::remove(dir_ + "/tideslice-vnpu.sock");
  Kubelet fresh;
  fresh.Start(dir_);
  ASSERT_TRUE(WaitFor([&] { return fresh.service.count() >= 1; }, 2000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 2s);
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(dir_ + "/tideslice-vnpu.sock"); }));
  // It settles: no registration storm from our own socket events.
  std::this_thread::sleep_for(300ms);
  size_t settled = fresh.service.count();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(fresh.service.count(), settled);
  EXPECT_LE(settled, 2u);

  // The re-created server still serves the same devices.
  auto channel = grpc::CreateChannel("unix://" + dir_ + "/tideslice-vnpu.sock", grpc::InsecureChannelCredentials());
  auto stub = v1beta1::DevicePlugin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  auto reader = stub->ListAndWatch(&ctx, v1beta1::Empty());
  v1beta1::ListAndWatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.devices_size(), 2);
  ctx.TryCancel();
  fresh.Stop(dir_);
}

TEST_F(AgentTest, HealthChangesReachTheState) {
  ASSERT_TRUE(agent_->Start().ok());
  ASSERT_TRUE(backend_->SetHealth("NPU-0", false).ok());
  agent_->RefreshNow();
  EXPECT_TRUE(WaitFor([&] { return !agent_->state().Snapshot().second.at(0).healthy; }));
  ASSERT_TRUE(backend_->SetHealth("NPU-0", true).ok());
  agent_->RefreshNow();
  EXPECT_TRUE(WaitFor([&] { return agent_->state().Snapshot().second.at(0).healthy; }));
}

}  // namespace
}  // namespace tideslice::deviceplugin
