// The limiter's metrics against hand-made region files: a live slot (its owner's OFD lock held by
// the test) counts and a dead one does not; a corrupt header, a truncated file, a link, a FIFO,
// garbage and absurd values never crash the agent or reach the series unclamped; series of
// containers that are gone disappear; counters follow the region. Compute shares against the
// rosters the agent writes and hand-made entries: achieved share, throttling, yields, grants;
// broken or hostile entries and rosters measure nobody.
#include "device-plugin/exporter/limiter_metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "device-plugin/limiter/card_coordination.h"
#include "device-plugin/limiter/region_layout.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
constexpr uint64_t GiB = uint64_t(1) << 30;

DeviceInfo Card(const std::string& vendor, int index, const std::string& uuid) {
  DeviceInfo d;
  d.vendor = vendor;
  d.index = index;
  d.uuid = uuid;
  d.memory_mib = 81920;
  return d;
}

// A container directory as the agent writes it at Allocate: a soft slice of `gib` GiB on `soft`
// and a whole card on `whole` (when given).
void Allocate(LimiterFiles& files, const std::string& uid, const std::string& container, const DeviceInfo& soft,
              int64_t gib, const DeviceInfo* whole = nullptr, const std::string& pod = "p") {
  std::vector<AssignedSlice> slices = {{soft, gib * 1024, 300, false, "", ""}};
  if (whole) slices.push_back({*whole, 0, 1000, true, "", ""});
  LimiterPod who;
  who.pod_namespace = "ml";
  who.pod_name = pod;
  who.pod_uid = uid;
  who.container = container;
  auto config = BuildLimiterConfig(who, slices, 0);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(files.WriteContainer(*config).ok());
}

// A region built in memory, as the limiter would leave it, then written over the agent's.
struct HandRegion {
  std::unique_ptr<limiter::Region> r{new limiter::Region()};
  HandRegion() { limiter::InitRegionHeader(r->header, 1800000000); }
  void Slot(uint32_t s, uint32_t card, uint64_t bytes) {
    r->slots[s].state = limiter::kSlotLive;
    r->slots[s].bytes[card] = bytes;
  }
  void WriteTo(const std::string& path) const {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(r.get()), sizeof(limiter::Region));
  }
};

// A process of the container, alive: it holds the OFD lock on its slot's first byte.
class LiveOwner {
 public:
  LiveOwner(const std::string& region, uint32_t slot) : fd_(open(region.c_str(), O_RDWR)) {
    EXPECT_GE(fd_, 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = limiter::SlotLockOffset(slot);
    fl.l_len = 1;
    EXPECT_EQ(fcntl(fd_, F_OFD_SETLK, &fl), 0) << strerror(errno);
  }
  ~LiveOwner() { close(fd_); }  // the kernel drops the lock, as when the process dies

 private:
  int fd_;
};

using Labels = std::map<std::string, std::string>;

// The value of the series of `family` with exactly `labels`, or nullopt.
std::optional<double> Value(prometheus::Registry& registry, const std::string& family, const Labels& labels) {
  for (const auto& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      Labels got;
      for (const auto& l : m.label) got[l.name] = l.value;
      if (got != labels) continue;
      return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return std::nullopt;
}
size_t Count(prometheus::Registry& registry, const std::string& family) {
  for (const auto& f : registry.Collect())
    if (f.name == family) return f.metric.size();
  return 0;
}

// Cards in these tests are named "<VENDOR>-<index>": the series carry card = index, uuid = name.
std::string IndexOf(const std::string& uuid) { return uuid.substr(uuid.find('-') + 1); }
Labels Container(const std::string& pod, const std::string& container, const std::string& uuid) {
  return {{"node", "n1"}, {"namespace", "ml"}, {"pod", pod}, {"container", container}, {"card", IndexOf(uuid)},
          {"uuid", uuid}};
}
Labels CardLabels(const std::string& uuid) { return {{"node", "n1"}, {"card", IndexOf(uuid)}, {"uuid", uuid}}; }

TEST(AgentLimiterMetrics, LiveSlotsCountDeadSlotsDoNotAndWholeCardsHaveNoSeries) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0"), gpu1 = Card("nvidia", 1, "GPU-1");
  Allocate(files, "uid-1", "main", gpu0, 8, &gpu1);
  const std::string region = files.layout().RegionPath("uid-1", "main");
  HandRegion h;
  h.Slot(3, 0, 1 * GiB);  // alive
  h.Slot(7, 0, 2 * GiB);  // its process died without cleaning up
  h.Slot(9, 1, 5 * GiB);  // on the whole card: not limited, not reported here
  h.r->cards[0].used_bytes = 3 * GiB;  // the limiter's sum still holds the dead process's bytes
  h.r->cards[0].refused = 4;
  h.WriteTo(region);
  auto owner = std::make_unique<LiveOwner>(region, 3);
  LiveOwner whole_card_process(region, 9);

  std::vector<std::string> problems;
  auto readings = ReadLimiterContainers(dir.path(), &problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(readings.size(), 1u);
  const auto& r = readings[0];
  EXPECT_EQ(r.pod_uid, "uid-1");
  EXPECT_EQ(r.pod_namespace, "ml");
  EXPECT_EQ(r.pod, "p");
  EXPECT_EQ(r.container, "main");
  EXPECT_TRUE(r.problem.empty()) << r.problem;
  EXPECT_TRUE(r.liveness_tested);
  ASSERT_EQ(r.cards.size(), 1u) << "only the soft slice's card";
  EXPECT_EQ(r.cards[0].card, "GPU-0");
  EXPECT_EQ(r.cards[0].limit_bytes, 8 * GiB);
  EXPECT_EQ(r.cards[0].used_bytes, 1 * GiB);
  EXPECT_EQ(r.cards[0].refused, 4u);

  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  metrics.Update(readings, {gpu0, gpu1});
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_used_bytes", Container("p", "main", "GPU-0")), 1.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_limit_bytes", Container("p", "main", "GPU-0")), 8.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_refused_allocations_total", Container("p", "main", "GPU-0")), 4.0);
  EXPECT_EQ(Value(*registry, "tideslice_card_soft_slice_memory_used_bytes", CardLabels("GPU-0")), 1.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_card_soft_slice_memory_limit_bytes", CardLabels("GPU-0")), 8.0 * GiB);
  EXPECT_EQ(Count(*registry, "tideslice_container_memory_used_bytes"), 1u);
  EXPECT_FALSE(Value(*registry, "tideslice_card_soft_slice_memory_used_bytes", CardLabels("GPU-1")));

  // The process exits: its lock is gone, so are its bytes.
  owner.reset();
  metrics.Update(ReadLimiterContainers(dir.path()), {gpu0, gpu1});
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_used_bytes", Container("p", "main", "GPU-0")), 0.0);
}

TEST(AgentLimiterMetrics, PerCardSumsAddUpTheSoftSlicesOfEveryContainer) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  Allocate(files, "uid-1", "main", gpu0, 8);
  Allocate(files, "uid-2", "main", gpu0, 16, nullptr, "q");
  std::vector<std::unique_ptr<LiveOwner>> owners;
  for (auto [uid, bytes] : {std::pair{"uid-1", 2 * GiB}, std::pair{"uid-2", 6 * GiB}}) {
    HandRegion h;
    h.Slot(0, 0, bytes);
    h.WriteTo(files.layout().RegionPath(uid, "main"));
    owners.push_back(std::make_unique<LiveOwner>(files.layout().RegionPath(uid, "main"), 0));
  }
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  metrics.Update(ReadLimiterContainers(dir.path()), {gpu0});
  EXPECT_EQ(Value(*registry, "tideslice_card_soft_slice_memory_used_bytes", CardLabels("GPU-0")), 8.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_card_soft_slice_memory_limit_bytes", CardLabels("GPU-0")), 24.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_used_bytes", Container("q", "main", "GPU-0")), 6.0 * GiB);

  // A pod is gone: its directory is removed, and so are its series; the card's sums follow.
  ASSERT_TRUE(files.RemoveContainer("uid-2", "main").ok());
  metrics.Update(ReadLimiterContainers(dir.path()), {gpu0});
  EXPECT_FALSE(Value(*registry, "tideslice_container_memory_used_bytes", Container("q", "main", "GPU-0")));
  EXPECT_FALSE(Value(*registry, "tideslice_container_memory_limit_bytes", Container("q", "main", "GPU-0")));
  EXPECT_FALSE(Value(*registry, "tideslice_container_memory_refused_allocations_total", Container("q", "main", "GPU-0")));
  EXPECT_EQ(Value(*registry, "tideslice_card_soft_slice_memory_used_bytes", CardLabels("GPU-0")), 2.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_card_soft_slice_memory_limit_bytes", CardLabels("GPU-0")), 8.0 * GiB);
  // The last one too: nothing is left.
  ASSERT_TRUE(files.RemoveContainer("uid-1", "main").ok());
  metrics.Update(ReadLimiterContainers(dir.path()), {gpu0});
  for (const char* f : {"tideslice_container_memory_used_bytes", "tideslice_container_memory_limit_bytes",
                        "tideslice_container_memory_refused_allocations_total", "tideslice_card_soft_slice_memory_used_bytes",
                        "tideslice_card_soft_slice_memory_limit_bytes"})
    EXPECT_EQ(Count(*registry, f), 0u) << f;
}

TEST(AgentLimiterMetrics, AscendDeviceIdsAreLabelledWithTheCardsUuid) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo npu = Card("huawei", 5, "NPU-5");
  Allocate(files, "uid-1", "main", npu, 16);
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  auto readings = ReadLimiterContainers(dir.path());
  ASSERT_EQ(readings.size(), 1u);
  EXPECT_EQ(readings[0].cards[0].card, "5");
  metrics.Update(readings, {npu});
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_limit_bytes", Container("p", "main", "NPU-5")), 16.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_used_bytes", Container("p", "main", "NPU-5")), 0.0);
}

// A container writes its own region, and a node can be compromised: whatever is there, the
// agent neither crashes nor hangs, and reports nothing it did not measure.
TEST(AgentLimiterMetrics, HostileOrBrokenRegionsAreNotMeasuredAndNeverCrashTheAgent) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  Allocate(files, "uid-1", "main", gpu0, 8);
  const std::string region = files.layout().RegionPath("uid-1", "main");
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  auto one = [&]() {
    auto readings = ReadLimiterContainers(dir.path());
    EXPECT_EQ(readings.size(), 1u);
    metrics.Update(readings, {gpu0});
    return readings.empty() ? LimiterContainerReading{} : readings[0];
  };
  auto unmeasured = [&](const std::string& why, const std::string& expect) {
    SCOPED_TRACE(why);
    auto r = one();
    EXPECT_THAT(r.problem, HasSubstr(expect));
    ASSERT_EQ(r.cards.size(), 1u);
    EXPECT_FALSE(r.cards[0].measured);
    EXPECT_FALSE(Value(*registry, "tideslice_container_memory_used_bytes", Container("p", "main", "GPU-0")));
    EXPECT_FALSE(Value(*registry, "tideslice_card_soft_slice_memory_used_bytes", CardLabels("GPU-0")));
    EXPECT_EQ(Value(*registry, "tideslice_container_memory_limit_bytes", Container("p", "main", "GPU-0")), 8.0 * GiB)
        << "the limit is the agent's own";
  };

  HandRegion corrupt;
  std::memcpy(corrupt.r->header.magic, "XXREGION", 8);
  corrupt.WriteTo(region);
  unmeasured("corrupt magic", "no valid region header");
  HandRegion other_layout;
  other_layout.r->header.max_slots = 1 << 30;
  other_layout.WriteTo(region);
  unmeasured("a header claiming another layout", "no valid region header");

  HandRegion h;
  h.WriteTo(region);
  ASSERT_EQ(truncate(region.c_str(), 100), 0);
  unmeasured("truncated", "has 100 bytes");
  ASSERT_EQ(truncate(region.c_str(), sizeof(limiter::Region) * 1000), 0);
  unmeasured("grown", "bytes, not");

  fs::remove(region);
  unmeasured("missing", "region");
  std::ofstream(dir.path() + "/secret") << "host file";
  fs::create_symlink(dir.path() + "/secret", region);
  unmeasured("a link to a host file", "region");
  fs::remove(region);
  ASSERT_EQ(mkfifo(region.c_str(), 0666), 0);
  unmeasured("a FIFO (opening it must not block)", "not a regular file");
  fs::remove(region);
  fs::create_directory(region);
  unmeasured("a directory", "not a regular file");
  fs::remove(region);
  {
    std::ofstream garbage(region, std::ios::binary);
    for (size_t i = 0; i < sizeof(limiter::Region); ++i) garbage.put(static_cast<char>((i * 2654435761u) >> 13));
  }
  unmeasured("random bytes", "no valid region header");

  // A valid header with absurd values: live slots holding 2^64-1 bytes each, a refusal count
  // of 2^64-1. Sums saturate, and used is clamped to the card's memory.
  HandRegion absurd;
  absurd.Slot(0, 0, UINT64_MAX);
  absurd.Slot(1, 0, UINT64_MAX);
  absurd.r->cards[0].refused = UINT64_MAX;
  absurd.WriteTo(region);
  LiveOwner a(region, 0), b(region, 1);
  auto r = one();
  EXPECT_TRUE(r.problem.empty()) << r.problem;
  EXPECT_EQ(r.cards[0].used_bytes, kLimiterAbsurdBytes);
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_used_bytes", Container("p", "main", "GPU-0")), 80.0 * GiB);
  EXPECT_EQ(Value(*registry, "tideslice_container_memory_refused_allocations_total", Container("p", "main", "GPU-0")),
            static_cast<double>(uint64_t(1) << 53));
}

TEST(AgentLimiterMetrics, ContainersWithoutAUsableConfigAreSkippedAndNamed) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  Allocate(files, "uid-ok", "main", gpu0, 8);
  Allocate(files, "uid-garbage", "main", gpu0, 8);
  std::ofstream(files.layout().ConfigPath("uid-garbage", "main"), std::ios::trunc) << "{not json";
  Allocate(files, "uid-moved", "main", gpu0, 8);
  fs::rename(files.layout().PodDir("uid-moved"), files.layout().PodDir("uid-other"));  // names another pod now
  Allocate(files, "uid-version", "main", gpu0, 8);
  std::string v2;
  {
    std::ifstream in(files.layout().ConfigPath("uid-version", "main"));
    v2.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  v2.replace(v2.find("\"version\": 1"), 12, "\"version\": 2");
  std::ofstream(files.layout().ConfigPath("uid-version", "main"), std::ios::trunc) << v2;
  fs::create_directories(files.layout().PodDir("uid-empty") + "/main");  // no config at all
  std::vector<std::string> problems;
  auto readings = ReadLimiterContainers(dir.path(), &problems);
  ASSERT_EQ(readings.size(), 1u);
  EXPECT_EQ(readings[0].pod_uid, "uid-ok");
  ASSERT_EQ(problems.size(), 4u);
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  EXPECT_THAT(all, HasSubstr("uid-garbage/main/config.json"));
  EXPECT_THAT(all, HasSubstr("not the directory's uid-other/main"));
  EXPECT_THAT(all, HasSubstr("has version 2"));
  EXPECT_THAT(all, HasSubstr("uid-empty/main/config.json"));
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  metrics.Update(readings, {gpu0}, problems);  // logged, never thrown
  EXPECT_EQ(Count(*registry, "tideslice_container_memory_limit_bytes"), 1u);
  EXPECT_TRUE(ReadLimiterContainers(dir.path() + "/does-not-exist").empty());
}

TEST(AgentLimiterMetrics, RefusalsAreACounterThatFollowsTheRegionAndRestartsWithANewOne) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  Allocate(files, "uid-1", "main", gpu0, 8);
  const std::string region = files.layout().RegionPath("uid-1", "main");
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  const Labels labels = Container("p", "main", "GPU-0");
  for (auto [refused, want] : {std::pair{4u, 4.0}, std::pair{6u, 6.0}, std::pair{6u, 6.0}, std::pair{1u, 1.0}}) {
    HandRegion h;
    h.r->cards[0].refused = refused;
    h.WriteTo(region);
    metrics.Update(ReadLimiterContainers(dir.path()), {gpu0});
    EXPECT_EQ(Value(*registry, "tideslice_container_memory_refused_allocations_total", labels), want) << refused;
  }
}

// ---- compute shares: rosters and entries ----

// A container with compute shares as Allocate sets it up (config, seats, roster, entries).
std::vector<CardSeat> Share(LimiterFiles& files, const std::string& uid, const std::string& pod,
                            const std::vector<AssignedSlice>& slices, const std::string& cls = "inference") {
  LimiterPod who;
  who.pod_namespace = "ml";
  who.pod_name = pod;
  who.pod_uid = uid;
  who.container = "main";
  who.workload_class = cls;
  auto config = BuildLimiterConfig(who, slices, 0);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  auto seats = ComputeSeats(slices);
  Status s = files.SetUpContainer(*config, seats);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return seats;
}

// What a container's limiter writes into its entry.
void WriteEntry(const std::string& path, uint64_t busy_ns, uint64_t throttled_ns = 0, uint64_t yields = 0,
                uint64_t yielded_ns = 0) {
  limiter::CardEntry e{};
  limiter::InitCardEntry(e);
  e.busy_ns = busy_ns;
  e.throttled_ns = throttled_ns;
  e.yields = yields;
  e.yielded_ns = yielded_ns;
  e.launches = 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(&e), sizeof e);
}

constexpr uint64_t kSecond = 1'000'000'000;

TEST(AgentLimiterComputeMetrics, AchievedShareThrottlingYieldsAndWhatEachCardGranted) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const auto& l = files.layout();
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0"), gpu1 = Card("nvidia", 1, "GPU-1");
  Share(files, "uid-1", "p", {{gpu0, 4096, 300, false, "", ""}});
  // A training container: a compute-only slice of GPU-0 (no memory given) and one of GPU-1.
  Share(files, "uid-2", "q", {{gpu0, 0, 500, false, "", ""}, {gpu1, 2048, 200, false, "", ""}}, "training");
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  const auto t0 = std::chrono::steady_clock::time_point(std::chrono::hours(1000));
  auto poll = [&](std::chrono::steady_clock::time_point t) {
    auto containers = ReadLimiterContainers(dir.path());
    metrics.Update(containers, {gpu0, gpu1});
    metrics.UpdateCompute(containers, ReadCardsCoordination(dir.path()), {gpu0, gpu1}, t);
  };
  poll(t0);
  EXPECT_EQ(Count(*registry, "tideslice_container_compute_share_ratio"), 0u) << "one sample is no rate";
  EXPECT_EQ(Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")), 0.0);
  EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-0")), 0.8, 1e-9);
  EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-1")), 0.2, 1e-9);
  // Memory series only where a memory limit was given: q has none on GPU-0.
  EXPECT_EQ(Count(*registry, "tideslice_container_memory_limit_bytes"), 2u);
  EXPECT_FALSE(Value(*registry, "tideslice_container_memory_limit_bytes", Container("q", "main", "GPU-0")));

  // Ten seconds later: p kept GPU-0 busy 3 s and waited 2 s for budget; q's GPU-0 work ran 5 s and
  // yielded 7 times, 1.5 s in all; q did nothing on GPU-1.
  WriteEntry(l.EntryPath("GPU-0", 0), 3 * kSecond, 2 * kSecond);
  WriteEntry(l.EntryPath("GPU-0", 1), 5 * kSecond, 0, 7, 1500'000'000);
  poll(t0 + std::chrono::seconds(10));
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_share_ratio", Container("p", "main", "GPU-0")), 0.3, 1e-9);
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_share_ratio", Container("q", "main", "GPU-0")), 0.5, 1e-9);
  EXPECT_EQ(Value(*registry, "tideslice_container_compute_share_ratio", Container("q", "main", "GPU-1")), 0.0);
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")),
              2.0, 1e-9);
  EXPECT_EQ(Value(*registry, "tideslice_container_compute_yields_total", Container("q", "main", "GPU-0")), 7.0);
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_yielded_seconds_total", Container("q", "main", "GPU-0")),
              1.5, 1e-9);
  // A poll less than a second later (a health event) keeps the last rate.
  WriteEntry(l.EntryPath("GPU-0", 0), 3 * kSecond + 900'000'000, 2 * kSecond);
  poll(t0 + std::chrono::milliseconds(10500));
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_share_ratio", Container("p", "main", "GPU-0")), 0.3, 1e-9);
  poll(t0 + std::chrono::seconds(12));  // 0.9 s busy over the 2 s since the sample it kept
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_share_ratio", Container("p", "main", "GPU-0")), 0.45, 1e-9);

  // p is gone: its series go, GPU-0's grant is q's alone.
  ASSERT_TRUE(files.RemoveContainer("uid-1", "main").ok());
  poll(t0 + std::chrono::seconds(20));
  for (const char* f : {"tideslice_container_compute_share_ratio", "tideslice_container_compute_throttled_seconds_total",
                        "tideslice_container_compute_yields_total", "tideslice_container_compute_yielded_seconds_total"})
    EXPECT_FALSE(Value(*registry, f, Container("p", "main", "GPU-0"))) << f;
  EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-0")), 0.5, 1e-9);
  // A new entry for the same labels (q allocated again): counts went back, the counters restart
  // and the rate waits for a second sample.
  ASSERT_TRUE(files.RemoveContainer("uid-2", "main").ok());
  Share(files, "uid-2", "q", {{gpu0, 0, 500, false, "", ""}, {gpu1, 2048, 200, false, "", ""}}, "training");
  const auto seats = files.SeatsOf("uid-2", "main");
  ASSERT_EQ(seats.size(), 2u);
  WriteEntry(l.EntryPath("GPU-0", seats[0].slot), kSecond, 0, 2, 0);
  poll(t0 + std::chrono::seconds(30));
  EXPECT_EQ(Value(*registry, "tideslice_container_compute_yields_total", Container("q", "main", "GPU-0")), 2.0);
  EXPECT_FALSE(Value(*registry, "tideslice_container_compute_share_ratio", Container("q", "main", "GPU-0")));
}

TEST(AgentLimiterComputeMetrics, AscendCardsAreFoundByTheirPhysicalIdAndLabelledWithTheirUuid) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo npu = Card("huawei", 5, "NPU-5");
  Share(files, "uid-1", "p", {{npu, 16384, 250, false, "", ""}});
  EXPECT_TRUE(std::filesystem::exists(files.layout().RosterPath("NPU-5")));
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  auto containers = ReadLimiterContainers(dir.path());
  ASSERT_EQ(containers.size(), 1u);
  EXPECT_EQ(containers[0].cards[0].card, "5");
  EXPECT_TRUE(containers[0].cards[0].coordinated);
  const auto t0 = std::chrono::steady_clock::now();
  metrics.UpdateCompute(containers, ReadCardsCoordination(dir.path()), {npu}, t0);
  WriteEntry(files.layout().EntryPath("NPU-5", 0), kSecond);
  metrics.UpdateCompute(containers, ReadCardsCoordination(dir.path()), {npu}, t0 + std::chrono::seconds(4));
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_share_ratio", Container("p", "main", "NPU-5")), 0.25, 1e-9);
  EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("NPU-5")), 0.25, 1e-9);
}

// Entries are written by the containers: whatever is there, the agent neither crashes nor hangs,
// and reports nothing it did not measure; the grant (the agent's roster) stays.
TEST(AgentLimiterComputeMetrics, HostileOrBrokenEntriesAreNotMeasured) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  Share(files, "uid-1", "p", {{gpu0, 4096, 300, false, "", ""}});
  const std::string entry = files.layout().EntryPath("GPU-0", 0);
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  auto t = std::chrono::steady_clock::now();
  auto unmeasured = [&](const std::string& why, const std::string& expect) {
    SCOPED_TRACE(why);
    auto cards = ReadCardsCoordination(dir.path());
    ASSERT_EQ(cards.size(), 1u);
    ASSERT_EQ(cards[0].slots.size(), 1u);
    EXPECT_FALSE(cards[0].slots[0].measured);
    EXPECT_THAT(cards[0].slots[0].problem, HasSubstr(expect));
    for (int i = 0; i < 2; ++i) {
      t += std::chrono::seconds(5);
      metrics.UpdateCompute(ReadLimiterContainers(dir.path()), cards, {gpu0}, t);
    }
    EXPECT_FALSE(Value(*registry, "tideslice_container_compute_share_ratio", Container("p", "main", "GPU-0")));
    EXPECT_FALSE(Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")));
    EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-0")), 0.3, 1e-9);
  };
  {
    limiter::CardEntry e{};
    limiter::InitCardEntry(e);
    std::memcpy(e.magic, "XXENTRY1", 8);
    std::ofstream(entry, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(&e), sizeof e);
  }
  unmeasured("corrupt magic", "no valid entry header");
  {
    limiter::CardEntry e{};
    limiter::InitCardEntry(e);
    e.entry_bytes = 1 << 20;
    std::ofstream(entry, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(&e), sizeof e);
  }
  unmeasured("a header claiming another size", "no valid entry header");
  WriteEntry(entry, kSecond);
  ASSERT_EQ(truncate(entry.c_str(), 20), 0);  // the container truncates its own entry
  unmeasured("truncated", "has 20 bytes");
  ASSERT_EQ(truncate(entry.c_str(), 1 << 30), 0);
  unmeasured("grown", "bytes, not 128");
  fs::remove(entry);
  unmeasured("missing", "entry-0");
  std::ofstream(dir.path() + "/secret") << "host file";
  fs::create_symlink(dir.path() + "/secret", entry);
  unmeasured("a link to a host file", "entry-0");
  fs::remove(entry);
  ASSERT_EQ(mkfifo(entry.c_str(), 0666), 0);
  unmeasured("a FIFO (opening it must not block)", "not a regular file");
  fs::remove(entry);
  fs::create_directory(entry);
  unmeasured("a directory", "not a regular file");
  fs::remove(entry);
  {
    std::ofstream garbage(entry, std::ios::binary);
    for (size_t i = 0; i < sizeof(limiter::CardEntry); ++i) garbage.put(static_cast<char>((i * 2654435761u) >> 13));
  }
  unmeasured("random bytes", "no valid entry header");

  // A valid header with absurd counts: clamped, the share at most the whole card.
  fs::remove(entry);
  WriteEntry(entry, 0);
  t += std::chrono::seconds(5);
  metrics.UpdateCompute(ReadLimiterContainers(dir.path()), ReadCardsCoordination(dir.path()), {gpu0}, t);
  WriteEntry(entry, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX);
  auto cards = ReadCardsCoordination(dir.path());
  ASSERT_TRUE(cards[0].slots[0].measured) << cards[0].slots[0].problem;
  EXPECT_EQ(cards[0].slots[0].busy_ns, kLimiterAbsurdNs);
  EXPECT_EQ(cards[0].slots[0].yields, uint64_t(1) << 53);
  t += std::chrono::seconds(5);
  metrics.UpdateCompute(ReadLimiterContainers(dir.path()), cards, {gpu0}, t);
  EXPECT_EQ(Value(*registry, "tideslice_container_compute_share_ratio", Container("p", "main", "GPU-0")), 1.0);
  EXPECT_EQ(Value(*registry, "tideslice_container_compute_yields_total", Container("p", "main", "GPU-0")),
            static_cast<double>(uint64_t(1) << 53));
  EXPECT_NEAR(*Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")),
              static_cast<double>(kLimiterAbsurdNs) / 1e9, 1.0);
}

// The roster is the agent's own file, but it lives on the node's disk: read as carefully.
TEST(AgentLimiterComputeMetrics, ARosterThatIsUnreadableOrGivesTheSlotToAnotherPodMeasuresNobody) {
  testsupport::TempDir dir;
  LimiterFiles files(dir.path());
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  Share(files, "uid-1", "p", {{gpu0, 4096, 300, false, "", ""}});
  WriteEntry(files.layout().EntryPath("GPU-0", 0), kSecond);
  const std::string roster = files.layout().RosterPath("GPU-0");
  auto registry = std::make_shared<prometheus::Registry>();
  LimiterMetrics metrics(registry, "n1");
  auto poll = [&]() {
    auto cards = ReadCardsCoordination(dir.path());
    metrics.UpdateCompute(ReadLimiterContainers(dir.path()), cards, {gpu0});
    return cards;
  };
  ASSERT_TRUE(poll()[0].problem.empty());
  EXPECT_TRUE(Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")));
  // The slot names another pod (a config and a roster that disagree).
  std::string bytes;
  {
    std::ifstream in(roster, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string other = bytes;
  std::memcpy(other.data() + offsetof(limiter::Roster, slots) + offsetof(limiter::RosterSlot, pod_uid), "uid-9", 6);
  std::ofstream(roster, std::ios::binary | std::ios::trunc) << other;
  poll();
  EXPECT_FALSE(Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")));
  EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-0")), 0.3, 1e-9);
  // A pod UID without its terminating zero, and absurd class and share: read within bounds.
  std::string absurd = bytes;
  limiter::RosterSlot slot{};
  slot.state = 1;
  slot.workload_class = 77;
  slot.share_permille = 999999;
  std::memset(slot.pod_uid, 'a', sizeof slot.pod_uid);
  std::memcpy(absurd.data() + offsetof(limiter::Roster, slots) + sizeof(limiter::RosterSlot), &slot, sizeof slot);
  std::ofstream(roster, std::ios::binary | std::ios::trunc) << absurd;
  auto cards = poll();
  ASSERT_EQ(cards[0].slots.size(), 2u);
  EXPECT_EQ(cards[0].slots[1].pod_uid, "");
  EXPECT_EQ(cards[0].slots[1].workload_class, 0u);
  EXPECT_EQ(cards[0].slots[1].share_permille, 1000u);
  EXPECT_NEAR(*Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-0")), 1.3, 1e-9);
  // Broken rosters: no grant, no container series, a reason.
  for (auto [why, content, expect] :
       {std::tuple{"garbage of the right size", std::string(sizeof(limiter::Roster), 'x'), "no valid roster header"},
        std::tuple{"truncated", bytes.substr(0, 100), "has 100 bytes"}}) {
    SCOPED_TRACE(why);
    std::ofstream(roster, std::ios::binary | std::ios::trunc) << content;
    auto c = poll();
    EXPECT_THAT(c[0].problem, HasSubstr(expect));
    EXPECT_FALSE(Value(*registry, "tideslice_card_compute_granted_ratio", CardLabels("GPU-0")));
    EXPECT_FALSE(Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")));
  }
  fs::remove(roster);
  fs::create_symlink(dir.path() + "/elsewhere", roster);
  EXPECT_FALSE(poll()[0].problem.empty());
  // The agent's own sync puts the roster back, and measuring resumes.
  fs::remove(roster);
  EXPECT_TRUE(files.SyncCards().empty());
  EXPECT_TRUE(poll()[0].problem.empty());
  EXPECT_TRUE(Value(*registry, "tideslice_container_compute_throttled_seconds_total", Container("p", "main", "GPU-0")));
}

}  // namespace
}  // namespace tideslice::deviceplugin
