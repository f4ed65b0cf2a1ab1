// An Ascend ACL workload for the limiter's preload tests. It reaches the (fake) CANN runtime the
// way frameworks do, chosen with --path:
//   linked  the executable has DT_NEEDED on libascendcl.so and libruntime.so and calls aclrt*
//           (and, for --api rt, rtMalloc directly, as MindSpore 2.2 does) through the PLT
//           (built as acl_workload_linked, the only binary that accepts it);
//   dlopen  dlopen("libascendcl.so") + dlsym(handle, name), as torch_npu's FunctionLoader and
//           newer MindSpore do (rt functions: dlopen("libruntime.so") + dlsym).
// Subcommands: fill, query, each-kind, stress, hold, fork-child (see Usage()).
// Output: `key=value` lines on stdout; exit status 0 when the program ran to its end.
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "tests/limiter/abi/acl_abi.h"
#include "tests/limiter/programs/workload_common.h"

using namespace workload;

namespace {

const char* Usage() {
  return "usage: acl_workload [--path linked|dlopen] [--device i] COMMAND ...\n"
         "  fill --chunk BYTES [--api malloc|align32|cached|withcfg|physical|rt|rt_cached|dvpp]\n"
         "  query [--alloc BYTES] [--no-free]\n"
         "  each-kind --bytes N [--probe] [--kinds malloc,align32,...]\n"
         "  stress --threads T --seconds S --max-chunk BYTES --seed N [--threads-before-init]\n"
         "  hold --bytes N --ready-file F\n"
         "  fork-child --parent-bytes A --child-bytes B [--child-bytes2 C] [--after-bytes D]\n"
         "  host-kinds --bytes N        (aclrtMallocHost, aclrtMallocPhysical on the host side)\n"
         "  bad-args [--fill BYTES]     (invalid calls, then one allocation of BYTES)\n";
}

struct Acl {
  decltype(&aclInit) Init = nullptr;
  decltype(&aclFinalize) Finalize = nullptr;
  decltype(&aclrtSetDevice) SetDevice = nullptr;
  decltype(&aclrtResetDevice) ResetDevice = nullptr;
  decltype(&aclrtMalloc) Malloc = nullptr;
  decltype(&aclrtMallocAlign32) MallocAlign32 = nullptr;
  decltype(&aclrtMallocCached) MallocCached = nullptr;
  decltype(&aclrtMallocWithCfg) MallocWithCfg = nullptr;
  decltype(&aclrtFree) Free = nullptr;
  decltype(&aclrtMallocHost) MallocHost = nullptr;
  decltype(&aclrtFreeHost) FreeHost = nullptr;
  decltype(&aclrtGetMemInfo) GetMemInfo = nullptr;
  decltype(&aclrtReserveMemAddress) ReserveMemAddress = nullptr;
  decltype(&aclrtReleaseMemAddress) ReleaseMemAddress = nullptr;
  decltype(&aclrtMallocPhysical) MallocPhysical = nullptr;
  decltype(&aclrtFreePhysical) FreePhysical = nullptr;
  decltype(&aclrtMapMem) MapMem = nullptr;
  decltype(&aclrtUnmapMem) UnmapMem = nullptr;
  // rt layer
  decltype(&rtMalloc) RtMalloc = nullptr;
  decltype(&rtMallocCached) RtMallocCached = nullptr;
  decltype(&rtFree) RtFree = nullptr;
  decltype(&rtDvppMalloc) RtDvppMalloc = nullptr;
  decltype(&rtDvppFree) RtDvppFree = nullptr;
  decltype(&rtMemGetInfoEx) RtMemGetInfoEx = nullptr;
};

Acl acl;
bool g_linked = false;
int g_device = 0;

template <typename T>
void Sym(void* h, T& slot, const char* name) {
  slot = reinterpret_cast<T>(dlsym(h, name));
  if (!slot) Die("dlsym(%s) failed", name);
}

void Resolve() {
  if (g_linked) {
#ifdef WORKLOAD_LINKED
    acl.Init = &aclInit;
    acl.Finalize = &aclFinalize;
    acl.SetDevice = &aclrtSetDevice;
    acl.ResetDevice = &aclrtResetDevice;
    acl.Malloc = &aclrtMalloc;
    acl.MallocAlign32 = &aclrtMallocAlign32;
    acl.MallocCached = &aclrtMallocCached;
    acl.MallocWithCfg = &aclrtMallocWithCfg;
    acl.Free = &aclrtFree;
    acl.MallocHost = &aclrtMallocHost;
    acl.FreeHost = &aclrtFreeHost;
    acl.GetMemInfo = &aclrtGetMemInfo;
    acl.ReserveMemAddress = &aclrtReserveMemAddress;
    acl.ReleaseMemAddress = &aclrtReleaseMemAddress;
    acl.MallocPhysical = &aclrtMallocPhysical;
    acl.FreePhysical = &aclrtFreePhysical;
    acl.MapMem = &aclrtMapMem;
    acl.UnmapMem = &aclrtUnmapMem;
    acl.RtMalloc = &rtMalloc;
    acl.RtMallocCached = &rtMallocCached;
    acl.RtFree = &rtFree;
    acl.RtDvppMalloc = &rtDvppMalloc;
    acl.RtDvppFree = &rtDvppFree;
    acl.RtMemGetInfoEx = &rtMemGetInfoEx;
    return;
#else
    Die("--path linked needs the acl_workload_linked binary");
#endif
  }
  void* h = dlopen("libascendcl.so", RTLD_NOW | RTLD_LOCAL);
  if (!h) Die("dlopen libascendcl.so: %s", dlerror());
  Sym(h, acl.Init, "aclInit");
  Sym(h, acl.Finalize, "aclFinalize");
  Sym(h, acl.SetDevice, "aclrtSetDevice");
  Sym(h, acl.ResetDevice, "aclrtResetDevice");
  Sym(h, acl.Malloc, "aclrtMalloc");
  Sym(h, acl.MallocAlign32, "aclrtMallocAlign32");
  Sym(h, acl.MallocCached, "aclrtMallocCached");
  Sym(h, acl.MallocWithCfg, "aclrtMallocWithCfg");
  Sym(h, acl.Free, "aclrtFree");
  Sym(h, acl.MallocHost, "aclrtMallocHost");
  Sym(h, acl.FreeHost, "aclrtFreeHost");
  Sym(h, acl.GetMemInfo, "aclrtGetMemInfo");
  Sym(h, acl.ReserveMemAddress, "aclrtReserveMemAddress");
  Sym(h, acl.ReleaseMemAddress, "aclrtReleaseMemAddress");
  Sym(h, acl.MallocPhysical, "aclrtMallocPhysical");
  Sym(h, acl.FreePhysical, "aclrtFreePhysical");
  Sym(h, acl.MapMem, "aclrtMapMem");
  Sym(h, acl.UnmapMem, "aclrtUnmapMem");
  void* rt = dlopen("libruntime.so", RTLD_NOW | RTLD_LOCAL);
  if (!rt) Die("dlopen libruntime.so: %s", dlerror());
  Sym(rt, acl.RtMalloc, "rtMalloc");
  Sym(rt, acl.RtMallocCached, "rtMallocCached");
  Sym(rt, acl.RtFree, "rtFree");
  Sym(rt, acl.RtDvppMalloc, "rtDvppMalloc");
  Sym(rt, acl.RtDvppFree, "rtDvppFree");
  Sym(rt, acl.RtMemGetInfoEx, "rtMemGetInfoEx");
}

void Open(const std::string& p = "") {
  aclError r = acl.Init(nullptr);
  OutI(p + "init_result", r);
  if (r != ACL_SUCCESS && r != ACL_ERROR_REPEAT_INITIALIZE) Die("aclInit: %d", r);
  r = acl.SetDevice(g_device);
  OutI(p + "set_device_result", r);
  if (r != ACL_SUCCESS) Die("aclrtSetDevice(%d): %d", g_device, r);
}

void Close(const std::string& p = "") {
  OutI(p + "reset_result", acl.ResetDevice(g_device));
  acl.Finalize();
}

long long UsedNow() {
  size_t f = 0, t = 0;
  if (acl.GetMemInfo(ACL_HBM_MEM, &f, &t) != ACL_SUCCESS) return -1;
  return static_cast<long long>(t) - static_cast<long long>(f);
}

// ---- one allocation of a given API

struct Block {
  std::string api;
  void* ptr = nullptr;
  aclrtDrvMemHandle handle = nullptr;
  void* va = nullptr;  // physical: where it is mapped
};

// A VA range for mapped physical memory (torch_npu's expandable segments reserve one big range).
struct VaArena {
  void* base = nullptr;
  size_t size = 0;
  size_t used = 0;
};
VaArena g_arena;

void* ArenaTake(size_t n) {
  if (!g_arena.base) {
    g_arena.size = 256ull << 30;
    aclError r = acl.ReserveMemAddress(&g_arena.base, g_arena.size, 0, nullptr, 1);
    if (r != ACL_SUCCESS) Die("aclrtReserveMemAddress: %d", r);
  }
  if (g_arena.used + n > g_arena.size) Die("VA arena exhausted");
  void* p = static_cast<char*>(g_arena.base) + g_arena.used;
  g_arena.used += n;
  return p;
}

void ArenaRelease() {
  if (g_arena.base) acl.ReleaseMemAddress(g_arena.base);
  g_arena = VaArena{};
}

// Bytes the fake runtime really takes for `size` through `api` (ASCEND-ABI A.2 arithmetic).
uint64_t ExpectedBytes(const std::string& api, uint64_t size) {
  uint64_t r32 = (size + 31) / 32 * 32;
  if (api == "malloc" || api == "cached") return r32 + 32;
  if (api == "align32") return r32;
  return size;
}

aclError Allocate(const std::string& api, uint64_t size, Block& b) {
  b.api = api;
  if (api == "malloc") return acl.Malloc(&b.ptr, size, ACL_MEM_MALLOC_HUGE_FIRST);
  if (api == "align32") return acl.MallocAlign32(&b.ptr, size, ACL_MEM_MALLOC_HUGE_FIRST);
  if (api == "cached") return acl.MallocCached(&b.ptr, size, ACL_MEM_MALLOC_HUGE_FIRST);
  if (api == "withcfg") return acl.MallocWithCfg(&b.ptr, size, ACL_MEM_MALLOC_HUGE_FIRST, nullptr);
  if (api == "rt") return acl.RtMalloc(&b.ptr, size, RT_MEMORY_HBM, 0);  // MindSpore 2.2's direct call
  if (api == "rt_cached") return acl.RtMallocCached(&b.ptr, size, RT_MEMORY_HBM, 0);
  if (api == "dvpp") return acl.RtDvppMalloc(&b.ptr, size, 0);
  if (api == "physical") {
    aclrtPhysicalMemProp prop{};
    prop.handleType = ACL_MEM_HANDLE_TYPE_NONE;
    prop.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
    prop.memAttr = ACL_HBM_MEM_HUGE;
    prop.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = static_cast<uint32_t>(g_device);
    aclError r = acl.MallocPhysical(&b.handle, size, &prop, 0);
    if (r != ACL_SUCCESS) return r;
    b.va = ArenaTake(size);
    aclError m = acl.MapMem(b.va, size, 0, b.handle, 0);
    if (m != ACL_SUCCESS) Die("aclrtMapMem: %d", m);
    return r;
  }
  Die("unknown --api %s", api.c_str());
}

aclError Release(Block& b) {
  if (b.api == "rt" || b.api == "rt_cached") return acl.RtFree(b.ptr);
  if (b.api == "dvpp") return acl.RtDvppFree(b.ptr);
  if (b.api == "physical") {
    aclError u = acl.UnmapMem(b.va);
    aclError f = acl.FreePhysical(b.handle);
    return u != ACL_SUCCESS ? u : f;
  }
  return acl.Free(b.ptr);
}

// ---- fill

void ReportMemInfo() {
  size_t f = 0, t = 0;
  aclError r = acl.GetMemInfo(ACL_HBM_MEM, &f, &t);
  OutI("meminfo_result", r);
  OutU("free", f);
  OutU("total", t);
  size_t rf = 0, rtot = 0;
  r = acl.RtMemGetInfoEx(RT_MEMORYINFO_HBM, &rf, &rtot);
  OutI("rt_meminfo_result", r);
  OutU("rt_free", rf);
  OutU("rt_total", rtot);
}

int CmdFill(const Args& a) {
  const uint64_t chunk = a.Bytes("chunk", 64ull << 20);
  const std::string api = a.Str("api", "align32");
  Open();
  std::vector<Block> blocks;
  aclError last = -1;
  for (int i = 0; i < 100000; ++i) {
    Block b;
    aclError r = Allocate(api, chunk, b);
    if (r != ACL_SUCCESS) {
      last = r;
      break;
    }
    blocks.push_back(b);
  }
  OutI("fill_successes", static_cast<long long>(blocks.size()));
  OutI("fill_result", last);
  OutU("fill_expected_bytes", ExpectedBytes(api, chunk) * blocks.size());
  ReportMemInfo();
  int free_errors = 0;
  for (Block& b : blocks)
    if (Release(b) != ACL_SUCCESS) ++free_errors;
  ArenaRelease();
  OutI("free_errors", free_errors);
  OutI("used_after_free", UsedNow());
  Close();
  Out("done", "1");
  return 0;
}

// ---- query

int CmdQuery(const Args& a) {
  Open();
  Block held;
  bool holding = false;
  if (a.Has("alloc")) {
    aclError r = Allocate(a.Str("api", "align32"), a.Bytes("alloc", 0), held);
    OutI("alloc_result", r);
    holding = r == ACL_SUCCESS;
  }
  size_t f = 0, t = 0;
  aclError r = acl.GetMemInfo(ACL_HBM_MEM, &f, &t);
  OutI("acl_result", r);
  OutU("acl_free", f);
  OutU("acl_total", t);
  r = acl.RtMemGetInfoEx(RT_MEMORYINFO_HBM, &f, &t);
  OutI("rt_result", r);
  OutU("rt_free", f);
  OutU("rt_total", t);
  OutI("null_arg_result", acl.GetMemInfo(ACL_HBM_MEM, nullptr, &t));
  if (a.Has("no-free")) {
    // Exit with the allocation and the device still held, as many programs do.
    Out("done", "1");
    return 0;
  }
  if (holding) OutI("free_result", Release(held));
  ArenaRelease();
  Close();
  Out("done", "1");
  return 0;
}

// ---- each-kind

const char* const kAllKinds = "malloc,align32,cached,withcfg,physical,rt,rt_cached,dvpp";

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int CmdEachKind(const Args& a) {
  const uint64_t n = a.Bytes("bytes", 32ull << 20);
  const std::vector<std::string> kKinds = SplitComma(a.Str("kinds", kAllKinds));
  Open();
  if (a.Has("probe")) {
    for (const std::string& k : kKinds) {
      std::string p = k + ".";
      Block b;
      long long before = UsedNow();
      aclError r = Allocate(k, n, b);
      OutI(p + "result", r);
      OutU(p + "expected_bytes", ExpectedBytes(k, n));
      if (r != ACL_SUCCESS) continue;
      OutI(p + "used_held", UsedNow() - before);
      Block probe;
      aclError pr = Allocate("align32", n, probe);
      OutI(p + "probe_held", pr);
      if (pr == ACL_SUCCESS) Release(probe);
      OutI(p + "free_result", Release(b));
      OutI(p + "used_after", UsedNow() - before);
      pr = Allocate("align32", n, probe);
      OutI(p + "probe_freed", pr);
      if (pr == ACL_SUCCESS) Release(probe);
    }
  } else {
    std::vector<Block> held;
    for (const std::string& k : kKinds) {
      Block b;
      aclError r = Allocate(k, n, b);
      OutI(k + ".result", r);
      if (r == ACL_SUCCESS) held.push_back(b);
    }
    OutI("kinds_held", static_cast<long long>(held.size()));
    OutI("used_held", UsedNow());
    for (Block& b : held) OutI(b.api + ".free_result", Release(b));
    OutI("used_after_free", UsedNow());
  }
  ArenaRelease();
  Close();
  Out("done", "1");
  return 0;
}

// ---- stress

struct Totals {
  std::atomic<long long> allocs{0}, ooms{0}, errors{0}, frees{0}, free_errors{0};
  std::atomic<int> first_error{0};
};

void StressThread(int index, const Args& a, Totals& tot, std::latch& start, bool own_init) {
  const uint64_t max_chunk = a.Bytes("max-chunk", 64ull << 20);
  const double seconds = static_cast<double>(a.Int("seconds-ms", a.Int("seconds", 5) * 1000)) / 1000.0;
  Rng rng(static_cast<uint64_t>(a.Int("seed", 1)) * 1000003ull + static_cast<uint64_t>(index));
  start.arrive_and_wait();
  if (own_init) {
    aclError r = acl.Init(nullptr);
    if (r != ACL_SUCCESS && r != ACL_ERROR_REPEAT_INITIALIZE) Die("thread %d: aclInit %d", index, r);
  }
  if (acl.SetDevice(g_device) != ACL_SUCCESS) Die("aclrtSetDevice");
  std::vector<void*> held;
  auto free_one = [&](size_t i) {
    void* p = held[i];
    held[i] = held.back();
    held.pop_back();
    if (acl.Free(p) == ACL_SUCCESS)
      ++tot.frees;
    else
      ++tot.free_errors;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    for (int burst = 0; burst < 16; ++burst) {
      if (held.size() < 4 && (held.empty() || rng.Below(100) < 55)) {
        uint64_t size = 1 + rng.Below(max_chunk);
        void* p = nullptr;
        // aclrtMallocAlign32 (torch_npu) and aclrtMalloc (padded): both end in rtMalloc.
        aclError r = rng.Below(2) ? acl.MallocAlign32(&p, size, ACL_MEM_MALLOC_HUGE_FIRST)
                                  : acl.Malloc(&p, size, ACL_MEM_MALLOC_HUGE_FIRST);
        if (r == ACL_SUCCESS) {
          held.push_back(p);
          ++tot.allocs;
        } else if (r == ACL_ERROR_RT_MEMORY_ALLOCATION) {
          ++tot.ooms;
        } else {
          ++tot.errors;
          int zero = 0;
          tot.first_error.compare_exchange_strong(zero, r);
        }
      } else if (!held.empty()) {
        free_one(rng.Below(held.size()));
      }
    }
  }
  while (!held.empty()) free_one(held.size() - 1);
  acl.ResetDevice(g_device);
}

int CmdStress(const Args& a) {
  const int threads = static_cast<int>(a.Int("threads", 16));
  const bool before_init = a.Has("threads-before-init");
  Totals tot;
  std::latch start(threads + 1);
  std::vector<std::thread> pool;
  if (!before_init) Open();
  for (int i = 0; i < threads; ++i)
    pool.emplace_back(StressThread, i, std::cref(a), std::ref(tot), std::ref(start), before_init);
  start.arrive_and_wait();
  for (auto& t : pool) t.join();
  if (before_init) Open();
  OutI("stress_allocs", tot.allocs);
  OutI("stress_ooms", tot.ooms);
  OutI("stress_errors", tot.errors);
  OutI("stress_first_error", tot.first_error);
  OutI("stress_frees", tot.frees);
  OutI("stress_free_errors", tot.free_errors);
  OutI("used_after", UsedNow());
  Close();
  Out("done", "1");
  return 0;
}

// ---- hold

int CmdHold(const Args& a) {
  const std::string ready = a.Str("ready-file", "");
  if (ready.empty()) Die("hold needs --ready-file");
  Open();
  Block b;
  aclError r = Allocate(a.Str("api", "align32"), a.Bytes("bytes", 0), b);
  OutI("hold_result", r);
  WriteFileAtomically(ready, "hold_result=" + std::to_string(r) + "\n");
  for (;;) pause();
}


// ---- host-kinds: host memory is not device memory

int CmdHostKinds(const Args& a) {
  const uint64_t n = a.Bytes("bytes", 64ull << 20);
  Open();
  void* h = nullptr;
  aclError r = acl.MallocHost(&h, n);
  OutI("alloc_host", r);
  aclrtPhysicalMemProp prop{};
  prop.handleType = ACL_MEM_HANDLE_TYPE_NONE;
  prop.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
  prop.memAttr = ACL_DDR_MEM;
  prop.location.type = ACL_MEM_LOCATION_TYPE_HOST;
  prop.location.id = 0;
  aclrtDrvMemHandle handle = nullptr;
  aclError rp = acl.MallocPhysical(&handle, n, &prop, 0);
  OutI("physical_host", rp);
  OutI("used_with_host", UsedNow());
  if (rp == ACL_SUCCESS) OutI("physical_host_free", acl.FreePhysical(handle));
  if (r == ACL_SUCCESS) OutI("free_host", acl.FreeHost(h));
  Close();
  Out("done", "1");
  return 0;
}

// ---- bad-args: calls the runtime refuses must come back with its error and cost nothing

int CmdBadArgs(const Args& a) {
  const uint64_t fill = a.Bytes("fill", 0);
  Open();
  void* p = nullptr;
  OutI("malloc_zero", acl.Malloc(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST));
  OutI("malloc_null", acl.Malloc(nullptr, 32ull << 20, ACL_MEM_MALLOC_HUGE_FIRST));
  OutI("align32_zero", acl.MallocAlign32(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST));
  aclrtPhysicalMemProp prop{};
  prop.handleType = ACL_MEM_HANDLE_TYPE_NONE;
  prop.allocationType = ACL_MEM_ALLOCATION_TYPE_PINNED;
  prop.memAttr = ACL_HBM_MEM_HUGE;
  prop.location.type = ACL_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = static_cast<uint32_t>(g_device);
  aclrtDrvMemHandle h = nullptr;
  OutI("physical_bad_flags", acl.MallocPhysical(&h, 32ull << 20, &prop, 1));
  prop.handleType = 1;
  OutI("physical_bad_handle_type", acl.MallocPhysical(&h, 32ull << 20, &prop, 0));
  OutI("free_null", acl.Free(nullptr));
  OutI("rt_malloc_zero", acl.RtMalloc(&p, 0, RT_MEMORY_HBM, 0));
  OutI("used_after_errors", UsedNow());
  if (fill) {
    Block b;
    aclError r = Allocate("align32", fill, b);
    OutI("fill_result", r);
    if (r == ACL_SUCCESS) Release(b);
  }
  Close();
  Out("done", "1");
  return 0;
}

// ---- fork-child

int CmdForkChild(const Args& a) {
  Open();
  Block parent;
  aclError r = Allocate("align32", a.Bytes("parent-bytes", 0), parent);
  OutI("parent_alloc", r);
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    Open("child_");
    Block c1, c2;
    aclError r1 = Allocate("align32", a.Bytes("child-bytes", 0), c1);
    OutI("child_alloc", r1);
    if (a.Has("child-bytes2")) {
      aclError r2 = Allocate("align32", a.Bytes("child-bytes2", 0), c2);
      OutI("child_alloc2", r2);
      size_t f = 0, t = 0;
      acl.GetMemInfo(ACL_HBM_MEM, &f, &t);
      OutU("child_free", f);
      OutU("child_total", t);
      if (r2 == ACL_SUCCESS) Release(c2);
    }
    if (r1 == ACL_SUCCESS) Release(c1);
    Close("child_");
    exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  OutI("child_status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  if (a.Has("after-bytes")) {
    Block b;
    aclError ra = Allocate("align32", a.Bytes("after-bytes", 0), b);
    OutI("parent_after", ra);
    if (ra == ACL_SUCCESS) Release(b);
  }
  if (r == ACL_SUCCESS) Release(parent);
  Close();
  Out("done", "1");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  const std::string path = a.Str("path", "dlopen");
  if (path == "linked") g_linked = true;
  else if (path != "dlopen") Die("unknown --path %s", path.c_str());
  g_device = static_cast<int>(a.Int("device", 0));
  Out("pid", "%d", getpid());
  Resolve();
  if (a.command == "fill") return CmdFill(a);
  if (a.command == "query") return CmdQuery(a);
  if (a.command == "each-kind") return CmdEachKind(a);
  if (a.command == "stress") return CmdStress(a);
  if (a.command == "hold") return CmdHold(a);
  if (a.command == "fork-child") return CmdForkChild(a);
  if (a.command == "host-kinds") return CmdHostKinds(a);
  if (a.command == "bad-args") return CmdBadArgs(a);
  fputs(Usage(), stderr);
  return 2;
}
