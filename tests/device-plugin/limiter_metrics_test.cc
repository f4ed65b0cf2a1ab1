// The limiter's metrics against hand-made region files: a live slot (its owner's OFD lock held by
// the test) counts and a dead one does not; a corrupt header, a truncated file, a link, a FIFO,
// garbage and absurd values never crash the agent or reach the series unclamped; series of
// containers that are gone disappear; counters follow the region.
#include "device-plugin/exporter/limiter_metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  auto config = BuildLimiterConfig({"ml", pod, uid, container}, slices, 0);
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

}  // namespace
}  // namespace tideslice::deviceplugin
