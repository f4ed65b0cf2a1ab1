// Two DRA claims sharing one card through consumable capacity, each held to its own share by the
// limiter. The driver prepares both claims on card-0-shared (driver_fixture.h: the real driver,
// a stand-in kubelet, the test API server, real limiter files); then each claim's workload
// (tests/limiter/programs/cuda_workload) runs under the limiter with the files the driver wrote
// for that claim, against the limiter's fake CUDA driver (tests/limiter/fakes), whose shared
// state file says what the "hardware" really holds, in all and per process. The card is the fake
// driver's device 0 (4 GiB): the mock backend reports it under the same UUID, so the config the
// driver writes names the card the fake driver shows.
//
// The container runtime's part. A container of a claim sees the CDI spec's bind mounts; these
// workloads run on the host, so every in-container path is resolved the way those mounts would
// resolve it (HostPathOf), starting from the spec the driver wrote, with no path of the limiter
// directory spelled out here:
//   - /etc/ld.so.preload (a mount) names the library inside the container; that path resolved is
//     the library the node installed: the workload's LD_PRELOAD (the host's own
//     /etc/ld.so.preload cannot be replaced for one process).
//   - The config mounted at kLimiterConfigInContainer is read from its host path. Its own paths
//     (regionPath, each card's coordinationDir) are container paths; they are resolved through the
//     same mounts and written into a copy of the config, nothing else changed. The shipped
//     limiter reads its mounted config from /etc/tideslice/limiter/config.json, absent on a test
//     host, and then falls back to TIDESLICE_LIMITER_CONFIG: the copy is given there. (Mounting
//     for real would need a mount namespace per workload and root.)
#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "device-plugin/plugin/limiter_paths.h"
#include "device-plugin/plugin/limiter_setup.h"
#include "tests/dra/driver_fixture.h"
#include "tests/limiter/fakes/fake_state.h"
#include "tests/limiter/preload_harness.h"

namespace tideslice::dra {
namespace {

using namespace fixture;
using limtest::kGiB;
using limtest::kMiB;

constexpr uint64_t kPhysical = 4 * kGiB;
constexpr uint64_t kChunk = 16 * kMiB;
constexpr int kCudaErrorOutOfMemory = 2;
constexpr const char* kLimiterLogPrefix = "tideslice-limiter:";

// One card, the fake driver's device 0, as the node's backend reports it.
const std::string& FakeCards() {
  static const std::string cards = R"({"cards": [{"uuid": ")" + fake::FakeUuid(0) +
                                   R"(", "index": 0, "model": "A100-40G", "memoryMib": 4096, "health": "Healthy"}]})";
  return cards;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Mount {
  std::string host, container;
};

// Where `path` inside the container lies on the host: below the mount whose containerPath is the
// longest prefix of `path` at a component boundary (a deeper mount hides what a shallower one has
// there, as the runtime stacks them: a card's entry file over the card's directory). "" when no
// mount covers it.
std::string HostPathOf(const std::string& path, const std::vector<Mount>& mounts) {
  const Mount* best = nullptr;
  for (const auto& m : mounts) {
    const bool covers = path == m.container || (path.size() > m.container.size() &&
                                                path.compare(0, m.container.size(), m.container) == 0 &&
                                                path[m.container.size()] == '/');
    if (covers && (!best || m.container.size() > best->container.size())) best = &m;
  }
  return best ? best->host + path.substr(best->container.size()) : "";
}

// A claim's container as the workloads see it, on the host.
struct ClaimContainer {
  std::string name, uid;
  uint64_t share = 0;                // the memory the claim's allocation consumed
  std::string library;               // the preloaded limiter
  std::string driver_config;         // the config the driver wrote (the mount's host path)
  std::string config;                // that config with its container paths resolved
  std::string region;                // the claim's accounting region
  std::vector<std::string> cdi_env;  // the CDI device's environment
};

// Follows the CDI spec the driver wrote for `c.uid` (one device: its single request) to the
// library, config and region the claim's containers would get; writes the resolved config copy
// under `work`.
void EnterClaim(const Node& node, const std::string& work, ClaimContainer& c) {
  const json spec = node.CdiSpec(c.uid);
  ASSERT_TRUE(spec.is_object()) << "no CDI spec for " << c.name;
  ASSERT_EQ(spec["devices"].size(), 1u) << spec.dump(2);
  std::vector<Mount> mounts;
  for (const auto& m : spec["devices"][0]["containerEdits"]["mounts"]) mounts.push_back({m["hostPath"], m["containerPath"]});
  c.cdi_env = Env(spec);

  const std::string preload = HostPathOf(deviceplugin::kLimiterPreloadInContainer, mounts);
  ASSERT_FALSE(preload.empty()) << "the CDI spec mounts no " << deviceplugin::kLimiterPreloadInContainer;
  std::string library_in_container = ReadText(preload);
  while (!library_in_container.empty() && (library_in_container.back() == '\n' || library_in_container.back() == ' '))
    library_in_container.pop_back();
  c.library = HostPathOf(library_in_container, mounts);
  ASSERT_FALSE(c.library.empty()) << "the preloaded " << library_in_container << " is not mounted";
  ASSERT_TRUE(limtest::FileExists(c.library)) << c.library;

  c.driver_config = HostPathOf(deviceplugin::kLimiterConfigInContainer, mounts);
  ASSERT_FALSE(c.driver_config.empty()) << "the CDI spec mounts no limiter config";
  json config = json::parse(ReadText(c.driver_config), nullptr, false);
  ASSERT_TRUE(config.is_object()) << "unreadable config " << c.driver_config;
  c.region = HostPathOf(config["regionPath"], mounts);
  ASSERT_FALSE(c.region.empty()) << "regionPath " << config["regionPath"] << " is not under a mount";
  ASSERT_TRUE(limtest::FileExists(c.region)) << c.region;
  config["regionPath"] = c.region;
  for (auto& card : config["cards"]) {
    const std::string dir = card.value("coordinationDir", "");
    if (dir.empty()) continue;
    const std::string host_dir = HostPathOf(dir, mounts);
    ASSERT_FALSE(host_dir.empty()) << "coordinationDir " << dir << " is not under a mount";
    // The limiter opens <coordinationDir>/entry-<slot>; in the container that file is a mount of
    // its own, which must be the file the resolved directory holds.
    const std::string entry = std::string("/") + limiter::kEntryFilePrefix + std::to_string(card.value("coordinationSlot", 0u));
    ASSERT_EQ(HostPathOf(dir + entry, mounts), host_dir + entry);
    ASSERT_TRUE(limtest::FileExists(host_dir + entry)) << host_dir + entry;
    card["coordinationDir"] = host_dir;
  }
  c.config = work + "/" + c.name + "-config.json";
  ASSERT_TRUE(limtest::WriteFile(c.config, config.dump(2)));
}

// What must hold for a fill (allocate kChunk until refused, report, free) of a claim whose share
// is `share`; empty when it does.
std::vector<std::string> ShareMismatches(const limtest::Result& r, uint64_t share) {
  std::vector<std::string> out;
  auto want = [&](const std::string& key, long long got, long long expected) {
    if (got != expected) out.push_back(key + "=" + std::to_string(got) + ", expected " + std::to_string(expected));
  };
  want("exit", r.exit_code, 0);
  want("fill_bytes", static_cast<long long>(r.U64("fill_bytes")), static_cast<long long>(share));
  want("fill_successes", r.Int("fill_successes"), static_cast<long long>(share / kChunk));
  want("fill_result", r.Int("fill_result"), kCudaErrorOutOfMemory);
  want("total (cuMemGetInfo_v2)", static_cast<long long>(r.U64("total")), static_cast<long long>(share));
  want("free (cuMemGetInfo_v2, share full)", static_cast<long long>(r.U64("free")), 0);
  want("device_total (cuDeviceTotalMem_v2)", static_cast<long long>(r.U64("device_total")), static_cast<long long>(share));
  want("free_errors", r.Int("free_errors"), 0);
  want("used_after_free", r.Int("used_after_free"), 0);
  want("limiter log lines", r.CountErrLines(kLimiterLogPrefix), 0);
  return out;
}

// The bytes the fake driver holds for process `pid` on device 0 (0 when it holds none).
int64_t FakeBytesOf(const fake::FakeState* state, pid_t pid) {
  for (const auto& p : state->procs)
    if (p.pid.load() == pid) return p.bytes[0].load();
  return 0;
}

int64_t FakeBytesOfAllProcesses(const fake::FakeState* state) {
  int64_t sum = 0;
  for (const auto& p : state->procs) sum += p.bytes[0].load();
  return sum;
}

class DraLimiterEnforcement : public ::testing::Test {
 protected:
  void SetUp() override {
    // The shipped limiter reads a file there before the environment: it must not be on this host.
    ASSERT_FALSE(limtest::FileExists(deviceplugin::kLimiterConfigInContainer))
        << deviceplugin::kLimiterConfigInContainer << " exists on this host, so the limiter would read it instead of the "
        << "claim's config; run the test where that file is absent";
    ASSERT_FALSE(work_.path().empty());
    state_path_ = work_ / "fake-state";
    state_ = fake::FakeStateCreate(state_path_.c_str(), 1, kPhysical, 0);
    ASSERT_NE(state_, nullptr) << state_path_;

    node_.StartDriver();
    node_.Register();
    // As the driver's start does (app.cc): the library the mounts point at.
    Status installed = deviceplugin::InstallLimiterLibrary(TS_LIMITER_LIB, node_.limiter->layout());
    ASSERT_TRUE(installed.ok()) << installed.ToString();

    a_.name = "infer";
    a_.share = 256 * kMiB;
    a_.uid = node_.CreateClaim(
        a_.name, json::array({SharedResult("slice", "aaaaaaaa-0000-4000-8000-000000000001", "256Mi", "30", "card-0-shared")}));
    json b_result = SharedResult("slice", "bbbbbbbb-0000-4000-8000-000000000002", "512Mi", "0", "card-0-shared");
    b_result["consumedCapacity"].erase("cores");  // memory only: no compute share, no roster seat
    b_.name = "train";
    b_.share = 512 * kMiB;
    b_.uid = node_.CreateClaim(b_.name, json::array({b_result}));
    // Two pods, one claim each.
    for (const ClaimContainer* c : {&a_, &b_}) {
      auto prepared = node_.Prepare({{c->name, c->uid}});
      ASSERT_EQ(prepared.claims().at(c->uid).error(), "") << c->name;
      ASSERT_EQ(prepared.claims().at(c->uid).devices(0).device_name(), "card-0-shared");
    }
    ASSERT_NO_FATAL_FAILURE(EnterClaim(node_, work_.path(), a_));
    ASSERT_NO_FATAL_FAILURE(EnterClaim(node_, work_.path(), b_));
  }

  void TearDown() override {
    if (!a_.uid.empty() && !b_.uid.empty()) node_.Unprepare({{a_.name, a_.uid}, {b_.name, b_.uid}});
    if (state_) fake::FakeStateClose(state_);
    state_ = nullptr;
  }

  limtest::Child Start(const ClaimContainer& c, const std::vector<std::string>& args) const {
    // procaddress_v2: the driver reached as cudart 12 reaches it.
    std::vector<std::string> argv = {TS_CUDA_WORKLOAD, "--path", "procaddress_v2"};
    argv.insert(argv.end(), args.begin(), args.end());
    // LD_LIBRARY_PATH: the (fake) driver library, which the container toolkit would put in.
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
                                    std::string("LD_LIBRARY_PATH=") + TS_FAKES_DIR,
                                    std::string(fake::kFakeStateEnv) + "=" + state_path_, "LD_PRELOAD=" + c.library,
                                    "TIDESLICE_LIMITER_CONFIG=" + c.config};
    env.insert(env.end(), c.cdi_env.begin(), c.cdi_env.end());
    return limtest::Child::Spawn(argv, env);
  }

  // A fill in each claim, both running at once.
  std::pair<limtest::Result, limtest::Result> FillBoth() {
    const std::vector<std::string> fill = {"fill", "--chunk", std::to_string(kChunk)};
    limtest::Child in_a = Start(a_, fill);
    limtest::Child in_b = Start(b_, fill);
    limtest::Result ra = in_a.Wait();
    limtest::Result rb = in_b.Wait();
    return {ra, rb};
  }

  limtest::TempDir work_;
  std::string state_path_;
  fake::FakeState* state_ = nullptr;
  Node node_{FakeCards().c_str(), {}};
  ClaimContainer a_, b_;
};

TEST_F(DraLimiterEnforcement, TwoClaimsOnOneCardAreEachHeldToTheirOwnShare) {
  const fake::FakeDevice& card = state_->devices[0];
  const uint64_t oom_before = card.oom_count.load();

  // 1. Both claims hold their whole share at the same time: the card really gives each its bytes.
  const std::string ready_a = work_ / "ready-a", ready_b = work_ / "ready-b";
  limtest::Child hold_a = Start(a_, {"hold", "--bytes", std::to_string(a_.share), "--ready-file", ready_a});
  limtest::Child hold_b = Start(b_, {"hold", "--bytes", std::to_string(b_.share), "--ready-file", ready_b});
  ASSERT_TRUE(limtest::WaitForFile(ready_a)) << hold_a.Kill().Describe();
  ASSERT_TRUE(limtest::WaitForFile(ready_b)) << hold_b.Kill().Describe();
  EXPECT_EQ(ReadText(ready_a), "hold_result=0\n");
  EXPECT_EQ(ReadText(ready_b), "hold_result=0\n");
  EXPECT_EQ(FakeBytesOf(state_, hold_a.pid()), static_cast<int64_t>(a_.share));
  EXPECT_EQ(FakeBytesOf(state_, hold_b.pid()), static_cast<int64_t>(b_.share));
  EXPECT_EQ(fake::FakeOutstanding(state_, 0), static_cast<int64_t>(a_.share + b_.share));
  for (const ClaimContainer* c : {&a_, &b_}) {
    limtest::RegionView region(c->region);
    ASSERT_TRUE(region.ok()) << c->region;
    EXPECT_EQ(region.limit(0), c->share) << c->name;
    EXPECT_EQ(region.used(0), c->share) << c->name;
  }

  // 2. Another workload of each claim gets nothing more, though the card has over 3 GiB free: the
  //    share counts every process of the claim, and only the limiter refuses.
  {
    auto [fa, fb] = FillBoth();
    for (const auto& [c, r] : {std::pair{&a_, &fa}, std::pair{&b_, &fb}}) {
      ASSERT_EQ(r->exit_code, 0) << c->name << "\n" << r->Describe();
      EXPECT_EQ(r->Int("fill_successes"), 0) << c->name << "\n" << r->Describe();
      EXPECT_EQ(r->Int("fill_result"), kCudaErrorOutOfMemory) << c->name;
      EXPECT_EQ(r->U64("total"), c->share) << c->name;
      EXPECT_EQ(r->U64("free"), 0u) << c->name;
    }
  }
  EXPECT_EQ(fake::FakeOutstanding(state_, 0), static_cast<int64_t>(a_.share + b_.share));
  EXPECT_EQ(card.oom_count.load(), oom_before) << "the card itself refused an allocation";

  // 3. The holders are killed; the fake gives their memory back as the kernel driver does.
  hold_a.Kill();
  hold_b.Kill();
  fake::FakeStateReapDeadProcesses(state_);
  ASSERT_EQ(fake::FakeOutstanding(state_, 0), 0);

  // 4. Both claims fill at the same time: each stops at its own share, neither takes the other's.
  state_->devices[0].peak_bytes.store(0);
  const uint64_t allocs_before = card.alloc_count.load();
  auto [fa, fb] = FillBoth();
  EXPECT_THAT(ShareMismatches(fa, a_.share), ::testing::IsEmpty()) << a_.name << "\n" << fa.Describe();
  EXPECT_THAT(ShareMismatches(fb, b_.share), ::testing::IsEmpty()) << b_.name << "\n" << fb.Describe();
  // What the card gave: exactly the chunks the workloads report, never more than both shares at once.
  EXPECT_EQ(card.alloc_count.load() - allocs_before, (a_.share + b_.share) / kChunk);
  EXPECT_LE(fake::FakePeak(state_, 0), static_cast<int64_t>(a_.share + b_.share));
  EXPECT_EQ(card.oom_count.load(), oom_before) << "the card itself refused an allocation";

  // 5. Nothing is held afterwards, on the card or in either claim's books.
  EXPECT_EQ(fake::FakeOutstanding(state_, 0), 0);
  EXPECT_EQ(FakeBytesOfAllProcesses(state_), 0);
  for (const ClaimContainer* c : {&a_, &b_}) {
    limtest::RegionView region(c->region);
    ASSERT_TRUE(region.ok()) << c->region;
    EXPECT_EQ(region.used(0), 0u) << c->name;
    EXPECT_EQ(region.peak(0), c->share) << c->name << ": the books went beyond the share";
    EXPECT_EQ(region.live_slots(), 0) << c->name;
  }
}

TEST_F(DraLimiterEnforcement, AClaimGivenTheOtherClaimsLimitIsCaught) {
  // The checks above compare with what each claim asked for, not with what the driver wrote:
  // had the driver written B's share into A's config and A's into B's, they fail.
  json config_a = json::parse(ReadText(a_.driver_config)), config_b = json::parse(ReadText(b_.driver_config));
  std::swap(config_a["cards"][0]["memoryLimitBytes"], config_b["cards"][0]["memoryLimitBytes"]);
  ASSERT_TRUE(limtest::WriteFile(a_.driver_config, config_a.dump(2)));
  ASSERT_TRUE(limtest::WriteFile(b_.driver_config, config_b.dump(2)));
  ASSERT_NO_FATAL_FAILURE(EnterClaim(node_, work_.path(), a_));
  ASSERT_NO_FATAL_FAILURE(EnterClaim(node_, work_.path(), b_));

  auto [fa, fb] = FillBoth();
  EXPECT_THAT(ShareMismatches(fa, a_.share), ::testing::Contains(::testing::HasSubstr("fill_bytes=536870912")))
      << fa.Describe();
  EXPECT_THAT(ShareMismatches(fb, b_.share), ::testing::Contains(::testing::HasSubstr("fill_bytes=268435456")))
      << fb.Describe();
}

}  // namespace
}  // namespace tideslice::dra
