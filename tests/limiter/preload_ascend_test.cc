// The preloaded limiter (libtideslice-limiter.so) against the fake CANN runtime: libascendcl.so
// (ACL, which calls rt* through the PLT as CANN 8.5 does) over libruntime.so (the rt layer).
// Workloads reach ACL linked or through dlopen + dlsym(handle) (torch_npu's FunctionLoader), and
// rtMalloc directly (MindSpore 2.2); the fake's byte counts show what the "NPU" really held.
#include <stdio.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "tests/limiter/preload_harness.h"

namespace limtest {
namespace {

constexpr uint64_t kLimit = 1 * kGiB;
constexpr int kOom = 207001;  // ACL_ERROR_RT_MEMORY_ALLOCATION
const char* const kLogPrefix = "tideslice-limiter:";

// Bytes the runtime really takes for an allocation of `size` through `api` (ASCEND-ABI A.2).
uint64_t RealBytes(const std::string& api, uint64_t size) {
  uint64_t r32 = (size + 31) / 32 * 32;
  if (api == "malloc" || api == "cached") return r32 + 32;
  if (api == "align32") return r32;
  return size;
}

// ------------------------------------------------------------------ the fakes alone

class LimiterFakesAscend : public PreloadTest {};

TEST_F(LimiterFakesAscend, WithoutTheLimiterAclPadsAndFillsThePhysicalMemory) {
  Result r = RunAcl("linked", {"fill", "--chunk", "64MiB", "--api", "malloc"}, Lib::kNone, false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 63) << "64 MiB + 32 B each\n" << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), kOom);
  EXPECT_EQ(r.U64("total"), kPhysical);
  EXPECT_EQ(r.U64("free"), kPhysical - 63 * (64 * kMiB + 32));
  Result a = RunAcl("dlopen", {"fill", "--chunk", "64MiB", "--api", "align32"}, Lib::kNone, false);
  EXPECT_EQ(a.Int("fill_successes"), 64) << a.Describe();
  EXPECT_EQ(Peak(), static_cast<int64_t>(kPhysical));
  EXPECT_EQ(Outstanding(), 0);
}

TEST_F(LimiterFakesAscend, EveryKindIsCountedWithItsRealSize) {
  Result r = RunAcl("linked", {"each-kind", "--bytes", "32MiB", "--probe"}, Lib::kNone, false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  for (const char* k : {"malloc", "align32", "cached", "withcfg", "physical", "rt", "rt_cached", "dvpp"}) {
    std::string p = std::string(k) + ".";
    EXPECT_EQ(r.Int(p + "result"), 0) << k << "\n" << r.Describe();
    EXPECT_EQ(r.Int(p + "used_held"), static_cast<long long>(RealBytes(k, 32 * kMiB))) << k;
    EXPECT_EQ(r.Int(p + "used_after"), 0) << k;
  }
  EXPECT_EQ(Outstanding(), 0);
}

// ------------------------------------------------------------------ every path and API

class LimiterAscendPreloadApi : public PreloadTest,
                                public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    PreloadTest::SetUp();
    WriteAscendConfig({kLimit});
  }
};

TEST_P(LimiterAscendPreloadApi, AllocationsStopAtTheLimitCountedOnce) {
  const auto& [path, api] = GetParam();
  const uint64_t chunk = 64 * kMiB;
  const uint64_t unit = RealBytes(api, chunk);
  const long long expected = static_cast<long long>(kLimit / unit);
  Result r = RunAcl(path, {"fill", "--chunk", "64MiB", "--api", api});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), expected)
      << api << " takes " << unit << " B per allocation; half as many successes means it was counted twice\n"
      << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), kOom) << "ACL_ERROR_RT_MEMORY_ALLOCATION expected";
  EXPECT_EQ(r.U64("total"), kLimit) << "aclrtGetMemInfo(ACL_HBM_MEM) total";
  EXPECT_EQ(r.U64("free"), kLimit - static_cast<uint64_t>(expected) * unit) << "aclrtGetMemInfo free";
  if (path == "linked") {
    EXPECT_EQ(r.U64("rt_total"), kLimit) << "rtMemGetInfoEx(RT_MEMORYINFO_HBM) total";
    EXPECT_EQ(r.U64("rt_free"), kLimit - static_cast<uint64_t>(expected) * unit);
  }
  EXPECT_EQ(r.Int("free_errors"), 0);
  EXPECT_EQ(r.Int("used_after_free"), 0);
  EXPECT_EQ(r.CountErrLines(kLogPrefix), 0) << r.err;
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  EXPECT_EQ(Outstanding(), 0);
  RegionView region(region_path_);
  ASSERT_TRUE(region.ok());
  EXPECT_EQ(region.used(0), 0u);
}

std::vector<std::tuple<std::string, std::string>> ApiCases() {
  std::vector<std::tuple<std::string, std::string>> v;
  for (const char* api : {"malloc", "align32", "cached", "withcfg", "physical"}) {
    v.emplace_back("linked", api);
    v.emplace_back("dlopen", api);
  }
  // rt* called directly (MindSpore 2.2 links libruntime.so).
  for (const char* api : {"rt", "rt_cached", "dvpp"}) v.emplace_back("linked", api);
  return v;
}

INSTANTIATE_TEST_SUITE_P(PathsAndApis, LimiterAscendPreloadApi, ::testing::ValuesIn(ApiCases()),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

class LimiterAscendPreloadPath : public PreloadTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    PreloadTest::SetUp();
    WriteAscendConfig({kLimit});
  }
  void ExpectNoLeak() {
    EXPECT_EQ(Outstanding(), 0) << "the fake runtime still holds memory";
    RegionView region(region_path_);
    ASSERT_TRUE(region.ok()) << "no valid region at " << region_path_;
    EXPECT_EQ(region.used(0), 0u) << "the region still charges the container";
  }
  std::string Kinds() const {
    return GetParam() == "linked" ? "malloc,align32,cached,withcfg,physical,rt,rt_cached,dvpp"
                                  : "malloc,align32,cached,withcfg,physical";
  }
};

TEST_P(LimiterAscendPreloadPath, MemoryQueriesReportTheSlice) {
  Result r = RunAcl(GetParam(), {"query", "--alloc", "256MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("alloc_result"), 0) << r.Describe();
  EXPECT_EQ(r.Int("acl_result"), 0);
  EXPECT_EQ(r.U64("acl_total"), kLimit);
  EXPECT_EQ(r.U64("acl_free"), kLimit - 256 * kMiB);
  if (GetParam() == "linked") {
    EXPECT_EQ(r.U64("rt_total"), kLimit);
    EXPECT_EQ(r.U64("rt_free"), kLimit - 256 * kMiB);
  }
  EXPECT_EQ(r.Int("null_arg_result"), 100000) << "ACL_ERROR_INVALID_PARAM for a NULL out-pointer";
  ExpectNoLeak();
}

TEST_P(LimiterAscendPreloadPath, EachAllocationKindIsCountedAndReleased) {
  WriteAscendConfig({48 * kMiB});
  Result r = RunAcl(GetParam(), {"each-kind", "--bytes", "32MiB", "--probe", "--kinds", Kinds()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  for (const std::string k : {"malloc", "align32", "cached", "withcfg", "physical", "rt", "rt_cached", "dvpp"}) {
    if (Kinds().find(k) == std::string::npos) continue;
    std::string p = k + ".";
    SCOPED_TRACE(k);
    ASSERT_EQ(r.Int(p + "result"), 0) << r.Describe();
    EXPECT_EQ(r.Int(p + "used_held"), static_cast<long long>(RealBytes(k, 32 * kMiB))) << "bytes counted for " << k;
    EXPECT_EQ(r.Int(p + "probe_held"), kOom) << k << " is not counted: a second allocation fit next to it";
    EXPECT_EQ(r.Int(p + "free_result"), 0);
    EXPECT_EQ(r.Int(p + "used_after"), 0) << "the free of " << k << " is not seen";
    EXPECT_EQ(r.Int(p + "probe_freed"), 0) << "after freeing " << k << " the slice is still charged";
  }
  EXPECT_LE(Peak(), static_cast<int64_t>(48 * kMiB));
  ExpectNoLeak();
}

TEST_P(LimiterAscendPreloadPath, WithOneKindHeldEveryOtherKindIsRefused) {
  WriteAscendConfig({48 * kMiB});
  Result r = RunAcl(GetParam(), {"each-kind", "--bytes", "32MiB", "--kinds", Kinds()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("malloc.result"), 0) << r.Describe();
  for (const std::string k : {"align32", "cached", "withcfg", "physical", "rt", "rt_cached", "dvpp"}) {
    if (Kinds().find(k) == std::string::npos) continue;
    EXPECT_EQ(r.Int(k + ".result"), kOom) << k << " was not refused over the limit";
  }
  EXPECT_EQ(r.Int("kinds_held"), 1);
  EXPECT_LE(Peak(), static_cast<int64_t>(48 * kMiB));
  ExpectNoLeak();
}

TEST_P(LimiterAscendPreloadPath, ForkedChildIsAccountedAsAProcessOfItsOwn) {
  Result r = RunAcl(GetParam(), {"fork-child", "--parent-bytes", "600MiB", "--child-bytes", "600MiB",
                                 "--child-bytes2", "300MiB", "--after-bytes", "400MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("parent_alloc"), 0) << r.Describe();
  EXPECT_EQ(r.Int("child_set_device_result"), 0);
  EXPECT_EQ(r.Int("child_alloc"), kOom) << "the parent's 600 MiB must count for its child";
  EXPECT_EQ(r.Int("child_alloc2"), 0);
  EXPECT_EQ(r.U64("child_total"), kLimit);
  EXPECT_EQ(r.U64("child_free"), kLimit - 900 * kMiB);
  EXPECT_EQ(r.Int("child_status"), 0);
  EXPECT_EQ(r.Int("parent_after"), 0) << "the exited child's memory is still charged";
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  ExpectNoLeak();
}

INSTANTIATE_TEST_SUITE_P(Paths, LimiterAscendPreloadPath, ::testing::Values("linked", "dlopen"));

// ------------------------------------------------------------------ single scenarios

class LimiterAscendPreload : public PreloadTest {
 protected:
  void ExpectNoLeak() {
    EXPECT_EQ(Outstanding(), 0) << "the fake runtime still holds memory";
    RegionView region(region_path_);
    ASSERT_TRUE(region.ok()) << "no valid region at " << region_path_;
    EXPECT_EQ(region.used(0), 0u) << "the region still charges the container";
  }

  void Stress(int processes, int threads, int millis, bool before_init, const std::string& path) {
    WriteAscendConfig({kLimit});
    std::vector<Child> children;
    for (int i = 0; i < processes; ++i) {
      std::vector<std::string> args = {"stress", "--threads", std::to_string(threads), "--seconds-ms",
                                       std::to_string(millis), "--max-chunk", "96MiB", "--seed",
                                       std::to_string(i + 1)};
      if (before_init) args.push_back("--threads-before-init");
      children.push_back(Child::Spawn(AclArgv(path, args), Env(Lib::kShipped, true)));
    }
    Sampler fake_only(state_, 0, nullptr, 0);
    for (int i = 0; i < 2000 && !FileExists(region_path_); ++i) usleep(1000);
    auto region = std::make_unique<RegionView>(region_path_);
    Sampler sampler(state_, 0, region.get(), 0);
    long long allocs = 0, ooms = 0;
    for (auto& c : children) {
      Result r = c.Wait(240);
      EXPECT_EQ(r.exit_code, 0) << r.Describe();
      EXPECT_EQ(r.Str("done"), "1") << r.Describe();
      EXPECT_EQ(r.Int("stress_errors"), 0) << "first unexpected aclError " << r.Int("stress_first_error");
      EXPECT_EQ(r.Int("stress_free_errors"), 0);
      allocs += std::max(0ll, r.Int("stress_allocs"));
      ooms += std::max(0ll, r.Int("stress_ooms"));
    }
    sampler.Stop();
    fake_only.Stop();
    const int64_t peak = std::max({Peak(), sampler.max_outstanding(), fake_only.max_outstanding()});
    const double ratio = static_cast<double>(peak) / static_cast<double>(kLimit);
    RecordProperty("peak_bytes", std::to_string(peak));
    RecordProperty("limit_bytes", std::to_string(kLimit));
    RecordProperty("peak_to_limit", std::to_string(ratio));
    printf("[ stress   ] ascend %s: %d processes x %d threads, %lld allocations, %lld refused, %ld samples; "
           "fake runtime peak %lld B = %.4f of the %llu B limit (region peak %llu B)\n",
           path.c_str(), processes, threads, allocs, ooms, sampler.samples(), static_cast<long long>(peak), ratio,
           static_cast<unsigned long long>(kLimit), static_cast<unsigned long long>(sampler.max_region_used()));
    EXPECT_GT(allocs, 0);
    EXPECT_GT(ooms, 0) << "the workload never reached the limit; the test proves nothing";
    EXPECT_LE(sampler.max_outstanding(), static_cast<int64_t>(kLimit)) << "sampled over the limit";
    EXPECT_LE(Peak(), static_cast<int64_t>(kLimit)) << "the fake runtime's peak is over the limit";
    ExpectNoLeak();
  }
};

TEST_F(LimiterAscendPreload, EightProcessesSixteenThreadsNeverExceedTheLimit) {
  Stress(8, 16, 5000, false, "dlopen");
}

TEST_F(LimiterAscendPreload, ThreadsStartedBeforeTheFirstAclCall) {
  Stress(2, 16, 1500, true, "linked");
}

TEST_F(LimiterAscendPreload, KilledProcessMemoryIsReclaimedForItsSiblings) {
  WriteAscendConfig({kLimit});
  std::string ready = dir_ / "ready";
  Child holder = Child::Spawn(AclArgv("dlopen", {"hold", "--bytes", "500MiB", "--ready-file", ready}),
                              Env(Lib::kShipped, true));
  ASSERT_TRUE(WaitForFile(ready)) << holder.Kill().Describe();
  Result busy = RunAcl("linked", {"query", "--alloc", "600MiB"});
  EXPECT_EQ(busy.Int("alloc_result"), kOom) << busy.Describe();
  EXPECT_EQ(busy.U64("acl_free"), kLimit - 500 * kMiB);
  Result h = holder.Kill();
  EXPECT_EQ(h.Int("hold_result"), 0) << h.Describe();
  EXPECT_EQ(tideslice::fake::FakeStateReapDeadProcesses(state_), static_cast<int64_t>(500 * kMiB));
  Result view = RunAcl("linked", {"query"});
  EXPECT_EQ(view.U64("acl_free"), kLimit) << "a sibling still sees the dead process's 500 MiB as used";
  EXPECT_EQ(view.U64("rt_free"), kLimit);
  Result after = RunAcl("dlopen", {"query", "--alloc", "900MiB"});
  EXPECT_EQ(after.Int("alloc_result"), 0) << "the dead process's 500 MiB were not reclaimed\n" << after.Describe();
  EXPECT_EQ(after.U64("acl_free"), kLimit - 900 * kMiB);
  RegionView region(region_path_);
  ASSERT_TRUE(region.ok());
  EXPECT_GE(region.reclaimed(0), 500 * kMiB) << "reclaimed_bytes";
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  ExpectNoLeak();
}

TEST_F(LimiterAscendPreload, EachCardHasItsOwnLimit) {
  WriteAscendConfig({kLimit, 512 * kMiB});
  Result r1 = RunAcl("linked", {"--device", "1", "fill", "--chunk", "128MiB", "--api", "align32"});
  ASSERT_EQ(r1.exit_code, 0) << r1.Describe();
  EXPECT_EQ(r1.Int("fill_successes"), 4) << r1.Describe();
  EXPECT_EQ(r1.U64("total"), 512 * kMiB);
  Result r0 = RunAcl("dlopen", {"--device", "0", "fill", "--chunk", "128MiB", "--api", "align32"});
  EXPECT_EQ(r0.Int("fill_successes"), 8) << r0.Describe();
  EXPECT_LE(Peak(1), static_cast<int64_t>(512 * kMiB));
  ExpectNoLeak();
}

TEST_F(LimiterAscendPreload, LimitAboveThePhysicalMemoryReportsThePhysical) {
  WriteAscendConfig({100 * kGiB});
  Result r = RunAcl("linked", {"query", "--alloc", "1GiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("alloc_result"), 0);
  EXPECT_EQ(r.U64("acl_total"), kPhysical);
  EXPECT_EQ(r.U64("rt_total"), kPhysical);
  EXPECT_LE(r.U64("acl_free"), kPhysical - kGiB);
  ExpectNoLeak();
}

TEST_F(LimiterAscendPreload, AProcessThatExitsWithoutFreeingLeavesNothingCharged) {
  WriteAscendConfig({kLimit});
  Result a = RunAcl("dlopen", {"query", "--alloc", "256MiB", "--no-free"});
  ASSERT_EQ(a.exit_code, 0) << a.Describe();
  EXPECT_EQ(a.Int("alloc_result"), 0);
  EXPECT_EQ(a.U64("acl_free"), kLimit - 256 * kMiB);
  EXPECT_EQ(Outstanding(), 0) << "the fake runtime frees at exit";
  Result b = RunAcl("linked", {"query"});
  ASSERT_EQ(b.exit_code, 0) << b.Describe();
  EXPECT_EQ(b.U64("acl_free"), kLimit) << "a sibling still sees the exited process's 256 MiB as used";
  EXPECT_EQ(b.U64("rt_free"), kLimit);
  ExpectNoLeak();
}

TEST_F(LimiterAscendPreload, HostMemoryIsNotCharged) {
  WriteAscendConfig({48 * kMiB});
  for (const char* path : {"linked", "dlopen"}) {
    SCOPED_TRACE(path);
    Result r = RunAcl(path, {"host-kinds", "--bytes", "64MiB"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("alloc_host"), 0) << "aclrtMallocHost is host memory\n" << r.Describe();
    EXPECT_EQ(r.Int("physical_host"), 0) << "aclrtMallocPhysical on the host side is not HBM";
    EXPECT_EQ(r.Int("used_with_host"), 0);
    ExpectNoLeak();
  }
}

TEST_F(LimiterAscendPreload, CallsTheRuntimeRefusesCostNothing) {
  WriteAscendConfig({kLimit});
  for (const char* path : {"linked", "dlopen"}) {
    SCOPED_TRACE(path);
    Result r = RunAcl(path, {"bad-args", "--fill", "1GiB"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    for (const char* k : {"malloc_zero", "malloc_null", "align32_zero", "physical_bad_flags",
                          "physical_bad_handle_type", "free_null"})
      EXPECT_EQ(r.Int(k), 100000) << k << ": ACL_ERROR_INVALID_PARAM must come back\n" << r.Describe();
    if (std::string(path) == "linked") {
      EXPECT_EQ(r.Int("rt_malloc_zero"), 107000) << "rtMalloc's own error must come back";
    }
    EXPECT_EQ(r.Int("used_after_errors"), 0);
    EXPECT_EQ(r.Int("fill_result"), 0) << "failed calls left charges behind";
    ExpectNoLeak();
  }
}

TEST_F(LimiterAscendPreload, AnUnusableConfigurationRefusesEveryAllocationWithOneLogLine) {
  const std::vector<CardSpec> card = {{"0", 0, kLimit, 0}};
  std::string good = ConfigJson("huawei", region_path_, card);
  std::string v2 = good;
  v2.replace(v2.find("\"version\":1"), 11, "\"version\":2");
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"not JSON", "[1,2"},
      {"unknown version", v2},
      {"region directory missing", ConfigJson("huawei", dir_ / "no-such-dir/region", card)},
  };
  for (const auto& [name, config] : cases) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(WriteFile(config_path_, config));
    Result r = RunAcl("linked", {"each-kind", "--bytes", "32MiB"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    for (const char* k : {"malloc", "align32", "cached", "withcfg", "physical", "rt", "rt_cached", "dvpp"})
      EXPECT_EQ(r.Int(std::string(k) + ".result"), kOom) << k << "\n" << r.Describe();
    EXPECT_EQ(r.CountErrLines(kLogPrefix), 1) << "exactly one line starting with " << kLogPrefix << ":\n" << r.err;
    EXPECT_EQ(Peak(), 0) << "the fake runtime handed out memory";
  }
}

TEST_F(LimiterAscendPreload, WithoutAnyConfigurationTheProcessIsUntouched) {
  if (FileExists("/etc/tideslice/limiter/config.json")) GTEST_SKIP() << "this machine has a mounted limiter config";
  Result r = RunAcl("linked", {"fill", "--chunk", "1GiB", "--api", "malloc"}, Lib::kShipped, false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 3) << "4 GiB physical, 1 GiB + 32 B each\n" << r.Describe();
  EXPECT_EQ(r.U64("total"), kPhysical);
  EXPECT_EQ(r.U64("rt_total"), kPhysical);
  EXPECT_EQ(r.CountErrLines(kLogPrefix), 0) << r.err;
  EXPECT_FALSE(FileExists(region_path_));
  EXPECT_EQ(Outstanding(), 0);
}

}  // namespace
}  // namespace limtest
