// On a real NVIDIA GPU, under libtideslice-limiter.so: the limit holds, memory queries report
// the slice, kernels still run (a PTX kernel embedded here, JIT-compiled by the driver: no nvcc),
// two processes together cannot pass the limit, and the added cost per allocation. Reaches the
// driver the way the CUDA runtime does (dlopen + dlsym("cuGetProcAddress_v2") + lookups by base
// name). Prints key=value lines; exits non-zero when a check fails. Run by limiter_gpu.sh.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

using CUresult = int;
using CUdeviceptr = unsigned long long;
using GetProcAddressFn = CUresult (*)(const char*, void**, int, unsigned long long, int*);

GetProcAddressFn g_get_proc = nullptr;
int g_failures = 0;

template <typename Fn>
Fn Get(const char* base, int version = 12000) {
  void* p = nullptr;
  int status = 0;
  if (g_get_proc(base, &p, version, 0, &status) != 0 || !p) {
    fprintf(stderr, "cuGetProcAddress(%s) failed\n", base);
    exit(2);
  }
  return reinterpret_cast<Fn>(p);
}

void Check(bool ok, const char* what) {
  printf("check.%s=%s\n", what, ok ? "ok" : "FAILED");
  if (!ok) ++g_failures;
}

const char* kPtx = R"(
.version 7.0
.target sm_50
.address_size 64
.visible .entry fill(.param .u64 out, .param .u32 value)
{
  .reg .b32 %r<4>;
  .reg .b64 %rd<5>;
  ld.param.u64 %rd1, [out];
  ld.param.u32 %r1, [value];
  cvta.to.global.u64 %rd2, %rd1;
  mov.u32 %r2, %tid.x;
  mul.wide.u32 %rd3, %r2, 4;
  add.s64 %rd4, %rd2, %rd3;
  st.global.u32 [%rd4], %r1;
  ret;
}
)";

// Spins until `cycles` SM clock cycles have passed: a kernel of a chosen length.
const char* kSpinPtx = R"(
.version 7.0
.target sm_50
.address_size 64
.visible .entry spin(.param .u64 cycles)
{
  .reg .pred %p;
  .reg .b64 %rd<5>;
  ld.param.u64 %rd1, [cycles];
  mov.u64 %rd2, %clock64;
LOOP:
  mov.u64 %rd3, %clock64;
  sub.s64 %rd4, %rd3, %rd2;
  setp.lt.s64 %p, %rd4, %rd1;
  @%p bra LOOP;
  ret;
}
)";

double NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  // argv[1]: expected limit in bytes (0 = no limiter expected), argv[2]: mode (all | fill-half)
  uint64_t limit = argc > 1 ? strtoull(argv[1], nullptr, 10) : 0;
  std::string mode = argc > 2 ? argv[2] : "all";
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "no libcuda.so.1: %s\n", dlerror());
    return 77;
  }
  g_get_proc = reinterpret_cast<GetProcAddressFn>(dlsym(lib, "cuGetProcAddress_v2"));
  if (!g_get_proc) return 2;
  // What cudart does first: ask the entry point for itself.
  g_get_proc = Get<GetProcAddressFn>("cuGetProcAddress", 12000);

  auto cuInit = Get<CUresult (*)(unsigned)>("cuInit");
  auto cuDeviceGet = Get<CUresult (*)(int*, int)>("cuDeviceGet");
  auto cuCtxRetain = Get<CUresult (*)(void**, int)>("cuDevicePrimaryCtxRetain");
  auto cuCtxSetCurrent = Get<CUresult (*)(void*)>("cuCtxSetCurrent");
  auto cuMemGetInfo = Get<CUresult (*)(size_t*, size_t*)>("cuMemGetInfo", 3020);
  auto cuDeviceTotalMem = Get<CUresult (*)(size_t*, int)>("cuDeviceTotalMem", 3020);
  auto cuMemAlloc = Get<CUresult (*)(CUdeviceptr*, size_t)>("cuMemAlloc", 3020);
  auto cuMemFree = Get<CUresult (*)(CUdeviceptr)>("cuMemFree", 3020);
  auto cuModuleLoadData = Get<CUresult (*)(void**, const void*)>("cuModuleLoadData");
  auto cuModuleGetFunction = Get<CUresult (*)(void**, void*, const char*)>("cuModuleGetFunction");
  auto cuLaunchKernel = Get<CUresult (*)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                         void*, void**, void**)>("cuLaunchKernel", 4000);
  auto cuCtxSynchronize = Get<CUresult (*)()>("cuCtxSynchronize");
  auto cuMemcpyDtoH = Get<CUresult (*)(void*, CUdeviceptr, size_t)>("cuMemcpyDtoH", 3020);

  if (cuInit(0) != 0) return 77;
  int dev = 0;
  void* ctx = nullptr;
  if (cuDeviceGet(&dev, 0) != 0 || cuCtxRetain(&ctx, dev) != 0 || cuCtxSetCurrent(ctx) != 0) return 2;

  size_t free_bytes = 0, total = 0, device_total = 0;
  cuMemGetInfo(&free_bytes, &total);
  cuDeviceTotalMem(&device_total, dev);
  printf("mem_get_info.total=%zu\nmem_get_info.free=%zu\ndevice_total_mem=%zu\n", total, free_bytes, device_total);

  const size_t chunk = 64ull << 20;
  if (mode == "spin") {
    // Saturate the card with 1 ms spin kernels for argv[3] seconds (at most 4 in flight, as a
    // framework synchronising every step would); achieved share = kernels completed × their
    // length ÷ wall time. Under a compute share the limiter holds the launches back.
    double seconds = argc > 3 ? atof(argv[3]) : 10;
    auto cuDeviceGetAttribute = Get<CUresult (*)(int*, int, int)>("cuDeviceGetAttribute");
    auto cuStreamSynchronize = Get<CUresult (*)(void*)>("cuStreamSynchronize");
    auto cuEventCreate = Get<CUresult (*)(void**, unsigned)>("cuEventCreate");
    auto cuEventRecord = Get<CUresult (*)(void*, void*)>("cuEventRecord");
    auto cuEventSynchronize = Get<CUresult (*)(void*)>("cuEventSynchronize");
    auto cuEventElapsedTime = Get<CUresult (*)(float*, void*, void*)>("cuEventElapsedTime");
    int khz = 0;
    cuDeviceGetAttribute(&khz, 13 /* CLOCK_RATE, kHz */, dev);
    void* module = nullptr;
    void* fn = nullptr;
    if (cuModuleLoadData(&module, kSpinPtx) != 0 || cuModuleGetFunction(&fn, module, "spin") != 0) return 2;
    unsigned long long cycles = static_cast<unsigned long long>(khz);  // 1 ms
    void* params[] = {&cycles};
    // Calibrate: the kernel's real length on this card.
    void *e0 = nullptr, *e1 = nullptr;
    cuEventCreate(&e0, 0);
    cuEventCreate(&e1, 0);
    cuEventRecord(e0, nullptr);
    for (int i = 0; i < 20; ++i) cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr);
    cuEventRecord(e1, nullptr);
    cuEventSynchronize(e1);
    float ms = 0;
    cuEventElapsedTime(&ms, e0, e1);
    const double kernel_ms = ms / 20;
    std::vector<void*> ring(4);
    for (auto& e : ring) cuEventCreate(&e, 2 /* DISABLE_TIMING */);
    double start = NowNs();
    long launched = 0;
    while ((NowNs() - start) / 1e9 < seconds) {
      void* slot = ring[launched % ring.size()];
      if (launched >= static_cast<long>(ring.size())) cuEventSynchronize(slot);
      cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr);
      cuEventRecord(slot, nullptr);
      ++launched;
    }
    cuStreamSynchronize(nullptr);
    double wall_ms = (NowNs() - start) / 1e6;
    printf("spin.kernel_ms=%.3f\nspin.launched=%ld\nspin.share=%.3f\n", kernel_ms, launched,
           launched * kernel_ms / wall_ms);
    return 0;
  }
  if (mode == "fill-half") {
    // For the two-process check: take 60 % of the limit in 64 MiB steps; report what we got.
    size_t want = limit / 10 * 6, got = 0;
    std::vector<CUdeviceptr> held;
    while (got + chunk <= want) {
      CUdeviceptr p = 0;
      if (cuMemAlloc(&p, chunk) != 0) break;
      held.push_back(p);
      got += chunk;
    }
    printf("fill_half.got=%zu\n", got);
    sleep(2);  // hold while the sibling tries
    for (auto p : held) cuMemFree(p);
    return 0;
  }

  if (limit) {
    Check(total == limit || (total < limit && device_total < limit), "total_is_the_slice");
    Check(device_total <= limit, "device_total_mem_clamped");
    Check(free_bytes <= total, "free_within_total");
  }

  // Fill to the limit.
  std::vector<CUdeviceptr> held;
  size_t got = 0;
  CUresult last = 0;
  for (;;) {
    CUdeviceptr p = 0;
    last = cuMemAlloc(&p, chunk);
    if (last != 0) break;
    held.push_back(p);
    got += chunk;
    if (!limit && got >= (8ull << 30)) break;
  }
  printf("fill.allocated=%zu\nfill.last_result=%d\n", got, last);
  if (limit) {
    Check(last == 2, "over_limit_is_out_of_memory");
    Check(got <= limit && got + chunk + (1ull << 30) > limit, "filled_close_to_the_limit");
    size_t f = 0, t = 0;
    cuMemGetInfo(&f, &t);
    printf("fill.free_after=%zu\n", f);
    Check(f < chunk, "free_reports_the_slice_full");
  }
  for (auto p : held) cuMemFree(p);

  // A kernel still runs.
  void* module = nullptr;
  void* fn = nullptr;
  CUdeviceptr buffer = 0;
  bool kernel_ok = cuModuleLoadData(&module, kPtx) == 0 && cuModuleGetFunction(&fn, module, "fill") == 0 &&
                   cuMemAlloc(&buffer, 256 * 4) == 0;
  if (kernel_ok) {
    unsigned value = 0x5a1ce;
    void* params[] = {&buffer, &value};
    kernel_ok = cuLaunchKernel(fn, 1, 1, 1, 256, 1, 1, 0, nullptr, params, nullptr) == 0 && cuCtxSynchronize() == 0;
    std::vector<unsigned> host(256);
    kernel_ok = kernel_ok && cuMemcpyDtoH(host.data(), buffer, 256 * 4) == 0;
    for (unsigned v : host) kernel_ok = kernel_ok && v == value;
    cuMemFree(buffer);
  }
  Check(kernel_ok, "ptx_kernel_runs");

  // Added cost per allocation: alloc+free pairs of 2 MiB (the limiter's work is the difference
  // between a run with and without it; limiter_gpu.sh runs both).
  const int pairs = 2000;
  double start = NowNs();
  for (int i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cuMemAlloc(&p, 2 << 20) == 0) cuMemFree(p);
  }
  printf("alloc_free_pair_ns=%.0f\n", (NowNs() - start) / pairs);
  printf("failures=%d\n", g_failures);
  return g_failures ? 1 : 0;
}
