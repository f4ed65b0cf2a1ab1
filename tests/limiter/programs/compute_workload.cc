// A compute workload for the limiter's compute-share checks, against the fake drivers'
// execution timeline (tests/limiter/fakes/fake_state.h). It reaches the driver as frameworks do:
// NVIDIA through dlopen("libcuda.so.1") and cuGetProcAddress_v2 (or plain dlsym), Huawei through
// dlopen("libascendcl.so") (and "libruntime.so" for the rt launch calls) and dlsym.
//
//   compute_workload [--vendor nvidia|huawei] [--path procaddress_v2|procaddress_ptsz|dlopen]
//                    [--device i] COMMAND ...
//   saturate --kernel-us D --seconds S [--streams N] [--inflight K] [--graph G] [--launch L]
//       launch kernels of D us as fast as allowed for S seconds, one thread and stream per N;
//       every K launches an event is recorded and the one recorded K launches earlier is waited
//       for (as frameworks do every iteration), so between K and 2K launches are queued and the
//       stream never runs dry; --graph G captures G kernels into a graph once and then launches
//       only the graph (NVIDIA); --launch: plain|ex|coop (NVIDIA: cuLaunchKernel, cuLaunchKernelEx,
//       cuLaunchCooperativeKernel), kernel|kernelcfg|model|op|opv2|compile|compilev2|rt_launch|
//       rt_flag|rt_handle|rt_func (Huawei: aclrtLaunchKernel, aclrtLaunchKernelWithConfig,
//       aclmdlExecuteAsync, aclopExecute, aclopExecuteV2, aclopCompileAndExecute[V2],
//       rtKernelLaunch, rtKernelLaunchWithFlagV2, rtKernelLaunchWithHandleV2,
//       rtLaunchKernelByFuncHandleV3).
//   bursty --kernel-us D --burst B --period-ms P --seconds S [--launch L]
//       every P ms launch B kernels back to back, then wait for them; each kernel's queueing
//       delay is its start on the device (tsfake_last_kernel_start_ns) minus the time the
//       workload called the launch function.
//
// Output (`key=value`): busy_ns, wall_ns, share (busy / wall of this process's own device time
// over its run, from the fake's tsfake_busy_ns), busy_exact, t0_ns / t1_ns (the run, CLOCK_MONOTONIC),
// launches (kernels), graph_launches,
// and for bursty bursts, delay_p50_us, delay_p99_us, delay_max_us. Exit status 0 when the run
// completed, 3 on an unexpected error.
#include <dlfcn.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/limiter/abi/acl_abi.h"
#include "tests/limiter/abi/cuda_abi.h"
#include "tests/limiter/programs/workload_common.h"

using namespace workload;

namespace {

const char* Usage() {
  return "usage: compute_workload [--vendor nvidia|huawei] [--path procaddress_v2|procaddress_ptsz|dlopen] [--device i]\n"
         "  saturate --kernel-us D --seconds S [--streams N] [--inflight K] [--graph G] [--launch L]\n"
         "  bursty --kernel-us D --burst B --period-ms P --seconds S [--launch L]\n";
}

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void SleepUntil(int64_t t) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(t / 1000000000);
  ts.tv_nsec = static_cast<long>(t % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

template <typename T>
void Sym(void* h, T& slot, const char* name) {
  slot = reinterpret_cast<T>(dlsym(h, name));
  if (!slot) Die("dlsym(%s) failed: %s", name, dlerror());
}

// The fake-only exports every fake has.
struct FakeExports {
  decltype(&tsfake_set_kernel_us) SetKernelUs = nullptr;
  decltype(&tsfake_last_kernel_start_ns) LastStart = nullptr;
  decltype(&tsfake_busy_ns) Busy = nullptr;
};

// What a workload needs of a device, whatever the vendor. One Lane per thread and stream.
class Lane {
 public:
  virtual ~Lane() = default;
  virtual void Launch() = 0;                 // one kernel (or graph)
  virtual void RecordEvent(int i) = 0;       // event i (0/1) at the stream's current end
  virtual void WaitEvent(int i) = 0;
  virtual void Synchronize() = 0;            // the stream's work
  virtual int KernelsPerLaunch() const { return 1; }
};

class Device {
 public:
  virtual ~Device() = default;
  // A lane for the calling thread (a stream of its own); for NVIDIA with `graph` > 0 the lane
  // launches a graph of `graph` captured kernels.
  virtual std::unique_ptr<Lane> MakeLane(int graph) = 0;
  FakeExports fake;
};

// ------------------------------------------------------------------ NVIDIA

struct CuFns {
  decltype(&cuInit) Init = nullptr;
  decltype(&cuDeviceGet) DeviceGet = nullptr;
  decltype(&cuDevicePrimaryCtxRetain) PrimaryCtxRetain = nullptr;
  decltype(&cuCtxSetCurrent) CtxSetCurrent = nullptr;
  decltype(&cuModuleLoadData) ModuleLoadData = nullptr;
  decltype(&cuModuleGetFunction) ModuleGetFunction = nullptr;
  decltype(&cuStreamCreate) StreamCreate = nullptr;
  decltype(&cuStreamSynchronize) StreamSynchronize = nullptr;
  decltype(&cuLaunchKernel) LaunchKernel = nullptr;
  decltype(&cuLaunchKernelEx) LaunchKernelEx = nullptr;
  decltype(&cuLaunchCooperativeKernel) LaunchCooperativeKernel = nullptr;
  decltype(&cuStreamBeginCapture_v2) StreamBeginCapture = nullptr;
  decltype(&cuStreamEndCapture) StreamEndCapture = nullptr;
  decltype(&cuStreamIsCapturing) StreamIsCapturing = nullptr;
  decltype(&cuGraphInstantiateWithFlags) GraphInstantiate = nullptr;
  decltype(&cuGraphLaunch) GraphLaunch = nullptr;
  decltype(&cuEventCreate) EventCreate = nullptr;
  decltype(&cuEventRecord) EventRecord = nullptr;
  decltype(&cuEventSynchronize) EventSynchronize = nullptr;
};

enum class CuLaunch { kPlain, kEx, kCoop };

class CudaDevice : public Device {
 public:
  CudaDevice(const std::string& path, int device, unsigned kernel_us, const std::string& launch)
      : kernel_us_(kernel_us) {
    if (launch == "plain" || launch.empty()) launch_ = CuLaunch::kPlain;
    else if (launch == "ex") launch_ = CuLaunch::kEx;
    else if (launch == "coop") launch_ = CuLaunch::kCoop;
    else Die("--launch %s: NVIDIA takes plain, ex or coop", launch.c_str());
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) Die("dlopen libcuda.so.1: %s", dlerror());
    if (path == "dlopen") {
      Sym(h, fn_.Init, "cuInit");
      Sym(h, fn_.DeviceGet, "cuDeviceGet");
      Sym(h, fn_.PrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
      Sym(h, fn_.CtxSetCurrent, "cuCtxSetCurrent");
      Sym(h, fn_.ModuleLoadData, "cuModuleLoadData");
      Sym(h, fn_.ModuleGetFunction, "cuModuleGetFunction");
      Sym(h, fn_.StreamCreate, "cuStreamCreate");
      Sym(h, fn_.StreamSynchronize, "cuStreamSynchronize");
      Sym(h, fn_.LaunchKernel, "cuLaunchKernel");
      Sym(h, fn_.LaunchKernelEx, "cuLaunchKernelEx");
      Sym(h, fn_.LaunchCooperativeKernel, "cuLaunchCooperativeKernel");
      Sym(h, fn_.StreamBeginCapture, "cuStreamBeginCapture_v2");
      Sym(h, fn_.StreamEndCapture, "cuStreamEndCapture");
      Sym(h, fn_.StreamIsCapturing, "cuStreamIsCapturing");
      Sym(h, fn_.GraphInstantiate, "cuGraphInstantiateWithFlags");
      Sym(h, fn_.GraphLaunch, "cuGraphLaunch");
      Sym(h, fn_.EventCreate, "cuEventCreate");
      Sym(h, fn_.EventRecord, "cuEventRecord");
      Sym(h, fn_.EventSynchronize, "cuEventSynchronize");
    } else if (path == "procaddress_v2" || path == "procaddress_ptsz") {
      decltype(&cuGetProcAddress_v2) gpa = nullptr;
      Sym(h, gpa, "cuGetProcAddress_v2");
      // As cudart 12 does: the entry point asks for itself first.
      void* self = nullptr;
      CUdriverProcAddressQueryResult st = -1;
      if (gpa("cuGetProcAddress", &self, 12060, 0, &st) != CUDA_SUCCESS || !self) Die("cuGetProcAddress self-query");
      gpa = reinterpret_cast<decltype(gpa)>(self);
      const cuuint64_t flags =
          path == "procaddress_ptsz" ? static_cast<cuuint64_t>(CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) : 0;
      auto get = [&](const char* base, auto& slot) {
        void* p = nullptr;
        CUdriverProcAddressQueryResult s = -1;
        if (gpa(base, &p, 12060, flags, &s) != CUDA_SUCCESS || !p || s != CU_GET_PROC_ADDRESS_SUCCESS)
          Die("cuGetProcAddress_v2(%s) failed (status %d)", base, s);
        slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(p);
      };
      get("cuInit", fn_.Init);
      get("cuDeviceGet", fn_.DeviceGet);
      get("cuDevicePrimaryCtxRetain", fn_.PrimaryCtxRetain);
      get("cuCtxSetCurrent", fn_.CtxSetCurrent);
      get("cuModuleLoadData", fn_.ModuleLoadData);
      get("cuModuleGetFunction", fn_.ModuleGetFunction);
      get("cuStreamCreate", fn_.StreamCreate);
      get("cuStreamSynchronize", fn_.StreamSynchronize);
      get("cuLaunchKernel", fn_.LaunchKernel);
      get("cuLaunchKernelEx", fn_.LaunchKernelEx);
      get("cuLaunchCooperativeKernel", fn_.LaunchCooperativeKernel);
      get("cuStreamBeginCapture", fn_.StreamBeginCapture);
      get("cuStreamEndCapture", fn_.StreamEndCapture);
      get("cuStreamIsCapturing", fn_.StreamIsCapturing);
      get("cuGraphInstantiateWithFlags", fn_.GraphInstantiate);
      get("cuGraphLaunch", fn_.GraphLaunch);
      get("cuEventCreate", fn_.EventCreate);
      get("cuEventRecord", fn_.EventRecord);
      get("cuEventSynchronize", fn_.EventSynchronize);
    } else {
      Die("--path %s: use procaddress_v2, procaddress_ptsz or dlopen", path.c_str());
    }
    Sym(h, fake.SetKernelUs, "tsfake_set_kernel_us");
    Sym(h, fake.LastStart, "tsfake_last_kernel_start_ns");
    Sym(h, fake.Busy, "tsfake_busy_ns");
    Check(fn_.Init(0), "cuInit");
    CUdevice dev = 0;
    Check(fn_.DeviceGet(&dev, device), "cuDeviceGet");
    Check(fn_.PrimaryCtxRetain(&ctx_, dev), "cuDevicePrimaryCtxRetain");
    Check(fn_.CtxSetCurrent(ctx_), "cuCtxSetCurrent");
    static const char kImage[] = "// fake PTX\n";
    CUmodule mod = nullptr;
    Check(fn_.ModuleLoadData(&mod, kImage), "cuModuleLoadData");
    std::string name = "spin_" + std::to_string(kernel_us);
    Check(fn_.ModuleGetFunction(&function_, mod, name.c_str()), "cuModuleGetFunction");
  }

  static void Check(CUresult r, const char* what) {
    if (r != CUDA_SUCCESS) Die("%s failed: %d", what, r);
  }

  class CudaLane : public Lane {
   public:
    CudaLane(CudaDevice* d, int graph) : d_(d), graph_kernels_(graph) {
      Check(d->fn_.CtxSetCurrent(d->ctx_), "cuCtxSetCurrent");
      Check(d->fn_.StreamCreate(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
      for (auto& e : events_) Check(d->fn_.EventCreate(&e, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
      if (graph > 0) {
        Check(d->fn_.StreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture_v2");
        int status = 0;
        Check(d->fn_.StreamIsCapturing(stream_, &status), "cuStreamIsCapturing");
        if (status != CU_STREAM_CAPTURE_STATUS_ACTIVE) Die("stream not capturing after cuStreamBeginCapture");
        for (int i = 0; i < graph; ++i) LaunchKernel();
        CUgraph g = nullptr;
        Check(d->fn_.StreamEndCapture(stream_, &g), "cuStreamEndCapture");
        Check(d->fn_.GraphInstantiate(&exec_, g, 0), "cuGraphInstantiateWithFlags");
      }
    }
    void LaunchKernel() {
      CudaDevice* d = d_;
      switch (d->launch_) {
        case CuLaunch::kPlain:
          Check(d->fn_.LaunchKernel(d->function_, 1, 1, 1, 32, 1, 1, 0, stream_, nullptr, nullptr), "cuLaunchKernel");
          break;
        case CuLaunch::kEx: {
          CUlaunchConfig cfg{};
          cfg.gridDimX = cfg.gridDimY = cfg.gridDimZ = 1;
          cfg.blockDimX = 32;
          cfg.blockDimY = cfg.blockDimZ = 1;
          cfg.hStream = stream_;
          Check(d->fn_.LaunchKernelEx(&cfg, d->function_, nullptr, nullptr), "cuLaunchKernelEx");
          break;
        }
        case CuLaunch::kCoop:
          Check(d->fn_.LaunchCooperativeKernel(d->function_, 1, 1, 1, 32, 1, 1, 0, stream_, nullptr),
                "cuLaunchCooperativeKernel");
          break;
      }
    }
    void Launch() override {
      if (exec_) Check(d_->fn_.GraphLaunch(exec_, stream_), "cuGraphLaunch");
      else LaunchKernel();
    }
    void RecordEvent(int i) override { Check(d_->fn_.EventRecord(events_[i], stream_), "cuEventRecord"); }
    void WaitEvent(int i) override { Check(d_->fn_.EventSynchronize(events_[i]), "cuEventSynchronize"); }
    void Synchronize() override { Check(d_->fn_.StreamSynchronize(stream_), "cuStreamSynchronize"); }
    int KernelsPerLaunch() const override { return exec_ ? graph_kernels_ : 1; }

   private:
    CudaDevice* d_;
    int graph_kernels_;
    CUstream stream_ = nullptr;
    CUevent events_[2] = {};
    CUgraphExec exec_ = nullptr;
  };

  std::unique_ptr<Lane> MakeLane(int graph) override { return std::make_unique<CudaLane>(this, graph); }

 private:
  unsigned kernel_us_;
  CuLaunch launch_ = CuLaunch::kPlain;
  CuFns fn_;
  CUcontext ctx_ = nullptr;
  CUfunction function_ = nullptr;
};

// ------------------------------------------------------------------ Huawei

struct AclFns {
  decltype(&aclInit) Init = nullptr;
  decltype(&aclrtSetDevice) SetDevice = nullptr;
  decltype(&aclrtCreateStream) CreateStream = nullptr;
  decltype(&aclrtSynchronizeStream) SynchronizeStream = nullptr;
  decltype(&aclrtCreateEvent) CreateEvent = nullptr;
  decltype(&aclrtRecordEvent) RecordEvent = nullptr;
  decltype(&aclrtSynchronizeEvent) SynchronizeEvent = nullptr;
  decltype(&aclrtLaunchKernel) LaunchKernel = nullptr;
  decltype(&aclrtLaunchKernelWithConfig) LaunchKernelWithConfig = nullptr;
  decltype(&aclmdlExecuteAsync) ExecuteAsync = nullptr;
  decltype(&aclopExecute) OpExecute = nullptr;
  decltype(&aclopExecuteV2) OpExecuteV2 = nullptr;
  decltype(&aclopCompileAndExecute) CompileAndExecute = nullptr;
  decltype(&aclopCompileAndExecuteV2) CompileAndExecuteV2 = nullptr;
  decltype(&rtKernelLaunch) RtKernelLaunch = nullptr;
  decltype(&rtKernelLaunchWithFlagV2) RtKernelLaunchWithFlagV2 = nullptr;
  decltype(&rtKernelLaunchWithHandleV2) RtKernelLaunchWithHandleV2 = nullptr;
  decltype(&rtLaunchKernelByFuncHandleV3) RtLaunchKernelByFuncHandleV3 = nullptr;
};

class AclDevice : public Device {
 public:
  AclDevice(int device, unsigned kernel_us, const std::string& launch) : device_(device), kernel_us_(kernel_us) {
    launch_ = launch.empty() ? "kernel" : launch;
    static const char* kLaunches[] = {"kernel", "kernelcfg", "model", "op", "opv2", "compile", "compilev2",
                                      "rt_launch", "rt_flag", "rt_handle", "rt_func"};
    if (std::find_if(std::begin(kLaunches), std::end(kLaunches), [&](const char* l) { return launch_ == l; }) ==
        std::end(kLaunches))
      Die("--launch %s: not a Huawei launch kind", launch_.c_str());
    void* h = dlopen("libascendcl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) Die("dlopen libascendcl.so: %s", dlerror());
    Sym(h, fn_.Init, "aclInit");
    Sym(h, fn_.SetDevice, "aclrtSetDevice");
    Sym(h, fn_.CreateStream, "aclrtCreateStream");
    Sym(h, fn_.SynchronizeStream, "aclrtSynchronizeStream");
    Sym(h, fn_.CreateEvent, "aclrtCreateEvent");
    Sym(h, fn_.RecordEvent, "aclrtRecordEvent");
    Sym(h, fn_.SynchronizeEvent, "aclrtSynchronizeEvent");
    Sym(h, fn_.LaunchKernel, "aclrtLaunchKernel");
    Sym(h, fn_.LaunchKernelWithConfig, "aclrtLaunchKernelWithConfig");
    Sym(h, fn_.ExecuteAsync, "aclmdlExecuteAsync");
    Sym(h, fn_.OpExecute, "aclopExecute");
    Sym(h, fn_.OpExecuteV2, "aclopExecuteV2");
    Sym(h, fn_.CompileAndExecute, "aclopCompileAndExecute");
    Sym(h, fn_.CompileAndExecuteV2, "aclopCompileAndExecuteV2");
    Sym(h, fake.SetKernelUs, "tsfake_set_kernel_us");
    Sym(h, fake.LastStart, "tsfake_last_kernel_start_ns");
    Sym(h, fake.Busy, "tsfake_busy_ns");
    if (launch_.rfind("rt_", 0) == 0) {
      void* rt = dlopen("libruntime.so", RTLD_NOW | RTLD_LOCAL);
      if (!rt) Die("dlopen libruntime.so: %s", dlerror());
      Sym(rt, fn_.RtKernelLaunch, "rtKernelLaunch");
      Sym(rt, fn_.RtKernelLaunchWithFlagV2, "rtKernelLaunchWithFlagV2");
      Sym(rt, fn_.RtKernelLaunchWithHandleV2, "rtKernelLaunchWithHandleV2");
      Sym(rt, fn_.RtLaunchKernelByFuncHandleV3, "rtLaunchKernelByFuncHandleV3");
    }
    Check(fn_.Init(nullptr), "aclInit");
    Check(fn_.SetDevice(device), "aclrtSetDevice");
  }

  static void Check(int r, const char* what) {
    if (r != 0) Die("%s failed: %d", what, r);
  }

  class AclLane : public Lane {
   public:
    explicit AclLane(AclDevice* d) : d_(d) {
      Check(d->fn_.SetDevice(d->device_), "aclrtSetDevice");
      d->fake.SetKernelUs(d->kernel_us_);  // the calling thread's kernels
      Check(d->fn_.CreateStream(&stream_), "aclrtCreateStream");
      for (auto& e : events_) Check(d->fn_.CreateEvent(&e), "aclrtCreateEvent");
    }
    void Launch() override {
      static int token;
      void* f = &token;
      const std::string& l = d_->launch_;
      const AclFns& fn = d_->fn_;
      if (l == "kernel") Check(fn.LaunchKernel(f, 1, nullptr, 0, stream_), "aclrtLaunchKernel");
      else if (l == "kernelcfg")
        Check(fn.LaunchKernelWithConfig(f, 1, stream_, nullptr, nullptr, nullptr), "aclrtLaunchKernelWithConfig");
      else if (l == "model") Check(fn.ExecuteAsync(7, nullptr, nullptr, stream_), "aclmdlExecuteAsync");
      else if (l == "op") Check(fn.OpExecute("Spin", 0, nullptr, nullptr, 0, nullptr, nullptr, nullptr, stream_), "aclopExecute");
      else if (l == "opv2")
        Check(fn.OpExecuteV2("Spin", 0, nullptr, nullptr, 0, nullptr, nullptr, nullptr, stream_), "aclopExecuteV2");
      else if (l == "compile")
        Check(fn.CompileAndExecute("Spin", 0, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 1, 0, nullptr, stream_),
              "aclopCompileAndExecute");
      else if (l == "compilev2")
        Check(fn.CompileAndExecuteV2("Spin", 0, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 1, 0, nullptr, stream_),
              "aclopCompileAndExecuteV2");
      else if (l == "rt_launch") Check(fn.RtKernelLaunch(f, 1, nullptr, 0, nullptr, stream_), "rtKernelLaunch");
      else if (l == "rt_flag")
        Check(fn.RtKernelLaunchWithFlagV2(f, 1, nullptr, nullptr, stream_, 0, nullptr), "rtKernelLaunchWithFlagV2");
      else if (l == "rt_handle")
        Check(fn.RtKernelLaunchWithHandleV2(f, 0, 1, nullptr, nullptr, stream_, nullptr), "rtKernelLaunchWithHandleV2");
      else Check(fn.RtLaunchKernelByFuncHandleV3(f, 1, nullptr, stream_, nullptr), "rtLaunchKernelByFuncHandleV3");
    }
    void RecordEvent(int i) override { Check(d_->fn_.RecordEvent(events_[i], stream_), "aclrtRecordEvent"); }
    void WaitEvent(int i) override { Check(d_->fn_.SynchronizeEvent(events_[i]), "aclrtSynchronizeEvent"); }
    void Synchronize() override { Check(d_->fn_.SynchronizeStream(stream_), "aclrtSynchronizeStream"); }

   private:
    AclDevice* d_;
    aclrtStream stream_ = nullptr;
    aclrtEvent events_[2] = {};
  };

  std::unique_ptr<Lane> MakeLane(int graph) override {
    if (graph > 0) Die("--graph is NVIDIA only");
    return std::make_unique<AclLane>(this);
  }

 private:
  int device_;
  unsigned kernel_us_;
  std::string launch_;
  AclFns fn_;
};

// ------------------------------------------------------------------ the runs

struct Totals {
  std::atomic<long long> kernels{0};
  std::atomic<long long> launches{0};
};

void SaturateLane(Lane& lane, int64_t deadline, int inflight, Totals& totals) {
  long long n = 0, groups = 0;
  while (NowNs() < deadline) {
    lane.Launch();
    ++n;
    if (n % inflight == 0) {
      lane.RecordEvent(static_cast<int>(groups % 2));
      if (groups > 0) lane.WaitEvent(static_cast<int>((groups - 1) % 2));
      ++groups;
    }
  }
  lane.Synchronize();
  totals.launches += n;
  totals.kernels += n * lane.KernelsPerLaunch();
}

void Report(Device& dev, int device, int64_t t0, int64_t t1) {
  unsigned long long busy = 0;
  int exact = dev.fake.Busy(static_cast<unsigned>(device), 0, static_cast<unsigned long long>(t0),
                            static_cast<unsigned long long>(t1), &busy);
  if (exact < 0) Die("tsfake_busy_ns failed");
  const long long wall = t1 - t0;
  OutU("busy_ns", busy);
  OutI("wall_ns", wall);
  Out("share", "%.4f", wall > 0 ? static_cast<double>(busy) / static_cast<double>(wall) : 0.0);
  OutI("busy_exact", exact == 0);
  OutI("t0_ns", t0);
  OutI("t1_ns", t1);
}

double Percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  if (idx > 0) --idx;
  if (idx >= v.size()) idx = v.size() - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
  return static_cast<double>(v[idx]) / 1000.0;
}

int RunSaturate(Device& dev, const Args& a, int device) {
  const double seconds = strtod(a.Str("seconds", "1").c_str(), nullptr);
  const int streams = static_cast<int>(a.Int("streams", 1));
  const int inflight = static_cast<int>(a.Int("inflight", 16));
  const int graph = static_cast<int>(a.Int("graph", 0));
  if (streams < 1 || streams > 64 || inflight < 1 || graph < 0 || seconds <= 0) Die("bad saturate arguments");
  // Every lane (stream, events, captured graph) is set up before the clock starts.
  std::vector<std::unique_ptr<Lane>> lanes(static_cast<size_t>(streams));
  std::vector<std::thread> threads;
  Totals totals;
  std::atomic<int> ready{0};
  std::atomic<int64_t> go{0};
  for (int i = 0; i < streams; ++i)
    threads.emplace_back([&, i] {
      lanes[static_cast<size_t>(i)] = dev.MakeLane(graph);
      ready.fetch_add(1);
      int64_t start;
      while ((start = go.load()) == 0) std::this_thread::yield();
      SaturateLane(*lanes[static_cast<size_t>(i)], start + static_cast<int64_t>(seconds * 1e9), inflight, totals);
    });
  while (ready.load() < streams) std::this_thread::yield();
  const int64_t t0 = NowNs();
  go.store(t0);
  for (auto& t : threads) t.join();
  const int64_t t1 = NowNs();
  Report(dev, device, t0, t1);
  OutI("launches", totals.kernels.load());
  OutI("graph_launches", graph > 0 ? totals.launches.load() : 0);
  OutI("streams", streams);
  return 0;
}

int RunBursty(Device& dev, const Args& a, int device) {
  const double seconds = strtod(a.Str("seconds", "1").c_str(), nullptr);
  const int burst = static_cast<int>(a.Int("burst", 10));
  const double period_ms = strtod(a.Str("period-ms", "50").c_str(), nullptr);
  if (burst < 1 || period_ms <= 0 || seconds <= 0) Die("bad bursty arguments");
  std::unique_ptr<Lane> lane = dev.MakeLane(0);
  std::vector<int64_t> delays;
  const int64_t period = static_cast<int64_t>(period_ms * 1e6);
  const int64_t t0 = NowNs();
  const int64_t stop = t0 + static_cast<int64_t>(seconds * 1e9);
  int64_t next = t0;
  long long bursts = 0;
  while (next < stop) {
    SleepUntil(next);
    for (int i = 0; i < burst; ++i) {
      const int64_t host = NowNs();
      lane->Launch();
      const int64_t start = static_cast<int64_t>(dev.fake.LastStart());
      delays.push_back(start > host ? start - host : 0);
    }
    lane->Synchronize();
    ++bursts;
    next += period;
  }
  const int64_t t1 = NowNs();
  Report(dev, device, t0, t1);
  OutI("launches", static_cast<long long>(delays.size()));
  OutI("graph_launches", 0);
  OutI("bursts", bursts);
  std::vector<int64_t> v = delays;
  Out("delay_p50_us", "%.1f", Percentile(v, 0.50));
  Out("delay_p99_us", "%.1f", Percentile(v, 0.99));
  Out("delay_max_us", "%.1f", v.empty() ? 0.0 : static_cast<double>(*std::max_element(v.begin(), v.end())) / 1000.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  if (a.command.empty()) {
    fputs(Usage(), stderr);
    return 2;
  }
  const std::string vendor = a.Str("vendor", "nvidia");
  const int device = static_cast<int>(a.Int("device", 0));
  const long long kernel_us = a.Int("kernel-us", 100);
  if (kernel_us < 0 || kernel_us > 10000000) Die("bad --kernel-us");
  std::unique_ptr<Device> dev;
  if (vendor == "nvidia")
    dev = std::make_unique<CudaDevice>(a.Str("path", "procaddress_v2"), device, static_cast<unsigned>(kernel_us),
                                       a.Str("launch", ""));
  else if (vendor == "huawei")
    dev = std::make_unique<AclDevice>(device, static_cast<unsigned>(kernel_us), a.Str("launch", ""));
  else
    Die("--vendor %s: nvidia or huawei", vendor.c_str());
  Out("vendor", "%s", vendor.c_str());
  Out("command", "%s", a.command.c_str());
  OutI("kernel_us", kernel_us);
  if (a.command == "saturate") return RunSaturate(*dev, a, device);
  if (a.command == "bursty") return RunBursty(*dev, a, device);
  fputs(Usage(), stderr);
  Die("unknown command '%s'", a.command.c_str());
}
