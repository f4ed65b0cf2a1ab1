// The agent's side of the in-container limiter: the config a container holding a soft slice is
// given (NVIDIA and Ascend, whole cards and hard partitions, mixed; class, mode and coordination),
// the mounts and variables of its response, the per-container directory on the host (written
// atomically, names checked, undone), its removal once the pod is gone, the card rosters and
// entries of compute shares (slots taken, freed, undone, refused when full, surviving a restart),
// and the library's installation.
#include "device-plugin/plugin/limiter_setup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "device-plugin/limiter/card_coordination.h"
#include "device-plugin/limiter/region_layout.h"
#include "tests/support/test_support.h"

namespace tideslice::deviceplugin {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

DeviceInfo Card(const std::string& vendor, int index, const std::string& uuid) {
  DeviceInfo d;
  d.vendor = vendor;
  d.index = index;
  d.uuid = uuid;
  d.memory_mib = 81920;
  return d;
}

AssignedSlice Soft(DeviceInfo card, int64_t mib, int permille) { return {std::move(card), mib, permille, false, "", ""}; }
AssignedSlice Whole(DeviceInfo card) { return {std::move(card), 0, 1000, true, "", ""}; }
AssignedSlice Partition(DeviceInfo card, std::string profile, std::string id) {
  return {std::move(card), 10240, 142, false, std::move(profile), std::move(id)};
}

LimiterPod Who(std::string uid = "0b7c1d9e-uid", std::string container = "main") {
  LimiterPod p;
  p.pod_namespace = "ml";
  p.pod_name = "infer-0";
  p.pod_uid = std::move(uid);
  p.container = std::move(container);
  return p;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// ---- the config ----

TEST(AgentLimiterConfig, NvidiaSoftSlicesAreListedInTheContainersVisibleOrder) {
  auto config = BuildLimiterConfig(Who(), {Soft(Card("nvidia", 3, "GPU-c"), 8192, 300), Soft(Card("nvidia", 1, "GPU-a"), 4096, 500)},
                                   512u << 20);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->version(), 1u);
  EXPECT_EQ(config->pod_namespace(), "ml");
  EXPECT_EQ(config->pod_name(), "infer-0");
  EXPECT_EQ(config->pod_uid(), "0b7c1d9e-uid");
  EXPECT_EQ(config->container(), "main");
  EXPECT_EQ(config->vendor(), "nvidia");
  EXPECT_EQ(config->region_path(), "/var/run/tideslice/limiter/region");
  EXPECT_EQ(config->context_reserve_bytes(), 512u << 20);
  ASSERT_EQ(config->cards_size(), 2);
  // NVIDIA_VISIBLE_DEVICES lists GPU-a, then GPU-c: CUDA device 0 is GPU-a.
  EXPECT_EQ(config->cards(0).uuid(), "GPU-a");
  EXPECT_EQ(config->cards(0).visible_index(), 0u);
  EXPECT_EQ(config->cards(0).region_card(), 0u);
  EXPECT_EQ(config->cards(0).memory_limit_bytes(), 4096ull << 20);
  EXPECT_EQ(config->cards(0).compute_permille(), 500u);
  EXPECT_EQ(config->cards(1).uuid(), "GPU-c");
  EXPECT_EQ(config->cards(1).visible_index(), 1u);
  EXPECT_EQ(config->cards(1).region_card(), 1u);
  EXPECT_EQ(config->cards(1).memory_limit_bytes(), 8192ull << 20);
  EXPECT_EQ(config->cards(1).compute_permille(), 300u);
}

TEST(AgentLimiterConfig, AscendSoftSliceNamesThePhysicalDeviceId) {
  auto config = BuildLimiterConfig(Who(), {Soft(Card("huawei", 5, "NPU-5"), 16384, 250)}, 0);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->vendor(), "huawei");
  ASSERT_EQ(config->cards_size(), 1);
  EXPECT_EQ(config->cards(0).uuid(), "5");  // as in ASCEND_VISIBLE_DEVICES
  EXPECT_EQ(config->cards(0).memory_limit_bytes(), 16384ull << 20);
  EXPECT_EQ(config->cards(0).compute_permille(), 250u);
}

TEST(AgentLimiterConfig, WholeCardsAndHardPartitionsNeedNoLimiterMixedContainersLimitOnlyTheirSoftCards) {
  EXPECT_FALSE(NeedsLimiter({Whole(Card("nvidia", 0, "GPU-0"))}));
  EXPECT_FALSE(NeedsLimiter({Partition(Card("nvidia", 2, "GPU-2"), "1g.10gb", "MIG-x")}));
  EXPECT_FALSE(NeedsLimiter({Partition(Card("huawei", 0, "NPU-0"), "vir05_1c_16g", "100"), Whole(Card("huawei", 1, "NPU-1"))}));
  EXPECT_TRUE(NeedsLimiter({Soft(Card("huawei", 1, "NPU-1"), 8192, 0)}));
  std::vector<AssignedSlice> mixed = {Whole(Card("nvidia", 2, "GPU-2")), Soft(Card("nvidia", 0, "GPU-0"), 8192, 0),
                                      Partition(Card("nvidia", 1, "GPU-1"), "1g.10gb", "MIG-y")};
  EXPECT_TRUE(NeedsLimiter(mixed));
  auto config = BuildLimiterConfig(Who(), mixed, 0);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->cards_size(), 3);  // every card the container sees
  EXPECT_EQ(config->cards(0).uuid(), "GPU-0");
  EXPECT_EQ(config->cards(0).memory_limit_bytes(), 8192ull << 20);
  EXPECT_EQ(config->cards(0).compute_permille(), 0u);  // best effort: not limited
  EXPECT_EQ(config->cards(1).uuid(), "GPU-1");         // the MIG instance's parent
  EXPECT_EQ(config->cards(1).memory_limit_bytes(), 0u);
  EXPECT_EQ(config->cards(1).compute_permille(), 0u);
  EXPECT_EQ(config->cards(2).uuid(), "GPU-2");
  EXPECT_EQ(config->cards(2).memory_limit_bytes(), 0u);
  EXPECT_EQ(config->cards(2).region_card(), 2u);
}

TEST(AgentLimiterConfig, RefusesWhatTheRegionCannotHold) {
  std::vector<AssignedSlice> many;
  for (int i = 0; i < 17; ++i) many.push_back(Soft(Card("nvidia", i, "GPU-" + std::to_string(i)), 1024, 0));
  EXPECT_THAT(BuildLimiterConfig(Who(), many, 0).status().message(), HasSubstr("16 at most"));
  many.pop_back();
  EXPECT_TRUE(BuildLimiterConfig(Who(), many, 0).ok());
  EXPECT_FALSE(BuildLimiterConfig(Who(), {Soft(Card("cambricon", 0, "m"), 1024, 0)}, 0).ok());
  EXPECT_FALSE(BuildLimiterConfig(Who(), {}, 0).ok());
}

TEST(AgentLimiterConfig, JsonPrintsEveryFieldWithUint64AsStringsAndReadsBack) {
  auto config = BuildLimiterConfig(Who(), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 0)}, 0);
  ASSERT_TRUE(config.ok());
  std::string json = LimiterConfigJson(*config);
  EXPECT_THAT(json, HasSubstr(R"("memoryLimitBytes": "4294967296")"));
  EXPECT_THAT(json, HasSubstr(R"("contextReserveBytes": "0")"));  // zeros too: no proto3 default to know
  EXPECT_THAT(json, HasSubstr(R"("visibleIndex": 0)"));
  EXPECT_THAT(json, HasSubstr(R"("regionCard": 0)"));
  EXPECT_THAT(json, HasSubstr(R"("regionPath": "/var/run/tideslice/limiter/region")"));
  v1::LimiterConfig back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, *config));
}

// ---- the container's response ----

TEST(AgentLimiterResponse, MountsTheLibraryPreloadConfigReadOnlyAndTheRegionDirectoryReadWrite) {
  v1beta1::ContainerAllocateResponse r;
  (*r.mutable_envs())["NVIDIA_VISIBLE_DEVICES"] = "GPU-0";
  AddLimiterToResponse(LimiterLayout{"/var/lib/tideslice/limiter"}, "uid-1", "main", r);
  ASSERT_EQ(r.mounts_size(), 4);
  auto m = [&](int i) { return std::make_tuple(r.mounts(i).host_path(), r.mounts(i).container_path(), r.mounts(i).read_only()); };
  EXPECT_EQ(m(0), std::make_tuple(std::string("/var/lib/tideslice/limiter/lib/libtideslice-limiter.so"),
                                  std::string("/usr/local/tideslice/lib/libtideslice-limiter.so"), true));
  EXPECT_EQ(m(1), std::make_tuple(std::string("/var/lib/tideslice/limiter/ld.so.preload"), std::string("/etc/ld.so.preload"), true));
  EXPECT_EQ(m(2), std::make_tuple(std::string("/var/lib/tideslice/limiter/containers/uid-1/main/config.json"),
                                  std::string("/etc/tideslice/limiter/config.json"), true));
  EXPECT_EQ(m(3), std::make_tuple(std::string("/var/lib/tideslice/limiter/containers/uid-1/main/region"),
                                  std::string("/var/run/tideslice/limiter"), false));
  EXPECT_EQ(r.envs().at("TIDESLICE_LIMITER"), "on");
  EXPECT_EQ(r.envs().at("NVIDIA_VISIBLE_DEVICES"), "GPU-0");  // the vendor runtime's stay
}

// ---- the per-container directory ----

TEST(AgentLimiterFiles, WritesTheConfigAndAZeroedRegionWithItsHeaderAndNoTemporaryNames) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path() + "/limiter");
  auto config = BuildLimiterConfig(Who("uid-1"), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 300)}, 0);
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(files.WriteContainer(*config).ok());
  const auto& l = files.layout();
  EXPECT_EQ(Read(l.ConfigPath("uid-1", "main")), LimiterConfigJson(*config));
  EXPECT_EQ(Mode(l.ConfigPath("uid-1", "main")), 0644u);
  EXPECT_EQ(Mode(l.RegionDir("uid-1", "main")), 0755u);
  EXPECT_EQ(Mode(l.RegionPath("uid-1", "main")), 0666u) << "any container UID maps it read-write";
  std::string region = Read(l.RegionPath("uid-1", "main"));
  ASSERT_EQ(region.size(), sizeof(limiter::Region));
  limiter::RegionHeader h;
  std::memcpy(&h, region.data(), sizeof h);
  EXPECT_TRUE(limiter::RegionHeaderValid(h));
  EXPECT_GT(h.created_unix_s, 1700000000u);
  EXPECT_EQ(region.find_first_not_of('\0', sizeof h), std::string::npos) << "books and slots start zeroed";
  EXPECT_EQ(Entries(l.PodDir("uid-1")), std::vector<std::string>{"main"});
  EXPECT_EQ(Entries(l.RegionDir("uid-1", "main")), std::vector<std::string>{"region"});
  EXPECT_EQ(files.PodUids(), std::vector<std::string>{"uid-1"});
}

TEST(AgentLimiterFiles, NamesThatCouldLeaveTheDirectoryAreRefusedAndNothingIsWritten) {
  testsupport::TempDir tmp("tslim");
  fs::create_directories(tmp.path() + "/limiter/containers");
  LimiterFiles files(tmp.path() + "/limiter");
  const std::vector<std::string> names = {"",       ".",           "..",       "../../etc",          "a/b",
                                          "/abs",   ".hidden",     ".tmp-main-1", std::string("x\0y", 3), "ä",
                                          "a b",    std::string(254, 'a')};
  for (const std::string& bad : names) {
    auto uid = BuildLimiterConfig(Who(bad, "main"), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 0)}, 0);
    ASSERT_TRUE(uid.ok());
    Status s = files.WriteContainer(*uid);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "pod uid " << bad;
    auto container = BuildLimiterConfig(Who("uid-1", bad), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 0)}, 0);
    ASSERT_TRUE(container.ok());
    s = files.WriteContainer(*container);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "container " << bad;
    EXPECT_FALSE(files.RemoveContainer(bad, "main").ok());
  }
  EXPECT_TRUE(Entries(tmp.path() + "/limiter/containers").empty());
  EXPECT_EQ(Entries(tmp.path()), std::vector<std::string>{"limiter"});
  EXPECT_TRUE(IsLimiterPathSegment("0b7c1d9e-4a5f-4c1e-9d7a-3b2f1e0c9a8d"));
  EXPECT_TRUE(IsLimiterPathSegment("my-container.v2_x~"));
}

TEST(AgentLimiterFiles, AnEarlierDirectoryOfTheSameContainerIsReplacedWhole) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path());
  auto first = BuildLimiterConfig(Who("uid-1"), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 0)}, 0);
  auto second = BuildLimiterConfig(Who("uid-1"), {Soft(Card("nvidia", 1, "GPU-1"), 8192, 0)}, 0);
  ASSERT_TRUE(files.WriteContainer(*first).ok());
  std::ofstream(files.layout().RegionDir("uid-1", "main") + "/leftover") << "x";
  ASSERT_TRUE(files.WriteContainer(*second).ok());
  EXPECT_EQ(Read(files.layout().ConfigPath("uid-1", "main")), LimiterConfigJson(*second));
  EXPECT_EQ(Entries(files.layout().RegionDir("uid-1", "main")), std::vector<std::string>{"region"});
  EXPECT_EQ(Entries(files.layout().PodDir("uid-1")), std::vector<std::string>{"main"}) << "no .old- or .tmp- left";
  // Another container of the same pod has its own directory; removing one keeps the other.
  auto sidecar = BuildLimiterConfig(Who("uid-1", "sidecar"), {Soft(Card("nvidia", 1, "GPU-1"), 1024, 0)}, 0);
  ASSERT_TRUE(files.WriteContainer(*sidecar).ok());
  ASSERT_TRUE(files.RemoveContainer("uid-1", "main").ok());
  EXPECT_EQ(Entries(files.layout().PodDir("uid-1")), std::vector<std::string>{"sidecar"});
  ASSERT_TRUE(files.RemoveContainer("uid-1", "sidecar").ok());
  EXPECT_FALSE(fs::exists(files.layout().PodDir("uid-1"))) << "the pod's directory goes with its last container";
}

TEST(AgentLimiterFiles, AWriteThatFailsHalfwayLeavesNothingBehind) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path());
  auto config = BuildLimiterConfig(Who("uid-1"), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 0)}, 0);
  // The config (small) is written, the region (50 KiB) cannot be: files are capped at 4 KiB.
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  Status s = files.WriteContainer(*config);
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("uid-1/main"));
  EXPECT_TRUE(Entries(files.layout().ContainersDir()).empty()) << "no pod directory, no temporary directory";
  // The same write succeeds once the disk allows it.
  EXPECT_TRUE(files.WriteContainer(*config).ok());
}

// ---- removal when the pod is gone ----

TEST(AgentLimiterFiles, GoneAndFinishedPodsLoseTheirDirectoriesLiveAndNewOnesKeepThemAcrossARestart) {
  testsupport::TempDir tmp("tslim");
  const auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
  {
    LimiterFiles files(tmp.path());
    for (const char* uid : {"uid-live", "uid-gone", "uid-finished"})
      ASSERT_TRUE(files.WriteContainer(*BuildLimiterConfig(Who(uid), {Soft(Card("nvidia", 0, "GPU-0"), 4096, 0)}, 0)).ok());
    // Just written: even a pod missing from the list keeps its directory for the grace period
    // (it may have been allocated after the list was taken).
    auto report = files.RemoveGonePods({"uid-live"}, std::chrono::system_clock::now(), std::chrono::seconds(120));
    EXPECT_TRUE(report.removed.empty());
  }
  // The agent restarts: a new instance over the same directory finds everything.
  LimiterFiles files(tmp.path());
  EXPECT_EQ(files.PodUids(), (std::vector<std::string>{"uid-finished", "uid-gone", "uid-live"}));
  // Leftovers of an interrupted write in a live pod's directory, and names the agent never writes.
  fs::create_directory(files.layout().PodDir("uid-live") + "/.tmp-main-99-0");
  std::ofstream(files.layout().ContainersDir() + "/not-a-dir") << "x";
  fs::create_directory(tmp.path() + "/outside");
  std::ofstream(tmp.path() + "/outside/keep") << "x";
  fs::create_directory_symlink(tmp.path() + "/outside", files.layout().ContainersDir() + "/uid-link");
  auto report = files.RemoveGonePods({"uid-live"}, later, std::chrono::seconds(120));
  EXPECT_EQ(report.removed, (std::vector<std::string>{"uid-finished", "uid-gone"}));
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(files.PodUids(), std::vector<std::string>{"uid-live"});
  EXPECT_EQ(Entries(files.layout().PodDir("uid-live")), std::vector<std::string>{"main"});
  EXPECT_TRUE(fs::exists(files.layout().RegionPath("uid-live", "main")));
  EXPECT_TRUE(fs::exists(tmp.path() + "/outside/keep")) << "a link is never followed";
  EXPECT_TRUE(fs::exists(files.layout().ContainersDir() + "/not-a-dir"));
  // An empty live set (every pod gone) removes the rest.
  EXPECT_EQ(files.RemoveGonePods({}, later, std::chrono::seconds(120)).removed, std::vector<std::string>{"uid-live"});
}

// ---- the library ----

TEST(AgentLimiterInstall, CopiesTheLibraryAndWritesLdSoPreloadOnlyWhenChanged) {
  testsupport::TempDir tmp("tslim");
  const std::string lib = tmp.path() + "/libtideslice-limiter.so";
  std::ofstream(lib, std::ios::binary) << std::string("\x7f" "ELF", 4) << "version 1";
  LimiterLayout layout{tmp.path() + "/limiter"};
  ASSERT_TRUE(InstallLimiterLibrary(lib, layout).ok());
  EXPECT_EQ(Read(layout.LibraryPath()), Read(lib));
  EXPECT_EQ(Mode(layout.LibraryPath()), 0755u);
  EXPECT_EQ(Read(layout.PreloadPath()), "/usr/local/tideslice/lib/libtideslice-limiter.so\n");
  EXPECT_EQ(Mode(layout.PreloadPath()), 0644u);
  EXPECT_TRUE(fs::is_directory(layout.ContainersDir()));
  struct stat before {};
  ASSERT_EQ(stat(layout.LibraryPath().c_str(), &before), 0);
  ASSERT_TRUE(InstallLimiterLibrary(lib, layout).ok());
  struct stat same {};
  ASSERT_EQ(stat(layout.LibraryPath().c_str(), &same), 0);
  EXPECT_EQ(same.st_ino, before.st_ino) << "an unchanged library is left as it is";
  // A new version replaces the file by rename: a process that mapped the old one keeps it intact.
  int mapped = open(layout.LibraryPath().c_str(), O_RDONLY);
  std::ofstream(lib, std::ios::binary | std::ios::trunc) << std::string("\x7f" "ELF", 4) << "version 2";
  ASSERT_TRUE(InstallLimiterLibrary(lib, layout).ok());
  EXPECT_EQ(Read(layout.LibraryPath()), Read(lib));
  char old[13] = {};
  EXPECT_EQ(pread(mapped, old, sizeof old, 0), 13);
  EXPECT_EQ(std::string(old + 4, 9), "version 1");
  close(mapped);
  EXPECT_EQ(Entries(layout.LibraryDir()), std::vector<std::string>{"libtideslice-limiter.so"});
  // Not a library, or not there: refused with the flag named.
  std::ofstream(tmp.path() + "/text") << "hello";
  EXPECT_THAT(InstallLimiterLibrary(tmp.path() + "/text", layout).message(), HasSubstr("no ELF header"));
  EXPECT_THAT(InstallLimiterLibrary(tmp.path() + "/missing.so", layout).message(), HasSubstr("--limiter-library"));
  EXPECT_THAT(InstallLimiterLibrary(tmp.path(), layout).message(), HasSubstr("not a regular file"));
}

// ---- compute shares: class, mode and coordination in the config ----

TEST(AgentLimiterConfig, ClassAndModeComeFromThePodAndUnknownClassesAreUnspecified) {
  auto slices = std::vector<AssignedSlice>{Soft(Card("nvidia", 0, "GPU-0"), 4096, 300)};
  for (auto [given, written] : {std::pair{"inference", "inference"}, std::pair{"training", "training"},
                                std::pair{"", ""}, std::pair{"Inference", ""}, std::pair{"batch", ""}}) {
    LimiterPod pod = Who();
    pod.workload_class = given;
    auto config = BuildLimiterConfig(pod, slices, 0);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EXPECT_EQ(config->workload_class(), written) << given;
    EXPECT_FALSE(config->work_conserving());
  }
  LimiterPod pod = Who();
  pod.work_conserving = true;
  auto config = BuildLimiterConfig(pod, slices, 0);
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->work_conserving());
  EXPECT_EQ(config->cards(0).coordination_dir(), "") << "no slot until one is taken";
  EXPECT_EQ(WorkloadClassCode("inference"), limiter::kClassInference);
  EXPECT_EQ(WorkloadClassCode("training"), limiter::kClassTraining);
  EXPECT_EQ(WorkloadClassCode("x"), limiter::kClassUnspecified);
}

TEST(AgentLimiterConfig, SeatsAreTheSoftSlicesWithAComputeShareAndACoordinatedConfigSaysWhere) {
  // Visible order: GPU-0 (memory only), GPU-1 (MIG), GPU-2 (compute only), GPU-3 (both).
  std::vector<AssignedSlice> slices = {Soft(Card("nvidia", 3, "GPU-3"), 8192, 250), Soft(Card("nvidia", 0, "GPU-0"), 4096, 0),
                                       Partition(Card("nvidia", 1, "GPU-1"), "1g.10gb", "MIG-1"),
                                       Soft(Card("nvidia", 2, "GPU-2"), 0, 400)};
  auto seats = ComputeSeats(slices);
  ASSERT_EQ(seats.size(), 2u);
  EXPECT_EQ(seats[0].card_uuid, "GPU-2");
  EXPECT_EQ(seats[0].region_card, 2u);
  EXPECT_EQ(seats[0].share_permille, 400u);
  EXPECT_EQ(seats[1].card_uuid, "GPU-3");
  EXPECT_EQ(seats[1].region_card, 3u);
  EXPECT_EQ(seats[1].share_permille, 250u);
  // A compute-only soft slice (no memory given) still needs the limiter.
  EXPECT_TRUE(NeedsLimiter({Soft(Card("nvidia", 2, "GPU-2"), 0, 400)}));
  EXPECT_TRUE(ComputeSeats({Whole(Card("nvidia", 0, "GPU-0"))}).empty());
  auto config = BuildLimiterConfig(Who(), slices, 0);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->cards(2).memory_limit_bytes(), 0u);
  EXPECT_EQ(config->cards(2).compute_permille(), 400u);
  seats[0].slot = 5;
  seats[1].slot = 0;
  SetCoordination(*config, seats);
  EXPECT_EQ(config->cards(0).coordination_dir(), "");
  EXPECT_EQ(config->cards(1).coordination_dir(), "");
  EXPECT_EQ(config->cards(2).coordination_dir(), "/var/run/tideslice/cards/2");
  EXPECT_EQ(config->cards(2).coordination_slot(), 5u);
  EXPECT_EQ(config->cards(3).coordination_dir(), "/var/run/tideslice/cards/3");
  EXPECT_EQ(config->cards(3).coordination_slot(), 0u);
  const std::string json = LimiterConfigJson(*config);
  EXPECT_THAT(json, HasSubstr(R"("coordinationDir": "/var/run/tideslice/cards/2")"));
  EXPECT_THAT(json, HasSubstr(R"("coordinationSlot": 5)"));
  EXPECT_THAT(json, HasSubstr(R"("workloadClass": "")"));
  EXPECT_THAT(json, HasSubstr(R"("workConserving": false)"));
}

TEST(AgentLimiterResponse, AComputeShareMountsItsCardDirectoryReadOnlyAndItsOwnEntryReadWrite) {
  v1beta1::ContainerAllocateResponse r;
  AddLimiterToResponse(LimiterLayout{"/var/lib/tideslice/limiter"}, "uid-1", "main",
                       {{"GPU-c", 1, 300, 7}, {"GPU-a", 0, 500, 0}}, r);
  ASSERT_EQ(r.mounts_size(), 8);
  auto m = [&](int i) { return std::make_tuple(r.mounts(i).host_path(), r.mounts(i).container_path(), r.mounts(i).read_only()); };
  EXPECT_EQ(m(4), std::make_tuple(std::string("/var/lib/tideslice/limiter/cards/GPU-c"),
                                  std::string("/var/run/tideslice/cards/1"), true));
  EXPECT_EQ(m(5), std::make_tuple(std::string("/var/lib/tideslice/limiter/cards/GPU-c/entry-7"),
                                  std::string("/var/run/tideslice/cards/1/entry-7"), false));
  EXPECT_EQ(m(6), std::make_tuple(std::string("/var/lib/tideslice/limiter/cards/GPU-a"),
                                  std::string("/var/run/tideslice/cards/0"), true));
  EXPECT_EQ(m(7), std::make_tuple(std::string("/var/lib/tideslice/limiter/cards/GPU-a/entry-0"),
                                  std::string("/var/run/tideslice/cards/0/entry-0"), false));
}

// ---- compute shares: the card rosters and entries ----

std::unique_ptr<limiter::Roster> ReadRoster(const std::string& path) {
  std::string bytes = Read(path);
  EXPECT_EQ(bytes.size(), sizeof(limiter::Roster)) << path;
  if (bytes.size() != sizeof(limiter::Roster)) return nullptr;
  auto r = std::make_unique<limiter::Roster>();
  std::memcpy(static_cast<void*>(r.get()), bytes.data(), bytes.size());
  EXPECT_TRUE(limiter::RosterHeaderValid(r->header));
  return r;
}

int TakenSlots(const limiter::Roster& r) {
  int n = 0;
  for (const auto& s : r.slots) n += s.state == 1;
  return n;
}

// Allocate's part for one container: config, seats, files.
struct SetUp {
  v1::LimiterConfig config;
  std::vector<CardSeat> seats;
  Status status;
};
SetUp Allocate(LimiterFiles& files, const LimiterPod& pod, const std::vector<AssignedSlice>& slices) {
  SetUp out;
  auto config = BuildLimiterConfig(pod, slices, 0);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  out.config = *config;
  out.seats = ComputeSeats(slices);
  out.status = files.SetUpContainer(out.config, out.seats);
  return out;
}
LimiterPod Pod(std::string uid, std::string container = "main", std::string cls = "", bool wc = false) {
  LimiterPod p = Who(std::move(uid), std::move(container));
  p.workload_class = std::move(cls);
  p.work_conserving = wc;
  return p;
}

TEST(AgentLimiterCoordination, SlotsAreTakenLowestFirstAndTheRosterEntriesAndConfigSayTheSame) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path() + "/limiter");
  const auto& l = files.layout();
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0"), gpu1 = Card("nvidia", 1, "GPU-1");
  auto a = Allocate(files, Pod("uid-a", "main", "inference"), {Soft(gpu0, 4096, 300)});
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  ASSERT_EQ(a.seats.size(), 1u);
  EXPECT_EQ(a.seats[0].slot, 0u);
  auto roster = ReadRoster(l.RosterPath("GPU-0"));
  ASSERT_TRUE(roster);
  EXPECT_EQ(roster->header.generation, 1u);
  EXPECT_EQ(TakenSlots(*roster), 1);
  EXPECT_EQ(roster->slots[0].workload_class, limiter::kClassInference);
  EXPECT_EQ(roster->slots[0].share_permille, 300u);
  EXPECT_EQ(roster->slots[0].work_conserving, 0u);
  EXPECT_STREQ(roster->slots[0].pod_uid, "uid-a");
  EXPECT_EQ(Mode(l.CardsDir()), 0755u);
  EXPECT_EQ(Mode(l.CardDir("GPU-0")), 0755u);
  EXPECT_EQ(Mode(l.RosterPath("GPU-0")), 0644u);
  EXPECT_EQ(Mode(l.EntryPath("GPU-0", 0)), 0666u) << "the container's limiter writes it, whatever its UID";
  std::string entry = Read(l.EntryPath("GPU-0", 0));
  ASSERT_EQ(entry.size(), sizeof(limiter::CardEntry));
  limiter::CardEntry e{};
  std::memcpy(static_cast<void*>(&e), entry.data(), sizeof e);
  EXPECT_TRUE(limiter::CardEntryValid(e));
  EXPECT_EQ(entry.find_first_not_of('\0', 16), std::string::npos) << "counters start at zero";
  // The config the container reads names the slot; the agent's record says the same.
  EXPECT_EQ(a.config.cards(0).coordination_dir(), "/var/run/tideslice/cards/0");
  EXPECT_EQ(a.config.cards(0).coordination_slot(), 0u);
  EXPECT_EQ(Read(l.ConfigPath("uid-a", "main")), LimiterConfigJson(a.config));
  EXPECT_EQ(Mode(l.SeatsPath("uid-a", "main")), 0644u);
  ASSERT_EQ(files.SeatsOf("uid-a", "main").size(), 1u);
  EXPECT_EQ(files.SeatsOf("uid-a", "main")[0].card_uuid, "GPU-0");

  // A training container, work-conserving, on both cards: the next slot on GPU-0, the first on GPU-1.
  auto b = Allocate(files, Pod("uid-b", "trainer", "training", true), {Soft(gpu1, 0, 200), Soft(gpu0, 8192, 500)});
  ASSERT_TRUE(b.status.ok()) << b.status.ToString();
  ASSERT_EQ(b.seats.size(), 2u);
  EXPECT_EQ(b.seats[0].card_uuid, "GPU-0");
  EXPECT_EQ(b.seats[0].slot, 1u);
  EXPECT_EQ(b.seats[1].card_uuid, "GPU-1");
  EXPECT_EQ(b.seats[1].slot, 0u);
  roster = ReadRoster(l.RosterPath("GPU-0"));
  EXPECT_EQ(roster->header.generation, 2u) << "bumped on every change";
  EXPECT_EQ(TakenSlots(*roster), 2);
  EXPECT_EQ(roster->slots[1].workload_class, limiter::kClassTraining);
  EXPECT_EQ(roster->slots[1].share_permille, 500u);
  EXPECT_EQ(roster->slots[1].work_conserving, 1u);
  EXPECT_STREQ(roster->slots[1].pod_uid, "uid-b");
  auto roster1 = ReadRoster(l.RosterPath("GPU-1"));
  EXPECT_EQ(roster1->header.generation, 1u);
  EXPECT_EQ(roster1->slots[0].share_permille, 200u);
  EXPECT_EQ(Entries(l.CardDir("GPU-0")), (std::vector<std::string>{"entry-0", "entry-1", "roster"})) << "no temporary names";
  EXPECT_EQ(Entries(l.CardDir("GPU-1")), (std::vector<std::string>{"entry-0", "roster"}));
  // Syncing what already agrees changes nothing.
  EXPECT_TRUE(files.SyncCards().empty());
  EXPECT_EQ(ReadRoster(l.RosterPath("GPU-0"))->header.generation, 2u);

  // A container with no compute share takes no slot and writes no record.
  auto c = Allocate(files, Pod("uid-c"), {Soft(gpu0, 1024, 0)});
  ASSERT_TRUE(c.status.ok());
  EXPECT_TRUE(c.seats.empty());
  EXPECT_FALSE(fs::exists(l.SeatsPath("uid-c", "main")));
  EXPECT_EQ(ReadRoster(l.RosterPath("GPU-0"))->header.generation, 2u);
}

TEST(AgentLimiterCoordination, RemovingAContainerFreesItsSlotForTheNextAndAReAllocateMoves) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path());
  const auto& l = files.layout();
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  ASSERT_TRUE(Allocate(files, Pod("uid-a"), {Soft(gpu0, 4096, 300)}).status.ok());
  ASSERT_TRUE(Allocate(files, Pod("uid-b"), {Soft(gpu0, 4096, 300)}).status.ok());
  ASSERT_TRUE(files.RemoveContainer("uid-a", "main").ok());
  auto roster = ReadRoster(l.RosterPath("GPU-0"));
  EXPECT_EQ(roster->header.generation, 3u);
  EXPECT_EQ(roster->slots[0].state, 0u);
  EXPECT_STREQ(roster->slots[0].pod_uid, "") << "a free slot is all zeros";
  EXPECT_EQ(roster->slots[1].state, 1u);
  EXPECT_FALSE(fs::exists(l.EntryPath("GPU-0", 0))) << "the freed slot's entry goes";
  // The next container takes the freed slot, with a new entry file.
  auto c = Allocate(files, Pod("uid-c"), {Soft(gpu0, 4096, 100)});
  ASSERT_TRUE(c.status.ok());
  EXPECT_EQ(c.seats[0].slot, 0u);
  EXPECT_STREQ(ReadRoster(l.RosterPath("GPU-0"))->slots[0].pod_uid, "uid-c");
  // The same container allocated again (its first Allocate was never acknowledged): a new slot,
  // and the old one is free once the new directory replaced the old.
  auto again = Allocate(files, Pod("uid-c"), {Soft(gpu0, 4096, 100)});
  ASSERT_TRUE(again.status.ok());
  EXPECT_EQ(again.seats[0].slot, 2u);
  roster = ReadRoster(l.RosterPath("GPU-0"));
  EXPECT_EQ(roster->slots[0].state, 0u);
  EXPECT_EQ(roster->slots[2].state, 1u);
  EXPECT_EQ(TakenSlots(*roster), 2);
  EXPECT_EQ(Entries(l.CardDir("GPU-0")), (std::vector<std::string>{"entry-1", "entry-2", "roster"}));
  EXPECT_EQ(Entries(l.PodDir("uid-c")), std::vector<std::string>{"main"});
}

TEST(AgentLimiterCoordination, AFullCardIsRefusedAndTheRefusedContainerLeavesNothing) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path());
  const auto& l = files.layout();
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  for (uint32_t i = 0; i < limiter::kRosterMaxEntries; ++i) {
    auto s = Allocate(files, Pod("uid-" + std::to_string(i)), {Soft(gpu0, 64, 10)});
    ASSERT_TRUE(s.status.ok()) << i << ": " << s.status.ToString();
    ASSERT_EQ(s.seats[0].slot, i);
  }
  const uint64_t generation = ReadRoster(l.RosterPath("GPU-0"))->header.generation;
  auto full = Allocate(files, Pod("uid-late"), {Soft(gpu0, 64, 10)});
  EXPECT_EQ(full.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(full.status.message(), HasSubstr("all 64 roster slots taken"));
  EXPECT_FALSE(fs::exists(l.PodDir("uid-late")));
  EXPECT_EQ(ReadRoster(l.RosterPath("GPU-0"))->header.generation, generation);
  EXPECT_EQ(Entries(l.CardDir("GPU-0")).size(), limiter::kRosterMaxEntries + 1u);
}

TEST(AgentLimiterCoordination, AFailedSetUpUndoesEverything) {
  testsupport::TempDir tmp("tslim");
  LimiterFiles files(tmp.path());
  const auto& l = files.layout();
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0"), gpu1 = Card("nvidia", 1, "GPU-1");
  ASSERT_TRUE(Allocate(files, Pod("uid-a"), {Soft(gpu0, 4096, 300)}).status.ok());
  const std::string roster_before = Read(l.RosterPath("GPU-0"));

  // The container's directory cannot be written (files capped at 4 KiB: the region is larger):
  // its entries are removed, the rosters are untouched.
  {
    struct rlimit saved {};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto old_handler = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved;
    small.rlim_cur = 4096;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    auto s = Allocate(files, Pod("uid-b"), {Soft(gpu0, 4096, 300), Soft(gpu1, 4096, 300)});
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    EXPECT_FALSE(s.status.ok());
    EXPECT_THAT(s.status.message(), HasSubstr("uid-b/main"));
  }
  EXPECT_FALSE(fs::exists(l.PodDir("uid-b")));
  EXPECT_EQ(Read(l.RosterPath("GPU-0")), roster_before);
  EXPECT_EQ(Entries(l.CardDir("GPU-0")), (std::vector<std::string>{"entry-0", "roster"}));
  EXPECT_EQ(Entries(l.CardDir("GPU-1")), std::vector<std::string>{}) << "no entry, no roster";

  // A roster that cannot be replaced (its name is taken by a directory): the container's
  // directory and entries go again, the other card's roster is what it was.
  fs::create_directories(l.RosterPath("GPU-1") + "/blocker");
  auto s = Allocate(files, Pod("uid-b"), {Soft(gpu0, 4096, 300), Soft(gpu1, 4096, 300)});
  EXPECT_FALSE(s.status.ok());
  EXPECT_THAT(s.status.message(), HasSubstr("roster of card GPU-1"));
  EXPECT_FALSE(fs::exists(l.PodDir("uid-b")));
  EXPECT_EQ(ReadRoster(l.RosterPath("GPU-0"))->slots[1].state, 0u) << "GPU-0's slot was freed again";
  EXPECT_EQ(TakenSlots(*ReadRoster(l.RosterPath("GPU-0"))), 1);
  EXPECT_EQ(Entries(l.CardDir("GPU-0")), (std::vector<std::string>{"entry-0", "roster"}));
  EXPECT_FALSE(fs::exists(l.EntryPath("GPU-1", 0)));
  fs::remove_all(l.RosterPath("GPU-1"));

  // Names that could leave the directory are refused before anything is written.
  for (const std::string bad : {"", "..", "a/b", ".hidden", "GPU 0"}) {
    DeviceInfo odd = Card("nvidia", 2, bad);
    auto r = Allocate(files, Pod("uid-c"), {Soft(odd, 4096, 300)});
    EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(fs::exists(l.PodDir("uid-c")));
  EXPECT_EQ(Entries(l.CardsDir()), (std::vector<std::string>{"GPU-0", "GPU-1"}));
  // And once the disk allows it, the same set-up succeeds.
  EXPECT_TRUE(Allocate(files, Pod("uid-b"), {Soft(gpu0, 4096, 300), Soft(gpu1, 4096, 300)}).status.ok());
}

TEST(AgentLimiterCoordination, SlotsGoWithTheirPodsDirectoriesAndSurviveARestart) {
  testsupport::TempDir tmp("tslim");
  const DeviceInfo gpu0 = Card("nvidia", 0, "GPU-0");
  const auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
  {
    LimiterFiles files(tmp.path());
    for (const char* uid : {"uid-live", "uid-gone", "uid-finished"})
      ASSERT_TRUE(Allocate(files, Pod(uid, "main", "inference"), {Soft(gpu0, 4096, 200)}).status.ok());
    // A failed list removes nothing (the caller does not call); a fresh one right after the
    // Allocate spares every directory, and so every slot.
    auto report = files.RemoveGonePods({"uid-live"}, std::chrono::system_clock::now(), std::chrono::seconds(120));
    EXPECT_TRUE(report.removed.empty());
    EXPECT_EQ(TakenSlots(*ReadRoster(files.layout().RosterPath("GPU-0"))), 3);
  }
  // The agent restarts: everything is on disk.
  LimiterFiles files(tmp.path());
  const auto& l = files.layout();
  EXPECT_EQ(files.SeatsOf("uid-gone", "main").at(0).slot, 1u);
  // An interrupted Allocate left an entry no record holds, and the roster was lost: a sync
  // (which needs no list) puts back what the records say, with a generation no earlier roster had.
  std::ofstream(l.EntryPath("GPU-0", 9)) << "leftover";
  fs::remove(l.RosterPath("GPU-0"));
  EXPECT_TRUE(files.SyncCards().empty());
  auto roster = ReadRoster(l.RosterPath("GPU-0"));
  EXPECT_GT(roster->header.generation, 3u);
  EXPECT_EQ(TakenSlots(*roster), 3);
  EXPECT_FALSE(fs::exists(l.EntryPath("GPU-0", 9)));
  // A corrupt roster is rewritten the same way; a missing entry of a taken slot is created.
  std::ofstream(l.RosterPath("GPU-0"), std::ios::trunc) << "garbage";
  fs::remove(l.EntryPath("GPU-0", 2));
  EXPECT_TRUE(files.SyncCards().empty());
  EXPECT_EQ(TakenSlots(*ReadRoster(l.RosterPath("GPU-0"))), 3);
  EXPECT_EQ(Read(l.EntryPath("GPU-0", 2)).size(), sizeof(limiter::CardEntry));
  // The pods are gone an hour later, except the live one: their slots go with their directories.
  auto report = files.RemoveGonePods({"uid-live"}, later, std::chrono::seconds(120));
  EXPECT_EQ(report.removed, (std::vector<std::string>{"uid-finished", "uid-gone"}));
  EXPECT_TRUE(report.errors.empty());
  roster = ReadRoster(l.RosterPath("GPU-0"));
  EXPECT_EQ(TakenSlots(*roster), 1);
  EXPECT_STREQ(roster->slots[0].pod_uid, "uid-live");
  EXPECT_EQ(Entries(l.CardDir("GPU-0")), (std::vector<std::string>{"entry-0", "roster"}));
  // The next container after the restart takes the lowest free slot.
  auto next = Allocate(files, Pod("uid-next"), {Soft(gpu0, 4096, 200)});
  ASSERT_TRUE(next.status.ok());
  EXPECT_EQ(next.seats[0].slot, 1u);
}

}  // namespace
}  // namespace tideslice::deviceplugin
