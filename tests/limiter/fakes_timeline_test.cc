// The fake drivers' execution timeline on its own, without the limiter (fake_state.h): kernels run
// one at a time per device in launch order and take their length, capture records instead of
// running, graphs run their kernels, synchronisation and events wait for the timeline, NVML's
// per-process utilisation agrees with the fake's exact bookkeeping, and the compute workload
// (tests/limiter/programs/compute_workload.cc) measures what the limiter's checks rely on.
//
// The fakes are loaded into this test process (dlopen, RTLD_LOCAL) on one state file created
// before anything else (a global environment); every test works on its own device, waits until
// that device's engine is idle first, and asserts on the fake's own records rather than on wall
// time wherever it can.
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "tests/limiter/abi/acl_abi.h"
#include "tests/limiter/abi/cuda_abi.h"
#include "tests/limiter/preload_harness.h"

namespace limtest {
namespace {

using tideslice::fake::FakeBusyNs;
using tideslice::fake::FakeKernel;
using tideslice::fake::FakeNowNs;
using tideslice::fake::FakeState;

constexpr uint32_t kTimelineDevices = 8;
constexpr int64_t kUs = 1000, kMs = 1000000;

// ------------------------------------------------------------------ the fakes in this process

template <typename T>
T Fn(void* lib, const char* name) {
  void* p = lib ? dlsym(lib, name) : nullptr;
  if (!p) ADD_FAILURE() << "dlsym " << name << ": " << dlerror();
  return reinterpret_cast<T>(p);
}

struct Loaded {
  std::string dir;
  std::string state_path;
  FakeState* state = nullptr;
  void* cuda = nullptr;
  void* nvml = nullptr;
  void* acl = nullptr;
  void* rt = nullptr;
};
Loaded* g = nullptr;

class FakesEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g = new Loaded;
    char tmpl[] = "/tmp/tideslice-timeline-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    g->dir = tmpl;
    g->state_path = g->dir + "/fake-state";
    g->state = tideslice::fake::FakeStateCreate(g->state_path.c_str(), kTimelineDevices, 16 * kGiB, 0);
    ASSERT_NE(g->state, nullptr);
    setenv(tideslice::fake::kFakeStateEnv, g->state_path.c_str(), 1);
    const std::string fakes = TS_FAKES_DIR;
    g->cuda = dlopen((fakes + "/libcuda.so.1").c_str(), RTLD_NOW | RTLD_LOCAL);
    g->nvml = dlopen((fakes + "/libnvidia-ml.so.1").c_str(), RTLD_NOW | RTLD_LOCAL);
    g->acl = dlopen((fakes + "/libascendcl.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    g->rt = dlopen((fakes + "/libruntime.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_TRUE(g->cuda && g->nvml && g->acl && g->rt) << dlerror();
  }
  void TearDown() override {
    // The libraries stay loaded (their atexit handlers run at exit); only the files go.
    tideslice::fake::FakeStateClose(g->state);
    unlink(g->state_path.c_str());
    rmdir(g->dir.c_str());
  }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new FakesEnvironment);

// Waits until device `dev`'s engine has run everything queued on it.
void Quiesce(int dev) {
  tideslice::fake::FakeSleepUntil(g->state->engines[dev].engine_free_at_ns.load() + 1);
}

// Every kernel of device `dev` that started at or after `from`, oldest first.
std::vector<FakeKernel> KernelsSince(int dev, int64_t from) {
  std::vector<FakeKernel> out;
  tideslice::fake::FakeTimelineGuard guard(g->state);
  const auto& e = g->state->engines[dev];
  const uint64_t stored = std::min<uint64_t>(e.ring_count, tideslice::fake::kFakeDeviceRing);
  for (uint64_t i = stored; i > 0; --i) {
    const FakeKernel& k = g->state->kernel_ring[dev][(e.ring_count - i) % tideslice::fake::kFakeDeviceRing];
    if (k.start_ns >= from) out.push_back(k);
  }
  return out;
}

void ExpectBackToBack(const std::vector<FakeKernel>& ks) {
  for (size_t i = 1; i < ks.size(); ++i)
    ASSERT_GE(ks[i].start_ns, ks[i - 1].end_ns) << "kernel " << i << " overlaps the one before it";
}

// A query answering "not ready" must have been asked before `ready_at`, one answering "ready"
// after it: whichever answer the scheduler's timing produced, it must be the right one.
template <typename Query>
void ExpectReadyExactlyFrom(int64_t ready_at, Query query, int not_ready, int ready, const char* what) {
  const int64_t before = FakeNowNs();
  const int r = query();
  const int64_t after = FakeNowNs();
  if (r == not_ready) EXPECT_LT(before, ready_at) << what << " not ready after its work ended";
  else if (r == ready) EXPECT_GE(after, ready_at) << what << " ready before its work ended";
  else ADD_FAILURE() << what << " answered " << r;
}

uint64_t Busy(int dev, int pid, int64_t from, int64_t to) {
  uint64_t busy = 0;
  EXPECT_EQ(FakeBusyNs(g->state, dev, pid, from, to, &busy), 0) << "not exact";
  return busy;
}

// The CUDA driver functions of the fake, in this process.
struct Cu {
  decltype(&cuInit) Init;
  decltype(&cuDevicePrimaryCtxRetain) PrimaryCtxRetain;
  decltype(&cuCtxSetCurrent) CtxSetCurrent;
  decltype(&cuCtxSynchronize) CtxSynchronize;
  decltype(&cuModuleLoadData) ModuleLoadData;
  decltype(&cuModuleGetFunction) ModuleGetFunction;
  decltype(&cuStreamCreate) StreamCreate;
  decltype(&cuStreamDestroy_v2) StreamDestroy;
  decltype(&cuStreamSynchronize) StreamSynchronize;
  decltype(&cuStreamQuery) StreamQuery;
  decltype(&cuLaunchKernel) LaunchKernel;
  decltype(&cuLaunchKernel_ptsz) LaunchKernelPtsz;
  decltype(&cuLaunchKernelEx) LaunchKernelEx;
  decltype(&cuLaunchCooperativeKernel) LaunchCooperativeKernel;
  decltype(&cuLaunchHostFunc) LaunchHostFunc;
  decltype(&cuStreamBeginCapture_v2) BeginCapture;
  decltype(&cuStreamEndCapture) EndCapture;
  decltype(&cuStreamIsCapturing) IsCapturing;
  decltype(&cuGraphInstantiateWithFlags) InstantiateWithFlags;
  decltype(&cuGraphInstantiate) Instantiate;
  decltype(&cuGraphInstantiate_v2) InstantiateV2;
  decltype(&cuGraphLaunch) GraphLaunch;
  decltype(&cuGraphLaunch_ptsz) GraphLaunchPtsz;
  decltype(&cuGraphExecDestroy) GraphExecDestroy;
  decltype(&cuGraphDestroy) GraphDestroy;
  decltype(&cuEventCreate) EventCreate;
  decltype(&cuEventDestroy_v2) EventDestroy;
  decltype(&cuEventRecord) EventRecord;
  decltype(&cuEventRecord_ptsz) EventRecordPtsz;
  decltype(&cuEventRecordWithFlags) EventRecordWithFlags;
  decltype(&cuEventQuery) EventQuery;
  decltype(&cuEventSynchronize) EventSynchronize;
  decltype(&cuEventElapsedTime) ElapsedTime;
  decltype(&cuEventElapsedTime_v2) ElapsedTimeV2;
  decltype(&cuGetProcAddress_v2) GetProcAddress;
  decltype(&tsfake_set_kernel_us) SetKernelUs;
  decltype(&tsfake_last_kernel_start_ns) LastStart;
  decltype(&tsfake_last_kernel_end_ns) LastEnd;
  decltype(&tsfake_busy_ns) BusyNs;

  static Cu Load() {
    void* h = g->cuda;
    Cu c;
#define L(field, name) c.field = Fn<decltype(c.field)>(h, name)
    L(Init, "cuInit");
    L(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    L(CtxSetCurrent, "cuCtxSetCurrent");
    L(CtxSynchronize, "cuCtxSynchronize");
    L(ModuleLoadData, "cuModuleLoadData");
    L(ModuleGetFunction, "cuModuleGetFunction");
    L(StreamCreate, "cuStreamCreate");
    L(StreamDestroy, "cuStreamDestroy_v2");
    L(StreamSynchronize, "cuStreamSynchronize");
    L(StreamQuery, "cuStreamQuery");
    L(LaunchKernel, "cuLaunchKernel");
    L(LaunchKernelPtsz, "cuLaunchKernel_ptsz");
    L(LaunchKernelEx, "cuLaunchKernelEx");
    L(LaunchCooperativeKernel, "cuLaunchCooperativeKernel");
    L(LaunchHostFunc, "cuLaunchHostFunc");
    L(BeginCapture, "cuStreamBeginCapture_v2");
    L(EndCapture, "cuStreamEndCapture");
    L(IsCapturing, "cuStreamIsCapturing");
    L(InstantiateWithFlags, "cuGraphInstantiateWithFlags");
    L(Instantiate, "cuGraphInstantiate");
    L(InstantiateV2, "cuGraphInstantiate_v2");
    L(GraphLaunch, "cuGraphLaunch");
    L(GraphLaunchPtsz, "cuGraphLaunch_ptsz");
    L(GraphExecDestroy, "cuGraphExecDestroy");
    L(GraphDestroy, "cuGraphDestroy");
    L(EventCreate, "cuEventCreate");
    L(EventDestroy, "cuEventDestroy_v2");
    L(EventRecord, "cuEventRecord");
    L(EventRecordPtsz, "cuEventRecord_ptsz");
    L(EventRecordWithFlags, "cuEventRecordWithFlags");
    L(EventQuery, "cuEventQuery");
    L(EventSynchronize, "cuEventSynchronize");
    L(ElapsedTime, "cuEventElapsedTime");
    L(ElapsedTimeV2, "cuEventElapsedTime_v2");
    L(GetProcAddress, "cuGetProcAddress_v2");
    L(SetKernelUs, "tsfake_set_kernel_us");
    L(LastStart, "tsfake_last_kernel_start_ns");
    L(LastEnd, "tsfake_last_kernel_end_ns");
    L(BusyNs, "tsfake_busy_ns");
#undef L
    return c;
  }

  // The primary context of `dev`, current on this thread.
  void Use(int dev) {
    ASSERT_EQ(Init(0), CUDA_SUCCESS);
    CUcontext ctx = nullptr;
    ASSERT_EQ(PrimaryCtxRetain(&ctx, dev), CUDA_SUCCESS);
    ASSERT_EQ(CtxSetCurrent(ctx), CUDA_SUCCESS);
  }
  CUfunction Function(const char* name) {
    static const char kImage[] = "fake";
    CUmodule mod = nullptr;
    CUfunction f = nullptr;
    EXPECT_EQ(ModuleLoadData(&mod, kImage), CUDA_SUCCESS);
    EXPECT_EQ(ModuleGetFunction(&f, mod, name), CUDA_SUCCESS);
    return f;
  }
  CUresult Launch(CUfunction f, CUstream s) { return LaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, s, nullptr, nullptr); }
  int64_t last_start() { return static_cast<int64_t>(LastStart()); }
  int64_t last_end() { return static_cast<int64_t>(LastEnd()); }
};

// ------------------------------------------------------------------ CUDA in this process

TEST(LimiterFakesTimeline, KernelsRunOneAtATimeForTheirLengthInLaunchOrder) {
  constexpr int kDev = 0;
  Cu cu = Cu::Load();
  cu.Use(kDev);
  CUfunction spin200 = cu.Function("spin_200"), other = cu.Function("matmul");
  CUstream a = nullptr, b = nullptr;
  ASSERT_EQ(cu.StreamCreate(&a, CU_STREAM_DEFAULT), CUDA_SUCCESS);
  ASSERT_EQ(cu.StreamCreate(&b, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  Quiesce(kDev);
  const int64_t t0 = FakeNowNs();
  int64_t expected = 0;
  int64_t prev_end = 0;
  auto launch = [&](CUfunction f, CUstream s, int64_t length) {
    ASSERT_EQ(cu.Launch(f, s), CUDA_SUCCESS);
    EXPECT_EQ(cu.last_end() - cu.last_start(), length);
    EXPECT_GE(cu.last_start(), prev_end) << "a kernel started before the previous one ended";
    EXPECT_GE(cu.last_start(), t0);
    prev_end = cu.last_end();
    expected += length;
  };
  launch(spin200, a, 200 * kUs);
  launch(spin200, b, 200 * kUs);
  launch(other, a, 100 * kUs);  // any other name: 100 us
  cu.SetKernelUs(50);
  launch(spin200, b, 50 * kUs);  // the thread's override wins
  cu.SetKernelUs(0);
  for (int i = 0; i < 6; ++i) launch(spin200, i % 2 ? a : b, 200 * kUs);
  ASSERT_EQ(cu.LaunchKernelPtsz(spin200, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  expected += 200 * kUs;
  ExpectReadyExactlyFrom(prev_end, [&] { return cu.StreamQuery(a); }, CUDA_ERROR_NOT_READY, CUDA_SUCCESS,
                         "cuStreamQuery");
  ASSERT_EQ(cu.StreamSynchronize(a), CUDA_SUCCESS);
  EXPECT_GE(FakeNowNs(), prev_end) << "stream a's last kernel is the loop's last";
  ASSERT_EQ(cu.CtxSynchronize(), CUDA_SUCCESS);
  const int64_t t1 = FakeNowNs();
  EXPECT_GE(t1, cu.last_end()) << "cuCtxSynchronize returned before the work ended";
  EXPECT_EQ(cu.StreamQuery(a), CUDA_SUCCESS);

  // The fake's own records: back to back, all ours, exactly the lengths launched.
  std::vector<FakeKernel> ks = KernelsSince(kDev, t0);
  ASSERT_EQ(ks.size(), 11u);
  ExpectBackToBack(ks);
  for (const auto& k : ks) EXPECT_EQ(k.pid, getpid());
  EXPECT_EQ(Busy(kDev, getpid(), t0, t1), static_cast<uint64_t>(expected));
  EXPECT_EQ(Busy(kDev, -1, t0, t1), static_cast<uint64_t>(expected));
  // Partial windows are cut exactly.
  EXPECT_EQ(Busy(kDev, getpid(), ks[0].start_ns + 50 * kUs, ks[0].end_ns), static_cast<uint64_t>(150 * kUs));
  EXPECT_EQ(Busy(kDev, getpid(), ks[0].start_ns + 50 * kUs, ks[1].start_ns + 20 * kUs), static_cast<uint64_t>(170 * kUs));
  unsigned long long exported = 0;
  EXPECT_EQ(cu.BusyNs(kDev, 0, static_cast<unsigned long long>(t0), static_cast<unsigned long long>(t1), &exported), 0);
  EXPECT_EQ(exported, static_cast<unsigned long long>(expected)) << "pid 0 = the caller";
  EXPECT_EQ(cu.BusyNs(kDev, 999999, 0, static_cast<unsigned long long>(t1), &exported), 0);
  EXPECT_EQ(exported, 0u) << "a process the timeline does not know used nothing";
  EXPECT_EQ(cu.BusyNs(kTimelineDevices, -1, 0, 1, &exported), -1);
  EXPECT_EQ(cu.StreamDestroy(a), CUDA_SUCCESS);
  EXPECT_EQ(cu.StreamDestroy(b), CUDA_SUCCESS);
}

std::atomic<int> g_host_calls{0};
void CountHostCall(void* arg) { static_cast<std::atomic<int>*>(arg)->fetch_add(1); }

TEST(LimiterFakesTimeline, CaptureRecordsLaunchesAndGraphLaunchRunsThem) {
  constexpr int kDev = 1;
  Cu cu = Cu::Load();
  cu.Use(kDev);
  CUfunction spin300 = cu.Function("spin_300");
  CUstream s = nullptr;
  ASSERT_EQ(cu.StreamCreate(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  Quiesce(kDev);
  const uint64_t kernels_before = g->state->engines[kDev].kernels;
  const int64_t t0 = FakeNowNs();
  EXPECT_EQ(cu.BeginCapture(nullptr, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
  ASSERT_EQ(cu.BeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  EXPECT_EQ(cu.BeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_ILLEGAL_STATE);
  int status = -1;
  ASSERT_EQ(cu.IsCapturing(s, &status), CUDA_SUCCESS);
  EXPECT_EQ(status, CU_STREAM_CAPTURE_STATUS_ACTIVE);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cu.Launch(spin300, s), CUDA_SUCCESS);
  CUlaunchConfig cfg{};
  cfg.gridDimX = cfg.gridDimY = cfg.gridDimZ = cfg.blockDimX = cfg.blockDimY = cfg.blockDimZ = 1;
  cfg.hStream = s;
  ASSERT_EQ(cu.LaunchKernelEx(&cfg, spin300, nullptr, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(cu.LaunchCooperativeKernel(spin300, 1, 1, 1, 1, 1, 1, 0, s, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(cu.LaunchHostFunc(s, CountHostCall, &g_host_calls), CUDA_SUCCESS);
  EXPECT_EQ(cu.StreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
  CUgraph graph = nullptr;
  ASSERT_EQ(cu.EndCapture(s, &graph), CUDA_SUCCESS);
  ASSERT_NE(graph, nullptr);
  ASSERT_EQ(cu.IsCapturing(s, &status), CUDA_SUCCESS);
  EXPECT_EQ(status, CU_STREAM_CAPTURE_STATUS_NONE);
  EXPECT_EQ(g->state->engines[kDev].kernels, kernels_before) << "capture ran kernels";
  EXPECT_EQ(Busy(kDev, -1, t0, FakeNowNs() + 10 * kMs), 0u);
  EXPECT_EQ(g_host_calls.load(), 0);

  CUgraphExec e1 = nullptr, e2 = nullptr, e3 = nullptr;
  ASSERT_EQ(cu.InstantiateWithFlags(&e1, graph, 0), CUDA_SUCCESS);
  CUgraphNode error_node = reinterpret_cast<CUgraphNode>(0x1);
  char log[8] = "x";
  ASSERT_EQ(cu.Instantiate(&e2, graph, &error_node, log, sizeof log), CUDA_SUCCESS);
  EXPECT_EQ(error_node, nullptr);
  ASSERT_EQ(cu.InstantiateV2(&e3, graph, nullptr, nullptr, 0), CUDA_SUCCESS);

  ASSERT_EQ(cu.GraphLaunch(e1, s), CUDA_SUCCESS);
  EXPECT_EQ(cu.last_end() - cu.last_start(), 5 * 300 * kUs) << "a graph launch runs all its kernels, back to back";
  const int64_t first_end = cu.last_end();
  ASSERT_EQ(cu.GraphLaunchPtsz(e2, s), CUDA_SUCCESS);
  EXPECT_GE(cu.last_start(), first_end);
  ASSERT_EQ(cu.GraphLaunch(e3, s), CUDA_SUCCESS);
  ASSERT_EQ(cu.StreamSynchronize(s), CUDA_SUCCESS);
  EXPECT_GE(FakeNowNs(), cu.last_end());
  const int64_t t1 = FakeNowNs();
  EXPECT_EQ(g->state->engines[kDev].kernels, kernels_before + 15);
  std::vector<FakeKernel> ks = KernelsSince(kDev, t0);
  ASSERT_EQ(ks.size(), 15u);
  ExpectBackToBack(ks);
  EXPECT_EQ(Busy(kDev, getpid(), t0, t1), static_cast<uint64_t>(15 * 300 * kUs));
  // Each graph's host function runs once the stream has reached it.
  for (int i = 0; i < 1000 && g_host_calls.load() < 3; ++i) usleep(1000);
  EXPECT_EQ(g_host_calls.load(), 3);

  EXPECT_EQ(cu.GraphExecDestroy(e1), CUDA_SUCCESS);
  EXPECT_EQ(cu.GraphExecDestroy(e2), CUDA_SUCCESS);
  EXPECT_EQ(cu.GraphExecDestroy(e3), CUDA_SUCCESS);
  EXPECT_EQ(cu.GraphLaunch(e1, s), CUDA_ERROR_INVALID_HANDLE);
  EXPECT_EQ(cu.GraphDestroy(graph), CUDA_SUCCESS);
  EXPECT_EQ(cu.GraphDestroy(graph), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(cu.StreamDestroy(s), CUDA_SUCCESS);
}

TEST(LimiterFakesTimeline, EventsAreReachedWhenTheirStreamsWorkEnds) {
  constexpr int kDev = 2;
  Cu cu = Cu::Load();
  cu.Use(kDev);
  CUfunction spin1000 = cu.Function("spin_1000");
  CUstream s = nullptr;
  ASSERT_EQ(cu.StreamCreate(&s, CU_STREAM_DEFAULT), CUDA_SUCCESS);
  CUevent e0 = nullptr, e1 = nullptr, untimed = nullptr, never = nullptr;
  ASSERT_EQ(cu.EventCreate(&e0, CU_EVENT_DEFAULT), CUDA_SUCCESS);
  ASSERT_EQ(cu.EventCreate(&e1, CU_EVENT_BLOCKING_SYNC), CUDA_SUCCESS);
  ASSERT_EQ(cu.EventCreate(&untimed, CU_EVENT_DISABLE_TIMING), CUDA_SUCCESS);
  ASSERT_EQ(cu.EventCreate(&never, CU_EVENT_DEFAULT), CUDA_SUCCESS);
  Quiesce(kDev);
  const int64_t t_record = FakeNowNs();
  ASSERT_EQ(cu.EventRecord(e0, s), CUDA_SUCCESS);  // idle stream: the record time
  EXPECT_EQ(cu.EventQuery(e0), CUDA_SUCCESS);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cu.Launch(spin1000, s), CUDA_SUCCESS);
  const int64_t end = cu.last_end();
  ASSERT_EQ(cu.EventRecordPtsz(e1, s), CUDA_SUCCESS);
  ASSERT_EQ(cu.EventRecordWithFlags(untimed, s, 0), CUDA_SUCCESS);
  float ms = -1;
  ExpectReadyExactlyFrom(end, [&] { return cu.EventQuery(e1); }, CUDA_ERROR_NOT_READY, CUDA_SUCCESS, "cuEventQuery");
  ExpectReadyExactlyFrom(end, [&] { return cu.ElapsedTime(&ms, e0, e1); }, CUDA_ERROR_NOT_READY, CUDA_SUCCESS,
                         "cuEventElapsedTime");
  ASSERT_EQ(cu.EventSynchronize(e1), CUDA_SUCCESS);
  EXPECT_GE(FakeNowNs(), end) << "cuEventSynchronize returned before the kernels ended";
  EXPECT_EQ(cu.EventQuery(e1), CUDA_SUCCESS);
  ASSERT_EQ(cu.ElapsedTime(&ms, e0, e1), CUDA_SUCCESS);
  // e1 is the third kernel's end; e0 lies between t_record and the first kernel's start.
  EXPECT_GE(ms, 3.0f - 1e-3f);
  EXPECT_LE(ms, static_cast<float>(end - t_record) / 1e6f + 1e-3f);
  float ms2 = -1;
  ASSERT_EQ(cu.ElapsedTimeV2(&ms2, e0, e1), CUDA_SUCCESS);
  EXPECT_EQ(ms, ms2);
  EXPECT_EQ(cu.ElapsedTime(&ms, e0, untimed), CUDA_ERROR_INVALID_HANDLE) << "timing disabled";
  EXPECT_EQ(cu.ElapsedTime(&ms, e0, never), CUDA_ERROR_INVALID_HANDLE) << "never recorded";
  EXPECT_EQ(cu.EventQuery(never), CUDA_SUCCESS);
  EXPECT_EQ(cu.EventSynchronize(never), CUDA_SUCCESS);
  EXPECT_EQ(cu.EventRecordWithFlags(e0, s, 7), CUDA_ERROR_INVALID_VALUE);
  for (CUevent e : {e0, e1, untimed, never}) EXPECT_EQ(cu.EventDestroy(e), CUDA_SUCCESS);
  EXPECT_EQ(cu.EventQuery(e0), CUDA_ERROR_INVALID_HANDLE);
  EXPECT_EQ(cu.StreamDestroy(s), CUDA_SUCCESS);
}

TEST(LimiterFakesTimeline, ProcAddressAnswersLaunchGraphStreamAndEventLookups) {
  Cu cu = Cu::Load();
  ASSERT_EQ(cu.Init(0), CUDA_SUCCESS);
  struct Case {
    const char* base;
    int version;
    unsigned long long flags;
    const char* expected;  // nullptr: not found at this version
  };
  const Case cases[] = {
      {"cuLaunchKernelEx", 12060, 0, "cuLaunchKernelEx"},
      {"cuLaunchKernelEx", 12060, 2, "cuLaunchKernelEx_ptsz"},
      {"cuLaunchKernelEx", 11050, 0, nullptr},
      {"cuLaunchCooperativeKernel", 9000, 0, "cuLaunchCooperativeKernel"},
      {"cuLaunchCooperativeKernel", 12060, 2, "cuLaunchCooperativeKernel_ptsz"},
      {"cuLaunchHostFunc", 10000, 0, "cuLaunchHostFunc"},
      {"cuLaunchHostFunc", 12060, 2, "cuLaunchHostFunc_ptsz"},
      {"cuLaunchKernel", 12060, 2, "cuLaunchKernel_ptsz"},
      {"cuStreamBeginCapture", 10000, 0, "cuStreamBeginCapture"},
      {"cuStreamBeginCapture", 10010, 0, "cuStreamBeginCapture_v2"},
      {"cuStreamBeginCapture", 12060, 2, "cuStreamBeginCapture_v2_ptsz"},
      {"cuStreamEndCapture", 12060, 0, "cuStreamEndCapture"},
      {"cuStreamEndCapture", 12060, 2, "cuStreamEndCapture_ptsz"},
      {"cuStreamIsCapturing", 12060, 2, "cuStreamIsCapturing_ptsz"},
      {"cuStreamQuery", 12060, 2, "cuStreamQuery_ptsz"},
      {"cuStreamSynchronize", 12060, 0, "cuStreamSynchronize"},
      {"cuGraphInstantiate", 10000, 0, "cuGraphInstantiate"},
      {"cuGraphInstantiate", 11000, 0, "cuGraphInstantiate_v2"},
      {"cuGraphInstantiate", 12060, 0, "cuGraphInstantiateWithFlags"},
      {"cuGraphInstantiateWithFlags", 11040, 0, "cuGraphInstantiateWithFlags"},
      {"cuGraphLaunch", 10000, 0, "cuGraphLaunch"},
      {"cuGraphLaunch", 12060, 2, "cuGraphLaunch_ptsz"},
      {"cuGraphExecDestroy", 12060, 0, "cuGraphExecDestroy"},
      {"cuGraphDestroy", 12060, 0, "cuGraphDestroy"},
      {"cuEventCreate", 12060, 0, "cuEventCreate"},
      {"cuEventDestroy", 3020, 0, "cuEventDestroy"},
      {"cuEventDestroy", 12060, 0, "cuEventDestroy_v2"},
      {"cuEventRecord", 12060, 0, "cuEventRecord"},
      {"cuEventRecord", 12060, 2, "cuEventRecord_ptsz"},
      {"cuEventRecordWithFlags", 12060, 2, "cuEventRecordWithFlags_ptsz"},
      {"cuEventQuery", 12060, 0, "cuEventQuery"},
      {"cuEventSynchronize", 12060, 0, "cuEventSynchronize"},
      {"cuEventElapsedTime", 12060, 0, "cuEventElapsedTime"},
      {"cuEventElapsedTime", 12080, 0, "cuEventElapsedTime_v2"},
  };
  for (const Case& c : cases) {
    void* fn = reinterpret_cast<void*>(0x1);
    CUdriverProcAddressQueryResult status = -1;
    ASSERT_EQ(cu.GetProcAddress(c.base, &fn, c.version, c.flags, &status), CUDA_SUCCESS) << c.base;
    if (!c.expected) {
      EXPECT_EQ(fn, nullptr) << c.base << "@" << c.version;
      EXPECT_EQ(status, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT) << c.base;
      continue;
    }
    EXPECT_EQ(status, CU_GET_PROC_ADDRESS_SUCCESS) << c.base << "@" << c.version;
    EXPECT_EQ(fn, dlsym(g->cuda, c.expected)) << c.base << "@" << c.version << " flags " << c.flags << " should be "
                                              << c.expected;
  }
}

// ------------------------------------------------------------------ processes (the compute workload)

class LimiterFakesTimelineProcesses : public ::testing::Test {
 protected:
  std::vector<std::string> Env() const {
    return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", std::string("LD_LIBRARY_PATH=") + TS_FAKES_DIR,
            "TIDESLICE_FAKE_STATE=" + g->state_path};
  }
  Child Spawn(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {TS_COMPUTE_WORKLOAD};
    argv.insert(argv.end(), args.begin(), args.end());
    return Child::Spawn(argv, Env());
  }
  static double Share(const Result& r) { return strtod(r.Str("share").c_str(), nullptr); }
  static double Dbl(const Result& r, const std::string& k) { return strtod(r.Str(k).c_str(), nullptr); }
};

TEST_F(LimiterFakesTimelineProcesses, TwoSaturatingProcessesShareOneCardAndNeverOverlap) {
  constexpr int kDev = 3;
  Quiesce(kDev);
  const int64_t t0 = FakeNowNs();
  Child a = Spawn({"--device", "3", "saturate", "--kernel-us", "1000", "--seconds", "1"});
  Child b = Spawn({"--path", "dlopen", "--device", "3", "saturate", "--kernel-us", "1000", "--seconds", "1", "--launch",
                   "ex", "--streams", "2", "--inflight", "8"});
  const pid_t pa = a.pid(), pb = b.pid();
  Result ra = a.Wait(30), rb = b.Wait(30);
  const int64_t t1 = FakeNowNs();
  ASSERT_EQ(ra.exit_code, 0) << ra.Describe();
  ASSERT_EQ(rb.exit_code, 0) << rb.Describe();
  EXPECT_EQ(ra.Int("busy_exact"), 1);
  EXPECT_EQ(rb.Int("busy_exact"), 1);
  const double sa = Share(ra), sb = Share(rb);
  EXPECT_GT(sa, 0.35) << ra.Describe();
  EXPECT_LT(sa, 0.65) << ra.Describe();
  EXPECT_GT(sb, 0.35) << rb.Describe();
  EXPECT_LT(sb, 0.65) << rb.Describe();
  EXPECT_GT(sa + sb, 0.85) << "the card idled while both had work queued";
  EXPECT_LE(sa + sb, 1.02);
  // The fake's own records: no kernel overlaps another, and the busy times add up exactly.
  std::vector<FakeKernel> ks = KernelsSince(kDev, t0);
  ASSERT_GT(ks.size(), 500u);
  ExpectBackToBack(ks);
  EXPECT_EQ(Busy(kDev, pa, t0, t1), ra.U64("busy_ns"));
  EXPECT_EQ(Busy(kDev, pb, t0, t1), rb.U64("busy_ns"));
  EXPECT_EQ(Busy(kDev, -1, t0, t1), ra.U64("busy_ns") + rb.U64("busy_ns"));
  EXPECT_EQ(static_cast<uint64_t>(ra.Int("launches") + rb.Int("launches")) * 1000 * kUs,
            ra.U64("busy_ns") + rb.U64("busy_ns"));
}

TEST_F(LimiterFakesTimelineProcesses, GraphLaunchesOnlyAndEveryLaunchKindCount) {
  constexpr int kDev = 4;
  Quiesce(kDev);
  Child graph = Spawn({"--path", "procaddress_ptsz", "--device", "4", "saturate", "--kernel-us", "200", "--seconds",
                       "0.3", "--graph", "5", "--inflight", "8"});
  Result r = graph.Wait(30);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.Int("launches"), 5 * r.Int("graph_launches"));
  EXPECT_EQ(r.U64("busy_ns"), static_cast<uint64_t>(r.Int("launches")) * 200 * kUs);
  // Wall time (a starved CPU leaves the card idle): generous.
  EXPECT_GT(Share(r), 0.50) << "alone, a saturating workload keeps the card busy\n" << r.Describe();
  for (const char* launch : {"coop", "ex"}) {
    Result k = Spawn({"--device", "4", "saturate", "--kernel-us", "200", "--seconds", "0.1", "--launch", launch}).Wait(30);
    ASSERT_EQ(k.exit_code, 0) << k.Describe();
    EXPECT_EQ(k.U64("busy_ns"), static_cast<uint64_t>(k.Int("launches")) * 200 * kUs) << launch;
  }
}

TEST_F(LimiterFakesTimelineProcesses, NvmlProcessUtilizationAgreesWithTheTimeline) {
  constexpr int kDev = 5;
  auto init = Fn<decltype(&nvmlInit_v2)>(g->nvml, "nvmlInit_v2");
  auto handle_of = Fn<decltype(&nvmlDeviceGetHandleByIndex_v2)>(g->nvml, "nvmlDeviceGetHandleByIndex_v2");
  auto per_process = Fn<decltype(&nvmlDeviceGetProcessUtilization)>(g->nvml, "nvmlDeviceGetProcessUtilization");
  auto rates = Fn<decltype(&nvmlDeviceGetUtilizationRates)>(g->nvml, "nvmlDeviceGetUtilizationRates");
  ASSERT_EQ(init(), NVML_SUCCESS);
  nvmlDevice_t dev = nullptr;
  ASSERT_EQ(handle_of(kDev, &dev), NVML_SUCCESS);
  Quiesce(kDev);
  usleep(25000);
  unsigned count = 8;
  nvmlProcessUtilizationSample_t samples[8];
  const unsigned long long now_us = static_cast<unsigned long long>(FakeNowNs() / 1000);
  EXPECT_EQ(per_process(dev, samples, &count, now_us), NVML_ERROR_NOT_FOUND) << "an idle card has no samples";
  EXPECT_EQ(count, 0u);

  Child sat = Spawn({"--device", "5", "saturate", "--kernel-us", "500", "--seconds", "0.8"});
  Child bursty = Spawn({"--device", "5", "bursty", "--kernel-us", "1000", "--burst", "4", "--period-ms", "20",
                        "--seconds", "0.8"});
  usleep(200000);
  count = 0;
  ASSERT_EQ(per_process(dev, nullptr, &count, 0), NVML_ERROR_INSUFFICIENT_SIZE);
  EXPECT_GE(count, 1u);
  EXPECT_LE(count, 2u) << "two processes use the card";
  unsigned long long last_seen = 0;
  int rounds = 0;
  for (int i = 0; i < 4; ++i) {
    usleep(100000);
    count = 8;
    ASSERT_EQ(per_process(dev, samples, &count, last_seen), NVML_SUCCESS);
    ASSERT_GE(count, 1u);
    unsigned sum = 0;
    for (unsigned k = 0; k < count; ++k) {
      const auto& smp = samples[k];
      EXPECT_EQ(smp.memUtil + smp.encUtil + smp.decUtil, 0u);
      int64_t to = static_cast<int64_t>(smp.timeStamp) * 1000;
      int64_t from = last_seen ? static_cast<int64_t>(last_seen) * 1000 : to - 20 * kMs;
      double expected = 100.0 * static_cast<double>(Busy(kDev, static_cast<int>(smp.pid), from, to)) /
                        static_cast<double>(to - from);
      EXPECT_NEAR(smp.smUtil, expected, 2.0) << "pid " << smp.pid << " round " << i;
      EXPECT_TRUE(smp.pid == static_cast<unsigned>(sat.pid()) || smp.pid == static_cast<unsigned>(bursty.pid()));
      sum += smp.smUtil;
    }
    EXPECT_GE(sum, 50u) << "two workloads, one saturating: the card is busy";
    EXPECT_LE(sum, 101u) << "one engine: the processes' shares add up to at most the card";
    last_seen = samples[0].timeStamp;
    ++rounds;
  }
  EXPECT_EQ(rounds, 4);
  nvmlUtilization_t u{};
  const int64_t before = FakeNowNs();
  ASSERT_EQ(rates(dev, &u), NVML_SUCCESS);
  const int64_t after = FakeNowNs();
  // The device's busy time over the last 100 ms, whenever inside [before, after] it was taken.
  const double lo = 100.0 * static_cast<double>(Busy(kDev, -1, after - 100 * kMs, after)) / (100 * kMs);
  const double hi = 100.0 * static_cast<double>(Busy(kDev, -1, before - 100 * kMs, before)) / (100 * kMs);
  EXPECT_GE(u.gpu + 1.0 + static_cast<double>(after - before) / kMs, std::min(lo, hi));
  EXPECT_LE(u.gpu - 1.0 - static_cast<double>(after - before) / kMs, std::max(lo, hi));
  EXPECT_EQ(u.memory, 0u);
  Result rs = sat.Wait(30), rb = bursty.Wait(30);
  ASSERT_EQ(rs.exit_code, 0) << rs.Describe();
  ASSERT_EQ(rb.exit_code, 0) << rb.Describe();
}

TEST_F(LimiterFakesTimelineProcesses, BurstyDelaysGrowBehindASaturatingNeighbour) {
  constexpr int kDev = 6;
  Quiesce(kDev);
  const std::vector<std::string> bursty = {"--device", "6", "bursty", "--kernel-us", "1000", "--burst", "5",
                                           "--period-ms", "20", "--seconds", "0.5"};
  Result alone = Spawn(bursty).Wait(30);
  ASSERT_EQ(alone.exit_code, 0) << alone.Describe();
  // Kernel k of a burst waits for the k before it: delays 0..4 ms, p50 about 2 ms.
  EXPECT_NEAR(Share(alone), 0.25, 0.06) << alone.Describe();
  EXPECT_GE(Dbl(alone, "delay_p50_us"), 1000.0) << alone.Describe();
  EXPECT_LE(Dbl(alone, "delay_p50_us"), 3000.0) << alone.Describe();
  EXPECT_GE(Dbl(alone, "delay_max_us"), 3000.0) << alone.Describe();
  EXPECT_GE(alone.Int("bursts"), 20);
  EXPECT_EQ(alone.Int("launches"), 5 * alone.Int("bursts"));

  Child neighbour = Spawn({"--device", "6", "saturate", "--kernel-us", "1000", "--seconds", "0.8", "--inflight", "8"});
  usleep(100000);
  Result crowded = Spawn(bursty).Wait(30);
  Result rn = neighbour.Wait(30);
  ASSERT_EQ(crowded.exit_code, 0) << crowded.Describe();
  ASSERT_EQ(rn.exit_code, 0) << rn.Describe();
  // Behind 8 to 16 queued 1 ms kernels of the neighbour.
  EXPECT_GE(Dbl(crowded, "delay_p99_us"), Dbl(alone, "delay_p99_us") + 5000.0)
      << alone.Describe() << crowded.Describe();
}

// ------------------------------------------------------------------ Ascend

TEST(LimiterFakesTimelineAscend, EveryExecutionEntryPointRunsOneKernelOnTheTimeline) {
  constexpr int kDev = 7;
  void* acl = g->acl;
  void* rt = g->rt;
  auto init = Fn<decltype(&aclInit)>(acl, "aclInit");
  auto set_device = Fn<decltype(&aclrtSetDevice)>(acl, "aclrtSetDevice");
  auto create_stream = Fn<decltype(&aclrtCreateStream)>(acl, "aclrtCreateStream");
  auto destroy_stream = Fn<decltype(&aclrtDestroyStream)>(acl, "aclrtDestroyStream");
  auto sync_stream = Fn<decltype(&aclrtSynchronizeStream)>(acl, "aclrtSynchronizeStream");
  auto create_event = Fn<decltype(&aclrtCreateEvent)>(acl, "aclrtCreateEvent");
  auto record_event = Fn<decltype(&aclrtRecordEvent)>(acl, "aclrtRecordEvent");
  auto query_event = Fn<decltype(&aclrtQueryEventStatus)>(acl, "aclrtQueryEventStatus");
  auto sync_event = Fn<decltype(&aclrtSynchronizeEvent)>(acl, "aclrtSynchronizeEvent");
  auto elapsed = Fn<decltype(&aclrtEventElapsedTime)>(acl, "aclrtEventElapsedTime");
  auto destroy_event = Fn<decltype(&aclrtDestroyEvent)>(acl, "aclrtDestroyEvent");
  auto set_us = Fn<decltype(&tsfake_set_kernel_us)>(acl, "tsfake_set_kernel_us");
  auto last_start = Fn<decltype(&tsfake_last_kernel_start_ns)>(acl, "tsfake_last_kernel_start_ns");
  auto last_end = Fn<decltype(&tsfake_last_kernel_end_ns)>(acl, "tsfake_last_kernel_end_ns");
  auto model_sync = Fn<decltype(&aclmdlExecute)>(acl, "aclmdlExecute");
  ASSERT_TRUE(init && set_device && create_stream && set_us && last_start && last_end && model_sync);
  int r = init(nullptr);
  ASSERT_TRUE(r == ACL_SUCCESS || r == ACL_ERROR_REPEAT_INITIALIZE) << r;
  ASSERT_EQ(set_device(kDev), ACL_SUCCESS);
  aclrtStream s = nullptr;
  ASSERT_EQ(create_stream(&s), ACL_SUCCESS);
  aclrtEvent e0 = nullptr, e1 = nullptr;
  ASSERT_EQ(create_event(&e0), ACL_SUCCESS);
  ASSERT_EQ(create_event(&e1), ACL_SUCCESS);
  Quiesce(kDev);
  const int64_t t0 = FakeNowNs();
  set_us(300);
  ASSERT_EQ(record_event(e0, s), ACL_SUCCESS);
  static int token;
  void* f = &token;
  std::vector<std::pair<const char*, std::function<int()>>> launches = {
      {"aclrtLaunchKernel", [&] { return Fn<decltype(&aclrtLaunchKernel)>(acl, "aclrtLaunchKernel")(f, 1, nullptr, 0, s); }},
      {"aclrtLaunchKernelWithConfig",
       [&] {
         return Fn<decltype(&aclrtLaunchKernelWithConfig)>(acl, "aclrtLaunchKernelWithConfig")(f, 1, s, nullptr, nullptr,
                                                                                               nullptr);
       }},
      {"aclmdlExecuteAsync",
       [&] { return Fn<decltype(&aclmdlExecuteAsync)>(acl, "aclmdlExecuteAsync")(3, nullptr, nullptr, s); }},
      {"aclopExecute",
       [&] {
         return Fn<decltype(&aclopExecute)>(acl, "aclopExecute")("Add", 0, nullptr, nullptr, 0, nullptr, nullptr,
                                                                  nullptr, s);
       }},
      {"aclopExecuteV2",
       [&] {
         return Fn<decltype(&aclopExecuteV2)>(acl, "aclopExecuteV2")("Add", 0, nullptr, nullptr, 0, nullptr, nullptr,
                                                                      nullptr, s);
       }},
      {"aclopCompileAndExecute",
       [&] {
         return Fn<decltype(&aclopCompileAndExecute)>(acl, "aclopCompileAndExecute")(
             "Add", 0, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 1, 0, nullptr, s);
       }},
      {"aclopCompileAndExecuteV2",
       [&] {
         return Fn<decltype(&aclopCompileAndExecuteV2)>(acl, "aclopCompileAndExecuteV2")(
             "Add", 0, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 1, 0, nullptr, s);
       }},
      {"rtKernelLaunch", [&] { return Fn<decltype(&rtKernelLaunch)>(rt, "rtKernelLaunch")(f, 1, nullptr, 0, nullptr, s); }},
      {"rtKernelLaunchWithFlag",
       [&] { return Fn<decltype(&rtKernelLaunchWithFlag)>(rt, "rtKernelLaunchWithFlag")(f, 1, nullptr, nullptr, s, 0); }},
      {"rtKernelLaunchWithFlagV2",
       [&] {
         return Fn<decltype(&rtKernelLaunchWithFlagV2)>(rt, "rtKernelLaunchWithFlagV2")(f, 1, nullptr, nullptr, s, 0,
                                                                                         nullptr);
       }},
      {"rtKernelLaunchWithHandle",
       [&] {
         return Fn<decltype(&rtKernelLaunchWithHandle)>(rt, "rtKernelLaunchWithHandle")(f, 0, 1, nullptr, nullptr, s,
                                                                                         nullptr);
       }},
      {"rtKernelLaunchWithHandleV2",
       [&] {
         return Fn<decltype(&rtKernelLaunchWithHandleV2)>(rt, "rtKernelLaunchWithHandleV2")(f, 0, 1, nullptr, nullptr,
                                                                                             s, nullptr);
       }},
      {"rtLaunchKernelByFuncHandle",
       [&] { return Fn<decltype(&rtLaunchKernelByFuncHandle)>(rt, "rtLaunchKernelByFuncHandle")(f, 1, nullptr, s); }},
      {"rtLaunchKernelByFuncHandleV2",
       [&] {
         return Fn<decltype(&rtLaunchKernelByFuncHandleV2)>(rt, "rtLaunchKernelByFuncHandleV2")(f, 1, nullptr, s,
                                                                                                 nullptr);
       }},
      {"rtLaunchKernelByFuncHandleV3",
       [&] {
         return Fn<decltype(&rtLaunchKernelByFuncHandleV3)>(rt, "rtLaunchKernelByFuncHandleV3")(f, 1, nullptr, s,
                                                                                                 nullptr);
       }},
      {"rtModelExecute", [&] { return Fn<decltype(&rtModelExecute)>(rt, "rtModelExecute")(f, s, 0); }},
  };
  int64_t prev_end = 0;
  for (auto& [name, launch] : launches) {
    ASSERT_EQ(launch(), ACL_SUCCESS) << name;
    EXPECT_EQ(static_cast<int64_t>(last_end() - last_start()), 300 * kUs) << name;
    EXPECT_GE(static_cast<int64_t>(last_start()), prev_end) << name;
    prev_end = static_cast<int64_t>(last_end());
  }
  ASSERT_EQ(record_event(e1, s), ACL_SUCCESS);
  aclrtEventRecordedStatus st = -1;
  ExpectReadyExactlyFrom(
      prev_end,
      [&] {
        EXPECT_EQ(query_event(e1, &st), ACL_SUCCESS);
        return st;
      },
      ACL_EVENT_RECORDED_STATUS_NOT_READY, ACL_EVENT_RECORDED_STATUS_COMPLETE, "aclrtQueryEventStatus");
  ASSERT_EQ(sync_event(e1), ACL_SUCCESS);
  EXPECT_GE(FakeNowNs(), prev_end);
  ASSERT_EQ(query_event(e1, &st), ACL_SUCCESS);
  EXPECT_EQ(st, ACL_EVENT_RECORDED_STATUS_COMPLETE);
  float ms = 0;
  ASSERT_EQ(elapsed(&ms, e0, e1), ACL_SUCCESS);
  EXPECT_GE(ms, 16 * 0.3f - 1e-3f);
  EXPECT_LE(ms, static_cast<float>(prev_end - t0) / 1e6f + 1e-3f);
  const int64_t t1 = FakeNowNs();
  EXPECT_EQ(Busy(kDev, getpid(), t0, t1), static_cast<uint64_t>(16 * 300 * kUs));
  // The device-wide utilisation: 4.8 ms of the last 100 ms, whenever inside [before, after].
  auto rate = Fn<decltype(&aclrtGetDeviceUtilizationRate)>(acl, "aclrtGetDeviceUtilizationRate");
  aclrtUtilizationInfo util{};
  const int64_t before = FakeNowNs();
  ASSERT_EQ(rate(kDev, &util), ACL_SUCCESS);
  const int64_t after = FakeNowNs();
  const double lo = 100.0 * static_cast<double>(Busy(kDev, -1, after - 100 * kMs, after)) / (100 * kMs);
  const double hi = 100.0 * static_cast<double>(Busy(kDev, -1, before - 100 * kMs, before)) / (100 * kMs);
  EXPECT_GE(util.cubeUtilization + 1.0, std::min(lo, hi));
  EXPECT_LE(util.cubeUtilization - 1.0, std::max(lo, hi));
  EXPECT_EQ(util.vectorUtilization, util.cubeUtilization);
  EXPECT_EQ(util.memoryUtilization, -1);
  util.utilizationExtend = &util;
  EXPECT_EQ(rate(kDev, &util), ACL_ERROR_INVALID_PARAM);
  util.utilizationExtend = nullptr;
  EXPECT_EQ(rate(static_cast<int32_t>(kTimelineDevices), &util), ACL_ERROR_RT_INVALID_DEVICEID);
  std::vector<FakeKernel> ks = KernelsSince(kDev, t0);
  ASSERT_EQ(ks.size(), 16u);
  ExpectBackToBack(ks);

  // aclmdlExecute is synchronous: it returns once its kernel has ended. The default length is
  // 100 us once the override is cleared.
  set_us(0);
  ASSERT_EQ(model_sync(1, nullptr, nullptr), ACL_SUCCESS);
  EXPECT_EQ(static_cast<int64_t>(last_end() - last_start()), 100 * kUs);
  EXPECT_GE(FakeNowNs(), static_cast<int64_t>(last_end()));
  ASSERT_EQ(Fn<decltype(&aclrtLaunchKernel)>(acl, "aclrtLaunchKernel")(f, 1, nullptr, 0, s), ACL_SUCCESS);
  ASSERT_EQ(sync_stream(s), ACL_SUCCESS);
  EXPECT_GE(FakeNowNs(), static_cast<int64_t>(last_end()));
  EXPECT_EQ(Fn<decltype(&aclrtLaunchKernel)>(acl, "aclrtLaunchKernel")(nullptr, 1, nullptr, 0, s),
            ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(destroy_event(e0), ACL_SUCCESS);
  EXPECT_EQ(destroy_event(e1), ACL_SUCCESS);
  EXPECT_EQ(destroy_stream(s), ACL_SUCCESS);
}

TEST_F(LimiterFakesTimelineProcesses, TwoAscendProcessesShareOneCard) {
  constexpr int kDev = 7;
  Quiesce(kDev);
  const int64_t t0 = FakeNowNs();
  Child a = Spawn({"--vendor", "huawei", "--device", "7", "saturate", "--kernel-us", "500", "--seconds", "0.8"});
  Child b = Spawn({"--vendor", "huawei", "--device", "7", "saturate", "--kernel-us", "500", "--seconds", "0.8",
                   "--launch", "rt_handle"});
  Result ra = a.Wait(30), rb = b.Wait(30);
  const int64_t t1 = FakeNowNs();
  ASSERT_EQ(ra.exit_code, 0) << ra.Describe();
  ASSERT_EQ(rb.exit_code, 0) << rb.Describe();
  EXPECT_GT(Share(ra), 0.35) << ra.Describe();
  EXPECT_LT(Share(ra), 0.65) << ra.Describe();
  EXPECT_GT(Share(rb), 0.35) << rb.Describe();
  EXPECT_LT(Share(rb), 0.65) << rb.Describe();
  EXPECT_GT(Share(ra) + Share(rb), 0.85);
  ExpectBackToBack(KernelsSince(kDev, t0));
  EXPECT_EQ(Busy(kDev, -1, t0, t1), ra.U64("busy_ns") + rb.U64("busy_ns"));
  for (const char* launch : {"model", "op", "compilev2", "rt_func", "kernelcfg"}) {
    Result k = Spawn({"--vendor", "huawei", "--device", "7", "saturate", "--kernel-us", "200", "--seconds", "0.05",
                      "--launch", launch})
                   .Wait(30);
    ASSERT_EQ(k.exit_code, 0) << k.Describe();
    EXPECT_EQ(k.U64("busy_ns"), static_cast<uint64_t>(k.Int("launches")) * 200 * kUs) << launch;
  }
}

}  // namespace
}  // namespace limtest
