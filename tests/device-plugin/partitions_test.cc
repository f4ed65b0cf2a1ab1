// Hard partitions at Allocate time: created through the backend, recorded in the ledger, undone
// when anything later fails, and released once the kubelet no longer reports the pod.
#include "device-plugin/plugin/partitions.h"

#include <gtest/gtest.h>

#include <fstream>

#include "device-plugin/backends/mock_backend.h"
#include "device-plugin/plugin/handoff.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

class OnePodStore : public AssignmentStore {
 public:
  explicit OnePodStore(v1::PodAssignment a) { pod_.pod_key = "ml/p"; pod_.assignment = std::move(a); }
  StatusOr<std::vector<PendingPod>> PendingOnNode() override { return std::vector<PendingPod>{pod_}; }
  Status Acknowledge(const std::string&, const std::string& container, const std::vector<std::string>&) override {
    if (!ack_error.empty()) return Status::Unavailable(ack_error);
    acked.push_back(container);
    return Status::Ok();
  }
  std::string ack_error;
  std::vector<std::string> acked;

 private:
  PendingPod pod_;
};

v1::PodAssignment Profiles(const std::vector<std::pair<std::string, std::string>>& card_profile) {
  v1::PodAssignment a;
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  auto* c = a.add_containers();
  c->set_name("main");
  for (const auto& [card, profile] : card_profile) {
    auto* s = c->add_slices();
    s->set_card_uuid(card);
    s->set_profile(profile);
    s->set_start_slot(profile.empty() ? -1 : 4);
  }
  return a;
}

std::unique_ptr<MockBackend> Cards() {
  auto b = MockBackend::FromJson(R"({"cards":[{"uuid":"GPU-0","index":0,"model":"H100-80G"},
                                              {"uuid":"GPU-1","index":1,"model":"H100-80G"},
                                              {"uuid":"NPU-0","index":2,"model":"Ascend910B3"}]})",
                                 catalog::Catalog::Builtin());
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(*b);
}

TEST(PartitionHandoff, MigSliceGetsAnInstanceRecordedInTheLedger) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  testsupport::TempDir dir;
  auto ledger = PartitionLedger::Open(dir.path() + "/ledger.json");
  ASSERT_TRUE(ledger.ok());
  OnePodStore store(Profiles({{"GPU-1", "1g.10gb"}}));
  HandoffHandler handler(&store, backend.get(), ledger->get());
  auto r = handler.AllocateContainer({"GPU-1::0"}, cards);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(backend->Partitions().size(), 1u);
  std::string mig = r->envs().at("NVIDIA_VISIBLE_DEVICES");
  EXPECT_EQ(mig.rfind("MIG-GPU-1-4-", 0), 0u) << mig;  // the scheduler's start slot reached the driver
  EXPECT_EQ(r->envs().count("CUDA_DEVICE_MEMORY_LIMIT_0"), 0u);  // hardware isolation, no soft limit
  auto records = (*ledger)->All();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].pod_key, "ml/p");
  EXPECT_EQ(records[0].partition_id, mig);
  // The ledger survives a restart of the agent.
  auto reopened = PartitionLedger::Open(dir.path() + "/ledger.json");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->All(), records);
}

TEST(PartitionHandoff, VnpuTemplateOnAscend) {
  auto backend = Cards();
  auto ledger = PartitionLedger::Open("");
  OnePodStore store(Profiles({{"NPU-0", "vir05_1c_16g"}}));
  HandoffHandler handler(&store, backend.get(), ledger->get());
  auto r = handler.AllocateContainer({"NPU-0::0"}, *backend->Discover());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->envs().at("ASCEND_VISIBLE_DEVICES"), "100");
  bool has_vnpu_node = false;
  for (const auto& d : r->devices()) has_vnpu_node |= d.host_path() == "/dev/davinci100";
  EXPECT_TRUE(has_vnpu_node);
}

TEST(PartitionHandoff, AnyLaterFailureUndoesThePartitionsAlreadyMade) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  auto ledger = PartitionLedger::Open("");
  {  // the driver refuses: the error says so and nothing is recorded
    OnePodStore store(Profiles({{"GPU-0", "1g.10gb"}, {"GPU-1", "1g.10gb"}}));
    HandoffHandler handler(&store, backend.get(), ledger->get());
    backend->FailNextPartition("no free slot");
    auto r = handler.AllocateContainer({"GPU-0::0", "GPU-1::0"}, cards);
    EXPECT_NE(r.status().message().find("no free slot"), std::string::npos);
    EXPECT_TRUE(backend->Partitions().empty());
    EXPECT_TRUE((*ledger)->All().empty());
    EXPECT_TRUE(store.acked.empty());
  }
  {  // the acknowledgement fails: the partition is destroyed, the ledger is empty
    OnePodStore store(Profiles({{"GPU-0", "1g.10gb"}}));
    store.ack_error = "apiserver down";
    HandoffHandler handler(&store, backend.get(), ledger->get());
    auto r = handler.AllocateContainer({"GPU-0::0"}, cards);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("apiserver down"), std::string::npos);
    EXPECT_TRUE(backend->Partitions().empty());
    EXPECT_TRUE((*ledger)->All().empty());
  }
  {  // the second partition cannot be made (a profile the card does not have): the first is
     // destroyed again, nothing is recorded
    OnePodStore store(Profiles({{"GPU-0", "1g.10gb"}, {"GPU-1", "9g.99gb"}}));
    HandoffHandler handler(&store, backend.get(), ledger->get());
    auto r = handler.AllocateContainer({"GPU-0::0", "GPU-1::0"}, cards);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("9g.99gb"), std::string::npos);
    EXPECT_TRUE(backend->Partitions().empty());
    EXPECT_TRUE((*ledger)->All().empty());
  }
  {  // no partitioner at all: a clear refusal rather than a whole card
    OnePodStore store(Profiles({{"GPU-0", "1g.10gb"}}));
    HandoffHandler handler(&store);
    auto r = handler.AllocateContainer({"GPU-0::0"}, cards);
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(r.status().message().find("does not manage partitions"), std::string::npos);
  }
}

TEST(PartitionReconcile, ReleasesOnlyGoneAndOldEnoughPods) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  auto ledger = PartitionLedger::Open("");
  auto make = [&](const std::string& pod, const std::string& card, int64_t created) {
    const DeviceInfo* info = nullptr;
    for (const auto& c : cards)
      if (c.uuid == card) info = &c;
    auto id = backend->CreatePartition(*info, info->vendor == "huawei" ? "vir05_1c_16g" : "1g.10gb", -1);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE((*ledger)->Add({pod, "main", card, *id, created}).ok());
  };
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(10000));
  make("ml/gone", "GPU-0", 1000);
  make("ml/alive", "GPU-1", 1000);
  make("ml/young", "NPU-0", 9990);   // just allocated: kubelet may not list it yet
  ASSERT_TRUE((*ledger)->Add({"ml/card-removed", "main", "GPU-9", "MIG-x", 1000}).ok());
  std::vector<ContainerDevices> live = {{"ml/alive", "main", {"GPU-1::0"}}};
  auto report = ReleaseGonePartitions(**ledger, *backend, cards, live, now, std::chrono::seconds(60));
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.released, 2);  // ml/gone destroyed, ml/card-removed dropped
  std::set<std::string> left;
  for (const auto& r : (*ledger)->All()) left.insert(r.pod_key);
  EXPECT_EQ(left, (std::set<std::string>{"ml/alive", "ml/young"}));
  EXPECT_EQ(backend->Partitions().size(), 2u);
}

TEST(PartitionLedgerTest, CorruptFileIsAnErrorThatNamesIt) {
  testsupport::TempDir dir;
  std::ofstream(dir.path() + "/l.json") << "{\"partitions\": [{\"pod\": 1}]}";
  Status s = PartitionLedger::Open(dir.path() + "/l.json").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(dir.path() + "/l.json"), std::string::npos);
  EXPECT_NE(s.message().find("nvidia-smi"), std::string::npos);
}

}  // namespace
}  // namespace tideslice::deviceplugin
