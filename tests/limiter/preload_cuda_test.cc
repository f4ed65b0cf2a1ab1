// The preloaded limiter (libtideslice-limiter.so) against the fake libcuda.so.1 and
// libnvidia-ml.so.1: workloads reach the driver directly, through dlopen + dlsym, and through
// cuGetProcAddress (4-argument, _v2, per-thread), and the fake driver's own byte counts (shared
// state file) show what the "hardware" really held.
#include <stdio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/limiter/preload_harness.h"

namespace limtest {
namespace {

constexpr uint64_t kLimit = 1 * kGiB;
const char* const kLogPrefix = "tideslice-limiter:";

// ------------------------------------------------------------------ the fakes alone

class LimiterFakesCuda : public PreloadTest {};

TEST_F(LimiterFakesCuda, WithoutTheLimiterFillRunsToThePhysicalTotal) {
  Result r = RunCuda("dlopen", {"fill", "--chunk", "512MiB"}, Lib::kNone, false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 8) << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), 2);
  EXPECT_EQ(r.U64("total"), kPhysical);
  EXPECT_EQ(r.U64("free"), 0u);
  EXPECT_EQ(r.Int("used_after_free"), 0);
  EXPECT_EQ(Peak(), static_cast<int64_t>(kPhysical));
  EXPECT_EQ(Outstanding(), 0);
}

TEST_F(LimiterFakesCuda, EveryKindIsCountedWithItsRealSize) {
  Result r = RunCuda("procaddress_v2", {"each-kind", "--bytes", "32MiB", "--probe"}, Lib::kNone, false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  for (const char* k : {"mem_alloc", "pitch", "managed", "async", "pool_async", "vmm", "array", "array3d", "mipmapped"}) {
    std::string p = std::string(k) + ".";
    EXPECT_EQ(r.Int(p + "result"), 0) << k << "\n" << r.Describe();
    EXPECT_EQ(r.Int(p + "used_held"), r.Int(p + "expected_bytes")) << k;
    EXPECT_EQ(r.Int(p + "used_after"), 0) << k;
  }
  EXPECT_EQ(r.Int("mipmapped.expected_bytes"), 40 * static_cast<long long>(kMiB));
  EXPECT_EQ(Outstanding(), 0);
}

TEST_F(LimiterFakesCuda, ContextFootprintAndDeadProcessReaping) {
  MakeState(kDevices, kPhysical, 64 * kMiB);
  std::string ready = dir_ / "ready";
  Child holder = Child::Spawn(CudaArgv("linked", {"hold", "--bytes", "500MiB", "--ready-file", ready}),
                              Env(Lib::kNone, false));
  ASSERT_TRUE(WaitForFile(ready)) << holder.Kill().Describe();
  EXPECT_EQ(Outstanding(), static_cast<int64_t>(564 * kMiB));
  holder.Kill();
  EXPECT_EQ(Outstanding(), static_cast<int64_t>(564 * kMiB)) << "a SIGKILLed process runs no atexit handler";
  EXPECT_EQ(tideslice::fake::FakeStateReapDeadProcesses(state_), static_cast<int64_t>(564 * kMiB));
  EXPECT_EQ(Outstanding(), 0);
}

TEST_F(LimiterFakesCuda, PoolCacheContextTeardownAndExitBehaveLikeTheDriver) {
  Result pool = RunCuda("procaddress_ptsz", {"pool-cache", "--bytes", "32MiB"}, Lib::kNone, false);
  ASSERT_EQ(pool.exit_code, 0) << pool.Describe();
  EXPECT_EQ(pool.U64("pool_reserved"), 32 * kMiB) << "freed pool memory stays reserved above the threshold";
  EXPECT_EQ(pool.Int("used_cached"), static_cast<long long>(32 * kMiB));
  EXPECT_EQ(pool.Int("async_reuse"), 0);
  EXPECT_EQ(pool.Int("used_trimmed"), 0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"ctx-reset", "--first", "512MiB", "--second", "768MiB"},
        std::vector<std::string>{"--ctx", "create", "ctx-reset", "--first", "512MiB", "--second", "768MiB"}}) {
    Result r = RunCuda("dlopen", args, Lib::kNone, false);
    EXPECT_EQ(r.Int("used_after_reset"), 0) << r.Describe();
    EXPECT_EQ(r.Int("second_alloc"), 0);
  }
  Result exit_holding = RunCuda("linked", {"query", "--alloc", "256MiB", "--no-free"}, Lib::kNone, false);
  EXPECT_EQ(exit_holding.Int("alloc_result"), 0) << exit_holding.Describe();
  EXPECT_EQ(Outstanding(), 0) << "the fake gives everything back at a normal exit";
}

// ------------------------------------------------------------------ every path

class LimiterCudaPreloadPath : public PreloadTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    PreloadTest::SetUp();
    WriteCudaConfig({kLimit});
  }
  void ExpectNoLeak() {
    EXPECT_EQ(Outstanding(), 0) << "the fake driver still holds memory";
    RegionView region(region_path_);
    ASSERT_TRUE(region.ok()) << "no valid region at " << region_path_;
    EXPECT_EQ(region.used(0), 0u) << "the region still charges the container";
  }
};

TEST_P(LimiterCudaPreloadPath, AllocationsStopAtTheLimit) {
  Result r = RunCuda(GetParam(), {"fill", "--chunk", "128MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 8) << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), 2) << "CUDA_ERROR_OUT_OF_MEMORY expected";
  EXPECT_EQ(r.Int("meminfo_result"), 0);
  EXPECT_EQ(r.U64("total"), kLimit) << "cuMemGetInfo_v2 total";
  EXPECT_EQ(r.U64("free"), 0u) << "cuMemGetInfo_v2 free with the slice full";
  EXPECT_EQ(r.U64("device_total"), kLimit) << "cuDeviceTotalMem_v2";
  EXPECT_EQ(r.Int("free_errors"), 0);
  EXPECT_EQ(r.Int("used_after_free"), 0);
  EXPECT_EQ(r.CountErrLines(kLogPrefix), 0) << r.err;
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  ExpectNoLeak();
}

TEST_P(LimiterCudaPreloadPath, CreatedContextsOfEveryVariantAreLimitedToo) {
  // cuCtxCreate_v2 (linked, dlopen), _v3 (cuGetProcAddress at 11080), _v4 (at 12060), on device 1
  // whose limit differs from device 0's: a wrapper with the wrong ABI for the variant handed out
  // would create the context elsewhere (or fail on garbage flags).
  WriteCudaConfig({kLimit, 512 * kMiB});
  Result r = RunCuda(GetParam(), {"--ctx", "create", "--device", "1", "fill", "--chunk", "256MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("ctx_result"), 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 2) << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), 2);
  EXPECT_EQ(r.U64("total"), 512 * kMiB);
  EXPECT_EQ(r.Int("release_result"), 0);
  EXPECT_EQ(Peak(0), 0) << "the context was created on device 0";
  EXPECT_LE(Peak(1), static_cast<int64_t>(512 * kMiB));
  EXPECT_EQ(Outstanding(1), 0);
  ExpectNoLeak();
}

TEST_P(LimiterCudaPreloadPath, MemoryQueriesReportTheSlice) {
  Result r = RunCuda(GetParam(), {"query", "--alloc", "256MiB", "--nvml"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("alloc_result"), 0) << r.Describe();
  EXPECT_EQ(r.U64("cuda_total"), kLimit);
  EXPECT_EQ(r.U64("cuda_free"), kLimit - 256 * kMiB);
  EXPECT_EQ(r.U64("device_total"), kLimit);
  EXPECT_EQ(r.Str("uuid"), tideslice::fake::FakeUuid(0));
  EXPECT_EQ(r.Int("nvml_result"), 0);
  EXPECT_EQ(r.U64("nvml_total"), kLimit) << "nvmlDeviceGetMemoryInfo";
  EXPECT_EQ(r.U64("nvml_used"), 256 * kMiB);
  EXPECT_EQ(r.U64("nvml_free"), kLimit - 256 * kMiB);
  EXPECT_EQ(r.Int("nvml2_result"), 0);
  EXPECT_EQ(r.U64("nvml2_total"), kLimit) << "nvmlDeviceGetMemoryInfo_v2";
  EXPECT_EQ(r.U64("nvml2_used"), 256 * kMiB);
  EXPECT_EQ(r.U64("nvml2_free"), kLimit - 256 * kMiB);
  EXPECT_EQ(r.Int("nvml2_badversion_result"), 25) << "a wrong struct version must still be refused";
  if (GetParam().rfind("procaddress", 0) == 0) {
    // A name the driver does not know: success, NULL pointer (and SYMBOL_NOT_FOUND).
    EXPECT_EQ(r.Int("getproc_unknown_result"), 0);
    EXPECT_EQ(r.Int("getproc_unknown_null"), 1);
    if (GetParam() != "procaddress") {
      EXPECT_EQ(r.Int("getproc_unknown_status"), 1);
    }
  }
  ExpectNoLeak();
}

TEST_P(LimiterCudaPreloadPath, EachAllocationKindIsCountedAndReleased) {
  // Limit 48 MiB, allocations of ~32 MiB: while one kind is held, a 32 MiB cuMemAlloc_v2 must
  // not fit; after its free, it must fit again. The process's own view (cuMemGetInfo_v2) shows
  // the bytes counted for the kind, which must be what the driver really takes (A.1.4).
  WriteCudaConfig({48 * kMiB});
  Result r = RunCuda(GetParam(), {"each-kind", "--bytes", "32MiB", "--probe"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  for (const char* k : {"mem_alloc", "pitch", "managed", "async", "pool_async", "vmm", "array", "array3d", "mipmapped"}) {
    std::string p = std::string(k) + ".";
    SCOPED_TRACE(k);
    ASSERT_EQ(r.Int(p + "result"), 0) << r.Describe();
    EXPECT_EQ(r.Int(p + "used_held"), r.Int(p + "expected_bytes")) << "bytes counted for " << k;
    EXPECT_EQ(r.Int(p + "probe_held"), 2) << k << " is not counted: a second allocation fit next to it";
    EXPECT_EQ(r.Int(p + "free_result"), 0);
    EXPECT_EQ(r.Int(p + "used_after"), 0) << "the free of " << k << " is not seen";
    EXPECT_EQ(r.Int(p + "probe_freed"), 0) << "after freeing " << k << " the slice is still charged";
  }
  EXPECT_LE(Peak(), static_cast<int64_t>(48 * kMiB));
  ExpectNoLeak();
}

TEST_P(LimiterCudaPreloadPath, WithOneKindHeldEveryOtherKindIsRefused) {
  WriteCudaConfig({48 * kMiB});
  Result r = RunCuda(GetParam(), {"each-kind", "--bytes", "32MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("mem_alloc.result"), 0) << r.Describe();
  for (const char* k : {"pitch", "managed", "async", "pool_async", "vmm", "array", "array3d", "mipmapped"})
    EXPECT_EQ(r.Int(std::string(k) + ".result"), 2) << k << " was not refused over the limit";
  EXPECT_EQ(r.Int("kinds_held"), 1);
  EXPECT_EQ(r.Int("used_after_free"), 0);
  EXPECT_LE(Peak(), static_cast<int64_t>(48 * kMiB));
  ExpectNoLeak();
}

INSTANTIATE_TEST_SUITE_P(Paths, LimiterCudaPreloadPath,
                         ::testing::Values("linked", "dlopen", "procaddress", "procaddress_v2", "procaddress_ptsz"));

// ------------------------------------------------------------------ single scenarios

class LimiterCudaPreload : public PreloadTest {
 protected:
  void ExpectNoLeak() {
    EXPECT_EQ(Outstanding(), 0) << "the fake driver still holds memory";
    RegionView region(region_path_);
    ASSERT_TRUE(region.ok()) << "no valid region at " << region_path_;
    EXPECT_EQ(region.used(0), 0u) << "the region still charges the container";
  }

  // N processes x T threads allocating and freeing at random (cuMemAlloc_v2 and
  // cuMemAllocAsync/cuMemFreeAsync) against kLimit; the harness samples the fake driver's
  // outstanding bytes about every millisecond.
  void Stress(int processes, int threads, int millis, bool before_init, const std::string& path) {
    WriteCudaConfig({kLimit});
    std::vector<Child> children;
    for (int i = 0; i < processes; ++i) {
      std::vector<std::string> args = {"stress", "--threads", std::to_string(threads), "--seconds-ms",
                                       std::to_string(millis), "--max-chunk", "96MiB", "--seed",
                                       std::to_string(i + 1)};
      if (before_init) args.push_back("--threads-before-init");
      children.push_back(Child::Spawn(CudaArgv(path, args), Env(Lib::kShipped, true)));
    }
    std::unique_ptr<RegionView> region;
    // The first process creates the region; sample it as soon as it exists.
    Sampler fake_only(state_, 0, nullptr, 0);
    for (int i = 0; i < 2000 && !FileExists(region_path_); ++i) usleep(1000);
    region = std::make_unique<RegionView>(region_path_);
    Sampler sampler(state_, 0, region.get(), 0);
    long long allocs = 0, ooms = 0, async_allocs = 0;
    for (auto& c : children) {
      Result r = c.Wait(240);
      EXPECT_EQ(r.exit_code, 0) << r.Describe();
      EXPECT_EQ(r.Str("done"), "1") << r.Describe();
      EXPECT_EQ(r.Int("stress_errors"), 0) << "first unexpected CUresult " << r.Int("stress_first_error");
      EXPECT_EQ(r.Int("stress_free_errors"), 0);
      allocs += std::max(0ll, r.Int("stress_allocs"));
      async_allocs += std::max(0ll, r.Int("stress_async_allocs"));
      ooms += std::max(0ll, r.Int("stress_ooms"));
    }
    sampler.Stop();
    fake_only.Stop();
    const int64_t peak = std::max({Peak(), sampler.max_outstanding(), fake_only.max_outstanding()});
    const double ratio = static_cast<double>(peak) / static_cast<double>(kLimit);
    RecordProperty("peak_bytes", std::to_string(peak));
    RecordProperty("limit_bytes", std::to_string(kLimit));
    RecordProperty("peak_to_limit", std::to_string(ratio));
    printf("[ stress   ] cuda %s: %d processes x %d threads, %lld allocations (%lld async), %lld refused, "
           "%ld samples; fake driver peak %lld B = %.4f of the %llu B limit (region peak %llu B)\n",
           path.c_str(), processes, threads, allocs, async_allocs, ooms, sampler.samples(),
           static_cast<long long>(peak), ratio, static_cast<unsigned long long>(kLimit),
           static_cast<unsigned long long>(sampler.max_region_used()));
    EXPECT_GT(allocs, 0);
    EXPECT_GT(ooms, 0) << "the workload never reached the limit; the test proves nothing";
    EXPECT_LE(sampler.max_outstanding(), static_cast<int64_t>(kLimit)) << "sampled over the limit";
    EXPECT_LE(Peak(), static_cast<int64_t>(kLimit)) << "the fake driver's peak is over the limit";
    ExpectNoLeak();
  }
};

TEST_F(LimiterCudaPreload, EightProcessesSixteenThreadsNeverExceedTheLimit) {
  Stress(8, 16, 5000, false, "procaddress_v2");
}

TEST_F(LimiterCudaPreload, ThreadsStartedBeforeTheFirstCudaCall) {
  Stress(2, 16, 1500, true, "dlopen");
}

TEST_F(LimiterCudaPreload, ThreadsStartedAfterTheFirstCudaCallLinked) {
  Stress(2, 16, 1500, false, "linked");
}

TEST_F(LimiterCudaPreload, LimitAboveThePhysicalMemoryReportsThePhysical) {
  WriteCudaConfig({100 * kGiB});
  Result r = RunCuda("procaddress_v2", {"query", "--alloc", "1GiB", "--nvml"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("alloc_result"), 0);
  EXPECT_EQ(r.U64("cuda_total"), kPhysical) << "total must be min(limit, physical)";
  EXPECT_LE(r.U64("cuda_free"), kPhysical - kGiB);
  EXPECT_EQ(r.U64("device_total"), kPhysical);
  EXPECT_EQ(r.U64("nvml_total"), kPhysical);
  EXPECT_EQ(r.U64("nvml2_total"), kPhysical);
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, EachCardHasItsOwnLimit) {
  WriteCudaConfig({kLimit, 512 * kMiB});
  Result r1 = RunCuda("dlopen", {"--device", "1", "fill", "--chunk", "128MiB"});
  ASSERT_EQ(r1.exit_code, 0) << r1.Describe();
  EXPECT_EQ(r1.Int("fill_successes"), 4) << r1.Describe();
  EXPECT_EQ(r1.U64("total"), 512 * kMiB);
  EXPECT_EQ(r1.U64("device_total"), 512 * kMiB);
  Result r0 = RunCuda("dlopen", {"--device", "0", "fill", "--chunk", "128MiB"});
  EXPECT_EQ(r0.Int("fill_successes"), 8) << r0.Describe();
  EXPECT_EQ(r0.U64("total"), kLimit);
  EXPECT_LE(Peak(1), static_cast<int64_t>(512 * kMiB));
  EXPECT_EQ(Outstanding(1), 0);
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, ContextReserveIsChargedPerProcess) {
  // The fake's context really costs 64 MiB; the limiter reserves 256 MiB for it.
  MakeState(kDevices, kPhysical, 64 * kMiB);
  WriteCudaConfig({kLimit}, 256 * kMiB);
  Result r = RunCuda("procaddress_v2", {"fill", "--chunk", "128MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 6) << "1 GiB - 256 MiB reserve = 6 x 128 MiB\n" << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), 2);
  EXPECT_EQ(r.U64("total"), kLimit);
  EXPECT_EQ(r.U64("free"), 0u);
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  // A second process while the first holds its context: each pays its own reserve.
  std::string ready = dir_ / "ready";
  Child holder = Child::Spawn(CudaArgv("dlopen", {"hold", "--bytes", "128MiB", "--ready-file", ready}),
                              Env(Lib::kShipped, true));
  ASSERT_TRUE(WaitForFile(ready)) << holder.Kill().Describe();
  Result q = RunCuda("dlopen", {"query"});
  EXPECT_EQ(q.U64("cuda_total"), kLimit);
  EXPECT_EQ(q.U64("cuda_free"), kLimit - 2 * 256 * kMiB - 128 * kMiB) << q.Describe();
  Result h = holder.Kill();
  EXPECT_EQ(h.Int("hold_result"), 0) << h.Describe();
  tideslice::fake::FakeStateReapDeadProcesses(state_);
  // The next process takes the dead holder's slot back.
  Result again = RunCuda("dlopen", {"fill", "--chunk", "128MiB"});
  EXPECT_EQ(again.Int("fill_successes"), 6) << again.Describe();
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, KilledProcessMemoryIsReclaimedForItsSiblings) {
  WriteCudaConfig({kLimit});
  std::string ready = dir_ / "ready";
  Child holder = Child::Spawn(CudaArgv("dlopen", {"hold", "--bytes", "500MiB", "--ready-file", ready}),
                              Env(Lib::kShipped, true));
  ASSERT_TRUE(WaitForFile(ready)) << holder.Kill().Describe();
  // While it lives, its 500 MiB count for every sibling.
  Result busy = RunCuda("linked", {"query", "--alloc", "600MiB"});
  EXPECT_EQ(busy.Int("alloc_result"), 2) << busy.Describe();
  EXPECT_EQ(busy.U64("cuda_free"), kLimit - 500 * kMiB);
  Result h = holder.Kill();
  EXPECT_EQ(h.signal, SIGKILL);
  EXPECT_EQ(h.Int("hold_result"), 0) << h.Describe();
  // The kernel driver frees a dead process's memory; the fake does it when asked.
  EXPECT_EQ(tideslice::fake::FakeStateReapDeadProcesses(state_), static_cast<int64_t>(500 * kMiB));
  Result view = RunCuda("dlopen", {"query", "--nvml"});
  EXPECT_EQ(view.U64("cuda_free"), kLimit) << "a sibling still sees the dead process's 500 MiB as used";
  EXPECT_EQ(view.U64("nvml_used"), 0u);
  Result after = RunCuda("procaddress_v2", {"query", "--alloc", "900MiB"});
  EXPECT_EQ(after.Int("alloc_result"), 0) << "the dead process's 500 MiB were not reclaimed\n" << after.Describe();
  EXPECT_EQ(after.U64("cuda_free"), kLimit - 900 * kMiB);
  RegionView region(region_path_);
  ASSERT_TRUE(region.ok());
  EXPECT_GE(region.reclaimed(0), 500 * kMiB) << "reclaimed_bytes";
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, ForkedChildIsAccountedAsAProcessOfItsOwn) {
  WriteCudaConfig({kLimit});
  for (const char* path : {"dlopen", "procaddress_v2", "linked"}) {
    SCOPED_TRACE(path);
    Result r = RunCuda(path, {"fork-child", "--parent-bytes", "600MiB", "--child-bytes", "600MiB", "--child-bytes2",
                              "300MiB", "--after-bytes", "400MiB"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("parent_alloc"), 0) << r.Describe();
    EXPECT_EQ(r.Int("child_init_result"), 0);
    EXPECT_EQ(r.Int("child_ctx_result"), 0);
    EXPECT_EQ(r.Int("child_alloc"), 2) << "the parent's 600 MiB must count for its child";
    EXPECT_EQ(r.Int("child_alloc2"), 0);
    EXPECT_EQ(r.U64("child_total"), kLimit);
    EXPECT_EQ(r.U64("child_free"), kLimit - 900 * kMiB);
    EXPECT_EQ(r.Int("child_status"), 0);
    EXPECT_EQ(r.Int("parent_after"), 0) << "the exited child's memory is still charged";
    EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
    ExpectNoLeak();
  }
}

TEST_F(LimiterCudaPreload, ExecReplacesTheImageAndItsCharges) {
  WriteCudaConfig({kLimit});
  for (const char* path : {"dlopen", "linked"}) {
    SCOPED_TRACE(path);
    Result r = RunCuda(path, {"exec-child", "--bytes", "600MiB", "--then-alloc", "600MiB", "--nvml"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("exec_parent_alloc"), 0) << r.Describe();
    EXPECT_EQ(r.Int("alloc_result"), 0) << "the image before execve still holds its 600 MiB\n" << r.Describe();
    EXPECT_EQ(r.U64("cuda_total"), kLimit) << "the new image is limited too";
    EXPECT_EQ(r.U64("cuda_free"), kLimit - 600 * kMiB);
    EXPECT_EQ(r.U64("nvml_used"), 600 * kMiB);
    EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
    ExpectNoLeak();
  }
}

TEST_F(LimiterCudaPreload, LegacyEntryPointsCannotBypassTheLimit) {
  // The 32-bit exports of pre-3.2 headers: the limiter may count them or refuse them outright
  // (their pointers cannot address a 64-bit device), but never let them exceed the slice.
  WriteCudaConfig({kLimit});
  Result r = RunCuda("linked", {"fill", "--chunk", "128MiB", "--api", "legacy"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(r.Int("fill_successes"), 8) << "cuMemAlloc (32-bit)\n" << r.Describe();
  EXPECT_EQ(r.Int("fill_result"), 2);
  Result q = RunCuda("linked", {"query", "--alloc", "256MiB"});
  EXPECT_EQ(q.U64("legacy_total"), kLimit) << "cuMemGetInfo (32-bit)";
  EXPECT_EQ(q.U64("legacy_free"), kLimit - 256 * kMiB);
  EXPECT_EQ(q.U64("legacy_device_total"), kLimit) << "cuDeviceTotalMem (32-bit)";
  EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, AProcessThatExitsWithoutFreeingLeavesNothingCharged) {
  // Most programs exit with their memory still allocated; the driver frees it at exit.
  WriteCudaConfig({kLimit});
  Result a = RunCuda("linked", {"query", "--alloc", "256MiB", "--no-free"});
  ASSERT_EQ(a.exit_code, 0) << a.Describe();
  EXPECT_EQ(a.Int("alloc_result"), 0);
  EXPECT_EQ(a.U64("cuda_free"), kLimit - 256 * kMiB);
  EXPECT_EQ(Outstanding(), 0) << "the fake driver frees at exit";
  Result b = RunCuda("procaddress_v2", {"query", "--nvml"});
  ASSERT_EQ(b.exit_code, 0) << b.Describe();
  EXPECT_EQ(b.U64("cuda_free"), kLimit) << "a sibling still sees the exited process's 256 MiB as used";
  EXPECT_EQ(b.U64("nvml_free"), kLimit);
  EXPECT_EQ(b.U64("nvml_used"), 0u);
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, PoolMemoryStaysChargedWhileCachedAndReuseIsFree) {
  // The default pool keeps freed memory reserved (release threshold at its maximum, as PyTorch,
  // CuPy and JAX set it): the reservation is device memory until trimmed.
  WriteCudaConfig({48 * kMiB});
  for (const char* path : {"dlopen", "procaddress_ptsz"}) {
    SCOPED_TRACE(path);
    Result r = RunCuda(path, {"pool-cache", "--bytes", "32MiB"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("async_result"), 0) << r.Describe();
    EXPECT_EQ(r.U64("pool_reserved"), 32 * kMiB);
    EXPECT_EQ(r.Int("used_cached"), static_cast<long long>(32 * kMiB)) << "the cached reservation is not charged";
    EXPECT_EQ(r.Int("probe_cached"), 2) << "32 MiB fit next to a pool that still holds 32 MiB";
    EXPECT_EQ(r.Int("async_reuse"), 0) << "reusing the pool's cache needs no new memory but was refused";
    EXPECT_EQ(r.Int("trim_result"), 0);
    EXPECT_EQ(r.Int("used_trimmed"), 0) << "cuMemPoolTrimTo gave the memory back but it is still charged";
    EXPECT_EQ(r.Int("probe_trimmed"), 0);
    EXPECT_LE(Peak(), static_cast<int64_t>(48 * kMiB));
    ExpectNoLeak();
  }
}

TEST_F(LimiterCudaPreload, HostMemoryIsNotCharged) {
  WriteCudaConfig({48 * kMiB});
  Result r = RunCuda("procaddress_v2", {"host-kinds", "--bytes", "64MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("alloc_host"), 0) << "cuMemAllocHost_v2 is pinned host memory\n" << r.Describe();
  EXPECT_EQ(r.Int("vmm_host_numa"), 0) << "cuMemCreate on HOST_NUMA 0 is not device 0's memory";
  EXPECT_EQ(r.Int("used_with_host"), 0);
  ExpectNoLeak();
}

TEST_F(LimiterCudaPreload, CallsTheDriverRefusesCostNothing) {
  WriteCudaConfig({kLimit});
  for (const char* path : {"linked", "procaddress_v2"}) {
    SCOPED_TRACE(path);
    Result r = RunCuda(path, {"bad-args", "--fill", "1GiB"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    for (const char* k : {"alloc_zero", "pitch_bad_element", "managed_bad_flags", "vmm_unaligned", "array_bad_format",
                          "free_unknown"})
      EXPECT_EQ(r.Int(k), 1) << k << ": the driver's CUDA_ERROR_INVALID_VALUE must come back\n" << r.Describe();
    EXPECT_EQ(r.Int("used_after_errors"), 0);
    EXPECT_EQ(r.Int("fill_result"), 0) << "failed calls left charges behind";
    ExpectNoLeak();
  }
}

TEST_F(LimiterCudaPreload, DestroyedContextsGiveTheirMemoryBack) {
  // cuCtxDestroy / cuDevicePrimaryCtxReset (cudaDeviceReset) free every allocation of the
  // context; the slice must get them back even though no cuMemFree was called.
  WriteCudaConfig({kLimit});
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"ctx-reset", "--first", "512MiB", "--second", "768MiB"},
        std::vector<std::string>{"--ctx", "create", "ctx-reset", "--first", "512MiB", "--second", "768MiB"}}) {
    SCOPED_TRACE(args[0]);
    Result r = RunCuda("dlopen", args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.Int("first_alloc"), 0) << r.Describe();
    EXPECT_EQ(r.Int("reset_result"), 0);
    EXPECT_EQ(r.Int("used_after_reset"), 0) << "memory freed with its context is still charged\n" << r.Describe();
    EXPECT_EQ(r.Int("second_alloc"), 0) << "memory freed with its context is still charged";
    EXPECT_LE(Peak(), static_cast<int64_t>(kLimit));
    ExpectNoLeak();
  }
}

TEST_F(LimiterCudaPreload, AnUnusableConfigurationRefusesEveryAllocationWithOneLogLine) {
  struct Case {
    const char* name;
    std::string config;
  };
  const std::string region = region_path_;
  const std::vector<CardSpec> card = {{tideslice::fake::FakeUuid(0), 0, kLimit, 0}};
  std::string good = ConfigJson("nvidia", region, card);
  std::string v2 = good;
  v2.replace(v2.find("\"version\":1"), 11, "\"version\":2");
  const std::vector<Case> cases = {
      {"not JSON", "{\"version\":1, this is not json"},
      {"empty file", ""},
      {"unknown version", v2},
      {"region directory missing", ConfigJson("nvidia", dir_ / "no-such-dir/region", card)},
      {"region card out of range", ConfigJson("nvidia", region, {{tideslice::fake::FakeUuid(0), 0, kLimit, 99}})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(WriteFile(config_path_, c.config));
    for (const char* path : {"dlopen", "procaddress_v2"}) {
      SCOPED_TRACE(path);
      Result r = RunCuda(path, {"each-kind", "--bytes", "32MiB"});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      for (const char* k :
           {"mem_alloc", "pitch", "managed", "async", "pool_async", "vmm", "array", "array3d", "mipmapped"})
        EXPECT_EQ(r.Int(std::string(k) + ".result"), 2) << k << "\n" << r.Describe();
      EXPECT_EQ(r.CountErrLines(kLogPrefix), 1) << "exactly one line starting with " << kLogPrefix << ":\n"
                                                << r.err;
      EXPECT_EQ(Peak(), 0) << "the fake driver handed out memory";
    }
  }
  EXPECT_EQ(Outstanding(), 0);
}

TEST_F(LimiterCudaPreload, WithoutAnyConfigurationTheProcessIsUntouched) {
  if (FileExists("/etc/tideslice/limiter/config.json")) GTEST_SKIP() << "this machine has a mounted limiter config";
  Result r = RunCuda("procaddress_v2", {"fill", "--chunk", "1GiB"}, Lib::kShipped, /*config_env=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("fill_successes"), 4) << "the whole physical card, well beyond any slice\n" << r.Describe();
  EXPECT_EQ(r.U64("total"), kPhysical);
  EXPECT_EQ(r.U64("device_total"), kPhysical);
  EXPECT_EQ(r.CountErrLines(kLogPrefix), 0) << r.err;
  Result q = RunCuda("linked", {"query", "--alloc", "256MiB", "--nvml"}, Lib::kShipped, false);
  EXPECT_EQ(q.U64("cuda_total"), kPhysical);
  EXPECT_EQ(q.U64("nvml_total"), kPhysical);
  EXPECT_EQ(q.U64("nvml_used"), 256 * kMiB);
  EXPECT_FALSE(FileExists(region_path_)) << "no configuration, no region";
  EXPECT_EQ(Outstanding(), 0);
}

}  // namespace
}  // namespace limtest
