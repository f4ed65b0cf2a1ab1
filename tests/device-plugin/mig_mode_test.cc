// MIG mode per node group: the pure decision, and the agent applying it through the real NVML
// backend over the fake driver: empty cards change, busy ones wait (processes, MIG instances,
// allocations), a change the driver holds for the next reset is reported as pending, and a
// driver refusal is reported, not retried as if it had worked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "device-plugin/plugin/agent.h"
#include "device-plugin/plugin/mig_mode.h"
#include "tests/device-plugin/fake_nvml_machine.h"

namespace tideslice::deviceplugin {
namespace {

namespace fake = testsupport::fakenvml;
using ::testing::HasSubstr;
using Kind = MigModeStep::Kind;
using namespace std::chrono_literals;

const catalog::Catalog& Cat() { return catalog::Catalog::Builtin(); }

DeviceInfo A100(bool mig, bool pending = false) {
  DeviceInfo d;
  d.uuid = "GPU-a";
  d.index = 3;
  d.vendor = "nvidia";
  d.model = "A100-80G";
  d.mig_enabled = mig;
  d.mig_reset_pending = pending;
  return d;
}

TEST(MigModeDecisionTest, WhatTheSettingDoesToOneCard) {
  const auto* a100 = Cat().Find("A100-80G");
  const auto* t4 = Cat().Find("T4");
  EXPECT_EQ(ParseMigModePolicy("on").value(), MigModePolicy::kOn);
  EXPECT_EQ(ParseMigModePolicy("leave").value(), MigModePolicy::kLeave);
  EXPECT_THAT(ParseMigModePolicy("yes").status().message(), HasSubstr("off, on or leave"));

  EXPECT_EQ(DecideMigMode(MigModePolicy::kLeave, A100(false), a100, "").kind, Kind::kNothing);
  EXPECT_EQ(DecideMigMode(MigModePolicy::kOn, A100(true), a100, "").kind, Kind::kNothing);
  auto change = DecideMigMode(MigModePolicy::kOn, A100(false), a100, "");
  EXPECT_EQ(change.kind, Kind::kChange);
  EXPECT_TRUE(change.enable);
  auto busy = DecideMigMode(MigModePolicy::kOn, A100(false), a100, "2 process(es) run on it");
  EXPECT_EQ(busy.kind, Kind::kBusy);
  EXPECT_THAT(busy.why, HasSubstr("stays off until the card is empty: 2 process(es)"));
  // Off now, on after the next reset: pending, with what to do.
  auto pending = DecideMigMode(MigModePolicy::kOn, A100(false, true), a100, "busy or not");
  EXPECT_EQ(pending.kind, Kind::kPendingReset);
  EXPECT_THAT(pending.why, HasSubstr("nvidia-smi -r -i 3"));
  // On now with "off" pending, but the setting says on: cancel the pending change.
  EXPECT_EQ(DecideMigMode(MigModePolicy::kOn, A100(true, true), a100, "").kind, Kind::kChange);
  DeviceInfo sick = A100(false);
  sick.healthy = false;
  EXPECT_EQ(DecideMigMode(MigModePolicy::kOn, sick, a100, "").kind, Kind::kUnhealthy);
  DeviceInfo t = A100(false);
  t.model = "T4";
  EXPECT_EQ(DecideMigMode(MigModePolicy::kOn, t, t4, "").kind, Kind::kNotMig);
  EXPECT_EQ(DecideMigMode(MigModePolicy::kOff, t, t4, "").kind, Kind::kNothing);
  DeviceInfo npu = A100(false);
  npu.vendor = "huawei";
  EXPECT_EQ(DecideMigMode(MigModePolicy::kOn, npu, nullptr, "").kind, Kind::kNothing);
}

class MigModeAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake::LoadLayout("a100-pcie-nvlink-pairs.json", sysfs_.path());
    NvmlOptions o;
    o.sysfs_root = sysfs_.path();
    auto b = NvmlBackend::Create(fake::Api(), Cat(), o);
    ASSERT_TRUE(b.ok());
    backend_ = std::move(*b);
  }
  std::unique_ptr<Agent> MakeAgent(MigModePolicy policy) {
    AgentOptions o;
    o.plugin.socket_dir = dir_.path();
    o.health_poll = 1h;
    o.retry_backoff = 1h;
    o.register_timeout = 50ms;  // no kubelet here: fail fast, then only refreshes run
    o.mig_mode = policy;
    o.catalog = &Cat();
    o.card_in_use = [this](const DeviceInfo& c) {
      return c.uuid == allocated_ ? std::string("allocated to pod ml/trainer") : std::string();
    };
    return std::make_unique<Agent>(o, backend_.get(), &handler_);
  }
  struct NoHandler : AllocationHandler {
    StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>&,
                                                                  const std::vector<DeviceInfo>&) override {
      return Status::FailedPrecondition("not in this test");
    }
  } handler_;
  testsupport::TempDir sysfs_{"tssysfs"};
  testsupport::TempDir dir_{"tsmig"};
  std::unique_ptr<NvmlBackend> backend_;
  std::string allocated_;
};

TEST_F(MigModeAgentTest, OnlyEmptyCardsChangeAndPendingResetsAreReported) {
  auto& gpus = fake::M().gpus;
  allocated_ = gpus[1].uuid;       // a pod holds it, no process yet
  gpus[2].pids = {4242};           // a process runs on it
  gpus[3].set_mig_needs_reset = true;  // the driver can only do it at the next reset
  auto agent = MakeAgent(MigModePolicy::kOn);
  ASSERT_TRUE(agent->Start().ok());
  auto states = agent->MigModeStates();
  EXPECT_EQ(states[gpus[0].uuid], "applied");
  EXPECT_EQ(states[gpus[1].uuid], "busy");
  EXPECT_EQ(states[gpus[2].uuid], "busy");
  EXPECT_EQ(states[gpus[3].uuid], "pending-reset");
  EXPECT_EQ(gpus[0].mig_current, 1u);
  EXPECT_EQ(gpus[1].mig_current, 0u);
  EXPECT_EQ(gpus[2].mig_current, 0u);
  EXPECT_EQ(gpus[3].mig_current, 0u);
  EXPECT_EQ(gpus[3].mig_pending, 1u);
  for (const auto& [uuid, mode] : fake::M().set_mig_calls)
    EXPECT_TRUE(uuid != gpus[1].uuid && uuid != gpus[2].uuid) << "never asked to change a busy card";
  // The kubelet and the scheduler see the state the driver reports after the change.
  auto snapshot = agent->state().Snapshot().second;
  EXPECT_TRUE(snapshot[0].mig_enabled);
  EXPECT_FALSE(snapshot[3].mig_enabled);
  EXPECT_TRUE(snapshot[3].mig_reset_pending);

  // The pending card is not asked again on the next round; the busy ones change once empty.
  const size_t calls = fake::M().set_mig_calls.size();
  allocated_.clear();
  gpus[2].pids.clear();
  agent->RefreshNow();
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      if (gpus[1].mig_current == 1 && gpus[2].mig_current == 1) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }());
  EXPECT_EQ(fake::M().set_mig_calls.size(), calls + 2);
  agent->Stop();
}

TEST_F(MigModeAgentTest, ADriverRefusalOnABusyCardIsReportedNotMistakenForSuccess) {
  // The driver sees a process the agent cannot (no per-process API on this driver).
  NvmlApi api = fake::Api();
  api.device_get_compute_running_processes = nullptr;
  NvmlOptions o;
  o.sysfs_root = sysfs_.path();
  auto b = NvmlBackend::Create(api, Cat(), o);
  ASSERT_TRUE(b.ok());
  backend_ = std::move(*b);
  fake::M().gpus[4].pids = {777};
  auto agent = MakeAgent(MigModePolicy::kOn);
  ASSERT_TRUE(agent->Start().ok());
  EXPECT_EQ(agent->MigModeStates()[fake::M().gpus[4].uuid], "refused");
  EXPECT_EQ(fake::M().gpus[4].mig_current, 0u);
  EXPECT_EQ(fake::M().gpus[5].mig_current, 1u);
  auto direct = backend_->SetMigMode(agent->state().Snapshot().second[4], true);
  EXPECT_EQ(direct.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(direct.status().message(), HasSubstr("processes use the card"));
  agent->Stop();
}

TEST_F(MigModeAgentTest, OffTurnsMigOffAndLeaveTouchesNothing) {
  for (auto& g : fake::M().gpus) g.mig_current = g.mig_pending = 1;
  auto leave = MakeAgent(MigModePolicy::kLeave);
  ASSERT_TRUE(leave->Start().ok());
  leave->Stop();
  EXPECT_TRUE(fake::M().set_mig_calls.empty());
  // MIG on: the agent must see the card's MIG instances to call it empty; this fake driver has
  // no MIG instance API, so it cannot, and waits.
  auto off = MakeAgent(MigModePolicy::kOff);
  ASSERT_TRUE(off->Start().ok());
  EXPECT_EQ(off->MigModeStates()[fake::M().gpus[0].uuid], "busy");
  EXPECT_TRUE(fake::M().set_mig_calls.empty());
  off->Stop();
  // A driver that lists no MIG instances on them: the cards are empty and MIG goes off.
  NvmlOptions o;
  o.sysfs_root = sysfs_.path();
  auto listing = NvmlBackend::Create(fake::ApiListingNoMigInstances(), Cat(), o);
  ASSERT_TRUE(listing.ok());
  backend_ = std::move(*listing);
  auto off2 = MakeAgent(MigModePolicy::kOff);
  ASSERT_TRUE(off2->Start().ok());
  EXPECT_EQ(off2->MigModeStates()[fake::M().gpus[0].uuid], "applied");
  for (const auto& g : fake::M().gpus) EXPECT_EQ(g.mig_current, 0u) << g.uuid;
  EXPECT_FALSE(off2->state().Snapshot().second[0].mig_enabled);
  off2->Stop();
}

}  // namespace
}  // namespace tideslice::deviceplugin
