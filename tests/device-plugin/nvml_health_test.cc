// NVML health: critical XIDs from the documented list (and the admin's additions), double-bit ECC
// and page-retirement events, memory faults waiting for a reset, an XID storm, a GPU that falls
// off the bus; and the whole path to the kubelet: event thread -> agent -> ListAndWatch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>

#include "device-plugin/plugin/agent.h"
#include "tests/device-plugin/fake_nvml_machine.h"

namespace tideslice::deviceplugin {
namespace {

namespace fake = testsupport::fakenvml;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const catalog::Catalog& Cat() { return catalog::Catalog::Builtin(); }

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return cond();
}

class NvmlHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake::LoadLayout("h100-sxm-nvswitch.json", sysfs_.path());
    Make({});
  }
  void Make(std::set<unsigned long long> extra) {
    if (backend_) backend_.reset();
    NvmlOptions o;
    o.sysfs_root = sysfs_.path();
    o.extra_critical_xids = std::move(extra);
    auto b = NvmlBackend::Create(fake::Api(), Cat(), o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend_ = std::move(*b);
    ASSERT_TRUE(backend_->Discover().ok());
  }
  nvml::Device Dev(int i) { return &fake::M().gpus[static_cast<size_t>(i)]; }
  DeviceInfo Card(int i) { return backend_->Discover()->at(static_cast<size_t>(i)); }
  void Xid(int gpu, unsigned long long xid) { fake::Push({Dev(gpu), nvml::kEventTypeXidCriticalError, xid, ~0u, ~0u}); }
  testsupport::TempDir sysfs_{"tssysfs"};
  std::unique_ptr<NvmlBackend> backend_;
};

TEST(NvmlXidListTest, DefaultListAndAdminAdditionsParse) {
  for (unsigned long long xid : {48ull, 63ull, 64ull, 74ull, 79ull, 92ull, 95ull, 119ull, 120ull, 154ull})
    EXPECT_TRUE(nvml::DefaultCriticalXids().count(xid)) << xid;
  for (unsigned long long xid : {13ull, 31ull, 43ull, 45ull, 68ull, 109ull}) {
    EXPECT_FALSE(nvml::DefaultCriticalXids().count(xid)) << xid << " is an application error";
    EXPECT_TRUE(nvml::XidIsApplicationError(xid));
  }
  auto ok = nvml::ParseXidList(" 94, 140 ,");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, (std::set<unsigned long long>{94, 140}));
  EXPECT_TRUE(nvml::ParseXidList("").ok());
  for (const char* bad : {"94;95", "-1", "0", "70000", "x", "1 2"})
    EXPECT_THAT(nvml::ParseXidList(bad).status().message(), HasSubstr("not an XID")) << bad;
}

TEST_F(NvmlHealthTest, OnlyCriticalXidsTakeACardOutAndTheAdminCanAddMore) {
  std::atomic<int> changes{0};
  ASSERT_TRUE(backend_->StartHealthEvents([&] { changes++; }).ok());
  ASSERT_EQ(fake::M().registered.size(), 8u);
  EXPECT_EQ(fake::M().registered[0].second, nvml::kHealthEventTypes);  // all supported: all wanted
  Xid(0, 31);  // page fault: the application's problem
  Xid(0, 94);  // contained ECC error: not on the default list
  ASSERT_TRUE(WaitFor([&] { return backend_->EventsSeen() == 2; }));
  EXPECT_TRUE(Card(0).healthy);
  EXPECT_EQ(backend_->IgnoredXids(), (std::map<unsigned long long, uint64_t>{{31, 1}, {94, 1}}));
  Xid(1, 79);  // fallen off the bus
  ASSERT_TRUE(WaitFor([&] { return changes.load() == 1; }));
  EXPECT_FALSE(Card(1).healthy);
  EXPECT_EQ(Card(1).health_reason, "critical XID 79");
  EXPECT_EQ(backend_->XidFailures().at(Card(1).uuid), 79u);

  Make({94});  // --critical-xids 94
  changes = 0;
  ASSERT_TRUE(backend_->StartHealthEvents([&] { changes++; }).ok());
  Xid(2, 94);
  ASSERT_TRUE(WaitFor([&] { return changes.load() == 1; }));
  EXPECT_FALSE(Card(2).healthy);
}

TEST_F(NvmlHealthTest, EccAndPageRetirementEventsAndPendingResetsAreFaults) {
  std::atomic<int> changes{0};
  ASSERT_TRUE(backend_->StartHealthEvents([&] { changes++; }).ok());
  fake::Push({Dev(0), nvml::kEventTypeDoubleBitEccError, 0, ~0u, ~0u});
  fake::Push({Dev(1), nvml::kEventTypeDramRetirementFailure, 0, ~0u, ~0u});
  fake::Push({Dev(2), nvml::kEventTypeSingleBitEccError, 0, ~0u, ~0u});  // corrected: nothing to do
  ASSERT_TRUE(WaitFor([&] { return backend_->EventsSeen() == 3 && changes.load() >= 1; }));
  EXPECT_THAT(Card(0).health_reason, HasSubstr("double-bit"));
  EXPECT_THAT(Card(1).health_reason, HasSubstr("retirement / row remapping failed"));
  EXPECT_TRUE(Card(2).healthy);
  // Polled: faults the driver holds until a reset.
  fake::M().gpus[3].retired_pending = nvml::kFeatureEnabled;
  fake::M().gpus[4].remap_pending = 1;
  fake::M().gpus[5].remap_failed = 1;
  EXPECT_THAT(Card(3).health_reason, HasSubstr("retired memory pages wait for a GPU reset"));
  EXPECT_THAT(Card(4).health_reason, HasSubstr("remapped memory rows wait for a GPU reset"));
  EXPECT_THAT(Card(5).health_reason, HasSubstr("row remapping failed"));
  fake::M().gpus[4].remap_pending = 0;  // reset done
  EXPECT_TRUE(Card(4).healthy);
}

TEST_F(NvmlHealthTest, AnXidStormIsDrainedAndReportedOnceNotPerEvent) {
  std::atomic<int> changes{0};
  // Registration asks only for what the card supports.
  fake::M().supported_events = static_cast<int>(nvml::kEventTypeXidCriticalError | nvml::kEventTypeSingleBitEccError);
  ASSERT_TRUE(backend_->StartHealthEvents([&] { changes++; }).ok());
  EXPECT_EQ(fake::M().registered[0].second, nvml::kEventTypeXidCriticalError);
  constexpr int kStorm = 20000;
  for (int i = 0; i < kStorm; ++i) Xid(i % 8, i % 2 ? 13 : 43);  // application errors on every card
  for (int i = 0; i < 50; ++i) Xid(6, 48);                         // and one card with double-bit ECC XIDs
  ASSERT_TRUE(WaitFor([&] { return backend_->EventsSeen() == kStorm + 50; }, 20000ms));
  ASSERT_TRUE(WaitFor([&] { return changes.load() >= 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(changes.load(), 1) << "one card changed once: one refresh";
  auto cards = backend_->Discover();
  for (int i = 0; i < 8; ++i) EXPECT_EQ((*cards)[static_cast<size_t>(i)].healthy, i != 6) << i;
  EXPECT_EQ(backend_->IgnoredXids().at(13), static_cast<uint64_t>(kStorm / 2));
}

TEST_F(NvmlHealthTest, AGpuThatFallsOffTheBusStaysListedUnhealthy) {
  std::atomic<int> changes{0};
  ASSERT_TRUE(backend_->StartHealthEvents([&] { changes++; }).ok());
  const std::string gone = fake::M().gpus[2].uuid;
  fake::M().gpus[2].present = false;  // the driver lists 7 GPUs now; indexes 3..7 move down
  {
    std::lock_guard<std::mutex> lock(fake::M().mu);
    fake::M().wait_rc_once = nvml::kErrorGpuIsLost;
  }
  ASSERT_TRUE(WaitFor([&] { return changes.load() >= 1; }));
  auto cards = backend_->Discover();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 8u);
  const DeviceInfo& last = cards->back();
  EXPECT_EQ(last.uuid, gone);
  EXPECT_FALSE(last.healthy);
  EXPECT_THAT(last.health_reason, HasSubstr("no longer lists this GPU"));
  EXPECT_LT(last.index, 0) << "not an NVML index any more";
  EXPECT_EQ((*cards)[2].uuid, fake::M().gpus[3].uuid);
  EXPECT_EQ((*cards)[2].index, 2);
  for (size_t i = 0; i < 7; ++i) EXPECT_TRUE((*cards)[i].healthy);
  // Nothing can be done to it: MIG changes and partitions find it gone.
  EXPECT_FALSE(backend_->SetMigMode(last, true).ok());
  // A GPU NVML counts but cannot read is unhealthy with the driver's reason.
  fake::M().gpus[0].memory_rc = nvml::kErrorGpuIsLost;
  EXPECT_THAT(Card(0).health_reason, HasSubstr("NVML error 15"));
}

TEST_F(NvmlHealthTest, TheEventThreadStops) {
  ASSERT_TRUE(backend_->StartHealthEvents([] {}).ok());
  auto t0 = std::chrono::steady_clock::now();
  backend_->StopHealthEvents();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  Xid(0, 79);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(fake::Queued(), 1u) << "nobody waits for events any more";
  EXPECT_TRUE(Card(0).healthy);
  backend_->StopHealthEvents();  // idempotent
}

// The kubelet's side: a critical XID shows up as Unhealthy devices in ListAndWatch within a
// second, through the agent (its poll is an hour, so only the event can have done it).
class NoHandler : public AllocationHandler {
 public:
  StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>&,
                                                                const std::vector<DeviceInfo>&) override {
    return Status::FailedPrecondition("not in this test");
  }
};
class Kubelet final : public v1beta1::Registration::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest*, v1beta1::Empty*) override {
    return grpc::Status::OK;
  }
};

TEST_F(NvmlHealthTest, ACriticalXidReachesListAndWatchWithinASecond) {
  testsupport::TempDir dir("tsdp");
  Kubelet kubelet;
  grpc::ServerBuilder sb;
  sb.AddListeningPort("unix://" + dir.path() + "/kubelet.sock", grpc::InsecureServerCredentials());
  sb.RegisterService(&kubelet);
  auto kubelet_server = sb.BuildAndStart();
  ASSERT_TRUE(kubelet_server);
  AgentOptions o;
  o.plugin.socket_dir = dir.path();
  o.plugin.replicas_per_card = 2;
  o.health_poll = std::chrono::hours(1);
  NoHandler handler;
  Agent agent(o, backend_.get(), &handler);
  ASSERT_TRUE(agent.Start().ok());
  ASSERT_TRUE(backend_->StartHealthEvents([&agent] { agent.RefreshNow(); }).ok());
  ASSERT_TRUE(WaitFor([&] { return agent.registrations() >= 1; }));
  auto channel = grpc::CreateChannel("unix://" + dir.path() + "/tideslice-vnpu.sock", grpc::InsecureChannelCredentials());
  auto stub = v1beta1::DevicePlugin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  auto reader = stub->ListAndWatch(&ctx, v1beta1::Empty());
  v1beta1::ListAndWatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_EQ(resp.devices_size(), 16);
  for (const auto& d : resp.devices()) ASSERT_EQ(d.health(), "Healthy");
  // Each device carries the card's NUMA node for the kubelet's topology manager.
  EXPECT_EQ(resp.devices(0).topology().nodes(0).id(), 0);
  EXPECT_EQ(resp.devices(15).topology().nodes(0).id(), 1);

  const std::string uuid = fake::M().gpus[5].uuid;
  const auto sent = std::chrono::steady_clock::now();
  Xid(5, 79);
  bool unhealthy = false;
  while (!unhealthy && reader->Read(&resp)) {
    int bad = 0;
    for (const auto& d : resp.devices())
      if (d.health() == "Unhealthy") {
        EXPECT_EQ(d.id().rfind(uuid, 0), 0u) << d.id();
        ++bad;
      }
    unhealthy = bad == 2;
  }
  const auto took = std::chrono::steady_clock::now() - sent;
  ASSERT_TRUE(unhealthy);
  EXPECT_LT(took, 1s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  ctx.TryCancel();
  backend_->StopHealthEvents();
  agent.Stop();
  kubelet_server->Shutdown();
}

}  // namespace
}  // namespace tideslice::deviceplugin
