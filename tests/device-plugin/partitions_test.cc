// Hard partitions at Allocate time: created through the backend, recorded in the ledger, undone
// when anything later fails, and released once the kubelet no longer reports the pod.
#include "device-plugin/plugin/partitions.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/log/log.h"
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
  EXPECT_EQ(r->mounts_size(), 0);  // hardware isolation, no limiter
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

// The limiter is for soft slices: a container with only hard partitions gets none, one that
// mixes a soft slice with a MIG instance gets it (limit 0 on the MIG card), and a limiter that
// cannot be set up undoes the partitions made for the container, like any later failure.
TEST(PartitionHandoff, MigOnlyContainersGetNoLimiterMixedOnesDo) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  auto ledger = PartitionLedger::Open("");
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  {
    auto a = Profiles({{"GPU-1", "1g.10gb"}});
    a.set_pod_uid("uid-mig");
    OnePodStore store(a);
    HandoffHandler handler(&store, backend.get(), ledger->get());
    handler.EnableLimiter(&files, 0);
    auto r = handler.AllocateContainer({"GPU-1::0"}, cards);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->mounts_size(), 0);
    EXPECT_EQ(r->envs().count("TIDESLICE_LIMITER"), 0u);
    EXPECT_TRUE(files.PodUids().empty());
  }
  {
    auto a = Profiles({{"GPU-0", ""}, {"GPU-1", "1g.10gb"}});
    a.set_pod_uid("uid-mixed");
    a.mutable_containers(0)->mutable_slices(0)->set_memory_mib(4096);
    OnePodStore store(a);
    HandoffHandler handler(&store, backend.get(), ledger->get());
    handler.EnableLimiter(&files, 0);
    auto r = handler.AllocateContainer({"GPU-0::0", "GPU-1::0"}, cards);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->mounts_size(), 4);
    EXPECT_EQ(r->envs().at("TIDESLICE_LIMITER"), "on");
    std::ifstream in(files.layout().ConfigPath("uid-mixed", "main"));
    std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(json.find(R"("memoryLimitBytes": "4294967296")"), std::string::npos) << json;
    EXPECT_NE(json.find(R"("memoryLimitBytes": "0")"), std::string::npos) << json;
  }
}

TEST(PartitionHandoff, ALimiterThatCannotBeSetUpUndoesThePartitions) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  auto ledger = PartitionLedger::Open("");
  testsupport::TempDir dir;
  LimiterFiles files(dir.path() + "/limiter");
  auto a = Profiles({{"GPU-0", ""}, {"GPU-1", "1g.10gb"}});
  a.set_pod_uid("../../escape");  // never a directory name
  a.mutable_containers(0)->mutable_slices(0)->set_memory_mib(4096);
  OnePodStore store(a);
  HandoffHandler handler(&store, backend.get(), ledger->get());
  handler.EnableLimiter(&files, 0);
  auto r = handler.AllocateContainer({"GPU-0::0", "GPU-1::0"}, cards);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("memory limiter of ml/p/main"), std::string::npos) << r.status().ToString();
  EXPECT_TRUE(backend->Partitions().empty());
  EXPECT_TRUE((*ledger)->All().empty());
  EXPECT_TRUE(store.acked.empty());
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/escape"));
  EXPECT_TRUE(files.PodUids().empty());
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

// Log lines written while a test runs (the orphan removals are logged, not only counted).
class CapturedLog {
 public:
  CapturedLog() { log::SetSink([](const std::string& line, void* self) { static_cast<CapturedLog*>(self)->lines.push_back(line); }, this); }
  ~CapturedLog() { log::SetSink(nullptr, nullptr); }
  int Count(const std::string& event) const {
    int n = 0;
    for (const auto& l : lines) n += l.find("\"event\":\"" + event + "\"") != std::string::npos;
    return n;
  }
  std::vector<std::string> lines;
};

const DeviceInfo& CardOf(const std::vector<DeviceInfo>& cards, const std::string& uuid) {
  for (const auto& c : cards)
    if (c.uuid == uuid) return c;
  ADD_FAILURE() << "no card " << uuid;
  return cards.front();
}

// What CreateRecordedPartition writes first, for simulating a crash right after it.
PartitionIntent IntentFor(MockBackend& backend, const DeviceInfo& card, const std::string& profile, int slot,
                          const std::string& pod) {
  return IntentToCreate(backend, card, profile, slot, pod, "main", 1000);
}

TEST(PartitionLedgerTest, WritesThroughATempFileThatIsGoneAfterwardsAndSurvivesReload) {
  testsupport::TempDir dir;
  const std::string path = dir.path() + "/ledger.json";
  auto ledger = PartitionLedger::Open(path);
  ASSERT_TRUE(ledger.ok());
  ASSERT_TRUE((*ledger)->Add({"ml/a", "main", "GPU-0", "MIG-x", 1000}).ok());
  PartitionIntent in;
  in.card_uuid = "NPU-0";
  in.kind = "vnpu";
  in.profile = "vir05_1c_16g";
  in.pod_key = "ml/b";
  in.container = "main";
  in.created_unix = 1001;
  in.existing = std::vector<std::string>{"100"};
  auto id = (*ledger)->AddIntent(in);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));  // renamed over the ledger, not left beside it
  // The agent restarts: records and open intents are read back as written.
  auto reopened = PartitionLedger::Open(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->All(), (*ledger)->All());
  ASSERT_EQ((*reopened)->Intents().size(), 1u);
  EXPECT_EQ((*reopened)->Intents()[0], (*ledger)->Intents()[0]);
  EXPECT_EQ((*reopened)->Intents()[0].id, *id);
  // A new intent after the restart does not reuse an open intent's ID.
  auto next = (*reopened)->AddIntent(in);
  ASSERT_TRUE(next.ok());
  EXPECT_NE(*next, *id);
  // A ledger that cannot be written refuses the change and keeps nothing of it.
  auto unwritable = PartitionLedger::Open(dir.path() + "/no-such-dir/ledger.json");
  ASSERT_TRUE(unwritable.ok());
  EXPECT_FALSE((*unwritable)->AddIntent(in).ok());
  EXPECT_TRUE((*unwritable)->Intents().empty());
}

TEST(PartitionOrphans, CrashBetweenCreatingAndRecordingIsUndoneAtStart) {
  auto backend = Cards();  // the driver's state outlives the agent
  auto cards = *backend->Discover();
  testsupport::TempDir dir;
  const std::string path = dir.path() + "/ledger.json";
  {  // the agent that crashes: intents written, partitions made, records never written
    auto ledger = PartitionLedger::Open(path);
    ASSERT_TRUE(ledger.ok());
    const auto& gpu = CardOf(cards, "GPU-1");
    const auto& npu = CardOf(cards, "NPU-0");
    ASSERT_TRUE((*ledger)->AddIntent(IntentFor(*backend, gpu, "1g.10gb", 4, "ml/p")).ok());
    ASSERT_TRUE(backend->CreatePartition(gpu, "1g.10gb", 4).ok());
    ASSERT_TRUE((*ledger)->AddIntent(IntentFor(*backend, npu, "vir05_1c_16g", -1, "ml/q")).ok());
    ASSERT_TRUE(backend->CreatePartition(npu, "vir05_1c_16g", -1).ok());
  }
  ASSERT_EQ(backend->Partitions().size(), 2u);
  CapturedLog log;
  auto ledger = PartitionLedger::Open(path);
  ASSERT_TRUE(ledger.ok());
  auto report = RemoveOrphanPartitions(**ledger, *backend, cards);
  EXPECT_TRUE(report.errors.empty()) << report.errors.front();
  EXPECT_EQ(report.removed, 2);
  EXPECT_TRUE(backend->Partitions().empty());
  EXPECT_TRUE((*ledger)->Intents().empty());
  EXPECT_EQ(log.Count("partition.orphan_removed"), 2);
  // Resolved for good: the next start finds nothing to do.
  auto again = PartitionLedger::Open(path);
  EXPECT_TRUE((*again)->Intents().empty());
}

TEST(PartitionOrphans, IntentWithoutAPartitionIsDropped) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  auto ledger = PartitionLedger::Open("");
  // The crash came before the driver was asked (or the driver refused).
  ASSERT_TRUE((*ledger)->AddIntent(IntentFor(*backend, CardOf(cards, "GPU-0"), "1g.10gb", 2, "ml/p")).ok());
  CapturedLog log;
  auto report = RemoveOrphanPartitions(**ledger, *backend, cards);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.removed, 0);
  EXPECT_EQ(report.dropped, 1);
  EXPECT_TRUE((*ledger)->Intents().empty());
  EXPECT_EQ(log.Count("partition.orphan_removed"), 0);
}

TEST(PartitionOrphans, PartitionsNoRecordDescribesAreLeftAlone) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  const auto& gpu = CardOf(cards, "GPU-0");
  const auto& npu = CardOf(cards, "NPU-0");
  auto ledger = PartitionLedger::Open("");
  // An administrator's MIG instance and vNPU, made before the agent's intents.
  auto admin_mig = backend->CreatePartition(gpu, "1g.10gb", 0);
  auto admin_vnpu = backend->CreatePartition(npu, "vir05_1c_16g", -1);
  ASSERT_TRUE(admin_mig.ok() && admin_vnpu.ok());
  // Interrupted creations that never reached the driver: same profile, another slot; same
  // template, with the admin's vNPU in the intent's list of what was there.
  ASSERT_TRUE((*ledger)->AddIntent(IntentFor(*backend, gpu, "1g.10gb", 4, "ml/p")).ok());
  ASSERT_TRUE((*ledger)->AddIntent(IntentFor(*backend, npu, "vir05_1c_16g", -1, "ml/q")).ok());
  // A vNPU intent from a backend that could not list partitions: a vNPU made by an administrator
  // after the crash cannot be told apart from the one the intent may have made.
  PartitionIntent blind = IntentFor(*backend, npu, "vir10_3c_32g", -1, "ml/r");
  blind.existing.reset();
  ASSERT_TRUE((*ledger)->AddIntent(blind).ok());
  auto admin_later = backend->CreatePartition(npu, "vir10_3c_32g", -1);
  ASSERT_TRUE(admin_later.ok()) << admin_later.status().ToString();
  CapturedLog log;
  auto report = RemoveOrphanPartitions(**ledger, *backend, cards);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.removed, 0);
  EXPECT_TRUE((*ledger)->Intents().empty());
  EXPECT_EQ(backend->Partitions(), (std::vector<std::string>{"GPU-0/" + *admin_mig, "NPU-0/" + *admin_vnpu,
                                                             "NPU-0/" + *admin_later}));
  EXPECT_EQ(log.Count("partition.orphan_removed"), 0);
  EXPECT_EQ(log.Count("partition.orphan_ambiguous"), 1);
}

TEST(PartitionOrphans, CrashAfterRecordingDestroysNothingALivePodHolds) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  testsupport::TempDir dir;
  const std::string path = dir.path() + "/ledger.json";
  std::string mig;
  {
    auto ledger = PartitionLedger::Open(path);
    auto rec = CreateRecordedPartition(**ledger, *backend, CardOf(cards, "GPU-1"), "1g.10gb", 4, "ml/alive", "main", 1000);
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    EXPECT_TRUE((*ledger)->Intents().empty());  // the record replaced the intent
    mig = rec->partition_id;
  }
  auto ledger = PartitionLedger::Open(path);
  ASSERT_EQ((*ledger)->All().size(), 1u);
  auto report = RemoveOrphanPartitions(**ledger, *backend, cards);
  EXPECT_EQ(report.removed, 0);
  EXPECT_EQ(backend->Partitions(), (std::vector<std::string>{"GPU-1/" + mig}));
  // The PodResources reconciler still owns recorded partitions: kept while the pod runs...
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(10000));
  std::vector<ContainerDevices> live = {{"ml/alive", "main", {"GPU-1::0"}}};
  EXPECT_EQ(ReleaseGonePartitions(**ledger, *backend, cards, live, now, std::chrono::seconds(60)).released, 0);
  EXPECT_EQ(backend->Partitions().size(), 1u);
  // ...and released once it is gone.
  EXPECT_EQ(ReleaseGonePartitions(**ledger, *backend, cards, {}, now, std::chrono::seconds(60)).released, 1);
  EXPECT_TRUE(backend->Partitions().empty());
}

TEST(PartitionOrphans, FailedCreationLeavesNoIntentBehind) {
  auto backend = Cards();
  auto cards = *backend->Discover();
  auto ledger = PartitionLedger::Open("");
  backend->FailNextPartition("no free slot");
  auto rec = CreateRecordedPartition(**ledger, *backend, CardOf(cards, "GPU-0"), "1g.10gb", 4, "ml/p", "main", 1000);
  EXPECT_FALSE(rec.ok());
  EXPECT_TRUE((*ledger)->Intents().empty());
  EXPECT_TRUE((*ledger)->All().empty());
  EXPECT_TRUE(backend->Partitions().empty());
}

}  // namespace
}  // namespace tideslice::deviceplugin
