// What libtideslice-limiter.so adds to a driver call, measured against the fake driver alone
// (tests/limiter/fakes): per allocation, per free and per pass-through call. The fake libcuda
// is linked directly; the limiter is dlopen'ed and its wrappers called by address, so both
// paths run in one process on the same fake. Goal (docs/isolation.md): at most 200 ns added per
// allocation or free, at most 50 ns per pass-through call.
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

extern "C" {
int cuInit(unsigned);
int cuDeviceGet(int*, int);
int cuDevicePrimaryCtxRetain(void**, int);
int cuCtxSetCurrent(void*);
int cuMemAlloc_v2(unsigned long long*, size_t);
int cuMemFree_v2(unsigned long long);
int cuLaunchKernel(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
}

namespace {

using AllocFn = int (*)(unsigned long long*, size_t);
using FreeFn = int (*)(unsigned long long);
using LaunchFn = int (*)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**,
                         void**);

struct Paths {
  AllocFn alloc;
  FreeFn free;
  LaunchFn launch;
};

Paths g_direct{&cuMemAlloc_v2, &cuMemFree_v2, &cuLaunchKernel};
Paths g_limited{};
std::string g_dir;

constexpr int kBatch = 512;

void AllocThenFree(benchmark::State& state, const Paths& p, bool time_alloc) {
  std::vector<unsigned long long> ptrs(kBatch);
  for (auto _ : state) {
    if (!time_alloc) state.PauseTiming();
    for (auto& ptr : ptrs)
      if (p.alloc(&ptr, 4096) != 0) state.SkipWithError("allocation refused");
    if (!time_alloc) state.ResumeTiming();
    else state.PauseTiming();
    for (auto ptr : ptrs) p.free(ptr);
    if (time_alloc) state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_Alloc_FakeDriver(benchmark::State& s) { AllocThenFree(s, g_direct, true); }
void BM_Alloc_WithLimiter(benchmark::State& s) { AllocThenFree(s, g_limited, true); }
void BM_Free_FakeDriver(benchmark::State& s) { AllocThenFree(s, g_direct, false); }
void BM_Free_WithLimiter(benchmark::State& s) { AllocThenFree(s, g_limited, false); }

void Launch(benchmark::State& state, const Paths& p) {
  for (auto _ : state) benchmark::DoNotOptimize(p.launch(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr));
}
void BM_PassThroughLaunch_FakeDriver(benchmark::State& s) { Launch(s, g_direct); }
void BM_PassThroughLaunch_WithLimiter(benchmark::State& s) { Launch(s, g_limited); }

BENCHMARK(BM_Alloc_FakeDriver);
BENCHMARK(BM_Alloc_WithLimiter);
BENCHMARK(BM_Free_FakeDriver);
BENCHMARK(BM_Free_WithLimiter);
BENCHMARK(BM_PassThroughLaunch_FakeDriver);
BENCHMARK(BM_PassThroughLaunch_WithLimiter);

}  // namespace

int main(int argc, char** argv) {
  char tmpl[] = "/tmp/tideslice-bench-limiter-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  g_dir = tmpl;
  std::string config = g_dir + "/config.json";
  if (FILE* f = fopen(config.c_str(), "w")) {
    fprintf(f,
            R"({"version":1,"vendor":"nvidia","regionPath":"%s/region","cards":[)"
            R"({"uuid":"GPU-5a1ce000-0000-4000-8000-000000000000","memoryLimitBytes":"68719476736"},)"
            R"({"uuid":"GPU-5a1ce000-0000-4000-8000-000000000001","visibleIndex":1,"regionCard":1,)"
            R"("memoryLimitBytes":"68719476736"}]})",
            g_dir.c_str());
    fclose(f);
  }
  setenv("TIDESLICE_LIMITER_CONFIG", config.c_str(), 1);
  void* limiter = dlopen(TIDESLICE_LIMITER_SO, RTLD_NOW | RTLD_LOCAL);
  if (!limiter) {
    fprintf(stderr, "cannot load the limiter: %s\n", dlerror());
    return 1;
  }
  g_limited.alloc = reinterpret_cast<AllocFn>(dlsym(limiter, "cuMemAlloc_v2"));
  g_limited.free = reinterpret_cast<FreeFn>(dlsym(limiter, "cuMemFree_v2"));
  g_limited.launch = reinterpret_cast<LaunchFn>(dlsym(limiter, "cuLaunchKernel"));
  int dev = 0;
  void* ctx = nullptr;
  if (cuInit(0) != 0 || cuDeviceGet(&dev, 0) != 0 || cuDevicePrimaryCtxRetain(&ctx, dev) != 0 ||
      cuCtxSetCurrent(ctx) != 0) {
    fprintf(stderr, "fake driver did not initialise\n");
    return 1;
  }
  // One limited allocation first: the limiter initialises (config, region) outside the timings.
  unsigned long long warm = 0;
  if (g_limited.alloc(&warm, 4096) != 0) {
    fprintf(stderr, "the limiter refused the warm-up allocation\n");
    return 1;
  }
  g_limited.free(warm);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(g_dir);
  return 0;
}
