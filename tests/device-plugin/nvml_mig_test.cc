// MIG partitions and XID health of the NVML backend, against a fake NVML that keeps GPU
// instances, compute instances, MIG devices and an event queue the way the driver does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <list>
#include <thread>

#include "device-plugin/backends/nvml_backend.h"
#include "device-plugin/plugin/partitions.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

using ::testing::HasSubstr;

constexpr unsigned long long kMiB = 1024ull * 1024;

struct FakeDev {
  std::string uuid;
  bool mig = false;
  unsigned int gi_id = 0, ci_id = 0;
};
struct FakeGi {
  unsigned int id, profile;
  nvml::GpuInstancePlacement placement;
  bool has_ci = false;
};
struct FakeNvml {
  FakeDev gpu{"GPU-h100-0"};
  unsigned int mig_mode = 1;
  std::list<FakeGi> gis;        // stable addresses: handles point into the list
  std::list<FakeDev> mig_devs;
  unsigned int next_gi = 1;
  std::mutex mu;
  std::deque<nvml::EventData> events;
  int event_waits = 0;
  std::vector<unsigned long long> registered;
} f;

// H100 80GB profiles as (profile id, slices, memory MB).
const std::map<unsigned int, std::pair<unsigned int, unsigned long long>> kProfiles = {
    {0, {1, 9856}}, {1, {2, 19968}}, {2, {3, 40192}}, {3, {4, 40192}}, {4, {7, 80896}}, {7, {1, 9856}}, {9, {1, 19968}}};

FakeDev* Dev(nvml::Device d) { return static_cast<FakeDev*>(d); }
int Ok() { return nvml::kSuccess; }
int Count(unsigned int* n) { return *n = 1, nvml::kSuccess; }
int Handle(unsigned int i, nvml::Device* d) { return i == 0 ? (*d = &f.gpu, nvml::kSuccess) : 2; }
int Uuid(nvml::Device d, char* buf, unsigned int len) {
  std::strncpy(buf, Dev(d)->uuid.c_str(), len - 1);
  return nvml::kSuccess;
}
int Name(nvml::Device, char* buf, unsigned int len) { return std::strncpy(buf, "NVIDIA H100 80GB HBM3", len - 1), 0; }
int Memory(nvml::Device, nvml::Memory* m) {
  *m = {81559 * kMiB, 81559 * kMiB, 0};
  return nvml::kSuccess;
}
int MigMode(nvml::Device, unsigned int* cur, unsigned int* pending) { return *cur = *pending = f.mig_mode, 0; }
int ProfileInfo(nvml::Device, unsigned int p, nvml::GpuInstanceProfileInfo* info) {
  auto it = kProfiles.find(p);
  if (it == kProfiles.end()) return nvml::kErrorNotSupported;
  *info = {};
  info->id = p;
  info->slice_count = it->second.first;
  info->memory_size_mb = it->second.second;
  return nvml::kSuccess;
}
int CreateGiAt(nvml::Device, unsigned int profile, const nvml::GpuInstancePlacement* pl, nvml::GpuInstance* gi) {
  for (const auto& g : f.gis)  // overlapping placements are refused, as by the driver
    if (pl->start < g.placement.start + g.placement.size && g.placement.start < pl->start + pl->size) return 17;
  f.gis.push_back({f.next_gi++, profile, *pl});
  *gi = &f.gis.back();
  return nvml::kSuccess;
}
int CreateGi(nvml::Device d, unsigned int profile, nvml::GpuInstance* gi) {
  nvml::GpuInstancePlacement pl{0, 1};
  for (unsigned int s = 0; s < 8; ++s) {
    pl.start = s;
    if (CreateGiAt(d, profile, &pl, gi) == nvml::kSuccess) return nvml::kSuccess;
  }
  return 17;
}
int GiInfo(nvml::GpuInstance gi, nvml::GpuInstanceInfo* info) {
  auto* g = static_cast<FakeGi*>(gi);
  *info = {&f.gpu, g->id, g->profile, g->placement};
  return nvml::kSuccess;
}
int CiProfileInfo(nvml::GpuInstance, unsigned int p, unsigned int eng, nvml::ComputeInstanceProfileInfo* info) {
  if (eng != 0) return 2;
  *info = {};
  info->id = p;
  return nvml::kSuccess;
}
int CreateCi(nvml::GpuInstance gi, unsigned int, nvml::ComputeInstance* ci) {
  auto* g = static_cast<FakeGi*>(gi);
  g->has_ci = true;
  f.mig_devs.push_back({"MIG-" + std::to_string(g->id), true, g->id, 0});
  *ci = gi;  // the fake names a compute instance by its GPU instance
  return nvml::kSuccess;
}
int DestroyCi(nvml::ComputeInstance ci) {
  auto* g = static_cast<FakeGi*>(ci);
  g->has_ci = false;
  f.mig_devs.remove_if([&](const FakeDev& d) { return d.gi_id == g->id; });
  return nvml::kSuccess;
}
int DestroyGi(nvml::GpuInstance gi) {
  auto* g = static_cast<FakeGi*>(gi);
  if (g->has_ci) return 19;  // IN_USE
  f.gis.remove_if([&](const FakeGi& x) { return x.id == g->id; });
  return nvml::kSuccess;
}
int MaxMig(nvml::Device, unsigned int* n) { return *n = 7, nvml::kSuccess; }
int MigByIndex(nvml::Device, unsigned int i, nvml::Device* d) {
  if (i >= f.mig_devs.size()) return nvml::kErrorNotFound;
  *d = &*std::next(f.mig_devs.begin(), i);
  return nvml::kSuccess;
}
int GiId(nvml::Device d, unsigned int* id) { return Dev(d)->mig ? (*id = Dev(d)->gi_id, 0) : 2; }
int CiId(nvml::Device d, unsigned int* id) { return Dev(d)->mig ? (*id = Dev(d)->ci_id, 0) : 2; }
int ByUuid(const char* uuid, nvml::Device* d) {
  for (auto& m : f.mig_devs)
    if (m.uuid == uuid) return *d = &m, nvml::kSuccess;
  return nvml::kErrorNotFound;
}
int GiById(nvml::Device, unsigned int id, nvml::GpuInstance* gi) {
  for (auto& g : f.gis)
    if (g.id == id) return *gi = &g, nvml::kSuccess;
  return nvml::kErrorNotFound;
}
int CiById(nvml::GpuInstance gi, unsigned int, nvml::ComputeInstance* ci) { return *ci = gi, nvml::kSuccess; }
int SetCreate(nvml::EventSet* s) { return *s = &f, nvml::kSuccess; }
int Register(nvml::Device, unsigned long long types, nvml::EventSet) {
  f.registered.push_back(types);
  return nvml::kSuccess;
}
int Wait(nvml::EventSet, nvml::EventData* data, unsigned int) {
  std::lock_guard<std::mutex> lock(f.mu);
  ++f.event_waits;
  if (f.events.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return nvml::kErrorTimeout;
  }
  *data = f.events.front();
  f.events.pop_front();
  return nvml::kSuccess;
}
int SetFree(nvml::EventSet) { return nvml::kSuccess; }
// 70 processes: more than the backend's first buffer of 64, so it must ask again.
int Procs(nvml::Device, unsigned int* count, nvml::ProcessInfo* infos) {
  const unsigned int total = 70;
  if (*count < total) {
    *count = total;
    return nvml::kErrorInsufficientSize;
  }
  for (unsigned int i = 0; i < total; ++i) infos[i] = {1000 + i, (i + 1) * kMiB, 0, 0};
  *count = total;
  return nvml::kSuccess;
}

NvmlApi FakeApi() {
  NvmlApi a;
  a.init = Ok;
  a.shutdown = Ok;
  a.device_get_count = Count;
  a.device_get_handle_by_index = Handle;
  a.device_get_uuid = Uuid;
  a.device_get_name = Name;
  a.device_get_memory_info = Memory;
  a.device_get_mig_mode = MigMode;
  a.device_get_gpu_instance_profile_info = ProfileInfo;
  a.device_create_gpu_instance = CreateGi;
  a.device_create_gpu_instance_with_placement = CreateGiAt;
  a.gpu_instance_get_info = GiInfo;
  a.gpu_instance_get_compute_instance_profile_info = CiProfileInfo;
  a.gpu_instance_create_compute_instance = CreateCi;
  a.compute_instance_destroy = DestroyCi;
  a.gpu_instance_destroy = DestroyGi;
  a.device_get_max_mig_device_count = MaxMig;
  a.device_get_mig_device_handle_by_index = MigByIndex;
  a.device_get_gpu_instance_id = GiId;
  a.device_get_compute_instance_id = CiId;
  a.device_get_handle_by_uuid = ByUuid;
  a.device_get_gpu_instance_by_id = GiById;
  a.gpu_instance_get_compute_instance_by_id = CiById;
  a.event_set_create = SetCreate;
  a.device_register_events = Register;
  a.event_set_wait = Wait;
  a.event_set_free = SetFree;
  a.device_get_compute_running_processes = Procs;
  return a;
}

class NvmlMigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f.gis.clear();
    f.mig_devs.clear();
    f.mig_mode = 1;
    f.next_gi = 1;
    f.events.clear();
    f.registered.clear();
    auto b = NvmlBackend::Create(FakeApi(), catalog::Catalog::Builtin());
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend_ = std::move(*b);
    auto cards = backend_->Discover();
    ASSERT_TRUE(cards.ok());
    card_ = cards->at(0);
  }
  std::unique_ptr<NvmlBackend> backend_;
  DeviceInfo card_;
};

TEST(MigProfileNameTest, NamesMatchNvidiaSmi) {
  nvml::GpuInstanceProfileInfo i{};
  const unsigned long long h100 = 81559 * kMiB, a100 = 40536 * kMiB;
  auto name = [&](unsigned int slices, unsigned long long mb, unsigned int id, unsigned long long total) {
    i.slice_count = slices;
    i.memory_size_mb = mb;
    return nvml::MigProfileName(i, id, total);
  };
  EXPECT_EQ(name(1, 9856, 0, h100), "1g.10gb");
  EXPECT_EQ(name(1, 19968, 9, h100), "1g.20gb");
  EXPECT_EQ(name(3, 40192, 2, h100), "3g.40gb");
  EXPECT_EQ(name(7, 80896, 4, h100), "7g.80gb");
  EXPECT_EQ(name(1, 9856, 7, h100), "1g.10gb+me");
  EXPECT_EQ(name(1, 4864, 0, a100), "1g.5gb");
  EXPECT_EQ(name(3, 19968, 2, a100), "3g.20gb");
}

TEST_F(NvmlMigTest, CreatesAtTheScheduledSlotAndDestroys) {
  EXPECT_TRUE(card_.mig_enabled);
  auto id = backend_->CreatePartition(card_, "3g.40gb", 4);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "MIG-1");
  ASSERT_EQ(f.gis.size(), 1u);
  EXPECT_EQ(f.gis.front().profile, 2u);
  EXPECT_EQ(f.gis.front().placement.start, 4u);  // the scheduler's slot reached the driver
  EXPECT_EQ(f.gis.front().placement.size, 4u);   // the catalog's slot size for 3g.40gb
  // The slot is taken now: a second 3g.40gb at 4 is refused by the driver, with a reason.
  auto clash = backend_->CreatePartition(card_, "3g.40gb", 4);
  EXPECT_EQ(clash.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(clash.status().message(), HasSubstr("at slot 4"));
  auto small = backend_->CreatePartition(card_, "1g.10gb", 0);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  ASSERT_TRUE(backend_->DestroyPartition(card_, *id).ok());
  EXPECT_EQ(f.gis.size(), 1u);
  EXPECT_EQ(backend_->DestroyPartition(card_, *id).code(), StatusCode::kNotFound);
}

// A crash between creating the GPU instance and its compute instance leaves a GPU instance with
// no MIG device. It is listed ("gi:<id>", with its profile and slot), destroyed by that ID, and
// found by the start-up orphan scan from the ledger's intent; an administrator's complete MIG
// device beside it is left alone.
TEST_F(NvmlMigTest, AGpuInstanceLeftWithoutItsComputeInstanceIsFoundAndRemoved) {
  auto admin = backend_->CreatePartition(card_, "1g.10gb", 0);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  testsupport::TempDir dir("tsmig");
  auto ledger = PartitionLedger::Open(dir.path() + "/ledger.json");
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  PartitionIntent intent = IntentToCreate(*backend_, card_, "3g.40gb", 4, "ml/p", "c", 0);
  ASSERT_EQ(intent.existing, std::vector<std::string>{*admin});
  ASSERT_TRUE((*ledger)->AddIntent(intent).ok());
  nvml::GpuInstancePlacement at4{4, 4};
  nvml::GpuInstance bare = nullptr;
  ASSERT_EQ(CreateGiAt(&f.gpu, 2, &at4, &bare), nvml::kSuccess);  // the crash: no compute instance

  auto live = backend_->ListPartitions(card_);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[1], (LivePartition{"gi:2", "3g.40gb", 4}));

  OrphanReport report = RemoveOrphanPartitions(**ledger, *backend_, {card_});
  EXPECT_EQ(report.removed, 1) << (report.errors.empty() ? "" : report.errors[0]);
  ASSERT_EQ(f.gis.size(), 1u) << "only the orphan goes";
  EXPECT_EQ(f.gis.front().placement.start, 0u);
  EXPECT_TRUE((*ledger)->Intents().empty());
  EXPECT_EQ(backend_->DestroyPartition(card_, "gi:2").code(), StatusCode::kNotFound);
  EXPECT_EQ(backend_->DestroyPartition(card_, "gi:x").code(), StatusCode::kInvalidArgument);
}

TEST_F(NvmlMigTest, RefusesWithReasons) {
  auto unknown = backend_->CreatePartition(card_, "5g.50gb", -1);
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("it offers 1g.10gb, 2g.20gb, 3g.40gb"));
  f.mig_mode = 0;
  auto off = backend_->CreatePartition(card_, "1g.10gb", -1);
  EXPECT_EQ(off.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(off.status().message(), HasSubstr("nvidia-smi -i 0 -mig 1"));
  DeviceInfo other = card_;
  other.uuid = "GPU-someone-else";
  f.mig_mode = 1;
  EXPECT_THAT(backend_->CreatePartition(other, "1g.10gb", -1).status().message(), HasSubstr("no longer GPU-someone-else"));
  NvmlApi old = FakeApi();
  old.device_get_gpu_instance_profile_info = nullptr;
  auto b = NvmlBackend::Create(old, catalog::Catalog::Builtin());
  EXPECT_THAT((*b)->CreatePartition(card_, "1g.10gb", -1).status().message(), HasSubstr("no MIG management"));
}

TEST_F(NvmlMigTest, ReportsEveryComputeProcessEvenPastTheFirstBuffer) {
  auto procs = backend_->Processes();
  ASSERT_TRUE(procs.ok());
  ASSERT_EQ(procs->size(), 70u);
  EXPECT_EQ(procs->at(69).pid, 1069u);
  EXPECT_EQ(procs->at(69).memory_bytes, static_cast<int64_t>(70 * kMiB));
  EXPECT_EQ(procs->at(0).card_uuid, "GPU-h100-0");
}

TEST_F(NvmlMigTest, FatalXidMarksTheCardUnhealthyApplicationXidDoesNot) {
  std::atomic<int> changes{0};
  ASSERT_TRUE(backend_->StartHealthEvents([&] { changes++; }).ok());
  EXPECT_EQ(f.registered, (std::vector<unsigned long long>{nvml::kHealthEventTypes}));
  {
    std::lock_guard<std::mutex> lock(f.mu);
    f.events.push_back({&f.gpu, nvml::kEventTypeXidCriticalError, 31, 0, 0});  // page fault: the app's problem
  }
  for (int i = 0; i < 400 && !f.events.empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(backend_->Discover()->at(0).healthy);
  {
    std::lock_guard<std::mutex> lock(f.mu);
    f.events.push_back({&f.gpu, nvml::kEventTypeXidCriticalError, 79, 0, 0});  // fallen off the bus
  }
  for (int i = 0; i < 400 && changes.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(changes.load(), 1);
  EXPECT_FALSE(backend_->Discover()->at(0).healthy);
  EXPECT_EQ(backend_->XidFailures().at("GPU-h100-0"), 79u);
}

}  // namespace
}  // namespace tideslice::deviceplugin
